"""What the cpu engine's per-family autograd Functions share: contiguous arguments, the C++
loops' (T, B) masks, the empty tensors that stand for outputs a configuration lacks, and the
activations and regulariser masks as the C++ ops take them."""

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


def kernel_acts(*acts) -> list[float]:
    """Activations (:class:`rnnlab.activations.Activation`) as the C++ ops take them: the
    ``(code, alpha, beta)`` of each in one list (``csrc/activations.h``)."""
    return [float(v) for act in acts for v in act.kernel_args]


def mask_args(masks, *names: str) -> tuple:
    """The fields ``names`` of a :class:`rnnlab.regularisers.Masks` (None when ``masks`` is)."""
    return tuple(None if masks is None else getattr(masks, name) for name in names)
