"""scikit-learn's handwritten digits (``load_digits``: 1797 images of 8×8 pixels, 10 classes,
shipped inside scikit-learn, so nothing is downloaded), split once into train and test.

The split is fixed: stratified, 80 % train / 20 % test, ``random_state=0``, so every task
that reads the digits sees the same 1437 training and 360 test images. Pixel values are
scaled from 0…16 to 0…1.
"""

from __future__ import annotations

from functools import lru_cache

from torch import Tensor

from rnnlab.lab.tasks.image_split import stratified_split, take

TEST_FRACTION = 0.2
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _load() -> dict[str, tuple[Tensor, Tensor]]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return stratified_split(data.images.astype("float32") / 16.0, data.target, TEST_FRACTION,
                            SPLIT_SEED)


def digits_split(split: str, train_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Images (N, 8, 8) in [0, 1] and labels (N,) of ``split``; ``train_size`` keeps the first
    that many training images (the split is already shuffled), for small-data experiments."""
    return take(_load(), split, train_size, "the digits have")
