"""Regularisers inside the recurrence: variational recurrent dropout, zoneout, DropConnect on
``W_hh``. Layer options of :class:`rnnlab.RNN`, :class:`rnnlab.LSTM`, :class:`rnnlab.GRU`
(and zoneout on ``c`` for :class:`rnnlab.SRU`), computed inside the recurrence by the
hand-derived BPTT of the reference engine and of the compiled engines that support them
(torch's fused op has none of them).

* ``recurrent_dropout=p`` — variational recurrent dropout (Gal & Ghahramani 2016): one
  Bernoulli mask ``m`` (B, H_out) per sequence, layer and direction, the same at every step,
  on ``h_{t-1}`` where it enters the recurrent product: ``W_hh (m∘h_{t-1}) / (1-p)``. The
  state itself (GRU's ``z∘h_{t-1}``) is not dropped. ``0 ≤ p < 1``.
* ``zoneout=p`` (LSTM: ``p`` or ``(p_h, p_c)``) — zoneout (Krueger et al. 2017): per step and
  unit, with probability ``p`` the state keeps its previous value,
  ``h_t = d_t∘h_{t-1} + (1-d_t)∘h̃_t`` with ``d_t ~ Bernoulli(p)`` (LSTM: also
  ``c_t = d^c_t∘c_{t-1} + (1-d^c_t)∘c̃_t``, and ``h̃_t = o_t∘tanh(c̃_t)`` reads the un-zoned cell
  as in the paper; SRU: on ``c``, its output reads the zoned ``c_t``). The layer's output is
  the zoned state. ``0 ≤ p ≤ 1``.
* ``weight_dropout=p`` — DropConnect on the recurrent weights (Wan et al. 2013; the "weight
  drop" of Merity et al. 2017's AWD-LSTM): one mask on ``W_hh`` per forward call, shared by
  every step and sequence, ``W_hh∘M / (1-p)``. The masked matrix is what the hand BPTT
  receives; the gradient of ``W_hh`` flows back through the masking multiply by autograd
  (``dW_hh = dW̃_hh∘M / (1-p)``). ``0 ≤ p < 1``.

All are train-only: in eval mode (``layer.eval()``) the layer computes exactly the
un-regularised function, except zoneout with ``zoneout_eval="expectation"``, which uses the
expectation the paper uses at test time, ``h_t = p∘h_{t-1} + (1-p)∘h̃_t`` (default
``"identity"``: ``h_t = h̃_t``). Masks are drawn in the layer's forward, per layer and
direction in order, from torch's global RNG, or from ``generator=`` when given, so a seed
(``torch.manual_seed``) makes a training step reproducible. A draw resolves its rate to a
multiple of ``2⁻¹⁶`` (:func:`bernoulli`).

The hand BPTT receives the masks as tensors (:class:`Masks`): recurrent dropout makes the
recurrent input ``h∘m`` (stored for ``dW_hh``; ``dh_{t-1} += (da W_hh)∘m``); zoneout is a
per-unit carry, ``h_t = lerp(h̃_t, h_{t-1}, d_t)``, whose backward sends ``g∘d_t`` to
``h_{t-1}`` and ``g∘(1-d_t)`` into the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnlab.layers.validate import check_choice

ZONEOUT_EVAL = ("identity", "expectation")

# which options each family supports; SRU's only state is c, so its zoneout is on c
SUPPORTED = {
    "RNN": ("recurrent_dropout", "zoneout", "weight_dropout"),
    "GRU": ("recurrent_dropout", "zoneout", "weight_dropout"),
    "LSTM": ("recurrent_dropout", "zoneout", "weight_dropout"),
    "SRU": ("zoneout",),
}


@dataclass(frozen=True)
class Regularisers:
    """A layer's regularisation rates (0 = off)."""

    recurrent_dropout: float = 0.0
    zoneout_h: float = 0.0
    zoneout_c: float = 0.0
    weight_dropout: float = 0.0
    zoneout_eval: str = "identity"

    @property
    def any(self) -> bool:
        return bool(self.recurrent_dropout or self.zoneout_h or self.zoneout_c
                    or self.weight_dropout)

    def changes(self, training: bool) -> list[str]:
        """The options that change the function computed in this mode."""
        if not training:
            zoned = self.zoneout_eval == "expectation" and (self.zoneout_h or self.zoneout_c)
            return ["zoneout_eval='expectation'"] if zoned else []
        return [name for name, p in (("recurrent_dropout", self.recurrent_dropout),
                                     ("zoneout", self.zoneout_h or self.zoneout_c),
                                     ("weight_dropout", self.weight_dropout)) if p]

    def repr_options(self, family: str) -> list[str]:
        opts = []
        if self.recurrent_dropout:
            opts.append(f"recurrent_dropout={self.recurrent_dropout}")
        if family == "LSTM" and self.zoneout_h != self.zoneout_c:
            opts.append(f"zoneout={(self.zoneout_h, self.zoneout_c)}")
        elif self.zoneout_h or self.zoneout_c:
            opts.append(f"zoneout={self.zoneout_h or self.zoneout_c}")
        if self.weight_dropout:
            opts.append(f"weight_dropout={self.weight_dropout}")
        if self.zoneout_eval != "identity":
            opts.append(f"zoneout_eval={self.zoneout_eval!r}")
        return opts


NONE = Regularisers()


def _rate(name: str, value, upper_inclusive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        0 <= value <= 1 if upper_inclusive else 0 <= value < 1)
    if not ok:
        raise ValueError(f"{name}: expected a number in [0, 1{']' if upper_inclusive else ')'}, "
                         f"got {value!r}")
    return float(value)


def parse(family: str, *, recurrent_dropout=0.0, zoneout=0.0, weight_dropout=0.0,
          zoneout_eval: str = "identity", generator=None) -> Regularisers:
    """Validate a layer's regulariser options; returns its :class:`Regularisers`."""
    supported = SUPPORTED[family]
    given = {"recurrent_dropout": recurrent_dropout, "zoneout": zoneout,
             "weight_dropout": weight_dropout}
    for name, value in given.items():
        if name not in supported and value not in (0, 0.0, None):
            raise ValueError(f"{name}: {family} does not support it (supported: "
                             f"{', '.join(supported)})")
    check_choice("zoneout_eval", zoneout_eval, ZONEOUT_EVAL)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    if isinstance(zoneout, (tuple, list)):
        if family != "LSTM" or len(zoneout) != 2:
            raise ValueError(f"zoneout: a pair (p_h, p_c) is for the LSTM only, got {zoneout!r} "
                             f"for {family}")
        z_h, z_c = (_rate("zoneout", p, True) for p in zoneout)
    else:
        p = _rate("zoneout", zoneout, True)
        z_h, z_c = {"LSTM": (p, p), "SRU": (0.0, p)}.get(family, (p, 0.0))
    return Regularisers(recurrent_dropout=_rate("recurrent_dropout", recurrent_dropout, False),
                        zoneout_h=z_h, zoneout_c=z_c,
                        weight_dropout=_rate("weight_dropout", weight_dropout, False),
                        zoneout_eval=zoneout_eval)


@dataclass
class Masks:
    """What one direction of one layer's hand BPTT receives; None = off.

    recurrent: (B, H_out), ``m / (1-p)`` with ``m ~ Bernoulli(1-p)``: multiplies ``h_{t-1}``
        where it enters ``W_hh``.
    zone_h, zone_c: (T, B, H_out) / (T, B, H) keep weights ``d_t`` of ``h`` / ``c``: 1 keeps the
        previous value, 0 takes the new one (``p`` everywhere for the eval expectation).
    """

    recurrent: Tensor | None = None
    zone_h: Tensor | None = None
    zone_c: Tensor | None = None


# A draw spends 16 random bits: four draws per 64-bit word of the generator
DRAW_BITS = 16


def bernoulli(shape, p: float, like: Tensor, generator=None) -> Tensor:
    """``Bernoulli(p)`` draws (0 or 1) of the given shape, in ``like``'s dtype and device, with
    ``p`` resolved to a multiple of ``2⁻¹⁶`` (:data:`DRAW_BITS`): each draw is ``v < p·2¹⁶``
    for ``v`` a uniform 16-bit integer, four of them cut from each 64-bit word of the generator.
    A layer's zoneout masks are T·B·H draws per call, and torch's CPU generator fills one value
    per call on one thread: this spends half the random bits of ``torch.rand(...) < p`` and on
    the CPU runs about twice as fast."""
    out = torch.empty(shape, dtype=like.dtype, device=like.device)
    k = round(p * 2**DRAW_BITS)  # P(draw = 1) = k / 2¹⁶
    if k >= 2**DRAW_BITS:
        return out.fill_(1)
    # uniform int64 words (one of the 2⁶⁴ values is never drawn); randint, not the in-place
    # random_, which torch.compile cannot trace
    words = torch.randint(-2**63, 2**63 - 1, ((out.numel() + 3) // 4,), dtype=torch.int64,
                          device=like.device, generator=generator)
    v = words.view(torch.int16)[:out.numel()].view(shape)  # uniform on [-2¹⁵, 2¹⁵)
    return torch.lt(v, k - 2**(DRAW_BITS - 1), out=out)


def keep_mask(shape, p: float, like: Tensor, generator=None) -> Tensor:
    """Inverted-dropout mask ``Bernoulli(1-p) / (1-p)`` of the given shape."""
    return bernoulli(shape, 1 - p, like, generator).div_(1 - p)


def zone_mask(shape, p: float, like: Tensor, generator=None) -> Tensor:
    """Zoneout keep weights ``d ~ Bernoulli(p)`` (1 = keep the previous value)."""
    return bernoulli(shape, p, like, generator)


def prepare(layer, x: Tensor, params: dict) -> tuple[dict, Masks | None]:
    """The parameters and masks of one direction of one layer for this call: ``W_hh``
    DropConnect-masked and the recurrent / zoneout masks drawn when training; the
    zoneout expectation in eval mode when asked; ``(params, None)`` when nothing applies."""
    reg: Regularisers = layer.regularisers
    if not reg.any:
        return params, None
    T, B = x.shape[:2]
    H, H_out = layer.hidden_size, layer.output_size
    if not layer.training:
        if reg.zoneout_eval != "expectation" or not (reg.zoneout_h or reg.zoneout_c):
            return params, None
        expect = lambda p, size: x.new_full((1, 1, 1), p).expand(T, B, size) if p else None
        return params, Masks(zone_h=expect(reg.zoneout_h, H_out), zone_c=expect(reg.zoneout_c, H))
    gen = getattr(layer, "generator", None)
    if reg.weight_dropout:
        w = params["weight_hh"]
        params = dict(params, weight_hh=w * keep_mask(w.shape, reg.weight_dropout, w, gen))
    masks = Masks(
        recurrent=keep_mask((B, H_out), reg.recurrent_dropout, x, gen)
        if reg.recurrent_dropout else None,
        zone_h=zone_mask((T, B, H_out), reg.zoneout_h, x, gen) if reg.zoneout_h else None,
        zone_c=zone_mask((T, B, H), reg.zoneout_c, x, gen) if reg.zoneout_c else None)
    if masks.recurrent is None and masks.zone_h is None and masks.zone_c is None:
        masks = None
    return params, masks
