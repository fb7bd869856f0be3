"""Layer-normalised LSTM and GRU with the regularisers (recurrent dropout, zoneout on h and c,
the zoneout expectation) and every activation option, on the reference engine: the hand BPTT
against an oracle written here from the equations (autograd through a Python loop of
``F.layer_norm`` and the activations), forward, final states and every gradient in float64 to
1e-10; gradcheck of the Functions with fixed masks; the layer's own draws in train mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from layernorm_gradcheck import gradcheck_layernorm_functions

import rnnlab
from rnnlab import activations, regularisers
from rnnlab.bptt.gru import GRUOptions
from rnnlab.bptt.layernorm_gru import LayerNormGRUFunction, layernorm_gru_sequence
from rnnlab.bptt.layernorm_lstm import LayerNormLSTMFunction, layernorm_lstm_sequence
from rnnlab.bptt.lstm import LSTMOptions
from rnnlab.regularisers import Masks, prepare

F64 = torch.float64
TOL = dict(atol=1e-10, rtol=1e-10)
T, B, I, H = 6, 3, 4, 5
LENGTHS = torch.tensor([6, 2, 4])
EPS = 1e-5


# ---- the oracle: the equations, step by step, under autograd ----------------------------------
def ln(v, gain=None, shift=None):
    return F.layer_norm(v, (v.shape[-1],), gain, shift, EPS)


def zone(new, old, d):
    """Zoneout ``d∘old + (1-d)∘new`` as the paper writes it."""
    return new if d is None else d * old + (1 - d) * new


def lstm_oracle(x, state, p, opts: LSTMOptions, masks: Masks, run):
    """Ba et al.'s LSTM: a = LN(W_ih x)γ_ih + LN(W_hh (m∘h))γ_hh + b; c̃ = f c + i g;
    h̃ = o φ(LN(c̃)γ_c + β_c); zoneout on h and c (h̃ reads c̃); padded steps carry."""
    h, c = state
    ys = []
    for t in range(x.shape[0]):
        h_in = h if masks.recurrent is None else h * masks.recurrent
        a = ln(x[t] @ p["weight_ih"].T, p["ln_ih_weight"]) + ln(h_in @ p["weight_hh"].T,
                                                                 p["ln_hh_weight"])
        if "bias_ih" in p:
            a = a + p["bias_ih"] + p["bias_hh"]
        a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
        i, f, o = opts.gate_act(a_i), opts.gate_act(a_f), opts.gate_act(a_o)
        c_new = f * c + i * opts.cand_act(a_g)
        h_new = o * opts.out_act(ln(c_new, p["ln_c_weight"], p["ln_c_bias"]))
        c_new = zone(c_new, c, None if masks.zone_c is None else masks.zone_c[t])
        h_new = zone(h_new, h, None if masks.zone_h is None else masks.zone_h[t])
        h, c = torch.where(run[t], h_new, h), torch.where(run[t], c_new, c)
        ys.append(torch.where(run[t], h_new, 0.0))
    return torch.stack(ys), (h, c)


def gru_oracle(x, state, p, opts: GRUOptions, masks: Masks, run):
    """LN-GRU: gx = LN(W_ih x)γ_ih + b_ih, gh = LN(W_hh (m∘h))γ_hh + b_hh, r, z, n as torch's
    GRU, h̃ = (1-z) n + z h; zoneout on h; padded steps carry."""
    (h,) = state
    gx_all = ln(x @ p["weight_ih"].T, p["ln_ih_weight"]) + p.get("bias_ih", 0.0)
    ys = []
    for t in range(x.shape[0]):
        h_in = h if masks.recurrent is None else h * masks.recurrent
        gh = ln(h_in @ p["weight_hh"].T, p["ln_hh_weight"]) + p.get("bias_hh", 0.0)
        x_r, x_z, x_n = gx_all[t].chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r, z = opts.gate_act(x_r + h_r), opts.gate_act(x_z + h_z)
        n = opts.cand_act(x_n + r * h_n)
        h_new = zone((1 - z) * n + z * h, h, None if masks.zone_h is None else masks.zone_h[t])
        h = torch.where(run[t], h_new, h)
        ys.append(torch.where(run[t], h_new, 0.0))
    return torch.stack(ys), (h,)


# ---- layers, masks, comparisons ---------------------------------------------------------------
def perturb_norms(layer, seed=11):
    """Move the norms' gains and shift off their init (1, 0) so their gradients are exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer


def make_layer(family, bias=True, acts=(), **kw):
    """A float64 layer-normalised LSTM / GRU; ``acts``: (gate, candidate[, output]) options."""
    names = ("gate_activation", "activation", "output_activation")[:3 if family == "LSTM" else 2]
    kw.update(dict(zip(names, acts)))
    return perturb_norms(getattr(rnnlab, family)(I, H, bias=bias, layer_norm=True, dtype=F64,
                                                 **kw))


def fixed_masks(kinds, family, expectation=False):
    like = torch.empty(0, dtype=F64)
    if expectation:
        return Masks(zone_h=torch.full((T, B, H), 0.3, dtype=F64),
                     zone_c=torch.full((T, B, H), 0.6, dtype=F64) if family == "LSTM" else None)
    return Masks(
        recurrent=regularisers.keep_mask((B, H), 0.4, like) if "recurrent" in kinds else None,
        zone_h=regularisers.zone_mask((T, B, H), 0.3, like) if "zone_h" in kinds else None,
        zone_c=regularisers.zone_mask((T, B, H), 0.4, like)
        if "zone_c" in kinds and family == "LSTM" else None)


def running(lengths):
    return (torch.arange(T)[:, None] < lengths[None]).unsqueeze(-1)


def inputs(family):
    x = torch.randn(T, B, I, dtype=F64, requires_grad=True)
    state = tuple(torch.randn(B, H, dtype=F64, requires_grad=True)
                  for _ in range(2 if family == "LSTM" else 1))
    return x, state


def compare(outs, refs, wrt):
    """Forward values and the gradients of a random projection of them."""
    for a, e in zip(outs, refs):
        torch.testing.assert_close(a, e, **TOL)
    w = [torch.randn_like(t) for t in outs]
    grads = torch.autograd.grad(sum((a * b).sum() for a, b in zip(outs, w)), wrt)
    expected = torch.autograd.grad(sum((a * b).sum() for a, b in zip(refs, w)), wrt)
    for a, e in zip(grads, expected):
        torch.testing.assert_close(a, e, **TOL)


def check_hand_bptt(layer, masks, lengths):
    """The hand BPTT of one direction (``*_sequence``) against the oracle, fixed masks."""
    family = type(layer).__name__
    x, state = inputs(family)
    params = layer.cell_params(0, 0)
    mask = running(lengths) if int(lengths.min()) < T else None
    sequence, oracle = ((layernorm_lstm_sequence, lstm_oracle) if family == "LSTM"
                        else (layernorm_gru_sequence, gru_oracle))
    y, final = sequence(x, state, params, mask, layer.options, masks)
    y_ref, final_ref = oracle(x, state, params, layer.options, masks or Masks(), running(lengths))
    compare([y, *final], [y_ref, *final_ref], [x, *state, *layer.parameters()])


ACTS = ("hard_sigmoid", "softsign", ("scaled_tanh", 1.7, 0.6))
KINDS = {"recurrent": ("recurrent",), "zoneout": ("zone_h", "zone_c"),
         "all": ("recurrent", "zone_h", "zone_c")}


@pytest.mark.parametrize("lengths", [torch.full((B,), T), LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("kinds", [*KINDS, "all-activations", "activations"])
@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_hand_bptt_matches_the_equations(family, kinds, lengths):
    torch.manual_seed(0)
    layer = make_layer(family, acts=ACTS if "activations" in kinds else (),
                       bias=kinds != "recurrent")
    masks = fixed_masks(KINDS.get(kinds.split("-")[0], ()), family)
    check_hand_bptt(layer, masks if kinds != "activations" else None, lengths)


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_zoneout_expectation_matches_the_equations(family):
    torch.manual_seed(1)
    check_hand_bptt(make_layer(family, acts=ACTS), fixed_masks((), family, expectation=True),
                    LENGTHS)


@pytest.mark.parametrize("name", activations.NAMES)
@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_every_activation_matches_the_equations(family, name):
    """Each activation in every role at once (gate, candidate, and the LSTM's output), with
    recurrent dropout and zoneout."""
    torch.manual_seed(2)
    layer = make_layer(family, acts=(name,) * 3)
    check_hand_bptt(layer, fixed_masks(KINDS["all"], family), LENGTHS)


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_layer_train_step_matches_the_equations_with_the_same_draws(family):
    """The layer's whole train-mode path (its own draws, weight dropout through autograd): the
    oracle redraws the masks from the same generator state."""
    gen = torch.Generator()
    zoneout = (0.2, 0.35) if family == "LSTM" else 0.25
    layer = make_layer(family, acts=ACTS, recurrent_dropout=0.3, zoneout=zoneout,
                       weight_dropout=0.2, generator=gen)
    x, state = inputs(family)
    gen.manual_seed(7)
    params, masks = prepare(layer, x, layer.cell_params(0, 0))
    oracle = lstm_oracle if family == "LSTM" else gru_oracle
    y_ref, final_ref = oracle(x, state, params, layer.options, masks, running(torch.full((B,), T)))
    gen.manual_seed(7)
    y, final = layer(x, tuple(s[None] for s in state) if family == "LSTM" else state[0][None])
    final = final if isinstance(final, tuple) else (final,)
    compare([y, *(f[0] for f in final)], [y_ref, *final_ref], [x, *state, *layer.parameters()])


def test_eval_mode_is_the_unregularised_layer():
    regularised = make_layer("LSTM", recurrent_dropout=0.3, zoneout=0.2, weight_dropout=0.2)
    plain = make_layer("LSTM")
    plain.load_state_dict(regularised.state_dict())
    regularised.eval(), plain.eval()
    x = torch.randn(T, B, I, dtype=F64)
    assert torch.equal(regularised(x, lengths=LENGTHS)[0], plain(x, lengths=LENGTHS)[0])
    regularised.train()
    assert not torch.equal(regularised(x)[0], plain(x)[0])


def test_still_refused_with_layer_norm():
    for kw in ({"peephole": True}, {"cell_clip": 3.0}, {"coupled": True}, {"proj_size": 2}):
        with pytest.raises(ValueError, match="layer_norm: cannot be combined with"):
            rnnlab.LSTM(I, H, layer_norm=True, **kw)
    with pytest.raises(ValueError, match="layer_norm"):
        rnnlab.GRU(I, H, layer_norm=True, reset_after=False)


# ---- gradcheck of the hand-derived backward with fixed masks ----------------------------------
@pytest.mark.parametrize("masked", [False, True], ids=["full", "mask"])
def test_gradcheck(masked):
    gradcheck_layernorm_functions(LayerNormLSTMFunction, LayerNormGRUFunction, masked, 3)
