"""ONNX → rnnlab: a model built directly with onnx.helper (random weights) gives the same
result in rnnlab (``rnnlab.onnx.load_layer``) as in onnxruntime, for every attribute the
operators share with rnnlab and all three directions; onnx's reference evaluator checks the
same models where it computes them; unsupported attributes raise ValueError naming them."""

import itertools

import numpy as np
import pytest
import torch

import rnnlab

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
ro = pytest.importorskip("rnnlab.onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402  (after the importorskip guards)

T, B, I, H = 5, 3, 4, 6
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def build(op, *, D=1, bias=True, peephole=False, lengths=False, init="none", layout=0,
          seed=0, reverse=False, **attrs):
    """A one-node model with random weights. init: "none", "input" (graph inputs) or
    "const" (initializers, one state repeated over the batch); reverse: with D=1, the node
    runs ``direction="reverse"``."""
    rng = np.random.default_rng(seed)
    G = GATES[op]
    u = lambda *shape: rng.uniform(-0.6, 0.6, shape).astype(np.float32)
    inits = [numpy_helper.from_array(u(D, G * H, I), "W"),
             numpy_helper.from_array(u(D, G * H, H), "R")]
    names = ["X", "W", "R", "", "", "", "", ""]
    x_shape = ["batch", "seq", I] if layout else ["seq", "batch", I]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    if bias:
        inits.append(numpy_helper.from_array(u(D, 2 * G * H), "B"))
        names[3] = "B"
    if lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32,
                                                    ["batch"]))
        names[4] = "sequence_lens"
    states = ["initial_h", "initial_c"] if op == "LSTM" else ["initial_h"]
    for j, name in enumerate(states):
        shape = ["batch", D, H] if layout else [D, "batch", H]
        if init == "input":
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
            names[5 + j] = name
        elif init == "const":
            value = np.repeat(u(1, D, H), B, 0) if layout else np.repeat(u(D, 1, H), B, 1)
            inits.append(numpy_helper.from_array(value, name))
            names[5 + j] = name
    if peephole:
        inits.append(numpy_helper.from_array(u(D, 3 * H), "P"))
        names[7] = "P"
    while names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outs, name=f"my_{op.lower()}", hidden_size=H,
                            direction=direction_of(D, reverse),
                            **({"layout": 1} if layout else {}), **attrs)
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                               for o in outs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def direction_of(D, reverse=False):
    return "bidirectional" if D == 2 else "reverse" if reverse else "forward"


def feeds_for(model, op, D, layout, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I) if layout else (T, B, I)).astype(np.float32)
    feeds = {"X": x}
    names = {i.name for i in model.graph.input}
    if "sequence_lens" in names:
        feeds["sequence_lens"] = np.array([5, 2, 4], dtype=np.int32)
    for name in ("initial_h", "initial_c"):
        if name in names:
            shape = (B, D, H) if layout else (D, B, H)
            feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def rnnlab_like_onnx(layer, feeds, op, layout):
    """Run the rnnlab layer on the ONNX feeds and shape the result as ONNX's Y, Y_h(, Y_c)."""
    x = torch.from_numpy(feeds["X"])
    lengths = feeds.get("sequence_lens")
    hx = None
    if "initial_h" in feeds:
        states = [torch.from_numpy(feeds[n]) for n in ("initial_h", "initial_c") if n in feeds]
        if layout:
            states = [s.transpose(0, 1).contiguous() for s in states]
        hx = tuple(states) if op == "LSTM" else states[0]
    with torch.no_grad():
        out, finals = layer(x, hx, lengths=None if lengths is None else torch.from_numpy(lengths))
    finals = finals if isinstance(finals, tuple) else (finals,)
    D = layer.num_directions
    if layout:  # (B, T, D·H) -> (B, T, D, H);  h_n (D, B, H) -> (B, D, H)
        y = out.reshape(B, T, D, H)
        finals = [f.transpose(0, 1) for f in finals]
    else:  # (T, B, D·H) -> (T, D, B, H)
        y = out.reshape(T, B, D, H).transpose(1, 2)
    return [y.numpy(), *(f.numpy() for f in finals)]


def check(model, op, D, layout=0, atol=2e-6):
    layer = ro.load_layer(model)
    feeds = feeds_for(model, op, D, layout)
    expected = rnnlab_like_onnx(layer, feeds, op, layout)
    if layout:
        got = reference_run(model, feeds, layout)
    else:
        got = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, feeds)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-5)
    return layer


def reference_run(model, feeds, layout=0):
    """onnx's ReferenceEvaluator, which ignores ``sequence_lens``: with lengths, each sequence
    runs alone (batch 1) over its valid steps and ``Y`` is padded with zeros after them, as
    ONNX defines ``sequence_lens`` (a reverse direction then starts at the sequence's last
    valid step)."""
    from onnx.reference import ReferenceEvaluator
    evaluator = ReferenceEvaluator(model)
    lengths = feeds.get("sequence_lens")
    if lengths is None:
        return evaluator.run(None, feeds)
    x_batch, x_time = (0, 1) if layout else (1, 0)
    per_sequence = []
    for b, n in enumerate(lengths):
        one = {"sequence_lens": lengths[b:b + 1],
               "X": np.take(np.take(feeds["X"], [b], axis=x_batch), range(n), axis=x_time)}
        for name in ("initial_h", "initial_c"):
            if name in feeds:
                one[name] = np.take(feeds[name], [b], axis=0 if layout else 1)
        y, *finals = evaluator.run(None, one)
        pad = [(0, 0)] * 4
        pad[x_time] = (0, T - n)  # Y is (T, D, B, H), or (B, T, D, H) with layout=1
        per_sequence.append([np.pad(y, pad), *finals])
    y_batch, state_batch = (0, 0) if layout else (2, 1)
    return [np.concatenate(parts, axis=y_batch if k == 0 else state_batch)
            for k, parts in enumerate(zip(*per_sequence))]


MODES = {"plain": {}, "len-init": {"lengths": True, "init": "input"}, "no-bias": {"bias": False},
         "const-init": {"init": "const", "lengths": True}}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("D,peephole,input_forget",
                         list(itertools.product([1, 2], [False, True], [0, 1])))
def test_lstm(D, peephole, input_forget, mode):
    attrs = {"input_forget": input_forget} if input_forget else {}
    if mode == "plain":
        attrs["activations"] = ["Sigmoid", "Tanh", "Tanh"] * D  # the defaults, spelled out
    model = build("LSTM", D=D, peephole=peephole, **MODES[mode], **attrs)
    layer = check(model, "LSTM", D)
    assert isinstance(layer, rnnlab.LSTM)
    assert layer.peephole == peephole and layer.options.coupled == bool(input_forget)
    assert layer.bidirectional == (D == 2) and layer.bias == (mode != "no-bias")
    assert layer.initial_state == ("learned" if mode == "const-init" else "zeros")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("D,lbr", list(itertools.product([1, 2], [0, 1])))
def test_gru(D, lbr, mode):
    model = build("GRU", D=D, linear_before_reset=lbr, **MODES[mode])
    layer = check(model, "GRU", D)
    assert isinstance(layer, rnnlab.GRU) and layer.reset_after == bool(lbr)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("D,activation", list(itertools.product([1, 2], ["Tanh", "Relu",
                                                                         None])))
def test_rnn(D, activation, mode):
    attrs = {"activations": [activation] * D} if activation else {}
    model = build("RNN", D=D, **MODES[mode], **attrs)
    layer = check(model, "RNN", D)
    assert layer.nonlinearity == (activation or "tanh").lower()


@pytest.mark.parametrize("direction", ["bidirectional", "reverse"])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("op,attrs", [("LSTM", {}), ("GRU", {"linear_before_reset": 1}),
                                      ("GRU", {"linear_before_reset": 0}), ("RNN", {})])
def test_layout_1(op, attrs, lengths, direction):
    """Batch-major nodes (onnxruntime refuses them): compared with onnx's reference runtime
    (which ignores input_forget and clip, so none of them here; sequence_lens as
    :func:`reference_run` computes it)."""
    D = 2 if direction == "bidirectional" else 1
    model = build(op, D=D, layout=1, init="input", lengths=lengths,
                  reverse=direction == "reverse", **attrs)
    layer = check(model, op, D, layout=1)
    assert layer.batch_first


# ---- direction="reverse" ---------------------------------------------------------------------
REVERSE_MODES = {"plain": {}, "lengths": {"lengths": True}, "init": {"init": "input"},
                 "len-init": {"lengths": True, "init": "input"}, "no-bias": {"bias": False},
                 "const-init": {"init": "const", "lengths": True}}
# what onnx's reference evaluator computes: default LSTM/GRU activations, RNN Tanh, no
# input_forget (it ignores the attributes), P and linear_before_reset (it reads them)
REVERSE_NODES = {
    "lstm": ("LSTM", {}), "lstm-peephole": ("LSTM", {"peephole": True}),
    "lstm-coupled": ("LSTM", {"input_forget": 1}),
    "gru-reset-before": ("GRU", {"linear_before_reset": 0}),
    "gru-reset-after": ("GRU", {"linear_before_reset": 1}),
    "rnn-tanh": ("RNN", {}), "rnn-relu": ("RNN", {"activations": ["Relu"]}),
    "lstm-hard-softsign": ("LSTM", {"activations": ["HardSigmoid", "Softsign", "Tanh"]}),
}
REFERENCE_COMPUTES = ("lstm", "lstm-peephole", "gru-reset-before", "gru-reset-after",
                      "rnn-tanh")


@pytest.mark.parametrize("mode", list(REVERSE_MODES))
@pytest.mark.parametrize("name", list(REVERSE_NODES))
def test_reverse(name, mode):
    """A reverse node imports as a Reverse layer whose Y (T, 1, B, H), Y_h and Y_c match
    onnxruntime, and onnx's reference evaluator where it computes the node."""
    op, kw = REVERSE_NODES[name]
    model = build(op, reverse=True, **REVERSE_MODES[mode], **kw)
    layer = check(model, op, 1, atol=5e-6)
    assert isinstance(layer, ro.Reverse) and isinstance(layer.layer, getattr(rnnlab, op))
    assert layer.initial_state == ("learned" if mode == "const-init" else "zeros")
    if name in REFERENCE_COMPUTES and mode != "const-init":
        feeds = feeds_for(model, op, 1, 0)
        expected = rnnlab_like_onnx(layer, feeds, op, 0)
        for a, b in zip(reference_run(model, feeds), expected, strict=True):
            np.testing.assert_allclose(a, b, atol=5e-6, rtol=1e-5)


@pytest.mark.parametrize("op,kw", [("LSTM", {"peephole": True}), ("GRU", {}),
                                   ("GRU", {"linear_before_reset": 1}), ("RNN", {})])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("lengths", [False, True])
def test_reference_evaluator(op, kw, direction, lengths):
    """The other two directions against onnx's reference evaluator too, with unequal
    sequence_lens and initial states."""
    D = 2 if direction == "bidirectional" else 1
    model = build(op, D=D, lengths=lengths, init="input", **kw)
    layer = ro.load_layer(model)
    feeds = feeds_for(model, op, D, 0)
    expected = rnnlab_like_onnx(layer, feeds, op, 0)
    for a, b in zip(reference_run(model, feeds), expected, strict=True):
        np.testing.assert_allclose(a, b, atol=5e-6, rtol=1e-5)


def stacked_reverse(op, directions=("reverse", "reverse"), seed=0):
    """Two chained nodes (Y squeezed to (T, B, H) between them) with sequence_lens."""
    rng = np.random.default_rng(seed)
    G = GATES[op]
    u = lambda *shape: rng.uniform(-0.6, 0.6, shape).astype(np.float32)
    inits = [numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    nodes, x = [], "X"
    for k, direction in enumerate(directions):
        inits += [numpy_helper.from_array(u(1, G * H, I if k == 0 else H), f"W{k}"),
                  numpy_helper.from_array(u(1, G * H, H), f"R{k}"),
                  numpy_helper.from_array(u(1, 2 * G * H), f"B{k}")]
        outs = [f"Y{k}", f"Y_h{k}"] + ([f"Y_c{k}"] if op == "LSTM" else [])
        nodes.append(helper.make_node(op, [x, f"W{k}", f"R{k}", f"B{k}", "sequence_lens"],
                                      outs, name=f"{op}_{k}", hidden_size=H,
                                      direction=direction))
        nodes.append(helper.make_node("Squeeze", [f"Y{k}", "axis1"], [f"out{k}"]))
        x = f"out{k}"
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", "batch", I]),
              helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
               for n in (x, "Y_h0", "Y_h1")]
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_stacked_reverse(op):
    """Two reverse nodes load as one Reverse around a 2-layer layer (flipping twice between
    the layers is the identity), output and h_n per layer as onnxruntime's."""
    model = stacked_reverse(op)
    layer = ro.load_layer(model, [f"{op}_0", f"{op}_1"])
    assert isinstance(layer, ro.Reverse) and layer.num_layers == 2
    feeds = feeds_for(model, op, 1, 0)
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, feeds)
    with torch.no_grad():
        out, finals = layer(torch.from_numpy(feeds["X"]),
                            lengths=torch.from_numpy(feeds["sequence_lens"]))
    h_n = finals[0] if op == "LSTM" else finals
    np.testing.assert_allclose(out.numpy(), expected[0], atol=5e-6, rtol=1e-5)
    np.testing.assert_allclose(h_n.numpy(), np.concatenate(expected[1:]), atol=5e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="node_name: node 'GRU_1' .* in direction"):
        ro.load_layer(stacked_reverse("GRU", ("reverse", "forward")), ["GRU_0", "GRU_1"])


@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN])
def test_reverse_is_the_backward_half_of_bidirectional(cls):
    """Reverse(layer) computes what the reverse direction of a bidirectional layer with the
    same weights computes, for every input form (padded with lengths, batch_first, packed,
    unbatched), gradients included."""
    from torch.nn.utils.rnn import pack_padded_sequence
    torch.manual_seed(0)
    bi = cls(I, H, bidirectional=True, batch_first=True, dtype=torch.float64)
    one = cls(I, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for short, param in one.cell_params(0, 0).items():
            param.copy_(bi.cell_params(0, 1)[short])
    rev = ro.Reverse(one)
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([2, T, 4])
    out_bi, h_bi = bi(x, lengths=lengths)
    out, h = rev(x, lengths=lengths)
    torch.testing.assert_close(out, out_bi[..., H:])
    torch.testing.assert_close(h, tuple(s[1:] for s in h_bi) if cls is rnnlab.LSTM
                               else h_bi[1:])
    grads = torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(out_bi[..., H:].sum(), x)[0]
    torch.testing.assert_close(*grads)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_packed, _ = rev(packed)
    torch.testing.assert_close(out_packed.data, pack_padded_sequence(
        out, lengths, batch_first=True, enforce_sorted=False).data)
    out_unbatched, _ = rev(x[1])
    torch.testing.assert_close(out_unbatched, out[1])


def test_reverse_arguments():
    with pytest.raises(TypeError, match="^layer:"):
        ro.Reverse(torch.nn.LSTM(I, H))
    with pytest.raises(ValueError, match="^layer:.*bidirectional"):
        ro.Reverse(rnnlab.GRU(I, H, bidirectional=True))
    with pytest.raises(ValueError, match="^lengths:"):
        ro.Reverse(rnnlab.GRU(I, H))(torch.randn(T, B, I), lengths=[T, T + 1, 1])


@pytest.mark.parametrize("op,D,attrs", [
    ("LSTM", 2, {"activations": ["HardSigmoid", "ScaledTanh", "Softsign"] * 2,
                 "activation_alpha": [0.3, 1.5, 0.3, 1.5],
                 "activation_beta": [0.4, 0.7, 0.4, 0.7]}),
    ("LSTM", 1, {"activations": ["Sigmoid", "Affine", "Softplus"], "activation_alpha": [0.5],
                 "activation_beta": [0.1]}),
    ("LSTM", 1, {"activations": ["HardSigmoid", "Relu", "Tanh"], "input_forget": 1}),
    ("LSTM", 1, {"activations": ["Sigmoid", "Elu", "ThresholdedRelu"],
                 "activation_alpha": [0.8, 0.05]}),
    ("LSTM", 1, {"activations": ["LeakyRelu", "Elu", "Tanh"]}),  # defaults all agree on
    ("GRU", 2, {"activations": ["LeakyRelu", "Elu"] * 2, "activation_alpha": [0.05, 0.8] * 2,
                "linear_before_reset": 1}),
    ("GRU", 1, {"activations": ["Softsign", "Tanh"]}),
], ids=["lstm-hard-scaled-softsign", "lstm-affine-softplus", "lstm-coupled-hard",
        "lstm-elu-thresholded", "lstm-default-params", "gru-leaky-elu", "gru-softsign"])
def test_activations(op, D, attrs):
    """ONNX's activations and their alpha/beta, read as onnxruntime reads them."""
    model = build(op, D=D, lengths=True, init="input", **attrs)
    # float32 on both sides; the leaky-gated GRU grows to |y| ~ 2e3, where the two runtimes'
    # rounding (each ~3e-4 from float64 there) reaches 7e-6 on elements near 0
    layer = check(model, op, D, atol=1e-5)
    assert layer.options.gate_act.onnx_name == attrs["activations"][0]


@pytest.mark.parametrize("attrs,match", [
    ({"clip": 1.0}, "clip"),
    ({"activations": ["Sigmoid", "Tanh", "Gelu"]}, "activations"),
    ({"activations": ["Sigmoid", "Tanh"]}, "activations"),
    ({"activations": ["Sigmoid", "Tanh", "ThresholdedRelu"]}, "activation_alpha"),
    ({"activations": ["Sigmoid", "ScaledTanh", "Tanh"], "activation_alpha": [2.0]},
     "activation_beta"),
    ({"activations": ["Softsign", "Tanh", "Tanh"], "input_forget": 1}, "input_forget"),
    ({"direction": "backward"}, "direction"),
    ({"made_up": 1}, "made_up"),
])
def test_unsupported_lstm_attributes(attrs, match):
    if "direction" in attrs:
        model = build("LSTM")
        node = model.graph.node[0]
        for a in node.attribute:
            if a.name == "direction":
                a.s = attrs["direction"].encode()
    else:
        model = build("LSTM", **attrs)
    with pytest.raises(ValueError, match=f"^{match}:"):
        ro.load_layer(model)


@pytest.mark.parametrize("op,D,attrs", [
    ("RNN", 1, {"activations": ["Sigmoid"]}),
    ("RNN", 1, {"activations": ["LeakyRelu"]}),
    ("RNN", 2, {"activations": ["Tanh", "Relu"]}),
    ("GRU", 2, {"activations": ["Sigmoid", "Relu", "Sigmoid", "Tanh"]}),
    ("GRU", 1, {"clip": 3.0})])
def test_unsupported_gru_rnn_attributes(op, D, attrs):
    model = build(op, D=D, **attrs)
    with pytest.raises(ValueError, match=f"^{next(iter(attrs))}:"):
        ro.load_layer(model)


def test_weights_must_be_constants_and_node_choice():
    model = build("GRU")
    model.graph.input.append(helper.make_tensor_value_info("R2", TensorProto.FLOAT, None))
    model.graph.node[0].input[2] = "R2"
    with pytest.raises(ValueError, match="^R:.*initializer"):
        ro.load_layer(model)
    two = build("GRU")
    second = helper.make_node("GRU", ["X", "W", "R"], ["Y2", "Y_h2"], name="other",
                              hidden_size=H)
    two.graph.node.append(second)
    with pytest.raises(ValueError, match="node_name.*2 recurrent nodes"):
        ro.load_layer(two)
    assert ro.load_layer(two, "other").bias is False
    with pytest.raises(ValueError, match="node_name: no recurrent node"):
        ro.load_layer(two, "nope")
    empty = helper.make_model(helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)]))
    with pytest.raises(ValueError, match="no LSTM, GRU or RNN"):
        ro.load_layer(empty)


def test_constant_initial_state():
    model = build("GRU", init="const")
    h = next(t for t in model.graph.initializer if t.name == "initial_h")
    h.CopyFrom(numpy_helper.from_array(np.zeros((1, B, H), np.float32), "initial_h"))
    assert ro.load_layer(model).initial_state == "zeros"
    h.CopyFrom(numpy_helper.from_array(np.arange(B * H, dtype=np.float32).reshape(1, B, H),
                                       "initial_h"))
    with pytest.raises(ValueError, match="^initial_h:.*batch"):
        ro.load_layer(model)


# ---- rnnlab -> ONNX -> rnnlab ----------------------------------------------------------------
ROUND_TRIP = {
    "lstm": lambda: rnnlab.LSTM(I, H, num_layers=2, bidirectional=True),
    "lstm-peephole-coupled": lambda: rnnlab.LSTM(I, H, num_layers=2, peephole=True,
                                                 coupled=True, batch_first=True),
    "lstm-learned-state": lambda: rnnlab.LSTM(I, H, initial_state="learned", peephole=True),
    "gru-reset-before": lambda: rnnlab.GRU(I, H, num_layers=3, reset_after=False, bias=False),
    "gru-learned-bi": lambda: rnnlab.GRU(I, H, num_layers=2, bidirectional=True,
                                         initial_state="learned"),
    "rnn-relu": lambda: rnnlab.RNN(I, H, num_layers=2, nonlinearity="relu", bidirectional=True),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_round_trip(name, tmp_path):
    m = ROUND_TRIP[name]().eval()
    with torch.no_grad():
        for pname, p in m.named_parameters():
            if pname.startswith("initial_"):
                p.normal_()
    x = torch.randn(B, T, I) if m.batch_first else torch.randn(T, B, I)
    info = ro.export(m, x, tmp_path / "m.onnx")
    back = ro.load_layer(tmp_path / "m.onnx", info.node_names if m.num_layers > 1 else None,
                         batch_first=m.batch_first)
    assert type(back) is type(m) and repr(back) == repr(m)
    assert back.state_dict().keys() == m.state_dict().keys()
    for key, value in m.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value, atol=0, rtol=0)
    lengths = torch.tensor([T, 2, 3])
    with torch.no_grad():
        a, b = m(x, lengths=lengths), back(x, lengths=lengths)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_stack_must_chain():
    m = rnnlab.LSTM(I, H, num_layers=2)
    info = ro.export(m, torch.randn(T, B, I))
    with pytest.raises(ValueError, match="node_name: node 'LSTM_l0' .*layer 1.*reads 4"):
        ro.load_layer(info.model, ["LSTM_l1", "LSTM_l0"])
