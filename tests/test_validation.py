"""Bad input gets a clear ValueError/TypeError that names the argument."""

import pytest
import torch

import rnnlab
from rnnlab import pack_padded_sequence


@pytest.fixture
def lstm():
    return rnnlab.LSTM(4, 5, num_layers=2)


def raises(exc, match):
    return pytest.raises(exc, match=match)


def test_input_rank(lstm):
    with raises(ValueError, r"input: expected a 3-D .* got 4-D"):
        lstm(torch.randn(2, 3, 4, 5))
    with raises(ValueError, r"input: expected a 3-D .* got 1-D"):
        lstm(torch.randn(4))


def test_input_feature_size(lstm):
    with raises(ValueError, r"input: expected feature size input_size=4, got 7"):
        lstm(torch.randn(3, 2, 7))


def test_input_type_and_dtype(lstm):
    with raises(TypeError, r"input: expected a Tensor or PackedSequence"):
        lstm([[1.0] * 4])
    with raises(TypeError, r"input: dtype torch.float64 does not match"):
        lstm(torch.randn(3, 2, 4, dtype=torch.float64))
    with raises(TypeError, r"input: expected a floating-point tensor"):
        lstm(torch.ones(3, 2, 4, dtype=torch.int64))


def test_input_device(lstm):
    with raises(ValueError, r"input: on device meta"):
        lstm(torch.randn(3, 2, 4, device="meta"))


def test_empty_sequence(lstm):
    with raises(ValueError, r"input: the sequence length must be at least 1"):
        lstm(torch.randn(0, 2, 4))


def test_state_shapes(lstm):
    x = torch.randn(3, 2, 4)
    with raises(ValueError, r"h0: expected shape \(2, 2, 5\), got \(1, 2, 5\)"):
        lstm(x, (torch.zeros(1, 2, 5), torch.zeros(2, 2, 5)))
    with raises(ValueError, r"c0: expected shape \(2, 2, 5\)"):
        lstm(x, (torch.zeros(2, 2, 5), torch.zeros(2, 3, 5)))
    with raises(TypeError, r"hx: expected a tuple \(h_0, c_0\)"):
        lstm(x, torch.zeros(2, 2, 5))
    with raises(TypeError, r"c0: dtype torch.float64 does not match"):
        lstm(x, (torch.zeros(2, 2, 5), torch.zeros(2, 2, 5, dtype=torch.float64)))
    with raises(ValueError, r"h0: expected shape \(2, 5\)"):
        lstm(torch.randn(3, 4), (torch.zeros(2, 2, 5), torch.zeros(2, 5)))


def test_lengths(lstm):
    x = torch.randn(3, 2, 4)
    with raises(ValueError, r"lengths: every length must be in \[1, 3\]"):
        lstm(x, lengths=[4, 2])
    with raises(ValueError, r"lengths: every length must be in \[1, 3\]"):
        lstm(x, lengths=[0, 2])
    with raises(ValueError, r"lengths: expected shape \(2,\)"):
        lstm(x, lengths=[3, 2, 1])
    with raises(TypeError, r"lengths: expected integers"):
        lstm(x, lengths=[3.0, 2.0])
    packed = pack_padded_sequence(x, [3, 2])
    with raises(ValueError, r"lengths: not allowed with a PackedSequence"):
        lstm(packed, lengths=[3, 2])


def test_pack_padded_sequence_checks():
    x = torch.randn(3, 2, 4)
    with raises(ValueError, r"lengths: must be sorted in decreasing order"):
        pack_padded_sequence(x, [2, 3], enforce_sorted=True)
    with raises(ValueError, r"lengths: every length must be in \[1, 3\]"):
        pack_padded_sequence(x, [5, 3], enforce_sorted=False)
    assert pack_padded_sequence(x, [2, 3], enforce_sorted=False).data.shape == (5, 4)


def test_constructor_arguments():
    with raises(ValueError, r"hidden_size"):
        rnnlab.LSTM(4, 0)
    with raises(TypeError, r"input_size: expected an int"):
        rnnlab.LSTM(4.0, 3)
    with raises(ValueError, r"dropout: expected a number in \[0, 1\]"):
        rnnlab.LSTM(4, 3, dropout=1.5)
    with raises(ValueError, r"proj_size: expected 0 or 0 < proj_size < hidden_size=3"):
        rnnlab.LSTM(4, 3, proj_size=3)
    with raises(ValueError, r"backend: expected one of"):
        rnnlab.LSTM(4, 3, backend="cudnn")
    with raises(ValueError, r"initial_state: expected one of"):
        rnnlab.LSTM(4, 3, initial_state="ones")
    with raises(ValueError, r"cell_clip: expected a positive number"):
        rnnlab.LSTM(4, 3, cell_clip=-1.0)
    with raises(TypeError, r"peephole"):
        rnnlab.LSTM(4, 3, peepholes=True)


def test_native_backend_refuses_options_torch_lacks():
    with raises(ValueError, r"backend: 'native' cannot run this configuration: .*peephole"):
        rnnlab.LSTM(4, 3, peephole=True, backend="native")
    with raises(ValueError, r"to_torch: torch.nn has no equivalent.*coupled"):
        rnnlab.LSTM(4, 3, coupled=True).to_torch()


def test_from_torch_checks_type():
    with raises(TypeError, r"module: expected torch.nn.LSTM, got GRU"):
        rnnlab.LSTM.from_torch(torch.nn.GRU(3, 4))
