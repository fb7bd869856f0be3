"""A small helper to write ONNX graphs node by node with unique names, the graph input and
outputs both export forms share, and the gate orders shared by export and import."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DEFAULT_OPSET = 17
MIN_OPSET = 14  # the LSTM/GRU/RNN operators gained ``layout`` in opset 14

DTYPES = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("float64"): TensorProto.DOUBLE}

# Row blocks: ONNX block j is rnnlab (torch) block ORDER[j], times SIGN[j].
# LSTM: torch i,f,g,o  ->  ONNX i,o,f,c.
LSTM_ORDER, LSTM_SIGN = (0, 3, 1, 2), (1, 1, 1, 1)
# LSTM with coupled gates. rnnlab computes f = σ(a_f), i = 1 - f; onnxruntime's
# ``input_forget=1`` computes i = σ(a_i), f = 1 - i. The two agree when ONNX's i rows are
# rnnlab's f rows negated (σ(-a) = 1 - σ(a)); ONNX's f rows are unused and carry rnnlab's
# (equally unused) i rows, negated, so that a round trip gives back every parameter.
LSTM_COUPLED_ORDER, LSTM_COUPLED_SIGN = (1, 3, 0, 2), (-1, 1, -1, 1)
# GRU: torch r,z,n  ->  ONNX z,r,h.
GRU_ORDER, GRU_SIGN = (1, 0, 2), (1, 1, 1)
RNN_ORDER, RNN_SIGN = (0,), (1,)
# Peepholes: rnnlab rows p_i, p_f, p_o  ->  ONNX P = [P_i, P_o, P_f].
PEEP_ORDER, PEEP_SIGN = (0, 2, 1), (1, 1, 1)
PEEP_COUPLED_ORDER, PEEP_COUPLED_SIGN = (1, 2, 0), (-1, 1, -1)


def gate_orders(op: str, coupled: bool = False) -> tuple:
    """``(order, sign, peephole order, peephole sign)`` of an ``op`` node's row blocks
    (``"LSTM"``, coupled or not, ``"GRU"`` or ``"RNN"``); no peepholes (None) but the LSTM's."""
    if op == "LSTM" and coupled:
        return LSTM_COUPLED_ORDER, LSTM_COUPLED_SIGN, PEEP_COUPLED_ORDER, PEEP_COUPLED_SIGN
    if op == "LSTM":
        return LSTM_ORDER, LSTM_SIGN, PEEP_ORDER, PEEP_SIGN
    if op == "GRU":
        return GRU_ORDER, GRU_SIGN, None, None
    return RNN_ORDER, RNN_SIGN, None, None


def to_onnx_blocks(a: np.ndarray, order, sign) -> np.ndarray:
    """Reorder the row blocks of ``a`` (first axis) from rnnlab's gate order to ONNX's."""
    blocks = np.split(a, len(order), axis=0)
    return np.concatenate([sign[j] * blocks[order[j]] for j in range(len(order))], axis=0)


def from_onnx_blocks(a: np.ndarray, order, sign) -> np.ndarray:
    """Inverse of :func:`to_onnx_blocks`."""
    blocks = np.split(a, len(order), axis=0)
    out = [None] * len(order)
    for j, src in enumerate(order):
        out[src] = sign[j] * blocks[j]
    return np.concatenate(out, axis=0)


class GraphBuilder:
    """Collects nodes and initializers; every name it hands out is unique."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.used: set[str] = set()
        self.reserved: set[str] = set()  # graph output names, each handed out once as is
        self._consts: dict = {}

    def reserve(self, names) -> None:
        self.used.update(names)
        self.reserved.update(names)

    def fresh(self, base: str) -> str:
        if base in self.reserved:
            self.reserved.remove(base)
            return base
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def initializer(self, array: np.ndarray, base: str) -> str:
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def const(self, values, dtype=np.int64) -> str:
        """A small constant (shapes, axes, indices), shared between uses."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = self.initializer(array, "const")
        return self._consts[key]

    def node(self, op: str, inputs, outputs=1, base: str | None = None, name: str | None = None,
             **attrs):
        """Add a node; ``outputs`` is a count or a list of names. Returns the output name(s)."""
        base = base or op.lower()
        if isinstance(outputs, int):
            outputs = [self.fresh(f"{base}_out{j}" if outputs > 1 else base)
                       for j in range(outputs)]
        else:
            outputs = [self.fresh(o) if o else "" for o in outputs]
        node_name = self.fresh(name or f"{base}_node")
        self.nodes.append(helper.make_node(op, list(inputs), outputs, name=node_name,
                                           **attrs))
        return outputs[0] if len(outputs) == 1 else outputs


def transposed_input(g: GraphBuilder, transpose: bool) -> str:
    """The graph's ``input`` as the nodes read it: swapped (B, T, F) <-> (T, B, F) when the
    nodes' layout differs from the layer's ``batch_first``."""
    return g.node("Transpose", ["input"], base="input_T", perm=[1, 0, 2]) if transpose \
        else "input"


def graph_outputs(g: GraphBuilder, y: str, finals: dict[str, list[str]], out_names: list[str],
                  transpose: bool) -> None:
    """Write the graph's outputs: ``output`` from the last layer's ``y`` (swapped back as
    :func:`transposed_input` swapped the input) and each final state from its parts, one per
    layer or per layer and direction, stacked in order."""
    if transpose:
        g.node("Transpose", [y], [out_names[0]], perm=[1, 0, 2])
    else:
        g.node("Identity", [y], [out_names[0]])
    for out, parts in zip(out_names[1:], finals.values()):
        if len(parts) == 1:
            g.node("Identity", parts, [out])
        else:
            g.node("Concat", parts, [out], axis=0)
