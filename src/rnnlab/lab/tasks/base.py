"""What every lab task shares: its shape, sizes, data interface, loss, metric and chance level.

A task is a small object that draws batches on demand from a :class:`torch.Generator` (so a
training run is reproducible, and resumable from the generator's saved state) and knows how
to score a prediction. Conventions, the same for every task (time-major like rnnlab's layers):

* inputs ``x``: float ``(T, B, input_size)`` when ``token_input`` is False, integer symbols
  ``(T, B)`` in ``[0, input_size)`` when it is True. A one-to-many task gives one vector
  ``(B, input_size)``.
* targets ``y``: for ``target == "class"`` integer classes in ``[0, output_size)`` (``-100``
  marks a position that is not scored), for ``target == "real"`` floats.
  many-to-one and one-to-one: ``(B,)`` classes or ``(B, output_size)`` reals;
  many-to-many, seq2seq, one-to-many: ``(T_out, B)`` classes or ``(T_out, B, output_size)``.
* predictions: what :class:`rnnlab.lab.model.SequenceModel` returns, i.e. logits
  ``(..., output_size)`` for classes and values shaped like ``y`` for reals.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SHAPES = ("many-to-one", "many-to-many", "seq2seq", "one-to-many", "one-to-one")
SPLITS = ("train", "test")
IGNORE = -100  # target value of a position that is not scored (torch's ignore_index)

# Seed of the fixed pool of training examples a synthetic task keeps when train_size is set.
POOL_SEED = 1_234_567


class Task:
    """Base class of the lab's tasks.

    Class attributes a task sets:
        name: registry name (``"adding"``, ``"digits"``, …).
        shape: one of :data:`SHAPES`.
        target: ``"class"`` (cross-entropy on logits) or ``"real"`` (mean squared error).
        metric_name: what :meth:`metric` returns (``"mse"``, ``"accuracy"``, ``"bpc"``, …).
        higher_is_better: direction of the metric.
        token_input: inputs are integer symbols (embedded by the model) rather than floats.
        causal: the target at step t is (part of) the input at a later step, so a backward
            direction would read the answer; the model refuses ``bidirectional`` for it.
    Instance attributes set by ``__init__``:
        seq_len: input length T (for one-to-many: the output length).
        output_len: length of the output sequence (seq2seq, one-to-many, many-to-many).
        input_size, output_size: features (or vocabulary size) in and classes (or values) out.
        chance: the metric of a predictor that ignores the input, as the task's docstring
            derives it; :meth:`chance_prediction` realises it.
        train_size: cap on the number of distinct training examples (None: unlimited for
            generated tasks, the whole training split for data sets).
    """

    name: str = ""
    shape: str = ""
    target: str = "real"
    metric_name: str = "mse"
    higher_is_better: bool = False
    token_input: bool = False
    causal: bool = False
    default_seq_len: int = 1

    def __init__(self, seq_len: int | None = None, train_size: int | None = None):
        seq_len = self.default_seq_len if seq_len is None else seq_len
        _check_positive_int("seq_len", seq_len)
        if train_size is not None:
            _check_positive_int("train_size", train_size)
        self.seq_len: int = seq_len
        self.output_len: int = seq_len
        self.train_size: int | None = train_size
        self.input_size: int = 0
        self.output_size: int = 0
        self.chance: float = math.nan
        self._pool: tuple[Tensor, Tensor] | None = None

    # ---- data -------------------------------------------------------------------------------
    def batch(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``(x, y)`` for ``split`` (``"train"`` or ``"test"``) from ``generator``.

        Everything random comes from ``generator``, so the same generator state gives the same
        batch. With ``train_size`` set, training batches are drawn (with replacement) from a
        fixed pool of that many examples; test batches are never capped.
        """
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        _check_positive_int("batch_size", batch_size)
        if split == "train" and self.train_size is not None and self.synthetic:
            if self._pool is None:
                pool_gen = torch.Generator().manual_seed(POOL_SEED)
                self._pool = self.sample(split, self.train_size, pool_gen)
            index = torch.randint(self.train_size, (batch_size,), generator=generator)
            return self.select(self._pool, index)
        return self.sample(split, batch_size, generator)

    synthetic: bool = True  # examples are generated (False: drawn from a finite data set)

    def evaluation_batch(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The examples an evaluation scores: ``size`` test examples drawn from ``generator``,
        or, for a task whose test split is a small finite set, that whole set (``size`` is
        then ignored) so the metric is exact."""
        return self.batch("test", size, generator)

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw a fresh batch: what a task implements (the split may be ignored by a
        generated task, whose train and test distributions are the same)."""
        raise NotImplementedError

    def select(self, pool: tuple[Tensor, Tensor], index: Tensor) -> tuple[Tensor, Tensor]:
        """Pick examples ``index`` of a pooled batch (batch dimension by the shape rules)."""
        x, y = pool
        return x.index_select(self.batch_dim(x, "x"), index), y.index_select(self.batch_dim(y, "y"), index)

    def batch_dim(self, t: Tensor, which: str) -> int:
        """The batch dimension of an input (``which="x"``) or target (``"y"``) tensor."""
        if which == "x":
            return 0 if self.shape == "one-to-many" else 1
        return 0 if self.shape in ("many-to-one", "one-to-one") else 1

    # ---- scoring ----------------------------------------------------------------------------
    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Training loss: mean cross-entropy over scored positions for classes, mean squared
        error for reals."""
        if self.target == "class":
            return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1),
                                   ignore_index=IGNORE)
        return F.mse_loss(pred, y)

    def metric(self, pred: Tensor, y: Tensor) -> float:
        """The task's metric (see ``metric_name``); the default is the loss as a float."""
        return self.loss(pred, y).detach().item()

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        """A prediction that ignores the input and scores :attr:`chance` (in expectation).
        ``y`` is only read for its shape."""
        raise NotImplementedError

    # ---- description ------------------------------------------------------------------------
    def describe(self) -> dict:
        """A JSON-able summary (for reports and checkpoints)."""
        return {"name": self.name, "shape": self.shape, "seq_len": self.seq_len,
                "output_len": self.output_len, "input_size": self.input_size,
                "output_size": self.output_size, "token_input": self.token_input,
                "target": self.target, "metric": self.metric_name,
                "higher_is_better": self.higher_is_better, "chance": self.chance,
                "train_size": self.train_size}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(seq_len={self.seq_len}, "
                f"metric={self.metric_name}, chance={self.chance:.4g})")


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Fraction of scored positions (``y != -100``) whose argmax is the target."""
    scored = y != IGNORE
    hits = (logits.argmax(-1) == y) & scored
    return float(hits.sum()) / max(int(scored.sum()), 1)


def uniform_logits(y: Tensor, classes: int) -> Tensor:
    """Zero logits (the uniform distribution) for every position of ``y``: cross-entropy
    exactly ``log(classes)``."""
    return torch.zeros(*y.shape, classes)


def random_logits(y: Tensor, classes: int, seed: int = 0) -> Tensor:
    """Random logits for every position of ``y``: a uniformly random guess, whose expected
    accuracy is ``1 / classes`` whatever the distribution of the targets."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*y.shape, classes, generator=generator)


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
