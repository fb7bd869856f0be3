"""The resident form of the recurrent kernels (``RESIDENT``: each program keeps its slices of
W_hh on chip for all steps) against the reference engine, and the host's rule that chooses it
(:func:`rnnlab.backends.triton.launch.schedule`).

Forced with ``RNNLAB_TRITON_RESIDENT=1``: under the interpreter the programs of a tile run one
launch per sub-step, compiled on CUDA behind the grid barrier. H = 40 pads the reduction to
H_PAD = 64; two column programs own a block of 32 columns each. The layer norms run at
H = 20 (H_PAD = 32; two programs own 16 columns and 4): at H = 40 their gradients grow to where
float32 rounding passes 2e-5 in a few elements, streamed as resident."""

from __future__ import annotations

import pytest
import torch
from triton_pairs import DEVICE, TOL32, assert_matches_reference, lengths_of, make_pair

from rnnlab.backends.triton.launch import RESIDENT_BUDGET, plan_for, resident_bytes, schedule

LN_ACTS = dict(gate_activation=("hard_sigmoid", 0.3, 0.45), activation=("scaled_tanh", 1.3, 0.8))
KERNELS = {  # id: (family, options, gates)
    "lstm": ("LSTM", {}, 4),
    "lstm-peephole-clip": ("LSTM", dict(peephole=True, cell_clip=0.5), 4),
    "lstm-peephole-coupled-regs": ("LSTM", dict(peephole=True, coupled=True,
                                                recurrent_dropout=0.3, zoneout=(0.2, 0.4)), 4),
    "gru": ("GRU", {}, 3),
    "gru-reset-before-regs": ("GRU", dict(reset_after=False, recurrent_dropout=0.3,
                                          zoneout=0.3), 3),
    "rnn": ("RNN", dict(nonlinearity="relu"), 1),
    "lstm-layernorm": ("LSTM", dict(layer_norm=True), 4),
    "lstm-layernorm-acts-regs": ("LSTM", dict(LN_ACTS, output_activation="softsign",
                                              layer_norm=True, recurrent_dropout=0.3,
                                              zoneout=(0.3, 0.5)), 4),
    "gru-layernorm": ("GRU", dict(layer_norm=True), 3),
    "gru-layernorm-acts-regs": ("GRU", dict(LN_ACTS, layer_norm=True, recurrent_dropout=0.3,
                                            zoneout=0.4), 3),
}


def hidden_of(kernel: str) -> int:
    return 20 if "layernorm" in kernel else 40


def force_resident(monkeypatch, columns: str, B: int, H: int, gates: int):
    monkeypatch.setenv("RNNLAB_TRITON_RESIDENT", "1")
    monkeypatch.setenv("RNNLAB_TRITON_COLUMN_PROGRAMS", columns)
    plan = plan_for(B, H, torch.device(DEVICE), gates)
    assert plan["RESIDENT"] and plan["columns"] == int(columns)


@pytest.mark.parametrize("columns", ["1", "2"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_resident_matches_reference(kernel, columns, monkeypatch):
    """Two layers, bidirectional, packed variable lengths: outputs, final states and every
    gradient."""
    family, options, gates = KERNELS[kernel]
    H = hidden_of(kernel)
    force_resident(monkeypatch, columns, 3, H, gates)
    reference, layer = make_pair(family, dict(options, num_layers=2, bidirectional=True),
                                 DEVICE, hidden_size=H, seed=3)
    x = torch.randn(4, 3, 6, device=DEVICE, requires_grad=True)
    assert_matches_reference(reference, layer, x, lengths_of(3, 4), "packed", TOL32)


@pytest.mark.parametrize("kernel", ["lstm", "gru-layernorm"])
def test_resident_with_several_tiles(kernel, monkeypatch):
    """B = 70: two tiles of sequences (64 rows and 6), each with its two programs and their
    resident slices (on a GPU a tile too tall for the budget is split this way): variable
    lengths, outputs, final states and every gradient."""
    family, options, gates = KERNELS[kernel]
    H = hidden_of(kernel)
    force_resident(monkeypatch, "2", 70, H, gates)
    assert plan_for(70, H, torch.device(DEVICE), gates)["BLOCK_B"] == 64
    reference, layer = make_pair(family, options, DEVICE, hidden_size=H, seed=4)
    x = torch.randn(5, 70, 6, device=DEVICE, requires_grad=True)
    assert_matches_reference(reference, layer, x, lengths_of(70, 5), "lengths", TOL32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("kernel", ["lstm", "gru", "rnn", "lstm-layernorm", "gru-layernorm"])
def test_resident_half_precision(kernel, dtype, monkeypatch):
    """Half-precision weights kept half on chip, float32 accumulation, within the half type's
    rounding of the float32 reference on the same weights (the layer norms norm-wise, as
    ``test_triton_variants.test_half_precision`` measures them)."""
    family, options, gates = KERNELS[kernel]
    H = hidden_of(kernel)
    force_resident(monkeypatch, "2", 3, H, gates)
    reference, layer = make_pair(family, options, DEVICE, dtype=dtype, hidden_size=H)
    x = torch.randn(4, 3, 6, device=DEVICE).to(dtype).float().requires_grad_()
    if "layernorm" in kernel:
        tol = 8e-2 if dtype == torch.bfloat16 else 1e-2
    else:
        tol = dict(atol=2e-2, rtol=2e-2) if dtype == torch.bfloat16 else dict(atol=3e-3, rtol=3e-3)
    assert_matches_reference(reference, layer, x, lengths_of(3, 4), "lengths", tol, dtype)


H200 = 132


@pytest.mark.parametrize("gates, dtype, B, H, backward, expected", [
    # resident: the smallest BLOCK_H ≥ 16 whose blocks fit the tile's SMs, if it fits on chip
    (4, torch.bfloat16, 8, 1024, False, (True, 16, 64, 4)),  # LSTM
    (4, torch.bfloat16, 8, 1024, True, (True, 16, 64, 8)),
    (4, torch.bfloat16, 8, 256, False, (True, 16, 16, 4)),
    (4, torch.float32, 8, 512, True, (True, 16, 32, 8)),
    (3, torch.bfloat16, 64, 512, False, (True, 16, 32, 8)),  # GRU
    (1, torch.float32, 8, 1024, True, (True, 16, 64, 8)),  # RNN
    # the forward stages h̄ in the weights' dtype, the backward its gradients in float32
    (1, torch.bfloat16, 64, 1024, False, (True, 16, 64, 8)),
    # where the tallest tile does not fit, a shorter one (32 rows: 2 tiles of 64 programs)
    (1, torch.bfloat16, 64, 1024, True, (True, 16, 64, 8)),
    (3, torch.float32, 64, 512, True, (True, 16, 32, 8)),  # 64 rows: 233472 bytes compiled
    (4, torch.bfloat16, 64, 1024, False, (True, 16, 64, 4)),
    # streamed (BLOCK_H 64, as many programs as blocks up to the SMs): over the budget
    (4, torch.float32, 8, 1024, False, (False, 64, 16, None)),
    (4, torch.bfloat16, 64, 1024, True, (False, 64, 16, None)),
    (3, torch.bfloat16, 512, 1024, True, (False, 64, 16, None)),  # 8 tiles: 16 SMs each
    (1, torch.bfloat16, 16384, 256, False, (False, 64, 1, None)),  # 256 tiles: no SM left
    (4, torch.bfloat16, 32, 1024, False, (True, 16, 64, 4)),
])
def test_host_rule_on_an_h200(gates, dtype, B, H, backward, expected):
    check_host_rule(gates, dtype, B, H, backward, False, expected)


@pytest.mark.parametrize("gates, dtype, B, H, backward, expected", [
    # the layer-norm kernels: the forward's operand takes float32's room (sm_90 compile)
    (4, torch.bfloat16, 8, 1024, False, (True, 16, 64, 4)),  # LN-LSTM
    (4, torch.bfloat16, 8, 1024, True, (True, 16, 64, 8)),
    (4, torch.bfloat16, 32, 1024, False, (True, 16, 64, 4)),  # at 16 rows (the plain: 32)
    (4, torch.bfloat16, 64, 1024, False, (False, 64, 16, None)),
    (3, torch.bfloat16, 64, 512, False, (True, 16, 32, 8)),  # LN-GRU
    (3, torch.float32, 64, 512, False, (True, 16, 32, 4)),  # at 32 rows
])
def test_host_rule_for_the_layer_norms_on_an_h200(gates, dtype, B, H, backward, expected):
    check_host_rule(gates, dtype, B, H, backward, True, expected)


def check_host_rule(gates, dtype, B, H, backward, layer_norm, expected):
    plan = schedule(B, H, sms=H200, gates=gates, itemsize=dtype.itemsize, backward=backward,
                    layer_norm=layer_norm)
    assert (plan["RESIDENT"], plan["BLOCK_H"], plan["columns"],
            plan.get("num_warps")) == expected
    tiles = -(-B // plan["BLOCK_B"])
    if plan["RESIDENT"]:  # one block per program, all resident at once, within the budget
        assert plan["columns"] * plan["BLOCK_H"] >= H > (plan["columns"] - 1) * plan["BLOCK_H"]
        assert tiles * plan["columns"] <= H200 and plan["SYNC"] == "grid"
        assert plan["num_stages"] == 1
        assert resident_bytes(gates, plan["H_PAD"], plan["BLOCK_H"], plan["BLOCK_B"],
                              dtype.itemsize, backward, layer_norm) <= RESIDENT_BUDGET


def test_host_rule_takes_the_tallest_tile_that_fits():
    """B = 64, H = 1024, bfloat16 LSTM forward: 64-row tiles put 128 KB of weights and 128 KB of
    operand on each of 64 programs, over the budget; 32-row tiles fit, 2 tiles × 64 programs on
    the 132 SMs, under one grid barrier each. Its backward stages float32 gradients: streamed."""
    plan = schedule(64, 1024, sms=H200, gates=4, itemsize=2)
    assert (plan["RESIDENT"], plan["BLOCK_B"], plan["columns"], plan["SYNC"]) == (
        True, 32, 64, "grid")
    assert not schedule(64, 1024, sms=H200, gates=4, itemsize=2, backward=True)["RESIDENT"]
    streamed = schedule(64, 1024, sms=H200, gates=4, itemsize=2, resident=False)
    assert (streamed["BLOCK_B"], streamed["BLOCK_H"]) == (64, 64)


def test_host_rule_off_the_gpu_streams_unless_forced():
    assert not schedule(8, 40, sms=None, gates=4)["RESIDENT"]
    plan = schedule(8, 40, sms=None, gates=4, columns=2, resident=True)
    assert (plan["RESIDENT"], plan["BLOCK_H"], plan["H_PAD"], plan["columns"]) == (True, 32, 64, 2)
    assert not schedule(8, 1024, sms=H200, gates=4, itemsize=2, resident=False)["RESIDENT"]


@pytest.mark.parametrize("kwargs, reason", [
    (dict(B=8, H=1024, sms=H200, gates=4, itemsize=4), "bytes of shared memory"),
    (dict(B=16384, H=256, sms=H200, gates=1, itemsize=2), "outnumber the 132 SMs"),
    (dict(B=64, H=1024, sms=H200, gates=4, itemsize=2, layer_norm=True),
     "bytes of shared memory"),
    (dict(B=8, H=256, sms=H200, gates=0, itemsize=2), "no resident form"),
])
def test_forcing_where_it_cannot_apply_says_why(kwargs, reason):
    B, H = kwargs.pop("B"), kwargs.pop("H")
    with pytest.raises(ValueError, match=f"^RNNLAB_TRITON_RESIDENT=1: .*B={B}, H={H}: .*{reason}"):
        schedule(B, H, resident=True, **kwargs)


def test_bad_resident_setting_is_named(monkeypatch):
    monkeypatch.setenv("RNNLAB_TRITON_RESIDENT", "yes")
    with pytest.raises(ValueError, match="^RNNLAB_TRITON_RESIDENT: expected 0 or 1, got 'yes'"):
        plan_for(8, 40, torch.device("cpu"), 4)
