"""Small helpers shared by every hand-derived BPTT: masking of padded steps, flat GEMMs, the
forward's cache on the autograd context."""

from __future__ import annotations

import torch
from torch import Tensor


def matmul_t(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x Wᵀ + b`` for x (T, B, I) as one GEMM over all T·B rows."""
    out = x.reshape(-1, x.shape[-1]) @ weight.t()
    if bias is not None:
        out += bias
    return out.view(*x.shape[:-1], weight.shape[0])


def flat(t: Tensor) -> Tensor:
    """(T, B, F) -> (T·B, F)."""
    return t.reshape(-1, t.shape[-1])


def carry(mask: Tensor | None, t: int, new: Tensor, old: Tensor) -> Tensor:
    """``new`` where sequence b is still running at step t, else ``old``.

    ``mask`` is a bool (T, B, 1) tensor. Forward: the state after a padded step is the state
    before it. Backward: the gradient reaching ``h_{t-1}`` through a padded step is ``dh_t``.
    """
    return new if mask is None else torch.where(mask[t], new, old)


def masked(mask: Tensor | None, t: int, value: Tensor) -> Tensor:
    """``value`` on running sequences, 0 on padded steps (outputs, and gradients into a step)."""
    return value if mask is None else torch.where(mask[t], value, 0.0)


def save_cache(ctx, cache: tuple) -> None:
    """Keep a forward's cache on ``ctx``: its tensors through ``save_for_backward`` (freed after
    the backward unless the graph is retained; in-place changes to them are detected), the rest
    as plain attributes."""
    ctx.save_for_backward(*(c if isinstance(c, Tensor) else None for c in cache))
    ctx.cache_rest = tuple(None if isinstance(c, Tensor) else c for c in cache)


def saved_cache(ctx) -> tuple:
    """The cache stored by :func:`save_cache`."""
    return tuple(r if s is None else s for s, r in zip(ctx.saved_tensors, ctx.cache_rest))
