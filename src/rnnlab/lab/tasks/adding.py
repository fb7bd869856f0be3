"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4), in the form of Le et al.
(2015) and Arjovsky et al. (2016): a long-range dependency with a real-valued answer."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import Task


class AddingTask(Task):
    """Sum two marked numbers in a sequence of length T.

    Input ``x`` (T, B, 2): channel 0 holds values drawn from U(0, 1), channel 1 is 0 except
    at two positions, one drawn uniformly in the first half ``[0, T//2)`` and one in the second
    half ``[T//2, T)``, where it is 1. Target ``y`` (B, 1): the sum of the two marked values.
    Many-to-one; loss and metric: mean squared error (lower is better).

    Chance: a model that ignores the input predicts the mean of the target, E[u1 + u2] = 1,
    and scores its variance, Var(u1 + u2) = 2 · Var(U(0, 1)) = 2/12 = 1/6 ≈ 0.167 (the
    baseline every paper quotes). The dependency spans about T/2 steps, which is what makes a
    tanh RNN fail as T grows.

    Args:
        seq_len: T (default 100, at least 2).
        train_size: optional cap on distinct training sequences.
    """

    name = "adding"
    shape = "many-to-one"
    target = "real"
    metric_name = "mse"
    higher_is_better = False
    default_seq_len = 100

    def __init__(self, seq_len: int | None = None, train_size: int | None = None):
        super().__init__(seq_len, train_size)
        if self.seq_len < 2:
            raise ValueError(f"seq_len: the adding problem needs T >= 2, got {self.seq_len}")
        self.input_size = 2
        self.output_size = 1
        self.chance = 1.0 / 6.0

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        T, half = self.seq_len, self.seq_len // 2
        values = torch.rand(T, batch_size, generator=generator)
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, T, (batch_size,), generator=generator)
        marks = torch.zeros(T, batch_size)
        cols = torch.arange(batch_size)
        marks[first, cols] = 1.0
        marks[second, cols] = 1.0
        x = torch.stack([values, marks], dim=-1)
        y = (values[first, cols] + values[second, cols]).unsqueeze(-1)
        return x, y

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.ones_like(y)
