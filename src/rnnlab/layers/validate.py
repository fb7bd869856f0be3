"""Checks at the layer boundary. Each error names the argument and what was expected."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence


def check_input(layer, input, lengths) -> None:
    if isinstance(input, PackedSequence):
        if lengths is not None:
            raise ValueError("lengths: not allowed with a PackedSequence input (it has its own)")
        data = input.data
        if data.dim() != 2:
            raise ValueError(f"input: PackedSequence data must be 2-D (N, {layer.input_size}), "
                             f"got shape {tuple(data.shape)}")
    elif isinstance(input, Tensor):
        data = input
        if data.dim() not in (2, 3):
            raise ValueError(
                f"input: expected a 3-D (batched) or 2-D (unbatched) tensor, got {data.dim()}-D "
                f"with shape {tuple(data.shape)}")
    else:
        raise TypeError(f"input: expected a Tensor or PackedSequence, got {type(input).__name__}")
    if data.shape[-1] != layer.input_size:
        raise ValueError(f"input: expected feature size input_size={layer.input_size}, "
                         f"got {data.shape[-1]} (shape {tuple(data.shape)})")
    check_like_params(layer, data, "input")
    if isinstance(input, Tensor):
        time_dim = 1 if (layer.batch_first and input.dim() == 3) else 0
        if input.shape[time_dim] == 0:
            raise ValueError("input: the sequence length must be at least 1")
        if lengths is not None:
            check_lengths(lengths, input, time_dim)


def check_lengths(lengths, input: Tensor, time_dim: int) -> None:
    if input.dim() != 3:
        raise ValueError("lengths: only allowed with a batched (3-D) input")
    lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise TypeError(f"lengths: expected integers, got dtype {lengths.dtype}")
    batch = input.shape[1 - time_dim]
    if lengths.shape != (batch,):
        raise ValueError(f"lengths: expected shape ({batch},), one per sequence, "
                         f"got {tuple(lengths.shape)}")
    T = input.shape[time_dim]
    if bool((lengths <= 0).any()) or bool((lengths > T).any()):
        raise ValueError(f"lengths: every length must be in [1, {T}] (the sequence length), "
                         f"got min {int(lengths.min())}, max {int(lengths.max())}")


def check_like_params(layer, t: Tensor, name: str) -> None:
    ref = next(layer.parameters())
    if not t.dtype.is_floating_point:
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name}: dtype {t.dtype} does not match the layer's parameters "
                        f"({ref.dtype}); convert one with .to()")
    if t.device != ref.device:
        raise ValueError(f"{name}: on device {t.device}, but the layer's parameters are on "
                         f"{ref.device}")


def check_state(layer, state: Tensor, name: str, expected: tuple[int, ...]) -> None:
    if not isinstance(state, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(state).__name__}")
    if tuple(state.shape) != expected:
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(state.shape)}")
    check_like_params(layer, state, name)


def check_packed_sequence(input: Tensor, lengths, batch_first: bool, enforce_sorted: bool):
    """Validate the arguments of :func:`rnnlab.pack_padded_sequence`."""
    if not isinstance(input, Tensor) or input.dim() < 2:
        raise ValueError("input: expected a padded tensor (T, B, *) or (B, T, *)")
    check_lengths(lengths, input if input.dim() == 3 else input.unsqueeze(-1),
                  1 if batch_first else 0)
    lengths = torch.as_tensor(lengths)
    if enforce_sorted and bool((lengths[1:] > lengths[:-1]).any()):
        raise ValueError("lengths: must be sorted in decreasing order when enforce_sorted=True "
                         f"(got {lengths.tolist()}); pass enforce_sorted=False to sort them")
