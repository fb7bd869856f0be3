"""Build an rnnlab layer from the ``LSTM`` / ``GRU`` / ``RNN`` node(s) of an ONNX model.

The node's weights must be constants (initializers or ``Constant`` nodes). ONNX's gate
orders (LSTM ``i, o, f, c``, GRU ``z, r, h``) are mapped back to torch's (``i, f, g, o`` /
``r, z, n``), ``B = [Wb, Rb]`` is split into ``bias_ih`` / ``bias_hh``, ``P = [P_i, P_o, P_f]``
becomes ``peephole_l{k}`` (rows ``p_i, p_f, p_o``), ``input_forget=1`` becomes
``coupled=True``, ``linear_before_reset`` becomes ``reset_after``, ``layout=1`` becomes
``batch_first=True``, ``direction="bidirectional"`` becomes ``bidirectional=True``,
``direction="reverse"`` wraps the layer in :class:`~rnnlab.onnx.reverse.Reverse`, an RNN's
``Relu`` activation becomes ``nonlinearity="relu"``, and LSTM/GRU ``activations`` (with
``activation_alpha`` / ``activation_beta``) become ``gate_activation``, ``activation`` (and
``output_activation``), see :mod:`rnnlab.activations`. What rnnlab cannot compute raises a
ValueError that names the attribute.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from rnnlab import activations
from rnnlab.layers.gru import GRU
from rnnlab.layers.lstm import LSTM
from rnnlab.layers.rnn import RNN
from rnnlab.onnx._graph import from_onnx_blocks, gate_orders
from rnnlab.onnx.reverse import Reverse

RECURRENT_OPS = ("LSTM", "GRU", "RNN")
_COMMON_ATTRS = {"hidden_size", "direction", "layout", "clip", "activations",
                 "activation_alpha", "activation_beta"}
KNOWN_ATTRS = {"LSTM": _COMMON_ATTRS | {"input_forget"},
               "GRU": _COMMON_ATTRS | {"linear_before_reset"},
               "RNN": set(_COMMON_ATTRS)}
PER_DIRECTION = {"LSTM": 3, "GRU": 2, "RNN": 1}  # activations per direction: f, g(, h)
DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"),
                       "RNN": ("Tanh",)}
# activations whose omitted alpha/beta onnxruntime reads as 0, unlike the ONNX operators'
# defaults (ThresholdedRelu α = 1, ScaledTanh α = β = 1, Affine α = 1)
AMBIGUOUS_DEFAULTS = ("thresholded_relu", "scaled_tanh", "affine")
# ONNX activation name (lower case) -> rnnlab's
ONNX_ACTIVATIONS = {onnx_name.lower(): name
                    for name, (onnx_name, _, _) in activations.SPECS.items()}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DIRECTIONS = ("forward", "reverse", "bidirectional")
RUNTIME = "runtime input"  # marks an initial state that is computed or fed at run time


def _load_model(model_or_path) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if isinstance(model_or_path, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model_or_path))
    if isinstance(model_or_path, (str, os.PathLike)):
        return onnx.load(os.fspath(model_or_path))
    raise TypeError("model_or_path: expected an onnx.ModelProto, bytes or a path, got "
                    f"{type(model_or_path).__name__}")


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers, Constant nodes, and what simple shape ops make of them (``Identity``,
    ``Slice``, ``Transpose``, ``Gather`` with constant arguments; ``Expand`` of a constant
    gives the constant itself, to be broadcast over the batch): enough to read a learned
    initial state as rnnlab exports it."""
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # nodes are topologically sorted
        if node.domain not in ("", "ai.onnx"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        args = [values.get(n) if n else None for n in node.input]
        if node.op_type == "Constant" and isinstance(attrs.get("value"), onnx.TensorProto):
            values[node.output[0]] = numpy_helper.to_array(attrs["value"])
        elif not node.input or args[0] is None:
            continue
        elif node.op_type in ("Identity", "Expand"):
            values[node.output[0]] = args[0]
        elif node.op_type == "Transpose":
            values[node.output[0]] = np.transpose(args[0], attrs.get("perm"))
        elif node.op_type == "Gather" and len(args) == 2 and args[1] is not None:
            values[node.output[0]] = np.take(args[0], args[1], axis=attrs.get("axis", 0))
        elif node.op_type == "Slice" and len(args) >= 3 and all(
                a is not None for a in args[1:]):
            starts, ends = args[1], args[2]
            axes = args[3] if len(args) > 3 else range(len(starts))
            steps = args[4] if len(args) > 4 else [1] * len(starts)
            index = [slice(None)] * args[0].ndim
            for start, end, axis, step in zip(starts, ends, axes, steps):
                index[int(axis)] = slice(int(start), int(end), int(step))
            values[node.output[0]] = args[0][tuple(index)]
    return values


def _node_spec(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> dict:
    """The attributes and weights of one node, checked against what rnnlab computes."""
    op, where = node.op_type, f"node {node.name!r} ({node.op_type})"
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    unknown = sorted(set(attrs) - KNOWN_ATTRS[op])
    if unknown:
        raise ValueError(f"{unknown[0]}: {where} has attribute {unknown[0]!r}, which rnnlab "
                         "does not support")
    if "clip" in attrs:
        raise ValueError(f"clip: {where} clips every gate pre-activation to "
                         f"[-{attrs['clip']}, {attrs['clip']}]; rnnlab has no such option "
                         "(LSTM's cell_clip clamps the cell state c_t instead, a different "
                         "function)")
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: {where} runs {direction!r}; expected one of {DIRECTIONS}")
    D = 2 if direction == "bidirectional" else 1
    layout = attrs.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"layout: {where} has layout={layout}, expected 0 or 1")

    acts = _activations(op, D, attrs, where)
    nonlinearity = "tanh"
    if op == "RNN":
        if acts[0].name not in ("tanh", "relu") or acts[0].alpha is not None:
            raise ValueError(f"activations: {where} uses {acts[0].onnx_name}; rnnlab's RNN "
                             "computes Tanh or Relu")
        nonlinearity = acts[0].name
    if attrs.get("input_forget", 0) and acts[0].name != "sigmoid" and not (
            acts[0].name == "hard_sigmoid" and acts[0].beta == 0.5):
        raise ValueError(f"input_forget: {where} couples the gates with {acts[0].onnx_name}; "
                         "rnnlab's coupled gate (i = 1 - f) maps onto onnxruntime's (f = 1 - i) "
                         "only for Sigmoid (or HardSigmoid with beta 0.5)")

    inputs = list(node.input) + [""] * (8 - len(node.input))

    def weight(index: int, label: str, required: bool):
        name = inputs[index]
        if not name:
            if required:
                raise ValueError(f"{label}: {where} has no {label} input")
            return None
        if name not in consts:
            if label in ("initial_h", "initial_c"):
                return RUNTIME  # a graph input: the caller passes it as hx
            raise ValueError(f"{label}: {where} reads {label} from {name!r}, which is not an "
                             "initializer or Constant; rnnlab needs the weights in the model")
        return consts[name]

    W, R = weight(1, "W", True), weight(2, "R", True)
    B = weight(3, "B", False)
    h0 = weight(5, "initial_h", False)
    c0 = weight(6, "initial_c", False) if op == "LSTM" else None
    P = weight(7, "P", False) if op == "LSTM" else None
    G = GATES[op]
    if W.ndim != 3 or R.ndim != 3 or W.shape[0] != D or R.shape[0] != D \
            or W.shape[1] % G or R.shape[1] != W.shape[1] or R.shape[2] * G != R.shape[1]:
        raise ValueError(f"W, R: {where} has shapes {W.shape}, {R.shape}; expected "
                         f"({D}, {G}·H, I) and ({D}, {G}·H, H)")
    H = R.shape[2]
    if attrs.get("hidden_size", H) != H:
        raise ValueError(f"hidden_size: {where} says {attrs['hidden_size']} but R has H={H}")
    if B is not None and B.shape != (D, 2 * G * H):
        raise ValueError(f"B: {where} has shape {B.shape}, expected {(D, 2 * G * H)}")
    if P is not None and P.shape != (D, 3 * H):
        raise ValueError(f"P: {where} has shape {P.shape}, expected {(D, 3 * H)}")
    if W.dtype not in (np.float32, np.float64):
        raise ValueError(f"W: {where} has dtype {W.dtype}; rnnlab loads float32 and float64")
    return {"op": op, "name": node.name, "D": D, "direction": direction, "H": H,
            "I": W.shape[2], "layout": layout,
            "coupled": bool(attrs.get("input_forget", 0)),
            "reset_after": bool(attrs.get("linear_before_reset", 0)),
            "nonlinearity": nonlinearity, "acts": acts, "W": W, "R": R, "B": B, "P": P, "h0": h0, "c0": c0}


def _activations(op: str, D: int, attrs: dict, where: str) -> tuple:
    """The node's activations of one direction as rnnlab Activations, with ``activation_alpha``
    / ``activation_beta`` consumed in order by the activations that take them (defaults when
    the lists run out), as onnxruntime reads them; both directions must agree."""
    n = PER_DIRECTION[op]
    names = [a.decode() if isinstance(a, bytes) else str(a)
             for a in attrs.get("activations", [])] or list(DEFAULT_ACTIVATIONS[op]) * D
    if len(names) != n * D:
        raise ValueError(f"activations: {where} lists {len(names)} activations, expected "
                         f"{n} per direction ({n * D})")
    alphas = list(attrs.get("activation_alpha", []))
    betas = list(attrs.get("activation_beta", []))
    out = []
    for name in names:
        rn = ONNX_ACTIVATIONS.get(name.lower())
        if rn is None:
            raise ValueError(f"activations: {where} uses {name!r}, which rnnlab does not "
                             f"compute (it has {[s[0] for s in activations.SPECS.values()]})")
        _, alpha, beta = activations.SPECS[rn]
        for label, default, values in (("activation_alpha", alpha, alphas),
                                       ("activation_beta", beta, betas)):
            if default is not None and not values and rn in AMBIGUOUS_DEFAULTS:
                raise ValueError(f"{label}: {where} leaves the parameters of {name} to their "
                                 "defaults, on which runtimes disagree (the ONNX operator's "
                                 "vs onnxruntime's 0); give them explicitly")
        if alpha is not None and alphas:  # ONNX stores float32: take its shortest decimal
            alpha = float(str(np.float32(alphas.pop(0))))
        if beta is not None and betas:
            beta = float(str(np.float32(betas.pop(0))))
        try:
            out.append(activations.get(
                (rn, *(v for v in (alpha, beta) if v is not None)), "activations"))
        except ValueError as exc:
            raise ValueError(f"activations: {where}: {exc}") from None
    if D == 2 and out[:n] != out[n:]:
        raise ValueError(f"activations: {where} uses different activations in its two "
                         f"directions ({names}); an rnnlab layer has one set")
    return tuple(out[:n])


def _find_nodes(graph: onnx.GraphProto, node_name) -> list[onnx.NodeProto]:
    recurrent = [n for n in graph.node if n.op_type in RECURRENT_OPS
                 and n.domain in ("", "ai.onnx")]
    if not recurrent:
        ops = sorted({n.op_type for n in graph.node})
        raise ValueError(f"model_or_path: no LSTM, GRU or RNN node in the graph (it has {ops}); "
                         "a model rnnlab exported as a Scan cannot be loaded back")
    if node_name is None:
        if len(recurrent) > 1:
            raise ValueError(f"node_name: the model has {len(recurrent)} recurrent nodes "
                             f"{[n.name for n in recurrent]}; pass one name, or a list of "
                             "names for a stacked layer")
        return recurrent
    names = [node_name] if isinstance(node_name, str) else list(node_name)
    by_name = {n.name: n for n in recurrent}
    missing = [n for n in names if n not in by_name]
    if missing or not names:
        raise ValueError(f"node_name: no recurrent node named {missing or names}; the model has "
                         f"{list(by_name)}")
    return [by_name[n] for n in names]


def load_layer(model_or_path, node_name: str | list[str] | None = None, *,
               batch_first: bool | None = None, backend: str = "auto", device=None):
    """Build the rnnlab layer that computes an ONNX ``LSTM`` / ``GRU`` / ``RNN`` node.

    Args:
        model_or_path: an ``onnx.ModelProto``, its serialized bytes, or a path to a .onnx file.
        node_name: which recurrent node (needed when the graph has several); a list of names
            builds one stacked layer (``num_layers = len(list)``), layer k from the k-th node
            (the nodes must agree on type, direction, hidden size and options, and node k+1
            must read D·H features).
        batch_first: the layer's ``batch_first`` (None: the node's ``layout``; a model that
            transposes around layout-0 nodes, as rnnlab's export does, was batch-first too).
        backend, device: the layer's.

    Returns an :class:`rnnlab.LSTM`, :class:`rnnlab.GRU` or :class:`rnnlab.RNN` with the
    node's weights; for ``direction="reverse"`` nodes, that layer wrapped in
    :class:`rnnlab.onnx.Reverse` (called the same way, it runs each sequence backwards within
    its own length). A constant ``initial_h`` / ``initial_c`` that is zero is rnnlab's default;
    one that is the same for every batch row becomes ``initial_state="learned"``; as graph
    inputs they stay runtime inputs (pass ``hx``).
    Raises ValueError naming the attribute rnnlab does not support (``clip``, an activation
    rnnlab lacks or different ones per direction, an RNN activation other than Tanh/Relu,
    ``input_forget`` with a non-sigmoid gate, nodes of a stack that differ in direction).
    """
    model = _load_model(model_or_path)
    consts = _constants(model.graph)
    specs = [_node_spec(n, consts) for n in _find_nodes(model.graph, node_name)]
    first = specs[0]
    for k, spec in enumerate(specs[1:], start=1):
        for key in ("op", "direction", "H", "layout", "coupled", "reset_after", "nonlinearity",
                    "acts"):
            if spec[key] != first[key]:
                raise ValueError(f"node_name: node {spec['name']!r} differs from "
                                 f"{first['name']!r} in {key} ({spec[key]} vs {first[key]}); "
                                 "a stacked layer needs the same options in every node")
        if spec["I"] != first["D"] * first["H"]:
            raise ValueError(f"node_name: node {spec['name']!r} (layer {k}) reads {spec['I']} "
                             f"features, expected {first['D'] * first['H']}")
    op, D, H = first["op"], first["D"], first["H"]
    dtype = torch.float64 if any(s["W"].dtype == np.float64 for s in specs) else torch.float32
    has_bias = any(s["B"] is not None for s in specs)
    learned = _learned_states(specs)
    if batch_first is None:
        batch_first = first["layout"] == 1
    kw = {"num_layers": len(specs), "bias": has_bias, "batch_first": bool(batch_first),
          "bidirectional": D == 2, "backend": backend,
          "initial_state": "learned" if learned else "zeros", "device": device, "dtype": dtype}
    acts = first["acts"]
    if op == "LSTM":
        layer = LSTM(first["I"], H, peephole=any(s["P"] is not None for s in specs),
                     coupled=first["coupled"], gate_activation=acts[0], activation=acts[1],
                     output_activation=acts[2], **kw)
    elif op == "GRU":
        layer = GRU(first["I"], H, reset_after=first["reset_after"], gate_activation=acts[0],
                    activation=acts[1], **kw)
    else:
        layer = RNN(first["I"], H, nonlinearity=first["nonlinearity"], **kw)
    order, sign, peep_order, peep_sign = gate_orders(op, first["coupled"])
    G = GATES[op] * H
    with torch.no_grad():
        for k, spec in enumerate(specs):
            for d in range(D):
                values = {"weight_ih": from_onnx_blocks(spec["W"][d], order, sign),
                          "weight_hh": from_onnx_blocks(spec["R"][d], order, sign)}
                if has_bias:
                    b = spec["B"][d] if spec["B"] is not None else np.zeros(2 * G, spec["W"].dtype)
                    values["bias_ih"] = from_onnx_blocks(b[:G], order, sign)
                    values["bias_hh"] = from_onnx_blocks(b[G:], order, sign)
                if layer.cell_params(k, d).get("peephole") is not None:
                    p = spec["P"][d].reshape(3, H) if spec["P"] is not None \
                        else np.zeros((3, H), spec["W"].dtype)
                    values["peephole"] = from_onnx_blocks(p, peep_order, peep_sign)
                for name, param in layer.cell_params(k, d).items():
                    param.copy_(torch.from_numpy(np.ascontiguousarray(values[name])))
        if learned:
            for name, value in learned.items():
                getattr(layer, "initial_" + name).copy_(torch.from_numpy(value))
    return Reverse(layer) if first["direction"] == "reverse" else layer


def _learned_states(specs) -> dict[str, np.ndarray] | None:
    """Constant initial states (batch 1) of the nodes as ``initial_h`` / ``initial_c`` rows
    (L·D, H), or None when the nodes have none (absent or runtime inputs)."""
    keys = ("h0", "c0") if specs[0]["op"] == "LSTM" else ("h0",)
    constant = [isinstance(s[k], np.ndarray) for s in specs for k in keys]
    if not any(constant):
        return None
    if any(s[k] is RUNTIME for s in specs for k in keys):
        raise ValueError("initial_h: the nodes mix constant and runtime initial states; "
                         "rnnlab's learned initial state needs constants (or none) everywhere")
    if all(not isinstance(s[k], np.ndarray) or not s[k].any() for s in specs for k in keys):
        return None  # constant zeros: rnnlab's default initial state
    out = {}
    for key in keys:
        label = "initial_h" if key == "h0" else "initial_c"
        rows = []
        for s in specs:
            value = s[key]
            if value is None:  # absent: zeros
                rows.append(np.zeros((s["D"], s["H"]), s["W"].dtype))
                continue
            if s["layout"] == 1:
                value = np.swapaxes(value, 0, 1)
            if value.ndim != 3 or value.shape[0] != s["D"] or value.shape[2] != s["H"] \
                    or not (value == value[:, :1]).all():
                raise ValueError(f"{label}: node {s['name']!r} has a constant {label} of shape "
                                 f"{value.shape} that differs between batch rows; rnnlab's "
                                 "learned initial state is one state shared over the batch")
            rows.append(value[:, 0, :])
        out[key[0]] = np.concatenate(rows, axis=0)
    return out
