"""SequenceModel: every task shape and cell, the exposed layers, hidden_states."""

import pytest
import torch

from rnnlab.lab.model import CELLS, SequenceModel
from rnnlab.lab.tasks import make_task

SHAPE_TASKS = {"many-to-one": ("adding", {"seq_len": 6}), "one-to-one": ("digits-flat", {}),
               "many-to-many": ("future", {"seq_len": 6}), "one-to-many": ("digit-draw", {}),
               "seq2seq": ("reverse", {"seq_len": 5})}


def _batch(task, B=3):
    return task.batch("train", B, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", sorted(SHAPE_TASKS))
def test_prediction_shapes_and_loss(cell, shape):
    name, options = SHAPE_TASKS[shape]
    task = make_task(name, **options)
    model = SequenceModel(cell, task, 8)
    x, y = _batch(task)
    pred = model(x, y)
    if task.target == "class":
        assert pred.shape == (*y.shape, task.output_size)
    else:
        assert pred.shape == y.shape
    task.loss(pred, y).backward()
    assert all(p.grad is not None for p in model.rnn.parameters())
    assert type(model.rnn).__module__.startswith("rnnlab.layers")
    if shape == "seq2seq":  # greedy decoding without targets has the same shape
        assert model(x).shape == pred.shape
        assert type(model.decoder).__module__.startswith("rnnlab.layers")


def test_bidirectional_reads_both_ends_and_is_refused_on_causal_tasks():
    task = make_task("adding", seq_len=5)
    model = SequenceModel("gru", task, 4, num_layers=2, bidirectional=True)
    assert model.rnn.bidirectional and model.head.in_features == 8
    x, _ = _batch(task)
    x2 = x.clone()
    x2[0] += 1.0  # the first step reaches the readout through the backward direction directly
    assert not torch.equal(model(x), model(x2))
    with pytest.raises(ValueError, match="bidirectional"):
        SequenceModel("lstm", make_task("charlm", seq_len=5), 4, bidirectional=True)
    with pytest.raises(ValueError, match="cell"):
        SequenceModel("tcn", task, 4)
    with pytest.raises(ValueError, match="hidden_size"):
        SequenceModel("lstm", task, 0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_hidden_states_match_forward_and_carry_total_gradients(cell, layers, bidirectional):
    task = make_task("adding", seq_len=12)
    model = SequenceModel(cell, task, 6, num_layers=layers, bidirectional=bidirectional)
    x, y = _batch(task)
    hs = model.hidden_states(x, y)
    torch.testing.assert_close(hs.pred, model(x, y), rtol=1e-5, atol=1e-6)
    assert len(hs.h) == (2 if bidirectional else 1) and len(hs.h[0]) == 12
    assert hs.h[0][0].shape == (3, 6)
    assert (hs.c is None) == (cell in ("rnn", "gru", "mingru", "minlstm"))
    loss = task.loss(hs.pred, y)
    recurrent = hs.c[0] if cell == "sru" else hs.h[0]
    grads = torch.autograd.grad(loss, recurrent, materialize_grads=True)
    # the loss reads only the last step, so reaching step 0 needs the path through time
    assert grads[0].abs().sum() > 0
    # and the parameter gradients are those of the ordinary forward
    g_unrolled = torch.autograd.grad(task.loss(model.hidden_states(x, y).pred, y),
                                     list(model.rnn.parameters()), allow_unused=True)
    g_forward = torch.autograd.grad(task.loss(model(x, y), y), list(model.rnn.parameters()),
                                    allow_unused=True)
    for a, b in zip(g_unrolled, g_forward):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_hidden_states_show_the_tanh_rnn_gradient_vanishing():
    task = make_task("adding", seq_len=60)
    x, y = _batch(task, 16)
    norms = {}
    for cell in ("rnn", "lstm"):
        torch.manual_seed(0)
        model = SequenceModel(cell, task, 32)
        hs = model.hidden_states(x, y)
        grads = torch.autograd.grad(task.loss(hs.pred, y), hs.h[0])
        norms[cell] = float(grads[0].norm() / grads[-1].norm())
    assert norms["rnn"] < 1e-4  # orders of magnitude lost over 60 steps at initialisation


def test_hidden_states_leave_the_rng_and_parameters_alone():
    task = make_task("future", seq_len=5)
    model = SequenceModel("lstm", task, 4, num_layers=2)
    names = [n for n, _ in model.named_parameters()]
    state = torch.get_rng_state()
    model.hidden_states(*_batch(task))
    assert torch.equal(state, torch.get_rng_state())
    assert [n for n, _ in model.named_parameters()] == names


def test_parameter_counts():
    task = make_task("adding", seq_len=5)
    model = SequenceModel("lstm", task, 10)
    assert model.recurrent_parameter_count() == 4 * 10 * (2 + 10 + 2)
    assert model.parameter_count() == model.recurrent_parameter_count() + 10 + 1
