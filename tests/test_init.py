"""Initialisation policies (``init=``): each checked for the statistics it promises."""

import math

import pytest
import torch
from torch import nn

import rnnlab
from rnnlab.init import Init, resolve_init

H = 8


def _blocks(w, size=H):
    return w.detach().split(size, dim=0)


def _directions(layer):
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            yield layer.cell_params(k, d)


@pytest.mark.parametrize("cls, tcls, kw", [
    (rnnlab.LSTM, nn.LSTM, {"num_layers": 2, "bidirectional": True}),
    (rnnlab.LSTM, nn.LSTM, {"proj_size": 3}),
    (rnnlab.GRU, nn.GRU, {"num_layers": 2}),
    (rnnlab.RNN, nn.RNN, {"nonlinearity": "relu", "bidirectional": True}),
])
def test_default_is_torch(cls, tcls, kw):
    """init="torch" (the default) draws exactly torch's weights under the same seed."""
    torch.manual_seed(3)
    theirs = tcls(5, H, **kw).state_dict()
    for init in (None, "torch", Init()):
        torch.manual_seed(3)
        ours = cls(5, H, **kw, **({} if init is None else {"init": init})).state_dict()
        assert list(ours) == list(theirs)
        for name, value in theirs.items():
            assert ours[name].shape == value.shape
            assert torch.equal(ours[name], value), name
            assert ours[name].abs().max() <= 1 / math.sqrt(H)


def test_default_sru_and_layer_norm_bounds():
    bound = 1 / math.sqrt(H)
    sru = rnnlab.SRU(5, H)
    assert all(p.abs().max() <= bound for p in sru.parameters())
    for layer in (rnnlab.LSTM(5, H, layer_norm=True, init="forget_bias"),
                  rnnlab.GRU(5, H, layer_norm=True, init="orthogonal")):
        for name, p in layer.named_parameters():
            if name.startswith("ln_c_bias"):
                assert torch.all(p == 0)
            elif name.startswith("ln_"):
                assert torch.all(p == 1), name  # the layer-norm gains survive the policy


@pytest.mark.parametrize("layer", [
    lambda: rnnlab.LSTM(5, H, num_layers=2, bidirectional=True, init="orthogonal"),
    lambda: rnnlab.GRU(5, H, num_layers=2, init=Init(recurrent="orthogonal")),
    lambda: rnnlab.RNN(5, H, init="orthogonal"),
    lambda: rnnlab.GRU(5, H, layer_norm=True, init="orthogonal"),
], ids=["lstm", "gru", "rnn", "gru-ln"])
def test_orthogonal(layer):
    layer = layer()
    for params in _directions(layer):
        blocks = _blocks(params["weight_hh"])
        assert len(blocks) == layer.gate_count
        for w in blocks:
            torch.testing.assert_close(w.T @ w, torch.eye(H), atol=1e-5, rtol=0)
            torch.testing.assert_close(w @ w.T, torch.eye(H), atol=1e-5, rtol=0)
        # the input weights and biases keep torch's uniform draw
        assert params["weight_ih"].abs().max() <= 1 / math.sqrt(H)


def test_orthogonal_gain_and_projection():
    lstm = rnnlab.LSTM(5, H, proj_size=3, init="orthogonal:2.0")
    for w in _blocks(lstm.weight_hh_l0):
        assert w.shape == (H, 3)
        torch.testing.assert_close(w.T @ w, 4 * torch.eye(3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("value", [1.0, 2.5, -1.0])
def test_forget_bias_lstm(value):
    lstm = rnnlab.LSTM(5, H, num_layers=2, bidirectional=True, init=Init(forget_bias=value))
    for p in _directions(lstm):
        assert torch.all(p["bias_ih"][H:2 * H] == value)
        assert torch.all(p["bias_hh"][H:2 * H] == 0)
        total = p["bias_ih"] + p["bias_hh"]
        assert torch.all(total[H:2 * H] == value)  # what the cell sees
        others = torch.cat([p["bias_ih"][:H], p["bias_ih"][2 * H:]])
        assert others.abs().max() <= 1 / math.sqrt(H)  # untouched


def test_forget_bias_gru_sru_and_keras_name():
    gru = rnnlab.GRU(5, H, init="unit_forget_bias")
    assert torch.all(gru.bias_ih_l0[H:2 * H] == 1) and torch.all(gru.bias_hh_l0[H:2 * H] == 0)
    sru = rnnlab.SRU(5, H, init="forget_bias:2")
    assert torch.all(sru.bias_l0[:H] == 2)
    assert sru.bias_l0[H:].abs().max() <= 1 / math.sqrt(H)


def test_forget_bias_behaviour():
    """With zero weights the forget gate the cell computes is exactly σ(forget_bias)."""
    lstm = rnnlab.LSTM(3, H, init="forget_bias:2", dtype=torch.float64)
    with torch.no_grad():
        lstm.weight_ih_l0.zero_()
        lstm.weight_hh_l0.zero_()
    f = lstm.trace(torch.randn(4, 2, 3, dtype=torch.float64))[0]["f"]
    torch.testing.assert_close(f, torch.full_like(f, 1 / (1 + math.exp(-2))))


@pytest.mark.parametrize("t_max", [10, 784])
def test_chrono_lstm(t_max):
    torch.manual_seed(1)
    lstm = rnnlab.LSTM(5, 64, num_layers=2, bidirectional=True, init=Init(chrono=t_max))
    for p in _directions(lstm):
        b_f, b_i = p["bias_ih"][64:128], p["bias_ih"][:64]
        assert torch.all(b_f >= 0) and torch.all(b_f <= math.log(t_max - 1))
        assert torch.equal(b_i, -b_f)
        assert torch.all(p["bias_hh"][:128] == 0)
        u = b_f.exp()  # ~ U(1, T_max - 1)
        assert u.min() < 1 + 0.2 * (t_max - 2) and u.max() > 1 + 0.8 * (t_max - 2)
        assert len(set(b_f.tolist())) == 64  # drawn, not constant
        # the g and o gates keep torch's draw
        assert p["bias_ih"][128:].abs().max() <= 1 / 8


def test_chrono_characteristic_times():
    """1 + e^{b_f} = the forgetting time of a unit spans [2, T_max]."""
    gru = rnnlab.GRU(5, 256, init="chrono:50")
    b_z = gru.bias_ih_l0[256:512].detach()
    times = 1 / (1 - torch.sigmoid(b_z))
    assert times.min() >= 2 - 1e-4 and times.max() <= 50 + 1e-3
    assert torch.all(gru.bias_hh_l0[256:512] == 0)
    sru = rnnlab.SRU(5, 16, init="chrono:20")
    assert torch.all(sru.bias_l0[:16] >= 0) and torch.all(sru.bias_l0[:16] <= math.log(19))


def test_irnn():
    rnn = rnnlab.RNN(5, H, num_layers=2, nonlinearity="relu", bidirectional=True,
                     init="identity")
    for p in _directions(rnn):
        assert torch.equal(p["weight_hh"].detach(), torch.eye(H))
        assert torch.all(p["bias_ih"] == 0) and torch.all(p["bias_hh"] == 0)
    small = rnnlab.RNN(5, H, nonlinearity="relu", init=Init(recurrent="identity", gain=0.01))
    assert torch.equal(small.weight_hh_l0.detach(), 0.01 * torch.eye(H))
    # with W_hh = I, b = 0 and zero input, a ReLU RNN keeps a non-negative state
    one = rnnlab.RNN(5, H, nonlinearity="relu", init="identity")
    h0 = torch.rand(1, 3, H)
    out, h = one(torch.zeros(6, 3, 5), h0)
    torch.testing.assert_close(h, h0)
    torch.testing.assert_close(out, h0.expand(6, 3, H))
    no_bias = rnnlab.RNN(5, H, bias=False, init="irnn")
    assert torch.equal(no_bias.weight_hh_l0.detach(), torch.eye(H))


def test_combined_policy():
    lstm = rnnlab.LSTM(5, H, init=rnnlab.Init(forget_bias=1.0, recurrent="orthogonal"))
    for w in _blocks(lstm.weight_hh_l0):
        torch.testing.assert_close(w.T @ w, torch.eye(H), atol=1e-5, rtol=0)
    assert torch.all(lstm.bias_ih_l0[H:2 * H] == 1)
    assert resolve_init("orthogonal+forget_bias") == Init(recurrent="orthogonal", forget_bias=1.0)
    assert resolve_init({"chrono": 30}) == Init(chrono=30)
    assert "init=Init(recurrent='orthogonal', forget_bias=1.0)" in repr(lstm)
    assert "init" not in repr(rnnlab.LSTM(5, H))


def test_reset_parameters_reapplies_policy():
    gru = rnnlab.GRU(5, H, init="forget_bias:3")
    with torch.no_grad():
        gru.bias_ih_l0.zero_()
    gru.reset_parameters()
    assert torch.all(gru.bias_ih_l0[H:2 * H] == 3)


def test_state_dict_moves_to_torch():
    lstm = rnnlab.LSTM(5, H, num_layers=2, init="orthogonal+forget_bias")
    theirs = lstm.to_torch()
    x = torch.randn(6, 2, 5)
    torch.testing.assert_close(lstm(x)[0], theirs(x)[0])


@pytest.mark.parametrize("make, match", [
    (lambda: rnnlab.RNN(5, H, init="chrono:10"), "RNN has no gate"),
    (lambda: rnnlab.RNN(5, H, init="forget_bias"), "RNN has no gate"),
    (lambda: rnnlab.LSTM(5, H, init="identity"), "IRNN"),
    (lambda: rnnlab.GRU(5, H, init="identity"), "IRNN"),
    (lambda: rnnlab.SRU(5, H, init="orthogonal"), "no recurrent matrix"),
    (lambda: rnnlab.LSTM(5, H, bias=False, init="forget_bias"), "bias=False"),
    (lambda: rnnlab.GRU(5, H, init="chrono"), "needs T_max"),
    (lambda: rnnlab.GRU(5, H, init="chrono:1"), ">= 2"),
    (lambda: rnnlab.GRU(5, H, init="xavier"), "unknown policy"),
    (lambda: rnnlab.GRU(5, H, init="forget_bias:abc"), "not a number"),
    (lambda: rnnlab.GRU(5, H, init=Init(recurrent="eye")), "recurrent must be"),
    (lambda: rnnlab.LSTM(5, H, init=Init(chrono=10, forget_bias=1)), "choose one"),
])
def test_bad_policies(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_type():
    with pytest.raises(TypeError, match="init"):
        rnnlab.LSTM(5, H, init=1.0)
