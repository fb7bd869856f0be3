"""Layer-normalised LSTM: the hand-derived BPTT against autograd through a plain loop of
``layernorm_lstm_step`` (the oracle, :func:`parity.per_sequence_oracle`), run sequence by sequence
on each sequence's own length."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from parity import assert_matches_oracle, per_sequence_oracle

import rnnlab
from rnnlab.bptt.layernorm_lstm import LayerNormLSTMFunction, layer_norm_backward
from rnnlab.cells.layernorm_lstm import LayerNormLSTMCell, layernorm_lstm_step

DT = torch.float64
TOL = dict(atol=1e-10, rtol=0)
H = 4
PARAM_ORDER = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "ln_ih_weight", "ln_hh_weight",
               "ln_c_weight", "ln_c_bias")


def oracle_step(p, x_t, state):
    """One ``layernorm_lstm_step`` (x_t (1, I), state (h, c)), the step of
    :func:`per_sequence_oracle`."""
    h, c, _ = layernorm_lstm_step(x_t, *state, *(p.get(k) for k in PARAM_ORDER))
    return h, (h, c)


def perturb_norm_params(layer, seed=11):
    """Move the LN gains / bias off their init (1, 0) so their gradients are exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))


CONFIGS = [
    # num_layers, bidirectional, batch_first, bias, input_size
    (1, False, False, True, 3),
    (1, False, True, False, 4),
    (2, False, False, True, 5),
    (1, True, False, True, 3),
    (2, True, True, False, 3),
]


@pytest.mark.parametrize("num_layers,bidirectional,batch_first,bias,input_size", CONFIGS)
def test_layer_matches_oracle(num_layers, bidirectional, batch_first, bias, input_size):
    torch.manual_seed(0)
    layer = rnnlab.LSTM(input_size, H, num_layers, bias, batch_first,
                        bidirectional=bidirectional, layer_norm=True, dtype=DT)
    perturb_norm_params(layer)
    T, B, rows = 5, 3, num_layers * layer.num_directions
    x = torch.randn(T, B, input_size, dtype=DT, requires_grad=True)
    h0 = torch.randn(rows, B, H, dtype=DT, requires_grad=True)
    c0 = torch.randn(rows, B, H, dtype=DT, requires_grad=True)
    assert_matches_oracle(layer, oracle_step, x, [T] * B, [h0, c0], tol=TOL)


def test_zero_initial_state():
    """h_0 = 0 makes W_hh h_0 = 0, a zero-variance row for the hidden norm (ẑ = 0, s = 1/√eps)."""
    torch.manual_seed(6)
    layer = rnnlab.LSTM(3, H, 2, bidirectional=True, layer_norm=True, dtype=DT)
    x = torch.randn(4, 2, 3, dtype=DT, requires_grad=True)
    zeros = torch.zeros(4, 2, H, dtype=DT, requires_grad=True)
    assert_matches_oracle(layer, oracle_step, x, [4, 4],
                          [zeros, zeros.detach().clone().requires_grad_()], tol=TOL)


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("how", ["packed", "lengths"])
def test_variable_lengths(num_layers, bidirectional, how):
    torch.manual_seed(1)
    layer = rnnlab.LSTM(3, H, num_layers, bidirectional=bidirectional, layer_norm=True,
                        dtype=DT)
    perturb_norm_params(layer)
    T, lengths = 6, [3, 6, 1, 4]
    B, rows = len(lengths), num_layers * layer.num_directions
    x = torch.randn(T, B, 3, dtype=DT)
    x = (x * (torch.arange(T)[:, None, None] < torch.tensor(lengths)[None, :, None])).requires_grad_()
    h0 = torch.randn(rows, B, H, dtype=DT, requires_grad=True)
    c0 = torch.randn(rows, B, H, dtype=DT, requires_grad=True)
    assert_matches_oracle(layer, oracle_step, x, lengths, [h0, c0], how, tol=TOL)


def test_unbatched():
    torch.manual_seed(2)
    layer = rnnlab.LSTM(3, H, 2, bidirectional=True, layer_norm=True, dtype=DT)
    perturb_norm_params(layer)
    x = torch.randn(5, 3, dtype=DT)
    h0, c0 = torch.randn(4, H, dtype=DT), torch.randn(4, H, dtype=DT)
    out, (h, c) = layer(x, (h0, c0))
    ref_out, ref_h, ref_c = per_sequence_oracle(layer, oracle_step, x.unsqueeze(1), [5],
                                                [h0.unsqueeze(1), c0.unsqueeze(1)])
    torch.testing.assert_close(out, ref_out.squeeze(1), **TOL)
    torch.testing.assert_close(h, ref_h.squeeze(1), **TOL)
    torch.testing.assert_close(c, ref_c.squeeze(1), **TOL)
    out, (h, c) = layer(x)
    assert out.shape == (5, 2 * H) and h.shape == c.shape == (4, H)


def test_trace_reproduces_outputs():
    torch.manual_seed(3)
    layer = rnnlab.LSTM(3, H, 2, bidirectional=True, layer_norm=True, dtype=DT)
    perturb_norm_params(layer)
    lengths = [5, 2, 4]
    x = torch.randn(5, 3, 3, dtype=DT)
    out, (h_n, c_n) = layer(x, lengths=lengths)
    traces = layer.trace(x, lengths=lengths)
    assert len(traces) == 4 and set(traces[0]) == {"i", "f", "g", "o", "c", "h"}
    torch.testing.assert_close(torch.cat([traces[2]["h"], traces[3]["h"]], -1), out)
    for j in (0, 2):  # forward directions: the last running step holds h_n, c_n
        tr = traces[j]
        torch.testing.assert_close(
            torch.stack([tr["c"][n - 1, b] for b, n in enumerate(lengths)]), c_n[j])
        torch.testing.assert_close(
            torch.stack([tr["h"][n - 1, b] for b, n in enumerate(lengths)]), h_n[j])
    tr, p = traces[0], layer.cell_params(0, 0)
    c = tr["c"][0]
    torch.testing.assert_close(c, tr["i"][0] * tr["g"][0])  # c_0 = 0
    n = F.layer_norm(c, (H,), p["ln_c_weight"], p["ln_c_bias"], 1e-5)
    torch.testing.assert_close(tr["h"][0], tr["o"][0] * torch.tanh(n))


def test_cell_matches_layer():
    torch.manual_seed(4)
    cell = LayerNormLSTMCell(3, H, dtype=DT)
    layer = rnnlab.LSTM(3, H, layer_norm=True, dtype=DT)
    perturb_norm_params(cell)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x, h0, c0 = (torch.randn(2, s, dtype=DT) for s in (3, H, H))
    h, c = cell(x, (h0, c0))
    out, (_, c_n) = layer(x.unsqueeze(0), (h0.unsqueeze(0), c0.unsqueeze(0)))
    torch.testing.assert_close(h, out[0])
    torch.testing.assert_close(c, c_n[0])
    h1, c1 = cell(x[0])
    assert h1.shape == c1.shape == (H,)


def test_parameters_options_and_errors():
    layer = rnnlab.LSTM(3, H, 2, bidirectional=True, layer_norm=True)
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes["ln_ih_weight_l1_reverse"] == (4 * H,)
    assert shapes["ln_hh_weight_l0"] == (4 * H,)
    assert shapes["ln_c_weight_l1"] == (H,) and shapes["ln_c_bias_l0_reverse"] == (H,)
    assert shapes["weight_ih_l1"] == (4 * H, 2 * H)
    for name, p in layer.named_parameters():
        if name.startswith("ln_"):
            assert torch.all(p == (0 if name.startswith("ln_c_bias") else 1)), name
    assert "layer_norm" in layer.native_unsupported()
    assert "layer_norm=True" in repr(layer)
    with pytest.raises(ValueError, match="native"):
        rnnlab.LSTM(3, H, layer_norm=True, backend="native")
    for kw in ({"peephole": True}, {"cell_clip": 3.0}, {"coupled": True}, {"proj_size": 2}):
        with pytest.raises(ValueError, match="layer_norm: cannot be combined with"):
            rnnlab.LSTM(3, H, layer_norm=True, **kw)
    # loading torch weights keeps the norms at their init
    torch_lstm = torch.nn.LSTM(3, H)
    ln = rnnlab.LSTM.from_torch(torch_lstm, layer_norm=True)
    torch.testing.assert_close(ln.weight_hh_l0, torch_lstm.weight_hh_l0)
    assert torch.all(ln.ln_ih_weight_l0 == 1)
    # plain LSTM unaffected
    assert rnnlab.LSTM(3, H).native_unsupported() is None


def test_float32_runs():
    layer = rnnlab.LSTM(3, 8, 2, bidirectional=True, dropout=0.2, layer_norm=True)
    out, (h, c) = layer(torch.randn(7, 2, 3))
    (out.sum() + h.sum() + c.sum()).backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_layer_norm_backward():
    torch.manual_seed(8)
    z = torch.randn(3, 6, dtype=DT, requires_grad=True)
    z_hat, _, s = torch.native_layer_norm(z, (6,), None, None, 1e-5)
    dz_hat = torch.randn(3, 6, dtype=DT)
    expected, = torch.autograd.grad(F.layer_norm(z, (6,)), z, dz_hat)
    torch.testing.assert_close(layer_norm_backward(dz_hat, z_hat.detach(), s), expected)


@pytest.mark.parametrize("use_mask,bias", [(False, True), (True, False)])
def test_gradcheck_function(use_mask, bias):
    torch.manual_seed(5)
    T, B, Hc, I = 4, 2, 3, 2
    r = lambda *s: torch.randn(*s, dtype=DT, requires_grad=True)
    args = (r(T, B, I), r(B, Hc), r(B, Hc), r(4 * Hc, I), r(4 * Hc, Hc),
            r(4 * Hc) if bias else None, r(4 * Hc) if bias else None,
            r(4 * Hc), r(4 * Hc), r(Hc), r(Hc))
    mask = (torch.arange(T)[:, None] < torch.tensor([4, 2])[None]).unsqueeze(-1) if use_mask else None
    assert torch.autograd.gradcheck(lambda *a: LayerNormLSTMFunction.apply(*a, mask), args,
                                    atol=1e-7)
