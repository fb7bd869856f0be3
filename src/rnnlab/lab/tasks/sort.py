"""seq2seq: sort a sequence of symbols (Vinyals et al. 2015 use sorting to probe
sequence-to-sequence models)."""

from __future__ import annotations

from torch import Tensor

from rnnlab.lab.tasks.seq2seq import SymbolSeq2SeqTask


class SortTask(SymbolSeq2SeqTask):
    """Output the input symbols in ascending order: ``y = sorted(x)``.

    The encoder only has to count each symbol, order does not matter, and the decoder writes
    the counts out. See :class:`~rnnlab.lab.tasks.seq2seq.SymbolSeq2SeqTask` for shapes and
    metric. Chance: 1 / vocab for a uniformly random guess; sorted outputs are predictable
    from the position alone (small symbols first), so a model that ignores the input but
    knows the position does better: that prior is the first thing a decoder learns.
    """

    name = "sort"

    def transform(self, x: Tensor) -> Tensor:
        return x.sort(dim=0).values
