"""rnnlab → ONNX → onnxruntime equals rnnlab, for every attribute the ONNX operators have and
for the configurations that export as a Scan over the cell."""

import itertools
import warnings

import numpy as np
import pytest
import torch

import rnnlab

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
ro = pytest.importorskip("rnnlab.onnx")

T, B, I, H = 6, 3, 4, 5
LENGTHS = torch.tensor([6, 2, 4])


def run_both(m, x, hx=None, lengths=None, **kw):
    m.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ro.ScanExportWarning)
        info = ro.export(m, x, hx=hx, lengths=lengths, **kw)
    with torch.no_grad():
        expected = m(x, hx, lengths=lengths)
    got = ro.run_onnxruntime(info.model, x, hx, lengths)
    return info, got, expected


def flat(result):
    out, state = result
    return [out, *(state if isinstance(state, tuple) else (state,))]


def assert_same(got, expected, atol=2e-6):
    for a, b in zip(flat(got), flat(expected), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


def make_state(m, batch=B):
    rows = m.num_layers * m.num_directions
    parts = tuple(torch.randn(rows, batch, s) for s in m.state_sizes())
    return parts if len(parts) == 2 else parts[0]


def inputs(m, lengths: bool, hx: bool):
    x = torch.randn(B, T, I) if m.batch_first else torch.randn(T, B, I)
    return x, (make_state(m) if hx else None), (LENGTHS if lengths else None)


STRUCTURE = list(itertools.product([False, True], [False, True], [False, True], [False, True]))
STRUCTURE_IDS = [f"{'bi' if bi else 'uni'}-{'bf' if bf else 'tm'}-{'len' if ln else 'full'}-"
                 f"{'hx' if hx else 'zero'}" for bi, bf, ln, hx in STRUCTURE]


@pytest.mark.parametrize("peephole,coupled", [(False, False), (True, False), (False, True),
                                              (True, True)])
@pytest.mark.parametrize("bi,bf,use_len,use_hx", STRUCTURE, ids=STRUCTURE_IDS)
def test_lstm_operator(peephole, coupled, bi, bf, use_len, use_hx):
    m = rnnlab.LSTM(I, H, num_layers=2, bidirectional=bi, batch_first=bf, peephole=peephole,
                    coupled=coupled)
    x, hx, lengths = inputs(m, use_len, use_hx)
    info, got, expected = run_both(m, x, hx, lengths)
    assert info.mode == "operator" and info.op_type == "LSTM"
    nodes = [n for n in info.model.graph.node if n.op_type == "LSTM"]
    assert [n.name for n in nodes] == ["LSTM_l0", "LSTM_l1"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["direction"] == (b"bidirectional" if bi else b"forward")
    assert attrs.get("input_forget", 0) == int(coupled)
    assert (len(nodes[0].input) == 8 and nodes[0].input[7] != "") == peephole
    assert_same(got, expected)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bi,bf,use_len,use_hx", STRUCTURE, ids=STRUCTURE_IDS)
def test_gru_operator(reset_after, bi, bf, use_len, use_hx):
    m = rnnlab.GRU(I, H, num_layers=2, bidirectional=bi, batch_first=bf, reset_after=reset_after)
    x, hx, lengths = inputs(m, use_len, use_hx)
    info, got, expected = run_both(m, x, hx, lengths)
    node = next(n for n in info.model.graph.node if n.op_type == "GRU")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["linear_before_reset"] == int(reset_after)
    assert_same(got, expected)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bi,bf,use_len,use_hx", STRUCTURE, ids=STRUCTURE_IDS)
def test_rnn_operator(nonlinearity, bi, bf, use_len, use_hx):
    m = rnnlab.RNN(I, H, num_layers=2, nonlinearity=nonlinearity, bidirectional=bi,
                   batch_first=bf)
    x, hx, lengths = inputs(m, use_len, use_hx)
    info, got, expected = run_both(m, x, hx, lengths)
    node = next(n for n in info.model.graph.node if n.op_type == "RNN")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs.get("activations", [b"Tanh"] * (2 if bi else 1))[0].decode().lower() == \
        nonlinearity
    assert_same(got, expected)


@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_no_bias_and_depth(cls, num_layers):
    m = cls(I, H, num_layers=num_layers, bias=False, bidirectional=True)
    x, hx, lengths = inputs(m, True, True)
    info, got, expected = run_both(m, x, hx, lengths)
    assert len(info.node_names) == num_layers
    assert_same(got, expected)


ACTIVATION_CASES = {
    "lstm-hard-gates": lambda: rnnlab.LSTM(I, H, gate_activation="hard_sigmoid",
                                           bidirectional=True),
    "lstm-keras3-hard-coupled": lambda: rnnlab.LSTM(I, H, gate_activation=(
        "hard_sigmoid", 1 / 6, 0.5), coupled=True, peephole=True),
    "lstm-scaled-softsign": lambda: rnnlab.LSTM(I, H, activation=("scaled_tanh", 1.7, 0.67),
                                                output_activation="softsign", num_layers=2),
    "lstm-affine-elu": lambda: rnnlab.LSTM(I, H, activation=("affine", 0.5, 0.1),
                                           output_activation=("elu", 0.7)),
    "gru-leaky-softplus": lambda: rnnlab.GRU(I, H, gate_activation=("leaky_relu", 0.05),
                                             activation="softplus", reset_after=False),
    "gru-thresholded": lambda: rnnlab.GRU(I, H, activation=("thresholded_relu", 0.2),
                                          bidirectional=True),
}


@pytest.mark.parametrize("name", list(ACTIVATION_CASES))
def test_activations_operator(name):
    """rnnlab's activations are ONNX's: ``activations`` with ``activation_alpha/beta``."""
    m = ACTIVATION_CASES[name]()
    x, hx, lengths = inputs(m, True, True)
    info, got, expected = run_both(m, x, hx, lengths)
    assert info.mode == "operator"
    node = next(n for n in info.model.graph.node if n.op_type in ("LSTM", "GRU"))
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["activations"][0].decode() == m.options.gate_act.onnx_name
    assert_same(got, expected, atol=5e-6)
    back = ro.load_layer(info.model, info.node_names if m.num_layers > 1 else None)
    for field in ("gate_act", "cand_act", "out_act"):
        a, b = getattr(back.options, field, None), getattr(m.options, field, None)
        assert (a is None) == (b is None)
        if a is not None:  # parameters went through float32
            assert a.name == b.name
            assert a.alpha == pytest.approx(b.alpha) and a.beta == pytest.approx(b.beta)


def test_coupled_with_an_asymmetric_gate_goes_to_scan():
    m = rnnlab.LSTM(I, H, coupled=True, gate_activation="softsign")
    assert "coupled" in ro.operator_unsupported(m)
    x, hx, lengths = inputs(m, True, False)
    info, got, expected = run_both(m, x, hx, lengths)
    assert info.mode == "scan"
    assert_same(got, expected)


@pytest.mark.parametrize("make", [
    lambda: rnnlab.LSTM(I, H, zoneout=(0.3, 0.6), zoneout_eval="expectation",
                        bidirectional=True),
    lambda: rnnlab.GRU(I, H, zoneout=0.4, zoneout_eval="expectation", num_layers=2),
    lambda: rnnlab.RNN(I, H, zoneout=0.4, zoneout_eval="expectation"),
    lambda: rnnlab.SRU(I, H, zoneout=0.4, zoneout_eval="expectation"),
    lambda: rnnlab.LSTM(I, H, zoneout=(0.3, 0.6), zoneout_eval="expectation", layer_norm=True,
                        gate_activation="hard_sigmoid", output_activation="softsign"),
    lambda: rnnlab.GRU(I, H, zoneout=0.4, zoneout_eval="expectation", layer_norm=True,
                       activation=("scaled_tanh", 1.7, 0.67)),
], ids=["lstm", "gru", "rnn", "sru", "lstm-layer_norm-activations",
        "gru-layer_norm-activations"])
def test_zoneout_expectation_exports_as_scan(make):
    m = make()
    assert m.regularisers.changes(training=False)
    x, hx, lengths = inputs(m, True, True)
    info, got, expected = run_both(m, x, hx, lengths)
    assert info.mode == "scan"
    assert_same(got, expected)


def test_train_only_regularisers_export_as_the_plain_layer():
    m = rnnlab.LSTM(I, H, recurrent_dropout=0.3, weight_dropout=0.2, zoneout=0.1)
    x, hx, lengths = inputs(m, True, False)
    info, got, expected = run_both(m, x, hx, lengths)  # run_both puts it in eval mode
    assert info.mode == "operator"
    assert_same(got, expected)


SCAN_CASES = {
    "sru": lambda **kw: rnnlab.SRU(I, H, **kw),
    "sru-same-size": lambda **kw: rnnlab.SRU(H, H, **kw),
    "lstm-layer_norm": lambda **kw: rnnlab.LSTM(I, H, layer_norm=True, **kw),
    "lstm-proj": lambda **kw: rnnlab.LSTM(I, H, proj_size=3, **kw),
    "lstm-proj-peephole-clip": lambda **kw: rnnlab.LSTM(I, H, proj_size=3, peephole=True,
                                                        cell_clip=0.4, **kw),
    "lstm-cell_clip": lambda **kw: rnnlab.LSTM(I, H, cell_clip=0.3, coupled=True, **kw),
    "gru-layer_norm": lambda **kw: rnnlab.GRU(I, H, layer_norm=True, **kw),
    "min-gru": lambda **kw: rnnlab.MinGRU(I, H, **kw),
    "min-lstm": lambda **kw: rnnlab.MinLSTM(I, H, **kw),
}


@pytest.mark.parametrize("name", list(SCAN_CASES))
@pytest.mark.parametrize("bi,bf,use_len,use_hx", [(False, False, False, False),
                                                  (True, True, True, True),
                                                  (True, False, True, False),
                                                  (False, True, False, True)],
                         ids=["plain", "bi-bf-len-hx", "bi-len", "bf-hx"])
def test_scan_fallback(name, bi, bf, use_len, use_hx):
    m = SCAN_CASES[name](num_layers=2, bidirectional=bi, batch_first=bf)
    x = torch.randn(B, T, m.input_size) if bf else torch.randn(T, B, m.input_size)
    hx = make_state(m) if use_hx else None
    lengths = LENGTHS if use_len else None
    m.eval()
    with pytest.warns(ro.ScanExportWarning, match="Scan"):
        info = ro.export(m, x, hx=hx, lengths=lengths)
    assert info.mode == "scan" and info.reason and info.notes
    assert {n.op_type for n in info.model.graph.node} & {"LSTM", "GRU", "RNN"} == set()
    assert len(info.node_names) == 2 * m.num_directions
    with torch.no_grad():
        expected = m(x, hx, lengths=lengths)
    assert_same(ro.run_onnxruntime(info.model, x, hx, lengths), expected, atol=5e-6)


def test_scan_reasons():
    assert "SRU" in ro.operator_unsupported(rnnlab.SRU(I, H))
    assert "proj_size" in ro.operator_unsupported(rnnlab.LSTM(I, H, proj_size=2))
    assert "cell_clip" in ro.operator_unsupported(rnnlab.LSTM(I, H, cell_clip=1.0))
    assert "layer_norm" in ro.operator_unsupported(rnnlab.GRU(I, H, layer_norm=True))
    assert ro.operator_unsupported(rnnlab.LSTM(I, H, peephole=True, coupled=True)) is None
    with pytest.raises(ValueError, match="mode: 'operator'.*SRU"):
        ro.export(rnnlab.SRU(I, H), torch.randn(T, B, I), mode="operator")


@pytest.mark.parametrize("family", ["LSTM", "GRU", "RNN"])
def test_forced_scan_equals_operator(family):
    m = getattr(rnnlab, family)(I, H, num_layers=2, bidirectional=True).eval()
    x, hx, lengths = inputs(m, True, True)
    with pytest.warns(ro.ScanExportWarning):
        scan = ro.export(m, x, hx=hx, lengths=lengths, mode="scan")
    op = ro.export(m, x, hx=hx, lengths=lengths, mode="operator")
    assert_same(ro.run_onnxruntime(scan.model, x, hx, lengths),
                ro.run_onnxruntime(op.model, x, hx, lengths))


@pytest.mark.parametrize("make", [lambda: rnnlab.LSTM(I, H, num_layers=2, bidirectional=True),
                                  lambda: rnnlab.SRU(I, H, num_layers=2)],
                         ids=["operator", "scan"])
def test_dynamic_sequence_and_batch(make):
    m = make().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ro.ScanExportWarning)
        info = ro.export(m, torch.randn(T, B, I), lengths=LENGTHS)
    x = torch.randn(11, 2, I)  # other T and B than the example
    lengths = torch.tensor([7, 11])
    with torch.no_grad():
        expected = m(x, lengths=lengths)
    assert_same(ro.run_onnxruntime(info.model, x, lengths=lengths), expected)


@pytest.mark.parametrize("make", [lambda: rnnlab.LSTM(I, H, num_layers=2, bidirectional=True,
                                                      initial_state="learned"),
                                  lambda: rnnlab.GRU(I, H, layer_norm=True,
                                                     initial_state="learned")],
                         ids=["operator", "scan"])
def test_learned_initial_state(make):
    m = make()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("initial_"):
                p.normal_()
    x = torch.randn(T, B, I)
    _, got, expected = run_both(m, x)
    assert_same(got, expected)


@pytest.mark.parametrize("opset", [14, 17, 20])
def test_opsets_and_file(opset, tmp_path):
    m = rnnlab.LSTM(I, H, num_layers=2, peephole=True).eval()
    x = torch.randn(T, B, I)
    path = tmp_path / "lstm.onnx"
    info = ro.export(m, x, path, opset=opset, verify=True)
    assert info.path == str(path) and path.exists()
    assert onnx.load(path).opset_import[0].version == opset
    with torch.no_grad():
        expected = m(x)
    assert_same(ro.run_onnxruntime(path, x), expected)


def test_float64():
    """onnxruntime's LSTM/GRU/RNN kernels are float32 only: float64 operators are checked in
    onnx's reference evaluator, the float64 Scan form in onnxruntime."""
    from onnx.reference import ReferenceEvaluator

    x = torch.randn(T, B, I, dtype=torch.float64)
    m = rnnlab.LSTM(I, H, num_layers=2, peephole=True, dtype=torch.float64).eval()
    info = ro.export(m, x)
    assert any("float32" in note for note in info.notes)
    got = ReferenceEvaluator(info.model).run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected = m(x)
    for a, b in zip(got, flat(expected), strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-12)
    sru = rnnlab.SRU(I, H, num_layers=2, dtype=torch.float64).eval()
    with pytest.warns(ro.ScanExportWarning):
        ro.export(sru, x, verify=True, atol=1e-12)


@pytest.mark.parametrize("family,extra", [("LSTM", {"peephole": True}), ("GRU", {}),
                                          ("GRU", {"reset_after": False}), ("RNN", {})])
def test_layout_1_in_the_onnx_reference_runtime(family, extra):
    """``layout=1`` (batch-major nodes) is standard ONNX that onnxruntime's CPU kernels refuse;
    onnx's own reference evaluator runs it."""
    from onnx.reference import ReferenceEvaluator

    m = getattr(rnnlab, family)(I, H, num_layers=2, bidirectional=True, batch_first=True,
                                **extra).eval()
    x = torch.randn(B, T, I)
    hx = make_state(m)
    info = ro.export(m, x, hx=hx, layout=1)
    node = next(n for n in info.model.graph.node if n.op_type == family)
    assert {a.name: a.i for a in node.attribute if a.name == "layout"} == {"layout": 1}
    assert not any(n.op_type == "Transpose" and n.input[0] == "input"
                   for n in info.model.graph.node)
    feeds = {"input": x.numpy()}
    parts = hx if isinstance(hx, tuple) else (hx,)
    feeds.update({name: p.numpy() for name, p in zip(m.state_names, parts)})
    got = ReferenceEvaluator(info.model).run(None, feeds)
    with torch.no_grad():
        expected = m(x, hx)
    for a, b in zip(got, flat(expected), strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=2e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="layout"):
        ro.export(rnnlab.LSTM(I, H), torch.randn(T, B, I), layout=1)


def test_bad_arguments():
    m = rnnlab.LSTM(I, H)
    with pytest.raises(ValueError, match="example_input"):
        ro.export(m, torch.randn(T, I))
    with pytest.raises(ValueError, match="example_input"):
        ro.export(m, torch.randn(T, B, I + 1))
    with pytest.raises(ValueError, match="mode"):
        ro.export(m, torch.randn(T, B, I), mode="unrolled")
    with pytest.raises(ValueError, match="opset"):
        ro.export(m, torch.randn(T, B, I), opset=9)
    with pytest.raises(TypeError, match="module"):
        ro.export(torch.nn.LSTM(I, H), torch.randn(T, B, I))
    with pytest.warns(UserWarning, match="random"):
        ro.export(rnnlab.GRU(I, H, initial_state="random"), torch.randn(T, B, I))


def test_verify_catches_a_wrong_model():
    m = rnnlab.GRU(I, H).eval()
    x = torch.randn(T, B, I)
    info = ro.export(m, x, verify=True)
    with torch.no_grad():
        m.weight_hh_l0.add_(0.5)
    from rnnlab.onnx._runtime import verify

    with pytest.raises(AssertionError, match="verify"):
        verify(m, info.model, x, None, None, 1e-5)
