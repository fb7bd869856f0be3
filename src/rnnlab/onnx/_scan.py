"""The Scan form: one ONNX ``Scan`` per layer and direction whose body is one step of the cell
(:mod:`rnnlab.onnx._step`) traced by ``torch.onnx.export``; the sequence length stays dynamic."""

from __future__ import annotations

import inspect
import io
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto

from rnnlab.onnx._graph import GraphBuilder, graph_outputs, transposed_input
from rnnlab.onnx._step import StepBody


def _torch_onnx_export(body, args, f, **kw):
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" in params:
        kw["dynamo"] = False  # the TorchScript tracer: a plain graph for one step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(body, args, f, **kw)


def trace_step(module, params: dict[str, torch.Tensor], masked: bool, batch: int,
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
    _torch_onnx_export(StepBody(module, names, masked), tuple(args), buf,
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


def body_graph(traced: onnx.GraphProto, prefix: str, outer: dict[str, str]) -> onnx.GraphProto:
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


def scan_graph(g: GraphBuilder, module, states, seq_lens, np_dtype, opset, batch,
               out_names) -> list[str]:
    """Write the layer as one Scan per layer and direction, from the graph's ``input`` to
    ``out_names``; ``states`` maps each initial state to its graph value (L·D rows) or None
    (zeros of ``np_dtype``). Returns the Scan nodes' names."""
    D, L = module.num_directions, module.num_layers
    x = transposed_input(g, module.batch_first)
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
                traced[key] = trace_step(module, params, masked, batch, opset)
            outer = {name: g.initializer(p.detach().cpu().numpy(), f"{name}_l{k}"
                                         + ("_reverse" if d else ""))
                     for name, p in params.items()}
            body = body_graph(traced[key], prefix, outer)
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
    graph_outputs(g, x, finals, out_names, module.batch_first)
    return node_names
