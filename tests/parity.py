"""Shared helpers for tests comparing an rnnlab layer with torch.nn on the same weights, or with
an oracle: autograd through a Python loop of the cell step functions."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnlab

TOL = {torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-5)}

FAMILIES = {
    "rnn_tanh": (lambda **kw: ("RNN", torch.nn.RNN, dict(kw, nonlinearity="tanh"))),
    "rnn_relu": (lambda **kw: ("RNN", torch.nn.RNN, dict(kw, nonlinearity="relu"))),
    "lstm": (lambda **kw: ("LSTM", torch.nn.LSTM, kw)),
    "gru": (lambda **kw: ("GRU", torch.nn.GRU, kw)),
}

# A small grid of layer options and input forms ('h0': an initial state is given).
LAYER_CONFIGS = [dict(num_layers=L, bidirectional=bi, batch_first=bf, bias=bias)
                 for L, bi, bf, bias in [(1, False, False, True), (1, True, True, False),
                                         (2, False, True, True), (2, True, False, True),
                                         (2, True, True, False)]]
STATE_FORMS = ["padded", "packed", "unbatched", "h0", "packed_h0"]
LAYER_GRID = [(c, f) for c in LAYER_CONFIGS for f in STATE_FORMS
              if not (f == "unbatched" and c["batch_first"])]


def config_id(c):
    return (f"L{c['num_layers']}-{'bi' if c['bidirectional'] else 'uni'}-"
            f"{'bf' if c['batch_first'] else 'tf'}-{'bias' if c['bias'] else 'nobias'}")


LAYER_GRID_IDS = [f"{config_id(c)}-{f}" for c, f in LAYER_GRID]


def make_pair(family: str, backend: str, dtype, **kw):
    """A torch.nn layer and the rnnlab layer loaded from its state_dict."""
    name, torch_cls, kw = FAMILIES[family](**kw)
    reference = torch_cls(**kw, dtype=dtype)
    layer = getattr(rnnlab, name)(**kw, backend=backend, dtype=dtype)
    layer.load_state_dict(reference.state_dict())
    return reference, layer


def make_input(form: str, T: int, B: int, I: int, batch_first: bool, dtype, lengths=None):
    """An input of the given form ('padded', 'packed' or 'unbatched') and its leaf tensor.
    Packed without ``lengths``: random lengths, one of them T."""
    if form == "unbatched":
        leaf = torch.randn(T, I, dtype=dtype, requires_grad=True)
        return leaf, leaf
    shape = (B, T, I) if batch_first else (T, B, I)
    leaf = torch.randn(*shape, dtype=dtype, requires_grad=True)
    if form == "packed":
        if lengths is None:
            lengths = torch.randint(1, T + 1, (B,))
            lengths[torch.randint(0, B, ())] = T
        return pack_padded_sequence(leaf, lengths, batch_first=batch_first,
                                    enforce_sorted=False), leaf
    return leaf, leaf


def make_state_input(form: str, T: int, B: int, I: int, H: int, rows: int, batch_first: bool,
                     dtype, lengths):
    """An input of a :data:`STATE_FORMS` form: (input, leaves whose gradients are compared, h0)."""
    base = "unbatched" if form == "unbatched" else "packed" if form.startswith("packed") else "padded"
    x, leaf = make_input(base, T, B, I, batch_first, dtype, lengths)
    if not form.endswith("h0"):
        return x, [leaf], None
    h0 = torch.randn(rows, B, H, dtype=dtype, requires_grad=True)
    return x, [leaf, h0], h0


def output_tensors(out):
    """Flatten ``(output, h_n)`` / ``(output, (h_n, c_n))`` into a list of tensors."""
    output, state = out
    if isinstance(output, PackedSequence):
        output = output.data
    states = list(state) if isinstance(state, tuple) else [state]
    return [output, *states]


def loss_of(tensors):
    """A loss that weights every element differently, so every gradient path is exercised."""
    total = 0
    for k, t in enumerate(tensors):
        w = torch.linspace(-1, 1, t.numel(), dtype=t.dtype, device=t.device).view_as(t)
        total = total + ((t * w).sin() * (k + 1)).sum()
    return total


def assert_same(a, b, dtype, what, tol=None):
    """``a`` equals ``b`` within ``tol`` (default :data:`TOL` of ``dtype``)."""
    torch.testing.assert_close(a, b, **(tol or TOL[dtype]), msg=lambda m: f"{what}: {m}")


def assert_same_grads(actual, expected, wrt_actual, wrt_expected, names, dtype, tol=None):
    """The gradients of :func:`loss_of` of two lists of outputs are the same."""
    ge = torch.autograd.grad(loss_of(expected), wrt_expected, retain_graph=True)
    ga = torch.autograd.grad(loss_of(actual), wrt_actual)
    for name, a, e in zip(names, ga, ge):
        assert_same(a, e, dtype, f"grad {name}", tol)


def assert_matches_torch(reference, layer, x, hx, leaves, dtype):
    """``layer(x, hx)`` equals ``reference(x, hx)``: output, final states and the gradients with
    respect to ``leaves`` (input, then initial states) and every parameter."""
    expected, actual = output_tensors(reference(x, hx)), output_tensors(layer(x, hx))
    for name, a, e in zip(("output", "h_n", "c_n"), actual, expected):
        assert_same(a, e, dtype, name)
    names = ["input", *("h0", "c0")[:len(leaves) - 1],
             *(n for n, _ in reference.named_parameters())]
    assert_same_grads(actual, expected, leaves + list(layer.parameters()),
                      leaves + list(reference.parameters()), names, dtype)


def assert_cell_matches_torch(reference, cell, x, h, dtype):
    """A cell against its torch.nn cell, batched and unbatched, with and without a state:
    output and parameter gradients."""
    names = [n for n, _ in reference.named_parameters()]
    for args in [(x,), (x, h), (x[0],), (x[0], h[0])]:
        e, a = reference(*args), cell(*args)
        assert_same(a, e, dtype, "output")
        assert_same_grads([a], [e], list(cell.parameters()), list(reference.parameters()),
                          names, dtype)


def masked_loop(step, x, h, mask):
    """Autograd through a Python loop of ``h = step(x_t, h)`` over x (T, B, I), the oracle of a
    sequence Function; with a mask (T, B, 1) padded steps carry the state and output 0.
    Returns (y (T, B, H), h_T)."""
    ys = []
    for t in range(x.shape[0]):
        h_new = step(x[t], h)
        if mask is not None:
            h_new = torch.where(mask[t], h_new, h)
            ys.append(torch.where(mask[t], h_new, 0.0))
        else:
            ys.append(h_new)
        h = h_new
    return torch.stack(ys), h


def per_sequence_oracle(layer, step, x, lengths, states):
    """The oracle of a whole layer: every sequence alone, at its own length, layer by layer and
    direction by direction through ``step(params, x_t, state) -> (y_t, state)`` with x_t (1, I)
    and ``state`` a tuple of (1, H) tensors. x (T, B, I) padded, ``states`` a list of
    (L·D, B, H) initial states. Returns [output (T, B, D·H) zero past each length, *final]."""
    T, B, _ = x.shape
    D = layer.num_directions
    outs, finals = [], []  # finals[b][k·D + d]: the final state tuple of sequence b
    for b, n in enumerate(torch.as_tensor(lengths).tolist()):
        seq, last = x[:n, b:b + 1], []
        for k in range(layer.num_layers):
            ys = []
            for d in range(D):
                params, state = layer.cell_params(k, d), tuple(s[k * D + d, b:b + 1] for s in states)
                out = [None] * n
                for t in (range(n) if d == 0 else reversed(range(n))):
                    out[t], state = step(params, seq[t], state)
                ys.append(torch.stack(out))
                last.append(state)
            seq = torch.cat(ys, -1)
        outs.append(F.pad(seq, (0, 0, 0, 0, 0, T - n)))
        finals.append(last)
    final = [torch.stack([torch.cat([f[j][i] for f in finals]) for j in range(len(finals[0]))])
             for i in range(len(states))]
    return [torch.cat(outs, 1), *final]


def run_layer(layer, x, hx, lengths, how):
    """``layer`` on time-major padded x (T, B, I) given as 'padded' (every sequence full),
    'lengths' (the ``lengths=`` argument) or 'packed'. Returns [output (T, B, ·), *final]."""
    if how == "packed":
        out = layer(pack_padded_sequence(x, torch.as_tensor(lengths), enforce_sorted=False), hx)
        y, _ = pad_packed_sequence(out[0], total_length=x.shape[0])
        return [y, *output_tensors(out)[1:]]
    inp = x.transpose(0, 1) if layer.batch_first else x
    y, *final = output_tensors(layer(inp, hx, lengths=lengths if how == "lengths" else None))
    return [y.transpose(0, 1) if layer.batch_first else y, *final]


def assert_matches_oracle(layer, step, x, lengths, states, how="padded", tol=None):
    """``layer`` against :func:`per_sequence_oracle`: output, final states and the gradients
    with respect to x, the initial states and every parameter."""
    hx = states[0] if len(states) == 1 else tuple(states)
    actual = run_layer(layer, x, hx, lengths, how)
    expected = per_sequence_oracle(layer, step, x, lengths, states)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert_same(a, e, x.dtype, "output" if k == 0 else f"final state {k - 1}", tol)
    wrt = [x, *states, *layer.parameters()]
    names = ["input", *(f"initial state {k}" for k in range(len(states))),
             *(n for n, _ in layer.named_parameters())]
    assert_same_grads(actual, expected, wrt, wrt, names, x.dtype, tol)


@contextlib.contextmanager
def ieee_float32():
    """float32 compared at float32 tolerances on CUDA: TF32 off in cuDNN and in matmuls (the
    triton engine follows cuDNN's setting, the reference engine the matmul one); nothing to do
    elsewhere."""
    if not torch.cuda.is_available():
        yield
        return
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
