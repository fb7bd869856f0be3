"""Polyphonic music: predict the next chord of a piano roll (Boulanger-Lewandowski et al.
2012), the benchmark of Chung et al. (2014), Pascanu et al. (2013) and Bai et al. (2018)."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.lab.tasks.base import Task
from rnnlab.lab.tasks.music_data import DATASETS, KEYS, music_split

PAD = -1.0  # target value of a padded step (every key), which is not scored
DEFAULT_LENGTHS = {"jsb": 128, "nottingham": 256}  # JSB: whole sequences; Nottingham: windows
EVAL_SPLITS = ("test", "valid")


class MusicTask(Task):
    """Predict the notes of step t + 1 from the piano roll up to step t.

    Data: the published splits of ``dataset`` (``"jsb"``: JSB Chorales, 229 training / 77
    test sequences of 25–160 steps; ``"nottingham"``: 694 / 170 of 40–1793 steps), see
    :mod:`rnnlab.lab.tasks.music_data`. A training batch is B sequences drawn at random, each
    cropped to a random window of at most T + 1 steps, ``x`` (T, B, 88) the first steps and
    ``y`` (T, B, 88) the next ones, T the longest window of the batch; steps past the end of
    a shorter sequence are padded (x 0, y −1) and not scored. Many-to-many, aligned, causal.

    Loss and metric (Bai et al. 2018, ``music_test.py``): the Bernoulli negative
    log-likelihood of the 88 keys, summed over the keys and averaged over the scored time
    steps of all sequences,

        NLL = −(1 / Σ_i T_i) Σ_i Σ_t Σ_k [y_tk log σ(z_tk) + (1 − y_tk) log(1 − σ(z_tk))]

    in nats per time step (lower is better). Evaluation scores the whole test split (or the
    validation split, ``eval_split="valid"``), every sequence complete.

    Chance: the best predictor that ignores the input, an independent Bernoulli per key with
    the key's frequency p_k in the training frames; its test NLL is :attr:`chance` (JSB
    about 11.1, Nottingham about 10.3 nats). A coin flip per key scores 88 ln 2 ≈ 61.0
    (:attr:`uniform_nll`).

    Args:
        seq_len: T, the longest training window (default: JSB 128, i.e. whole sequences;
            Nottingham 256).
        train_size: use only the first ``train_size`` training sequences.
        dataset: ``"jsb"`` or ``"nottingham"``.
        eval_split: ``"test"`` (default) or ``"valid"``, what an evaluation scores.
    """

    name = "music"
    shape = "many-to-many"
    target = "real"
    metric_name = "nll"
    higher_is_better = False
    causal = True
    synthetic = False

    def __init__(self, seq_len: int | None = None, train_size: int | None = None,
                 dataset: str = "jsb", eval_split: str = "test"):
        if dataset not in DATASETS:
            raise ValueError(f"dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
        if eval_split not in EVAL_SPLITS:
            raise ValueError(f"eval_split: expected one of {EVAL_SPLITS}, got {eval_split!r}")
        super().__init__(DEFAULT_LENGTHS[dataset] if seq_len is None else seq_len, train_size)
        self.dataset, self.eval_split = dataset, eval_split
        train = music_split(dataset, "train")
        if train_size is not None and train_size > len(train):
            raise ValueError(f"train_size: {dataset} has {len(train)} training sequences, "
                             f"got {train_size}")
        self.rolls = {"train": train[:train_size] if train_size else train,
                      "test": music_split(dataset, eval_split)}
        self.input_size = self.output_size = KEYS
        self.key_frequency = key_frequency(dataset)
        self.chance = baseline_nll(dataset, eval_split)
        self.uniform_nll = KEYS * math.log(2)

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        rolls = self.rolls[split]
        index = torch.randint(len(rolls), (batch_size,), generator=generator)
        offsets = torch.rand(batch_size, generator=generator)
        windows = []
        for i, u in zip(index.tolist(), offsets.tolist()):
            roll = rolls[i]
            start = int(u * max(len(roll) - self.seq_len - 1, 0) + 0.5)
            windows.append(roll[start:start + self.seq_len + 1])
        return _pad(windows, max(len(w) for w in windows) - 1)

    def evaluation_batch(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Every sequence of the evaluation split, whole, padded to the longest (``size`` is
        ignored: the metric is exact)."""
        rolls = self.rolls["test"]
        return _pad(rolls, max(len(r) for r in rolls) - 1)

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        scored = y[..., 0] != PAD
        nll = F.binary_cross_entropy_with_logits(pred, y.clamp_min(0.0), reduction="none")
        return (nll.sum(-1) * scored).sum() / scored.sum().clamp_min(1)

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.logit(self.key_frequency).expand(y.shape).clone()


@lru_cache(maxsize=8)
def key_frequency(dataset: str) -> Tensor:
    """Each key's frequency (88,) over the training frames of ``dataset``, kept inside
    [1e-4, 1 − 1e-4] so that its log-likelihood stays finite."""
    return torch.cat(music_split(dataset, "train")).mean(0).clamp(1e-4, 1 - 1e-4)


@lru_cache(maxsize=8)
def baseline_nll(dataset: str, split: str) -> float:
    """The NLL per time step on ``split`` of the input-blind predictor that gives each key its
    training frequency (what :attr:`MusicTask.chance` holds)."""
    rolls = music_split(dataset, split)
    p = key_frequency(dataset)
    frames = torch.cat([roll[1:] for roll in rolls])  # every scored step: all but the first
    nll = -(frames * p.log() + (1 - frames) * (1 - p).log()).sum(-1)
    return float(nll.mean())


def _pad(windows, length: int) -> tuple[Tensor, Tensor]:
    """``x`` (length, B, 88) and ``y`` (length, B, 88) from rolls of at most length + 1 steps:
    ``x`` the steps but the last, ``y`` the steps but the first, padded with 0 and PAD."""
    x = torch.zeros(length, len(windows), KEYS)
    y = torch.full((length, len(windows), KEYS), PAD)
    for b, roll in enumerate(windows):
        n = len(roll) - 1
        x[:n, b], y[:n, b] = roll[:-1], roll[1:]
    return x, y
