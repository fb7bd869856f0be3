"""Truncated backpropagation through time for long streams.

Two helpers, for any module with the ``torch.nn`` recurrent calling convention
``module(input, hx) -> (output, state)`` (rnnlab's and torch's RNN/LSTM/GRU, rnnlab's SRU):

* :class:`StatefulRNN` wraps a layer so that each call starts from the previous call's final
  state, detached (Keras ``stateful=True``): feed a long stream batch by batch, where row b of
  every batch continues row b of the previous one; :meth:`StatefulRNN.reset_state` starts
  over (all rows, or the rows whose stream ended).
* :class:`TruncatedBPTT` cuts one long batch into chunks of ``chunk`` steps and yields the
  output of each chunk, computed from the previous chunk's final state, detached: backward
  on a chunk's loss flows through that chunk only (TBPTT with k1 = k2 = chunk).

Forward, chunk by chunk equals the full sequence (the state is carried exactly); the
gradient of chunk j is the gradient of the full-sequence computation in which the state is
detached at every chunk boundary.

Example::

    lstm = rnnlab.LSTM(1, 64)
    head = torch.nn.Linear(64, 1)
    for piece in TruncatedBPTT(lstm, chunk=100).chunks(x, y):   # x, y: (T, B, 1)
        loss = F.mse_loss(head(piece.output), piece.targets[0])
        opt.zero_grad(); loss.backward(); opt.step()
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


def detach_state(state):
    """``state`` (a tensor, or a tuple / list of them, nested) with every tensor detached."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


def _map_state(state, fn):
    if isinstance(state, Tensor):
        return fn(state)
    return type(state)(_map_state(s, fn) for s in state)


def _first_tensor(state) -> Tensor:
    return state if isinstance(state, Tensor) else _first_tensor(state[0])


class StatefulRNN(nn.Module):
    """A recurrent layer that remembers its final state between calls, like Keras'
    ``stateful=True``: call ``k+1`` starts where call ``k`` ended, with the state detached so
    that backward stops at the call boundary.

    Args:
        layer: a recurrent layer (rnnlab or torch.nn) taking ``(input, hx)``; forward only
            (``bidirectional`` layers read the future of each batch and are refused).
        detach: detach the carried state (True: truncated BPTT at call boundaries; False keeps
            the graph across calls, for callers that manage it).

    Call it as the layer: ``out, state = stateful(x)``; an explicit ``hx`` overrides the
    carried state for that call. The carried state is ``stateful.state`` (None: the layer's
    own initial state next time). It is not part of ``state_dict``.
    """

    def __init__(self, layer: nn.Module, *, detach: bool = True):
        super().__init__()
        if getattr(layer, "bidirectional", False):
            raise ValueError("layer: a stateful stream runs forward in time; a bidirectional "
                             "layer reads each batch's future")
        self.layer = layer
        self.detach = detach
        self.state = None

    @property
    def batch_first(self) -> bool:
        return bool(getattr(self.layer, "batch_first", False))

    def _batch_size(self, input) -> int | None:
        if isinstance(input, nn.utils.rnn.PackedSequence):
            return int(input.batch_sizes[0])
        if input.dim() == 2:
            return None  # unbatched
        return input.shape[0 if self.batch_first else 1]

    def forward(self, input, hx=None, **kwargs):
        if hx is None and self.state is not None:
            hx = self.state
            carried_batch = _first_tensor(hx).shape[1] if _first_tensor(hx).dim() == 3 else None
            if carried_batch != self._batch_size(input):
                raise ValueError(f"input: batch size {self._batch_size(input)} differs from the "
                                 f"carried state's {carried_batch}; call reset_state() to start "
                                 "new streams")
            device = input.data.device if isinstance(input, nn.utils.rnn.PackedSequence) \
                else input.device
            hx = _map_state(hx, lambda t: t.to(device))
        out, state = self.layer(input, hx, **kwargs)
        self.state = detach_state(state) if self.detach else state
        return out, state

    def reset_state(self, rows=None) -> None:
        """Forget the carried state: all of it (``rows=None``), or the batch rows ``rows``
        (indices or a bool mask of shape (B,)), which restart from the layer's initial state
        (zeros, or its learned state) while the other rows carry on."""
        if rows is None or self.state is None:
            self.state = None
            return
        like = _first_tensor(self.state)
        batch = like.shape[1]
        mask = torch.zeros(batch, dtype=torch.bool, device=like.device)
        mask[torch.as_tensor(rows, device=like.device)] = True
        initial = self._initial_state(batch, like)

        def reset(parts):
            return tuple(torch.where(mask.view(1, -1, 1), i.to(s.dtype), s)
                         for s, i in zip(parts, initial))

        if isinstance(self.state, Tensor):
            self.state = reset((self.state,))[0]
        else:
            self.state = type(self.state)(reset(tuple(self.state)))

    def _initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        if hasattr(self.layer, "initial_states"):  # rnnlab: zeros, learned or random
            with torch.no_grad():
                return self.layer.initial_states(batch, like)
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return tuple(torch.zeros_like(p) for p in parts)


@dataclass
class Chunk:
    """One chunk of a :meth:`TruncatedBPTT.chunks` pass.

    output: the module's output for the chunk (graph back to the chunk's start only).
    state: its final state (with graph; the next chunk starts from it detached).
    targets: the matching time slices of the extra tensors given to ``chunks``.
    start, stop: the chunk's time steps ``[start, stop)``.
    """

    output: Tensor
    state: object
    targets: tuple
    start: int
    stop: int


class TruncatedBPTT:
    """Run ``module`` over a long batch in chunks of ``chunk`` steps with the state carried
    (detached) from chunk to chunk.

    Args:
        module: takes ``(input, hx)`` and returns ``(output, state)``.
        chunk: steps per chunk (the last one may be shorter).
        batch_first: the time axis of the input (and targets) is 1 instead of 0; by default
            the module's own ``batch_first``.
        hx: initial state for the first chunk (None: the module's).

    :attr:`state` holds the detached state after the last chunk run; a second
    :meth:`chunks` pass continues from it (a stream spread over several batches), and
    :meth:`reset` clears it.
    """

    def __init__(self, module: nn.Module, chunk: int, *, batch_first: bool | None = None,
                 hx=None):
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk <= 0:
            raise ValueError(f"chunk: expected a positive int, got {chunk!r}")
        self.module, self.chunk = module, chunk
        self.batch_first = bool(getattr(module, "batch_first", False)) if batch_first is None \
            else batch_first
        self.state = detach_state(hx)

    def reset(self, hx=None) -> None:
        self.state = detach_state(hx)

    def chunks(self, input: Tensor, *targets: Tensor):
        """Yield a :class:`Chunk` per ``chunk`` steps of ``input`` (and of each target, cut
        along the same time axis)."""
        dim = 1 if self.batch_first else 0
        steps = input.shape[dim]
        for name, t in (("targets", t) for t in targets):
            if t.shape[dim] != steps:
                raise ValueError(f"{name}: expected {steps} steps on dim {dim} like the input, "
                                 f"got shape {tuple(t.shape)}")
        for start in range(0, steps, self.chunk):
            stop = min(start + self.chunk, steps)
            piece = input.narrow(dim, start, stop - start)
            output, state = self.module(piece, self.state)
            self.state = detach_state(state)
            yield Chunk(output, state, tuple(t.narrow(dim, start, stop - start) for t in targets),
                        start, stop)

    def forward(self, input: Tensor):
        """All chunks at once (no backward in between): ``(output, state)`` for the whole
        input, the output concatenated over chunks, the state with graph from the last
        chunk."""
        outs, state = [], None
        for piece in self.chunks(input):
            outs.append(piece.output)
            state = piece.state
        return torch.cat(outs, dim=1 if self.batch_first else 0), state

    __call__ = forward
