"""Layer API beyond the forward: torch conversion, initial-state policies, backend choice."""

import pytest
import torch

import rnnlab
from rnnlab.backends import select_backend
from rnnlab.layers.sequence import Batch


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_from_torch_and_back(name):
    theirs = getattr(torch.nn, name)(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    ours = getattr(rnnlab, name).from_torch(theirs)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    back = ours.to_torch()
    assert type(back) is type(theirs)
    for (k, v), (k2, v2) in zip(back.state_dict().items(), theirs.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_from_torch_keeps_relu_and_projection():
    rnn = rnnlab.RNN.from_torch(torch.nn.RNN(3, 4, nonlinearity="relu"))
    assert rnn.nonlinearity == "relu"
    lstm = rnnlab.LSTM.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    assert lstm.proj_size == 2 and lstm.weight_hr_l0.shape == (2, 4)


def test_initial_state_zeros_is_default():
    lstm = rnnlab.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    zeros = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))
    torch.testing.assert_close(lstm(x)[0], lstm(x, zeros)[0])


def test_initial_state_random_draws_from_global_rng():
    gru = rnnlab.GRU(3, 4, initial_state="random")
    x = torch.randn(5, 2, 3)
    torch.manual_seed(1)
    a = gru(x)[0]
    torch.manual_seed(1)
    b = gru(x)[0]
    c = gru(x)[0]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_initial_state_learned_is_trained():
    lstm = rnnlab.LSTM(3, 4, num_layers=2, initial_state="learned")
    assert lstm.initial_h.shape == (2, 4) and lstm.initial_c.shape == (2, 4)
    out, _ = lstm(torch.randn(5, 2, 3))
    out.sum().backward()
    assert lstm.initial_h.grad.abs().sum() > 0 and lstm.initial_c.grad.abs().sum() > 0
    with torch.no_grad():
        lstm.initial_h.fill_(0.3)
    x = torch.randn(5, 2, 3)
    given = (torch.full((2, 2, 4), 0.3), torch.zeros(2, 2, 4))
    torch.testing.assert_close(lstm(x)[0], lstm(x, given)[0])


def test_auto_prefers_native_and_falls_back_to_reference():
    x = Batch(torch.randn(4, 2, 3))
    assert select_backend(rnnlab.LSTM(3, 4), x).name != "reference"
    assert select_backend(rnnlab.LSTM(3, 4, peephole=True), x).name != "native"
    assert select_backend(rnnlab.LSTM(3, 4, backend="reference"), x).name == "reference"


def test_dropout_between_layers_only_in_training():
    lstm = rnnlab.LSTM(3, 4, num_layers=2, dropout=0.5, backend="reference")
    x = torch.randn(5, 2, 3)
    lstm.eval()
    torch.testing.assert_close(lstm(x)[0], lstm(x)[0])
    lstm.train()
    torch.manual_seed(0)
    a = lstm(x)[0]
    torch.manual_seed(0)
    torch.testing.assert_close(a, lstm(x)[0])
    assert not torch.allclose(a, lstm(x)[0])
