"""The ``cpu`` backend (C++ forward and BPTT): parity with torch.nn and with the reference
backend (outputs and every gradient), gradcheck of its autograd Functions, layer options
(stacked, bidirectional, packed with unsorted lengths, batch_first, unbatched), inference,
unsupported calls and the fallback when the extension cannot be built."""

import itertools

import pytest
import torch
from cpu_engine_required import require_cpu_engine
from parity import assert_same, loss_of, make_input, make_pair, output_tensors

import rnnlab
from rnnlab.backends import BACKENDS, select_backend
from rnnlab.backends import cpu as cpu_backend
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
DTYPES = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
TORCH_FAMILIES = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def grads(out_tensors, wrt):
    return torch.autograd.grad(loss_of(out_tensors), wrt, allow_unused=True, retain_graph=True)


def compare(expected_layer, actual_layer, x, leaf, hx, state_leaves, dtype):
    expected = output_tensors(expected_layer(x, hx))
    actual = output_tensors(actual_layer(x, hx))
    for name, a, e in zip(("output", "h_n", "c_n"), actual, expected):
        assert_same(a, e, dtype, name)
    wrt_e = [leaf, *state_leaves, *expected_layer.parameters()]
    wrt_a = [leaf, *state_leaves, *actual_layer.parameters()]
    names = ["input", *(f"state{k}" for k in range(len(state_leaves))),
             *(n for n, _ in actual_layer.named_parameters())]
    for name, a, e in zip(names, grads(actual, wrt_a), grads(expected, wrt_e)):
        assert (a is None) == (e is None), name
        if a is not None:
            assert_same(a, e, dtype, f"grad {name}")


def states_for(layer, form, dtype, batch_size=B):
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    batch = () if form == "unbatched" else (batch_size,)
    sizes = layer.state_sizes()
    leaves = [torch.randn(rows, *batch, s, dtype=dtype, requires_grad=True) for s in sizes]
    hx = tuple(leaves) if len(leaves) > 1 else leaves[0]
    return hx, leaves


GRID = [
    {"family": f, "num_layers": L, "bidirectional": bi, "batch_first": bf, "form": form,
     "given": given, "proj_size": proj}
    for f, L, bi, bf, form, given, proj in itertools.product(
        TORCH_FAMILIES, (1, 2), (False, True), (False, True), ("padded", "packed", "unbatched"),
        (False, True), (0, 3))
    if not (proj and f != "lstm") and not (bf and form == "unbatched")
    and not (given and bf)  # keep the grid small: states are independent of batch_first
]


def grid_id(c):
    return "-".join([c["family"], f"L{c['num_layers']}", "bi" if c["bidirectional"] else "uni",
                     "bf" if c["batch_first"] else "tf", c["form"],
                     "h0" if c["given"] else "noh0", f"P{c['proj_size']}"])


@DTYPES
@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_matches_torch(case, dtype):
    kw = {"input_size": I, "hidden_size": H, "num_layers": case["num_layers"],
              "batch_first": case["batch_first"], "bidirectional": case["bidirectional"]}
    if case["proj_size"]:
        kw["proj_size"] = case["proj_size"]
    reference, layer = make_pair(case["family"], "cpu", dtype, **kw)
    x, leaf = make_input(case["form"], T, B, I, case["batch_first"], dtype)
    hx, leaves = states_for(layer, case["form"], dtype) if case["given"] else (None, [])
    compare(reference, layer, x, leaf, hx, leaves, dtype)


@DTYPES
@pytest.mark.parametrize("family", TORCH_FAMILIES)
def test_no_bias_matches_torch(family, dtype):
    reference, layer = make_pair(family, "cpu", dtype, input_size=I, hidden_size=H, bias=False,
                                 num_layers=2)
    x, leaf = make_input("packed", T, B, I, False, dtype)
    compare(reference, layer, x, leaf, None, [], dtype)


# ---- variants beyond torch.nn: against the reference backend ----------------------------------
VARIANTS = [
    ("LSTM", {"peephole": True}),
    ("LSTM", {"cell_clip": 0.3}),
    ("LSTM", {"coupled": True}),
    ("LSTM", {"peephole": True, "cell_clip": 0.4, "coupled": True, "proj_size": 2}),
    ("GRU", {"reset_after": False}),
    ("GRU", {"reset_after": False, "bias": False}),
    ("RNN", {"nonlinearity": "relu", "bias": False}),
    ("SRU", {}),
]


def variant_id(v):
    return v[0] + "-" + "-".join(f"{k}={w}" for k, w in v[1].items())


def reference_pair(name, dtype, **kw):
    reference = getattr(rnnlab, name)(backend="reference", dtype=dtype, **kw)
    layer = getattr(rnnlab, name)(backend="cpu", dtype=dtype, **kw)
    layer.load_state_dict(reference.state_dict())
    return reference, layer


@DTYPES
@pytest.mark.parametrize("form", ["padded", "packed"])
@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_variants_match_reference(variant, form, dtype):
    name, kw = variant
    if not hasattr(rnnlab, name):
        pytest.skip(f"rnnlab has no {name}")
    reference, layer = reference_pair(name, dtype, input_size=I, hidden_size=H, num_layers=2,
                                      bidirectional=True, **kw)
    x, leaf = make_input(form, T, B, I, False, dtype)
    hx, leaves = states_for(layer, form, dtype)
    compare(reference, layer, x, leaf, hx, leaves, dtype)


def test_lengths_argument_and_learned_state():
    reference, layer = reference_pair("LSTM", torch.float64, input_size=I, hidden_size=H,
                                      batch_first=True, initial_state="learned")
    with torch.no_grad():
        for p in (reference.initial_h, reference.initial_c):
            p.normal_()
    layer.load_state_dict(reference.state_dict())
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([2, T, 1, 4])
    out_r, (h_r, c_r) = reference(x, lengths=lengths)
    out_c, (h_c, c_c) = layer(x, lengths=lengths)
    for a, e in ((out_c, out_r), (h_c, h_r), (c_c, c_r)):
        assert_same(a, e, torch.float64, "output")
    g_r = grads([out_r, h_r, c_r], [x, *reference.parameters()])
    g_c = grads([out_c, h_c, c_c], [x, *layer.parameters()])
    for a, e in zip(g_c, g_r):
        assert_same(a, e, torch.float64, "grad")


# ---- the autograd Functions themselves --------------------------------------------------------
def small(*shape, grad=True):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=grad)


MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.bool)


def test_gradcheck_lstm_function():
    Ts, Bs, Is, Hs, Ps = 4, 3, 2, 3, 2
    for proj, peep, clip, coupled, m in [(False, False, None, False, None),
                                         (True, True, 0.5, False, MASK),
                                         (False, True, None, True, MASK)]:
        P = Ps if proj else Hs
        args = (small(Ts, Bs, Is), small(Bs, P), small(Bs, Hs), small(4 * Hs, Is),
                small(4 * Hs, P), small(4 * Hs), small(4 * Hs), small(3, Hs) if peep else None,
                small(P, Hs) if proj else None)
        def fn(*a, m=m, clip=clip, coupled=coupled):
            return cpu_lstm.LSTMFunction.apply(*a, m, LSTMOptions(clip, coupled))

        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_gru_function(reset_after, masked):
    Ts, Bs, Is, Hs = 4, 3, 2, 3
    args = (small(Ts, Bs, Is), small(Bs, Hs), small(3 * Hs, Is), small(3 * Hs, Hs),
            small(3 * Hs), small(3 * Hs))
    m = MASK if masked else None
    assert torch.autograd.gradcheck(
        lambda *a: cpu_gru.GRUFunction.apply(*a, m, GRUOptions(reset_after)), args, eps=1e-6,
        atol=1e-7)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_rnn_function(relu, masked):
    Ts, Bs, Is, Hs = 4, 3, 2, 3
    args = (small(Ts, Bs, Is), small(Bs, Hs), small(Hs, Is), small(Hs, Hs), small(Hs),
            small(Hs))
    m = MASK if masked else None
    assert torch.autograd.gradcheck(
        lambda *a: cpu_rnn.RNNFunction.apply(*a, m, RNNOptions("relu" if relu else "tanh")),
        args, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("highway_proj", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_sru_function(highway_proj, masked):
    Ts, Bs, Hs = 4, 3, 3
    Is = 2 if highway_proj else Hs
    rows = (4 if highway_proj else 3) * Hs
    args = (small(Ts, Bs, Is), small(Bs, Hs), small(rows, Is), small(2, Hs), small(2 * Hs))
    m = MASK if masked else None
    assert torch.autograd.gradcheck(
        lambda *a: cpu_sru.SRUFunction.apply(*a, m), args, eps=1e-6, atol=1e-7)


def test_repeated_backward_and_inference():
    layer = rnnlab.LSTM(I, H, num_layers=2, backend="cpu", dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    out, _ = layer(x)
    (g1,) = torch.autograd.grad(out.sum(), x, retain_graph=True)
    (g2,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(g1, g2)
    with torch.no_grad():
        out_ng, _ = layer(x)
    with torch.inference_mode():
        out_inf, _ = layer(x)
    assert torch.equal(out_ng, out.detach()) and torch.equal(out_inf, out.detach())
    assert out_ng.grad_fn is None


def test_float32_long_sequence_as_accurate_as_torch():
    """Many steps and larger sizes (several K chunks, row blocks and partial panels in the
    packed GEMMs): in float32, the engine is as close to the float64 result as torch.nn is."""
    torch.manual_seed(0)
    exact = torch.nn.LSTM(37, 70, dtype=torch.float64)
    ours = rnnlab.LSTM(37, 70, backend="cpu")
    theirs = torch.nn.LSTM(37, 70)
    ours.load_state_dict(exact.state_dict())
    theirs.load_state_dict(exact.state_dict())
    x = torch.randn(90, 11, 37, dtype=torch.float64)
    results = []
    for m in (exact, ours, theirs):
        xi = x.to(next(m.parameters()).dtype).requires_grad_()
        out, (h, c) = m(xi)
        g = grads([out, h, c], [xi, *m.parameters()])
        results.append([t.detach().double() for t in (out, h, c, *g)])
    for e, a, t in zip(*results):
        err_ours, err_torch = (a - e).abs().max().item(), (t - e).abs().max().item()
        assert err_ours <= 4 * err_torch + 1e-6 * e.abs().max().item(), (err_ours, err_torch)


TEAM_CASES = [
    ("LSTM", {}), ("LSTM", {"proj_size": 37}), ("LSTM", {"peephole": True, "cell_clip": 0.5}),
    ("GRU", {}), ("GRU", {"reset_after": False}), ("RNN", {}), ("RNN", {"nonlinearity": "relu"}),
    ("SRU", {}),
]


@DTYPES
@pytest.mark.parametrize("variant", TEAM_CASES, ids=variant_id)
def test_two_threads_match_reference(variant, dtype):
    """Sizes where the time loop runs on a team of threads (each owning a slice of the hidden
    units, partial panels included), with padded steps: same result as the reference."""
    name, kw = variant
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        reference, layer = reference_pair(name, dtype, input_size=I, hidden_size=90,
                                          bidirectional=True, **kw)
        x, leaf = make_input("packed", 7, 9, I, False, dtype)
        hx, leaves = states_for(layer, "packed", dtype, batch_size=9)
        compare(reference, layer, x, leaf, hx, leaves, dtype)
    finally:
        torch.set_num_threads(threads)


# ---- what the backend refuses, and the fallback -------------------------------------------------
def test_unsupported_reasons():
    x = torch.randn(T, B, I)
    assert cpu_backend.unsupported(rnnlab.LSTM(I, H), Batch(x)) is None
    meta = Batch(torch.empty(T, B, I, device="meta"))
    assert "CPU" in cpu_backend.unsupported(rnnlab.LSTM(I, H, device="meta"), meta)
    half = rnnlab.LSTM(I, H, dtype=torch.bfloat16)
    assert "bfloat16" in cpu_backend.unsupported(half, Batch(x.bfloat16()))
    assert "float64" in cpu_backend.unsupported(rnnlab.LSTM(I, H), Batch(x.double()))
    assert cpu_backend.unsupported(rnnlab.LSTM(I, H, layer_norm=True), Batch(x)) is None


def test_auto_uses_cpu_where_preferred_and_falls_back(monkeypatch):
    x = Batch(torch.randn(T, B, I))
    layer = rnnlab.LSTM(I, H, peephole=True)
    assert select_backend(layer, x).name == "cpu"  # native cannot run peepholes
    monkeypatch.delenv("RNNLAB_REQUIRE_CPU_ENGINE", raising=False)  # CI sets it
    monkeypatch.setattr(_build, "_module", None)
    monkeypatch.setattr(_build, "_error", "RuntimeError: no compiler")
    monkeypatch.setattr(_build, "_tried", True)
    assert select_backend(layer, x).name == "reference"
    assert "no compiler" in BACKENDS["cpu"].unsupported(layer, x)
    with pytest.raises(ValueError, match="no compiler"):
        rnnlab.LSTM(I, H, backend="cpu")(torch.randn(T, B, I))


@pytest.mark.parametrize("isa, train_16, train_64", [
    ("AVX2", "cpu", "cpu"),  # benchmarks/results/cpu_engine.md
    ("AVX512", "native", "cpu"),  # benchmarks/results/cpu_engine_avx512.md
    ("NEON", "cpu", "cpu"),  # unmeasured: the AVX2 rule
])
def test_auto_takes_the_engine_measured_faster_on_the_machines_isa(isa, train_16, train_64,
                                                                    monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
    plain, small_lstm = rnnlab.LSTM(I, 256), rnnlab.LSTM(I, 64)
    big, bigger, small = (Batch(torch.randn(T, b, I)) for b in (16, 64, 1))
    assert select_backend(plain, big).name == train_16
    assert select_backend(plain, bigger).name == train_64
    assert select_backend(small_lstm, small).name == "cpu"
    with torch.no_grad():
        assert select_backend(plain, big).name == "native"
        assert select_backend(small_lstm, small).name == "cpu"
        assert select_backend(rnnlab.GRU(I, 256), big).name == "cpu"  # every GRU: cpu
    assert select_backend(rnnlab.LSTM(I, 256, zoneout=0.1), big).name == "cpu"  # not torch's


def test_auto_at_the_avx512_crossover(monkeypatch):
    """B·H = 16·128 on AVX-512: oneDNN's LSTM trains faster, inference goes to this engine."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    layer, x = rnnlab.LSTM(I, 128), Batch(torch.randn(T, 16, I))
    assert select_backend(layer, x).name == "native"
    with torch.no_grad():
        assert select_backend(layer, x).name == "cpu"


def _forget_the_build(monkeypatch, build=None):
    for name, value in (("_module", None), ("_error", None), ("_failure", None), ("_tried", False)):
        monkeypatch.setattr(_build, name, value)
    if build is not None:
        monkeypatch.setattr(_build, "_build", build)


def _broken_build():
    raise RuntimeError("Error building extension 'rnnlab_cpu': [1/5] c++ -MMD lstm.cpp\n"
                       "FAILED: lstm.o\n"
                       "lstm.cpp:347:58: error: call of overloaded 'sum' is ambiguous\n"
                       "ninja: build stopped: subcommand failed.")


def test_a_failed_build_warns_and_falls_back(monkeypatch):
    monkeypatch.delenv("RNNLAB_REQUIRE_CPU_ENGINE", raising=False)
    _forget_the_build(monkeypatch, _broken_build)
    with pytest.warns(RuntimeWarning, match="RNNLAB_REQUIRE_CPU_ENGINE=1 makes this an error"):
        assert _build.load() is None
    assert "lstm.cpp:347:58: error: call of overloaded" in _build.error()  # the compiler's error
    layer = rnnlab.LSTM(I, H, peephole=True)
    assert select_backend(layer, Batch(torch.randn(T, B, I))).name == "reference"


@pytest.mark.parametrize("value", ["1", "yes"])
def test_require_cpu_engine_makes_a_failed_build_an_error(monkeypatch, value):
    monkeypatch.setenv("RNNLAB_REQUIRE_CPU_ENGINE", value)
    _forget_the_build(monkeypatch, _broken_build)
    everything = r"(?s)RNNLAB_REQUIRE_CPU_ENGINE=1 but .*error: call of overloaded.*build stopped"
    with pytest.raises(RuntimeError, match=everything):  # no warning, no fallback
        rnnlab.LSTM(I, H, peephole=True)(torch.randn(T, B, I))  # auto
    with pytest.raises(RuntimeError, match=everything):  # every later use too
        _build.error()


def test_require_cpu_engine_with_the_engine_switched_off_is_an_error(monkeypatch):
    monkeypatch.setenv("RNNLAB_REQUIRE_CPU_ENGINE", "1")
    monkeypatch.setenv("RNNLAB_CPU_ENGINE", "0")
    _forget_the_build(monkeypatch)
    with pytest.raises(RuntimeError, match="switched off by RNNLAB_CPU_ENGINE=0"):
        _build.load()


def test_require_cpu_engine_0_means_not_required(monkeypatch):
    monkeypatch.setenv("RNNLAB_REQUIRE_CPU_ENGINE", "0")
    assert not _build.required()
    monkeypatch.setenv("RNNLAB_REQUIRE_CPU_ENGINE", "1")
    assert _build.required()
