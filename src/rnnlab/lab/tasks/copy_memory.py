"""The copy-memory task (Hochreiter & Schmidhuber 1997; the form of Arjovsky, Shah & Bengio
2016, "Unitary evolution recurrent neural networks"): remember ten symbols over a delay."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import Task, accuracy

COPY_LENGTH = 10  # symbols to remember
DATA_SYMBOLS = 8  # they are drawn from 1..8
BLANK, DELIMITER = 0, 9


class CopyMemoryTask(Task):
    """Read ten symbols, wait T steps, then write them back.

    Input ``x`` (T + 20, B) symbols: ten data symbols drawn uniformly from ``1..8``, then
    ``T - 1`` blanks (0), then the delimiter (9) telling the model to start writing, then ten
    blanks. Target ``y`` (T + 20, B): blanks for the first ``T + 10`` steps, then the ten
    data symbols. Many-to-many, aligned; loss and metric: cross-entropy in nats per step over
    all T + 20 steps, 9 classes (blank and the 8 data symbols; lower is better).
    :meth:`copy_accuracy` scores only the ten copied symbols.

    Chance: the memoryless baseline of the paper, which writes blanks until the delimiter and
    then guesses each of the ten symbols uniformly among the 8: its cross-entropy is
    ``10 · ln 8 / (T + 20)`` (0.144 at T = 100). A model that beats it clearly has
    remembered something across the delay.

    Args:
        seq_len: the delay T (default 100, at least 1); sequences have T + 20 steps.
        train_size: cap on distinct training sequences.
    """

    name = "copy"
    shape = "many-to-many"
    target = "class"
    metric_name = "xent"
    higher_is_better = False
    token_input = True
    default_seq_len = 100

    def __init__(self, seq_len: int | None = None, train_size: int | None = None):
        super().__init__(seq_len, train_size)
        self.delay = self.seq_len
        self.output_len = self.delay + 2 * COPY_LENGTH
        self.input_size = 10  # blank, 8 data symbols, delimiter
        self.output_size = 1 + DATA_SYMBOLS  # the delimiter is never a target
        self.chance = COPY_LENGTH * math.log(DATA_SYMBOLS) / (self.delay + 2 * COPY_LENGTH)

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        T, n = self.delay, COPY_LENGTH
        data = torch.randint(1, DATA_SYMBOLS + 1, (n, batch_size), generator=generator)
        x = torch.full((T + 2 * n, batch_size), BLANK, dtype=torch.long)
        x[:n] = data
        x[n + T - 1] = DELIMITER
        y = torch.full_like(x, BLANK)
        y[T + n:] = data
        return x, y

    def copy_accuracy(self, pred: Tensor, y: Tensor) -> float:
        """Accuracy on the ten copied symbols only (chance 1/8)."""
        return accuracy(pred[-COPY_LENGTH:], y[-COPY_LENGTH:])

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        logits = torch.full((*y.shape, self.output_size), -math.inf)
        logits[:-COPY_LENGTH, :, BLANK] = 0.0
        logits[-COPY_LENGTH:, :, 1:] = 0.0
        return logits
