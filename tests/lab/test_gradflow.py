"""Diagnostics checked against independent computations."""

import math

import pytest
import torch
from torch import nn

import rnnlab
from rnnlab.lab.diagnostics.gates import gate_statistics, saturation, summarise
from rnnlab.lab.diagnostics.gradflow import gradient_flow, readout_loss
from rnnlab.lab.diagnostics.jacobian import jacobian_singular_values, states_along, step_jacobian
from rnnlab.lab.diagnostics.scaling import scale_recurrent
from rnnlab.lab.diagnostics.spectral import recurrent_blocks, spectral_radii, spectral_radius


def _rnn(layer_cls_name="torch", H=6, I=3):
    if layer_cls_name == "rnnlab" and hasattr(rnnlab, "RNN"):
        return rnnlab.RNN(I, H).double()
    return nn.RNN(I, H).double()


@pytest.mark.parametrize("which", ["torch", "rnnlab"])
def test_gradflow_matches_cell_loop_with_retain_grad(which):
    layer = _rnn(which)
    T, B, H = 12, 3, 6
    x = torch.randn(T, B, 3, dtype=torch.double)
    loss_fn = readout_loss(H, seed=3, dtype=torch.double)
    gf = gradient_flow(layer, x, loss_fn)
    # independent: torch.nn.RNNCell with the same weights, retain_grad on every h_k
    cell = nn.RNNCell(3, H).double()
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, n).copy_(getattr(layer, n + "_l0"))
    h = torch.zeros(B, H, dtype=torch.double, requires_grad=True)
    hs = [h]
    for t in range(T):
        h = cell(x[t], h)
        h.retain_grad()
        hs.append(h)
    loss_fn(h).sum().backward()
    expected = [float(hk.grad.norm(dim=1).mean()) for hk in hs]
    assert gf.curve == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert gf.at(T) == pytest.approx(1.0)  # unit readout
    assert gf.decay_ratio() == pytest.approx(expected[0] / expected[T])


def test_gradflow_closed_form_tanh_rnn():
    """g_{k-1} = W_hhᵀ diag(1 - h_k²) g_k, from g_T = w."""
    layer = _rnn("torch", H=5)
    T, B = 9, 2
    x = torch.randn(T, B, 3, dtype=torch.double)
    w = torch.randn(5, dtype=torch.double)
    gf = gradient_flow(layer, x, lambda y: y @ w)
    states = states_along(layer, x)
    W = layer.weight_hh_l0.detach()
    g = w.expand(B, 5)
    norms = [float(g.norm(dim=1).mean())]
    for k in range(T, 0, -1):
        h = states[k][0][0]  # (B, H)
        g = (g * (1 - h ** 2)) @ W
        norms.append(float(g.norm(dim=1).mean()))
    assert gf.curve == pytest.approx(norms[::-1], rel=1e-9)


def test_gradflow_two_layer_lstm_h_matches_cell_loop_with_retain_grad():
    torch.manual_seed(1)
    layer = nn.LSTM(2, 4, num_layers=2).double()
    T, B = 6, 3
    x = torch.randn(T, B, 2, dtype=torch.double)
    gf = gradient_flow(layer, x)
    assert set(gf.norms) == {"h", "c", "state"} and gf.main == "h"
    cells = [nn.LSTMCell(2, 4).double(), nn.LSTMCell(4, 4).double()]
    with torch.no_grad():
        for k, cell in enumerate(cells):
            for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, n).copy_(getattr(layer, f"{n}_l{k}"))
    zeros = [torch.zeros(B, 4, dtype=torch.double) for _ in range(4)]
    h_top = torch.zeros(B, 4, dtype=torch.double, requires_grad=True)
    state = [(zeros[0], zeros[1]), (h_top, zeros[3])]
    tops = [h_top]
    for t in range(T):
        h0, c0 = cells[0](x[t], state[0])
        h1, c1 = cells[1](h0, state[1])
        h1.retain_grad()
        tops.append(h1)
        state = [(h0, c0), (h1, c1)]
    readout_loss(4, seed=0, dtype=torch.double)(h1).sum().backward()
    expected = [float(h.grad.norm(dim=1).mean()) for h in tops]
    assert gf.norms["h"] == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_gradflow_lstm_state_follows_step_jacobian_chain():
    """∂L/∂s_k = J_{k+1}ᵀ ∂L/∂s_{k+1}, J from torch.autograd.functional on torch's cell."""
    torch.manual_seed(2)
    layer = nn.LSTM(2, 3).double()
    cell = nn.LSTMCell(2, 3).double()
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, n).copy_(getattr(layer, n + "_l0"))
    T = 5
    x = torch.randn(T, 1, 2, dtype=torch.double)
    w = torch.randn(3, dtype=torch.double)
    gf = gradient_flow(layer, x, lambda y: y @ w)
    s = [torch.zeros(6, dtype=torch.double)]
    for t in range(T):
        h, c = cell(x[t], (s[-1][:3].view(1, 3), s[-1][3:].view(1, 3)))
        s.append(torch.cat([h[0], c[0]]).detach())
    g = torch.cat([w, torch.zeros(3, dtype=torch.double)])
    grads = [g]
    for k in range(T, 0, -1):
        def F(prev, k=k):
            h, c = cell(x[k - 1], (prev[:3].view(1, 3), prev[3:].view(1, 3)))
            return torch.cat([h[0], c[0]])
        J = torch.autograd.functional.jacobian(F, s[k - 1])
        g = J.T @ g
        grads.append(g)
    grads = grads[::-1]
    assert gf.norms["h"] == pytest.approx([float(g[:3].norm()) for g in grads], rel=1e-9)
    assert gf.norms["c"][:T] == pytest.approx([float(g[3:].norm()) for g in grads[:T]], rel=1e-9)
    assert gf.norms["state"][:T] == pytest.approx([float(g.norm()) for g in grads[:T]], rel=1e-9)


def test_gradflow_rnnlab_lstm_and_sru():
    x = torch.randn(20, 2, 3)
    gf = gradient_flow(rnnlab.LSTM(3, 8), x)
    assert len(gf.curve) == 21 and gf.at(20) == pytest.approx(1.0, rel=1e-5)
    assert gf.decay_ratio() < 1
    from rnnlab.layers.sru import SRU
    gf = gradient_flow(SRU(3, 8), x)
    assert gf.main == "c" and math.isnan(gf.curve[20]) and gf.last_index == 19
    assert all(v > 0 for v in gf.curve[:20])
    with pytest.raises(ValueError, match="unidirectional"):
        gradient_flow(rnnlab.LSTM(3, 8, bidirectional=True), x)


def test_spectral_radius_matches_eigvals_and_blocks():
    A = torch.randn(7, 7)
    assert spectral_radius(A) == pytest.approx(float(torch.linalg.eigvals(A).abs().max()), rel=1e-6)
    lstm = rnnlab.LSTM(3, 5)
    blocks = recurrent_blocks(lstm)
    assert list(blocks) == ["i", "f", "g", "o"]
    assert torch.equal(blocks["g"], lstm.weight_hh_l0.detach()[10:15])
    radii = spectral_radii(lstm)
    assert radii["g"] == pytest.approx(float(torch.linalg.eigvals(blocks["g"]).abs().max()),
                                       rel=1e-6)
    gru = nn.GRU(3, 5)
    assert list(spectral_radii(gru)) == ["r", "z", "n"]
    with pytest.raises(ValueError, match="square"):
        spectral_radius(torch.randn(2, 3))


def test_scale_recurrent_scales_the_radius():
    rnn = nn.RNN(3, 16)
    before = spectral_radii(rnn)["h"]
    scale_recurrent(rnn, 2.5)
    assert spectral_radii(rnn)["h"] == pytest.approx(2.5 * before, rel=1e-6)
    with pytest.raises(ValueError):
        scale_recurrent(rnn, 0)


@pytest.mark.parametrize("which", ["torch", "rnnlab"])
def test_step_jacobian_tanh_rnn_hand_formula(which):
    layer = _rnn(which, H=6)
    x = torch.randn(5, 4, 3, dtype=torch.double)
    states = states_along(layer, x)
    W = layer.weight_hh_l0.detach()
    for t in (1, 3, 5):
        J = step_jacobian(layer, x[t - 1], states[t - 1][0])
        h = states[t][0][0]
        expected = (1 - h ** 2).unsqueeze(-1) * W  # diag(1 - h_t²) W_hh, per sample
        torch.testing.assert_close(J, expected)
    sv = jacobian_singular_values(layer, x, [2, 4])
    h = states[4][0][0]
    torch.testing.assert_close(sv[4].double(), torch.linalg.svdvals((1 - h ** 2).unsqueeze(-1) * W),
                               rtol=1e-5, atol=1e-6)


def test_step_jacobian_lstm_matches_functional_jacobian():
    layer = rnnlab.LSTM(3, 4).double()
    x_t = torch.randn(2, 3, dtype=torch.double)
    h0, c0 = torch.randn(1, 2, 4, dtype=torch.double), torch.randn(1, 2, 4, dtype=torch.double)
    J = step_jacobian(layer, x_t, (h0, c0))
    for b in range(2):
        def f(s, b=b):
            _, (h, c) = layer(x_t[b:b + 1].unsqueeze(0), (s[:4].view(1, 1, 4), s[4:].view(1, 1, 4)))
            return torch.cat([h.flatten(), c.flatten()])
        ref = torch.autograd.functional.jacobian(f, torch.cat([h0[0, b], c0[0, b]]))
        torch.testing.assert_close(J[b], ref)


def test_gate_statistics_saturation():
    v = torch.tensor([0.01, 0.5, 0.97, 0.6]).view(2, 1, 2)
    assert saturation(v).tolist() == [0.5, 0.5]
    assert saturation(torch.tensor([-0.99, 0.2]).view(1, 1, 2), "tanh").tolist() == [0.5]
    lstm = rnnlab.LSTM(2, 4)
    with torch.no_grad():
        lstm.bias_ih_l0[4:8] = 10.0  # forget gate pinned open
    stats = gate_statistics(lstm, torch.randn(7, 3, 2))
    assert stats["memory_gate"] == "f" and len(stats["gates"]["f"]["mean"]) == 7
    s = summarise(stats)
    assert s["f"]["saturation"] == 1.0 and s["f"]["mean"] > 0.99


def test_measure_model_reads_deeply_vanished_gradients_in_float64():
    from rnnlab.lab.diagnostics.measure import headline, measure_model
    from rnnlab.lab.train import TrainConfig, make_model, make_task_for

    config = TrainConfig(task="adding", cell="rnn", hidden=8, seq_len=100, recurrent_gain=0.3)
    task = make_task_for(config)
    model = make_model(config, task)
    record = measure_model(model, task, batch_size=4, jacobian_samples=2, jacobian_steps=3)
    curve = record["gradflow"]["norms"]["h"]
    assert 0 < curve[0] < 1e-46  # below float32's smallest number, still measured
    assert record["gradflow"]["orders_of_magnitude"] < -40
    assert next(model.parameters()).dtype == torch.float32  # the model itself is untouched
    h = headline(record)
    assert h["k"] == [0, 25, 50, 75, 100] and h["radius"] > 0
    assert set(record["gates"]) == {"h"} and len(record["jacobian"]) == 3
