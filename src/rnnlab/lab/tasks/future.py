"""A task where the future matters: tag each position with a symbol that comes later, so only
a bidirectional layer (Schuster & Paliwal 1997) can solve it."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import IGNORE, Task, accuracy, random_logits


class FutureTagTask(Task):
    """Label each position with the symbol ``offset`` steps ahead: ``y[t] = x[t + offset]``.

    ``x`` (T, B) symbols drawn uniformly from ``[0, vocab)``; ``y`` (T, B) the symbol
    ``offset`` steps later, and ``-100`` (not scored) on the last ``offset`` positions, which
    have no such symbol. Many-to-many, aligned; loss cross-entropy; metric per-position
    accuracy over the scored positions (higher is better).

    Chance: 1 / vocab. The symbols are independent, so nothing up to step t says anything
    about step ``t + offset``: a unidirectional layer is stuck exactly at chance, while the
    backward direction of a bidirectional layer has read the answer ``offset`` steps earlier
    and can reach accuracy 1.

    Args:
        seq_len: T (default 20, more than ``offset``).
        train_size: cap on distinct training sequences.
        vocab: number of symbols (default 8).
        offset: how far ahead the tag is read (default 2).
    """

    name = "future"
    shape = "many-to-many"
    target = "class"
    metric_name = "accuracy"
    higher_is_better = True
    token_input = True
    default_seq_len = 20

    def __init__(self, seq_len: int | None = None, train_size: int | None = None,
                 vocab: int = 8, offset: int = 2):
        super().__init__(seq_len, train_size)
        if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab < 2:
            raise ValueError(f"vocab: expected an integer >= 2, got {vocab!r}")
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 < offset < self.seq_len:
            raise ValueError(f"offset: expected an integer in [1, seq_len), got {offset!r}")
        self.vocab, self.offset = vocab, offset
        self.input_size = self.output_size = vocab
        self.chance = 1.0 / vocab

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = torch.randint(self.vocab, (self.seq_len, batch_size), generator=generator)
        y = torch.full_like(x, IGNORE)
        y[:-self.offset] = x[self.offset:]
        return x, y

    def metric(self, pred: Tensor, y: Tensor) -> float:
        return accuracy(pred, y)

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        return random_logits(y, self.output_size)
