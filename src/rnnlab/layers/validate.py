"""Checks at the API boundary (layers, cells, packing). Each error names the argument and what
was expected."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence


# ---- constructor arguments ------------------------------------------------------------------
def check_int(name: str, value, minimum: int = 1) -> None:
    """Raise TypeError unless ``value`` is an int (not a bool), ValueError if it is below ``minimum``; messages name ``name``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


def check_bool(name: str, value) -> None:
    """Raise TypeError naming ``name`` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")


def check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")


def check_proj_size(proj_size, hidden_size: int) -> None:
    """Check an LSTM projection size: an int with ``0 <= proj_size < hidden_size``."""
    check_int("proj_size", proj_size, minimum=0)
    if proj_size and proj_size >= hidden_size:
        raise ValueError(f"proj_size: expected 0 or 0 < proj_size < hidden_size={hidden_size}, "
                         f"got {proj_size}")


def check_cell_clip(cell_clip) -> None:
    """Check ``cell_clip``: None or a positive number."""
    number = isinstance(cell_clip, (int, float)) and not isinstance(cell_clip, bool)
    if cell_clip is not None and not (number and cell_clip > 0):
        raise ValueError(f"cell_clip: expected a positive number or None, got {cell_clip!r}")


def check_factory(device, dtype) -> None:
    """``device`` (a torch.device, its name or index) and ``dtype`` (a floating-point
    torch.dtype), each or None, as the constructors of torch's modules take them."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype: expected a floating-point torch.dtype or None, got {dtype!r}")
    if device is not None:
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device: expected a torch.device, a device name or index, got "
                             f"{device!r} ({error})") from None


def check_cell_args(input_size, hidden_size, bias, device, dtype) -> None:
    """The arguments every cell shares, as :class:`torch.nn.RNNCellBase` takes them (sizes
    may be 0, as there)."""
    check_int("input_size", input_size, minimum=0)
    check_int("hidden_size", hidden_size, minimum=0)
    check_bool("bias", bias)
    check_factory(device, dtype)


# ---- call arguments -------------------------------------------------------------------------
def check_input(layer, input, lengths) -> None:
    """Check a layer's input (tensor or PackedSequence), its shape, dtype and device against the layer, and ``lengths`` when given; raise TypeError / ValueError naming the argument."""
    if isinstance(input, PackedSequence):
        if lengths is not None:
            raise ValueError("lengths: not allowed with a PackedSequence input (it has its own)")
        check_packed(input)
        data = input.data
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
            if input.dim() != 3:
                raise ValueError("lengths: only allowed with a batched (3-D) input")
            check_lengths(lengths, input.shape[time_dim], input.shape[1 - time_dim])


def check_packed(input: PackedSequence) -> None:
    """A PackedSequence as :func:`torch.nn.utils.rnn.pack_padded_sequence` builds it: ``N``
    rows of data, ``batch_sizes`` positive, non-increasing, summing to ``N``; the two index
    permutations both None, or inverse permutations of ``range(B)``."""
    data, sizes = input.data, input.batch_sizes
    if not isinstance(data, Tensor):
        raise TypeError(f"input: PackedSequence data must be a Tensor, got {type(data).__name__}")
    if data.dim() != 2:
        raise ValueError(f"input: PackedSequence data must be 2-D (N, features), "
                         f"got shape {tuple(data.shape)}")
    if not (isinstance(sizes, Tensor) and sizes.dim() == 1 and sizes.dtype == torch.int64
            and sizes.device.type == "cpu"):
        raise ValueError("input: PackedSequence batch_sizes must be a 1-D int64 tensor on the "
                         "CPU; build the input with pack_padded_sequence")
    if sizes.numel() == 0:
        raise ValueError("input: the sequence length must be at least 1")
    if (bool((sizes <= 0).any()) or bool((sizes[1:] > sizes[:-1]).any())
            or int(sizes.sum()) != data.shape[0]):
        raise ValueError(f"input: PackedSequence batch_sizes must be positive, non-increasing "
                         f"and sum to the {data.shape[0]} rows of data, got {sizes.tolist()}")
    order, inverse, B = input.sorted_indices, input.unsorted_indices, int(sizes[0])
    if order is None and inverse is None:
        return
    valid = all(isinstance(i, Tensor) and i.dtype == torch.int64 and i.shape == (B,)
                and i.device == data.device for i in (order, inverse))
    if valid and not data.is_meta:
        valid = (torch.equal(order.sort().values.cpu(), torch.arange(B))
                 and torch.equal(inverse, order.argsort()))
    if not valid:
        raise ValueError(f"input: PackedSequence sorted_indices and unsorted_indices must be "
                         f"both None or inverse permutations of range({B}) on the data's device")


def check_lengths(lengths, T: int, batch: int) -> Tensor:
    """``lengths`` (a sequence or tensor of integers): one integer in ``[1, T]`` per sequence
    of the batch; returns it as a tensor."""
    try:
        tensor = torch.as_tensor(lengths)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"lengths: expected a sequence or tensor of integers, got "
                        f"{type(lengths).__name__} ({error})") from None
    # an empty list has no dtype to check
    if tensor.numel() and (tensor.is_floating_point() or tensor.is_complex()
                           or tensor.dtype == torch.bool):
        raise TypeError(f"lengths: expected integers, got dtype {tensor.dtype}")
    if tensor.is_meta:
        raise ValueError("lengths: on the meta device, where its values cannot be read")
    tensor = tensor.long()
    if tensor.shape != (batch,):
        raise ValueError(f"lengths: expected shape ({batch},), one per sequence, "
                         f"got {tuple(tensor.shape)}")
    if bool((tensor <= 0).any()) or bool((tensor > T).any()):
        raise ValueError(f"lengths: every length must be in [1, {T}] (the sequence length), "
                         f"got min {int(tensor.min())}, max {int(tensor.max())}")
    return tensor


def check_like_params(layer, t: Tensor, name: str) -> None:
    """Raise TypeError unless ``t`` (called ``name``) is floating point with the dtype and device of the layer's parameters."""
    # a layer's weights by name (a DataParallel replica lists no parameters()); a cell's
    ref = layer.weights()[0] if hasattr(layer, "weights") else next(layer.parameters())
    if not t.dtype.is_floating_point:
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name}: dtype {t.dtype} does not match the layer's parameters "
                        f"({ref.dtype}); convert one with .to()")
    if t.device != ref.device:
        raise ValueError(f"{name}: on device {t.device}, but the layer's parameters are on "
                         f"{ref.device}")


def check_state(layer, state: Tensor, name: str, expected: tuple[int, ...]) -> None:
    """Check an initial state tensor ``name``: its shape must be ``expected``, its dtype and device the parameters'."""
    if not isinstance(state, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(state).__name__}")
    if tuple(state.shape) != expected:
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(state.shape)}")
    check_like_params(layer, state, name)


def check_step_input(module, input) -> None:
    """The input of one step, (B, I) or (I,)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a Tensor, got {type(input).__name__}")
    if input.dim() not in (1, 2) or input.shape[-1] != module.input_size:
        raise ValueError(f"input: expected shape (B, {module.input_size}) or "
                         f"({module.input_size},), got {tuple(input.shape)}")
    check_like_params(module, input, "input")


def check_cell(cell, input, state, sizes: dict[str, int]) -> None:
    """A cell's call: ``input`` (B, I) or (I,), and ``state`` None or the states named in
    ``sizes`` (one tensor, or a tuple ``state`` of them), each (B, S) or (S,) as the input."""
    check_step_input(cell, input)
    if state is None:
        return
    if len(sizes) == 1:
        state = (state,)
    elif not isinstance(state, (tuple, list)) or len(state) != len(sizes):
        got = type(state).__name__ + (f" of {len(state)}" if isinstance(state, (tuple, list))
                                      else "")
        raise TypeError(f"state: expected a tuple ({', '.join(sizes)}), got {got}")
    for (name, size), s in zip(sizes.items(), state):
        check_state(cell, s, name, (*input.shape[:-1], size))


def check_packed_sequence(input, lengths, batch_first, enforce_sorted) -> None:
    """Validate the arguments of :func:`rnnlab.pack_padded_sequence`."""
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a padded Tensor, got {type(input).__name__}")
    if input.dim() < 2:
        raise ValueError(f"input: expected a padded tensor (T, B, *) or (B, T, *), got shape "
                         f"{tuple(input.shape)}")
    check_bool("batch_first", batch_first)
    check_bool("enforce_sorted", enforce_sorted)
    T, batch = input.shape[:2]
    if batch_first:
        T, batch = batch, T
    if T == 0:
        raise ValueError("input: the sequence length must be at least 1")
    lengths = check_lengths(lengths, T, batch)
    if enforce_sorted and bool((lengths[1:] > lengths[:-1]).any()):
        raise ValueError("lengths: must be sorted in decreasing order when enforce_sorted=True "
                         f"(got {lengths.tolist()}); pass enforce_sorted=False to sort them")
