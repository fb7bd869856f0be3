"""Initialisation policies for every rnnlab layer: the ``init=`` option.

Every layer first draws torch's default (every weight and bias ``~ U(-1/sqrt(H), 1/sqrt(H))``,
in torch's parameter order, so ``init="torch"`` gives bit-for-bit the weights ``torch.nn``
draws under the same seed). A policy then overwrites only the tensors it names:

=========================  ==============================================================
``"torch"`` / ``Init()``   nothing else (the default: drop-in behaviour is unchanged)
``forget_bias=v``          forget-gate bias ``v`` (Jozefowicz et al. 2015; ``1.0`` is Keras'
                           ``unit_forget_bias``), see :func:`set_forget_bias`
``recurrent="orthogonal"`` each gate block of ``W_hh`` orthogonal (Saxe et al. 2014), see
                           :func:`orthogonal_recurrent`
``recurrent="identity"``   IRNN: ``W_hh = gain·I`` and zero biases (Le et al. 2015), ``RNN`` only,
                           see :func:`identity_recurrent`
``chrono=T_max``           chrono initialisation (Tallec & Ollivier 2018), see :func:`chrono`
=========================  ==============================================================

Policies combine: ``Init(recurrent="orthogonal", forget_bias=1.0)``. Strings are shortcuts:
``"orthogonal"``, ``"identity"`` (or ``"irnn"``), ``"forget_bias"`` (or ``"unit_forget_bias"``,
value 1.0), ``"forget_bias:2.0"``, ``"chrono:784"``, and ``+`` joins them:
``"orthogonal+forget_bias"``. A policy that does not apply to a layer (chrono on an RNN, which
has no gate; identity on a gated cell; a bias policy with ``bias=False``) raises ``ValueError``
when the layer is built.

Where the gates are, per family (torch's row order; the forget-like gate is the one whose
activation multiplies the previous state):

=========  ====================================  ===============================================
family     forget-like gate                      chrono sets
=========  ====================================  ===============================================
LSTM       ``f`` (rows H:2H), ``b_if=v, b_hf=0``  ``b_if = log U(1, T_max-1)``, ``b_ii = -b_if``
GRU        ``z`` (rows H:2H, ``h = (1-z)n + z h``) ``b_iz = log U(1, T_max-1)``
SRU        ``b_f`` (first H of ``bias``)          ``b_f = log U(1, T_max-1)``
MinLSTM    ``f`` (rows 0:H)                       ``b_f = log U(1, T_max-1)``, ``b_i = -b_f``
MinGRU     ``1 - z`` (rows 0:H): ``b_z = -v``      ``b_z = -log U(1, T_max-1)``
RNN        none (forget_bias and chrono raise)
=========  ====================================  ===============================================

The recurrent-side bias of the forget-like gate (``b_hf``, ``b_hz``) is set to 0 so that the
sum ``b_ih + b_hh`` the cell sees is exactly the value asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

RECURRENT = ("torch", "orthogonal", "identity")

# family -> (row block of the forget-like gate in the bias, sign of the bias, block of the
# input gate that chrono sets to -b_f or None, bias parameter names, has W_hh)
_LAYOUT = {
    "LSTM": (1, 1.0, 0, ("bias_ih", "bias_hh"), True),
    "GRU": (1, 1.0, None, ("bias_ih", "bias_hh"), True),
    "RNN": (None, 1.0, None, ("bias_ih", "bias_hh"), True),
    "SRU": (0, 1.0, None, ("bias",), False),
    "MinLSTM": (0, 1.0, 1, ("bias_ih",), False),
    "MinGRU": (0, -1.0, None, ("bias_ih",), False),
}


@dataclass(frozen=True)
class Init:
    """An initialisation policy: what to draw after torch's default ``U(-1/sqrt(H), 1/sqrt(H))``.

    Args:
        recurrent: ``"torch"`` (keep the uniform draw), ``"orthogonal"`` (each gate block of
            ``W_hh`` orthogonal, Saxe et al. 2014) or ``"identity"`` (IRNN, Le et al. 2015,
            ``RNN`` only: ``W_hh = gain·I``, biases 0).
        gain: scale of the orthogonal or identity matrix (1.0).
        forget_bias: bias of the forget-like gate (Jozefowicz et al. 2015), e.g. 1.0 as Keras'
            ``unit_forget_bias``; None keeps the uniform draw.
        chrono: ``T_max`` of chrono initialisation (Tallec & Ollivier 2018), the longest
            dependency range expected, in steps (>= 2); None for no chrono.

    Example::

        >>> lstm = rnnlab.LSTM(10, 20, init=rnnlab.Init(recurrent="orthogonal", forget_bias=1.0))
        >>> gru = rnnlab.GRU(10, 20, init="chrono:100")
    """

    recurrent: str = "torch"
    gain: float = 1.0
    forget_bias: float | None = None
    chrono: float | None = None

    def __post_init__(self):
        if not isinstance(self.recurrent, str) or self.recurrent not in RECURRENT:
            raise ValueError(f"init: recurrent must be one of {RECURRENT}, got {self.recurrent!r}")
        if not _is_number(self.gain) or self.gain <= 0:
            raise ValueError(f"init: gain must be a positive number, got {self.gain!r}")
        if self.forget_bias is not None and not _is_number(self.forget_bias):
            raise ValueError(f"init: forget_bias must be a number or None, "
                             f"got {self.forget_bias!r}")
        if self.chrono is not None and (not _is_number(self.chrono) or self.chrono < 2):
            raise ValueError(f"init: chrono is T_max, a number >= 2, got {self.chrono!r}")
        if self.chrono is not None and self.forget_bias is not None:
            raise ValueError("init: chrono and forget_bias both set the forget-gate bias; "
                             "choose one")

    @property
    def is_default(self) -> bool:
        return self == Init()

    def __repr__(self) -> str:
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                   if getattr(self, f.name) != f.default]
        return f"Init({', '.join(changed)})"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_SHORTCUTS = {
    "torch": {},
    "default": {},
    "orthogonal": {"recurrent": "orthogonal"},
    "identity": {"recurrent": "identity"},
    "irnn": {"recurrent": "identity"},
    "forget_bias": {"forget_bias": 1.0},
    "unit_forget_bias": {"forget_bias": 1.0},
}


def resolve_init(init) -> Init:
    """``init=`` as an :class:`Init`: an Init, None, a dict of Init's fields, or a string
    (``"orthogonal"``, ``"identity"``, ``"forget_bias:2"``, ``"chrono:100"``, joined by ``+``)."""
    if init is None:
        return Init()
    if isinstance(init, Init):
        return init
    if isinstance(init, dict):
        names = [f.name for f in fields(Init)]
        if unknown := [key for key in init if key not in names]:
            raise TypeError(f"init: unknown field(s) {unknown}; an Init has {names}")
        return Init(**init)
    if not isinstance(init, str):
        raise TypeError("init: expected a str, an rnnlab.Init or a dict, "
                        f"got {type(init).__name__}")
    kwargs: dict = {}
    for part in init.split("+"):
        name, _, value = part.strip().partition(":")
        name = name.strip().lower()
        if name == "chrono":
            if not value:
                raise ValueError("init: chrono needs T_max, e.g. init='chrono:100' or "
                                 "init=rnnlab.Init(chrono=100)")
            kwargs["chrono"] = _number(value, part)
        elif name in ("forget_bias", "unit_forget_bias"):
            kwargs["forget_bias"] = _number(value, part) if value else 1.0
        elif name in ("orthogonal", "identity", "irnn"):
            kwargs.update(_SHORTCUTS[name])
            if value:
                kwargs["gain"] = _number(value, part)
        elif name in ("torch", "default") and not value:
            pass
        else:
            raise ValueError(f"init: unknown policy {part!r}; expected 'torch', 'orthogonal', "
                             "'identity', 'forget_bias[:v]', 'chrono:T_max' (joined by '+') "
                             "or an rnnlab.Init")
    return Init(**kwargs)


def _number(text: str, part: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"init: {part!r}: {text!r} is not a number") from None


def _family(layer) -> str:
    for cls in type(layer).__mro__:
        if cls.__name__ in _LAYOUT:
            return cls.__name__
    raise ValueError(f"init: no initialisation layout for {type(layer).__name__}")


def check_init(layer, policy: Init) -> None:
    """Raise ``ValueError`` if ``policy`` does not apply to ``layer``."""
    if policy.is_default:
        return
    family = _family(layer)
    forget_block, _, _, _, has_whh = _LAYOUT[family]
    if policy.recurrent == "identity" and family != "RNN":
        raise ValueError(f"init: identity recurrent weights (IRNN, Le et al. 2015) are defined "
                         f"for rnnlab.RNN, not {family}; use recurrent='orthogonal' for gated "
                         "cells")
    if policy.recurrent == "orthogonal" and not has_whh:
        raise ValueError(f"init: {family} has no recurrent matrix W_hh to make orthogonal")
    if policy.forget_bias is not None or policy.chrono is not None:
        which = "chrono" if policy.chrono is not None else "forget_bias"
        if forget_block is None:
            raise ValueError(f"init: {which} sets a forget-gate bias, and {family} has no gate")
        if not layer.bias:
            raise ValueError(f"init: {which} sets a bias, but the layer has bias=False")


def apply_init(layer, policy: Init) -> None:
    """Apply ``policy`` to every layer and direction of ``layer`` (after torch's default draw)."""
    if policy.is_default:
        return
    check_init(layer, policy)
    family = _family(layer)
    with torch.no_grad():
        for k in range(layer.num_layers):
            for d in range(layer.num_directions):
                params = layer.cell_params(k, d)
                if policy.recurrent == "orthogonal":
                    orthogonal_recurrent(params["weight_hh"], layer.hidden_size, policy.gain)
                elif policy.recurrent == "identity":
                    identity_recurrent(params["weight_hh"], policy.gain,
                                       [params.get("bias_ih"), params.get("bias_hh")])
                if policy.forget_bias is not None:
                    set_forget_bias(family, params, layer.hidden_size, policy.forget_bias)
                if policy.chrono is not None:
                    chrono(family, params, layer.hidden_size, policy.chrono)


def orthogonal_recurrent(weight_hh: Tensor, hidden_size: int, gain: float = 1.0) -> Tensor:
    """Each gate block of ``weight_hh`` (G·H, H_out) an orthogonal matrix times ``gain``,
    drawn by :func:`torch.nn.init.orthogonal_`.

    Saxe, McClelland & Ganguli (2014), "Exact solutions to the nonlinear dynamics of learning
    in deep linear neural networks": orthogonal recurrent matrices keep every singular value
    of the product ``W^T`` at 1, so the linearised signal neither explodes nor vanishes.
    Each H × H_out block has orthonormal columns (``WᵀW = I`` when H >= H_out, as with
    ``proj_size``).
    """
    with torch.no_grad():
        for block in weight_hh.split(hidden_size, dim=0):
            nn.init.orthogonal_(block, gain=gain)
    return weight_hh


def identity_recurrent(weight_hh: Tensor, gain: float = 1.0, biases=()) -> Tensor:
    """IRNN: ``W_hh = gain·I`` and every bias 0.

    Le, Jaitly & Hinton (2015), "A Simple Way to Initialize Recurrent Networks of Rectified
    Linear Units": with ReLU and ``W_hh = I``, zero input leaves the state unchanged, so the
    gradient passes through time undamped at initialisation. The input weights keep torch's
    uniform draw (the paper draws them from a small Gaussian; scale them yourself if wanted).
    For tasks with long inputs the paper also uses a smaller scale (``gain`` < 1).
    """
    with torch.no_grad():
        weight_hh.copy_(gain * torch.eye(*weight_hh.shape, dtype=weight_hh.dtype,
                                          device=weight_hh.device))
        for b in biases:
            if b is not None:
                b.zero_()
    return weight_hh


def _forget_rows(family: str, params: dict[str, Tensor], hidden_size: int):
    block, sign, input_block, bias_names, _ = _LAYOUT[family]
    rows = slice(block * hidden_size, (block + 1) * hidden_size)
    in_rows = (None if input_block is None
               else slice(input_block * hidden_size, (input_block + 1) * hidden_size))
    return rows, sign, in_rows, [params[n] for n in bias_names]


def set_forget_bias(family: str, params: dict[str, Tensor], hidden_size: int,
                    value: float) -> None:
    """Forget-gate bias = ``value``, recurrent-side bias of that gate 0.

    Jozefowicz, Zaremba & Sutskever (2015), "An Empirical Exploration of Recurrent Network
    Architectures": initialising the LSTM forget-gate bias to 1 (Gers et al. 2000) closes most
    of the gap between the LSTM and the GRU; Keras' ``unit_forget_bias=True`` does the same.
    For a GRU the forget-like gate is torch's update gate ``z`` (``h = (1-z)∘n + z∘h``), for an
    SRU ``b_f``, for a MinGRU ``1 - z`` (so ``b_z = -value``).
    """
    rows, sign, _, biases = _forget_rows(family, params, hidden_size)
    with torch.no_grad():
        biases[0][rows] = sign * value
        for b in biases[1:]:
            b[rows] = 0.0


def chrono(family: str, params: dict[str, Tensor], hidden_size: int, t_max: float) -> None:
    """Chrono initialisation: ``b_f = log(u)``, ``u ~ U(1, T_max - 1)``, and ``b_i = -b_f``.

    Tallec & Ollivier (2018), "Can recurrent neural networks warp time?": a gated cell with
    forget gate ``σ(b_f)`` forgets over about ``1/(1-σ(b_f)) = 1 + e^{b_f}`` steps, so
    ``b_f = log U(1, T_max-1)`` spreads the characteristic times of the units over
    ``[2, T_max]``. The input gate gets ``-b_f`` (LSTM, MinLSTM); cells whose gate already
    couples input and forgetting (GRU ``z``, SRU ``f``, MinGRU ``z``) have only the one bias.
    Recurrent-side biases of these gates are set to 0.
    """
    rows, sign, in_rows, biases = _forget_rows(family, params, hidden_size)
    with torch.no_grad():
        ref = biases[0]
        if t_max > 2:
            u = torch.empty(hidden_size, dtype=ref.dtype, device=ref.device).uniform_(1, t_max - 1)
        else:
            u = torch.ones(hidden_size, dtype=ref.dtype, device=ref.device)
        b_f = u.log_()
        ref[rows] = sign * b_f
        if in_rows is not None:
            ref[in_rows] = -b_f
        for b in biases[1:]:
            b[rows] = 0.0
            if in_rows is not None:
                b[in_rows] = 0.0
