"""The fixed train/test split shared by the image data sets the lab ships (digits, MNIST)."""

from __future__ import annotations

import torch
from torch import Tensor


def stratified_split(images, labels, test_size, seed: int) -> dict[str, tuple[Tensor, Tensor]]:
    """numpy ``images`` and ``labels`` split once, stratified by label (scikit-learn's
    ``train_test_split``; ``test_size`` a fraction or a count), as tensors per split."""
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=test_size,
                                              random_state=seed, stratify=labels)
    return {"train": (torch.from_numpy(x_tr), torch.from_numpy(y_tr).long()),
            "test": (torch.from_numpy(x_te), torch.from_numpy(y_te).long())}


def take(splits: dict, split: str, train_size: int | None, what: str) -> tuple[Tensor, Tensor]:
    """``(images, labels)`` of ``split``; ``train_size`` keeps the first that many training
    images (the split is already shuffled), for small-data experiments."""
    images, labels = splits[split]
    if split == "train" and train_size is not None:
        if train_size > len(labels):
            raise ValueError(f"train_size: {what} {len(labels)} training images, "
                             f"got {train_size}")
        images, labels = images[:train_size], labels[:train_size]
    return images, labels
