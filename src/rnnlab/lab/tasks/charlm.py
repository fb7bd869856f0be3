"""Character-level language model (Karpathy's char-rnn, at toy scale) on a public-domain text
that ships with the package."""

from __future__ import annotations

import math
from importlib import resources

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import Task, uniform_logits

TEXTS = ("sonnets",)  # files in rnnlab/lab/data/, see its README.txt for provenance
TEST_FRACTION = 0.1


def load_text(name: str = "sonnets") -> str:
    """The text ``name`` from ``rnnlab/lab/data/<name>.txt``."""
    if name not in TEXTS:
        raise ValueError(f"text: expected one of {TEXTS}, got {name!r}")
    return resources.files("rnnlab.lab").joinpath("data", f"{name}.txt").read_text("utf-8")


class CharLMTask(Task):
    """Predict each next character of a text.

    The text (13 of Shakespeare's Sonnets, about 8 KB, see ``rnnlab/lab/data/README.txt``)
    is split once: the first 90 % trains, the last 10 % tests. A batch is B windows of
    ``T + 1`` characters at random offsets of the split: ``x`` (T, B) the character indices of
    the first T, ``y`` (T, B) those of the last T (the next character at every step).
    Many-to-many, aligned; loss cross-entropy in nats; metric bits per character
    (cross-entropy / ln 2, lower is better).

    Chance: log2(V) bits per character, V the vocabulary size (the characters of the text,
    about 55): the uniform guess. A model that only learns character frequencies gets the
    unigram entropy, :attr:`unigram_bpc` (about 4.2 bits), a stronger baseline that any model
    using context must beat. ``causal``: the target at t is the input at t + 1, so a
    bidirectional model is refused.

    Args:
        seq_len: T (default 64; the test split must hold T + 1 characters).
        train_size: cap on distinct training windows.
        text: which shipped text (only ``"sonnets"`` for now).
    """

    name = "charlm"
    shape = "many-to-many"
    target = "class"
    metric_name = "bpc"
    higher_is_better = False
    token_input = True
    causal = True
    default_seq_len = 64

    def __init__(self, seq_len: int | None = None, train_size: int | None = None,
                 text: str = "sonnets"):
        super().__init__(seq_len, train_size)
        content = load_text(text)
        self.vocab = sorted(set(content))
        self.index = {ch: i for i, ch in enumerate(self.vocab)}
        codes = torch.tensor([self.index[ch] for ch in content], dtype=torch.long)
        cut = int(len(codes) * (1 - TEST_FRACTION))
        self.codes = {"train": codes[:cut], "test": codes[cut:]}
        shortest = min(len(c) for c in self.codes.values())
        if self.seq_len + 1 > shortest:
            raise ValueError(f"seq_len: the {text!r} test split holds {shortest} characters, "
                             f"so T must be at most {shortest - 1}, got {self.seq_len}")
        self.input_size = self.output_size = len(self.vocab)
        self.chance = math.log2(len(self.vocab))
        counts = torch.bincount(self.codes["train"], minlength=len(self.vocab)).double()
        p = counts[counts > 0] / counts.sum()
        self.unigram_bpc = float(-(p * p.log2()).sum())

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        codes = self.codes[split]
        T = self.seq_len
        starts = torch.randint(len(codes) - T, (batch_size,), generator=generator)
        windows = codes[starts.unsqueeze(0) + torch.arange(T + 1).unsqueeze(1)]  # (T+1, B)
        return windows[:-1].contiguous(), windows[1:].contiguous()

    def metric(self, pred: Tensor, y: Tensor) -> float:
        return self.loss(pred, y).detach().item() / math.log(2)

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        return uniform_logits(y, self.output_size)

    def decode(self, codes) -> str:
        """Characters of a sequence of indices."""
        return "".join(self.vocab[int(c)] for c in codes)

    def encode(self, text: str) -> Tensor:
        """Indices (len,) of a string made of the vocabulary's characters."""
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"text: characters {unknown} are not in the vocabulary")
        return torch.tensor([self.index[ch] for ch in text], dtype=torch.long)
