"""The ``triton`` engine against the reference engine: outputs, final states and every
gradient, for each kernel and the layer options around it. Without a GPU the kernels run
under the Triton interpreter on the CPU (see conftest.py); with one, compiled on CUDA.
"""

from __future__ import annotations

import pytest
import torch
from triton_pairs import (
    DEVICE,
    TOL32,
    assert_matches_reference,
    assert_second_derivatives_match,
    lengths_of,
    make_pair,
)

import rnnlab
from rnnlab.backends import BACKENDS, select_backend
from rnnlab.backends.triton.launch import column_programs
from rnnlab.layers.sequence import to_batch

KERNELS = {  # id: (family, options)
    "lstm": ("LSTM", {}),
    "lstm_peephole_clip": ("LSTM", {"peephole": True, "cell_clip": 0.3}),
    "lstm_coupled_peephole": ("LSTM", {"coupled": True, "peephole": True}),
    "lstm_proj": ("LSTM", {"proj_size": 3}),
    "gru": ("GRU", {}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
    "rnn_tanh": ("RNN", {}),
    "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
    "sru": ("SRU", {}),
}
LAYERS = {  # id: (layer options, how the input is given)
    "L1-lengths": ({}, "lengths"),
    "L2-bi-packed": ({"num_layers": 2, "bidirectional": True}, "packed"),
    "L2-bf-nobias": ({"num_layers": 2, "batch_first": True, "bias": False}, "padded"),
}


@pytest.mark.parametrize("layer_id", LAYERS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_matches_reference(kernel, layer_id):
    family, options = KERNELS[kernel]
    layer_options, how = LAYERS[layer_id]
    reference, layer = make_pair(family, {**options, **layer_options}, DEVICE)
    x = torch.randn(5, 3, 6, device=DEVICE, requires_grad=True)
    assert_matches_reference(reference, layer, x, lengths_of(3, 5), how, TOL32)


@pytest.mark.parametrize("columns", ["1", "2"])
@pytest.mark.parametrize("kernel", ["lstm", "lstm_peephole_clip", "gru", "gru_reset_before",
                                    "rnn_relu", "sru"])
def test_several_programs_and_blocks(kernel, columns, monkeypatch):
    """B = 20 and H = 80: two tiles of 16 sequences, two column blocks, two K blocks; the
    blocks of a tile in one program, or split over two programs (``columns``)."""
    monkeypatch.setenv("RNNLAB_TRITON_COLUMN_PROGRAMS", columns)
    if kernel != "sru":  # the SRU's tiles are element-wise already
        assert column_programs(20, 80, torch.device(DEVICE))[0] == int(columns)
    family, options = KERNELS[kernel]
    reference, layer = make_pair(family, options, DEVICE, input_size=80, hidden_size=80)
    x = torch.randn(3, 20, 80, device=DEVICE, requires_grad=True)
    assert_matches_reference(reference, layer, x, lengths_of(20, 3), "lengths", dict(
        atol=5e-5, rtol=5e-5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
# the clipped variant is left out: half-precision rounding may move a cell state across the
# clip boundary, where the gradient jumps
@pytest.mark.parametrize("kernel", [k for k in KERNELS if "clip" not in k])
def test_half_precision(kernel, dtype):
    """Half-precision weights and inputs, float32 inside the kernels: within the rounding of
    the half type of the float32 reference on the same (rounded) weights."""
    family, options = KERNELS[kernel]
    reference, layer = make_pair(family, options, DEVICE, dtype=dtype)
    x = torch.randn(5, 3, 6, device=DEVICE).to(dtype).float().requires_grad_()
    tol = dict(atol=2e-2, rtol=2e-2) if dtype == torch.bfloat16 else dict(atol=3e-3, rtol=3e-3)
    assert_matches_reference(reference, layer, x, lengths_of(3, 5), "lengths", tol, dtype)


@pytest.mark.parametrize("kernel", KERNELS)
def test_inference_matches_training_forward(kernel):
    """Without autograd the kernels keep nothing for a backward; the outputs are the same."""
    family, options = KERNELS[kernel]
    _, layer = make_pair(family, options, DEVICE)
    x = torch.randn(4, 2, 6, device=DEVICE)
    y_train, _ = layer(x)
    with torch.no_grad():
        y_infer, _ = layer(x)
    torch.testing.assert_close(y_infer, y_train.detach(), atol=0, rtol=0)


def test_unsupported_configuration_is_refused():
    """A configuration the engine has no kernel for (float64): a ValueError naming the engine
    and why."""
    layer = rnnlab.GRU(4, 5, backend="triton", dtype=torch.float64, device=DEVICE)
    x = torch.randn(3, 2, 4, dtype=torch.float64, device=DEVICE)
    with pytest.raises(ValueError, match="^backend: 'triton' cannot run this call: .*float64"):
        layer(x)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_column_programs_setting_is_named(value, monkeypatch):
    monkeypatch.setenv("RNNLAB_TRITON_COLUMN_PROGRAMS", value)
    with pytest.raises(ValueError, match="^RNNLAB_TRITON_COLUMN_PROGRAMS: expected a positive"):
        rnnlab.GRU(4, 5, backend="triton", device=DEVICE)(torch.randn(3, 2, 4, device=DEVICE))


def test_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    layer = rnnlab.GRU(4, 5, backend="triton")
    with pytest.raises(ValueError, match="backend.*CUDA"):
        layer(torch.randn(3, 2, 4))


@pytest.mark.parametrize("family", ["LSTM", "GRU", "RNN", "SRU"])
def test_auto_never_picks_the_interpreter(family):
    layer = getattr(rnnlab, family)(4, 5)
    batch, _ = to_batch(torch.randn(3, 2, 4), None, False)
    engine = select_backend(layer, batch)
    assert engine is not BACKENDS["triton"]


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_second_derivatives_match_the_reference(kernel):
    """Under ``create_graph=True`` the kernels' backward hands over to the reference engine's
    autograd twin: a gradient penalty's gradients equal the reference engine's."""
    family, options = KERNELS[kernel]
    reference, layer = make_pair(family, options, DEVICE)
    assert_second_derivatives_match(reference, layer, DEVICE)


@pytest.mark.parametrize("batch, hidden, expected", [
    (8, 1024, (16, "grid")),  # one tile: every block of 64 columns its own program
    (64, 256, (4, "grid")),  # one tile of 64 sequences, 4 blocks
    (512, 1024, (16, "grid")),  # 8 tiles × 16 = 128 programs on 132 SMs
    (4096, 1024, (2, "grid")),  # 64 tiles: 2 programs each fit
    (16384, 1024, (1, "cta")),  # 256 tiles: no room to split
    (8, 16, (1, "cta")),  # one block of columns
])
def test_default_column_split_fills_the_gpu_and_stays_resident(batch, hidden, expected,
                                                               monkeypatch):
    """The default on CUDA: as many column programs per tile as blocks, never more programs
    than multiprocessors (so the grid barrier cannot deadlock); an H200's 132 SMs."""
    monkeypatch.delenv("RNNLAB_TRITON_COLUMN_PROGRAMS", raising=False)
    monkeypatch.delenv("RNNLAB_TRITON_SYNC", raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: type("Props", (), {"multi_processor_count": 132}))
    columns, sync = column_programs(batch, hidden, torch.device("cuda"))
    assert (columns, sync) == expected
    if sync == "grid":
        assert -(-batch // 64) * columns <= 132  # tiles × columns: all resident


def test_default_is_one_program_per_tile_off_the_gpu(monkeypatch):
    monkeypatch.delenv("RNNLAB_TRITON_COLUMN_PROGRAMS", raising=False)
    assert column_programs(20, 1024, torch.device("cpu")) == (1, "cta")
