"""The weights of a layer in ONNX's layout: ``W``, ``R``, ``B`` (and the LSTM's ``P``) per
direction, with the row blocks in ONNX's gate order (:mod:`rnnlab.onnx._graph`)."""

from __future__ import annotations

import numpy as np

from rnnlab.layers.lstm import LSTM
from rnnlab.onnx._graph import gate_orders, to_onnx_blocks
from rnnlab.onnx._support import op_type


def onnx_weights(module, layer: int) -> dict[str, np.ndarray]:
    """``W``, ``R`` and (when present) ``B``, ``P`` of one layer in ONNX's layout and order."""
    coupled = isinstance(module, LSTM) and module.options.coupled
    order, sign, peep_order, peep_sign = gate_orders(op_type(module), coupled)
    W, R, Bs, P = [], [], [], []
    for d in range(module.num_directions):
        p = {n: t.detach().cpu().numpy() for n, t in module.cell_params(layer, d).items()}
        W.append(to_onnx_blocks(p["weight_ih"], order, sign))
        R.append(to_onnx_blocks(p["weight_hh"], order, sign))
        if module.bias:
            Bs.append(np.concatenate([to_onnx_blocks(p["bias_ih"], order, sign),
                                      to_onnx_blocks(p["bias_hh"], order, sign)]))
        if "peephole" in p:
            P.append(to_onnx_blocks(p["peephole"], peep_order, peep_sign).reshape(-1))
    out = {"W": np.stack(W), "R": np.stack(R)}
    if Bs:
        out["B"] = np.stack(Bs)
    if P:
        out["P"] = np.stack(P)
    return out
