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


def kernel_activations(*acts) -> list[float]:
    """Activations as the C++ loops take them: ``(code, alpha, beta)`` triples, flattened
    (:attr:`rnnlab.activations.Activation.kernel_args`)."""
    return [float(v) for act in acts for v in act.kernel_args]


def mask_tensors(masks, names: tuple[str, ...]) -> tuple:
    """The regulariser masks ``names`` of a :class:`rnnlab.regularisers.Masks` (or None) as
    the C++ loops read them: contiguous (the eval expectation is an expanded constant), or
    None."""
    return tuple(None if masks is None else contiguous(getattr(masks, name)) for name in names)
