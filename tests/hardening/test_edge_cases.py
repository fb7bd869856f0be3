"""Well-formed edge cases next to the hardened boundary: they still run and give the right
result. T = 1, B = 1 and unbatched inputs against the reference engine; B = 0; ``lengths`` as a
list, tuple, tensor or numpy array against the PackedSequence path; float16 / bfloat16 on the
CPU against float32; the meta device; cells unbatched, with an empty batch and of size 0 (as
torch's cells)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

import rnnlab

LAYERS = {"RNN": rnnlab.RNN, "LSTM": rnnlab.LSTM, "GRU": rnnlab.GRU, "SRU": rnnlab.SRU,
          "MinGRU": rnnlab.MinGRU, "MinLSTM": rnnlab.MinLSTM}
CELLS = {"RNNCell": rnnlab.RNNCell, "LSTMCell": rnnlab.LSTMCell, "GRUCell": rnnlab.GRUCell,
         "SRUCell": rnnlab.SRUCell, "LayerNormLSTMCell": rnnlab.LayerNormLSTMCell,
         "MinGRUCell": rnnlab.MinGRUCell, "MinLSTMCell": rnnlab.MinLSTMCell}
CONTAINERS = [list, tuple, torch.tensor, lambda v: torch.tensor(v, dtype=torch.int32),
              np.array]


def make(family: str, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    return LAYERS[family](3, 4, dtype=dtype, **kwargs)


def tensors(result) -> list[torch.Tensor]:
    """``(output, h_n)`` or ``(output, (h_n, c_n))`` as a flat list."""
    out, state = result
    return [out, *(state if isinstance(state, tuple) else (state,))]


@pytest.mark.parametrize("family", sorted(LAYERS))
@pytest.mark.parametrize(("T", "B"), [(1, 1), (1, 3), (4, 1)])
def test_single_step_and_single_sequence_match_the_reference_engine(family, T, B):
    layer = make(family, num_layers=2, bidirectional=True)
    reference = make(family, num_layers=2, bidirectional=True, backend="reference")
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(T, B, 3, dtype=torch.float64)
    for a, e in zip(tensors(layer(x)), tensors(reference(x))):
        torch.testing.assert_close(a, e)
    unbatched = tensors(layer(x[:, 0]))
    for a, e in zip(unbatched, tensors(layer(x[:, :1]))):
        torch.testing.assert_close(a, e.squeeze(1))


@pytest.mark.parametrize("family", sorted(LAYERS))
@pytest.mark.parametrize("lengths", [None, [], torch.tensor([], dtype=torch.int64)])
def test_an_empty_batch_gives_empty_outputs(family, lengths):
    layer = make(family, num_layers=2, bidirectional=True)
    out, *states = tensors(layer(torch.randn(5, 0, 3, dtype=torch.float64), lengths=lengths))
    assert out.shape == (5, 0, 8)
    assert all(s.shape == (4, 0, 4) for s in states)


@settings(max_examples=40, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(sorted(LAYERS)), T=st.integers(1, 5), data=st.data(),
       num_layers=st.integers(1, 2), bidirectional=st.booleans(), batch_first=st.booleans())
def test_lengths_in_every_container_give_the_packed_result(family, T, data, num_layers,
                                                           bidirectional, batch_first):
    B = data.draw(st.integers(1, 4))
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    layer = make(family, num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=batch_first)
    x = torch.randn((B, T, 3) if batch_first else (T, B, 3), dtype=torch.float64)
    results = [tensors(layer(x, lengths=to(lengths))) for to in CONTAINERS]
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            torch.testing.assert_close(a, e, rtol=0, atol=0)
    packed = rnnlab.pack_padded_sequence(x, lengths, batch_first=batch_first,
                                         enforce_sorted=False)
    out, *states = tensors(layer(packed))
    out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    time_dim = int(batch_first)
    steps = torch.arange(T).unsqueeze(1 - time_dim)
    valid = (steps < torch.tensor(lengths).unsqueeze(time_dim)).unsqueeze(-1)
    expected_out, *expected_states = results[0]
    torch.testing.assert_close(out * valid, expected_out * valid)
    for a, e in zip(states, expected_states):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("family", sorted(LAYERS))
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float16, 1e-2), (torch.bfloat16, 5e-2)])
def test_half_precision_on_the_cpu_matches_float32(family, dtype, atol):
    single = make(family, dtype=torch.float32, num_layers=2)
    half = make(family, dtype=dtype, num_layers=2)
    half.load_state_dict(single.state_dict())
    x = torch.randn(5, 2, 3)
    for lengths in (None, [5, 3]):
        results = tensors(half(x.to(dtype), lengths=lengths))
        for a, e in zip(results, tensors(single(x, lengths=lengths))):
            assert a.dtype == dtype
            torch.testing.assert_close(a.float(), e, rtol=0, atol=atol)


@pytest.mark.parametrize("family", sorted(LAYERS))
def test_the_meta_device_gives_shapes(family):
    layer = make(family, dtype=torch.float32, device="meta", num_layers=2, bidirectional=True)
    x = torch.empty(5, 2, 3, device="meta")
    for lengths in (None, [5, 2]):
        out, *states = tensors(layer(x, lengths=lengths))
        assert out.is_meta and out.shape == (5, 2, 8)
        assert all(s.is_meta and s.shape == (4, 2, 4) for s in states)
    packed = PackedSequence(torch.empty(7, 3, device="meta"), torch.tensor([2, 2, 1, 1, 1]))
    out, *_ = tensors(layer(packed))
    assert out.data.is_meta and out.data.shape == (7, 8)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cells_unbatched_and_empty_batch(name):
    torch.manual_seed(0)
    cell = CELLS[name](3, 4, dtype=torch.float64)
    as_tuple = lambda out: out if isinstance(out, tuple) else (out,)
    x = torch.randn(2, 3, dtype=torch.float64)
    out = cell(x)
    state = out[1] if name == "SRUCell" else out  # the SRU cell returns (h, c) and takes c
    row = tuple(s[0] for s in state) if isinstance(state, tuple) else state[0]
    for a, e in zip(as_tuple(cell(x, state)), as_tuple(cell(x[0], row))):
        torch.testing.assert_close(a[0], e)
    empty = as_tuple(cell(torch.randn(0, 3, dtype=torch.float64)))
    assert all(s.shape == (0, 4) for s in empty)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize(("input_size", "hidden_size"), [(3, 0), (0, 2)])
def test_cells_of_size_zero_work_as_torch_cells(name, input_size, hidden_size):
    out = CELLS[name](input_size, hidden_size)(torch.randn(2, input_size))
    assert all(s.shape == (2, hidden_size) for s in (out if isinstance(out, tuple) else (out,)))
