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

The parts: :mod:`rnnlab.onnx._support` (which form), :mod:`rnnlab.onnx._operator` and
:mod:`rnnlab.onnx._weights` (operator form), :mod:`rnnlab.onnx._scan` and
:mod:`rnnlab.onnx._step` (Scan form), :mod:`rnnlab.onnx._graph` (graph writing, shared with
:mod:`rnnlab.onnx.load`), :mod:`rnnlab.onnx._runtime` (onnxruntime).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from rnnlab.layers.base import RecurrentBase
from rnnlab.onnx._graph import DEFAULT_OPSET, DTYPES, MIN_OPSET, GraphBuilder
from rnnlab.onnx._operator import operator_graph
from rnnlab.onnx._runtime import verify as verify_model
from rnnlab.onnx._scan import scan_graph
from rnnlab.onnx._support import op_type, operator_unsupported

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
        node_names = scan_graph(g, module, states, seq_lens, np_dtype, opset, B, out_names)
        op = "Scan"
    else:
        node_names = operator_graph(g, module, states, seq_lens, layout, out_names)
        op = op_type(module)
    out_dims = [*seq_dims, module.num_directions * module.output_size]
    outputs = [helper.make_tensor_value_info("output", elem, out_dims)]
    for name, size in zip(out_names[1:], module.state_sizes()):
        outputs.append(helper.make_tensor_value_info(name, elem, [rows, "batch", size]))

    graph = helper.make_graph(g.nodes, f"rnnlab_{type(module).__name__}", inputs, outputs,
                              g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="rnnlab")
    helper.set_model_props(model, {"rnnlab.layer": repr(module), "rnnlab.mode": op})
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
                      op_type=op, node_names=node_names,
                      input_names=[i.name for i in inputs], output_names=out_names,
                      opset=opset, notes=notes)
    if verify:
        verify_model(module, model, example_input, hx, lengths, atol)
    return info


def _expand_learned(g: GraphBuilder, learned: np.ndarray, x: str, batch_axis: int) -> str:
    """(rows, 1, S) learned initial state broadcast over the batch of ``x``."""
    batch = g.node("Gather", [g.node("Shape", [x]), g.const([batch_axis])], base="batch")
    shape = g.node("Concat", [g.const([1]), batch, g.const([1])], axis=0)
    return g.node("Expand", [g.initializer(learned, "initial_state"), shape],
                  base="initial_state_b")
