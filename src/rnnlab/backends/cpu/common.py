"""What the cpu engine's per-family autograd Functions share: contiguous arguments, the C++
loops' (T, B) masks, and the empty tensors that stand for outputs a configuration lacks."""

from __future__ import annotations

import torch


def contiguous(t):
    """``t`` contiguous, None kept."""
    return None if t is None else t.contiguous()


def mask2d(mask):
    """(T, B, 1) bool -> contiguous (T, B) bool, as the C++ loops read it."""
    return None if mask is None else mask.reshape(mask.shape[0], mask.shape[1]).contiguous()


def mask3d(mask):
    """The C++ loops' (T, B) mask back to the reference engine's (T, B, 1)."""
    return None if mask is None else mask.unsqueeze(-1)


def none_if_empty(t):
    """Empty tensors stand for outputs a configuration does not produce."""
    return None if t is None or t.numel() == 0 else t


def needs_graph(*tensors) -> bool:
    """Whether autograd will need gradients of any of ``tensors``."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def regularised_unsupported(layer) -> str | None:
    """The layer's options this engine's kernels do not compute yet (non-default activations,
    regularisers that change the function), or None."""
    return layer.reference_only_reason()
