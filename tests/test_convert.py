"""Weight converters: Keras 3 (against the real library on the torch backend, when it installs)
and Haste (against an independent implementation of Haste's documented equations)."""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rnnlab
from rnnlab.convert import haste as hc
from rnnlab.convert import keras as kc

D64 = torch.float64
# Keras 3.15 + numpy 2 warn about __array__(copy=...) inside Keras itself
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _randomise(layer, scale=0.5):
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, scale)
    return layer


# ---- Keras: the equations, from the Keras 3 documentation and source ---------------------------
def keras_reference(kind, x, kernel, recurrent_kernel, bias=None, reset_after=True):
    """Keras LSTM (i,f,c,o), GRU (z,r,h; reset_after both) and SimpleRNN, batch-major x."""
    B, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, c, outs = x.new_zeros(B, H), x.new_zeros(B, H), []
    bias_in = bias_rec = None
    if bias is not None:
        bias_in, bias_rec = (bias[0], bias[1]) if bias.dim() == 2 else (bias, None)
    for t in range(T):
        xk = x[:, t] @ kernel + (0 if bias_in is None else bias_in)
        if kind == "lstm":
            i, f, cc, o = (xk + h @ recurrent_kernel).chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cc)
            h = torch.sigmoid(o) * torch.tanh(c)
        elif kind == "gru":
            x_z, x_r, x_h = xk.chunk(3, -1)
            rk_h = recurrent_kernel.chunk(3, -1)[2]
            inner = h @ recurrent_kernel + (0 if bias_rec is None else bias_rec)
            in_z, in_r, in_h = inner.chunk(3, -1)
            z, r = torch.sigmoid(x_z + in_z), torch.sigmoid(x_r + in_r)
            rec_h = r * in_h if reset_after else (r * h) @ rk_h
            h = z * h + (1 - z) * torch.tanh(x_h + rec_h)
        else:
            h = torch.tanh(xk + h @ recurrent_kernel)
        outs.append(h)
    return torch.stack(outs, 1), h, c


def _keras_random(kind, I, H, bias=True, reset_after=True):
    G = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    w = {"kernel": torch.randn(I, G * H, dtype=D64) * 0.5,
         "recurrent_kernel": torch.randn(H, G * H, dtype=D64) * 0.5}
    if bias:
        shape = (2, 3 * H) if kind == "gru" and reset_after else (G * H,)
        w["bias"] = torch.randn(*shape, dtype=D64) * 0.5
    return w


@pytest.mark.parametrize("kind, reset_after", [("lstm", True), ("gru", True), ("gru", False),
                                               ("rnn", True)])
@pytest.mark.parametrize("bias", [True, False])
def test_keras_equations(kind, reset_after, bias):
    """Converted weights reproduce Keras' equations (runs without Keras installed)."""
    I, H = 3, 4
    w = _keras_random(kind, I, H, bias, reset_after)
    cls = {"lstm": rnnlab.LSTM, "gru": rnnlab.GRU, "rnn": rnnlab.RNN}[kind]
    kw = {"reset_after": reset_after} if kind == "gru" else {}
    layer = cls(I, H, bias=bias, batch_first=True, dtype=D64, **kw)
    kc.load_keras_weights(layer, w)
    x = torch.randn(2, 6, I, dtype=D64)
    ref_out, ref_h, ref_c = keras_reference(kind, x, reset_after=reset_after, **w)
    out, state = layer(x)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close((state[0] if kind == "lstm" else state)[0], ref_h)
    if kind == "lstm":
        torch.testing.assert_close(state[1][0], ref_c)
    back = kc.keras_weights(layer)  # and back to Keras' arrays
    assert len(back) == len(w)
    for got, (name, want) in zip(back, w.items()):
        np.testing.assert_allclose(got, want.numpy(), err_msg=name, rtol=1e-12, atol=1e-12)


def test_keras_round_trips_from_torch_side():
    for cls, to_k, from_k in ((rnnlab.LSTM, kc.lstm_to_keras, kc.lstm_from_keras),
                              (rnnlab.RNN, kc.simple_rnn_to_keras, kc.simple_rnn_from_keras)):
        layer = _randomise(cls(3, 5, dtype=D64))
        p = layer.cell_params(0, 0)
        back = from_k(**to_k(**p))
        torch.testing.assert_close(back["weight_ih"], p["weight_ih"].detach())
        torch.testing.assert_close(back["weight_hh"], p["weight_hh"].detach())
        torch.testing.assert_close(back["bias_ih"] + back["bias_hh"],
                                   (p["bias_ih"] + p["bias_hh"]).detach())
    gru = _randomise(rnnlab.GRU(3, 5, dtype=D64))
    p = {k: v.detach() for k, v in gru.cell_params(0, 0).items()}
    back = kc.gru_from_keras(**kc.gru_to_keras(**p, reset_after=True))
    for name in p:
        torch.testing.assert_close(back[name], p[name])
    k = kc.gru_to_keras(**p)
    assert k["kernel"].shape == (3, 15) and k["bias"].shape == (2, 15)
    # Keras' z block is torch's second block
    np.testing.assert_array_equal(k["kernel"][:, :5], p["weight_ih"][5:10].T.numpy())


def test_keras_errors():
    w = _keras_random("gru", 3, 4, reset_after=True)
    with pytest.raises(ValueError, match="reset_after"):
        kc.load_keras_weights(rnnlab.GRU(3, 4, reset_after=False), w)
    with pytest.raises(ValueError, match="peephole"):
        kc.load_keras_weights(rnnlab.LSTM(3, 4, peephole=True), _keras_random("lstm", 3, 4))
    with pytest.raises(ValueError, match="layer_norm"):
        kc.keras_weights(rnnlab.LSTM(3, 4, layer_norm=True))
    with pytest.raises(ValueError, match="Keras has no SRU"):
        kc.load_keras_weights(rnnlab.SRU(3, 4), w)
    with pytest.raises(ValueError, match="weight_ih"):
        kc.load_keras_weights(rnnlab.LSTM(5, 4), _keras_random("lstm", 3, 4))  # wrong I
    with pytest.raises(ValueError, match="layer_index"):
        kc.load_keras_weights(rnnlab.LSTM(3, 4), _keras_random("lstm", 3, 4), layer_index=1)
    with pytest.raises(ValueError, match="direction"):
        kc.load_keras_weights(rnnlab.LSTM(3, 4), _keras_random("lstm", 3, 4), direction=1)
    with pytest.raises(ValueError, match="non-zero"):
        kc.load_keras_weights(rnnlab.LSTM(3, 4, bias=False), _keras_random("lstm", 3, 4))
    with pytest.raises(ValueError, match="recurrent_kernel"):
        kc.lstm_from_keras(np.zeros((3, 16)), np.zeros((4, 12)))
    with pytest.raises(ValueError, match="expected"):
        kc.load_keras_weights(rnnlab.LSTM(3, 4), [np.zeros((3, 16))])


def test_keras_stacked_layers():
    """Two Keras layers in a row → one two-layer rnnlab layer via layer_index."""
    w0, w1 = _keras_random("lstm", 3, 4), _keras_random("lstm", 4, 4)
    layer = rnnlab.LSTM(3, 4, num_layers=2, batch_first=True, dtype=D64)
    kc.load_keras_weights(layer, w0, layer_index=0)
    kc.load_keras_weights(layer, w1, layer_index=1)
    x = torch.randn(2, 5, 3, dtype=D64)
    mid, _, _ = keras_reference("lstm", x, **w0)
    ref, _, _ = keras_reference("lstm", mid, **w1)
    torch.testing.assert_close(layer(x)[0], ref)


# ---- Keras: the real library --------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip(
        "keras", reason="Keras 3 is not installed (pip install keras; it runs on the torch "
        "backend with KERAS_BACKEND=torch): the comparison with the real library is skipped")


def _keras_random_weights(klayer, scale=0.5):
    rng = np.random.default_rng(0)
    klayer.set_weights([rng.normal(0, scale, w.shape).astype(w.dtype)
                        for w in klayer.get_weights()])


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


KERAS_CASES = [
    ("LSTM", {}), ("LSTM", {"use_bias": False}), ("GRU", {"reset_after": True}),
    ("GRU", {"reset_after": False}), ("SimpleRNN", {}), ("SimpleRNN", {"activation": "relu"}),
]


@pytest.mark.parametrize("name, kw", KERAS_CASES,
                         ids=["lstm", "lstm-nobias", "gru-after", "gru-before", "rnn", "rnn-relu"])
def test_against_keras(keras, name, kw):
    I, H = 3, 5
    klayer = getattr(keras.layers, name)(H, return_sequences=True, return_state=True, **kw)
    x = np.random.default_rng(1).normal(size=(2, 7, I)).astype("float32")
    klayer(x)  # build
    _keras_random_weights(klayer)
    k_out, *k_states = klayer(x)
    ours = kc.from_keras_layer(klayer)
    out, state = ours(torch.from_numpy(x))
    np.testing.assert_allclose(_np(out), _np(k_out), rtol=1e-5, atol=1e-5)
    states = state if isinstance(state, tuple) else (state,)
    for mine, theirs in zip(states, k_states):
        np.testing.assert_allclose(_np(mine[0]), _np(theirs), rtol=1e-5, atol=1e-5)
    # the other way: random rnnlab weights into the Keras layer
    _randomise(ours)
    klayer.set_weights(kc.keras_weights(ours))
    np.testing.assert_allclose(_np(klayer(x)[0]), _np(ours(torch.from_numpy(x))[0]),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_against_keras_bidirectional(keras, name):
    klayer = keras.layers.Bidirectional(
        getattr(keras.layers, name)(4, return_sequences=True, return_state=True))
    x = np.random.default_rng(2).normal(size=(3, 6, 2)).astype("float32")
    klayer(x)
    _keras_random_weights(klayer)
    k_out, *k_states = klayer(x)
    ours = kc.from_keras_layer(klayer)
    out, state = ours(torch.from_numpy(x))
    np.testing.assert_allclose(_np(out), _np(k_out), rtol=1e-5, atol=1e-5)
    h = state[0] if name == "LSTM" else state
    np.testing.assert_allclose(_np(h[0]), _np(k_states[0]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(h[1]), _np(k_states[2 if name == "LSTM" else 1]),
                               rtol=1e-5, atol=1e-5)


def test_keras_unsupported(keras):
    klayer = keras.layers.LSTM(3, activation="relu")
    klayer.build((None, None, 2))
    with pytest.raises(ValueError, match="activation"):
        kc.from_keras_layer(klayer)
    klayer = keras.layers.GRU(3, go_backwards=True)
    klayer.build((None, None, 2))
    with pytest.raises(ValueError, match="go_backwards"):
        kc.from_keras_layer(klayer)
    with pytest.raises(ValueError, match="build it first"):
        kc.from_keras_layer(keras.layers.LSTM(3))


# ---- Haste: its equations, from Haste's documentation (docs/pytorch, frameworks/pytorch) ---------
def haste_reference(kind, x, kernel, recurrent_kernel, bias, recurrent_bias=None, gamma=None,
                    gamma_h=None, beta_h=None):
    """Haste's LSTM (i,g,f,o; one bias), GRU (z,r,h; reset after the product), and their
    layer-norm variants (LN over all gate rows, eps 1e-5, gain only; LSTM also LN(c)),
    time-major x, zero initial state."""
    T, B, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, c, outs = x.new_zeros(B, H), x.new_zeros(B, H), []

    def ln(v, g=None, b=None):
        return v if gamma is None else F.layer_norm(v, (v.shape[-1],), g, b, 1e-5)

    for t in range(T):
        wx = ln(x[t] @ kernel, None if gamma is None else gamma[0])
        rh = ln(h @ recurrent_kernel, None if gamma is None else gamma[1])
        if kind == "lstm":
            i, g, f, o = (wx + rh + bias).chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(ln(c, gamma_h, beta_h))
        else:
            vx, vh = (wx + bias).chunk(3, -1), (rh + recurrent_bias).chunk(3, -1)
            z, r = torch.sigmoid(vx[0] + vh[0]), torch.sigmoid(vx[1] + vh[1])
            h = z * h + (1 - z) * torch.tanh(vx[2] + r * vh[2])
        outs.append(h)
    return torch.stack(outs), h, c


def _haste_random(kind, layer_norm, I, H):
    G = 4 if kind == "lstm" else 3
    w = {"kernel": torch.randn(I, G * H, dtype=D64) * 0.5,
         "recurrent_kernel": torch.randn(H, G * H, dtype=D64) * 0.5,
         "bias": torch.randn(G * H, dtype=D64) * 0.5}
    if kind == "gru":
        w["recurrent_bias"] = torch.randn(G * H, dtype=D64) * 0.5
    if layer_norm:
        w["gamma"] = 1 + torch.randn(2, G * H, dtype=D64) * 0.3
        if kind == "lstm":
            w["gamma_h"] = 1 + torch.randn(H, dtype=D64) * 0.3
            w["beta_h"] = torch.randn(H, dtype=D64) * 0.3
    return w


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_haste_equations(kind, layer_norm):
    I, H = 3, 4
    w = _haste_random(kind, layer_norm, I, H)
    cls = rnnlab.LSTM if kind == "lstm" else rnnlab.GRU
    layer = cls(I, H, layer_norm=layer_norm, dtype=D64)
    hc.load_haste_weights(layer, w)
    x = torch.randn(6, 2, I, dtype=D64)
    ref_out, ref_h, ref_c = haste_reference(kind, x, **w)
    out, state = layer(x)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close((state[0] if kind == "lstm" else state)[0], ref_h)
    if kind == "lstm":
        torch.testing.assert_close(state[1][0], ref_c)
    back = hc.haste_weights(layer)  # round trip to Haste's variables
    assert set(back) == set(w)
    for name in w:
        torch.testing.assert_close(back[name], w[name], msg=name)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_haste_round_trip_from_rnnlab(kind, layer_norm):
    cls = rnnlab.LSTM if kind == "lstm" else rnnlab.GRU
    a = _randomise(cls(3, 4, num_layers=2, bidirectional=True, layer_norm=layer_norm, dtype=D64))
    b = cls(3, 4, num_layers=2, bidirectional=True, layer_norm=layer_norm, dtype=D64)
    for k in range(2):
        for d in range(2):
            hc.load_haste_weights(b, hc.haste_weights(a, k, d), k, d)
    x = torch.randn(5, 2, 3, dtype=D64)
    torch.testing.assert_close(b(x)[0], a(x)[0])
    # Haste's variables have Haste's shapes and gate order
    w = hc.haste_weights(a)
    G = 4 if kind == "lstm" else 3
    assert w["kernel"].shape == (3, G * 4) and w["recurrent_kernel"].shape == (4, G * 4)
    p = a.cell_params(0, 0)
    second = slice(4, 8)  # Haste's 2nd block: g (LSTM) / r (GRU) = torch's 3rd / 1st block
    torch_block = slice(8, 12) if kind == "lstm" else slice(0, 4)
    torch.testing.assert_close(w["kernel"][:, second], p["weight_ih"][torch_block].detach().T)


def test_haste_errors():
    w = _haste_random("lstm", False, 3, 4)
    with pytest.raises(ValueError, match="peephole"):
        hc.load_haste_weights(rnnlab.LSTM(3, 4, peephole=True), w)
    with pytest.raises(ValueError, match="reset_after=False"):
        hc.haste_weights(rnnlab.GRU(3, 4, reset_after=False))
    with pytest.raises(ValueError, match="missing"):
        hc.load_haste_weights(rnnlab.LSTM(3, 4, layer_norm=True), w)
    with pytest.raises(ValueError, match="unknown"):
        hc.load_haste_weights(rnnlab.LSTM(3, 4), {**w, "gamma": torch.ones(2, 16)})
    with pytest.raises(ValueError, match="Haste has no RNN"):
        hc.haste_weights(rnnlab.RNN(3, 4))
    with pytest.raises(ValueError, match="bias"):
        hc.lstm_from_haste(w["kernel"], w["recurrent_kernel"], torch.zeros(12))
    no_bias = rnnlab.LSTM(3, 4, bias=False)
    hc.load_haste_weights(no_bias, {**w, "bias": torch.zeros(16)})  # zero bias loads
    assert torch.all(hc.haste_weights(no_bias)["bias"] == 0)
