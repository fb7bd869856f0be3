"""Configurable gate and candidate activations of the LSTM and GRU (rnnlab.activations): each
derivative-from-the-output against autograd, the hand BPTT against autograd through a loop of
the cell step functions for every activation, gradcheck, option parsing, and the default path
unchanged (torch's σ/tanh, native backend allowed)."""

from __future__ import annotations

import pytest
import torch
from test_regularisers import F64, LENGTHS, B, H, I, T, check_against_oracle, fixed_masks

import rnnlab
from rnnlab import activations
from rnnlab.bptt.gru import GRUFunction, GRUOptions
from rnnlab.bptt.lstm import LSTMFunction, LSTMOptions

NAMES = activations.NAMES
PARAMETRISED = {"hard_sigmoid": ("hard_sigmoid", 1 / 6, 0.5), "leaky_relu": ("leaky_relu", 0.2),
                "scaled_tanh": ("scaled_tanh", 1.7, 0.6), "elu": ("elu", 0.5),
                "affine": ("affine", 0.5, 0.1), "thresholded_relu": ("thresholded_relu", 0.3)}


def spec_of(name):
    return PARAMETRISED.get(name, name)


@pytest.mark.parametrize("name", NAMES)
def test_derivative_from_output_matches_autograd(name):
    for spec in {name, spec_of(name)}:
        act = activations.get(spec)
        a = torch.linspace(-4, 4, 2001, dtype=F64) + 1e-3  # no sample on a kink
        a.requires_grad_()
        y = act(a)
        (expected,) = torch.autograd.grad(y.sum(), a)
        torch.testing.assert_close(act.grad(y.detach()), expected, atol=1e-12, rtol=1e-12)


def test_parsing_and_defaults():
    assert activations.get("sigmoid") == activations.SIGMOID
    hs = activations.get("hard_sigmoid")
    assert (hs.alpha, hs.beta, hs.onnx_name) == (0.2, 0.5, "HardSigmoid")
    assert activations.get(("hard_sigmoid", 0.2)).spec == "hard_sigmoid"
    assert activations.get(("scaled_tanh", 2, 3)).spec == ("scaled_tanh", 2.0, 3.0)
    for bad in ("swish", ("relu", 1.0), ("leaky_relu", -0.1), ("elu", 0), ("scaled_tanh", 0),
                ("affine", "a")):
        with pytest.raises(ValueError, match="activation"):
            activations.get(bad)
    with pytest.raises(ValueError, match="gate_activation"):
        rnnlab.LSTM(I, H, gate_activation="swish")


LAYERS = {
    "lstm": lambda **kw: rnnlab.LSTM(I, H, dtype=F64, **kw),
    "lstm_variants": lambda **kw: rnnlab.LSTM(I, H, peephole=True, proj_size=3, coupled=True,
                                              dtype=F64, **kw),
    "gru": lambda **kw: rnnlab.GRU(I, H, dtype=F64, **kw),
    "gru_reset_before": lambda **kw: rnnlab.GRU(I, H, reset_after=False, dtype=F64, **kw),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layer_name", LAYERS)
def test_bptt_matches_cell_loop(layer_name, name):
    spec = spec_of(name)
    other = "softsign" if name != "softsign" else "tanh"
    for kw in (dict(gate_activation=spec), dict(activation=spec)):
        if layer_name.startswith("lstm"):
            kw["output_activation"] = other if "activation" in kw else None
        layer = LAYERS[layer_name](**kw)
        check_against_oracle(layer, None, LENGTHS)


def test_activations_with_regularisers_match_cell_loop():
    layer = rnnlab.LSTM(I, H, gate_activation="hard_sigmoid", activation="softsign",
                        output_activation=("scaled_tanh", 1.5, 0.8), dtype=F64)
    check_against_oracle(layer, fixed_masks(layer), LENGTHS)
    layer = rnnlab.GRU(I, H, reset_after=False, gate_activation="hard_sigmoid",
                       activation="relu", dtype=F64)
    check_against_oracle(layer, fixed_masks(layer, ("recurrent", "zone_h")), LENGTHS)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name):
    """Kinked activations (relu, hard_sigmoid, …) pass here because no pre-activation of these
    seeded inputs lies within gradcheck's step of a kink."""
    act = activations.get(spec_of(name))
    Tg, Bg, Ig, Hg = 3, 2, 3, 2
    kw = dict(dtype=F64, requires_grad=True)
    mask = (torch.arange(Tg)[:, None] < torch.tensor([3, 2])).unsqueeze(-1)
    args = [torch.randn(Tg, Bg, Ig, **kw), torch.randn(Bg, Hg, **kw), torch.randn(Bg, Hg, **kw),
            torch.randn(4 * Hg, Ig, **kw), torch.randn(4 * Hg, Hg, **kw),
            torch.randn(4 * Hg, **kw), torch.randn(4 * Hg, **kw)]
    opts = LSTMOptions(gate_act=act, cand_act=act, out_act=act)
    assert torch.autograd.gradcheck(lambda *a: LSTMFunction.apply(*a, None, None, mask, opts),
                                    args)
    for reset_after in (True, False):
        opts = GRUOptions(reset_after=reset_after, gate_act=act, cand_act=act)
        args = [torch.randn(Tg, Bg, Ig, **kw), torch.randn(Bg, Hg, **kw),
                torch.randn(3 * Hg, Ig, **kw), torch.randn(3 * Hg, Hg, **kw),
                torch.randn(3 * Hg, **kw), torch.randn(3 * Hg, **kw)]
        assert torch.autograd.gradcheck(
            lambda *a, opts=opts: GRUFunction.apply(*a, mask, opts), args)


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_default_path_unchanged_and_native_refuses_others(family):
    cls, torch_cls = getattr(rnnlab, family), getattr(torch.nn, family)
    layer = cls(I, H, num_layers=2, gate_activation="sigmoid", activation="tanh", dtype=F64,
                backend="native")
    assert layer.torch_op_lacks() is None and layer.options.default_activations
    reference = torch_cls(I, H, num_layers=2, dtype=F64)
    layer.load_state_dict(reference.state_dict())
    x = torch.randn(T, B, I, dtype=F64)
    ours, theirs = layer(x), reference(x)
    torch.testing.assert_close(ours[0], theirs[0], atol=1e-12, rtol=1e-12)
    with pytest.raises(ValueError, match="native.*gate_activation"):
        cls(I, H, gate_activation="hard_sigmoid", backend="native")
    other = cls(I, H, gate_activation=("hard_sigmoid", 1 / 6, 0.5), dtype=F64)
    assert "gate_activation=('hard_sigmoid'" in repr(other)
    assert "torch's fused op does not compute" in other.torch_op_lacks()
    from rnnlab.backends import select_backend
    from rnnlab.layers.sequence import Batch
    # not native; the cpu engine where it is built (tests/test_cpu_variants.py)
    assert select_backend(other, Batch(x)).name in ("cpu", "reference")
    with pytest.raises(ValueError, match="to_torch"):
        other.to_torch()
