"""What the encoder–decoder (seq2seq) tasks share: a sequence of symbols in, another out."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import Task, accuracy, random_logits


class SymbolSeq2SeqTask(Task):
    """Map a sequence of T random symbols to a sequence of T symbols (subclasses say how).

    ``x`` (T, B) symbols drawn uniformly from ``[0, vocab)``; ``y`` (T, B) the transformed
    sequence, produced after the whole input has been read (many-to-many, unaligned: the
    model encodes, then decodes with teacher forcing in training and greedily when it
    evaluates). Loss cross-entropy; metric per-symbol accuracy of the greedy decoding (higher
    is better).

    Chance: 1 / vocab, the accuracy of a uniformly random guess of each symbol.

    Args:
        seq_len: T (default 10).
        train_size: cap on distinct training sequences.
        vocab: number of symbols (default 8, at least 2).
    """

    shape = "seq2seq"
    target = "class"
    metric_name = "accuracy"
    higher_is_better = True
    token_input = True
    default_seq_len = 10

    def __init__(self, seq_len: int | None = None, train_size: int | None = None,
                 vocab: int = 8):
        super().__init__(seq_len, train_size)
        if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab < 2:
            raise ValueError(f"vocab: expected an integer >= 2, got {vocab!r}")
        self.vocab = vocab
        self.input_size = self.output_size = vocab
        self.chance = 1.0 / vocab

    def transform(self, x: Tensor) -> Tensor:
        """The target sequence of ``x`` (T, B)."""
        raise NotImplementedError

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = torch.randint(self.vocab, (self.seq_len, batch_size), generator=generator)
        return x, self.transform(x)

    def metric(self, pred: Tensor, y: Tensor) -> float:
        return accuracy(pred, y)

    def chance_prediction(self, x: Tensor, y: Tensor) -> Tensor:
        return random_logits(y, self.output_size)
