"""The ``triton`` engine's variants against the reference engine with equal generators:
non-default activations, recurrent dropout, zoneout (and its eval-mode expectation), weight
dropout and layer norm, alone and combined, forward and BPTT (outputs, final states, every
gradient). Sizes are tiny: under the Triton interpreter every program runs in Python."""

from __future__ import annotations

import pytest
import torch
from triton_pairs import DEVICE, TOL32, assert_matches_reference, lengths_of, make_pair

ACTS = dict(gate_activation=("hard_sigmoid", 0.3, 0.45), activation=("scaled_tanh", 1.3, 0.8),
            output_activation="softsign")
VARIANTS = {  # id: (family, options, layers and input form)
    "lstm-acts": ("LSTM", ACTS, "L2-bi-packed"),
    "lstm-acts-peephole-coupled": ("LSTM", dict(ACTS, peephole=True, coupled=True),
                                   "L1-lengths"),
    "lstm-elu-clip": ("LSTM", dict(activation=("elu", 0.7), cell_clip=0.4), "L2-bf-nobias"),
    "gru-acts": ("GRU", dict(gate_activation="softsign", activation=("leaky_relu", 0.1)),
                 "L2-bi-packed"),
    "gru-reset-before-acts": ("GRU", dict(ACTS, reset_after=False, output_activation=None),
                              "L2-bf-nobias"),
}
LAYERS = {  # id: (layer options, how the input is given)
    "L1-lengths": ({}, "lengths"),
    "L2-bi-packed": ({"num_layers": 2, "bidirectional": True}, "packed"),
    "L2-bf-nobias": ({"num_layers": 2, "batch_first": True, "bias": False}, "padded"),
}


def _options(options):
    return {k: v for k, v in options.items() if v is not None}


@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_reference(variant):
    family, options, layer_id = VARIANTS[variant]
    layer_options, how = LAYERS[layer_id]
    reference, layer = make_pair(family, {**_options(options), **layer_options}, DEVICE, seed=7)
    x = torch.randn(5, 3, 6, device=DEVICE, requires_grad=True)
    assert_matches_reference(reference, layer, x, lengths_of(3, 5), how, TOL32)
