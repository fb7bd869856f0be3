"""SRU: the hand-derived BPTT against autograd through a plain loop of ``sru_step`` (the oracle,
:func:`parity.per_sequence_oracle`), run sequence by sequence on each sequence's own length."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from parity import assert_matches_oracle, per_sequence_oracle

import rnnlab
from rnnlab.bptt.sru import SRUFunction
from rnnlab.cells.sru import SRUCell, sru_step

DT = torch.float64
TOL = dict(atol=1e-10, rtol=0)


def oracle_step(p, x_t, state):
    """One ``sru_step`` (x_t (1, I), state (c,)), the step of :func:`per_sequence_oracle`."""
    h, c, _ = sru_step(F.linear(x_t, p["weight_ih"]), x_t, *state, p["weight_c"], p.get("bias"))
    return h, (c,)


CONFIGS = [
    # num_layers, bidirectional, batch_first, bias, input_size (hidden 4)
    (1, False, False, True, 4),
    (1, False, False, True, 3),
    (1, False, True, False, 4),
    (2, False, False, True, 3),
    (2, False, True, False, 4),
    (1, True, False, True, 4),
    (2, True, False, True, 4),
    (2, True, True, False, 5),
]


@pytest.mark.parametrize("num_layers,bidirectional,batch_first,bias,input_size", CONFIGS)
def test_layer_matches_oracle(num_layers, bidirectional, batch_first, bias, input_size):
    torch.manual_seed(0)
    layer = rnnlab.SRU(input_size, 4, num_layers, bias, batch_first,
                       bidirectional=bidirectional, dtype=DT)
    T, B = 5, 3
    x = torch.randn(T, B, input_size, dtype=DT, requires_grad=True)
    c0 = torch.randn(num_layers * layer.num_directions, B, 4, dtype=DT, requires_grad=True)
    assert_matches_oracle(layer, oracle_step, x, [T] * B, [c0], tol=TOL)


@pytest.mark.parametrize("num_layers,bidirectional,input_size", [(1, False, 4), (2, True, 3),
                                                                 (2, False, 3)])
@pytest.mark.parametrize("how", ["packed", "lengths"])
def test_variable_lengths(num_layers, bidirectional, input_size, how):
    torch.manual_seed(1)
    layer = rnnlab.SRU(input_size, 4, num_layers, bidirectional=bidirectional, dtype=DT)
    T, lengths = 6, [3, 6, 1, 4]
    x = torch.randn(T, len(lengths), input_size, dtype=DT)
    x = (x * (torch.arange(T)[:, None, None] < torch.tensor(lengths)[None, :, None])).requires_grad_()
    c0 = torch.randn(num_layers * layer.num_directions, len(lengths), 4, dtype=DT,
                     requires_grad=True)
    assert_matches_oracle(layer, oracle_step, x, lengths, [c0], how, tol=TOL)


def test_unbatched_and_default_state():
    torch.manual_seed(2)
    layer = rnnlab.SRU(3, 4, 2, bidirectional=True, dtype=DT)
    x = torch.randn(5, 3, dtype=DT)
    out, c = layer(x)
    assert out.shape == (5, 8) and c.shape == (4, 4)
    ref_out, ref_c = per_sequence_oracle(layer, oracle_step, x.unsqueeze(1), [5],
                                         [torch.zeros(4, 1, 4, dtype=DT)])
    torch.testing.assert_close(out, ref_out.squeeze(1), **TOL)
    torch.testing.assert_close(c, ref_c.squeeze(1), **TOL)
    c0 = torch.randn(4, 4, dtype=DT)
    out2, _ = layer(x, c0)
    ref2, _ = per_sequence_oracle(layer, oracle_step, x.unsqueeze(1), [5], [c0.unsqueeze(1)])
    torch.testing.assert_close(out2, ref2.squeeze(1), **TOL)


def test_trace_reproduces_outputs():
    torch.manual_seed(3)
    layer = rnnlab.SRU(3, 4, 2, bidirectional=True, dtype=DT)
    lengths = [5, 2, 4]
    x = torch.randn(5, 3, 3, dtype=DT)
    out, c_n = layer(x, lengths=lengths)
    traces = layer.trace(x, lengths=lengths)
    assert len(traces) == 4 and set(traces[0]) == {"f", "r", "c", "h"}
    torch.testing.assert_close(torch.cat([traces[2]["h"], traces[3]["h"]], -1), out)
    for i, tr in enumerate(traces):
        for v in tr.values():
            assert v.shape == (5, 3, 4)
        # the forward direction's last running step holds c_n
        if i % 2 == 0:
            last = torch.stack([tr["c"][n - 1, b] for b, n in enumerate(lengths)])
            torch.testing.assert_close(last, c_n[i])
    # gates and states satisfy the equations on the running steps
    tr = traces[0]
    c_prev = torch.cat([torch.zeros(1, 3, 4, dtype=DT), tr["c"][:-1]])
    p = layer.cell_params(0, 0)
    u = x @ p["weight_ih"].t()
    H = 4
    f = torch.sigmoid(u[..., H:2 * H] + p["weight_c"][0] * c_prev + p["bias"][:H])
    torch.testing.assert_close(tr["f"][:2], f[:2])


def test_cell_matches_layer_step():
    torch.manual_seed(4)
    for input_size in (4, 3):
        cell = SRUCell(input_size, 4, dtype=DT)
        layer = rnnlab.SRU(input_size, 4, dtype=DT)
        layer.load_state_dict({"weight_ih_l0": cell.weight_ih, "weight_c_l0": cell.weight_c,
                               "bias_l0": cell.bias})
        x, c0 = torch.randn(2, input_size, dtype=DT), torch.randn(2, 4, dtype=DT)
        h, c = cell(x, c0)
        out, c_n = layer(x.unsqueeze(0), c0.unsqueeze(0))
        torch.testing.assert_close(h, out[0])
        torch.testing.assert_close(c, c_n[0])
        h1, c1 = cell(x[0])
        assert h1.shape == c1.shape == (4,)


def test_parameters_and_options():
    layer = rnnlab.SRU(3, 4, 2, bias=False, bidirectional=True)
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes == {"weight_ih_l0": (16, 3), "weight_c_l0": (2, 4),
                      "weight_ih_l0_reverse": (16, 3), "weight_c_l0_reverse": (2, 4),
                      "weight_ih_l1": (16, 8), "weight_c_l1": (2, 4),
                      "weight_ih_l1_reverse": (16, 8), "weight_c_l1_reverse": (2, 4)}
    assert tuple(rnnlab.SRU(4, 4).weight_ih_l0.shape) == (12, 4)
    assert rnnlab.SRU(4, 4).bias_l0.shape == (8,)
    assert rnnlab.SRU(3, 4).native_unsupported()
    with pytest.raises(ValueError, match="native"):
        rnnlab.SRU(3, 4, backend="native")
    with pytest.raises(ValueError, match="to_torch"):
        rnnlab.SRU(3, 4).to_torch()
    learned = rnnlab.SRU(3, 4, 2, initial_state="learned")
    assert learned.initial_c.shape == (2, 4)
    out, c = learned(torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 4) and c.shape == (2, 2, 4)


def test_float32_runs():
    layer = rnnlab.SRU(3, 8, 2, bidirectional=True, dropout=0.2)
    out, c = layer(torch.randn(7, 2, 3))
    (out.sum() + c.sum()).backward()
    assert all(p.grad is not None for p in layer.parameters())


@pytest.mark.parametrize("use_mask,input_size,bias", [(False, 3, True), (True, 5, True),
                                                      (True, 3, False), (False, 5, False)])
def test_gradcheck_function(use_mask, input_size, bias):
    torch.manual_seed(5)
    T, B, H = 4, 2, 3
    rows = (3 if input_size == H else 4) * H
    x = torch.randn(T, B, input_size, dtype=DT, requires_grad=True)
    c0 = torch.randn(B, H, dtype=DT, requires_grad=True)
    w = (torch.randn(rows, input_size, dtype=DT) * 0.5).requires_grad_()
    v = torch.randn(2, H, dtype=DT, requires_grad=True)
    b = torch.randn(2 * H, dtype=DT, requires_grad=True) if bias else None
    mask = (torch.arange(T)[:, None] < torch.tensor([4, 2])[None]).unsqueeze(-1) if use_mask else None
    assert torch.autograd.gradcheck(
        lambda *a: SRUFunction.apply(*a, mask), (x, c0, w, v, b), atol=1e-8)
