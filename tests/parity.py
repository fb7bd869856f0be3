"""Shared helpers for tests comparing an rnnlab layer with torch.nn on the same weights."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnlab

TOL = {torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-5)}

FAMILIES = {
    "rnn_tanh": (lambda **kw: ("RNN", torch.nn.RNN, dict(kw, nonlinearity="tanh"))),
    "rnn_relu": (lambda **kw: ("RNN", torch.nn.RNN, dict(kw, nonlinearity="relu"))),
    "lstm": (lambda **kw: ("LSTM", torch.nn.LSTM, kw)),
    "gru": (lambda **kw: ("GRU", torch.nn.GRU, kw)),
}


def make_pair(family: str, backend: str, dtype, **kw):
    """A torch.nn layer and the rnnlab layer loaded from its state_dict."""
    name, torch_cls, kw = FAMILIES[family](**kw)
    reference = torch_cls(**kw, dtype=dtype)
    layer = getattr(rnnlab, name)(**kw, backend=backend, dtype=dtype)
    layer.load_state_dict(reference.state_dict())
    return reference, layer


def make_input(form: str, T: int, B: int, I: int, batch_first: bool, dtype, lengths=None):
    """An input of the given form ('padded', 'packed' or 'unbatched') and its leaf tensor."""
    if form == "unbatched":
        leaf = torch.randn(T, I, dtype=dtype, requires_grad=True)
        return leaf, leaf
    shape = (B, T, I) if batch_first else (T, B, I)
    leaf = torch.randn(*shape, dtype=dtype, requires_grad=True)
    if form == "packed":
        lengths = lengths if lengths is not None else torch.randint(1, T + 1, (B,))
        lengths[torch.randint(0, B, ())] = T
        return pack_padded_sequence(leaf, lengths, batch_first=batch_first,
                                    enforce_sorted=False), leaf
    return leaf, leaf


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
        w = torch.linspace(-1, 1, t.numel(), dtype=t.dtype).view_as(t)
        total = total + ((t * w).sin() * (k + 1)).sum()
    return total


def assert_same(a, b, dtype, what):
    tol = TOL[dtype]
    torch.testing.assert_close(a, b, **tol, msg=lambda m: f"{what}: {m}")
