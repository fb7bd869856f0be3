"""Gradient flow through time: ‖∂L/∂h_k‖ against k, for a loss at the last step.

The layer is run one step at a time. Before each step ``k + 1`` a zero tensor ``e_k`` that
requires grad is added to the state ``s_k`` the recurrence carries forward (``h`` for RNN
and GRU, ``h`` and ``c`` for LSTM, ``c`` for SRU); the loss reads the last output ``y_T``.
One backward pass then gives ``∂L/∂e_k = ∂L/∂s_k`` for every k: the gradient that reaches
step k through the whole recurrence, every path included (Pascanu et al. 2013 measure the
same quantity to show vanishing and exploding gradients). For RNN, GRU and LSTM the output
``y_T`` is the last layer's ``h_T``, so the loss is read from the perturbed final state and
k runs over 0 … T; for SRU (``h_T ≠ c_T``) the last entry is left undefined (NaN).

For the LSTM the pair ``s_k = (h_k, c_k)`` is the state of the dynamical system
``s_{k+1} = F(s_k, x_{k+1})``, and the pieces are its partial gradients: ``∂L/∂c_k`` with
``h_k`` held fixed (it does not include the path ``c_k → h_k`` inside step k). Then
``∂L/∂s_k = J_{k+1}ᵀ ∂L/∂s_{k+1}`` with the step Jacobians of
:mod:`rnnlab.lab.diagnostics.jacobian`. ``∂L/∂h_k`` is the usual total derivative.

Norms are per sample (over units) and averaged over the batch, so pass a loss that is a
per-sample vector (or a sum over the batch) to keep them comparable across batch sizes. In a
stack of layers they are taken over the last layer's state: that is where the perturbation
equals the total derivative (a lower layer's h_k also feeds the layer above at step k, a path
the carried-state perturbation does not see).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rnnlab.lab.diagnostics import state as st


@dataclass
class GradientFlow:
    """‖∂L/∂s_k‖ for k = 0 … T (k = 0: the initial state, k = T: the last state).

    norms: per state piece (``"h"``, ``"c"``) and ``"state"`` (all pieces together), a list
        of T + 1 batch-mean per-sample norms (NaN where undefined).
    main: the piece the headline curve uses: ``"h"`` where the cell has one, else ``"c"``.
    """

    cell: str
    seq_len: int
    norms: dict[str, list[float]]
    main: str
    loss: float
    extra: dict = field(default_factory=dict)

    @property
    def curve(self) -> list[float]:
        return self.norms[self.main]

    def at(self, k: int, piece: str | None = None) -> float:
        return self.norms[piece or self.main][k]

    @property
    def last_index(self) -> int:
        """Index of the last defined entry (T, or T - 1 for SRU)."""
        curve = self.curve
        return self.seq_len if not math.isnan(curve[self.seq_len]) else self.seq_len - 1

    def decay_ratio(self, piece: str | None = None) -> float:
        """‖∂L/∂s_0‖ / ‖∂L/∂s_last‖: ≪ 1 means vanishing, ≫ 1 exploding."""
        curve = self.norms[piece or self.main]
        last = curve[self.last_index]
        if last == 0 or math.isnan(last):
            return float("nan")
        return curve[0] / last

    def orders_of_magnitude(self, piece: str | None = None) -> float:
        """log10 of :meth:`decay_ratio` (−5: the gradient shrank 10⁵-fold over T steps)."""
        r = self.decay_ratio(piece)
        if math.isnan(r):
            return float("nan")
        return math.log10(r) if r > 0 else -math.inf

    def to_dict(self) -> dict:
        return {"cell": self.cell, "seq_len": self.seq_len, "main": self.main,
                "loss": self.loss, "decay_ratio": self.decay_ratio(),
                "orders_of_magnitude": self.orders_of_magnitude(), "norms": self.norms,
                **self.extra}


def readout_loss(size: int, seed: int = 0, dtype=torch.float32) -> Callable[[Tensor], Tensor]:
    """A fixed random unit readout ``L_b = w · y_T,b``: then ‖∂L/∂y_T‖ = 1 per sample."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(size, generator=g, dtype=dtype)
    w = w / w.norm()
    return lambda y: y @ w.to(y)


def gradient_flow(layer, x: Tensor, loss_fn: Callable[[Tensor], Tensor] | None = None, hx=None,
                  *, seed: int = 0) -> GradientFlow:
    """Measure ‖∂L/∂s_k‖ for k = 0 … T for a loss on the last output.

    Args:
        layer: an rnnlab (or torch.nn) RNN, LSTM, GRU or SRU layer, unidirectional.
        x: its input, (T, B, I) ((B, T, I) with ``batch_first``).
        loss_fn: maps ``y_T`` (B, H_out) to per-sample losses (B,) or a scalar; default a
            fixed random unit readout (:func:`readout_loss`).
        hx: the initial state, as the layer takes it (zeros by default).
    """
    if layer.bidirectional:
        raise ValueError("gradient_flow: the backward direction reads the future; "
                         "measure a unidirectional layer")
    names = st.state_names(layer)
    xs = x.transpose(0, 1) if layer.batch_first else x
    T, B = xs.shape[0], xs.shape[1]
    if T < 1:
        raise ValueError("gradient_flow: need at least one time step")
    pieces = st.zero_state(layer, B, xs) if hx is None else st.split_state(layer, hx)
    if loss_fn is None:
        loss_fn = readout_loss(getattr(layer, "proj_size", 0) or layer.hidden_size, seed,
                               xs.dtype)
    was_training = layer.training
    layer.eval()
    leaves: list[list[Tensor]] = []
    try:
        with torch.enable_grad():
            y = None
            for t in range(T + 1):
                e = [torch.zeros_like(p, requires_grad=True) for p in pieces]
                pieces = tuple(p + ei for p, ei in zip(pieces, e))
                leaves.append(e)
                if t < T:
                    y, pieces = st.step(layer, xs[t], pieces)
            direct = "h" in names
            if direct:  # y_T is the last layer's h_T: read it from the perturbed state
                y = pieces[names.index("h")][-1]
            losses = loss_fn(y)
            loss = losses.sum()
            flat = [e for es in leaves for e in es]
            grads = torch.autograd.grad(loss, flat, allow_unused=True)
    finally:
        layer.train(was_training)
    P = len(names)
    norms: dict[str, list[float]] = {n: [] for n in names}
    norms["state"] = []
    for k in range(T + 1):
        squares = []
        for j, n in enumerate(names):
            g = grads[k * P + j]
            g = torch.zeros_like(leaves[k][j]) if g is None else g
            sq = g[-1].pow(2).sum(dim=-1)  # per sample, last layer
            squares.append(sq)
            norms[n].append(float(sq.sqrt().mean()))
        norms["state"].append(float(torch.stack(squares).sum(0).sqrt().mean()))
    if not direct:
        for curve in norms.values():
            curve[T] = float("nan")
    return GradientFlow(cell=st.cell_kind(layer), seq_len=T, norms=norms,
                        main="h" if "h" in names else "c",
                        loss=float(loss.detach()) / B)
