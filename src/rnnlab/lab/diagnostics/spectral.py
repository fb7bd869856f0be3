"""Spectral radius of the recurrent matrices, per gate block.

``W_hh`` stacks one (H, H) block per gate (torch's order): RNN ``h``; LSTM ``i, f, g, o``;
GRU ``r, z, n``. The candidate path (RNN's only block, LSTM's ``g``, GRU's ``n``) is the one
whose radius decides, for a tanh RNN, whether gradients vanish (ρ·max tanh' < 1) or may
explode (ρ > 1). SRU has no hidden-to-hidden matrix: its recurrence is element-wise, with
the vectors ``v_f, v_r`` (``weight_c``) as diagonal matrices. minGRU and minLSTM have no
recurrent weights at all (their gates read only the input): no blocks, and the candidate
radius is None.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.lab.diagnostics.state import cell_kind

GATE_NAMES = {"rnn": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"),
              "sru": ("f", "r"), "mingru": (), "minlstm": ()}
CANDIDATE = {"rnn": "h", "lstm": "g", "gru": "n", "sru": "f", "mingru": None, "minlstm": None}


def spectral_radius(matrix: Tensor) -> float:
    """max |λ| over the eigenvalues of a square matrix."""
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"spectral_radius: expected a square matrix, got {tuple(matrix.shape)}")
    return float(torch.linalg.eigvals(matrix.detach().double()).abs().max())


def recurrent_blocks(layer, layer_index: int = 0, direction: int = 0) -> dict[str, Tensor]:
    """The recurrent matrix of each gate of one layer and direction, by gate name (empty for
    minGRU and minLSTM, which have none)."""
    kind = cell_kind(layer)
    if not GATE_NAMES[kind]:
        return {}
    suffix = f"_l{layer_index}" + ("_reverse" if direction else "")
    if kind == "sru":
        v = getattr(layer, "weight_c" + suffix).detach()
        return {"f": torch.diag(v[0]), "r": torch.diag(v[1])}
    w = getattr(layer, "weight_hh" + suffix).detach()
    names = GATE_NAMES[kind]
    return dict(zip(names, w.chunk(len(names), dim=0)))


def spectral_radii(layer, layer_index: int = 0, direction: int = 0) -> dict[str, float]:
    """Spectral radius per gate block (a non-square block, LSTM with a projection, gets its
    largest singular value instead)."""
    out = {}
    for name, block in recurrent_blocks(layer, layer_index, direction).items():
        if block.shape[0] == block.shape[1]:
            out[name] = spectral_radius(block)
        else:
            out[name] = float(torch.linalg.matrix_norm(block.double(), ord=2))
    return out


def candidate_radius(layer, layer_index: int = 0, direction: int = 0) -> float | None:
    """Spectral radius of the candidate (tanh) path's block (None without a recurrent
    matrix: minGRU, minLSTM)."""
    name = CANDIDATE[cell_kind(layer)]
    if name is None:
        return None
    return spectral_radii(layer, layer_index, direction)[name]
