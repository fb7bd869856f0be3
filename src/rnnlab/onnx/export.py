"""Export an rnnlab layer to ONNX.

Two forms, chosen per configuration:

* **operator**: each layer becomes one standard ONNX ``LSTM`` / ``GRU`` / ``RNN`` node (both
  directions in the node), with the glue between stacked layers (``Squeeze`` or
  ``Transpose`` + ``Reshape``) and the weights as initializers in ONNX's gate order; peepholes
  (``P``), coupled gates (``input_forget``), ``linear_before_reset`` and the activations
  (``activations``, ``activation_alpha``/``_beta``, written out in full) map onto the
  operator's attributes. Any ONNX runtime runs it with its fused kernel.
* **scan**: configurations ONNX has no operator for (SRU, MinGRU/MinLSTM, ``layer_norm``,
  ``proj_size``, ``cell_clip`` — ONNX's ``clip`` bounds the gate pre-activations, not
  ``c_t`` —, ``zoneout_eval="expectation"``, coupled gates with a gate activation other than
  sigmoid) become one ONNX ``Scan`` per layer and direction whose body is one step of
  the cell: the cell's step function from :mod:`rnnlab.cells`, traced by
  ``torch.onnx.export`` (the layers' hand-written autograd Functions cannot be traced). The
  sequence length stays dynamic. :func:`export` says so with a
  :class:`ScanExportWarning` and ``ExportInfo.mode == "scan"``.

The graph's inputs are ``input`` ((T, B, I), or (B, T, I) with ``batch_first``), optionally
``sequence_lens`` (B,) int32 (pass ``lengths=`` to :func:`export`) and the initial states
(``h0``, ``c0`` for LSTM, ``c0`` for SRU; pass ``hx=``), shaped as the layer takes them. Its
outputs are the layer's: ``output`` and the final states ``h_n`` (``c_n``), with the
sequence and batch dimensions dynamic. The layer is exported as in eval mode: train-only
regularisers (dropout between layers, recurrent dropout, zoneout, weight dropout) are off.

onnxruntime notes: its CPU LSTM/GRU/RNN kernels take float32 only and refuse ``layout=1``
(both valid ONNX); its ``input_forget`` computes ``f = 1 - i``, so rnnlab's coupled gate
(``i = 1 - f``) is written with the i and f rows swapped and negated.
"""

from __future__ import annotations

import inspect
import io
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper
from torch import nn

from rnnlab.cells.gru import gru_step, layer_norm, layernorm_gru_step
from rnnlab.cells.layernorm_lstm import LN_EPS
from rnnlab.cells.lstm import lstm_step
from rnnlab.cells.rnn import rnn_step
from rnnlab.cells.sru import sru_step
from rnnlab.layers.base import RecurrentBase
from rnnlab.layers.gru import GRU
from rnnlab.layers.lstm import LSTM
from rnnlab.layers.min_rnn import _MinRNN
from rnnlab.layers.rnn import RNN
from rnnlab.layers.sru import SRU
from rnnlab.onnx._graph import (
    DEFAULT_OPSET,
    DTYPES,
    GRU_ORDER,
    GRU_SIGN,
    LSTM_COUPLED_ORDER,
    LSTM_COUPLED_SIGN,
    LSTM_ORDER,
    LSTM_SIGN,
    MIN_OPSET,
    PEEP_COUPLED_ORDER,
    PEEP_COUPLED_SIGN,
    PEEP_ORDER,
    PEEP_SIGN,
    RNN_ORDER,
    RNN_SIGN,
    GraphBuilder,
    to_onnx_blocks,
)

MODES = ("auto", "operator", "scan")


class ScanExportWarning(UserWarning):
    """The layer was exported as a scanned graph of its cell, not as an ONNX RNN operator."""


@dataclass
class ExportInfo:
    """What :func:`export` wrote.

    model: the ONNX model. path: where it was saved (None if not saved).
    mode: ``"operator"`` (standard LSTM/GRU/RNN nodes) or ``"scan"`` (a Scan over the cell).
    reason: why the scan form was needed (None for ``"operator"``).
    op_type: ``"LSTM"``, ``"GRU"``, ``"RNN"`` or ``"Scan"``. node_names: those nodes, by layer
    (and direction for Scan). input_names, output_names: the graph's. opset: its ONNX opset.
    """

    model: onnx.ModelProto
    path: str | None
    mode: str
    reason: str | None
    op_type: str
    node_names: list[str]
    input_names: list[str]
    output_names: list[str]
    opset: int
    notes: list[str] = field(default_factory=list)


def _zoneout_expectation(module) -> tuple[float, float] | None:
    """``(p_h, p_c)`` when the layer's eval mode mixes in the previous state (zoneout with
    ``zoneout_eval="expectation"``), else None."""
    reg = getattr(module, "regularisers", None)
    if reg is None or not reg.changes(training=False):
        return None
    return reg.zoneout_h, reg.zoneout_c


def _symmetric_gate(act) -> bool:
    """Whether ``1 - φ(a) = φ(-a)``, which ONNX's ``input_forget`` mapping needs."""
    return act.name == "sigmoid" or (act.name == "hard_sigmoid" and act.beta == 0.5)


def operator_unsupported(module: RecurrentBase) -> str | None:
    """Why ``module`` has no standard ONNX operator (so exports as a Scan), or None."""
    if isinstance(module, SRU):
        return "ONNX has no SRU operator"
    if isinstance(module, _MinRNN):
        return f"ONNX has no {type(module).__name__} operator"
    extras = []
    if _zoneout_expectation(module):
        extras.append("zoneout_eval='expectation'")
    if isinstance(module, LSTM):
        if module.layer_norm:
            extras.append("layer_norm")
        if module.proj_size:
            extras.append("proj_size")
        if module.options.cell_clip is not None:
            extras.append("cell_clip (ONNX's clip bounds the gate pre-activations, rnnlab's "
                          "clamps c_t)")
        if module.options.coupled and not _symmetric_gate(module.options.gate_act):
            extras.append("coupled gates with this gate_activation (onnxruntime's input_forget "
                          "sets f = 1 - i; rnnlab's i = 1 - f maps onto it only for sigmoid)")
    elif isinstance(module, GRU):
        if module.layer_norm:
            extras.append("layer_norm")
    elif not isinstance(module, RNN):
        return f"{type(module).__name__} is not an rnnlab RNN, LSTM or GRU"
    if extras:
        return f"the ONNX {type(module).__name__} operator has no {', '.join(extras)}"
    return None


def export(module: RecurrentBase, example_input: torch.Tensor, path: str | os.PathLike | None = None,
           *, hx=None, lengths=None, opset: int = DEFAULT_OPSET, mode: str = "auto",
           layout: int = 0, verify: bool = False, atol: float = 1e-5) -> ExportInfo:
    """Write ``module`` as an ONNX model; returns an :class:`ExportInfo`.

    Args:
        module: an :class:`rnnlab.RNN`, :class:`rnnlab.LSTM`, :class:`rnnlab.GRU`,
            :class:`rnnlab.SRU`, :class:`rnnlab.MinGRU` or :class:`rnnlab.MinLSTM`. Exported
            as in eval mode (no dropout).
        example_input: a batched input as the layer takes it, (T, B, I) or (B, T, I) with
            ``batch_first``; it fixes the dtype, and ``verify`` runs on it.
        path: file to write (None: only return the model).
        hx: give an example initial state (as for the layer) to make the initial states graph
            inputs ``h0`` (``c0``); without it they are zeros, or the learned initial state
            with ``initial_state="learned"``.
        lengths: give example lengths (B,) to add the ``sequence_lens`` input (int32) for
            padded batches: padded steps output 0 and leave the state alone, as in rnnlab.
        opset: ONNX opset (>= 14).
        mode: ``"auto"`` (operator where one exists, else scan), ``"operator"`` (raise
            ValueError if there is none) or ``"scan"`` (always the scanned cell).
        layout: 0 (time-major nodes, with ``Transpose`` around them for ``batch_first``) or
            1 (the nodes' ``layout=1``, batch-major, for ``batch_first`` layers: standard ONNX,
            but onnxruntime's CPU kernels refuse it). Operator form only.
        verify: run the model in onnxruntime on the example and raise AssertionError unless
            it equals the layer's result within ``atol + 1e-5·|value|``.
    """
    if not isinstance(module, RecurrentBase):
        raise TypeError(f"module: expected an rnnlab recurrent layer, got {type(module).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if layout not in (0, 1):
        raise ValueError(f"layout: expected 0 or 1, got {layout!r}")
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"opset: expected an int >= {MIN_OPSET}, got {opset!r}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() != 3:
        raise ValueError("example_input: expected a batched 3-d tensor (T, B, I) or (B, T, I) "
                         "with batch_first; pad a PackedSequence and pass lengths=")
    if example_input.shape[-1] != module.input_size:
        raise ValueError(f"example_input: expected {module.input_size} features, got "
                         f"{example_input.shape[-1]}")
    ref = next(module.parameters())
    np_dtype = np.dtype(torch.empty(0, dtype=ref.dtype).numpy().dtype)
    if np_dtype not in DTYPES:
        raise ValueError(f"module: ONNX export supports float32 and float64 layers, got {ref.dtype}")
    if module.initial_state == "random" and hx is None:
        warnings.warn("initial_state='random' cannot be exported: the ONNX model starts from "
                      "zeros (pass hx= to make the initial state an input)", stacklevel=2)
    if module.training and module.dropout:
        warnings.warn("exporting in eval mode: ONNX has no dropout between layers", stacklevel=2)

    reason = operator_unsupported(module)
    if mode == "operator" and reason:
        raise ValueError(f"mode: 'operator' cannot export this layer: {reason}")
    scan = mode == "scan" or reason is not None
    if scan and mode == "scan" and reason is None:
        reason = "mode='scan' was asked for"
    if layout == 1 and (scan or not module.batch_first):
        raise ValueError("layout: 1 is for batch_first layers exported as operators")

    elem = DTYPES[np_dtype]
    B = example_input.shape[0 if module.batch_first else 1]
    g = GraphBuilder()
    state_names = list(module.state_names)  # ("h0",), ("h0", "c0") or ("c0",)
    rows = module.num_layers * module.num_directions
    seq_dims = ["batch", "seq"] if module.batch_first else ["seq", "batch"]
    inputs = [helper.make_tensor_value_info("input", elem, [*seq_dims, module.input_size])]
    g.used.update(["input", "sequence_lens", *state_names])
    seq_lens = None
    if lengths is not None:
        seq_lens = "sequence_lens"
        inputs.append(helper.make_tensor_value_info(seq_lens, TensorProto.INT32, ["batch"]))
    states: dict[str, str | None] = dict.fromkeys(state_names)
    if hx is not None:
        for name, size in zip(state_names, module.state_sizes()):
            states[name] = name
            inputs.append(helper.make_tensor_value_info(name, elem, [rows, "batch", size]))
    elif module.initial_state == "learned":
        for name in state_names:
            learned = getattr(module, "initial_" + name[0]).detach().cpu().numpy()
            states[name] = _expand_learned(g, learned[:, None, :], "input",
                                           0 if module.batch_first else 1)

    out_names = ["output"] + [name[0] + "_n" for name in state_names]
    g.reserve(out_names)
    if scan:
        node_names = _scan_graph(g, module, states, seq_lens, elem, opset, B, out_names)
        op_type = "Scan"
    else:
        node_names = _operator_graph(g, module, states, seq_lens, layout, out_names)
        op_type = _op_type(module)
    out_dims = [*seq_dims, module.num_directions * module.output_size]
    outputs = [helper.make_tensor_value_info("output", elem, out_dims)]
    for name, size in zip(out_names[1:], module.state_sizes()):
        outputs.append(helper.make_tensor_value_info(name, elem, [rows, "batch", size]))

    graph = helper.make_graph(g.nodes, f"rnnlab_{type(module).__name__}", inputs, outputs,
                              g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="rnnlab")
    helper.set_model_props(model, {"rnnlab.layer": repr(module), "rnnlab.mode": op_type})
    onnx.checker.check_model(model)
    notes = []
    if not scan and elem == TensorProto.DOUBLE:
        notes.append("float64 operators: valid ONNX, but onnxruntime's LSTM/GRU/RNN kernels "
                     "are float32 only (the Scan form runs in float64)")
    if scan:
        notes.append(f"exported as Scan over the cell: {reason}")
        warnings.warn(f"{type(module).__name__}: no standard ONNX operator fits ({reason}); "
                      "exported as a Scan over one step of the cell", ScanExportWarning,
                      stacklevel=2)
    if path is not None:
        onnx.save(model, os.fspath(path))
    info = ExportInfo(model=model, path=None if path is None else os.fspath(path),
                      mode="scan" if scan else "operator", reason=reason if scan else None,
                      op_type=op_type, node_names=node_names,
                      input_names=[i.name for i in inputs], output_names=out_names,
                      opset=opset, notes=notes)
    if verify:
        _verify(module, model, example_input, hx, lengths, atol)
    return info


# ---- operator form ---------------------------------------------------------------------------
def _op_type(module) -> str:
    return "LSTM" if isinstance(module, LSTM) else "GRU" if isinstance(module, GRU) else "RNN"


def _orders(module):
    if isinstance(module, LSTM):
        if module.options.coupled:
            return LSTM_COUPLED_ORDER, LSTM_COUPLED_SIGN, PEEP_COUPLED_ORDER, PEEP_COUPLED_SIGN
        return LSTM_ORDER, LSTM_SIGN, PEEP_ORDER, PEEP_SIGN
    if isinstance(module, GRU):
        return GRU_ORDER, GRU_SIGN, None, None
    return RNN_ORDER, RNN_SIGN, None, None


def onnx_weights(module, layer: int) -> dict[str, np.ndarray]:
    """``W``, ``R`` and (when present) ``B``, ``P`` of one layer in ONNX's layout and order."""
    order, sign, peep_order, peep_sign = _orders(module)
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


def _operator_graph(g: GraphBuilder, module, states, seq_lens, layout, out_names) -> list[str]:
    op = _op_type(module)
    D, L, H = module.num_directions, module.num_layers, module.hidden_size
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward",
             "layout": layout}
    if isinstance(module, LSTM) and module.options.coupled:
        attrs["input_forget"] = 1
    if isinstance(module, GRU):
        attrs["linear_before_reset"] = int(module.reset_after)
    if isinstance(module, RNN) and module.nonlinearity == "relu":
        attrs["activations"] = ["Relu"] * D
    elif isinstance(module, (LSTM, GRU)) and not module.options.default_activations:
        acts = [module.options.gate_act, module.options.cand_act]
        if isinstance(module, LSTM):
            acts.append(module.options.out_act)
        acts = acts * D
        attrs["activations"] = [a.onnx_name for a in acts]
        # consumed in order by the activations that take them, as onnxruntime reads them
        alphas = [a.alpha for a in acts if a.alpha is not None]
        betas = [a.beta for a in acts if a.beta is not None]
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    # the nodes read (T, B, F) with layout 0 and (B, T, F) with layout 1
    if (layout == 1) != module.batch_first:
        x = g.node("Transpose", ["input"], base="input_T", perm=[1, 0, 2])
    else:
        x = "input"
    finals = {name: [] for name in states}
    node_names = []
    for k in range(L):
        w = onnx_weights(module, k)
        names = {key: g.initializer(value, f"{key}_l{k}") for key, value in w.items()}
        init = {}
        for name, full in states.items():
            if full is None:
                init[name] = ""
                continue
            part = full if L == 1 else g.node("Slice", [full, g.const([k * D]),
                                                         g.const([(k + 1) * D]), g.const([0])],
                                                base=f"{name}_l{k}")
            init[name] = g.node("Transpose", [part], perm=[1, 0, 2]) if layout == 1 else part
        node_inputs = [x, names["W"], names["R"], names.get("B", ""), seq_lens or "",
                       init.get("h0", "")]
        if op == "LSTM":
            node_inputs += [init.get("c0", ""), names.get("P", "")]
        while node_inputs[-1] == "":
            node_inputs.pop()
        outs = [f"Y_l{k}", f"Y_h_l{k}"] + ([f"Y_c_l{k}"] if op == "LSTM" else [])
        node_name = f"{op}_l{k}"
        outs = g.node(op, node_inputs, outs, name=node_name, **attrs)
        node_names.append(node_name)
        y = outs[0]
        for name, final in zip(states, outs[1:]):
            finals[name].append(g.node("Transpose", [final], perm=[1, 0, 2]) if layout == 1
                                else final)
        if layout == 1:  # (B, T, D, H) -> (B, T, D·H)
            x = g.node("Reshape", [y, g.const([0, 0, -1])], base=f"x_l{k + 1}")
        elif D == 1:  # (T, 1, B, H) -> (T, B, H)
            x = g.node("Squeeze", [y, g.const([1])], base=f"x_l{k + 1}")
        else:  # (T, 2, B, H) -> (T, B, 2·H)
            t = g.node("Transpose", [y], perm=[0, 2, 1, 3])
            x = g.node("Reshape", [t, g.const([0, 0, -1])], base=f"x_l{k + 1}")
    if (layout == 1) != module.batch_first:
        g.node("Transpose", [x], [out_names[0]], perm=[1, 0, 2])
    else:
        g.node("Identity", [x], [out_names[0]])
    for out, parts in zip(out_names[1:], finals.values()):
        if len(parts) == 1:
            g.node("Identity", parts, [out])
        else:
            g.node("Concat", parts, [out], axis=0)
    return node_names


def _expand_learned(g: GraphBuilder, learned: np.ndarray, x: str, batch_axis: int) -> str:
    """(rows, 1, S) learned initial state broadcast over the batch of ``x``."""
    batch = g.node("Gather", [g.node("Shape", [x]), g.const([batch_axis])], base="batch")
    shape = g.node("Concat", [g.const([1]), batch, g.const([1])], axis=0)
    return g.node("Expand", [g.initializer(learned, "initial_state"), shape],
                  base="initial_state_b")


# ---- scan form -------------------------------------------------------------------------------
def _step_function(module):
    """``step(params, states, x_t) -> (new_states, y_t)`` for one layer and direction, written
    with the cell step functions of :mod:`rnnlab.cells` (traceable)."""
    zone = _zoneout_expectation(module)
    if isinstance(module, _MinRNN):
        min_step = type(module).step_fn

        def step(p, states, x):
            h = min_step(x, states[0], p["weight_ih"], p.get("bias_ih"))
            return (h,), h
    elif isinstance(module, SRU):
        p_c = zone[1] if zone else 0.0

        def step(p, states, x):
            u = F.linear(x, p["weight_ih"])
            h, c, gates = sru_step(u, x, states[0], p["weight_c"], p.get("bias"))
            if p_c:  # the zoned cell, which the output then reads
                H = c.shape[-1]
                c = p_c * states[0] + (1 - p_c) * c
                highway = u[..., 3 * H:] if u.shape[-1] == 4 * H else x
                h = gates["r"] * c + (1 - gates["r"]) * highway
            return (c,), h
    elif isinstance(module, LSTM) and module.layer_norm:
        def step(p, states, x):
            h, c, _ = _layernorm_lstm_step(x, *states, p["weight_ih"], p["weight_hh"],
                                           p.get("bias_ih"), p.get("bias_hh"),
                                           p["ln_ih_weight"], p["ln_hh_weight"],
                                           p["ln_c_weight"], p["ln_c_bias"])
            return (h, c), h
    elif isinstance(module, LSTM):
        opts = module.options

        p_h, p_c = zone or (0.0, 0.0)

        def step(p, states, x):
            h, c, _ = lstm_step(F.linear(x, p["weight_ih"], p.get("bias_ih")), *states,
                                p["weight_hh"], p.get("bias_hh"), peephole=p.get("peephole"),
                                cell_clip=opts.cell_clip, coupled=opts.coupled,
                                weight_hr=p.get("weight_hr"), gate_act=opts.gate_act,
                                cand_act=opts.cand_act, out_act=opts.out_act)
            if p_h:  # zoneout's eval expectation; h̃ read the un-zoned cell
                h = p_h * states[0] + (1 - p_h) * h
            if p_c:
                c = p_c * states[1] + (1 - p_c) * c
            return (h, c), h
    elif isinstance(module, GRU) and module.layer_norm:
        def step(p, states, x):
            x_proj = layer_norm(F.linear(x, p["weight_ih"]), p["ln_ih_weight"])
            if "bias_ih" in p:
                x_proj = x_proj + p["bias_ih"]
            h, _ = layernorm_gru_step(x_proj, states[0], p["weight_hh"], p["ln_hh_weight"],
                                      p.get("bias_hh"))
            return (h,), h
    elif isinstance(module, GRU):
        opts = module.options
        p_h = zone[0] if zone else 0.0

        def step(p, states, x):
            h, _ = gru_step(F.linear(x, p["weight_ih"], p.get("bias_ih")), states[0],
                            p["weight_hh"], p.get("bias_hh"), reset_after=opts.reset_after,
                            gate_act=opts.gate_act, cand_act=opts.cand_act)
            if p_h:
                h = p_h * states[0] + (1 - p_h) * h
            return (h,), h
    elif isinstance(module, RNN):
        nonlinearity = module.nonlinearity
        p_h = zone[0] if zone else 0.0

        def step(p, states, x):
            h = rnn_step(F.linear(x, p["weight_ih"], p.get("bias_ih")), states[0],
                         p["weight_hh"], p.get("bias_hh"), nonlinearity=nonlinearity)
            if p_h:
                h = p_h * states[0] + (1 - p_h) * h
            return (h,), h
    else:
        raise TypeError(f"module: rnnlab.onnx cannot export {type(module).__name__}")
    return step


def _layernorm_lstm_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                         ln_hh_weight, ln_c_weight, ln_c_bias):
    """:func:`rnnlab.cells.layernorm_lstm.layernorm_lstm_step` with the cell norm's size read
    from its gain (a constant) instead of from ``c`` (a traced input: ``F.layer_norm`` needs
    a constant ``normalized_shape`` to export); same equations."""
    G, H = weight_ih.shape[0], ln_c_weight.shape[0]
    a = (F.layer_norm(F.linear(x, weight_ih), (G,), ln_ih_weight, None, LN_EPS)
         + F.layer_norm(F.linear(h, weight_hh), (G,), ln_hh_weight, None, LN_EPS))
    if bias_ih is not None:
        a = a + bias_ih + bias_hh
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c_new = f * c + i * g
    h_new = o * torch.tanh(F.layer_norm(c_new, (H,), ln_c_weight, ln_c_bias, LN_EPS))
    return h_new, c_new, {"i": i, "f": f, "g": g, "o": o}


class _StepBody(nn.Module):
    """One step of one layer and direction,
    ``(*states, x_t[, m_t], *params) -> (*states, y_t)``; with the mask ``m_t`` (B, 1) bool,
    padded rows keep their state and output 0. The weights are inputs, so the traced graph
    reads them by name (from the main graph, in the Scan) and one trace serves every layer
    and direction with the same shapes."""

    def __init__(self, module, names: list[str], masked: bool):
        super().__init__()
        self.step = _step_function(module)
        self.names = names
        self.n_states = len(module.state_names)
        self.masked = masked

    def forward(self, *args):
        n = self.n_states
        states, x = args[:n], args[n]
        params = dict(zip(self.names, args[n + 1 + self.masked:]))
        new, y = self.step(params, states, x)
        if self.masked:
            m = args[n + 1]
            new = tuple(torch.where(m, a, b) for a, b in zip(new, states))
            y = torch.where(m, y, torch.zeros_like(y))
        return (*new, y)


def _torch_onnx_export(body, args, f, **kw):
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" in params:
        kw["dynamo"] = False  # the TorchScript tracer: a plain graph for one step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(body, args, f, **kw)


def _trace_step(module, params: dict[str, torch.Tensor], masked: bool, batch: int,
                opset: int) -> onnx.GraphProto:
    """One step of the cell traced by ``torch.onnx.export``: inputs ``{state}_in``, ``x_t``,
    (``m_t``), then the parameters by their short names; outputs ``{state}_out``, ``y_t``."""
    names = list(params)
    dtype = next(iter(params.values())).dtype
    features = params["weight_ih"].shape[1]
    args = [torch.zeros(batch, size, dtype=dtype) for size in module.state_sizes()]
    args.append(torch.zeros(batch, features, dtype=dtype))
    in_names = [f"{name}_in" for name in module.state_names] + ["x_t"]
    if masked:
        args.append(torch.ones(batch, 1, dtype=torch.bool))
        in_names.append("m_t")
    n_data = len(in_names)
    args += [p.detach().to("cpu") for p in params.values()]
    in_names += names
    out_names = [f"{name}_out" for name in module.state_names] + ["y_t"]
    buf = io.BytesIO()
    _torch_onnx_export(_StepBody(module, names, masked), tuple(args), buf,
                       input_names=in_names, output_names=out_names,
                       dynamic_axes={n: {0: "batch"} for n in in_names[:n_data] + out_names},
                       opset_version=opset, do_constant_folding=False)
    graph = onnx.load_from_string(buf.getvalue()).graph
    got_in = [i.name for i in graph.input]
    if got_in[:n_data] != in_names[:n_data] or not set(got_in[n_data:]) <= set(names) \
            or [o.name for o in graph.output] != out_names or len(graph.initializer):
        raise RuntimeError("torch.onnx.export changed the step's inputs or outputs: "
                           f"{got_in} -> {[o.name for o in graph.output]}")
    del graph.input[n_data:]  # the weights: read from the enclosing graph
    return graph


def _body_graph(traced: onnx.GraphProto, prefix: str, outer: dict[str, str]) -> onnx.GraphProto:
    """A copy of ``traced`` with every name prefixed, and the weights' names replaced by the
    names of the main graph's initializers (``outer``: short name -> initializer)."""
    graph = onnx.GraphProto()
    graph.CopyFrom(traced)

    def ren(name: str) -> str:
        return outer.get(name) or (prefix + name if name else name)

    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute):
            raise RuntimeError(f"unexpected subgraph in the traced step ({node.op_type})")
        node.name = prefix + node.name
        node.input[:] = [ren(n) for n in node.input]
        node.output[:] = [ren(n) for n in node.output]
    for seq in (graph.input, graph.output, graph.value_info):
        for v in seq:
            v.name = ren(v.name)
    graph.name = prefix + "step"
    return graph


def _scan_graph(g: GraphBuilder, module, states, seq_lens, elem, opset, batch,
                out_names) -> list[str]:
    D, L = module.num_directions, module.num_layers
    x = g.node("Transpose", ["input"], base="input_T", perm=[1, 0, 2]) if module.batch_first \
        else "input"
    batch_dim = g.node("Gather", [g.node("Shape", [x]), g.const([1])], base="batch")
    zeros_shape = g.node("Concat", [batch_dim, g.const([1])], axis=0)
    masked = seq_lens is not None
    if masked:  # mask (T, B, 1) = t < length_b
        lens = g.node("Cast", [seq_lens], base="lens64", to=TensorProto.INT64)
        T = g.node("Gather", [g.node("Shape", [x]), g.const(0)], base="T")
        steps = g.node("Range", [g.const(0), T, g.const(1)], base="steps")
        less = g.node("Less", [g.node("Unsqueeze", [steps, g.const([1])]),
                               g.node("Unsqueeze", [lens, g.const([0])])])
        mask = g.node("Unsqueeze", [less, g.const([2])], base="mask")
    finals = {name: [] for name in states}
    node_names = []
    traced: dict = {}  # one trace per (input features, masked)
    np_dtype = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}[elem]
    for k in range(L):
        outputs = []
        for d in range(D):
            index = k * D + d
            init = []
            for (name, full), size in zip(states.items(), module.state_sizes()):
                if full is None:
                    zero = g.const(np.zeros((1, size)), dtype=np_dtype)
                    init.append(g.node("Expand", [zero, zeros_shape], base=f"{name}_l{k}"))
                else:
                    init.append(g.node("Gather", [full, g.const(index)], base=f"{name}_l{k}",
                                       axis=0))
            prefix = f"l{k}{'_reverse' if d else ''}_"
            params = module.cell_params(k, d)
            key = (params["weight_ih"].shape[1], masked)
            if key not in traced:
                traced[key] = _trace_step(module, params, masked, batch, opset)
            outer = {name: g.initializer(p.detach().cpu().numpy(), f"{name}_l{k}"
                                         + ("_reverse" if d else ""))
                     for name, p in params.items()}
            body = _body_graph(traced[key], prefix, outer)
            g.used.update(n for node in body.node for n in node.output)
            x_in = x
            attrs = {"num_scan_inputs": 2 if masked else 1, "body": body}
            if d == 1 and masked:
                x_in = g.node("ReverseSequence", [x, lens], batch_axis=1, time_axis=0)
            elif d == 1:
                attrs.update(scan_input_directions=[1], scan_output_directions=[1])
            scan_inputs = [*init, x_in] + ([mask] if masked else [])
            node_name = f"Scan_l{k}" + ("_reverse" if d else "")
            outs = g.node("Scan", scan_inputs,
                          [f"{name}_n_l{k}_{d}" for name in states] + [f"y_l{k}_{d}"],
                          name=node_name, **attrs)
            node_names.append(node_name)
            y = outs[-1]
            if d == 1 and masked:
                y = g.node("ReverseSequence", [y, lens], batch_axis=1, time_axis=0)
            outputs.append(y)
            for name, final in zip(states, outs[:-1]):
                finals[name].append(g.node("Unsqueeze", [final, g.const([0])]))
        x = outputs[0] if D == 1 else g.node("Concat", outputs, base=f"x_l{k + 1}", axis=-1)
    if module.batch_first:
        g.node("Transpose", [x], [out_names[0]], perm=[1, 0, 2])
    else:
        g.node("Identity", [x], [out_names[0]])
    for out, parts in zip(out_names[1:], finals.values()):
        if len(parts) == 1:
            g.node("Identity", parts, [out])
        else:
            g.node("Concat", parts, [out], axis=0)
    return node_names


# ---- running and checking --------------------------------------------------------------------
def run_onnxruntime(model, input, hx=None, lengths=None):
    """Run an exported model in onnxruntime with the layer's calling convention; returns
    ``(output, h_n)`` or ``(output, (h_n, c_n))`` as torch tensors."""
    import onnxruntime as ort

    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, (str, os.PathLike)):
        model = os.fspath(model)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {"input": input.detach().cpu().numpy()}
    if "sequence_lens" in names:
        if lengths is None:
            raise ValueError("lengths: the model has a sequence_lens input")
        feeds["sequence_lens"] = np.asarray(torch.as_tensor(lengths).cpu(), dtype=np.int32)
    state_inputs = [n for n in names if n in ("h0", "c0")]
    if state_inputs:
        if hx is None:
            raise ValueError(f"hx: the model has initial-state inputs {state_inputs}")
        parts = hx if isinstance(hx, (tuple, list)) else (hx,)
        for name, part in zip(state_inputs, parts):
            feeds[name] = part.detach().cpu().numpy()
    out = [torch.from_numpy(o) for o in session.run(None, feeds)]
    return (out[0], tuple(out[1:])) if len(out) == 3 else (out[0], out[1])


def _verify(module, model, x, hx, lengths, atol, rtol=1e-5):
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            expected = module(x, hx, lengths=lengths)
    finally:
        module.train(was_training)
    got = run_onnxruntime(model, x, hx, lengths)
    flat = lambda r: [r[0], *(r[1] if isinstance(r[1], tuple) else (r[1],))]
    for name, a, b in zip(["output", "h_n", "c_n"], flat(got), flat(expected)):
        b = b.detach().cpu()
        excess = ((a - b).abs() - rtol * b.abs()).max().item()
        if not excess <= atol:
            err = (a - b).abs().max().item()
            raise AssertionError(f"verify: onnxruntime's {name} differs from the layer's by "
                                 f"{err:.3g} (> atol={atol} + rtol={rtol} · |value|)")
