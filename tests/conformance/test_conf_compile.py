"""Conformance, graph capture: torch.compile with the default backend (inductor), torch.jit.trace
and torch.export, against torch.nn's eager results on the same weights (SRU: the oracle's).
The kernel engines (cpu, triton) run outside the compiled graph (a graph break) and refuse
jit.trace and export with a NotImplementedError naming the use.

Inductor compiles take seconds each: one compiled module per case, called twice."""

from __future__ import annotations

import pytest
import torch
from conformance_common import (
    CLEAR,
    B,
    Case,
    I,
    T,
    assert_clear_error,
    assert_close,
    expect,
    run,
    skip_reason,
)
from parity import loss_of

from rnnlab import regularisers


def fullgraph_possible(case) -> bool:
    """fullgraph=True except where rnnlab runs a kernel outside the graph: the LSTM's fused op
    on the CPU on the native engine (and so on auto), as torch.nn.LSTM's; the kernel engines'
    C++ and Triton kernels."""
    lstm_on_cpu = case.family == "LSTM" and case.engine in ("auto", "native") \
        and case.device == "cpu"
    return not (lstm_on_cpu or case.kernel)


def test_compile(case):
    """Compile once; call with T=5 and an input without grad (parameter gradients only), then
    with T=7 and an input that requires grad (a second, dynamic-shape graph): outputs and
    gradients equal torch.nn's eager ones."""
    expected, layer = case.make()
    compiled = torch.compile(layer, fullgraph=fullgraph_possible(case))
    for steps, input_grad in ((T, False), (T + 2, True)):
        x = case.randn(steps, B, I, requires_grad=input_grad)
        results = []
        for module, call in ((expected, expected), (layer, compiled)):
            out = run(call, x)
            wrt = [*module.parameters(), *([x] if input_grad else [])]
            results.append((out, torch.autograd.grad(loss_of(out), wrt)))
        (out_e, g_e), (out_a, g_a) = results
        assert_close(out_a, out_e, case.tol, f"compiled outputs, T={steps}")
        assert_close(g_a, g_e, case.tol, f"compiled gradients, T={steps}")


def test_jit_trace(case):
    """Trace (with torch's trace check), then call with the traced input and a new one."""
    expected, layer = case.make()
    x = case.randn(T, B, I)
    if expect("jit_trace", case.engine) == CLEAR:
        with pytest.raises(Exception) as info:
            torch.jit.trace(layer, (x,))
        return assert_clear_error(info, "jit_trace", case.engine)
    traced = torch.jit.trace(layer, (x,))
    for inp in (x, case.randn(T, B, I, requires_grad=True)):
        out_e, out_a = run(expected, inp), run(traced, inp)
        assert_close(out_a, out_e, case.tol, "traced outputs")
        if inp.requires_grad:
            g_e = torch.autograd.grad(loss_of(out_e), inp)
            g_a = torch.autograd.grad(loss_of(out_a), inp)
            assert_close(g_a, g_e, case.tol, "input gradient through the traced module")


def test_export(case):
    """torch.export.export, then run the exported program on the exported and a new input."""
    expected, layer = case.make()
    x = case.randn(T, B, I)
    if expect("export", case.engine) == CLEAR:
        with pytest.raises(Exception) as info:
            torch.export.export(layer, (x,))
        return assert_clear_error(info, "export", case.engine)
    program = torch.export.export(layer, (x,)).module()
    for inp in (x, case.randn(T, B, I)):
        assert_close(run(program, inp), run(expected, inp), case.tol, "exported outputs")


@pytest.mark.parametrize("engine", ["auto", "reference", "cpu"])
def test_compile_sru_with_graph_breaks(engine):
    """torch.compile's default (fullgraph=False) trains the SRU, torch.nn-less, whose hand BPTT
    Dynamo may not trace whole: outputs and parameter gradients equal the oracle's (one shape:
    the compile of a graph-broken Function is slow)."""
    case = Case("SRU", engine, "cpu")
    if (reason := skip_reason(case.family, engine, case.device)) is not None:
        pytest.skip(reason)
    expected, layer = case.make()
    x = case.randn(T, B, I)
    compiled = torch.compile(layer)
    results = []
    for module, call in ((expected, expected), (layer, compiled)):
        out = run(call, x)
        results.append((out, torch.autograd.grad(loss_of(out), list(module.parameters()))))
    assert_close(results[1][0], results[0][0], case.tol, "compiled outputs")
    assert_close(results[1][1], results[0][1], case.tol, "compiled parameter gradients")


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                        reason="needs CUDA"))])
def test_compiled_mask_draws_keep_their_rate(device):
    """Regulariser masks drawn inside a compiled graph (inductor's own random numbers, its
    ``randint`` over the whole int64 range) keep their rate in each of the four 16-bit draws
    cut from a word (64 Ki draws each: 0.01 is 5 standard deviations)."""
    like = torch.empty(0, device=device)
    draw = torch.compile(lambda: regularisers.bernoulli((4096, 64), 0.3, like), fullgraph=True)
    rates = draw().view(-1, 4).mean(0)  # column k: the k-th 16 bits of every word
    assert torch.all((rates - 0.3).abs() < 0.01), rates
