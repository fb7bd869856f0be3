"""One-to-many: draw a digit's eight rows from its class label alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.lab.tasks.base import Task
from rnnlab.lab.tasks.digits_data import digits_split


class DigitDrawTask(Task):
    """Generate the rows of a handwritten digit from its label.

    Input ``x`` (B, 10): the one-hot class of a digit image drawn from the split. Target ``y``
    (8, B, 8): that image's rows, pixels in [0, 1]. The model reads ``x`` once and emits one
    row per step. One-to-many; loss and metric: mean squared error per pixel (lower is
    better).

    Chance: predicting the mean training image whatever the label; its MSE on the test split
    is computed from the data (about 0.074). Because the label does not fix the handwriting, no
    model reaches 0: the floor is the MSE of predicting each class's mean training image
    (:attr:`floor`, about 0.044).

    Args:
        seq_len: must be 8 (or None): the number of rows.
        train_size: use only the first ``train_size`` training images.
    """

    name = "digit-draw"
    shape = "one-to-many"
    target = "real"
    metric_name = "mse"
    higher_is_better = False
    synthetic = False
    default_seq_len = 8

    def __init__(self, seq_len: int | None = None, train_size: int | None = None):
        if seq_len not in (None, 8):
            raise ValueError(f"seq_len: a digit has 8 rows, got {seq_len}")
        super().__init__(8, train_size)
        self.input_size = 10
        self.output_size = 8
        train_images, train_labels = digits_split("train", train_size)
        test_images, test_labels = digits_split("test")
        self.mean_image = train_images.mean(0)
        self.class_means = torch.stack([train_images[train_labels == k].mean(0)
                                        if (train_labels == k).any() else self.mean_image
                                        for k in range(10)])
        self.chance = float(((test_images - self.mean_image) ** 2).mean())
        self.floor = float(((test_images - self.class_means[test_labels]) ** 2).mean())

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        images, labels = digits_split(split, self.train_size)
        index = torch.randint(len(labels), (batch_size,), generator=generator)
        x = F.one_hot(labels[index], 10).float()
        y = images[index].transpose(0, 1).contiguous()  # (8 rows, B, 8 pixels)
        return x, y

    def evaluation_batch(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The whole test split (360 images), in order."""
        images, labels = digits_split("test")
        return F.one_hot(labels, 10).float(), images.transpose(0, 1).contiguous()

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        return self.mean_image.unsqueeze(1).expand_as(y).clone()
