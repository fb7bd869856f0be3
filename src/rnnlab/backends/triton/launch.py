"""Host-side helpers of the Triton engine: what every family's Function passes its kernels."""

from __future__ import annotations

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


def precision(dtype: torch.dtype, device: torch.device) -> str:
    """The kernels' ``PRECISION`` (see :func:`~rnnlab.backends.triton.kernels_common.dot_accumulate`):
    TF32 for float32 where torch allows it for its own GEMMs, else exact float32 ("ieee", which
    half types ignore); bfloat16 on the interpreter widens the weights ("float32")."""
    if device.type != "cuda":
        return "float32" if dtype == torch.bfloat16 else "ieee"
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def launch(kernel, batch: int, hidden: int, *args, dtype, device, **extra) -> None:
    """Run ``kernel`` with one program per tile of ``BLOCK_B`` sequences."""
    blocks = block_sizes(batch, hidden)
    grid = (triton.cdiv(batch, blocks["BLOCK_B"]),)
    kernel[grid](*args, **blocks, PRECISION=precision(dtype, device), **extra)


def float32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float32).contiguous()


def masked_output(states: torch.Tensor, mask, dtype) -> torch.Tensor:
    """The outputs y_t = h_t, 0 on padded steps, in the layer's dtype; ``states`` (T, B, H)."""
    y = states if mask is None else torch.where(mask, states, 0.0)
    return y.to(dtype)


def grad_needed(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
