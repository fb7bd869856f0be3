"""seq2seq: reverse a sequence of symbols (Sutskever et al. 2014 reversed the source to
shorten dependencies; here reversal is the task itself)."""

from __future__ import annotations

from torch import Tensor

from rnnlab.lab.tasks.seq2seq import SymbolSeq2SeqTask


class ReverseTask(SymbolSeq2SeqTask):
    """Output the input symbols in reverse order: ``y[t] = x[T - 1 - t]``.

    The first output symbol is the last input one and the last output the first input, so
    the decoder needs the whole sequence from the encoder's summary. See
    :class:`~rnnlab.lab.tasks.seq2seq.SymbolSeq2SeqTask` for shapes, metric (per-symbol
    accuracy) and chance (1 / vocab).
    """

    name = "reverse"

    def transform(self, x: Tensor) -> Tensor:
        return x.flip(0)
