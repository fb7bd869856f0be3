"""rnnlab.GRU / GRUCell: parity with torch.nn (reference and native backends); the hand-derived
BPTT of the three forms (torch's ``reset_after``, the original ``reset_after=False``, the
layer-normalised GRU) against gradcheck and against autograd through loops of the cell step
functions; trace; torch interop and errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from parity import (
    LAYER_GRID,
    LAYER_GRID_IDS,
    TOL,
    assert_cell_matches_torch,
    assert_matches_oracle,
    assert_matches_torch,
    assert_same,
    assert_same_grads,
    loss_of,
    make_pair,
    make_state_input,
    masked_loop,
    output_tensors,
)

import rnnlab
from rnnlab.bptt.gru import GRUFunction, GRUOptions
from rnnlab.bptt.layernorm_gru import LayerNormGRUFunction
from rnnlab.cells.gru import gru_step, layer_norm, layernorm_gru_step

F64 = torch.float64
T, B, I, H = 5, 3, 4, 5
LENGTHS = torch.tensor([3, 5, 1])  # unsorted, one full-length sequence
VARIANTS = ["reset_after", "reset_before", "layer_norm"]
VARIANT_KW = {"reset_after": {}, "reset_before": {"reset_after": False},
              "layer_norm": {"layer_norm": True}}


# ---- parity with torch.nn.GRU -----------------------------------------------------------------
@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("config,form", LAYER_GRID, ids=LAYER_GRID_IDS)
def test_matches_torch(config, form, backend):
    reference, layer = make_pair("gru", backend, F64, input_size=I, hidden_size=H, **config)
    rows = config["num_layers"] * (2 if config["bidirectional"] else 1)
    x, leaves, hx = make_state_input(form, T, B, I, H, rows, config["batch_first"], F64, LENGTHS)
    assert_matches_torch(reference, layer, x, hx, leaves, F64)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_cell_matches_torch(bias):
    reference = torch.nn.GRUCell(I, H, bias, dtype=F64)
    cell = rnnlab.GRUCell(I, H, bias, dtype=F64)
    cell.load_state_dict(reference.state_dict())
    x, h = torch.randn(B, I, dtype=F64), torch.randn(B, H, dtype=F64)
    assert_cell_matches_torch(reference, cell, x, h, F64)


# ---- the hand-derived BPTT on its own, against the cells --------------------------------------
def function_inputs(variant, mask, bias=True, hidden=3, batch=2, steps=4, inputs=2):
    g = torch.Generator().manual_seed(2)

    def r(*s):
        return torch.randn(*s, generator=g, dtype=F64).requires_grad_()

    args = [r(steps, batch, inputs), r(batch, hidden), r(3 * hidden, inputs),
            r(3 * hidden, hidden)]
    args += [r(3 * hidden), r(3 * hidden)] if bias else [None, None]
    if variant == "layer_norm":
        args += [(1 + 0.5 * torch.randn(3 * hidden, generator=g, dtype=F64)).requires_grad_()
                 for _ in range(2)]
    lengths = torch.tensor([steps, 2, 3, 1][:batch])
    m = (torch.arange(steps)[:, None] < lengths[None]).unsqueeze(-1) if mask else None
    return args, m


def apply_function(variant, args, mask):
    if variant == "layer_norm":
        return LayerNormGRUFunction.apply(*args, mask)
    return GRUFunction.apply(*args, mask, GRUOptions(reset_after=variant == "reset_after"))


def cell_step(variant, x_t, h, w_ih, w_hh, b_ih, b_hh, ln_ih=None, ln_hh=None):
    """One step of the cell functions, the oracle of the BPTT."""
    if variant == "layer_norm":
        x_proj = layer_norm(F.linear(x_t, w_ih), ln_ih)
        if b_ih is not None:
            x_proj = x_proj + b_ih
        return layernorm_gru_step(x_proj, h, w_hh, ln_hh, b_hh)[0]
    return gru_step(F.linear(x_t, w_ih, b_ih), h, w_hh, b_hh,
                    reset_after=variant == "reset_after")[0]


def cell_loop(variant, args, mask):
    """Autograd through a Python loop of the cell step (padded steps carry the state)."""
    x, h, *params = args
    return masked_loop(lambda x_t, h: cell_step(variant, x_t, h, *params), x, h, mask)


@pytest.mark.parametrize("mask", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_gradcheck(variant, mask):
    args, m = function_inputs(variant, mask)
    assert torch.autograd.gradcheck(lambda *a: apply_function(variant, a, m), tuple(args))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("mask", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_function_matches_cell_loop(variant, mask, bias):
    args, m = function_inputs(variant, mask, bias, hidden=6, batch=4, steps=7, inputs=5)
    expected, actual = cell_loop(variant, args, m), apply_function(variant, args, m)
    for a, e in zip(actual, expected):
        assert_same(a, e, F64, "forward")
    leaves = [a for a in args if a is not None]
    assert_same_grads(list(actual), list(expected), leaves, leaves, range(len(leaves)), F64)


def layer_step(variant):
    """The step of :func:`per_sequence_oracle`: the cell step functions."""
    def step(p, x_t, state):
        h = cell_step(variant, x_t, *state, p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                      p.get("bias_hh"), p.get("ln_ih_weight"), p.get("ln_hh_weight"))
        return h, (h,)
    return step


@pytest.mark.parametrize("form", ["lengths", "packed"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_layer_matches_cell_loop(variant, bias, form):
    layer = rnnlab.GRU(I, H, 2, bias, bidirectional=True, **VARIANT_KW[variant],
                       backend="reference", dtype=F64)
    with torch.no_grad():  # gains away from 1, so their gradients are not trivially tested
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.uniform_(0.5, 1.5)
    x = torch.randn(T, B, I, dtype=F64, requires_grad=True)
    h0 = torch.randn(4, B, H, dtype=F64, requires_grad=True)
    assert_matches_oracle(layer, layer_step(variant), x, LENGTHS, [h0], form)


# ---- trace --------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_trace_reproduces_output(variant):
    layer = rnnlab.GRU(I, H, **VARIANT_KW[variant], backend="reference", dtype=F64)
    x, h0 = torch.randn(T, B, I, dtype=F64), torch.randn(1, B, H, dtype=F64)
    (trace,) = layer.trace(x, h0)
    y, _ = layer(x, h0)
    assert set(trace) == {"r", "z", "n", "h"}
    torch.testing.assert_close(trace["h"], y, **TOL[F64])
    h_prev = torch.cat([h0, y[:-1]])
    torch.testing.assert_close((1 - trace["z"]) * trace["n"] + trace["z"] * h_prev, y, **TOL[F64])
    two = rnnlab.GRU(I, H, 2, bidirectional=True, **VARIANT_KW[variant], dtype=F64)
    traces = two.trace(x, lengths=LENGTHS)
    y2, _ = two(x, lengths=LENGTHS)
    torch.testing.assert_close(torch.cat([traces[2]["h"], traces[3]["h"]], -1), y2, **TOL[F64])


# ---- torch interop, parameters, errors ----------------------------------------------------------
def test_torch_interop():
    reference = torch.nn.GRU(I, H, 2, bidirectional=True, batch_first=True, dtype=F64)
    layer = rnnlab.GRU.from_torch(reference)
    assert list(layer.state_dict()) == list(reference.state_dict())
    back = layer.to_torch()
    assert isinstance(back, torch.nn.GRU) and back.batch_first
    for (k, a), (_, e) in zip(back.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, e), k
    fresh = torch.nn.GRU(I, H, 2, bidirectional=True, batch_first=True, dtype=F64)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(B, T, I, dtype=F64)
    torch.testing.assert_close(fresh(x)[0], layer(x)[0], **TOL[F64])
    # a variant takes torch's weights too (its gains stay at 1), but has no torch equivalent
    ln = rnnlab.GRU.from_torch(reference, layer_norm=True)
    assert torch.equal(ln.weight_hh_l1_reverse, reference.weight_hh_l1_reverse)
    assert torch.equal(ln.ln_hh_weight_l1_reverse, torch.ones(3 * H, dtype=F64))
    with pytest.raises(ValueError, match="layer_norm"):
        ln.to_torch()


@pytest.mark.parametrize("variant", ["reset_before", "layer_norm"])
def test_variants_need_the_reference_backend(variant):
    with pytest.raises(ValueError, match="native"):
        rnnlab.GRU(I, H, **VARIANT_KW[variant], backend="native")
    layer = rnnlab.GRU(I, H, **VARIANT_KW[variant])  # auto falls back to the reference
    layer(torch.randn(T, B, I))


def test_layer_norm_parameters():
    layer = rnnlab.GRU(I, H, 2, bidirectional=True, layer_norm=True)
    names = [n for n, _ in layer.named_parameters()]
    assert names[:6] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                         "ln_ih_weight_l0", "ln_hh_weight_l0"]
    assert "ln_hh_weight_l1_reverse" in names
    bound = 1 / math.sqrt(H)
    for name, p in layer.named_parameters():
        if name.startswith("ln_"):
            assert p.shape == (3 * H,) and torch.equal(p, torch.ones_like(p))
        else:
            assert float(p.detach().abs().max()) <= bound
    assert "layer_norm=True" in repr(layer)
    assert "reset_after=False" in repr(rnnlab.GRU(I, H, reset_after=False))
    cell = rnnlab.GRUCell(I, H, layer_norm=True)
    assert torch.equal(cell.ln_ih_weight, torch.ones(3 * H))
    assert cell(torch.randn(B, I)).shape == (B, H)


def test_errors():
    with pytest.raises(ValueError, match="layer_norm"):
        rnnlab.GRU(I, H, reset_after=False, layer_norm=True)
    with pytest.raises(ValueError, match="layer_norm"):
        rnnlab.GRUCell(I, H, reset_after=False, layer_norm=True)
    with pytest.raises(TypeError, match="reset_after"):
        rnnlab.GRU(I, H, reset_after="no")
    with pytest.raises(TypeError):
        rnnlab.GRU(I, H, proj_size=2)  # torch.nn.GRU has no projection either


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_float32(backend):
    reference = torch.nn.GRU(I, H, 2, bidirectional=True)
    layer = rnnlab.GRU.from_torch(reference, backend=backend)
    x = torch.randn(T, B, I)
    for a, e in zip(output_tensors(layer(x)), output_tensors(reference(x))):
        assert_same(a, e, torch.float32, "forward")


@pytest.mark.parametrize("variant", VARIANTS)
def test_input_without_grad(variant):
    """The backward skips dx when the input needs none; the parameter gradients are unchanged."""
    layer = rnnlab.GRU(I, H, **VARIANT_KW[variant], backend="reference", dtype=F64)
    x = torch.randn(T, B, I, dtype=F64)
    x_leaf = x.clone().requires_grad_()
    params = list(layer.parameters())
    expected = torch.autograd.grad(loss_of(list(layer(x_leaf, lengths=LENGTHS))), params)
    actual = torch.autograd.grad(loss_of(list(layer(x, lengths=LENGTHS))), params)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **TOL[F64])
