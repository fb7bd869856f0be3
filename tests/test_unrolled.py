"""The autograd twins (rnnlab.bptt.unrolled) against the hand-derived BPTT they stand in for,
and second derivatives through every engine's backward (gradgradcheck in float64)."""

import pytest
import torch
from parity import loss_of, output_tensors
from torch.func import functional_call

import rnnlab
import rnnlab.bptt.common as common

T, B, I, H = 5, 3, 4, 3
D = torch.float64

VARIANTS = {
    "rnn-tanh": lambda **kw: rnnlab.RNN(I, H, **kw),
    "rnn-relu-zoneout-recdrop": lambda **kw: rnnlab.RNN(I, H, nonlinearity="relu", zoneout=0.3,
                                                        recurrent_dropout=0.3, **kw),
    "lstm": lambda **kw: rnnlab.LSTM(I, H, **kw),
    "lstm-peephole-clip-proj": lambda **kw: rnnlab.LSTM(I, H, peephole=True, cell_clip=0.4,
                                                        proj_size=2, **kw),
    "lstm-coupled-activations": lambda **kw: rnnlab.LSTM(I, H, coupled=True,
                                                         gate_activation="hard_sigmoid",
                                                         activation="relu", **kw),
    "lstm-zoneout-recdrop-weightdrop": lambda **kw: rnnlab.LSTM(
        I, H, zoneout=(0.2, 0.4), recurrent_dropout=0.3, weight_dropout=0.3, **kw),
    "lstm-layer_norm": lambda **kw: rnnlab.LSTM(I, H, layer_norm=True, **kw),
    "lstm-layer_norm-zoneout-recdrop-activations": lambda **kw: rnnlab.LSTM(
        I, H, layer_norm=True, zoneout=(0.2, 0.4), recurrent_dropout=0.3,
        gate_activation="softsign", activation="softplus", output_activation="elu", **kw),
    "gru": lambda **kw: rnnlab.GRU(I, H, **kw),
    "gru-reset-before-zoneout-recdrop": lambda **kw: rnnlab.GRU(
        I, H, reset_after=False, zoneout=0.3, recurrent_dropout=0.3, **kw),
    "gru-activations": lambda **kw: rnnlab.GRU(I, H, gate_activation="hard_sigmoid",
                                               activation="softsign", **kw),
    "gru-layer_norm": lambda **kw: rnnlab.GRU(I, H, layer_norm=True, **kw),
    "gru-layer_norm-zoneout-recdrop-activations": lambda **kw: rnnlab.GRU(
        I, H, layer_norm=True, zoneout=0.3, recurrent_dropout=0.3, gate_activation="softsign",
        activation=("scaled_tanh", 1.5, 0.7), **kw),
    "sru": lambda **kw: rnnlab.SRU(I, H, **kw),
    "sru-highway-projection-zoneout": lambda **kw: rnnlab.SRU(I, H + 1, zoneout=0.3, **kw),
}


def make(name, **kw):
    """A float64 layer of the variant; regularised ones draw their masks from a generator."""
    if "zoneout" in name or "drop" in name:
        kw["generator"] = torch.Generator()
    return VARIANTS[name](dtype=D, **kw)


def run(layer, x, lengths, twin: bool, monkeypatch):
    """Output tensors of a forward with the hand BPTT or with the twin (same masks)."""
    if layer.generator is not None:
        layer.generator.manual_seed(0)
    with monkeypatch.context() as m:
        if twin:
            m.setattr(common, "needing_plain_ops", lambda: "test")
        return output_tensors(layer(x, lengths=lengths))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_twin_equals_the_hand_bptt(name, monkeypatch):
    torch.manual_seed(0)
    layer = make(name, backend="reference", num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I, dtype=D, requires_grad=True)
    lengths = torch.tensor([T, 2, 4])
    hand = run(layer, x, lengths, False, monkeypatch)
    twin = run(layer, x, lengths, True, monkeypatch)
    wrt = [x, *layer.parameters()]
    g_hand = torch.autograd.grad(loss_of(hand), wrt, allow_unused=True)
    g_twin = torch.autograd.grad(loss_of(twin), wrt, allow_unused=True)
    for a, b in zip(twin, hand):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    for a, b in zip(g_twin, g_hand):
        if a is None or b is None:
            assert a is None and b is None or (a if b is None else b).abs().max() == 0
            continue
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


SECOND_ORDER = ["rnn-tanh", "lstm-peephole-clip-proj", "lstm-zoneout-recdrop-weightdrop",
                "lstm-layer_norm-zoneout-recdrop-activations", "gru-reset-before-zoneout-recdrop",
                "gru-layer_norm-zoneout-recdrop-activations", "sru-highway-projection-zoneout"]


def gradgradcheck_layer(layer, lengths=None):
    torch.manual_seed(1)
    x = torch.randn(3, 2, I, dtype=D, requires_grad=True)
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *params):
        if layer.generator is not None:
            layer.generator.manual_seed(0)
        out = functional_call(layer, dict(zip(names, params)), (x,), {"lengths": lengths})
        return tuple(output_tensors(out))

    assert torch.autograd.gradgradcheck(f, (x, *layer.parameters()), atol=1e-6)


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_second_derivatives_of_the_reference_engine(name):
    layer = make(name, backend="reference")
    gradgradcheck_layer(layer, lengths=torch.tensor([3, 2]))


@pytest.mark.parametrize("family", ["RNN", "LSTM", "GRU", "SRU"])
def test_second_derivatives_of_the_cpu_engine(family):
    from rnnlab.backends.cpu import _build

    if _build.error() is not None:
        pytest.skip(f"C++ engine unavailable: {_build.error()}")
    gradgradcheck_layer(getattr(rnnlab, family)(I, H, dtype=D, backend="cpu"),
                        lengths=torch.tensor([3, 2]))
