"""Host-side helpers of the Triton engine: what every family's Function passes its kernels."""

from __future__ import annotations

import os

import torch
import triton

from rnnlab.backends.triton.kernels_common import block_sizes


def lengths_of(mask, x) -> torch.Tensor:
    """The running length of each sequence, int32 (B,): the kernels treat step t of sequence b
    as padded when ``t >= lengths[b]`` (``mask`` (T, B, 1) is a prefix mask, or None)."""
    T, B = x.shape[0], x.shape[1]
    if mask is None:
        return torch.full((B,), T, dtype=torch.int32, device=x.device)
    return mask.reshape(T, B).sum(0, dtype=torch.int32)


def cudnn_rnn_tf32() -> bool:
    """Whether torch.nn's cuDNN RNNs compute float32 with TF32 now: ``torch.backends.cudnn.allow_tf32``
    (True by default), read per operator where torch sets it per operator (torch ≥ 2.9:
    ``torch.backends.cudnn.rnn.fp32_precision`` is ``"tf32"``)."""
    rnn = getattr(torch.backends.cudnn, "rnn", None)
    if hasattr(rnn, "fp32_precision"):
        return rnn.fp32_precision == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)


def precision(dtype: torch.dtype, device: torch.device) -> str:
    """The kernels' ``PRECISION`` (see :func:`~rnnlab.backends.triton.kernels_common.dot_accumulate`),
    torch.nn's rule for its cuDNN RNNs: float32 products in TF32 exactly when
    :func:`cudnn_rnn_tf32` (``torch.backends.cudnn.allow_tf32``), else exact float32 ("ieee");
    float16 and bfloat16 products run on the tensor cores' half path, accumulating in float32
    (the setting is "ieee", which half operands ignore). On the interpreter bfloat16 widens the
    weights ("float32")."""
    if device.type != "cuda":
        return "float32" if dtype == torch.bfloat16 else "ieee"
    if dtype == torch.float32 and cudnn_rnn_tf32():
        return "tf32"
    return "ieee"


def column_programs(batch: int, hidden: int, device: torch.device) -> tuple[int, str]:
    """How many programs share a tile's hidden units, and how they synchronise (the ``SYNC``
    of :func:`~rnnlab.backends.triton.kernels_common.substep_end`).

    One program per tile (``"cta"``) unless ``RNNLAB_TRITON_COLUMN_PROGRAMS`` asks for more.
    Several programs synchronise with a grid barrier on CUDA when the whole grid fits on the
    GPU at once, else (and under the interpreter, or with ``RNNLAB_TRITON_SYNC=launch``) with
    one launch per sub-step.
    """
    wanted = os.environ.get("RNNLAB_TRITON_COLUMN_PROGRAMS", "1")
    if not wanted.isdigit() or int(wanted) < 1:
        raise ValueError(f"RNNLAB_TRITON_COLUMN_PROGRAMS: expected a positive integer, "
                         f"got {wanted!r}")
    blocks = block_sizes(batch, hidden)
    columns = min(int(wanted), triton.cdiv(hidden, blocks["BLOCK_H"]))
    if columns == 1:
        return 1, "cta"
    tiles = triton.cdiv(batch, blocks["BLOCK_B"])
    if (device.type != "cuda" or os.environ.get("RNNLAB_TRITON_SYNC") == "launch"
            or tiles * columns > torch.cuda.get_device_properties(device).multi_processor_count):
        return columns, "launch"
    return columns, "grid"


def launch(kernel, batch: int, hidden: int, substeps: int, *args, dtype, device,
           **extra) -> None:
    """Run ``kernel`` over ``substeps`` sub-steps on a grid of (tiles of ``BLOCK_B``
    sequences, column programs); see :mod:`rnnlab.backends.triton.kernels_common`."""
    blocks = block_sizes(batch, hidden)
    columns, sync = column_programs(batch, hidden, device)
    grid = (triton.cdiv(batch, blocks["BLOCK_B"]), columns)
    options = dict(**blocks, PRECISION=precision(dtype, device), SYNC=sync, **extra)
    # the grid barrier's arrivals, per tile (the other modes never read it)
    counters = torch.zeros(grid[0] if sync == "grid" else 0, dtype=torch.int32, device=device)
    if sync == "launch":
        for s in range(substeps):
            kernel[grid](*args, s, s + 1, counters, **options)
    else:
        kernel[grid](*args, 0, substeps, counters, **options)


def float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a contiguous float32 tensor."""
    return t.to(torch.float32).contiguous()


def masked_output(states: torch.Tensor, mask, dtype) -> torch.Tensor:
    """The outputs y_t = h_t, 0 on padded steps, in the layer's dtype; ``states`` (T, B, H)."""
    y = states if mask is None else torch.where(mask, states, 0.0)
    return y.to(dtype)


def grad_needed(*tensors) -> bool:
    """Whether autograd will need gradients of any of ``tensors`` (grad mode on and one requires grad)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
