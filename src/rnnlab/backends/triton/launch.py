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

    Default: on CUDA, as many column programs per tile as there are ``BLOCK_H`` blocks of
    hidden units, up to the streaming multiprocessors left for each tile (one program per SM,
    so the whole grid is resident and its barrier cannot deadlock), synchronised by a grid
    barrier. Measured on an H200 with ``benchmarks/gpu_layers.py`` (LSTM and GRU, bf16,
    B ∈ {8, 64}, H ∈ {256, 1024}, T = 1024), splitting the columns this way ran 3–15× faster
    than one program per tile in every row. Elsewhere (the interpreter) one
    program per tile (``"cta"``). ``RNNLAB_TRITON_COLUMN_PROGRAMS=n`` asks for ``n`` (capped
    at the number of blocks); a grid that does not fit on the GPU at once, the interpreter,
    or ``RNNLAB_TRITON_SYNC=launch`` synchronise with one launch per sub-step instead.
    """
    wanted = os.environ.get("RNNLAB_TRITON_COLUMN_PROGRAMS")
    if wanted is not None and (not wanted.isdigit() or int(wanted) < 1):
        raise ValueError(f"RNNLAB_TRITON_COLUMN_PROGRAMS: expected a positive integer, "
                         f"got {wanted!r}")
    blocks = block_sizes(batch, hidden)
    tiles = triton.cdiv(batch, blocks["BLOCK_B"])
    on_gpu = device.type == "cuda"
    sms = torch.cuda.get_device_properties(device).multi_processor_count if on_gpu else 1
    if wanted is None:
        wanted = max(1, sms // tiles) if on_gpu else 1
    columns = min(int(wanted), triton.cdiv(hidden, blocks["BLOCK_H"]))
    if columns == 1:
        return 1, "cta"
    if not on_gpu or os.environ.get("RNNLAB_TRITON_SYNC") == "launch" or tiles * columns > sms:
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


def activation_kwargs(role: str, act) -> dict:
    """A kernel's keyword arguments for one activation (an :class:`rnnlab.activations.Activation`):
    ``{ROLE}_ACT`` its code (a ``tl.constexpr``), ``{role}_alpha``, ``{role}_beta`` its
    parameters; ``role`` is "gate", "cand" or "out"."""
    code, alpha, beta = act.kernel_args
    return {f"{role.upper()}_ACT": code, f"{role}_alpha": alpha, f"{role}_beta": beta}


def recurrent_input(rec, h_all: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Recurrent dropout as the kernels take it: the mask ``m`` as float32 (B, H) and the
    buffer ``h̄`` (T+1, B, H) of ``m∘h_t`` the forward kernel writes beside the state, its first
    slot ``m∘h_0`` filled here; without a mask (``rec`` None) ``h_all`` stands in for both."""
    if rec is None:
        return h_all, h_all
    m = float32(rec)
    hbar = torch.empty_like(h_all)
    torch.mul(h_all[0], m, out=hbar[0])
    return m, hbar


def zone_input(weights, placeholder: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Zoneout keep weights as the kernels read them, with their ``ZONE`` mode (see
    :func:`~rnnlab.backends.triton.kernels_common.zone_weights`): 0 none (``placeholder``
    stands in), 1 a (T, B, H) tensor, 2 one value everywhere (the eval-mode expectation, an
    expanded constant, read without materialising it)."""
    if weights is None:
        return placeholder, 0
    if all(stride == 0 for stride in weights.stride()):
        return weights, 2
    return weights.contiguous(), 1


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
