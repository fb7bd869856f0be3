"""Turn what a user passes (tensor, batch_first, unbatched, PackedSequence, lengths) into one
time-major form for the backends, and turn the result back into what torch would return."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


@dataclass
class Batch:
    """A batch of sequences as every backend sees it.

    x: (T, B, F) time-major, padded, batch in the caller's order.
    lengths: (B,) int64 on the CPU, or None when every sequence has length T.
    packed: the caller's PackedSequence, when the input came packed.
    """

    x: Tensor
    lengths: Tensor | None = None
    packed: PackedSequence | None = None

    @property
    def mask(self) -> Tensor | None:
        """Bool (T, B, 1): True where step t belongs to sequence b."""
        if self.lengths is None:
            return None
        steps = torch.arange(self.x.shape[0]).unsqueeze(1)
        return (steps < self.lengths.unsqueeze(0)).unsqueeze(-1).to(self.x.device)

    def reverse_index(self) -> Tensor | None:
        """(T, B) gather index that reverses each sequence within its own length."""
        if self.lengths is None:
            return None
        T = self.x.shape[0]
        steps = torch.arange(T).unsqueeze(1)
        rev = self.lengths.unsqueeze(0) - 1 - steps
        return torch.where(rev >= 0, rev, steps).to(self.x.device)


def reverse_time(x: Tensor, index: Tensor | None) -> Tensor:
    """Reverse (T, B, F) in time, each sequence within its own length."""
    if index is None:
        return x.flip(0)
    return x.gather(0, index.unsqueeze(-1).expand_as(x))


def to_batch(input, lengths, batch_first: bool) -> tuple[Batch, bool]:
    """Normalise a validated input. Returns the batch and whether the input was unbatched."""
    if isinstance(input, PackedSequence):
        x, lens = pad_packed_sequence(input)
        return Batch(x, lens, packed=input), False
    unbatched = input.dim() == 2
    if unbatched:
        input = input.unsqueeze(1)
    elif batch_first:
        input = input.transpose(0, 1)
    if lengths is not None:
        lengths = torch.as_tensor(lengths, dtype=torch.int64, device="cpu")
        if bool((lengths == input.shape[0]).all()):
            lengths = None
    return Batch(input, lengths), unbatched


def from_batch(out: Tensor, batch: Batch, unbatched: bool, batch_first: bool):
    """Give the (T, B, F) output the form of the input."""
    if batch.packed is not None:
        order = batch.packed.sorted_indices
        sorted_out = out if order is None else out.index_select(1, order)
        sorted_lengths = batch.lengths if order is None else batch.lengths[order.cpu()]
        data = pack_padded_sequence(sorted_out, sorted_lengths, enforce_sorted=True).data
        return PackedSequence(data, batch.packed.batch_sizes, batch.packed.sorted_indices,
                              batch.packed.unsorted_indices)
    if unbatched:
        return out.squeeze(1)
    return out.transpose(0, 1) if batch_first else out
