"""Helpers shared by the converters: array handling, gate reordering, the split of Keras- and
Haste-style ``kernel`` / ``recurrent_kernel`` into torch's ``weight_ih`` / ``weight_hh`` and
back, loading one direction."""

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
    ``"zrh"`` to ``"rzh"``); each letter names one equal block. ``x`` itself when the orders
    are the same."""
    if src == dst:
        return x
    blocks = dict(zip(src, x.chunk(len(src), dim=dim)))
    return torch.cat([blocks[k] for k in dst], dim=dim)


def vector(x, size: int, name: str, src: str = "", dst: str = "") -> Tensor:
    """A 1-D array-like of ``size`` elements as a new tensor, its gate blocks reordered from
    ``src`` to ``dst``."""
    t = tensor(x, name)
    check_shape(t, (size,), name)
    return reorder(t, src, dst) if src != dst else t.clone()


def check_shape(t: Tensor, shape: tuple, name: str) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")


def gate_size(t: Tensor, gates: int, name: str, dim: int = -1) -> int:
    if t.dim() == 0 or t.shape[dim] % gates:
        raise ValueError(f"{name}: the gate axis (size {tuple(t.shape)}) must hold {gates} "
                         "equal blocks")
    return t.shape[dim] // gates


def kernels(kernel, recurrent_kernel, gates: int) -> tuple[Tensor, Tensor, int]:
    """``kernel`` (I, G·H) and ``recurrent_kernel`` (H, G·H) as tensors, their shapes checked;
    returns them and H."""
    kernel, recurrent = tensor(kernel, "kernel"), tensor(recurrent_kernel, "recurrent_kernel")
    if kernel.dim() != 2 or recurrent.dim() != 2:
        raise ValueError(f"kernel, recurrent_kernel: expected 2-D, got shapes "
                         f"{tuple(kernel.shape)}, {tuple(recurrent.shape)}")
    H = gate_size(recurrent, gates, "recurrent_kernel")
    check_shape(recurrent, (H, gates * H), "recurrent_kernel")
    check_shape(kernel, (kernel.shape[0], gates * H), "kernel")
    return kernel, recurrent, H


def torch_weights(weight_ih, weight_hh, gates: int) -> tuple[Tensor, Tensor, int]:
    """torch's ``weight_ih`` (G·H, I) and ``weight_hh`` (G·H, H) as tensors, their shapes
    checked; returns them and H."""
    w_ih, w_hh = tensor(weight_ih, "weight_ih"), tensor(weight_hh, "weight_hh")
    H = gate_size(w_hh, gates, "weight_hh", dim=0)
    check_shape(w_hh, (gates * H, H), "weight_hh")
    if w_ih.dim() != 2 or w_ih.shape[0] != gates * H:
        raise ValueError(f"weight_ih: expected shape ({gates * H}, input_size), "
                         f"got {tuple(w_ih.shape)}")
    return w_ih, w_hh, H


def weights_from_kernels(kernel: Tensor, recurrent: Tensor, src: str = "",
                         dst: str = "") -> dict[str, Tensor]:
    """``weight_ih = kernelᵀ``, ``weight_hh = recurrent_kernelᵀ``, the gate blocks reordered
    from the library's order ``src`` to torch's ``dst``."""
    return {"weight_ih": reorder(kernel, src, dst).t().contiguous(),
            "weight_hh": reorder(recurrent, src, dst).t().contiguous()}


def kernels_from_weights(w_ih: Tensor, w_hh: Tensor, src: str = "",
                         dst: str = "") -> tuple[Tensor, Tensor]:
    """The inverse of :func:`weights_from_kernels` (torch's order ``src`` to the library's
    ``dst``): ``(kernel, recurrent_kernel)``, transposed views."""
    return reorder(w_ih, src, dst, dim=0).t(), reorder(w_hh, src, dst, dim=0).t()


def split_bias(bias: Tensor) -> dict[str, Tensor]:
    """A library's single bias (``b_ih + b_hh`` in torch's terms) as ``bias_ih``, with
    ``bias_hh`` = 0: the same function."""
    return {"bias_ih": bias, "bias_hh": torch.zeros_like(bias)}


def extra_options(layer, flags: tuple[str, ...] = ("peephole",)) -> list[str]:
    """The options of an rnnlab layer that a library's plain LSTM / GRU / RNN lacks: the
    boolean ``flags``, ``cell_clip``, ``coupled``, ``proj_size``."""
    extras = [name for name in flags if getattr(layer, name, False)]
    options = getattr(layer, "options", None)
    if getattr(options, "cell_clip", None) is not None:
        extras.append("cell_clip")
    if getattr(options, "coupled", False):
        extras.append("coupled")
    if getattr(layer, "proj_size", 0):
        extras.append("proj_size")
    return extras


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
