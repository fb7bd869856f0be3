"""Conformance, differentiation: backward, double backward, torch.func (functional_call, grad,
vjp, jvp, vmap) and forward-mode AD, each against torch.nn on the same weights (SRU: the
autograd oracle), on every engine (see conformance_common.expect).

The native engine is torch.nn's own op: where torch.nn raises (vmap; the CPU LSTM's float32
jvp; on CUDA whatever cuDNN cannot differentiate) it must raise the same error
(``expected_or_error``)."""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from conformance_common import (
    AS_TORCH,
    CLEAR,
    B,
    H,
    I,
    T,
    assert_close,
    assert_raises_same,
    assert_refused,
    expect,
    expected_or_error,
    oracle,
    run,
)
from parity import loss_of


def grads(module, x, hx, leaves, create_graph=False):
    out = run(module, x, hx)
    wrt = [x, *leaves, *module.parameters()]
    return out, list(torch.autograd.grad(loss_of(out), wrt, create_graph=create_graph))


def test_forward_backward(case):
    expected, layer = case.make()
    x = case.randn(T, B, I, requires_grad=True)
    hx, leaves = case.states(requires_grad=True)
    want, error = expected_or_error(case, lambda: grads(expected, x, hx, leaves))
    if error is not None:
        return assert_raises_same(error, lambda: grads(layer, x, hx, leaves))
    out_a, g_a = grads(layer, x, hx, leaves)
    assert_close(out_a, want[0], case.tol, "outputs")
    assert_close(g_a, want[1], case.tol, "gradients (input, states, parameters)")


def test_forward_backward_projected_lstm(case):
    """torch.nn.LSTM's ``proj_size`` (``h_t = W_hr (o∘tanh c_t)``, P = 2 units beside H = 6
    cells): outputs, final states and every gradient, ``weight_hr_l0`` included."""
    if case.family != "LSTM":
        pytest.skip("proj_size is the LSTM's")
    expected, layer = case.make(proj_size=2)
    x = case.randn(T, B, I, requires_grad=True)
    leaves = [case.randn(1, B, 2, requires_grad=True), case.randn(1, B, H, requires_grad=True)]
    want, error = expected_or_error(case, lambda: grads(expected, x, tuple(leaves), leaves))
    if error is not None:
        return assert_raises_same(error, lambda: grads(layer, x, tuple(leaves), leaves))
    out_a, g_a = grads(layer, x, tuple(leaves), leaves)
    assert "weight_hr_l0" in dict(layer.named_parameters())
    assert_close(out_a, want[0], case.tol, "outputs")
    assert_close(g_a, want[1], case.tol, "gradients (input, states, parameters)")


def test_double_backward(case):
    """A gradient penalty: the first-order gradients with create_graph=True, then the gradient
    of their weighted squares, against torch.nn's second-order gradients."""
    expected, layer = case.make()
    x = case.randn(T, B, I, requires_grad=True)
    hx, leaves = case.states(requires_grad=True)

    def second_order(module):
        _, first = grads(module, x, hx, leaves, create_graph=True)
        penalty = sum((k + 1) * g.square().sum() for k, g in enumerate(first))
        second = torch.autograd.grad(penalty, [x, *leaves, *module.parameters()])
        return [g.detach() for g in first], list(second)

    want, error = expected_or_error(case, lambda: second_order(expected))
    if error is not None:
        return assert_raises_same(error, lambda: second_order(layer))
    first_a, second_a = second_order(layer)
    assert_close(first_a, want[0], case.tol, "first-order gradients")
    assert_close(second_a, want[1], case.tol2, "second-order gradients")


def params_of(module, scale=1.0):
    return {k: (v.detach() * scale) for k, v in module.named_parameters()}


def test_functional_call(case):
    """functional_call with other parameters computes torch.nn's function of those parameters
    (no transform: every engine runs it); the layer's own parameters are untouched."""
    expected, layer = case.make()
    x = case.randn(T, B, I)
    before = params_of(layer)
    new = params_of(expected, scale=1.5)
    out_e = run(lambda *a: torch.func.functional_call(expected, new, a), x)
    out_a = run(lambda *a: torch.func.functional_call(layer, new, a), x)
    assert_close(out_a, out_e, case.tol, "outputs under functional_call")
    assert_close(list(params_of(layer).values()), list(before.values()), dict(atol=0, rtol=0),
                 "the layer's own parameters")


def func_grad(module, x):
    loss = lambda p, x: loss_of(run(lambda *a: torch.func.functional_call(module, p, a), x))
    g_params, g_x = torch.func.grad(loss, argnums=(0, 1))(params_of(module), x)
    return list(g_params), [*g_params.values(), g_x]


def test_func_grad(case):
    expected, layer = case.make()
    x = case.randn(T, B, I)
    if expect("func_grad", case.engine) == CLEAR:
        return assert_refused(case, "func_grad", lambda: func_grad(layer, x))
    want, error = expected_or_error(case, lambda: func_grad(expected, x))
    if error is not None:
        return assert_raises_same(error, lambda: func_grad(layer, x))
    names, got = func_grad(layer, x)
    assert names == want[0]
    assert_close(got, want[1], case.tol, "torch.func.grad (parameters, input)")


def test_func_vjp(case):
    expected, layer = case.make()
    x = case.randn(T, B, I)
    _, leaves = case.states()

    def vjp(module):
        out, pullback = torch.func.vjp(lambda x, *s: tuple(run(module, x, case.join(s))),
                                       x, *leaves)
        torch.manual_seed(3)
        return list(out), list(pullback(tuple(torch.randn_like(o) for o in out)))

    if expect("func_vjp", case.engine) == CLEAR:
        return assert_refused(case, "func_vjp", lambda: vjp(layer))
    want, error = expected_or_error(case, lambda: vjp(expected))
    if error is not None:
        return assert_raises_same(error, lambda: vjp(layer))
    out_a, cot_a = vjp(layer)
    assert_close(out_a, want[0], case.tol, "outputs")
    assert_close(cot_a, want[1], case.tol, "vjp (input, states)")


def jvp(module, x, v):
    out, tangent = torch.func.jvp(lambda x: tuple(run(module, x)), (x,), (v,))
    return list(out), list(tangent)


def test_func_jvp(case):
    """float64: torch.nn computes jvp for all three families on the CPU; compare with it."""
    expected, layer = case.make()
    x, v = case.randn(T, B, I), case.randn(T, B, I)
    if expect("func_jvp", case.engine) == CLEAR:
        return assert_refused(case, "func_jvp", lambda: jvp(layer, x, v))
    want, error = expected_or_error(case, lambda: jvp(expected, x, v))
    if error is not None:
        return assert_raises_same(error, lambda: jvp(layer, x, v))
    out_a, tan_a = jvp(layer, x, v)
    assert_close(out_a, want[0], case.tol, "outputs")
    assert_close(tan_a, want[1], case.tol, "jvp tangents")


def test_func_jvp_f32(case):
    """float32: torch.nn's CPU LSTM has no forward AD (mkldnn_rnn_layer) and raises; native
    raises the same, auto and reference compute it: compared with torch.nn's float64 jvp on
    the same weights (SRU: the oracle's)."""
    expected, layer = case.make(dtype=torch.float32)
    x, v = case.randn(T, B, I, dtype=torch.float32), case.randn(T, B, I, dtype=torch.float32)
    if expect("func_jvp_f32", case.engine) == CLEAR:
        return assert_refused(case, "func_jvp_f32", lambda: jvp(layer, x, v))
    try:
        with oracle(case):
            out_e, tan_e = jvp(expected, x, v)
    except Exception as exc:  # torch.nn cannot: the oracle is its float64 jvp
        if expect("func_jvp_f32", case.engine) == AS_TORCH:
            return assert_raises_same(exc, lambda: jvp(layer, x, v))
        with oracle(case):
            out_e, tan_e = jvp(expected.double(), x.double(), v.double())
        out_e, tan_e = [t.float() for t in out_e], [t.float() for t in tan_e]
    out_a, tan_a = jvp(layer, x, v)
    assert_close(out_a, out_e, dict(atol=1e-5, rtol=1e-5), "outputs")
    assert_close(tan_a, tan_e, dict(atol=1e-5, rtol=1e-5), "jvp tangents")


def test_forward_ad(case):
    """Dual tensors (torch.autograd.forward_ad), input and initial state tangents."""
    expected, layer = case.make()
    x, v = case.randn(T, B, I), case.randn(T, B, I)
    _, leaves = case.states()
    tangents = [torch.randn_like(s) for s in leaves]

    def forward(module):
        with fwAD.dual_level():
            states = [fwAD.make_dual(s, t) for s, t in zip(leaves, tangents)]
            out = run(module, fwAD.make_dual(x, v), case.join(states))
            return [fwAD.unpack_dual(o).primal for o in out], \
                   [fwAD.unpack_dual(o).tangent for o in out]

    if expect("forward_ad", case.engine) == CLEAR:
        return assert_refused(case, "forward_ad", lambda: forward(layer))
    want, error = expected_or_error(case, lambda: forward(expected))
    if error is not None:
        return assert_raises_same(error, lambda: forward(layer))
    out_a, tan_a = forward(layer)
    assert_close(out_a, want[0], case.tol, "outputs")
    assert_close(tan_a, want[1], case.tol, "tangents")


def test_func_vmap(case):
    """vmap over a leading dimension of two inputs. torch.nn has no batching rule for its fused
    ops (RuntimeError) and native raises the same; auto and reference compute it: compared
    with a Python loop of torch.nn calls (SRU: of oracle calls)."""
    expected, layer = case.make()
    xs = case.randn(2, T, B, I)
    batched = lambda m: list(torch.func.vmap(lambda x: tuple(run(m, x)))(xs))
    with oracle(case):
        looped = [torch.stack(ts) for ts in zip(*(run(expected, x) for x in xs))]
    outcome = expect("func_vmap", case.engine)
    if outcome == CLEAR:
        return assert_refused(case, "func_vmap", lambda: batched(layer))
    if outcome == AS_TORCH:
        try:  # torch.nn as a user has it (cuDNN included)
            torch_result = batched(expected)
        except RuntimeError as exc:
            return assert_raises_same(exc, lambda: batched(layer))
        assert_close(torch_result, looped, case.tol, "torch.nn under vmap")
    assert_close(batched(layer), looped, case.tol, "vmap against a loop over the batch")


def test_torch_nn_vmap_and_f32_lstm_jvp_still_fail():
    """The premise of the 'as torch.nn' cells: torch.nn raises there (on this torch, on the
    CPU). If torch learns them, the table should say so."""
    gru = torch.nn.GRU(I, H)
    with pytest.raises(RuntimeError, match="Batching rule not implemented"):
        torch.func.vmap(lambda x: gru(x)[0])(torch.randn(2, T, B, I))
    lstm, x = torch.nn.LSTM(I, H), torch.randn(T, B, I)
    with pytest.raises(NotImplementedError, match="forward AD"):
        torch.func.jvp(lambda x: lstm(x)[0], (x,), (torch.randn_like(x),))
