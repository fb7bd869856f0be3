"""The ``rnnlab gradflow`` experiment: one cell on the adding problem, measured at
initialisation and after training, with and without gradient clipping, with the recurrent
weights scaled below and above 1.

Each *condition* (scale × stage × clipping) gets one :func:`measure_model` record; the run
writes ``gradflow.json`` (every record in full) and ``gradflow.png`` (‖∂L/∂h_k‖ against k,
step-Jacobian spectra, memory-gate means over time), and :func:`format_table` gives the
terminal table.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.lab.diagnostics.measure import headline, measure_model
from rnnlab.lab.diagnostics.scaling import scale_recurrent


@dataclass
class GradflowConfig:
    cell: str = "rnn"
    seq_len: int = 100
    hidden: int = 64
    scales: tuple[float, ...] = (1.0,)
    trained_steps: int = 0  # 0: measure at initialisation only
    clips: tuple[str, ...] = ("norm", "none")  # trained runs, one per clipping mode
    clip_value: float = 1.0
    task: str = "adding"
    lr: float = 3e-3
    batch_size: int = 32
    seed: int = 0
    measure_batch: int = 16
    threads: int | None = None
    out_dir: str | None = None
    layer_options: dict = field(default_factory=dict)

    def validate(self) -> None:
        from rnnlab.lab.model import CELLS

        if self.cell not in CELLS:
            raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {self.cell!r}")
        for name in ("seq_len", "hidden", "batch_size", "measure_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if not isinstance(self.trained_steps, int) or self.trained_steps < 0:
            raise ValueError(f"trained_steps: expected an integer >= 0, got {self.trained_steps!r}")
        if not self.scales or any(not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0)
                                  for s in self.scales):
            raise ValueError(f"scale: expected positive numbers, got {list(self.scales)}")
        for clip in self.clips:
            if clip not in ("none", "norm", "value"):
                raise ValueError(f"clip: expected none, norm or value, got {clip!r}")
        if self.cell in ("mingru", "minlstm") and any(s != 1.0 for s in self.scales):
            raise ValueError(f"scale: {self.cell} has no recurrent weights to scale")
        if self.cell == "sru" and self.trained_steps and any(s != 1.0 for s in self.scales):
            raise ValueError("scale: SRU has no weight_hh; training with a scaled recurrence "
                             "needs --cell rnn, lstm or gru (SRU's scale applies at "
                             "initialisation only: drop --trained-steps)")


def _train_config(cfg: GradflowConfig, scale: float, clip: str, steps: int):
    from rnnlab.lab.train import TrainConfig

    return TrainConfig(task=cfg.task, cell=cfg.cell, hidden=cfg.hidden, seq_len=cfg.seq_len,
                       steps=max(steps, 1), batch_size=cfg.batch_size, lr=cfg.lr, clip=clip,
                       clip_value=cfg.clip_value, seed=cfg.seed,
                       eval_every=max(steps, 1), recurrent_gain=scale if cfg.cell != "sru" else 1.0,
                       threads=cfg.threads, layer_options=dict(cfg.layer_options))


def _initial_model(cfg: GradflowConfig, scale: float):
    from rnnlab.lab.train import make_model, make_task_for

    config = _train_config(cfg, scale, "norm", 1)
    task = make_task_for(config)
    model = make_model(config, task)
    if cfg.cell == "sru" and scale != 1.0:
        scale_recurrent(model.rnn, scale)
    return model, task


def run_gradflow(cfg: GradflowConfig, progress: bool = False, log=None) -> dict:
    """Run every condition and return ``{"config", "conditions": [...], "seconds"}``; each
    condition holds ``label, scale, stage, clip`` (and after training ``final_metric``,
    ``metric``, ``chance``, ``diverged``, ``max_grad_norm``) and ``record``
    (:func:`measure_model`). Writes JSON and figure when ``cfg.out_dir`` is set."""
    import torch

    from rnnlab.lab.train import train

    cfg.validate()
    began = time.perf_counter()
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    conditions = []
    try:
        for scale in cfg.scales:
            model, task = _initial_model(cfg, scale)
            label = f"init, scale {scale:g}"
            if log:
                log(f"measuring {label}")
            conditions.append({"label": label, "scale": scale, "stage": "init", "clip": None,
                               "record": measure_model(model, task,
                                                       batch_size=cfg.measure_batch)})
            if not cfg.trained_steps:
                continue
            for clip in cfg.clips:
                label = f"trained {cfg.trained_steps}, scale {scale:g}, clip {clip}"
                if log:
                    log(f"training: {label}")
                result = train(_train_config(cfg, scale, clip, cfg.trained_steps),
                               progress=progress)
                norms = [h["grad_norm"] for h in result.history]
                conditions.append({
                    "label": label, "scale": scale, "stage": "trained", "clip": clip,
                    "final_metric": result.final_metric, "metric": result.metric_name,
                    "chance": result.chance, "diverged": result.diverged,
                    "max_grad_norm": max(norms) if norms else math.nan,
                    "record": measure_model(result.model, result.task,
                                            batch_size=cfg.measure_batch)})
    finally:
        torch.set_num_threads(threads)
    out = {"config": {k: (list(v) if isinstance(v, tuple) else v)
                      for k, v in cfg.__dict__.items()},
           "conditions": conditions, "seconds": time.perf_counter() - began}
    if cfg.out_dir is not None:
        write_outputs(out, Path(cfg.out_dir))
    return out


def write_outputs(out: dict, folder: Path) -> dict[str, Path]:
    """Write ``gradflow.json`` and the figure ``gradflow.png`` of a gradient-flow experiment into ``folder``; returns their paths."""
    from rnnlab.lab.report.figures import gradflow_figure

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "gradflow.json", "figure": folder / "gradflow.png"}
    paths["json"].write_text(json.dumps(out, indent=1, default=_json_default))
    cfg = out["config"]
    gradflow_figure([(c["label"], c["record"]) for c in out["conditions"]], paths["figure"],
                    title=f"{cfg['cell']}, hidden {cfg['hidden']}, T = {cfg['seq_len']} "
                          f"({cfg['task']})")
    out["files"] = {k: str(v) for k, v in paths.items()}
    return paths


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _e(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.1e}"


def _radius(value) -> str:
    return "—" if value is None else f"{value:.3f}"  # None: no recurrent matrix (min cells)


def format_table(out: dict) -> str:
    """The terminal table: one row per condition."""
    cfg = out["config"]
    rows = []
    first = headline(out["conditions"][0]["record"])
    ks = first["k"]
    label_width = max(len(c["label"]) for c in out["conditions"])
    head = (f"{'condition':<{label_width}}  " + "".join(f"{'k=' + str(k):>9}" for k in ks)
            + f"{'k0/kT':>9}{'ρ(' + (out['conditions'][0]['record']['candidate'] or '—') + ')':>8}"
            + f"{'σmax(J)':>9}{'metric':>9}")
    rows.append(f"gradflow: {cfg['cell']}, hidden {cfg['hidden']}, T = {cfg['seq_len']}, "
                f"task {cfg['task']}; ‖∂L/∂h_k‖ for a loss at the last step (k = T)")
    rows.append(head)
    for c in out["conditions"]:
        h = headline(c["record"])
        metric = c.get("final_metric")
        metric_text = "—" if metric is None else f"{metric:.4f}"
        if c.get("diverged"):
            metric_text = "diverged"
        rows.append(f"{c['label']:<{label_width}}  " + "".join(f"{_e(v):>9}" for v in h["norm_at_k"])
                    + f"{_e(h['decay_ratio']):>9}{_radius(h['radius']):>8}{h['sigma_max']:>9.3f}"
                    + f"{metric_text:>9}")
    rows.append("k0/kT: ‖∂L/∂h_0‖ / ‖∂L/∂h_T‖ (≪ 1: vanishing, ≫ 1: exploding); ρ: spectral "
                "radius of the candidate block of W_hh; σmax(J): mean largest singular value of "
                "the step Jacobian ∂s_t/∂s_{t−1}")
    return "\n".join(rows)
