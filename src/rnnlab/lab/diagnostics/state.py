"""A recurrent layer's state as diagnostics see it: named pieces, flattened per sample.

Every rnnlab layer (and torch.nn's) carries its state between calls as ``hx``: ``h`` for RNN
and GRU, ``(h, c)`` for LSTM, ``c`` for SRU, each (L·D, B, S). The helpers here let the
diagnostics treat all of them alike: run one step at a time, perturb or differentiate the
state, and turn it into one (B, n) matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor

MIN_KINDS = ("mingru", "minlstm")  # parallel-scan cells: state h only, no recurrent matrix


def cell_kind(layer) -> str:
    """``"rnn"``, ``"lstm"``, ``"gru"``, ``"sru"``, ``"mingru"`` or ``"minlstm"`` from the
    layer's class (the min cells first: ``MinLSTM`` is not an ``LSTM``)."""
    name = type(layer).__name__.lower()
    for kind in (*MIN_KINDS, "lstm", "gru", "sru", "rnn"):
        if kind in name:
            return kind
    raise TypeError("layer: expected an RNN, LSTM, GRU, SRU, MinGRU or MinLSTM layer, got "
                    f"{type(layer).__name__}")


def state_names(layer) -> tuple[str, ...]:
    """Names of the state pieces, in ``hx`` order: ``("h",)``, ``("h", "c")`` or ``("c",)``."""
    names = getattr(layer, "state_names", None)
    if names is not None:
        return tuple(n[0] for n in names)
    return {"lstm": ("h", "c"), "sru": ("c",)}.get(cell_kind(layer), ("h",))


def split_state(layer, hx) -> tuple[Tensor, ...]:
    """A layer's state as it takes it (a tensor, or a tuple for LSTM) as a tuple of pieces."""
    return tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)


def join_state(layer, pieces):
    """The inverse of :func:`split_state`: pieces back to the layer's state form."""
    return tuple(pieces) if len(pieces) > 1 else pieces[0]


def zero_state(layer, batch: int, like: Tensor) -> tuple[Tensor, ...]:
    """Zero initial state pieces, (L·D, B, S) each."""
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    sizes = {"h": getattr(layer, "proj_size", 0) or layer.hidden_size, "c": layer.hidden_size}
    return tuple(like.new_zeros(rows, batch, sizes[n]) for n in state_names(layer))


def step(layer, x_t: Tensor, pieces: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One time step of ``layer`` on ``x_t`` (B, I): returns ``(y_t (B, D·H), new pieces)``."""
    x1 = x_t.unsqueeze(1) if layer.batch_first else x_t.unsqueeze(0)
    out, hx = layer(x1, join_state(layer, pieces))
    y = out[:, 0] if layer.batch_first else out[0]
    return y, split_state(layer, hx)


def flatten(pieces: tuple[Tensor, ...]) -> Tensor:
    """(L·D, B, S) pieces → (B, n): per sample, every piece and layer side by side."""
    return torch.cat([p.transpose(0, 1).reshape(p.shape[1], -1) for p in pieces], dim=1)


def unflatten(flat: Tensor, like: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Inverse of :func:`flatten`, with the piece shapes of ``like`` (batch from ``flat``)."""
    out, start = [], 0
    B = flat.shape[0]
    for p in like:
        rows, _, S = p.shape
        n = rows * S
        out.append(flat[:, start:start + n].reshape(B, rows, S).transpose(0, 1))
        start += n
    return tuple(out)
