"""The time loop's surroundings, shared by every cell family: stacked layers, two directions,
dropout between layers, and the regulariser masks. An engine supplies
``sequence(x, state, params, mask, masks)`` for one direction of one layer; this module wires
the layers and directions together.

The regularisers' masks (:func:`rnnlab.regularisers.prepare`: DropConnect on ``W_hh``,
recurrent dropout, zoneout) are drawn here, once per layer and direction in order, from the
layer's generator or torch's, whatever the engine: with equal generators every engine computes
the same function. ``params`` arrive with ``W_hh`` already masked (its gradient flows back
through the masking multiply by autograd) and ``masks`` is a
:class:`rnnlab.regularisers.Masks` or None.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnlab.layers.sequence import Batch, reverse_time
from rnnlab.regularisers import prepare


def run_stacked(layer, batch: Batch, states: tuple, sequence) -> tuple:
    """Run all layers and directions of ``layer``.

    states: tuple of (L·D, B, S) tensors (``(h,)``, ``(h, c)`` or ``(c,)``).
    Returns the last layer's output (T, B, D·H_out) and the final states, like ``states``.
    """
    x, mask, rev = batch.x, batch.mask, batch.reverse_index()
    directions = 2 if layer.bidirectional else 1
    finals = []
    for k in range(layer.num_layers):
        outputs = []
        for d in range(directions):
            index = k * directions + d
            state = tuple(s[index] for s in states)
            x_dir = x if d == 0 else reverse_time(x, rev)
            params, masks = prepare(layer, x_dir, layer.cell_params(k, d))
            y, final = sequence(x_dir, state, params, mask, masks)
            outputs.append(y if d == 0 else reverse_time(y, rev))
            finals.append(final)
        x = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
        if layer.dropout and layer.training and k < layer.num_layers - 1:
            x = F.dropout(x, layer.dropout, training=True)
    return x, tuple(torch.stack(parts) for parts in zip(*finals))
