"""Parameter initialisation shared by cells and layers."""

import math

import torch
from torch import nn


def uniform_like_torch(module: nn.Module, hidden_size: int) -> None:
    """torch.nn's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            p.uniform_(-bound, bound)


def gate_shapes(rows: int, input_size: int, hidden_size: int, bias: bool) -> dict:
    """``weight_ih`` (rows, I), ``weight_hh`` (rows, H), ``bias_ih`` and ``bias_hh`` (rows,) or
    None without bias: the shapes of a gated cell for :func:`add_parameters`."""
    b = (rows,) if bias else None
    return {"weight_ih": (rows, input_size), "weight_hh": (rows, hidden_size), "bias_ih": b,
            "bias_hh": b}


def add_parameters(module: nn.Module, hidden_size: int, uniform: dict, ones: dict | None = None,
                   zeros: dict | None = None, *, device=None, dtype=None) -> None:
    """Register parameters on ``module`` from ``{name: shape}`` dicts, in this order (a shape of
    None sets the attribute to None, as an absent bias):

    * ``uniform``: drawn in turn from U(-1/sqrt(H), 1/sqrt(H)), torch.nn's default
      (:func:`uniform_like_torch`, so they must be ``module``'s first parameters);
    * ``ones``, then ``zeros``: gains at 1 and shifts at 0 (of the layer norms).
    """
    kw = {"device": device, "dtype": dtype}

    def register(shapes: dict | None, make) -> None:
        for name, shape in (shapes or {}).items():
            setattr(module, name, None if shape is None else nn.Parameter(make(shape, **kw)))

    register(uniform, torch.empty)
    uniform_like_torch(module, hidden_size)
    register(ones, torch.ones)
    register(zeros, torch.zeros)
