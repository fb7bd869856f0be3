"""LSTM options torch does not have (peepholes, cell clipping, coupled gates): the hand BPTT
against autograd through a loop of the cell (the equations are the oracle), and gradcheck."""

import pytest
import torch
import torch.nn.functional as F

import rnnlab
from rnnlab.bptt.lstm import LSTMFunction, LSTMOptions
from rnnlab.cells.lstm import lstm_step

OPTIONS = {
    "peephole": dict(peephole=True),
    "clip": dict(cell_clip=0.3),
    "coupled": dict(coupled=True),
    "all": dict(peephole=True, cell_clip=0.3, coupled=True, proj_size=2),
}


def loop_oracle(layer, x, h0, c0, lengths):
    """Each sequence on its own length, through lstm_step under autograd, one layer, one way."""
    p = layer.cell_params(0, 0)
    outputs, hs, cs = [], [], []
    for b in range(x.shape[1]):
        h, c, ys = h0[0, b:b + 1], c0[0, b:b + 1], []
        for t in range(int(lengths[b])):
            h, c, _ = lstm_step(F.linear(x[t, b:b + 1], p["weight_ih"], p.get("bias_ih")), h, c,
                                p["weight_hh"], p.get("bias_hh"), peephole=p.get("peephole"),
                                cell_clip=layer.options.cell_clip, coupled=layer.options.coupled,
                                weight_hr=p.get("weight_hr"))
            ys.append(h)
        ys += [torch.zeros_like(h)] * (x.shape[0] - len(ys))
        outputs.append(torch.cat(ys))
        hs.append(h)
        cs.append(c)
    return torch.stack(outputs, 1), torch.cat(hs)[None], torch.cat(cs)[None]


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("variable_lengths", [False, True], ids=["full", "lengths"])
def test_bptt_matches_cell_loop(options, variable_lengths):
    T, B, I, H = 6, 3, 4, 5
    layer = rnnlab.LSTM(I, H, backend="reference", dtype=torch.float64, **options)
    P = layer.output_size
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True) * 2
    h0 = torch.randn(1, B, P, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, B, H, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4]) if variable_lengths else torch.full((B,), T)
    out, (h, c) = layer(x, (h0, c0), lengths=lengths)
    ref_out, ref_h, ref_c = loop_oracle(layer, x, h0, c0, lengths)
    for a, e in ((out, ref_out), (h, ref_h), (c, ref_c)):
        torch.testing.assert_close(a, e, atol=1e-10, rtol=1e-10)
    wrt = [x, h0, c0, *layer.parameters()]
    w = [torch.randn_like(t) for t in (out, h, c)]
    grads = torch.autograd.grad(sum((a * b).sum() for a, b in zip((out, h, c), w)), wrt)
    ref = torch.autograd.grad(sum((a * b).sum() for a, b in zip((ref_out, ref_h, ref_c), w)),
                              wrt, allow_unused=True)
    for a, e in zip(grads, ref):
        torch.testing.assert_close(a, torch.zeros_like(a) if e is None else e,
                                   atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("options", [{}, *OPTIONS.values()], ids=["plain", *OPTIONS.keys()])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "mask"])
def test_gradcheck(options, masked):
    T, B, I, H = 4, 2, 3, 3
    P = options.get("proj_size", 0)
    kw = dict(dtype=torch.float64, requires_grad=True)
    args = [
        torch.randn(T, B, I, **kw), torch.randn(B, P or H, **kw), torch.randn(B, H, **kw),
        torch.randn(4 * H, I, **kw), torch.randn(4 * H, P or H, **kw),
        torch.randn(4 * H, **kw), torch.randn(4 * H, **kw),
        torch.randn(3, H, **kw) if options.get("peephole") else None,
        torch.randn(P, H, **kw) if P else None,
    ]
    mask = (torch.arange(T)[:, None] < torch.tensor([4, 2])).unsqueeze(-1) if masked else None
    opts = LSTMOptions(cell_clip=options.get("cell_clip"), coupled=options.get("coupled", False))
    if opts.cell_clip is not None:
        # keep |c| away from the clip threshold, where the clamp has a kink
        opts = LSTMOptions(cell_clip=0.6, coupled=opts.coupled)
    assert torch.autograd.gradcheck(lambda *a: LSTMFunction.apply(*a, mask, opts), args)


def test_trace_reproduces_output():
    layer = rnnlab.LSTM(3, 4, peephole=True, dtype=torch.float64)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    out, (h, c) = layer(x)
    trace = layer.trace(x)
    assert set(trace[0]) == {"i", "f", "g", "o", "c", "h"}
    torch.testing.assert_close(trace[0]["h"], out)
    torch.testing.assert_close(trace[0]["c"][-1], c[0])
    torch.testing.assert_close(trace[0]["h"], trace[0]["o"] * trace[0]["c"].tanh())
