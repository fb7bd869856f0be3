"""Helpers shared by the converters: array handling, gate reordering, loading one direction."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def tensor(x, name: str) -> Tensor:
    """An array-like (numpy, torch, list, a Keras variable) as a detached torch tensor."""
    if isinstance(x, Tensor):
        return x.detach()
    try:
        return torch.as_tensor(np.asarray(x))  # numpy, lists, Keras variables (__array__)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name}: expected an array or tensor, got {type(x).__name__}") from exc


def numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def reorder(x: Tensor, src: str, dst: str, dim: int = -1) -> Tensor:
    """Permute the gate blocks of ``x`` along ``dim`` from order ``src`` to ``dst`` (e.g. from
    ``"zrh"`` to ``"rzh"``); each letter names one equal block."""
    blocks = dict(zip(src, x.chunk(len(src), dim=dim)))
    return torch.cat([blocks[k] for k in dst], dim=dim)


def check_shape(t: Tensor, shape: tuple, name: str) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")


def gate_size(t: Tensor, gates: int, name: str, dim: int = -1) -> int:
    if t.dim() == 0 or t.shape[dim] % gates:
        raise ValueError(f"{name}: the gate axis (size {tuple(t.shape)}) must hold {gates} "
                         "equal blocks")
    return t.shape[dim] // gates


def family(layer) -> str:
    for cls in type(layer).__mro__:
        if (cls.__name__ in ("LSTM", "GRU", "RNN", "SRU", "MinGRU", "MinLSTM")
                and cls.__module__.startswith("rnnlab")):
            return cls.__name__
    raise TypeError(f"layer: expected an rnnlab LSTM, GRU or RNN, got {type(layer).__name__}")


def check_index(layer, layer_index: int, direction: int) -> None:
    if not 0 <= layer_index < layer.num_layers:
        raise ValueError(f"layer_index: expected 0 <= layer_index < {layer.num_layers}, "
                         f"got {layer_index}")
    if direction not in range(layer.num_directions):
        raise ValueError(f"direction: expected 0{' or 1' if layer.bidirectional else ''} "
                         f"for this layer, got {direction}")


def load(layer, params: dict[str, Tensor], layer_index: int, direction: int) -> None:
    """Copy ``params`` (short names) into one layer and direction, checking every shape.
    A bias the layer lacks (``bias=False``) must be zero; a bias the layer has but
    ``params`` lacks is set to zero."""
    check_index(layer, layer_index, direction)
    target = layer.cell_params(layer_index, direction)
    for name, value in params.items():
        if name not in target:
            if name.startswith("bias") and not bool(value.any()):
                continue
            raise ValueError(f"weights: the layer has no {name} (bias={layer.bias}) but the "
                             f"weights give a non-zero one")
        check_shape(value, target[name].shape, name)
    with torch.no_grad():
        for name, p in target.items():
            if name in params:
                p.copy_(params[name])
            elif name.startswith("bias"):
                p.zero_()
