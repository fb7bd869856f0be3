"""Next-value forecasting of a real series: the yearly sunspot numbers 1700–2008 that ship
with statsmodels (``statsmodels.datasets.sunspots``)."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import Task

TEST_FRACTION = 0.2


@lru_cache(maxsize=1)
def load_sunspots() -> Tensor:
    """The 309 yearly sunspot numbers (Wolf numbers, 1700–2008), as float32."""
    from statsmodels.datasets import sunspots

    return torch.tensor(sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(), dtype=torch.float32)


class SunspotsTask(Task):
    """Predict next year's sunspot number from the years so far.

    The series is split in time: the first 80 % (1700–1946) trains, the last 20 %
    (1947–2008) tests; both are standardised with the training mean and standard deviation.
    A batch is B windows of ``T + 1`` consecutive years: ``x`` (T, B, 1) the first T values,
    ``y`` (T, B, 1) the next value at every step. Many-to-many, aligned; loss and metric: mean
    squared error on the standardised scale (lower is better).

    Chance: predicting the training mean (0 on the standardised scale) whatever the input:
    its MSE is the mean squared standardised target over all test windows, computed from the
    data
    (about 3.0: the test decades, with the strong cycles 18–23, were far more active
    than the training years). The naive
    forecaster that repeats the last value (persistence) is a much stronger baseline,
    :attr:`persistence_mse` (about 0.95); a useful model beats both. ``causal``: the target
    at t is the input at t + 1, so a bidirectional model is refused.

    Args:
        seq_len: T (default 20; the test split has 62 years, so T <= 61).
        train_size: cap on distinct training windows (the training split has 247 - T).
    """

    name = "sunspots"
    shape = "many-to-many"
    target = "real"
    metric_name = "mse"
    higher_is_better = False
    causal = True
    synthetic = False
    default_seq_len = 20

    def __init__(self, seq_len: int | None = None, train_size: int | None = None):
        super().__init__(seq_len, train_size)
        series = load_sunspots()
        cut = round(len(series) * (1 - TEST_FRACTION))
        mean, std = series[:cut].mean(), series[:cut].std()
        self.mean, self.std = float(mean), float(std)
        self.series = {"train": (series[:cut] - mean) / std, "test": (series[cut:] - mean) / std}
        for split, values in self.series.items():
            if self.seq_len + 1 > len(values):
                raise ValueError(f"seq_len: the sunspots {split} split has {len(values)} years, "
                                 f"so T must be at most {len(values) - 1}, got {self.seq_len}")
        windows = len(self.series["train"]) - self.seq_len
        if train_size is not None and train_size > windows:
            raise ValueError(f"train_size: the training split has {windows} windows of "
                             f"T + 1 = {self.seq_len + 1} years, got {train_size}")
        self.input_size = self.output_size = 1
        # Both baselines are averaged exactly as the metric is: over every test window of
        # T + 1 years (a batch draws windows uniformly), over the T targets of each.
        test = self.series["test"]
        starts = torch.arange(len(test) - self.seq_len).unsqueeze(0)
        steps = torch.arange(self.seq_len).unsqueeze(1)
        inputs, targets = test[starts + steps], test[starts + steps + 1]
        self.chance = float((targets ** 2).mean())
        self.persistence_mse = float(((targets - inputs) ** 2).mean())

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        values = self.series[split]
        T = self.seq_len
        count = len(values) - T
        if split == "train" and self.train_size is not None:
            count = self.train_size
        starts = torch.randint(count, (batch_size,), generator=generator)
        windows = values[starts.unsqueeze(0) + torch.arange(T + 1).unsqueeze(1)].unsqueeze(-1)
        return windows[:-1].contiguous(), windows[1:].contiguous()

    def evaluation_batch(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Every test window of T + 1 years, in order (the set :attr:`chance` averages over)."""
        values, T = self.series["test"], self.seq_len
        starts = torch.arange(len(values) - T)
        windows = values[starts.unsqueeze(0) + torch.arange(T + 1).unsqueeze(1)].unsqueeze(-1)
        return windows[:-1].contiguous(), windows[1:].contiguous()

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.zeros_like(y)
