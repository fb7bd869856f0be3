"""What the Triton engine's tests share: a reference layer and a triton layer with the same
weights (and equal mask generators), and the comparison of their outputs, final states and
every gradient."""

from __future__ import annotations

import torch
from parity import assert_same, loss_of, run_layer

import rnnlab

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL32 = dict(atol=2e-5, rtol=2e-5)


def make_pair(family, options, device, dtype=torch.float32, input_size=6, hidden_size=8,
              seed=None):
    """The reference layer (float32) and the triton layer with the same weights in ``dtype``.
    ``seed``: each layer gets its own generator seeded with it, so both draw the same
    regulariser masks."""
    def build(backend, dtype):
        generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
        return getattr(rnnlab, family)(input_size, hidden_size, **options, backend=backend,
                                       device=device, dtype=dtype, generator=generator)

    reference = build("reference", torch.float32)
    with torch.no_grad():  # peepholes start at 0 and layer-norm gains at 1: values that matter
        for name, p in reference.named_parameters():
            if name.startswith("peephole"):
                p.normal_(0.0, 0.5)
            elif name.startswith("ln_"):
                p.uniform_(0.5, 1.5) if "weight" in name else p.normal_(0.0, 0.3)
    layer = build("triton", dtype)
    layer.load_state_dict(reference.state_dict())
    if dtype != torch.float32:  # compare with the reference on the rounded weights
        reference.load_state_dict(layer.state_dict())
    return reference, layer


def initial_states(layer, B, device):
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    states = [torch.randn(rows, B, size, device=device, requires_grad=True)
              for size in layer.state_sizes()]
    return states, states[0] if len(states) == 1 else tuple(states)


def assert_close_normwise(actual, expected, rel: float, what: str):
    """``‖actual - expected‖ ≤ rel·‖expected‖``: a relative error of the whole tensor, the
    measure for half-precision results, whose rounding a layer norm's gradient amplifies in
    single elements (by cancellation) the same way in every engine."""
    err = (actual - expected).norm() / expected.norm().clamp_min(1e-12)
    assert err <= rel, f"{what}: relative error {err:.3g} > {rel}"


def assert_matches_reference(reference, layer, x, lengths, how, tol, dtype=torch.float32):
    """Outputs, final states and the gradients of x, h0/c0 and every parameter: element-wise
    within ``tol`` (a dict of ``atol``, ``rtol``), or norm-wise within ``tol`` (a float, see
    :func:`assert_close_normwise`)."""
    def check(a, e, what):
        if isinstance(tol, float):
            assert_close_normwise(a, e, tol, what)
        else:
            assert_same(a, e, torch.float32, what, tol)

    states, hx = initial_states(layer, x.shape[1], x.device)
    expected = run_layer(reference, x, hx, lengths, how)
    x_low = x.detach().to(dtype).requires_grad_()
    hx_low = tuple(s.detach().to(dtype).requires_grad_() for s in states)
    actual = run_layer(layer, x_low, hx_low[0] if len(hx_low) == 1 else hx_low, lengths, how)
    for k, (a, e) in enumerate(zip(actual, expected)):
        check(a.float(), e, "output" if k == 0 else f"state {k - 1}")
    names = ["input", *(f"initial state {k}" for k in range(len(states))),
             *(n for n, _ in layer.named_parameters())]
    expected_grads = torch.autograd.grad(loss_of(expected),
                                         [x, *states, *reference.parameters()])
    actual_grads = torch.autograd.grad(loss_of([a.float() for a in actual]),
                                       [x_low, *hx_low, *layer.parameters()])
    for name, a, e in zip(names, actual_grads, expected_grads):
        check(a.float(), e, f"grad {name}")


def lengths_of(B, T):
    """Random lengths in 1..T, the first sequence full."""
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    return lengths


def assert_second_derivatives_match(reference, layer, device):
    """Under ``create_graph=True`` the triton engine's backward hands over to the reference
    engine's autograd twin (with the same masks): a gradient penalty's gradients equal the
    reference engine's, to float32 rounding on each tensor's scale."""
    x = torch.randn(4, 3, 6, device=device)
    grads = []
    for m in (reference, layer):
        xs = x.clone().requires_grad_()
        out, _ = m(xs, lengths=torch.tensor([4, 2, 3]))
        first = torch.autograd.grad(out.sin().sum(), [xs, *m.parameters()], create_graph=True)
        penalty = sum(g.square().sum() for g in first)
        grads.append(torch.autograd.grad(penalty, [xs, *m.parameters()]))
    for a, b in zip(grads[1], grads[0], strict=True):
        scale = b.abs().max().item()
        assert_same(a, b, torch.float32, "second-order gradient",
                    dict(atol=TOL32["atol"] * max(scale, 1.0), rtol=TOL32["rtol"]))
