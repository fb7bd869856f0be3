"""minGRU / minLSTM (Feng et al. 2024) and the log-space parallel scan behind them."""

import pytest
import torch
import torch.nn.functional as F

import rnnlab
from rnnlab.cells.min_rnn import min_gru_step, min_lstm_step
from rnnlab.scan import g, log_g, scan, scan_log, scan_sequential

D64 = torch.float64
CLASSES = [rnnlab.MinGRU, rnnlab.MinLSTM]
STEPS = {rnnlab.MinGRU: min_gru_step, rnnlab.MinLSTM: min_lstm_step}


# ---- the scan ---------------------------------------------------------------------------------
def test_scan_equals_loop_forward_and_backward():
    T, B, H = 23, 3, 4
    a = torch.rand(T, B, H, dtype=D64).clamp(0.05, 0.99).requires_grad_()
    b = (torch.rand(T, B, H, dtype=D64) + 0.01).requires_grad_()
    h0 = torch.randn(B, H, dtype=D64, requires_grad=True)  # any sign
    ours = scan(a, b, h0)
    ref = scan_sequential(a, b, h0)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    w = torch.randn_like(ref)
    grads = torch.autograd.grad((ours * w).sum(), (a, b, h0))
    ref_grads = torch.autograd.grad((ref * w).sum(), (a, b, h0))
    for x, y in zip(grads, ref_grads):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-11)


def test_scan_zero_state_and_dim():
    a, b = torch.rand(2, 9, 5, dtype=D64) + 0.1, torch.rand(2, 9, 5, dtype=D64) + 0.1
    torch.testing.assert_close(scan(a, b, dim=1), scan_sequential(a, b, dim=1))
    torch.testing.assert_close(scan(a, b, torch.zeros(2, 5, dtype=D64), dim=1),
                               scan(a, b, dim=1))


def test_scan_gradcheck():
    T, B, H = 6, 2, 3
    log_a = (-torch.rand(T, B, H, dtype=D64) - 0.01).requires_grad_()
    log_b = torch.randn(T, B, H, dtype=D64).requires_grad_()
    h0 = torch.randn(B, H, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(scan_log, (log_a, log_b, h0))
    assert torch.autograd.gradgradcheck(scan_log, (log_a, log_b, h0))


def test_scan_float32_long_sequence():
    T = 2000
    log_a = -torch.rand(T, 2, 8, dtype=D64) * 0.2  # |log A_T| ≈ 200
    log_b = torch.randn(T, 2, 8, dtype=D64) * 0.5
    ref = scan_sequential(log_a.exp(), log_b.exp())
    ours = scan_log(log_a.float(), log_b.float())
    torch.testing.assert_close(ours.double(), ref, rtol=1e-3, atol=1e-6)


def test_g_and_log_g():
    x = torch.linspace(-30, 30, 1001, dtype=D64)
    assert torch.all(g(x) > 0)
    torch.testing.assert_close(log_g(x), torch.log(g(x)))
    torch.testing.assert_close(g(torch.zeros(1)), torch.full((1,), 0.5))  # continuous at 0
    torch.testing.assert_close(log_g(torch.tensor([-1000.0])), torch.tensor([-1000.0]))  # stable
    x = torch.randn(20, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(log_g, (x,))


# ---- the layers -------------------------------------------------------------------------------
def loop_reference(layer, x, h0):
    """The layer as a Python loop of the sequential step (unidirectional, time-major)."""
    hs = []
    for k in range(layer.num_layers):
        p = layer.cell_params(k, 0)
        h, out = h0[k], []
        for t in range(x.shape[0]):
            h = STEPS[type(layer)](x[t], h, p["weight_ih"], p.get("bias_ih"))
            out.append(h)
        x = torch.stack(out)
        hs.append(h)
    return x, torch.stack(hs)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bias", [True, False])
def test_parallel_equals_sequential(cls, bias):
    layer = cls(4, 5, num_layers=2, bias=bias, dtype=D64)
    x = torch.randn(11, 3, 4, dtype=D64, requires_grad=True)
    h0 = torch.randn(2, 3, 5, dtype=D64, requires_grad=True)
    out, h = layer(x, h0)
    ref_out, ref_h = loop_reference(layer, x, h0)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h, ref_h, rtol=1e-10, atol=1e-12)
    w1, w2 = torch.randn_like(out), torch.randn_like(h)
    inputs = (x, h0, *layer.parameters())
    grads = torch.autograd.grad((out * w1).sum() + (h * w2).sum(), inputs)
    ref = torch.autograd.grad((ref_out * w1).sum() + (ref_h * w2).sum(), inputs)
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("cls", CLASSES)
def test_layer_gradcheck(cls):
    layer = cls(3, 2, bidirectional=True, dtype=D64)
    x = torch.randn(5, 2, 3, dtype=D64, requires_grad=True)
    h0 = torch.randn(2, 2, 2, dtype=D64, requires_grad=True)
    names = [n for n, _ in layer.named_parameters()]

    def f(x, h0, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps)), (x, h0))

    ps = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(f, (x, h0, *ps))


@pytest.mark.parametrize("cls", CLASSES)
def test_step_equals_forward(cls):
    layer = cls(4, 6, num_layers=3, dropout=0.5, initial_state="learned").eval()
    with torch.no_grad():
        layer.initial_h.normal_()
    x = torch.randn(9, 2, 4)
    out, h_n = layer(x)
    h, ys = None, []
    for t in range(9):
        y, h = layer.step(x[t], h)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys), out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h_n, rtol=1e-5, atol=1e-6)
    y, h1 = layer.step(x[0, 0], h_n[:, 0])  # unbatched
    assert y.shape == (6,) and h1.shape == (3, 6)


@pytest.mark.parametrize("cls", CLASSES)
def test_cells(cls):
    cell = (rnnlab.MinGRUCell if cls is rnnlab.MinGRU else rnnlab.MinLSTMCell)(4, 5)
    x, h = torch.randn(3, 4), torch.randn(3, 5)
    expected = STEPS[cls](x, h, cell.weight_ih, cell.bias_ih)
    torch.testing.assert_close(cell(x, h), expected)
    assert cell(x).shape == (3, 5) and cell(x[0]).shape == (5,)


@pytest.mark.parametrize("cls", CLASSES)
def test_shapes_batch_first_unbatched(cls):
    layer = cls(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(3, 7, 4)
    out, h = layer(x)
    assert out.shape == (3, 7, 10) and h.shape == (4, 3, 5)
    tm = cls(4, 5, num_layers=2, bidirectional=True)
    tm.load_state_dict(layer.state_dict())
    out_tm, h_tm = tm(x.transpose(0, 1))
    torch.testing.assert_close(out, out_tm.transpose(0, 1))
    torch.testing.assert_close(h, h_tm)
    out1, h1 = tm(x[0])  # unbatched (T, I)
    torch.testing.assert_close(out1, out_tm[:, 0])
    torch.testing.assert_close(h1, h_tm[:, 0])
    names = {n for n, _ in layer.named_parameters()}
    assert names == {f"{w}_l{k}{s}" for w in ("weight_ih", "bias_ih") for k in (0, 1)
                     for s in ("", "_reverse")}
    assert layer.weight_ih_l1.shape == (cls.gate_count * 5, 10)


@pytest.mark.parametrize("cls", CLASSES)
def test_bidirectional_is_two_directions(cls):
    layer = cls(4, 5, bidirectional=True, dtype=D64)
    x = torch.randn(8, 2, 4, dtype=D64)
    h0 = torch.randn(2, 2, 5, dtype=D64)
    out, h = layer(x, h0)
    fwd = cls(4, 5, dtype=D64)
    bwd = cls(4, 5, dtype=D64)
    fwd.load_state_dict({"weight_ih_l0": layer.weight_ih_l0, "bias_ih_l0": layer.bias_ih_l0})
    bwd.load_state_dict({"weight_ih_l0": layer.weight_ih_l0_reverse,
                         "bias_ih_l0": layer.bias_ih_l0_reverse})
    out_f, h_f = fwd(x, h0[:1])
    out_b, h_b = bwd(x.flip(0), h0[1:])
    torch.testing.assert_close(out, torch.cat([out_f, out_b.flip(0)], -1))
    torch.testing.assert_close(h, torch.cat([h_f, h_b]))


@pytest.mark.parametrize("cls", CLASSES)
def test_packed_and_lengths(cls):
    layer = cls(3, 4, num_layers=2, bidirectional=True, dtype=D64)
    lengths = torch.tensor([5, 9, 2])
    x = torch.randn(9, 3, 3, dtype=D64, requires_grad=True)
    out, h = layer(x, lengths=lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    out_p, h_p = layer(packed)
    out_p, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p)
    torch.testing.assert_close(out_p, out)
    torch.testing.assert_close(h_p, h)
    for b, n in enumerate(lengths.tolist()):  # each sequence alone, unpadded
        out_b, h_b = layer(x[:n, b:b + 1])
        torch.testing.assert_close(out[:n, b:b + 1], out_b)
        torch.testing.assert_close(h[:, b:b + 1], h_b)
        assert torch.all(out[n:, b] == 0)
    (out.sum() + h.sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert torch.all(x.grad[5:, 0] == 0) and torch.all(x.grad[2:, 2] == 0)


@pytest.mark.parametrize("cls", CLASSES)
def test_trace_and_training(cls):
    layer = cls(3, 4, num_layers=2)
    traces = layer.trace(torch.randn(6, 2, 3))
    assert len(traces) == 2 and traces[0]["h"].shape == (6, 2, 4)
    gate_names = {"z", "n"} if cls is rnnlab.MinGRU else {"f", "i", "g"}
    assert gate_names < set(traces[0])
    if cls is rnnlab.MinLSTM:
        torch.testing.assert_close(traces[0]["f"] + traces[0]["i"], torch.ones(6, 2, 4))
    # a few optimiser steps on a toy target reduce the loss
    torch.manual_seed(0)
    x, y = torch.randn(10, 8, 3), torch.randn(10, 8, 4)
    losses = []
    for _ in range(20):  # plain gradient descent (torch.optim imports torch._dynamo: slow)
        loss = F.mse_loss(layer(x)[0], y)
        grads = torch.autograd.grad(loss, list(layer.parameters()))
        with torch.no_grad():
            for p, g_ in zip(layer.parameters(), grads):
                p -= 0.5 * g_
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_init_policies_on_min_cells():
    gru = rnnlab.MinGRU(3, 4, init="forget_bias:2")
    assert torch.all(gru.bias_ih_l0[:4] == -2)  # 1 - z is the forget-like gate
    lstm = rnnlab.MinLSTM(3, 4, init="chrono:20")
    b_f, b_i = lstm.bias_ih_l0[:4], lstm.bias_ih_l0[4:8]
    assert torch.all(b_f >= 0) and torch.equal(b_i, -b_f)
    with pytest.raises(ValueError, match="no recurrent matrix"):
        rnnlab.MinGRU(3, 4, init="orthogonal")


def test_errors():
    with pytest.raises(ValueError, match="native"):
        rnnlab.MinGRU(3, 4, backend="native")
    layer = rnnlab.MinLSTM(3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="to_torch"):
        layer.to_torch()
    with pytest.raises(ValueError, match="bidirectional"):
        layer.step(torch.randn(2, 3))
    with pytest.raises(ValueError, match="input"):
        rnnlab.MinGRU(3, 4).step(torch.randn(2, 5))
    with pytest.raises(ValueError, match="input_size"):
        rnnlab.MinGRU(3, 4)(torch.randn(5, 2, 7))
    with pytest.raises(TypeError):
        rnnlab.MinGRU.from_torch(torch.nn.GRU(3, 4))
