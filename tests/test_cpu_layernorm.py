"""The cpu engine's layer-normalised LSTM and GRU (csrc/layernorm_{lstm,gru}.cpp) with every
option the layers accept (activations, recurrent dropout, zoneout, weight dropout, the zoneout
expectation): the reference engine with equal generators is the oracle (outputs, final states,
every gradient, float64 1e-10) over padded and packed inputs, two layers, both directions, one
thread and a team of threads; gradcheck of both Functions; ``backend="auto"`` picks the
engine."""

from __future__ import annotations

import copy

import pytest
import torch
from cpu_engine_required import require_cpu_engine
from layernorm_gradcheck import gradcheck_layernorm_functions
from parity import loss_of, make_input, output_tensors
from torch.func import functional_call

import rnnlab
from rnnlab import activations
from rnnlab.backends import select_backend
from rnnlab.backends.cpu.layernorm_gru import LayerNormGRUFunction
from rnnlab.backends.cpu.layernorm_lstm import LayerNormLSTMFunction
from rnnlab.layers.sequence import Batch

require_cpu_engine()

F64 = torch.float64
TOL = dict(atol=1e-10, rtol=1e-10)
T, B, I, H = 6, 4, 3, 5
ACTS = {"LSTM": dict(gate_activation="hard_sigmoid", activation="softsign",
                     output_activation=("scaled_tanh", 1.7, 0.6)),
        "GRU": dict(gate_activation="softsign", activation=("elu", 0.8))}
REGS = {"LSTM": dict(recurrent_dropout=0.3, zoneout=(0.2, 0.35), weight_dropout=0.2),
        "GRU": dict(recurrent_dropout=0.3, zoneout=0.25, weight_dropout=0.2)}
OPTIONS = {"plain": lambda f: {}, "activations": lambda f: ACTS[f],
           "regularisers": lambda f: REGS[f], "both": lambda f: {**ACTS[f], **REGS[f]}}


def pair(family, dtype=F64, hidden_size=H, **kw):
    """The reference and the cpu layer, equal weights (norms moved off their init) and
    generators in the same state."""
    def make(backend):
        return getattr(rnnlab, family)(I, hidden_size, layer_norm=True, backend=backend,
                                       dtype=dtype, generator=torch.Generator().manual_seed(5),
                                       **kw)

    ref, cpu = make("reference"), make("cpu")
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=dtype))
    cpu.load_state_dict(ref.state_dict())
    return ref, cpu


def check(ref, cpu, x, leaf, hx=None, leaves=()):
    """Outputs, final states and every gradient equal; the cpu engine really ran."""
    assert select_backend(cpu, Batch(leaf)).name == "cpu"
    got, expected = output_tensors(cpu(x, hx)), output_tensors(ref(x, hx))
    for a, e in zip(got, expected):
        torch.testing.assert_close(a, e, **TOL)
    wrt_a = [leaf, *leaves, *cpu.parameters()]
    wrt_e = [leaf, *leaves, *ref.parameters()]
    g_a = torch.autograd.grad(loss_of(got), wrt_a, retain_graph=True)  # x: a shared packing
    g_e = torch.autograd.grad(loss_of(expected), wrt_e)
    names = ["input", *(f"state{k}" for k in range(len(leaves))),
             *(n for n, _ in cpu.named_parameters())]
    for name, a, e in zip(names, g_a, g_e):
        torch.testing.assert_close(a, e, **TOL, msg=lambda m, name=name: f"grad {name}: {m}")


def states(layer, batch=B):
    rows = layer.num_layers * layer.num_directions
    leaves = [torch.randn(rows, batch, s, dtype=F64, requires_grad=True)
              for s in layer.state_sizes()]
    return (tuple(leaves) if len(leaves) > 1 else leaves[0]), leaves


@pytest.mark.parametrize("form", ["padded", "packed"])
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_matches_reference_two_layers_both_directions(family, options, form):
    torch.manual_seed(0)
    ref, cpu = pair(family, num_layers=2, bidirectional=True, batch_first=form == "padded",
                    bias=options != "activations", **OPTIONS[options](family))
    x, leaf = make_input(form, T, B, I, form == "padded", F64,
                         lengths=torch.tensor([6, 2, 5, 6]) if form == "packed" else None)
    hx, leaves = states(cpu)
    check(ref, cpu, x, leaf, hx, leaves)


@pytest.mark.parametrize("batch", [6, 10], ids=["units", "rows"])
@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_matches_reference_with_a_team_of_threads(family, batch):
    """Sizes where two threads split the hidden units of every row (uneven slices) or the rows
    of the batch, packed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(1)
        ref, cpu = pair(family, hidden_size=72, **ACTS[family], **REGS[family])
        lengths = torch.tensor([5, 3, 5, 1, 4, 2, 5, 2, 3, 4][:batch])
        x, leaf = make_input("packed", 5, batch, I, False, F64, lengths=lengths)
        hx, leaves = states(cpu, batch=batch)
        check(ref, cpu, x, leaf, hx, leaves)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_zoneout_expectation_in_eval_mode(family):
    torch.manual_seed(2)
    zoneout = (0.3, 0.6) if family == "LSTM" else 0.4
    ref, cpu = pair(family, zoneout=zoneout, zoneout_eval="expectation", **ACTS[family])
    ref.eval(), cpu.eval()
    x, leaf = make_input("packed", T, B, I, False, F64)
    check(ref, cpu, x, leaf)
    with torch.no_grad():  # inference runs without an autograd node
        for a, e in zip(output_tensors(cpu(x)), output_tensors(ref(x))):
            torch.testing.assert_close(a, e, **TOL)


@pytest.mark.parametrize("name", activations.NAMES)
def test_every_activation_in_every_role(name):
    torch.manual_seed(3)
    for family, roles in (("LSTM", ("gate_activation", "activation", "output_activation")),
                          ("GRU", ("gate_activation", "activation"))):
        ref, cpu = pair(family, recurrent_dropout=0.2, zoneout=0.3,
                        **{role: name for role in roles})
        x, leaf = make_input("padded", T, B, I, False, F64)
        check(ref, cpu, x, leaf)


def test_float32():
    """float32: in training (the same masks) the two engines agree, and in eval mode the cpu
    engine is near the float64 result, each tensor to 1e-3 of its largest value (measured
    ≤ 3e-5 over 40 seeds; a norm over few units amplifies rounding, hence H = 16)."""
    torch.manual_seed(4)
    for family in ("LSTM", "GRU"):
        ref, cpu = pair(family, dtype=torch.float32, hidden_size=16, num_layers=2,
                        **ACTS[family], **REGS[family])
        x = torch.randn(T, B, I, requires_grad=True)
        x64 = x.detach().double().requires_grad_()
        for expected_layer, inp in ((ref, x), (copy.deepcopy(ref).double().eval(), x64)):
            cpu.train(expected_layer.training)
            got, expected = output_tensors(cpu(x)), output_tensors(expected_layer(inp))
            grads = zip(torch.autograd.grad(loss_of(got), [x, *cpu.parameters()]),
                        torch.autograd.grad(loss_of(expected), [inp, *expected_layer.parameters()]))
            for a, e in [*zip(got, expected), *grads]:
                torch.testing.assert_close(a.double(), e.double(), rtol=0,
                                           atol=1e-3 * e.abs().max().item())


def test_auto_picks_the_cpu_engine():
    x = Batch(torch.randn(T, B, I))
    for layer in (rnnlab.LSTM(I, H, layer_norm=True), rnnlab.GRU(I, H, layer_norm=True),
                  rnnlab.LSTM(I, H, layer_norm=True, zoneout=0.1, activation="relu"),
                  rnnlab.GRU(I, H, layer_norm=True, recurrent_dropout=0.2,
                             gate_activation="hard_sigmoid")):
        assert select_backend(layer, x).name == "cpu"


@pytest.mark.parametrize("masked", [False, True], ids=["full", "mask"])
def test_gradcheck(masked):
    gradcheck_layernorm_functions(LayerNormLSTMFunction, LayerNormGRUFunction, masked, 2)


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_second_derivatives(family):
    """Under create_graph=True the backward differentiates the reference engine's twin."""
    smooth = {"LSTM": dict(gate_activation="softsign", output_activation="softplus"),
              "GRU": dict(activation=("scaled_tanh", 1.5, 0.7))}[family]
    layer = getattr(rnnlab, family)(I, 3, layer_norm=True, backend="cpu", dtype=F64,
                                    recurrent_dropout=0.3, zoneout=0.2,
                                    generator=torch.Generator(), **smooth)
    torch.manual_seed(5)
    x = torch.randn(3, 2, I, dtype=F64, requires_grad=True)
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *params):
        layer.generator.manual_seed(0)
        out = functional_call(layer, dict(zip(names, params)), (x,),
                              {"lengths": torch.tensor([3, 2])})
        return tuple(output_tensors(out))

    assert torch.autograd.gradgradcheck(f, (x, *layer.parameters()), atol=1e-6)
