"""Regularisers inside the recurrence (variational recurrent dropout, zoneout, DropConnect on
W_hh): eval mode is the plain layer, train mode is reproducible under a seed, the hand BPTT
with fixed masks equals autograd through a loop of the cell step functions (forward and every
gradient, float64 1e-10), gradcheck with fixed masks, mask statistics, variable lengths,
backend choice."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

import rnnlab
from rnnlab import regularisers
from rnnlab.bptt.gru import GRUFunction, GRUOptions
from rnnlab.bptt.lstm import LSTMFunction, LSTMOptions
from rnnlab.bptt.rnn import RNNFunction, RNNOptions
from rnnlab.bptt.sru import SRUFunction
from rnnlab.cells.gru import gru_step
from rnnlab.cells.lstm import lstm_step
from rnnlab.cells.rnn import rnn_step
from rnnlab.cells.sru import sru_step
from rnnlab.regularisers import Masks, prepare

F64 = torch.float64
TOL = dict(atol=1e-10, rtol=1e-10)
T, B, I, H = 6, 3, 4, 5
LENGTHS = torch.tensor([6, 2, 4])
ALL = dict(recurrent_dropout=0.3, zoneout=0.25, weight_dropout=0.2)
LAYERS = {
    "rnn_tanh": lambda **kw: rnnlab.RNN(I, H, **kw),
    "rnn_relu": lambda **kw: rnnlab.RNN(I, H, nonlinearity="relu", **kw),
    "lstm": lambda **kw: rnnlab.LSTM(I, H, **kw),
    "lstm_variants": lambda **kw: rnnlab.LSTM(I, H, peephole=True, proj_size=3, cell_clip=0.8,
                                              **kw),
    "lstm_coupled": lambda **kw: rnnlab.LSTM(I, H, coupled=True, **kw),
    "gru": lambda **kw: rnnlab.GRU(I, H, **kw),
    "gru_reset_before": lambda **kw: rnnlab.GRU(I, H, reset_after=False, **kw),
}


def options_for(name: str) -> dict:
    """Every regulariser on; the LSTM with different rates for h and c."""
    return dict(ALL, zoneout=(0.2, 0.35)) if name.startswith("lstm") else ALL


def lerp(new, old, d):
    """The zoneout update ``d∘old + (1-d)∘new`` as the paper writes it."""
    return new if d is None else d * old + (1 - d) * new


# ---- the oracle: autograd through a loop of the cell step functions ---------------------------
def oracle(layer, x, state, params, masks: Masks | None, lengths):
    """One direction of one layer of ``layer`` by its cell step function, under autograd."""
    masks = masks or Masks()
    m, zh, zc = masks.recurrent, masks.zone_h, masks.zone_c
    family = type(layer).__name__
    run = (torch.arange(x.shape[0])[:, None] < lengths[None]).unsqueeze(-1)
    state, ys = list(state), []
    for t in range(x.shape[0]):
        if family == "SRU":
            (c,) = state
            u = F.linear(x[t], params["weight_ih"])
            _, c_new, gates = sru_step(u, x[t], c, params["weight_c"], params.get("bias"))
            c_new = lerp(c_new, c, None if zc is None else zc[t])
            highway = u[:, 3 * H:] if u.shape[-1] == 4 * H else x[t]
            h_new = gates["r"] * c_new + (1 - gates["r"]) * highway
            new = [c_new]
        else:
            h = state[0]
            h_in = h if m is None else h * m
            x_proj = F.linear(x[t], params["weight_ih"], params.get("bias_ih"))
            if family == "RNN":
                h_new = rnn_step(x_proj, h_in, params["weight_hh"], params.get("bias_hh"),
                                 nonlinearity=layer.nonlinearity)
                new = [h_new]
            elif family == "GRU":
                o = layer.options
                h_new, _ = gru_step(x_proj, h, params["weight_hh"], params.get("bias_hh"),
                                    reset_after=o.reset_after, gate_act=o.gate_act,
                                    cand_act=o.cand_act, recurrent_mask=m)
                new = [h_new]
            else:
                o = layer.options
                h_new, c_new, _ = lstm_step(
                    x_proj, h_in, state[1], params["weight_hh"], params.get("bias_hh"),
                    peephole=params.get("peephole"), cell_clip=o.cell_clip, coupled=o.coupled,
                    weight_hr=params.get("weight_hr"), gate_act=o.gate_act, cand_act=o.cand_act,
                    out_act=o.out_act)
                new = [h_new, lerp(c_new, state[1], None if zc is None else zc[t])]
            new[0] = h_new = lerp(h_new, h, None if zh is None else zh[t])
        state = [torch.where(run[t], n, s) for n, s in zip(new, state)]
        ys.append(torch.where(run[t], h_new, 0.0))
    return torch.stack(ys), tuple(state)


def fixed_masks(layer, kinds=("recurrent", "zone_h", "zone_c"), expectation=False):
    """Masks as the layer would draw them, or the eval expectation (fractional keep weights)."""
    H_out = layer.output_size
    if expectation:
        return Masks(zone_h=torch.full((T, B, H_out), 0.3, dtype=F64) if "zone_h" in kinds
                     else None,
                     zone_c=torch.full((T, B, H), 0.6, dtype=F64) if "zone_c" in kinds else None)
    return Masks(
        recurrent=regularisers.keep_mask((B, H_out), 0.4, torch.empty(0, dtype=F64))
        if "recurrent" in kinds else None,
        zone_h=regularisers.zone_mask((T, B, H_out), 0.3, torch.empty(0, dtype=F64))
        if "zone_h" in kinds else None,
        zone_c=regularisers.zone_mask((T, B, H), 0.3, torch.empty(0, dtype=F64))
        if "zone_c" in kinds else None)


def leaves_of(layer, with_c: bool):
    x = torch.randn(T, B, I, dtype=F64, requires_grad=True)
    sizes = [layer.output_size, H] if with_c else [H]
    state = tuple(torch.randn(B, s, dtype=F64, requires_grad=True) for s in sizes)
    return x, state


def check_against_oracle(layer, masks, lengths):
    x, state = leaves_of(layer, type(layer).__name__ == "LSTM")
    params = layer.cell_params(0, 0)
    mask = (torch.arange(T)[:, None] < lengths[None]).unsqueeze(-1) \
        if int(lengths.min()) < T else None
    y, final = _sequence(layer, x, state, params, mask, masks)
    y_ref, final_ref = oracle(layer, x, state, params, masks, lengths)
    outs, refs = (y, *final), (y_ref, *final_ref)
    for a, e in zip(outs, refs):
        torch.testing.assert_close(a, e, **TOL)
    wrt = [x, *state, *layer.parameters()]
    w = [torch.randn_like(t) for t in outs]
    grads = torch.autograd.grad(sum((a * b).sum() for a, b in zip(outs, w)), wrt)
    ref = torch.autograd.grad(sum((a * b).sum() for a, b in zip(refs, w)), wrt,
                              allow_unused=True)
    for a, e in zip(grads, ref):
        torch.testing.assert_close(a, torch.zeros_like(a) if e is None else e, **TOL)


def _sequence(layer, x, state, params, mask, masks):
    """The family's hand-BPTT sequence function with the given fixed masks."""
    from rnnlab.bptt.gru import gru_sequence
    from rnnlab.bptt.lstm import lstm_sequence
    from rnnlab.bptt.rnn import rnn_sequence
    from rnnlab.bptt.sru import sru_sequence
    family = type(layer).__name__
    if family == "SRU":
        return sru_sequence(x, state, params, mask, masks)
    fn = {"RNN": rnn_sequence, "GRU": gru_sequence, "LSTM": lstm_sequence}[family]
    return fn(x, state, params, mask, layer.options, masks)


KINDS = {"recurrent": ("recurrent",), "zoneout": ("zone_h", "zone_c"),
         "all": ("recurrent", "zone_h", "zone_c")}


@pytest.mark.parametrize("lengths", [torch.full((B,), T), LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("kinds", KINDS, ids=KINDS)
@pytest.mark.parametrize("name", LAYERS, ids=LAYERS)
def test_fixed_masks_match_cell_loop(name, kinds, lengths):
    layer = LAYERS[name](dtype=F64)
    check_against_oracle(layer, fixed_masks(layer, KINDS[kinds]), lengths)


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm_variants", "gru", "gru_reset_before"])
def test_zoneout_expectation_matches_cell_loop(name):
    layer = LAYERS[name](dtype=F64)
    check_against_oracle(layer, fixed_masks(layer, ("zone_h", "zone_c"), expectation=True),
                         LENGTHS)


@pytest.mark.parametrize("lengths", [torch.full((B,), T), LENGTHS], ids=["full", "lengths"])
def test_sru_zoneout_matches_cell_loop(lengths):
    for size in (I, H):  # projected highway (I != H) and identity highway
        layer = rnnlab.SRU(size, H, dtype=F64)
        x = torch.randn(T, B, size, dtype=F64, requires_grad=True)
        c0 = torch.randn(B, H, dtype=F64, requires_grad=True)
        masks = Masks(zone_c=regularisers.zone_mask((T, B, H), 0.4, x))
        params = layer.cell_params(0, 0)
        mask = (torch.arange(T)[:, None] < lengths[None]).unsqueeze(-1)
        y, (c,) = _sequence(layer, x, (c0,), params, mask, masks)
        y_ref, (c_ref,) = oracle(layer, x, (c0,), params, masks, lengths)
        torch.testing.assert_close(y, y_ref, **TOL)
        torch.testing.assert_close(c, c_ref, **TOL)
        wrt = [x, c0, *layer.parameters()]
        ga = torch.autograd.grad((y.sin().sum() + c.cos().sum()), wrt)
        ge = torch.autograd.grad((y_ref.sin().sum() + c_ref.cos().sum()), wrt)
        for a, e in zip(ga, ge):
            torch.testing.assert_close(a, e, **TOL)


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm_variants", "gru", "gru_reset_before"])
def test_layer_train_step_matches_cell_loop_with_the_same_draws(name):
    """The whole train-mode path (weight dropout through autograd included): the oracle redraws
    the layer's masks from the same seed with the same function."""
    layer = LAYERS[name](dtype=F64, **options_for(name))
    family = type(layer).__name__
    x, state = leaves_of(layer, family == "LSTM")
    torch.manual_seed(7)
    params, masks = prepare(layer, x, layer.cell_params(0, 0))
    assert masks is not None and params["weight_hh"] is not layer.cell_params(0, 0)["weight_hh"]
    y_ref, final_ref = oracle(layer, x, state, params, masks, torch.full((B,), T))
    torch.manual_seed(7)
    y, final = layer(x, tuple(s[None] for s in state) if family == "LSTM" else state[0][None])
    final = final if isinstance(final, tuple) else (final,)
    torch.testing.assert_close(y, y_ref, **TOL)
    for a, e in zip(final, final_ref):
        torch.testing.assert_close(a[0], e, **TOL)
    wrt = [x, *state, *layer.parameters()]
    ga = torch.autograd.grad(y.sin().sum() + sum(f.sum() for f in final), wrt)
    ge = torch.autograd.grad(y_ref.sin().sum() + sum(f.sum() for f in final_ref), wrt)
    for a, e in zip(ga, ge):
        torch.testing.assert_close(a, e, **TOL)


# ---- gradcheck with fixed masks -----------------------------------------------------------------
def _run_mask(masked):
    return (torch.arange(4)[:, None] < torch.tensor([4, 2])).unsqueeze(-1) if masked else None


@pytest.mark.parametrize("masked", [False, True], ids=["full", "mask"])
def test_gradcheck_rnn_and_gru(masked):
    Tg, Bg, Ig, Hg = 4, 2, 3, 3
    kw = dict(dtype=F64, requires_grad=True)
    rec = regularisers.keep_mask((Bg, Hg), 0.5, torch.empty(0, dtype=F64))
    zone = regularisers.zone_mask((Tg, Bg, Hg), 0.5, torch.empty(0, dtype=F64))
    mask = _run_mask(masked)
    for rows, fn, opts in ((1, RNNFunction, RNNOptions()),
                           (3, GRUFunction, GRUOptions()),
                           (3, GRUFunction, GRUOptions(reset_after=False))):
        args = [torch.randn(Tg, Bg, Ig, **kw), torch.randn(Bg, Hg, **kw),
                torch.randn(rows * Hg, Ig, **kw), torch.randn(rows * Hg, Hg, **kw),
                torch.randn(rows * Hg, **kw), torch.randn(rows * Hg, **kw)]
        assert torch.autograd.gradcheck(
            lambda *a, fn=fn, opts=opts: fn.apply(*a, mask, opts, rec, zone), args)


@pytest.mark.parametrize("masked", [False, True], ids=["full", "mask"])
def test_gradcheck_lstm_and_sru(masked):
    Tg, Bg, Ig, Hg, P = 4, 2, 3, 3, 2
    kw = dict(dtype=F64, requires_grad=True)
    mask = _run_mask(masked)
    rec = regularisers.keep_mask((Bg, P), 0.5, torch.empty(0, dtype=F64))
    zone_h = regularisers.zone_mask((Tg, Bg, P), 0.5, torch.empty(0, dtype=F64))
    zone_c = regularisers.zone_mask((Tg, Bg, Hg), 0.5, torch.empty(0, dtype=F64))
    args = [torch.randn(Tg, Bg, Ig, **kw), torch.randn(Bg, P, **kw), torch.randn(Bg, Hg, **kw),
            torch.randn(4 * Hg, Ig, **kw), torch.randn(4 * Hg, P, **kw),
            torch.randn(4 * Hg, **kw), torch.randn(4 * Hg, **kw), torch.randn(3, Hg, **kw),
            torch.randn(P, Hg, **kw)]
    opts = LSTMOptions()
    assert torch.autograd.gradcheck(
        lambda *a: LSTMFunction.apply(*a, mask, opts, rec, zone_h, zone_c), args)
    args = [torch.randn(Tg, Bg, Ig, **kw), torch.randn(Bg, Hg, **kw),
            torch.randn(4 * Hg, Ig, **kw), torch.randn(2, Hg, **kw), torch.randn(2 * Hg, **kw)]
    assert torch.autograd.gradcheck(lambda *a: SRUFunction.apply(*a, mask, zone_c), args)


# ---- layer behaviour ----------------------------------------------------------------------------
FAMILY_KW = {
    "RNN": (lambda **kw: rnnlab.RNN(I, H, num_layers=2, bidirectional=True, **kw), ALL),
    "LSTM": (lambda **kw: rnnlab.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=2,
                                      **kw), dict(ALL, zoneout=(0.2, 0.1))),
    "GRU": (lambda **kw: rnnlab.GRU(I, H, num_layers=2, bidirectional=True, **kw), ALL),
    "SRU": (lambda **kw: rnnlab.SRU(I, H, num_layers=2, bidirectional=True, **kw),
            dict(zoneout=0.3)),
}


def _run(layer, x, **kw):
    out, state = layer(x, **kw)
    states = state if isinstance(state, tuple) else (state,)
    out = out.data if hasattr(out, "batch_sizes") else out
    loss = out.sin().sum() + sum(s.cos().sum() for s in states)
    grads = torch.autograd.grad(loss, list(layer.parameters()))
    return [out, *states, *grads]


@pytest.mark.parametrize("family", FAMILY_KW)
def test_eval_mode_is_the_plain_layer(family):
    make, options = FAMILY_KW[family]
    for backend in ("auto", "reference"):
        regularised = make(backend=backend, dtype=F64, **options)
        plain = make(backend=backend, dtype=F64)
        plain.load_state_dict(regularised.state_dict())
        regularised.eval(), plain.eval()
        x = torch.randn(T, B, I, dtype=F64)
        for a, e in zip(_run(regularised, x, lengths=LENGTHS), _run(plain, x, lengths=LENGTHS)):
            assert torch.equal(a, e)
    regularised.train()
    assert not torch.equal(_run(regularised, x)[0], _run(plain, x)[0])


@pytest.mark.parametrize("family", FAMILY_KW)
def test_train_mode_is_deterministic_under_a_seed(family):
    make, options = FAMILY_KW[family]
    layer = make(dtype=F64, **options)
    x = torch.randn(T, B, I, dtype=F64)
    torch.manual_seed(3)
    first = _run(layer, x, lengths=LENGTHS)
    torch.manual_seed(3)
    again = _run(layer, x, lengths=LENGTHS)
    for a, e in zip(first, again):
        assert torch.equal(a, e)
    torch.manual_seed(4)
    assert not torch.equal(_run(layer, x, lengths=LENGTHS)[0], first[0])


def test_generator_makes_draws_independent_of_the_global_rng():
    gen = torch.Generator().manual_seed(11)
    layer = rnnlab.LSTM(I, H, dtype=F64, generator=gen, **ALL)
    x = torch.randn(T, B, I, dtype=F64)
    rng = torch.get_rng_state()
    first = layer(x)[0]
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG was not touched
    gen.manual_seed(11)
    torch.manual_seed(99)
    assert torch.equal(layer(x)[0], first)


def test_packed_input_equals_padded_with_lengths_in_train_mode():
    layer = rnnlab.GRU(I, H, dtype=F64, batch_first=True, **ALL)
    x = torch.randn(B, T, I, dtype=F64)
    torch.manual_seed(5)
    out, h = layer(x, lengths=LENGTHS)
    torch.manual_seed(5)
    packed_out, packed_h = layer(pack_padded_sequence(x, LENGTHS, batch_first=True,
                                                      enforce_sorted=False))
    torch.testing.assert_close(packed_h, h, **TOL)
    padded, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True)
    torch.testing.assert_close(padded, out[:, :padded.shape[1]], **TOL)


# ---- mask statistics ----------------------------------------------------------------------------
def test_mask_rates():
    like = torch.empty(0, dtype=F64)
    for p in (0.1, 0.5, 0.8):
        keep = regularisers.keep_mask((400, 500), p, like)
        assert abs((keep == 0).double().mean().item() - p) < 0.01
        torch.testing.assert_close(keep[keep != 0], torch.full_like(keep[keep != 0], 1 / (1 - p)))
        assert abs(keep.mean().item() - 1) < 0.02  # inverted dropout keeps the expectation
        zone = regularisers.zone_mask((400, 500), p, like)
        assert abs(zone.mean().item() - p) < 0.01 and set(zone.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("dtype", [F64, torch.float32, torch.bfloat16])
def test_draws_resolve_the_rate_to_sixteen_bits(dtype):
    """P(1) = round(p·2¹⁶)/2¹⁶: rates within 2⁻¹⁷ of 0 or 1 are never / always drawn, and a rate
    one step above 0 fires at that rate (2⁻¹⁶ of 2²² draws: 64 expected)."""
    like = torch.empty(0, dtype=dtype)
    shape = (1024, 4096)
    assert regularisers.bernoulli(shape, 2.0**-18, like).sum() == 0
    assert regularisers.bernoulli(shape, 1 - 2.0**-18, like).min() == 1
    gen = torch.Generator().manual_seed(0)
    fired = regularisers.bernoulli(shape, 2.0**-16, like, gen).double().sum().item()
    assert 30 < fired < 110  # Poisson(64): outside this range with probability < 1e-4
    draws = regularisers.bernoulli((3, 5, 7), 0.5, like)
    assert draws.dtype == dtype and draws.shape == (3, 5, 7)


def test_layer_rates_end_to_end():
    """Zoneout: the fraction of units that keep their previous value is p; recurrent dropout:
    one mask per sequence, the same at every step; weight dropout: a fraction p of W_hh."""
    p = 0.3
    layer = rnnlab.RNN(8, 256, zoneout=p, dtype=F64)
    out, _ = layer(torch.randn(40, 16, 8, dtype=F64))
    kept = (out[1:] == out[:-1]).double().mean().item()
    assert abs(kept - p) < 0.02
    layer = rnnlab.RNN(8, 256, recurrent_dropout=p, weight_dropout=p, dtype=F64)
    x = torch.randn(5, 16, 8, dtype=F64)
    params, masks = prepare(layer, x, layer.cell_params(0, 0))
    assert masks.recurrent.shape == (16, 256) and masks.zone_h is None
    assert abs((masks.recurrent == 0).double().mean().item() - p) < 0.02
    assert abs((params["weight_hh"] == 0).double().mean().item() - p) < 0.02
    layer.eval()
    params, masks = prepare(layer, x, layer.cell_params(0, 0))
    assert masks is None and params["weight_hh"] is layer.weight_hh_l0


# ---- options, errors, backends ------------------------------------------------------------------
def test_backend_choice_and_reasons():
    layer = rnnlab.LSTM(I, H, recurrent_dropout=0.2)
    x = torch.randn(T, B, I)
    from rnnlab.backends import select_backend
    from rnnlab.layers.sequence import Batch
    assert "recurrent_dropout" in layer.torch_op_lacks()
    # not native; the cpu engine where it is built (tests/test_cpu_variants.py)
    assert select_backend(layer, Batch(x)).name in ("cpu", "reference")
    layer.eval()
    assert layer.torch_op_lacks() is None
    assert select_backend(layer, Batch(x)).name in ("native", "cpu")  # any fused engine
    assert isinstance(layer.to_torch(), torch.nn.LSTM)  # the eval-mode function
    with pytest.raises(ValueError, match="native.*zoneout"):
        rnnlab.GRU(I, H, zoneout=0.1, backend="native")
    expect = rnnlab.GRU(I, H, zoneout=0.1, zoneout_eval="expectation").eval()
    assert "zoneout_eval" in expect.torch_op_lacks()
    assert "zoneout=0.1" in repr(expect) and "zoneout_eval='expectation'" in repr(expect)
    assert "zoneout=(0.2, 0.1)" in repr(rnnlab.LSTM(I, H, zoneout=(0.2, 0.1)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(recurrent_dropout=1.0), "recurrent_dropout"),
    (dict(weight_dropout=-0.1), "weight_dropout"),
    (dict(zoneout=1.5), "zoneout"),
    (dict(zoneout="a"), "zoneout"),
    (dict(zoneout_eval="mean"), "zoneout_eval"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rnnlab.GRU(I, H, **kwargs)


def test_unsupported_combinations():
    with pytest.raises(ValueError, match="pair"):
        rnnlab.GRU(I, H, zoneout=(0.1, 0.2))
    with pytest.raises(TypeError, match="recurrent_dropout"):  # the SRU has no W_hh
        rnnlab.SRU(I, H, recurrent_dropout=0.1)
    with pytest.raises(TypeError, match="generator"):
        rnnlab.RNN(I, H, generator=3)
    # weight dropout with layer norm: it only masks the weight the BPTT receives
    layer = rnnlab.GRU(I, H, layer_norm=True, weight_dropout=0.5, dtype=F64)
    x = torch.randn(T, B, I, dtype=F64)
    torch.manual_seed(1)
    a = layer(x)[0]
    layer.eval()
    assert not torch.equal(a, layer(x)[0])
