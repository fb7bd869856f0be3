"""Truncated BPTT: chunked forward equals the full sequence; each chunk's gradient equals the
full-sequence gradient with the state detached at chunk boundaries; Keras-style statefulness."""

import pytest
import torch

import rnnlab
from rnnlab.tbptt import StatefulRNN, TruncatedBPTT, detach_state

T, B, I, H = 11, 3, 2, 4


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


LAYERS = {
    "lstm-native": lambda bf: rnnlab.LSTM(I, H, num_layers=2, batch_first=bf, backend="native"),
    "lstm-reference": lambda bf: rnnlab.LSTM(I, H, peephole=True, batch_first=bf,
                                             backend="reference"),
    "gru": lambda bf: rnnlab.GRU(I, H, batch_first=bf, reset_after=False),
    "rnn": lambda bf: rnnlab.RNN(I, H, num_layers=2, batch_first=bf, backend="reference"),
    "sru": lambda bf: rnnlab.SRU(I, H, batch_first=bf),
    "torch-lstm": lambda bf: torch.nn.LSTM(I, H, batch_first=bf),
}


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("chunk", [1, 4, 11, 20])
def test_chunked_forward_equals_full_sequence(name, batch_first, chunk):
    layer = LAYERS[name](batch_first)
    x = torch.randn(B, T, I) if batch_first else torch.randn(T, B, I)
    with torch.no_grad():
        out, state = layer(x)
        tb = TruncatedBPTT(layer, chunk)
        pieces = list(tb.chunks(x))
    assert [p.start for p in pieces] == list(range(0, T, chunk))
    dim = 1 if batch_first else 0
    torch.testing.assert_close(torch.cat([p.output for p in pieces], dim), out)
    for a, b in zip(as_tuple(pieces[-1].state), as_tuple(state)):
        torch.testing.assert_close(a, b)
    for a, b in zip(as_tuple(tb.state), as_tuple(state)):
        torch.testing.assert_close(a, b)
        assert a.grad_fn is None


def full_sequence_with_detach(cell_step, x, boundaries, state):
    """The full-sequence computation, one step at a time, with the state detached at
    ``boundaries``."""
    outs = []
    for t in range(x.shape[0]):
        if t in boundaries:
            state = detach_state(state)
        state = cell_step(x[t], state)
        outs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outs), state


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("chunk", [3, 5])
def test_chunk_gradients_equal_detached_full_sequence(backend, chunk):
    lstm = rnnlab.LSTM(I, H, backend=backend)
    cell = torch.nn.LSTMCell(I, H)  # independent step-by-step computation, same weights
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(lstm, name + "_l0"))
    x = torch.randn(T, B, I)
    target = torch.randn(T, B, H)
    boundaries = set(range(chunk, T, chunk))

    def loss_of(out, tgt):
        return ((out - tgt) ** 2).sum()

    # the helper: backward chunk by chunk, gradients accumulate over chunks
    per_chunk = []
    for piece in TruncatedBPTT(lstm, chunk).chunks(x, target):
        lstm.zero_grad()
        loss_of(piece.output, piece.targets[0]).backward()
        per_chunk.append([p.grad.clone() for p in lstm.parameters()])
    # the reference: one loss over the whole sequence, state detached at the boundaries
    out, _ = full_sequence_with_detach(lambda xt, s: cell(xt, s), x, boundaries,
                                       (torch.zeros(B, H), torch.zeros(B, H)))
    total = loss_of(out, target)
    expected = torch.autograd.grad(total, list(cell.parameters()), retain_graph=True)
    summed = [sum(g[j] for g in per_chunk) for j in range(4)]
    for a, b in zip(summed, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # chunk j alone: the gradient of its own loss in the detached full computation
    start = max(b for b in [0, *boundaries] if b < T)
    last = loss_of(out[start:], target[start:])
    expected_last = torch.autograd.grad(last, list(cell.parameters()))
    for a, b in zip(per_chunk[-1], expected_last):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and truncation did cut something: full BPTT differs
    out_full, _ = full_sequence_with_detach(lambda xt, s: cell(xt, s), x, set(),
                                            (torch.zeros(B, H), torch.zeros(B, H)))
    full = torch.autograd.grad(loss_of(out_full, target), list(cell.parameters()))
    assert not torch.allclose(full[1], expected[1], atol=1e-4)


def test_whole_forward_and_carry_over_batches():
    gru = rnnlab.GRU(I, H, num_layers=2)
    x = torch.randn(2 * T, B, I)
    tb = TruncatedBPTT(gru, 4)
    out1, _ = tb(x[:T])
    out2, h = tb(x[T:])  # the second batch continues the stream
    with torch.no_grad():
        ref, ref_h = gru(x)
    torch.testing.assert_close(torch.cat([out1, out2]), ref)
    torch.testing.assert_close(h, ref_h)
    tb.reset()
    assert tb.state is None
    with pytest.raises(ValueError, match="chunk"):
        TruncatedBPTT(gru, 0)
    with pytest.raises(ValueError, match="targets"):
        next(TruncatedBPTT(gru, 4).chunks(x, torch.randn(3, B, 1)))


@pytest.mark.parametrize("name", ["lstm-native", "gru", "sru", "torch-lstm"])
def test_stateful_carries_state_like_one_long_call(name):
    layer = LAYERS[name](True)
    stateful = StatefulRNN(layer)
    x = torch.randn(B, T, I)
    outs = [stateful(x[:, s:s + 4])[0] for s in range(0, T, 4)]
    with torch.no_grad():
        ref, ref_state = layer(x)
    torch.testing.assert_close(torch.cat(outs, 1), ref)
    for a, b in zip(as_tuple(stateful.state), as_tuple(ref_state)):
        torch.testing.assert_close(a, b)
        assert a.grad_fn is None and not a.requires_grad
    # the graph of a call stops at its start
    out, _ = stateful(x[:, :2])
    out.sum().backward()
    stateful.reset_state()
    assert stateful.state is None
    torch.testing.assert_close(stateful(x)[0], ref)


def test_stateful_partial_reset_and_errors():
    lstm = rnnlab.LSTM(I, H, initial_state="learned")
    with torch.no_grad():
        lstm.initial_h.normal_()
        lstm.initial_c.normal_()
    stateful = StatefulRNN(lstm)
    x = torch.randn(T, B, I)
    stateful(x)
    before = tuple(s.clone() for s in stateful.state)
    stateful.reset_state([1])
    h, c = stateful.state
    torch.testing.assert_close(h[:, 1], lstm.initial_h.detach())
    torch.testing.assert_close(c[:, 1], lstm.initial_c.detach())
    torch.testing.assert_close(h[:, [0, 2]], before[0][:, [0, 2]])
    # row 1 now runs as a fresh stream
    out, _ = stateful(x)
    with torch.no_grad():
        fresh, _ = lstm(x[:, 1:2])
    torch.testing.assert_close(out[:, 1:2], fresh)
    stateful.reset_state(torch.tensor([True, False, False]))
    torch.testing.assert_close(stateful.state[0][:, 0], lstm.initial_h.detach())
    with pytest.raises(ValueError, match="batch size 2 differs.*reset_state"):
        stateful(torch.randn(T, 2, I))
    with pytest.raises(ValueError, match="bidirectional"):
        StatefulRNN(rnnlab.GRU(I, H, bidirectional=True))


def test_stateful_with_lengths_keeps_last_valid_state():
    gru = rnnlab.GRU(I, H)
    stateful = StatefulRNN(gru)
    x = torch.randn(T, B, I)
    lengths = torch.tensor([T, 5, 2])
    _, h = stateful(x, lengths=lengths)
    with torch.no_grad():
        _, h1 = gru(x[:5, 1:2])
    torch.testing.assert_close(stateful.state[:, 1:2], h1)
    assert h.requires_grad and not stateful.state.requires_grad
