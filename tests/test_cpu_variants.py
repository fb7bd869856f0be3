"""The cpu engine's variants: every activation of rnnlab.activations (the C++ formulas against
the Python definitions), LSTM and GRU with non-default activations, and the regularisers
(recurrent dropout, zoneout on h and c with the eval expectation, weight dropout) for LSTM,
GRU, RNN and SRU. Against the reference engine with equal generators: outputs, final states
and every gradient (float64 to 1e-10, float32 loosely), padded and packed, 2 layers,
bidirectional, train and eval; on a team of two threads; gradcheck of the Functions with
fixed masks; second derivatives; backend="auto" picking the engine."""

import pytest
import torch
from cpu_engine_required import require_cpu_engine
from parity import assert_same, loss_of, make_input, output_tensors
from torch.func import functional_call

import rnnlab
from rnnlab import activations
from rnnlab.activations import get as activation
from rnnlab.backends import select_backend
from rnnlab.backends.cpu import _build
from rnnlab.backends.cpu import gru as cpu_gru
from rnnlab.backends.cpu import lstm as cpu_lstm
from rnnlab.backends.cpu import rnn as cpu_rnn
from rnnlab.backends.cpu import sru as cpu_sru
from rnnlab.bptt.gru import GRUOptions
from rnnlab.bptt.lstm import LSTMOptions
from rnnlab.bptt.rnn import RNNOptions
from rnnlab.layers.sequence import Batch

require_cpu_engine()

T, B, I, H = 6, 4, 3, 5
F64 = torch.float64
F32_TOL = dict(atol=2e-4, rtol=2e-4)


# ---- the activations themselves ---------------------------------------------------------------
ALL_ACTIVATIONS = [activations.get(name) for name in activations.NAMES] + [
    activations.get(spec) for spec in [("hard_sigmoid", 1 / 6, 0.5), ("leaky_relu", 0.3),
                                       ("thresholded_relu", 0.4), ("scaled_tanh", 1.7, 0.67),
                                       ("affine", -0.5, 0.2), ("elu", 2.0)]]


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("act", ALL_ACTIVATIONS, ids=str)
def test_activation_formulas_match_python(act, dtype):
    """activations.h's φ and φ' (from the output) against rnnlab.activations, over a range
    of pre-activations that includes 0, tiny and saturating values."""
    torch.manual_seed(0)
    a = torch.cat([torch.randn(3000, dtype=dtype) * 4, torch.tensor(
        [0.0, -0.0, 1e-9, -1e-9, 0.4, 1.0, -1.0, 30.0, -30.0, 80.0, -80.0], dtype=dtype)])
    ops = _build.load()
    y = ops.activation_forward(a, *act.kernel_args)
    tol = dict(atol=1e-14, rtol=1e-13) if dtype == F64 else dict(atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(y, act(a), **tol)
    y_ref = act(a)
    torch.testing.assert_close(ops.activation_backward(y_ref, *act.kernel_args),
                               act.grad(y_ref), **tol)


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
def test_activation_relative_accuracy_of_small_values(dtype):
    """Where φ or φ' is tiny (elu near 0⁻, softplus far below 0 and its φ' near 0), the
    formulas keep their relative accuracy (expm1, log1p without cancellation)."""
    ops = _build.load()
    a = torch.tensor([-1e-7, -1e-4, -0.3, -0.6, -20.0, -60.0], dtype=dtype)
    rtol = 1e-14 if dtype == F64 else 1e-6
    for act in (activations.get("elu"), activations.get("softplus")):
        y = ops.activation_forward(a, *act.kernel_args)
        torch.testing.assert_close(y, act(a.double()).to(dtype), atol=0, rtol=rtol)
    softplus, y = activations.get("softplus"), torch.tensor([1e-7, 1e-4, 0.3], dtype=dtype)
    torch.testing.assert_close(ops.activation_backward(y, *softplus.kernel_args),
                               softplus.grad(y.double()).to(dtype), atol=0, rtol=rtol)


def test_activation_code_checked():
    with pytest.raises(RuntimeError, match="code 11"):
        _build.load().activation_forward(torch.zeros(3), 11, 0.0, 0.0)


# ---- layers against the reference engine -------------------------------------------------------
ACTS_A = dict(gate_activation="hard_sigmoid", activation=("scaled_tanh", 1.7, 0.67))
ACTS_B = dict(gate_activation=("hard_sigmoid", 1 / 6, 0.5), activation="softsign",
              output_activation=("thresholded_relu", 0.1))
ACTS_C = dict(activation="elu", output_activation=("affine", 0.5, 0.1))
ACTS_D = dict(gate_activation="softsign", activation=("leaky_relu", 0.2),
              output_activation="relu")
REGS = dict(recurrent_dropout=0.3, zoneout=0.25, weight_dropout=0.2)
LSTM_REGS = dict(REGS, zoneout=(0.2, 0.35))

# (family, options, mode): mode "train", or "eval" (after layer.eval())
CASES = [
    ("LSTM", ACTS_A, "train"),
    ("LSTM", dict(ACTS_B, peephole=True, cell_clip=0.5), "train"),
    ("LSTM", dict(ACTS_C, coupled=True, proj_size=3), "train"),
    ("LSTM", dict(recurrent_dropout=0.3), "train"),
    ("LSTM", dict(zoneout=(0.2, 0.35)), "train"),
    ("LSTM", dict(weight_dropout=0.4), "train"),
    ("LSTM", dict(LSTM_REGS, **ACTS_D, peephole=True, proj_size=3), "train"),
    ("LSTM", dict(LSTM_REGS, coupled=True, cell_clip=0.4), "train"),
    ("LSTM", dict(zoneout=(0.3, 0.1), zoneout_eval="expectation", proj_size=3), "eval"),
    ("LSTM", dict(LSTM_REGS, **ACTS_A), "eval"),  # identity: the plain function
    ("GRU", dict(gate_activation="hard_sigmoid", activation="softsign"), "train"),
    ("GRU", dict(gate_activation=("affine", 0.3, 0.5), activation="relu", reset_after=False),
     "train"),
    ("GRU", dict(recurrent_dropout=0.3), "train"),
    ("GRU", dict(recurrent_dropout=0.3, reset_after=False), "train"),
    ("GRU", dict(zoneout=0.3, reset_after=False), "train"),
    ("GRU", dict(REGS, activation=("thresholded_relu", 0.2)), "train"),
    ("GRU", dict(REGS, activation="softplus", reset_after=False), "train"),
    ("GRU", dict(zoneout=0.3, zoneout_eval="expectation"), "eval"),
    ("GRU", dict(zoneout=0.3, zoneout_eval="expectation", reset_after=False), "eval"),
    ("RNN", REGS, "train"),
    ("RNN", dict(zoneout=0.4, recurrent_dropout=0.2, nonlinearity="relu"), "train"),
    ("RNN", dict(zoneout=0.3, zoneout_eval="expectation"), "eval"),
    ("SRU", dict(zoneout=0.3), "train"),
    ("SRU", dict(zoneout=0.3, input_size=H + 1), "train"),  # highway projection
    ("SRU", dict(zoneout=0.3, zoneout_eval="expectation"), "eval"),
]


def case_id(case):
    name, kw, mode = case
    return "-".join([name, mode, *(f"{k}={v}" for k, v in kw.items())]).replace(" ", "")


def make_pair(name, kw, mode, dtype, seed=7, hidden_size=H, **extra):
    """A reference-engine layer and a cpu-engine layer with equal weights and generators."""
    kw = dict({"input_size": I, "hidden_size": hidden_size, **extra}, **kw)
    layers = [getattr(rnnlab, name)(backend=backend, dtype=dtype,
                                    generator=torch.Generator().manual_seed(seed), **kw)
              for backend in ("reference", "cpu")]
    layers[1].load_state_dict(layers[0].state_dict())
    for layer in layers:
        layer.train(mode == "train")
    return layers


def states_for(layer, dtype, batch=B):
    rows = layer.num_layers * layer.num_directions
    leaves = [torch.randn(rows, batch, s, dtype=dtype, requires_grad=True)
              for s in layer.state_sizes()]
    return (tuple(leaves) if len(leaves) > 1 else leaves[0]), leaves


def outputs_and_grads(layer, x, leaf, hx, leaves):
    out = output_tensors(layer(x, hx))
    wrt = [leaf, *leaves, *layer.parameters()]
    return out, torch.autograd.grad(loss_of(out), wrt, allow_unused=True, retain_graph=True)


def compare_engines(reference, layer, x, leaf, hx, leaves, tol=None):
    dtype = leaf.dtype
    expected, g_expected = outputs_and_grads(reference, x, leaf, hx, leaves)
    actual, g_actual = outputs_and_grads(layer, x, leaf, hx, leaves)
    for what, a, e in zip(("output", "h_n", "c_n"), actual, expected):
        assert_same(a, e, dtype, what, tol)
    names = ["input", *(f"state{k}" for k in range(len(leaves))),
             *(n for n, _ in layer.named_parameters())]
    for what, a, e in zip(names, g_actual, g_expected):
        assert (a is None) == (e is None), what
        if a is not None:
            assert_same(a, e, dtype, f"grad {what}", tol)
    return actual


@pytest.mark.parametrize("form", ["padded", "packed"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_reference(case, form):
    """Two layers, bidirectional, initial states given; float64 to 1e-10. In training the
    regularised function differs from the plain one (the masks are applied)."""
    name, kw, mode = case
    reference, layer = make_pair(name, kw, mode, F64, num_layers=2, bidirectional=True)
    x, leaf = make_input(form, T, B, layer.input_size, False, F64)
    hx, leaves = states_for(layer, F64)
    actual = compare_engines(reference, layer, x, leaf, hx, leaves)
    if mode == "train" and layer.regularisers.any:
        plain = output_tensors(layer.eval()(x, hx))
        assert not torch.allclose(actual[0], plain[0])


F32_CASES = [CASES[k] for k in (1, 6, 7, 8, 15, 16, 19, 22)]


@pytest.mark.parametrize("case", F32_CASES, ids=case_id)
def test_matches_reference_float32(case):
    name, kw, mode = case
    reference, layer = make_pair(name, kw, mode, torch.float32, num_layers=2,
                                 bidirectional=True)
    x, leaf = make_input("packed", T, B, layer.input_size, False, torch.float32)
    hx, leaves = states_for(layer, torch.float32)
    compare_engines(reference, layer, x, leaf, hx, leaves, F32_TOL)


TEAM_CASES = [
    ("LSTM", dict(LSTM_REGS, **ACTS_A, peephole=True, proj_size=37), "train"),
    ("LSTM", dict(zoneout=(0.2, 0.1), recurrent_dropout=0.3), "train"),
    ("LSTM", dict(ACTS_B, cell_clip=0.5, coupled=True), "train"),
    ("GRU", dict(REGS, **ACTS_A), "train"),
    ("GRU", dict(REGS, **ACTS_A, reset_after=False), "train"),
    ("GRU", REGS, "train"),
    ("GRU", dict(REGS, reset_after=False), "train"),
    ("RNN", REGS, "train"),
    ("SRU", dict(zoneout=0.3), "train"),
]


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", TEAM_CASES, ids=case_id)
def test_two_threads_match_reference(case, dtype):
    """Sizes where the time loop runs on a team of threads (each owning a slice of the hidden
    units, partial panels included), with padded steps."""
    name, kw, mode = case
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        reference, layer = make_pair(name, kw, mode, dtype, hidden_size=90, bidirectional=True)
        x, leaf = make_input("packed", 7, 9, I, False, dtype)
        hx, leaves = states_for(layer, dtype, batch=9)
        compare_engines(reference, layer, x, leaf, hx, leaves,
                        None if dtype == F64 else F32_TOL)
    finally:
        torch.set_num_threads(threads)


# ---- the autograd Functions themselves: gradcheck with fixed masks ---------------------------
def small(*shape, grad=True):
    return torch.randn(*shape, dtype=F64, requires_grad=grad)


def fixed(*shape, p=0.5, scale=1.0):
    """A fixed Bernoulli(p) mask times ``scale`` (no gradient)."""
    return torch.empty(*shape, dtype=F64).bernoulli_(p) * scale


Ts, Bs, Is, Hs = 4, 3, 2, 3
MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.bool)
EXPECT = torch.full((1, 1, 1), 0.3, dtype=F64)  # the eval expectation, an expanded constant

LSTM_GRADCHECK = [  # (options, proj, peephole, padding mask, masks (rec, zone_h, zone_c))
    (LSTMOptions(gate_act=activation("hard_sigmoid"),
                 cand_act=activation(("scaled_tanh", 1.7, 0.67)),
                 out_act=activation("softsign")), False, False, None, "none"),
    (LSTMOptions(cell_clip=0.6, gate_act=activation("softplus"), cand_act=activation("elu"),
                 out_act=activation(("affine", 0.7, 0.1))), True, True, MASK, "all"),
    (LSTMOptions(coupled=True, cand_act=activation(("leaky_relu", 0.2))), False, True, MASK,
     "zone"),
    (LSTMOptions(), True, False, None, "expect"),
]


def lstm_masks(kind, P):
    """(rec, zone_h, zone_c) of an LSTM's Function for a gradcheck case."""
    if kind == "none":
        return ()
    if kind == "expect":
        return (None, EXPECT.expand(Ts, Bs, P), EXPECT.expand(Ts, Bs, Hs))
    rec = fixed(Bs, P, scale=2.0) if kind == "all" else None
    return rec, fixed(Ts, Bs, P, p=0.3), fixed(Ts, Bs, Hs, p=0.6)


@pytest.mark.parametrize("case", range(len(LSTM_GRADCHECK)))
def test_gradcheck_lstm_function(case):
    opts, proj, peep, m, kind = LSTM_GRADCHECK[case]
    P = 2 if proj else Hs
    args = (small(Ts, Bs, Is), small(Bs, P), small(Bs, Hs), small(4 * Hs, Is),
            small(4 * Hs, P), small(4 * Hs), small(4 * Hs), small(3, Hs) if peep else None,
            small(P, Hs) if proj else None)
    masks = lstm_masks(kind, P)
    assert torch.autograd.gradcheck(
        lambda *a: cpu_lstm.LSTMFunction.apply(*a, m, opts, *masks), args, eps=1e-6, atol=1e-7)


GRU_GRADCHECK = [  # (options, padding mask, masks (rec, zone))
    (GRUOptions(gate_act=activation("hard_sigmoid"), cand_act=activation("softsign")), MASK,
     "none"),
    (GRUOptions(reset_after=False, gate_act=activation(("scaled_tanh", 0.5, 1.3)),
                cand_act=activation("softplus")), None, "none"),
    (GRUOptions(cand_act=activation("elu")), MASK, "all"),
    (GRUOptions(reset_after=False), MASK, "all"),
    (GRUOptions(reset_after=False), None, "expect"),
]


def hidden_masks(kind):
    """(rec, zone) of a GRU's or RNN's Function for a gradcheck case."""
    if kind == "all":
        return fixed(Bs, Hs, scale=2.0), fixed(Ts, Bs, Hs, p=0.3)
    if kind == "expect":
        return None, EXPECT.expand(Ts, Bs, Hs)
    return ()


@pytest.mark.parametrize("case", range(len(GRU_GRADCHECK)))
def test_gradcheck_gru_function(case):
    opts, m, kind = GRU_GRADCHECK[case]
    args = (small(Ts, Bs, Is), small(Bs, Hs), small(3 * Hs, Is), small(3 * Hs, Hs),
            small(3 * Hs), small(3 * Hs))
    masks = hidden_masks(kind)
    assert torch.autograd.gradcheck(
        lambda *a: cpu_gru.GRUFunction.apply(*a, m, opts, *masks), args, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("nonlinearity, m, kind", [("tanh", MASK, "all"), ("relu", None, "all"),
                                                   ("tanh", None, "expect")])
def test_gradcheck_rnn_function(nonlinearity, m, kind):
    args = (small(Ts, Bs, Is), small(Bs, Hs), small(Hs, Is), small(Hs, Hs), small(Hs),
            small(Hs))
    masks = hidden_masks(kind)
    assert torch.autograd.gradcheck(
        lambda *a: cpu_rnn.RNNFunction.apply(*a, m, RNNOptions(nonlinearity), *masks), args,
        eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("highway, m", [(False, MASK), (True, None)])
def test_gradcheck_sru_function(highway, m):
    In = Is + 1 if highway else Hs
    args = (small(Ts, Bs, In), small(Bs, Hs), small((4 if highway else 3) * Hs, In),
            small(2, Hs), small(2 * Hs))
    zone = fixed(Ts, Bs, Hs, p=0.4)
    assert torch.autograd.gradcheck(
        lambda *a: cpu_sru.SRUFunction.apply(*a, m, zone), args, eps=1e-6, atol=1e-7)


def test_mask_shapes_checked():
    x, h0 = small(Ts, Bs, Is, grad=False), small(Bs, Hs, grad=False)
    w_ih, w_hh = small(Hs, Is, grad=False), small(Hs, Hs, grad=False)
    with pytest.raises(RuntimeError, match="zone"):
        cpu_rnn.RNNFunction.apply(x, h0, w_ih, w_hh, None, None, None, RNNOptions(), None,
                                  fixed(Ts - 1, Bs, Hs))
    with pytest.raises(RuntimeError, match="rec"):
        cpu_rnn.RNNFunction.apply(x, h0, w_ih, w_hh, None, None, None, RNNOptions(),
                                  fixed(Bs, Hs).float())


# ---- second derivatives: the autograd twin receives the same options and masks ----------------
SECOND_ORDER = [
    ("LSTM", dict(zoneout=(0.2, 0.4), recurrent_dropout=0.3, weight_dropout=0.3,
                  gate_activation="softsign", activation=("scaled_tanh", 1.7, 0.67),
                  proj_size=2)),
    ("GRU", dict(zoneout=0.3, recurrent_dropout=0.3, activation="softplus", reset_after=False)),
    ("RNN", dict(zoneout=0.3, recurrent_dropout=0.3)),
    ("SRU", dict(zoneout=0.3)),
]


@pytest.mark.parametrize("case", SECOND_ORDER, ids=lambda c: c[0])
def test_second_derivatives(case):
    """gradgradcheck through the cpu engine's Functions, and the same double backward as the
    reference engine's (equal generators: equal masks)."""
    name, kw = case
    reference, layer = make_pair(name, kw, "train", F64, hidden_size=3)
    x = torch.randn(3, 2, I, dtype=F64, requires_grad=True)
    lengths = torch.tensor([3, 2])

    def f(module):
        names = [n for n, _ in module.named_parameters()]

        def run(x, *params):
            module.generator.manual_seed(0)
            out = functional_call(module, dict(zip(names, params)), (x,), {"lengths": lengths})
            return tuple(output_tensors(out))
        return run

    params = list(layer.parameters())
    assert torch.autograd.gradgradcheck(f(layer), (x, *params), atol=1e-6)
    results = []
    for module in (reference, layer):
        wrt = [x, *module.parameters()]
        grads = torch.autograd.grad(loss_of(f(module)(x, *module.parameters())), wrt,
                                    create_graph=True)
        results.append(torch.autograd.grad(sum((g * g).sum() for g in grads), wrt))
    for a, e in zip(*results):
        assert_same(a, e, F64, "second derivative")


# ---- backend choice ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [
    ("LSTM", ACTS_A, "train"), ("LSTM", LSTM_REGS, "train"),
    ("LSTM", dict(zoneout=0.2, zoneout_eval="expectation"), "eval"),
    ("GRU", dict(REGS, **ACTS_A), "train"), ("RNN", REGS, "train"), ("SRU", dict(zoneout=0.2),
                                                                         "train"),
], ids=case_id)
def test_auto_picks_the_cpu_engine(case):
    """Every variant runs on the cpu engine under backend="auto", in training and in
    inference, at sizes where the plain LSTM's inference stays with torch's op."""
    name, kw, mode = case
    layer = getattr(rnnlab, name)(I, 256, **kw).train(mode == "train")
    big = Batch(torch.randn(T, 16, I))
    assert select_backend(layer, big).name == "cpu"
    with torch.no_grad():
        assert select_backend(layer, big).name == "cpu"
    with torch.no_grad():  # the plain LSTM's inference at this size: torch's op
        assert select_backend(rnnlab.LSTM(I, 256), big).name == "native"
