"""The native engine: PyTorch's own fused recurrent ops (cuDNN on GPU, oneDNN/ATen on CPU),
the same kernels :class:`torch.nn.LSTM` and friends call.

Under ``torch.compile`` the LSTM's op on the CPU runs outside the graph (a graph break), as
:class:`torch.nn.LSTM`'s does (Dynamo does not trace torch's recurrent modules): Inductor
miscompiles its oneDNN kernel (``aten.mkldnn_rnn_layer``) when training on an input that needs
no gradient. The other ops are traced into the graph.
"""

from __future__ import annotations

import torch
from torch import _VF
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.transforms import tracing

name = "native"

_OPS = {"RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu, "LSTM": _VF.lstm, "GRU": _VF.gru}


_lstm_outside_graph = torch.compiler.disable(_VF.lstm)


def _op(layer, x):
    if layer.native_mode == "LSTM" and x.device.type == "cpu" and tracing() == "torch.compile":
        return _lstm_outside_graph
    return _OPS[layer.native_mode]


def unsupported(layer, batch) -> str | None:
    """Why torch's fused op cannot run this call, or None."""
    if batch.x.is_meta and batch.lengths is not None and batch.packed is None:
        return "torch cannot pack a padded input on the meta device"
    return layer.torch_op_lacks() or layer.native_unsupported()


def _flat_weights(layer) -> list:
    weights = []
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            weights.extend(layer.cell_params(k, d).values())
    return weights


def run(layer, batch, states):
    """Run the layer with torch's fused op (``torch.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``): ``(output, final states)``."""
    op = _op(layer, batch.x)
    hx = list(states) if len(states) > 1 else states[0]
    args = (_flat_weights(layer), layer.bias, layer.num_layers, layer.dropout, layer.training,
            layer.bidirectional)
    if batch.lengths is None:
        out, *finals = op(batch.x, hx, *args, False)
        return out, tuple(finals)
    packed = batch.packed or pack_padded_sequence(batch.x, batch.lengths, enforce_sorted=False)
    order = packed.sorted_indices
    if order is not None:
        hx = [h.index_select(1, order) for h in hx] if isinstance(hx, list) else hx.index_select(1, order)
    data, *finals = op(packed.data, packed.batch_sizes, hx, *args)
    out, _ = pad_packed_sequence(packed._replace(data=data), total_length=batch.x.shape[0])
    if packed.unsorted_indices is not None:
        finals = [f.index_select(1, packed.unsorted_indices) for f in finals]
    return out, tuple(finals)
