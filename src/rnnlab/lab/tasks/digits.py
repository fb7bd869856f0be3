"""Sequential digits: classify a handwritten digit read one row (or one pixel) per step, the
small-scale version of sequential MNIST (Le et al. 2015)."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import Task, accuracy, random_logits
from rnnlab.lab.tasks.digits_data import digits_split


class DigitsTask(Task):
    """Classify scikit-learn's 8×8 digits read as a sequence.

    ``seq_len=8`` (default): one image row per step, ``x`` (8, B, 8). ``seq_len=64``: one
    pixel per step in raster order, ``x`` (64, B, 1), a long dependency like pixel-by-pixel
    MNIST. Target ``y`` (B,): the digit 0–9. Many-to-one; loss cross-entropy; metric accuracy
    (higher is better) on the fixed test split (360 images, see
    :mod:`rnnlab.lab.tasks.digits_data`).

    Chance: 0.1. The ten classes are balanced (each 9.9–10.2 % of the data set), so a guess
    that ignores the input (uniformly random, or always the most frequent class) is right
    about one time in ten.

    Args:
        seq_len: 8 (rows) or 64 (pixels).
        train_size: use only the first ``train_size`` training images (at most 1437).
    """

    name = "digits"
    shape = "many-to-one"
    target = "class"
    metric_name = "accuracy"
    higher_is_better = True
    synthetic = False
    default_seq_len = 8

    def __init__(self, seq_len: int | None = None, train_size: int | None = None):
        super().__init__(seq_len, train_size)
        if self.seq_len not in (8, 64):
            raise ValueError(f"seq_len: the digits are read by row (8) or by pixel (64), "
                             f"got {self.seq_len}")
        self.input_size = 64 // self.seq_len
        self.output_size = 10
        self.chance = 0.1
        digits_split("train", train_size)  # load now, so a bad train_size fails early

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        images, labels = digits_split(split, self.train_size)
        index = torch.randint(len(labels), (batch_size,), generator=generator)
        x = images[index].reshape(batch_size, self.seq_len, self.input_size).transpose(0, 1)
        return x.contiguous(), labels[index]

    def evaluation_batch(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The whole test split (360 images), in order."""
        images, labels = digits_split("test")
        x = images.reshape(len(labels), self.seq_len, self.input_size).transpose(0, 1)
        return x.contiguous(), labels.clone()

    def metric(self, pred: Tensor, y: Tensor) -> float:
        return accuracy(pred, y)

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        return random_logits(y, self.output_size)
