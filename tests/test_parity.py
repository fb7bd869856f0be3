"""rnnlab layers against torch.nn on the same weights: outputs, final states and every gradient
(parameters, input, initial states), for the reference and native backends, over a grid."""

import itertools

import pytest
import torch
from parity import FAMILIES, assert_matches_torch, make_input, make_pair

T, B, I, H = 5, 3, 4, 5

GRID = [
    dict(family=f, num_layers=L, bidirectional=bi, batch_first=bf, bias=bias, form=form,
         given_state=given, proj_size=proj)
    for f, L, bi, bf, bias, form, given, proj in itertools.product(
        FAMILIES, (1, 2, 3), (False, True), (False, True), (True, False),
        ("padded", "packed", "unbatched"), (False, True), (0, 3))
    if not (proj and f != "lstm") and not (bf and form == "unbatched")
]


def grid_id(c):
    return "-".join([c["family"], f"L{c['num_layers']}", "bi" if c["bidirectional"] else "uni",
                     "bf" if c["batch_first"] else "tf", "bias" if c["bias"] else "nobias",
                     c["form"], "h0" if c["given_state"] else "noh0", f"P{c['proj_size']}"])


def initial_state(family, reference, form, dtype):
    rows = reference.num_layers * (2 if reference.bidirectional else 1)
    batch = () if form == "unbatched" else (B,)
    out = getattr(reference, "proj_size", 0) or H
    h0 = torch.randn(rows, *batch, out, dtype=dtype, requires_grad=True)
    if family == "lstm":
        c0 = torch.randn(rows, *batch, H, dtype=dtype, requires_grad=True)
        return (h0, c0), [h0, c0]
    return h0, [h0]


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_matches_torch(case, dtype, backend):
    kw = dict(input_size=I, hidden_size=H, num_layers=case["num_layers"], bias=case["bias"],
              batch_first=case["batch_first"], bidirectional=case["bidirectional"])
    if case["proj_size"]:
        kw["proj_size"] = case["proj_size"]
    reference, layer = make_pair(case["family"], backend, dtype, **kw)
    x, leaf = make_input(case["form"], T, B, I, case["batch_first"], dtype)
    hx, state_leaves = (initial_state(case["family"], reference, case["form"], dtype)
                        if case["given_state"] else (None, []))
    assert_matches_torch(reference, layer, x, hx, [leaf, *state_leaves], dtype)
