"""Gradcheck of the layer-normalised LSTM and GRU Functions of an engine, in float64, with
fixed regulariser masks (recurrent dropout, zoneout on h and c), smooth non-default activations
and, optionally, padded steps: the check every engine's hand-derived layer-norm backward meets."""

from __future__ import annotations

import torch

from rnnlab import activations, regularisers
from rnnlab.bptt.gru import GRUOptions
from rnnlab.bptt.lstm import LSTMOptions

F64 = torch.float64


def gradcheck_layernorm_functions(lstm_function, gru_function, padded: bool, mask_dims: int):
    """``torch.autograd.gradcheck`` of ``lstm_function.apply`` and ``gru_function.apply``
    (T=4, B=2, I=3, H=3); the padding mask has ``mask_dims`` dimensions ((T, B) for the C++
    loops, (T, B, 1) for the reference engine), or is None unless ``padded``."""
    Tg, Bg, Ig, Hg = 4, 2, 3, 3
    kw = dict(dtype=F64, requires_grad=True)
    like = torch.empty(0, dtype=F64)
    mask = None
    if padded:
        mask = (torch.arange(Tg)[:, None] < torch.tensor([4, 2])).contiguous()
        mask = mask.unsqueeze(-1) if mask_dims == 3 else mask
    rec = regularisers.keep_mask((Bg, Hg), 0.5, like)
    zone_h, zone_c = (regularisers.zone_mask((Tg, Bg, Hg), 0.5, like) for _ in range(2))
    r = lambda *s: torch.randn(*s, **kw)  # noqa: E731
    opts = LSTMOptions(gate_act=activations.get("softsign"), cand_act=activations.get("elu"),
                       out_act=activations.get(("scaled_tanh", 1.5, 0.8)))
    args = (r(Tg, Bg, Ig), r(Bg, Hg), r(Bg, Hg), r(4 * Hg, Ig), r(4 * Hg, Hg), r(4 * Hg),
            r(4 * Hg), r(4 * Hg), r(4 * Hg), r(Hg), r(Hg))
    assert torch.autograd.gradcheck(
        lambda *a: lstm_function.apply(*a, mask, opts, rec, zone_h, zone_c), args)
    opts = GRUOptions(gate_act=activations.get("softsign"), cand_act=activations.get("softplus"))
    args = (r(Tg, Bg, Ig), r(Bg, Hg), r(3 * Hg, Ig), r(3 * Hg, Hg), r(3 * Hg), r(3 * Hg),
            r(3 * Hg), r(3 * Hg))
    assert torch.autograd.gradcheck(
        lambda *a: gru_function.apply(*a, mask, opts, rec, zone_h), args)
