"""Scale the recurrent weights, to push a layer below or above the edge of stability."""

from __future__ import annotations

import torch


@torch.no_grad()
def scale_recurrent(layer, factor: float) -> None:
    """Multiply every recurrent matrix (``weight_hh_*``; SRU's ``weight_c_*``) by ``factor``
    in place. With torch's default init a tanh RNN's W_hh has spectral radius ≈ 1/√3, so a
    factor of about 1.7 brings it to 1."""
    if not factor > 0:
        raise ValueError(f"factor: expected a positive number, got {factor!r}")
    found = False
    for name, p in layer.named_parameters():
        if name.startswith(("weight_hh", "weight_c")):
            p.mul_(factor)
            found = True
    if not found:
        raise ValueError(f"scale_recurrent: {type(layer).__name__} has no recurrent weights")
