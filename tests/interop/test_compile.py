"""rnnlab layers under torch.compile: same outputs and gradients as eager.

Kept fast with Dynamo's ``eager`` backend (graph capture, no code generation); one
``aot_eager`` check; ``aot_eager`` through the reference engine's unrolled twin is marked slow.
The default (Inductor) backend is tested in ``tests/conformance/``.
"""

import pytest
import torch

import rnnlab

T, B, I, H = 3, 2, 3, 4


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def forward_backward(fn, m, x):
    torch.manual_seed(1)  # the same regulariser masks in both runs
    out, state = fn(x)
    state = state if isinstance(state, tuple) else (state,)
    loss = (out * torch.linspace(-1, 1, out.shape[-1])).sum() + sum(s.square().sum() for s in state)
    grads = torch.autograd.grad(loss, [x, *m.parameters()])
    return [out, *state, *grads]


def check_compiles(m, backend="eager", fullgraph=True, atol=0.0):
    x = torch.randn(T, B, m.input_size, requires_grad=True)
    expected = forward_backward(m, m, x)
    got = forward_backward(torch.compile(m, backend=backend, fullgraph=fullgraph), m, x)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=0 if atol == 0 else 1e-5)


@pytest.mark.parametrize("make", [
    lambda: rnnlab.GRU(I, H, backend="native", batch_first=True),
    lambda: rnnlab.RNN(I, H, nonlinearity="relu", backend="native"),
], ids=["gru", "rnn"])
def test_native_backend_fullgraph(make):
    check_compiles(make())


def test_native_lstm_runs_outside_the_graph_on_the_cpu():
    """The CPU LSTM's fused op is a graph break, as in torch.nn.LSTM (Inductor miscompiles its
    oneDNN kernel): right results, no fullgraph."""
    m = rnnlab.LSTM(I, H, num_layers=2, bidirectional=True, backend="native")
    check_compiles(m, fullgraph=False)
    explained = torch._dynamo.explain(m)(torch.randn(T, B, I))
    assert any("disable" in r.reason for r in explained.break_reasons), explained.break_reasons


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_auto_backend_compiles(family):
    """``backend="auto"`` skips the C++ ``cpu`` engine while compiling (its extension calls
    cannot be traced) and takes ``native``: the same function, so equal up to rounding with
    the eager call (which may run the cpu engine). Full graph but for the CPU LSTM's op."""
    check_compiles(getattr(rnnlab, family)(I, H, num_layers=2), atol=1e-5,
                   fullgraph=family != "LSTM")


def test_native_backend_aot_eager():
    check_compiles(rnnlab.RNN(I, H, backend="native"), backend="aot_eager", atol=1e-6)


REFERENCE = {
    "rnn-2-layers": lambda: rnnlab.RNN(I, H, num_layers=2, backend="reference"),
    "lstm-peephole-coupled-clip": lambda: rnnlab.LSTM(I, H, peephole=True, coupled=True,
                                                      cell_clip=0.5, backend="reference"),
    "lstm-proj-bi": lambda: rnnlab.LSTM(I, H, proj_size=2, bidirectional=True,
                                        backend="reference"),
    "gru-reset-before": lambda: rnnlab.GRU(I, H, reset_after=False, backend="reference"),
    "sru": lambda: rnnlab.SRU(I, H, num_layers=2, backend="reference"),
    "lstm-layer_norm": lambda: rnnlab.LSTM(I, H, layer_norm=True, backend="reference"),
    "gru-layer_norm": lambda: rnnlab.GRU(I, H, layer_norm=True, backend="reference"),
    "lstm-activations-zoneout": lambda: rnnlab.LSTM(I, H, gate_activation="hard_sigmoid",
                                                    zoneout=0.2, backend="reference"),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_backend_fullgraph(name):
    """Under torch.compile the reference engine runs its autograd twin (plain operations):
    one graph, and the gradients autograd derives from it equal the hand BPTT's."""
    check_compiles(REFERENCE[name](), atol=1e-6)


def test_padded_batch_reference_backend():
    """``lengths=`` breaks the graph (validation reads them); the reference backend is right
    (its twin under Dynamo, equal to the hand forward up to rounding)."""
    m = rnnlab.GRU(I, H, backend="reference")
    x, lengths = torch.randn(T, B, I), torch.tensor([T, 1])
    torch.testing.assert_close(torch.compile(m, backend="eager")(x, lengths=lengths)[0],
                               m(x, lengths=lengths)[0])


@pytest.mark.xfail(raises=IndexError, strict=False,
                   reason="native + lengths: pad_packed_sequence fails after Dynamo's graph "
                          "break (torch 2.13)")
def test_padded_batch_native_backend():
    m = rnnlab.GRU(I, H, backend="native")
    x, lengths = torch.randn(T, B, I), torch.tensor([T, 1])
    torch.testing.assert_close(torch.compile(m, backend="eager")(x, lengths=lengths)[0],
                               m(x, lengths=lengths)[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm-peephole-coupled-clip", "sru"])
def test_reference_backend_aot_eager(name):
    check_compiles(REFERENCE[name](), backend="aot_eager", atol=1e-6)
