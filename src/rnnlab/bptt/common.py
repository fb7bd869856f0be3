"""Small helpers shared by every hand-derived BPTT: masking of padded steps, flat GEMMs, the
forward's cache on the autograd context, and the hand-off to the autograd twin
(:mod:`rnnlab.bptt.unrolled`) for second derivatives and torch's transforms."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.activations import SIGMOID, TANH, Activation
from rnnlab.transforms import needing_plain_ops


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


def activation_into(act: Activation):
    """A function ``f(src, out=out)`` writing ``φ(src)`` into ``out``: ``torch.sigmoid`` and
    ``torch.tanh`` themselves for σ and tanh (one fused call), else ``φ`` and a copy."""
    fused = {SIGMOID: torch.sigmoid, TANH: torch.tanh}.get(act)
    return fused or (lambda src, out: out.copy_(act(src)))


def save_cache(ctx, cache: tuple, inputs: tuple = ()) -> None:
    """Keep a forward's cache on ``ctx``, and the Function's ``inputs`` for a second derivative
    (:func:`differentiate_twin`): tensors through ``save_for_backward`` (freed after the
    backward unless the graph is retained; in-place changes to them are detected), the rest as
    plain attributes."""
    ctx.save_for_backward(*(c if isinstance(c, Tensor) else None for c in (*cache, *inputs)))
    ctx.cache_rest = tuple(None if isinstance(c, Tensor) else c for c in cache)
    ctx.inputs_rest = tuple(None if isinstance(c, Tensor) else c for c in inputs)


def saved_cache(ctx) -> tuple:
    """The cache stored by :func:`save_cache`."""
    return tuple(r if s is None else s for s, r in zip(ctx.saved_tensors, ctx.cache_rest))


def hand_or_unrolled(function, twin, *args):
    """``function.apply(*args)`` (the hand-derived BPTT), or the autograd twin ``twin(*args)``
    where autograd must see every operation (:func:`rnnlab.transforms.needing_plain_ops`)."""
    if needing_plain_ops() is not None:
        return twin(*args)
    return function.apply(*args)


def differentiate_twin(ctx, twin, grads: tuple) -> tuple:
    """A Function's backward under ``create_graph=True``: the gradients of its inputs as a
    graph autograd can differentiate again, from its autograd twin re-run on the saved inputs
    (:func:`save_cache`). The first derivative equals the hand backward's to rounding."""
    saved = ctx.saved_tensors[len(ctx.cache_rest):]
    inputs = tuple(r if s is None else s for s, r in zip(saved, ctx.inputs_rest))
    wrt = [i for i, need in enumerate(ctx.needs_input_grad) if need]
    with torch.enable_grad():
        outputs = twin(*inputs)
    got = torch.autograd.grad(outputs, [inputs[i] for i in wrt], grads, create_graph=True,
                              allow_unused=True)
    result = [None] * len(inputs)
    for i, g in zip(wrt, got):
        result[i] = g
    return tuple(result)
