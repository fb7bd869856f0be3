"""The operator form: each layer one standard ONNX ``LSTM`` / ``GRU`` / ``RNN`` node (both
directions in the node), the glue between stacked layers, the weights as initializers."""

from __future__ import annotations

from rnnlab.layers.gru import GRU
from rnnlab.layers.lstm import LSTM
from rnnlab.layers.rnn import RNN
from rnnlab.onnx._graph import GraphBuilder, graph_outputs, transposed_input
from rnnlab.onnx._support import op_type
from rnnlab.onnx._weights import onnx_weights


def node_attributes(module, layout: int) -> dict:
    """The node's attributes: ``hidden_size``, ``direction``, ``layout`` and the layer's options
    (coupled gates as ``input_forget``, ``linear_before_reset``, the activations written out in
    full for both directions, with their alpha and beta)."""
    D = module.num_directions
    attrs = {"hidden_size": module.hidden_size,
             "direction": "bidirectional" if D == 2 else "forward", "layout": layout}
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
    return attrs


def operator_graph(g: GraphBuilder, module, states, seq_lens, layout, out_names) -> list[str]:
    """Write the layer as one operator node per layer, from the graph's ``input`` to
    ``out_names``; ``states`` maps each initial state to its graph value (L·D rows) or None
    (zeros). Returns the nodes' names."""
    op, attrs = op_type(module), node_attributes(module, layout)
    D, L = module.num_directions, module.num_layers
    # the nodes read (T, B, F) with layout 0 and (B, T, F) with layout 1
    transpose = (layout == 1) != module.batch_first
    x = transposed_input(g, transpose)
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
    graph_outputs(g, x, finals, out_names, transpose)
    return node_names
