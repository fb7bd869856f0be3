"""A recurrent layer run backwards in time: what an ONNX ``LSTM`` / ``GRU`` / ``RNN`` node with
``direction="reverse"`` computes.

ONNX's reverse direction starts at the last valid step of each sequence and ends at its first:
with ``sequence_lens``, sequence ``b`` runs over steps ``len_b - 1, ..., 0``, its padded steps
stay zero in ``Y``, and ``Y_h`` / ``Y_c`` are the states after step 0. :class:`Reverse` wraps a
forward rnnlab layer and runs it on the time-flipped valid part of each sequence, the same
flip the reverse half of a bidirectional layer uses (:func:`rnnlab.layers.sequence.reverse_time`).
"""

from __future__ import annotations

from torch import nn

from rnnlab.layers import validate
from rnnlab.layers.base import RecurrentBase
from rnnlab.layers.sequence import from_batch, reverse_time, to_batch

# read through to the wrapped layer; its methods (trace, to_torch, ...) compute forward in time,
# so they are not
CONFIG = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional",
          "num_directions", "output_size", "backend", "initial_state")


class Reverse(nn.Module):
    """Run ``layer`` backwards in time, each sequence within its own length.

    Args:
        layer: a one-direction rnnlab recurrent layer (``bidirectional=False``); its parameters
            are this module's (``layer.weight_ih_l0`` ...).

    Called like the layer: ``forward(input, hx=None, *, lengths=None)`` with ``input`` (T, B, I),
    (B, T, I) with ``batch_first``, (T, I) unbatched, or a PackedSequence. Returns the layer's
    ``(output, h_n)`` (``(output, (h_n, c_n))`` for LSTM): ``output[t]`` is the state after the
    reverse pass reached step ``t`` (zero at padded steps), ``h_n`` the state after step 0.
    With ``num_layers > 1`` every layer runs backwards: flipping twice between layers is the
    identity, so the stack is one flip around the wrapped stacked layer.
    """

    def __init__(self, layer: RecurrentBase):
        super().__init__()
        if not isinstance(layer, RecurrentBase):
            raise TypeError(f"layer: expected an rnnlab recurrent layer, got "
                            f"{type(layer).__name__}")
        if layer.bidirectional:
            raise ValueError("layer: a bidirectional layer already runs both ways; Reverse "
                             "takes a one-direction layer")
        self.layer = layer

    def __getattr__(self, name: str):
        if name in CONFIG:
            return getattr(self.layer, name)
        return super().__getattr__(name)

    def forward(self, input, hx=None, *, lengths=None):
        """The layer's outputs on the time-reversed sequences, put back in time order."""
        layer = self.layer
        validate.check_input(layer, input, lengths)
        batch, unbatched = to_batch(input, lengths, layer.batch_first)
        index = batch.reverse_index()
        flipped = from_batch(reverse_time(batch.x, index), batch, unbatched, layer.batch_first)
        out, finals = layer(flipped, hx, lengths=lengths)
        out = to_batch(out, lengths, layer.batch_first)[0].x
        return from_batch(reverse_time(out, index), batch, unbatched, layer.batch_first), finals
