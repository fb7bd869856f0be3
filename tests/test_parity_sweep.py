"""Property-based sweep: random sizes and options, rnnlab (every backend) vs torch.nn."""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parity import FAMILIES, assert_same, loss_of, make_input, make_pair, output_tensors

configs = st.fixed_dictionaries({
    "family": st.sampled_from(sorted(FAMILIES)),
    "backend": st.sampled_from(["reference", "native"]),
    "T": st.integers(1, 7), "B": st.integers(1, 5), "I": st.integers(1, 6),
    "H": st.integers(2, 6), "num_layers": st.integers(1, 3),
    "bidirectional": st.booleans(), "batch_first": st.booleans(), "bias": st.booleans(),
    "form": st.sampled_from(["padded", "packed", "unbatched"]),
    "proj": st.booleans(),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=configs, seed=st.integers(0, 2**16))
def test_random_configurations_match_torch(c, seed):
    torch.manual_seed(seed)
    kw = dict(input_size=c["I"], hidden_size=c["H"], num_layers=c["num_layers"], bias=c["bias"],
              batch_first=c["batch_first"], bidirectional=c["bidirectional"])
    if c["proj"] and c["family"] == "lstm":
        kw["proj_size"] = c["H"] - 1
    dtype = torch.float64
    reference, layer = make_pair(c["family"], c["backend"], dtype, **kw)
    x, leaf = make_input(c["form"], c["T"], c["B"], c["I"], c["batch_first"], dtype)
    expected, actual = output_tensors(reference(x)), output_tensors(layer(x))
    for a, e in zip(actual, expected):
        assert_same(a, e, dtype, "forward")
    params = list(reference.parameters())
    eg = torch.autograd.grad(loss_of(expected), [leaf, *params], retain_graph=True)
    ag = torch.autograd.grad(loss_of(actual), [leaf, *layer.parameters()])
    for a, e in zip(ag, eg):
        assert_same(a, e, dtype, "gradient")
