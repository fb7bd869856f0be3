"""Numerical guards of a training run: find the first non-finite value of a step and name it.

:class:`NumericGuard` watches, in the order a step makes them,

1. the training batch: NaN or inf in the inputs ``x`` or the targets ``y`` is broken data, not
   a training problem, and raises :class:`NonFiniteInputError` before anything is updated;
2. the loss, then the gradients, through their total norm before clipping (clipping would
   spread a NaN over every gradient): a non-finite norm is traced to the first parameter
   whose gradient holds NaN or inf (or reported as an overflow of finite gradients);
3. the parameters after the optimizer's update, through their total norm likewise: an update
   that makes one non-finite is undone.

Each check returns ``None`` or a one-line *fault*, e.g. ``"step 12: the gradient of
rnn.weight_hh_l0 holds 3 NaN of 1024 values"``; training then stops with the model's last
finite parameters and writes no checkpoint of that step (the last good one stays the newest).
A finite loss that grows past :data:`EXPLOSION_FACTOR` times the run's first loss is reported
once as a warning with :func:`clipping_advice`, before it overflows.

Cost per step: two reductions of the batch, the gradients' total norm (the one the history
records), a copy and a norm of the parameters; tensors are scanned one by one only after a
fault.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

EXPLOSION_FACTOR = 100.0  # a loss this many times the run's first loss is exploding


class NonFiniteInputError(ValueError):
    """A training batch holds NaN or inf: the data are broken (nothing was updated)."""


def total_norm(tensors) -> Tensor:
    """The 2-norm of all ``tensors`` together (what ``clip_grad_norm_`` measures); finite
    exactly when every element is, unless the sum of squares overflows."""
    if not tensors:
        return torch.tensor(0.0)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def count_non_finite(tensor: Tensor) -> str:
    """``"3 NaN and 1 inf of 1024 values"`` (only the kinds present)."""
    nan, inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
    kinds = " and ".join(f"{n} {kind}" for n, kind in ((nan, "NaN"), (inf, "inf")) if n)
    return f"{kinds} of {tensor.numel()} values"


def clipping_advice(clip: str, clip_value: float, lr: float) -> str:
    """What to try against exploding gradients, given the run's clipping and learning rate."""
    if clip == "none":
        return (f"try gradient clipping (--clip norm --clip-value 1.0) or a lower --lr "
                f"(now {lr:g})")
    return f"try a smaller --clip-value (now {clip_value:g}) or a lower --lr (now {lr:g})"


class NumericGuard:
    """The checks of one training run over ``model``'s parameters (see the module doc)."""

    def __init__(self, model: nn.Module):
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.warned = False

    def check_batch(self, step: int, x: Tensor, y: Tensor) -> None:
        """Raise :class:`NonFiniteInputError` when a float ``x`` or ``y`` is not finite."""
        for name, tensor in (("inputs x", x), ("targets y", y)):
            if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
                continue
            where = tuple(int(i) for i in torch.nonzero(~torch.isfinite(tensor))[0])
            raise NonFiniteInputError(
                f"step {step}: the training {name} hold {count_non_finite(tensor)} (first at "
                f"index {where} of shape {tuple(tensor.shape)}); the data are broken, nothing "
                "was updated")

    def check_gradients(self, step: int, loss: float, norm: float) -> str | None:
        """The fault of a non-finite ``loss`` or gradient, given the gradients' total ``norm``
        before clipping."""
        if not math.isfinite(loss):
            return f"step {step}: the loss is {loss}"
        if math.isfinite(norm):
            return None
        bad = self._first_non_finite((n, p.grad) for n, p in self.named if p.grad is not None)
        if bad is None:
            return f"step {step}: the total gradient norm overflowed to {norm}"
        name, grad = bad
        return f"step {step}: the gradient of {name} holds {count_non_finite(grad)}"

    @torch.no_grad()
    def update(self, step: int, optimizer: torch.optim.Optimizer) -> str | None:
        """``optimizer.step()``, undone (parameters put back) when it makes a parameter
        non-finite; returns that fault, naming the first such parameter."""
        params = [p for _, p in self.named]
        kept = [p.clone() for p in params]
        optimizer.step()
        if math.isfinite(total_norm(params).item()):
            return None
        bad = self._first_non_finite(self.named)
        if bad is None:  # huge but finite parameters overflowed the norm
            return None
        name, param = bad
        fault = (f"step {step}: the update made the parameter {name} non-finite "
                 f"({count_non_finite(param)}); the update was undone")
        for p, before in zip(params, kept):
            p.copy_(before)
        return fault

    @staticmethod
    def _first_non_finite(named) -> tuple[str, Tensor] | None:
        return next(((n, t) for n, t in named if not bool(torch.isfinite(t).all())), None)

    def watch_loss(self, step: int, loss: float, first_loss: float, advice: str) -> None:
        """Warn once when a finite ``loss`` exceeds :data:`EXPLOSION_FACTOR` times the run's
        ``first_loss``."""
        if self.warned or not math.isfinite(loss) or not loss > EXPLOSION_FACTOR * first_loss:
            return
        self.warned = True
        logger.warning("step %d: the loss %.4g is over %g× the first step's %.4g, the "
                       "gradients are exploding; %s", step, loss, EXPLOSION_FACTOR, first_loss,
                       advice)
