"""Layers under :func:`torch.autocast`, with torch.nn's dtype rules.

Under autocast torch.nn's recurrent layers compute in autocast's lower-precision dtype
(float16 or bfloat16; input, states and weights cast to it) on CUDA for every family and on the
CPU for the LSTM and the RNN, while the CPU GRU keeps its own dtype. rnnlab's layers follow the
same rule on every engine: the input, the states and the parameters are cast once, at the
layer's boundary, and the engine runs with autocast off, so every engine computes the same
function. Families torch.nn lacks (SRU, minGRU, minLSTM) take the lower-precision dtype.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.nn.utils.rnn import PackedSequence

from rnnlab.layers.sequence import Batch

# (device type, family) that torch.nn runs in its own dtype under autocast
KEEPS_DTYPE = {("cpu", "GRU")}


def compute_dtype(layer, x) -> torch.dtype | None:
    """The dtype ``layer`` computes in under autocast for an input ``x``, or None when autocast
    is off for ``x``'s device."""
    device = x.device.type
    if device == "meta" or not torch.is_autocast_enabled(device):  # no autocast on meta
        return None
    if (device, layer.family) in KEEPS_DTYPE:
        return x.dtype
    return torch.get_autocast_dtype(device)


def cast_batch(batch: Batch, dtype: torch.dtype) -> Batch:
    """The batch with its input (tensor and packed data) cast to ``dtype``; lengths unchanged."""
    packed = batch.packed
    if packed is not None:
        packed = PackedSequence(packed.data.to(dtype), packed.batch_sizes,
                                packed.sorted_indices, packed.unsorted_indices)
    return Batch(batch.x.to(dtype), batch.lengths, packed)


@contextmanager
def computing_in(layer, dtype: torch.dtype, device_type: str):
    """Autocast off, and ``layer.cell_params`` cast to ``dtype`` (a differentiable cast: the
    gradients reach the parameters in their own dtype)."""
    layer._compute_dtype = dtype
    try:
        with torch.autocast(device_type, enabled=False):
            yield
    finally:
        layer._compute_dtype = None
