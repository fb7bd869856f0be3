"""``pack_padded_sequence`` with errors that name the argument, for use with rnnlab layers."""

from __future__ import annotations

import torch
from torch.nn.utils import rnn

from rnnlab.layers.validate import check_packed_sequence


def pack_padded_sequence(input: torch.Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> rnn.PackedSequence:
    """Same as :func:`torch.nn.utils.rnn.pack_padded_sequence`, checked first: ``lengths`` must
    hold one integer in ``[1, T]`` per sequence, in decreasing order when ``enforce_sorted``."""
    check_packed_sequence(input, lengths, batch_first, enforce_sorted)
    lengths = torch.as_tensor(lengths, dtype=torch.int64, device="cpu")
    return rnn.pack_padded_sequence(input, lengths, batch_first, enforce_sorted)
