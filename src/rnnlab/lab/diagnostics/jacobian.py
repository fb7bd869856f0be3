"""Step Jacobians ∂s_t/∂s_{t−1} and their singular values.

The product of these Jacobians over k < t ≤ T is what carries ∂L/∂s_T back to s_k: singular
values below 1 at every step make gradients vanish geometrically, above 1 they can explode
(Bengio et al. 1994; Pascanu et al. 2013). For a tanh RNN the Jacobian is
``diag(1 − h_t²) W_hh``; for gated cells it includes the gates' own derivatives, and the
LSTM's cell path contributes ``diag(f_t)``, near the identity when the forget gate is open.

The state ``s`` is the whole recurrent state per sample (``h``; ``h, c`` for LSTM; ``c`` for
SRU; every layer), so each Jacobian is (n, n). One forward and one backward pass compute all
of them: each sample is repeated n times and the i-th copy back-propagates the i-th unit
vector.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.lab.diagnostics import state as st


def step_jacobian(layer, x_t: Tensor, hx=None) -> Tensor:
    """∂s_t/∂s_{t−1} per sample, (B, n, n), at state ``hx`` (zeros if None) and input
    ``x_t`` (B, I). Entry ``[b, i, j] = ∂s_t[b, i] / ∂s_{t−1}[b, j]``."""
    if layer.bidirectional:
        raise ValueError("step_jacobian: needs a unidirectional layer")
    B = x_t.shape[0]
    pieces = st.zero_state(layer, B, x_t) if hx is None else st.split_state(layer, hx)
    flat = st.flatten(pieces).detach()  # (B, n)
    n = flat.shape[1]
    rep_flat = flat.repeat_interleave(n, dim=0).requires_grad_(True)  # (B·n, n)
    rep_x = x_t.detach().repeat_interleave(n, dim=0)
    was_training = layer.training
    layer.eval()
    try:
        with torch.enable_grad():
            rep_pieces = st.unflatten(rep_flat, tuple(p.detach() for p in pieces))
            _, new = st.step(layer, rep_x, tuple(p.contiguous() for p in rep_pieces))
            out = st.flatten(new)  # (B·n, n)
            eye = torch.eye(n, dtype=out.dtype, device=out.device).repeat(B, 1)
            (grad,) = torch.autograd.grad(out, rep_flat, grad_outputs=eye)
    finally:
        layer.train(was_training)
    return grad.reshape(B, n, n)


@torch.no_grad()
def states_along(layer, x: Tensor, hx=None) -> list:
    """The state after each step: entry t is s_t (t = 0 the initial state), in hx form."""
    xs = x.transpose(0, 1) if layer.batch_first else x
    pieces = st.zero_state(layer, xs.shape[1], xs) if hx is None else st.split_state(layer, hx)
    out = [pieces]
    was_training = layer.training
    layer.eval()
    try:
        for t in range(xs.shape[0]):
            _, pieces = st.step(layer, xs[t], pieces)
            out.append(pieces)
    finally:
        layer.train(was_training)
    return out


def jacobian_singular_values(layer, x: Tensor, times, hx=None) -> dict[int, Tensor]:
    """Singular values of ∂s_t/∂s_{t−1} at each t in ``times`` (1 … T), for every sample:
    ``{t: (B, n)}``, each row sorted in decreasing order."""
    xs = x.transpose(0, 1) if layer.batch_first else x
    T = xs.shape[0]
    states = states_along(layer, x, hx)
    out = {}
    for t in times:
        if not 1 <= t <= T:
            raise ValueError(f"times: expected steps in 1..{T}, got {t}")
        J = step_jacobian(layer, xs[t - 1], st.join_state(layer, states[t - 1]))
        out[int(t)] = torch.linalg.svdvals(J.double()).float()
    return out
