"""rnnlab.RNN / RNNCell: parity with torch.nn (reference and native backends), the hand-derived
BPTT against gradcheck and against autograd through a loop of the cell, trace, torch interop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnlab
from rnnlab.bptt.rnn import RNNFunction, RNNOptions, rnn_forward
from rnnlab.cells.rnn import rnn_step

F64 = torch.float64
TOL = dict(atol=1e-10, rtol=1e-10)
T, B, I, H = 5, 3, 4, 5
LENGTHS = torch.tensor([3, 5, 1])  # unsorted, one full-length sequence


def loss_of(tensors):
    """Weights every element differently, so every gradient path is exercised."""
    total = 0
    for k, t in enumerate(tensors):
        w = torch.linspace(-1, 1, t.numel(), dtype=t.dtype).view_as(t)
        total = total + ((t * w).sin() * (k + 1)).sum()
    return total


def flat_out(out):
    y, h = out
    return [y.data if isinstance(y, PackedSequence) else y, h]


CONFIGS = [dict(num_layers=L, bidirectional=bi, batch_first=bf, bias=bias)
           for L, bi, bf, bias in [(1, False, False, True), (1, True, True, False),
                                   (2, False, True, True), (2, True, False, True),
                                   (2, True, True, False)]]
FORMS = ["padded", "packed", "unbatched", "h0", "packed_h0"]


def config_id(c):
    return (f"L{c['num_layers']}-{'bi' if c['bidirectional'] else 'uni'}-"
            f"{'bf' if c['batch_first'] else 'tf'}-{'bias' if c['bias'] else 'nobias'}")


def make_input(form, batch_first, rows):
    """(input for the layer, leaves whose gradients are compared, hx)."""
    if form == "unbatched":
        x = torch.randn(T, I, dtype=F64, requires_grad=True)
        return x, [x], None
    x = torch.randn(*((B, T) if batch_first else (T, B)), I, dtype=F64, requires_grad=True)
    leaves, hx = [x], None
    if form.endswith("h0"):
        hx = torch.randn(rows, B, H, dtype=F64, requires_grad=True)
        leaves.append(hx)
    if form.startswith("packed"):
        packed = pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False)
        return packed, leaves, hx
    return x, leaves, hx


GRID = [(c, f) for c in CONFIGS for f in FORMS if not (f == "unbatched" and c["batch_first"])]


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("config,form", GRID, ids=[f"{config_id(c)}-{f}" for c, f in GRID])
def test_matches_torch(config, form, nonlinearity, backend):
    reference = torch.nn.RNN(I, H, nonlinearity=nonlinearity, **config, dtype=F64)
    layer = rnnlab.RNN(I, H, nonlinearity=nonlinearity, **config, backend=backend, dtype=F64)
    layer.load_state_dict(reference.state_dict())
    rows = config["num_layers"] * (2 if config["bidirectional"] else 1)
    x, leaves, hx = make_input(form, config["batch_first"], rows)
    expected, actual = flat_out(reference(x, hx)), flat_out(layer(x, hx))
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **TOL)
    names = ["input", "h0"][:len(leaves)] + [n for n, _ in reference.named_parameters()]
    ge = torch.autograd.grad(loss_of(expected), leaves + list(reference.parameters()),
                             retain_graph=True)
    ga = torch.autograd.grad(loss_of(actual), leaves + list(layer.parameters()))
    for name, a, e in zip(names, ga, ge):
        torch.testing.assert_close(a, e, **TOL, msg=lambda m, name=name: f"grad {name}: {m}")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_lengths_argument_matches_packed(nonlinearity):
    layer = rnnlab.RNN(I, H, 2, nonlinearity, bidirectional=True, backend="reference", dtype=F64)
    x = torch.randn(T, B, I, dtype=F64)
    y, h = layer(x, lengths=LENGTHS)
    yp, hp = layer(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    yp, _ = torch.nn.utils.rnn.pad_packed_sequence(yp, total_length=T)
    torch.testing.assert_close(y, yp, **TOL)
    torch.testing.assert_close(h, hp, **TOL)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_cell_matches_torch(nonlinearity, bias):
    reference = torch.nn.RNNCell(I, H, bias, nonlinearity, dtype=F64)
    cell = rnnlab.RNNCell(I, H, bias, nonlinearity, dtype=F64)
    cell.load_state_dict(reference.state_dict())
    x, h = torch.randn(B, I, dtype=F64), torch.randn(B, H, dtype=F64)
    for args in [(x,), (x, h), (x[0],), (x[0], h[0])]:
        e, a = reference(*args), cell(*args)
        torch.testing.assert_close(a, e, **TOL)
        ge = torch.autograd.grad(loss_of([e]), list(reference.parameters()))
        ga = torch.autograd.grad(loss_of([a]), list(cell.parameters()))
        for x1, x2 in zip(ga, ge):
            torch.testing.assert_close(x1, x2, **TOL)


# ---- the hand-derived BPTT on its own -------------------------------------------------------
def function_inputs(mask: bool, bias: bool = True, scale: float = 1.0, hidden=3, batch=2, steps=4):
    g = torch.Generator().manual_seed(1)

    def r(*s):
        return (torch.randn(*s, generator=g, dtype=F64) * scale).requires_grad_()

    x, h0 = r(steps, batch, 2), r(batch, hidden)
    w_ih, w_hh = r(hidden, 2), r(hidden, hidden)
    b_ih, b_hh = (r(hidden), r(hidden)) if bias else (None, None)
    lengths = torch.tensor([steps, 2, 3, 1][:batch])
    m = (torch.arange(steps)[:, None] < lengths[None]).unsqueeze(-1) if mask else None
    return x, h0, w_ih, w_hh, b_ih, b_hh, m


@pytest.mark.parametrize("mask", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_gradcheck(nonlinearity, mask):
    x, h0, w_ih, w_hh, b_ih, b_hh, m = function_inputs(mask)
    opts = RNNOptions(nonlinearity)
    if nonlinearity == "relu":  # finite differences need pre-activations away from the kink
        with torch.no_grad():
            h, a_min = h0, float("inf")
            for t in range(x.shape[0]):
                a = F.linear(x[t], w_ih, b_ih) + F.linear(h, w_hh, b_hh)
                a_min = min(a_min, float(a.abs().min()))
                h = a.relu()
        assert a_min > 1e-3
    assert torch.autograd.gradcheck(
        lambda *p: RNNFunction.apply(*p, m, opts), (x, h0, w_ih, w_hh, b_ih, b_hh))


def cell_loop(x, h0, w_ih, w_hh, b_ih, b_hh, mask, nonlinearity):
    """The oracle: autograd through a Python loop of :func:`rnn_step`."""
    h, ys = h0, []
    for t in range(x.shape[0]):
        h_new = rnn_step(F.linear(x[t], w_ih, b_ih), h, w_hh, b_hh, nonlinearity=nonlinearity)
        if mask is not None:
            h_new = torch.where(mask[t], h_new, h)
            ys.append(torch.where(mask[t], h_new, 0.0))
        else:
            ys.append(h_new)
        h = h_new
    return torch.stack(ys), h


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("mask", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_function_matches_cell_loop(nonlinearity, mask, bias):
    *inputs, m = function_inputs(mask, bias, hidden=6, batch=3, steps=7)
    expected = cell_loop(*inputs, m, nonlinearity)
    actual = RNNFunction.apply(*inputs, m, RNNOptions(nonlinearity))
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **TOL)
    leaves = [p for p in inputs if p is not None]
    ge = torch.autograd.grad(loss_of(list(expected)), leaves)
    ga = torch.autograd.grad(loss_of(list(actual)), leaves)
    for a, e in zip(ga, ge):
        torch.testing.assert_close(a, e, **TOL)


def test_forward_does_not_alias_its_cache():
    x, h0, w_ih, w_hh, b_ih, b_hh, _ = function_inputs(False)
    with torch.no_grad():
        y, h, cache = rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, None, RNNOptions())
    saved = cache[3].clone()
    y.zero_(), h.zero_()
    assert torch.equal(cache[3], saved)


# ---- layer API --------------------------------------------------------------------------------
def test_trace_reproduces_output():
    layer = rnnlab.RNN(I, H, backend="reference", dtype=F64)
    x, h0 = torch.randn(T, B, I, dtype=F64), torch.randn(1, B, H, dtype=F64)
    (trace,) = layer.trace(x, h0)
    y, _ = layer(x, h0)
    torch.testing.assert_close(trace["h"], y, **TOL)
    layer2 = rnnlab.RNN(I, H, 2, "relu", bidirectional=True, dtype=F64)
    traces = layer2.trace(x, lengths=LENGTHS)
    y2, _ = layer2(x, lengths=LENGTHS)
    torch.testing.assert_close(torch.cat([traces[2]["h"], traces[3]["h"]], -1), y2, **TOL)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_torch_interop(nonlinearity):
    reference = torch.nn.RNN(I, H, 2, nonlinearity=nonlinearity, bidirectional=True, dtype=F64)
    layer = rnnlab.RNN.from_torch(reference)
    assert layer.nonlinearity == nonlinearity
    assert layer.native_mode == {"tanh": "RNN_TANH", "relu": "RNN_RELU"}[nonlinearity]
    assert list(layer.state_dict()) == list(reference.state_dict())
    back = layer.to_torch()
    assert isinstance(back, torch.nn.RNN) and back.nonlinearity == nonlinearity
    for (k, a), (_, e) in zip(back.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, e), k
    fresh = torch.nn.RNN(I, H, 2, nonlinearity=nonlinearity, bidirectional=True, dtype=F64)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(T, B, I, dtype=F64)
    torch.testing.assert_close(fresh(x)[0], layer(x)[0], **TOL)


def test_signature_and_errors():
    layer = rnnlab.RNN(3, 4, 2, "relu", False, True, 0.0, True)  # torch's positional order
    assert (layer.nonlinearity, layer.bias, layer.batch_first, layer.bidirectional) == \
        ("relu", False, True, True)
    assert "nonlinearity='relu'" in repr(layer)
    with pytest.raises(ValueError, match="nonlinearity"):
        rnnlab.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="nonlinearity"):
        rnnlab.RNNCell(3, 4, nonlinearity="gelu")
    with pytest.raises(TypeError):
        rnnlab.RNN(3, 4, proj_size=2)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_float32(backend):
    reference = torch.nn.RNN(I, H, 2, bidirectional=True)
    layer = rnnlab.RNN.from_torch(reference, backend=backend)
    x = torch.randn(T, B, I)
    for a, e in zip(flat_out(layer(x)), flat_out(reference(x))):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)


def test_input_without_grad():
    """The backward skips dx when the input needs none; the parameter gradients are unchanged."""
    reference = torch.nn.RNN(I, H, 2, dtype=F64)
    layer = rnnlab.RNN.from_torch(reference, backend="reference")
    x = torch.randn(T, B, I, dtype=F64)
    expected = torch.autograd.grad(loss_of(flat_out(reference(x))), list(reference.parameters()))
    actual = torch.autograd.grad(loss_of(flat_out(layer(x))), list(layer.parameters()))
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **TOL)
