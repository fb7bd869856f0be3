"""scikit-learn's handwritten digits (``load_digits``: 1797 images of 8×8 pixels, 10 classes,
shipped inside scikit-learn, so nothing is downloaded), split once into train and test.

The split is fixed: stratified, 80 % train / 20 % test, ``random_state=0``, so every task
that reads the digits sees the same 1437 training and 360 test images. Pixel values are
scaled from 0…16 to 0…1.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

TEST_FRACTION = 0.2
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _load() -> dict[str, tuple[Tensor, Tensor]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = data.images.astype("float32") / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(images, data.target, test_size=TEST_FRACTION,
                                              random_state=SPLIT_SEED, stratify=data.target)
    return {"train": (torch.from_numpy(x_tr), torch.from_numpy(y_tr).long()),
            "test": (torch.from_numpy(x_te), torch.from_numpy(y_te).long())}


def digits_split(split: str, train_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Images (N, 8, 8) in [0, 1] and labels (N,) of ``split``; ``train_size`` keeps the first
    that many training images (the split is already shuffled), for small-data experiments."""
    images, labels = _load()[split]
    if split == "train" and train_size is not None:
        if train_size > len(labels):
            raise ValueError(f"train_size: the digits have {len(labels)} training images, "
                             f"got {train_size}")
        images, labels = images[:train_size], labels[:train_size]
    return images, labels
