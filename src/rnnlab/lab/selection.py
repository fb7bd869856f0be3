"""Model selection on a validation split: report the test metric of the evaluation at which
the validation metric was best (early stopping, the protocol of Bai et al. 2018's
``music_test.py``, which keeps the model of the best validation loss)."""

from __future__ import annotations

from rnnlab.lab.tasks import Task, make_task

VALID_KEY = "valid_metric"  # the history entry's key of the validation metric


def validation_evaluator(task: Task, options: dict):
    """An ``also_evaluate`` for :func:`rnnlab.lab.train.train`: scores the validation split
    of ``task`` (built again with ``eval_split="valid"``; the music task takes it) and
    returns ``{"valid_metric": value}``."""
    from rnnlab.lab.train import evaluate

    valid = make_task(task.name, seq_len=task.seq_len, train_size=task.train_size,
                      **{**options, "eval_split": "valid"})

    def score(model) -> dict:
        device = next(model.parameters()).device
        return {VALID_KEY: evaluate(model, valid, device=device)[0]}

    return score


def best_by_validation(history: list[dict], higher_is_better: bool) -> dict | None:
    """``{"step", "valid", "test"}`` of the evaluation whose validation metric is best (the
    first of equals), or None when no evaluation scored the validation split."""
    scored = [h for h in history if VALID_KEY in h]
    if not scored:
        return None
    pick = (max if higher_is_better else min)(scored, key=lambda h: h[VALID_KEY])
    return {"step": pick["step"], "valid": pick[VALID_KEY], "test": pick["metric"]}
