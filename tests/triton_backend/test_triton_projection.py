"""The ``triton`` engine's projected LSTM (``proj_size``, the kernels' ``PROJ`` option) against
the reference engine with equal generators: outputs, final states and every gradient
(``weight_hr`` included) with the LSTM's options, activations and regularisers, over one and
two column programs, padded and packed, bidirectional and stacked, in float32 and the half
types. The plain projected LSTM is one of ``test_triton_backend``'s kernels (``lstm_proj``).
Sizes are tiny: under the Triton interpreter every program runs in Python."""

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

from rnnlab import regularisers
from rnnlab.backends.triton.launch import column_programs

ACTS = dict(gate_activation=("hard_sigmoid", 0.3, 0.45), activation=("scaled_tanh", 1.3, 0.8),
            output_activation="softsign")
REGS = dict(recurrent_dropout=0.3, zoneout=(0.2, 0.4), weight_dropout=0.3)
VARIANTS = {  # id: (options, layer options, how the input is given)
    "peephole-clip-L2-bi-packed": (dict(peephole=True, cell_clip=0.3),
                                   dict(num_layers=2, bidirectional=True), "packed"),
    "coupled-acts-L2-bf-nobias": (dict(ACTS, coupled=True),
                                  dict(num_layers=2, batch_first=True, bias=False), "padded"),
    "regs-L2-bi-packed": (REGS, dict(num_layers=2, bidirectional=True), "packed"),
    "regs-peephole-acts-L1-lengths": (dict(REGS, **ACTS, peephole=True), {}, "lengths"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_reference(variant):
    options, layer_options, how = VARIANTS[variant]
    reference, layer = make_pair("LSTM", dict(options, **layer_options, proj_size=3), DEVICE,
                                 seed=7)
    x = torch.randn(5, 3, 6, device=DEVICE, requires_grad=True)
    assert_matches_reference(reference, layer, x, lengths_of(3, 5), how, TOL32)


@pytest.mark.parametrize("columns", ["1", "2"])
@pytest.mark.parametrize("options", [{}, REGS], ids=["plain", "regs"])
def test_several_programs_and_blocks(options, columns, monkeypatch):
    """B = 20, H = 80, P = 70: two tiles, two blocks of H columns and two of P columns (the
    projection's sub-step splits its P columns as the cell's sub-step its H columns), two K
    blocks on either side; a tile's blocks in one program, or split over two."""
    monkeypatch.setenv("RNNLAB_TRITON_COLUMN_PROGRAMS", columns)
    assert column_programs(20, 80, torch.device(DEVICE))[0] == int(columns)
    reference, layer = make_pair("LSTM", dict(options, proj_size=70), DEVICE, input_size=80,
                                 hidden_size=80, seed=3)
    x = torch.randn(3, 20, 80, device=DEVICE, requires_grad=True)
    assert_matches_reference(reference, layer, x, lengths_of(20, 3), "lengths",
                             dict(atol=5e-5, rtol=5e-5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("options", [dict(REGS, peephole=True)], ids=["regs-peephole"])
def test_half_precision(options, dtype, monkeypatch):
    """Half-precision weights and inputs, float32 inside the kernels (``h̃_t`` rounded to the
    half type for the projection's tensor-core product, as ``h_t`` for the recurrent one),
    against the float32 reference on the same rounded weights and masks: a norm-wise relative
    error of a few units of the half type's rounding, as the other variants."""
    for name in ("keep_mask", "zone_mask"):
        draw = getattr(regularisers, name)
        monkeypatch.setattr(regularisers, name, lambda shape, p, like, generator=None, draw=draw:
                            draw(shape, p, like.float(), generator).to(like.dtype))
    reference, layer = make_pair("LSTM", dict(options, proj_size=3), DEVICE, dtype=dtype,
                                 seed=5)
    x = torch.randn(5, 3, 6, device=DEVICE).to(dtype).float().requires_grad_()
    rel = 8e-2 if dtype == torch.bfloat16 else 1e-2
    assert_matches_reference(reference, layer, x, lengths_of(3, 5), "lengths", rel, dtype)


def test_zoneout_expectation_in_eval_mode():
    """``zoneout_eval="expectation"``: the P-sized h and the H-sized c keep constant shares."""
    reference, layer = make_pair("LSTM", dict(zoneout=(0.3, 0.6), zoneout_eval="expectation",
                                              peephole=True, proj_size=3, num_layers=2), DEVICE)
    reference.eval(), layer.eval()
    x = torch.randn(5, 3, 6, device=DEVICE, requires_grad=True)
    assert_matches_reference(reference, layer, x, lengths_of(3, 5), "lengths", TOL32)


def test_inference_matches_training_forward():
    """Inference keeps one step's ``h̃_t`` (no gates): with the same masks, the same outputs as
    training's forward."""
    _, layer = make_pair("LSTM", dict(REGS, proj_size=3, num_layers=2), DEVICE, seed=2)
    x = torch.randn(4, 3, 6, device=DEVICE)
    lengths = torch.tensor([4, 2, 3])
    y_train, _ = layer(x, lengths=lengths)
    layer.generator.manual_seed(2)
    with torch.no_grad():
        y_infer, _ = layer(x, lengths=lengths)
    torch.testing.assert_close(y_infer, y_train.detach(), atol=0, rtol=0)


def test_second_derivatives_match_the_reference():
    """Under ``create_graph=True`` the backward hands over to the reference engine's autograd
    twin, ``weight_hr`` included."""
    reference, layer = make_pair("LSTM", dict(REGS, proj_size=3), DEVICE, seed=11)
    assert_second_derivatives_match(reference, layer, DEVICE)