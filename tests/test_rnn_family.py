"""rnnlab.RNN / RNNCell: parity with torch.nn (reference and native backends), the hand-derived
BPTT against gradcheck and against autograd through a loop of the cell, trace, torch interop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from parity import (
    LAYER_GRID,
    LAYER_GRID_IDS,
    TOL,
    assert_cell_matches_torch,
    assert_matches_torch,
    assert_same,
    assert_same_grads,
    loss_of,
    make_pair,
    make_state_input,
    masked_loop,
    output_tensors,
)
from torch.nn.utils.rnn import pack_padded_sequence

import rnnlab
from rnnlab.bptt.rnn import RNNFunction, RNNOptions, rnn_forward
from rnnlab.cells.rnn import rnn_step

F64 = torch.float64
T, B, I, H = 5, 3, 4, 5
LENGTHS = torch.tensor([3, 5, 1])  # unsorted, one full-length sequence


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("config,form", LAYER_GRID, ids=LAYER_GRID_IDS)
def test_matches_torch(config, form, nonlinearity, backend):
    reference, layer = make_pair(f"rnn_{nonlinearity}", backend, F64, input_size=I,
                                 hidden_size=H, **config)
    rows = config["num_layers"] * (2 if config["bidirectional"] else 1)
    x, leaves, hx = make_state_input(form, T, B, I, H, rows, config["batch_first"], F64, LENGTHS)
    assert_matches_torch(reference, layer, x, hx, leaves, F64)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_lengths_argument_matches_packed(nonlinearity):
    layer = rnnlab.RNN(I, H, 2, nonlinearity, bidirectional=True, backend="reference", dtype=F64)
    x = torch.randn(T, B, I, dtype=F64)
    y, h = layer(x, lengths=LENGTHS)
    yp, hp = layer(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    yp, _ = torch.nn.utils.rnn.pad_packed_sequence(yp, total_length=T)
    torch.testing.assert_close(y, yp, **TOL[F64])
    torch.testing.assert_close(h, hp, **TOL[F64])


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_cell_matches_torch(nonlinearity, bias):
    reference = torch.nn.RNNCell(I, H, bias, nonlinearity, dtype=F64)
    cell = rnnlab.RNNCell(I, H, bias, nonlinearity, dtype=F64)
    cell.load_state_dict(reference.state_dict())
    x, h = torch.randn(B, I, dtype=F64), torch.randn(B, H, dtype=F64)
    assert_cell_matches_torch(reference, cell, x, h, F64)


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
    return masked_loop(lambda x_t, h: rnn_step(F.linear(x_t, w_ih, b_ih), h, w_hh, b_hh,
                                               nonlinearity=nonlinearity), x, h0, mask)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("mask", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_function_matches_cell_loop(nonlinearity, mask, bias):
    *inputs, m = function_inputs(mask, bias, hidden=6, batch=3, steps=7)
    expected = cell_loop(*inputs, m, nonlinearity)
    actual = RNNFunction.apply(*inputs, m, RNNOptions(nonlinearity))
    for a, e in zip(actual, expected):
        assert_same(a, e, F64, "forward")
    leaves = [p for p in inputs if p is not None]
    assert_same_grads(list(actual), list(expected), leaves, leaves, range(len(leaves)), F64)


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
    torch.testing.assert_close(trace["h"], y, **TOL[F64])
    layer2 = rnnlab.RNN(I, H, 2, "relu", bidirectional=True, dtype=F64)
    traces = layer2.trace(x, lengths=LENGTHS)
    y2, _ = layer2(x, lengths=LENGTHS)
    torch.testing.assert_close(torch.cat([traces[2]["h"], traces[3]["h"]], -1), y2, **TOL[F64])


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
    torch.testing.assert_close(fresh(x)[0], layer(x)[0], **TOL[F64])


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
    for a, e in zip(output_tensors(layer(x)), output_tensors(reference(x))):
        assert_same(a, e, torch.float32, "forward")


def test_input_without_grad():
    """The backward skips dx when the input needs none; the parameter gradients are unchanged."""
    reference = torch.nn.RNN(I, H, 2, dtype=F64)
    layer = rnnlab.RNN.from_torch(reference, backend="reference")
    x = torch.randn(T, B, I, dtype=F64)
    expected = torch.autograd.grad(loss_of(output_tensors(reference(x))),
                                   list(reference.parameters()))
    actual = torch.autograd.grad(loss_of(output_tensors(layer(x))), list(layer.parameters()))
    for a, e in zip(actual, expected):
        assert_same(a, e, F64, "grad")
