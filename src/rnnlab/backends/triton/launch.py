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


# On-chip budget of a resident program on Hopper: sm_90's 227 KB of shared memory per block.
# The offline compile (benchmarks/results/kernel_resources_sm90.md) keeps the resident W_hh
# slices in shared memory and stages each step's operand tile there beside them; see
# resident_bytes.
RESIDENT_BUDGET = 227 * 1024


def resident_bytes(gates: int, h_pad: int, block_h: int, block_b: int, itemsize: int,
                   backward: bool = False, layer_norm: bool = False) -> int:
    """Shared memory of a resident program, as the sm_90 compile lays it out: its ``gates``
    slices of W_hh (h_pad × block_h weights of ``itemsize`` bytes), the step's operand tile
    (block_b × h_pad: the backward's gate gradients staged as float32, the forward's h̄_{t-1}
    in the weights' dtype, except in the layer-norm kernels (``layer_norm``), whose forward
    takes float32's room too) and up to 4 KB of scratch, an upper bound (at most 4 KB over the
    compiler's figure)."""
    operand = 4 if backward or layer_norm else itemsize
    return gates * h_pad * block_h * itemsize + block_b * h_pad * operand + 4096


def resident_warps(block_b: int, backward: bool) -> int:
    """``num_warps`` of a resident kernel, the fewest spills in the sm_90 compile: 4 for the
    forward of a 16-row tile (mma.sync), 8 for the backward and for 64-row tiles."""
    return 4 if block_b < 64 and not backward else 8


def _env_choice(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None:
        return None
    if value not in ("0", "1"):
        raise ValueError(f"{name}: expected 0 or 1, got {value!r}")
    return value == "1"


def _env_columns() -> int | None:
    wanted = os.environ.get("RNNLAB_TRITON_COLUMN_PROGRAMS")
    if wanted is not None and (not wanted.isdigit() or int(wanted) < 1):
        raise ValueError(f"RNNLAB_TRITON_COLUMN_PROGRAMS: expected a positive integer, "
                         f"got {wanted!r}")
    return None if wanted is None else int(wanted)


def schedule(batch: int, hidden: int, *, sms: int | None, gates: int | None = None,
             itemsize: int = 4, backward: bool = False, layer_norm: bool = False,
             columns: int | None = None, resident: bool | None = None,
             launch_sync: bool = False) -> dict:
    """How a kernel runs: its block sizes, ``columns`` programs per tile, their ``SYNC`` and,
    for a kernel with the ``RESIDENT`` option, whether each program keeps its slices of W_hh
    on chip (``RESIDENT``, ``H_PAD``). ``sms``: the GPU's multiprocessors (None off the GPU);
    ``gates``: the gate blocks of W_hh (LSTM 4, GRU 3, RNN 1, with or without layer norm; 0
    for a kernel that has the option but no resident form (the projected LSTM), None for one
    without the option); ``itemsize``: bytes of a
    weight; ``backward``: the BPTT kernel (its operand and warps differ, see
    :func:`resident_bytes`); ``layer_norm``: a layer-norm kernel (its forward operand too); ``columns``, ``resident``: what the environment asks (None: the
    default);
    ``launch_sync``: one launch per sub-step asked for.

    Streamed (today's rule): ``BLOCK_H`` = 16 … 64 columns; on the GPU as many programs per
    tile as blocks, up to the multiprocessors left for each tile; off it one (or ``columns``).
    Resident: each program owns exactly one block, ``BLOCK_H`` the smallest power of two ≥ 16
    whose blocks fit the programs a tile has (the multiprocessors left for it, or
    ``columns``), and :func:`resident_bytes` fit :data:`RESIDENT_BUDGET`, with the tallest tile
    that lets them fit (``BLOCK_B`` halved down to 16: shorter tiles shrink the operand tile and
    spread the tiles over more multiprocessors: the forward of B = 64, H = 1024 in bfloat16 fits
    at 32); it runs with
    :func:`resident_warps` and no software pipelining (``num_stages`` 1: the pipeliner would
    stage copies of the step's operand tiles). The default is resident on the GPU wherever
    that holds, streamed elsewhere; ``resident=True`` where it cannot hold is an error that
    says why.
    """
    blocks = block_sizes(batch, hidden)
    tiles = triton.cdiv(batch, blocks["BLOCK_B"])
    h_pad = max(16, triton.next_power_of_2(hidden))
    reason, fit = None, None
    if not gates:
        reason = ("this kernel has no resident form (the projected LSTM)"
                  if gates == 0 else
                  "this kernel has no RESIDENT option")
    else:  # the tallest tile (BLOCK_B halved down to 16) whose programs fit on chip
        block_b = blocks["BLOCK_B"]
        while fit is None and block_b >= 16:
            n_tiles = triton.cdiv(batch, block_b)
            programs = columns if columns is not None else sms // n_tiles if sms else 1
            block_h = max(16, triton.next_power_of_2(triton.cdiv(hidden, max(programs, 1))))
            need = resident_bytes(gates, h_pad, block_h, block_b, itemsize, backward,
                                  layer_norm)
            if programs < 1:
                reason = reason or f"{n_tiles} tiles of {block_b} sequences outnumber the {sms} SMs"
            elif sms and need > RESIDENT_BUDGET:
                reason = reason or (
                    f"a program's slices of W_hh ({gates} × {h_pad} × {block_h} weights of "
                    f"{itemsize} bytes) and its operand tile ({block_b} rows) take {need} "
                    f"bytes, over the {RESIDENT_BUDGET} bytes of shared memory a program may use")
            else:
                fit = block_b, n_tiles, block_h
            block_b //= 2
        if fit is not None:
            reason = None
    if resident and reason:
        raise ValueError(f"RNNLAB_TRITON_RESIDENT=1: the weights cannot stay resident for "
                         f"B={batch}, H={hidden}: {reason}")
    on_chip = reason is None and (resident if resident is not None else sms is not None)
    if on_chip:
        blocks["BLOCK_B"], tiles, blocks["BLOCK_H"] = fit
        n = triton.cdiv(hidden, blocks["BLOCK_H"])
    else:
        wanted = columns if columns is not None else max(1, sms // tiles) if sms else 1
        n = min(wanted, triton.cdiv(hidden, blocks["BLOCK_H"]))
    if n == 1:
        sync = "cta"
    elif not sms or launch_sync or tiles * n > sms:
        sync = "launch"
    else:
        sync = "grid"
    plan = dict(blocks, columns=n, SYNC=sync)
    if gates is not None:
        plan.update(RESIDENT=on_chip, H_PAD=h_pad)
    if on_chip:
        plan.update(num_warps=resident_warps(blocks["BLOCK_B"], backward), num_stages=1)
    return plan


def plan_for(batch: int, hidden: int, device: torch.device, gates: int | None = None,
             dtype: torch.dtype = torch.float32, backward: bool = False,
             layer_norm: bool = False) -> dict:
    """:func:`schedule` for ``device`` and the environment: ``RNNLAB_TRITON_COLUMN_PROGRAMS=n``
    (programs per tile), ``RNNLAB_TRITON_RESIDENT=0/1`` (force the weights streamed or
    resident, for a kernel with the option), ``RNNLAB_TRITON_SYNC=launch`` (one launch per
    sub-step)."""
    on_gpu = device.type == "cuda"
    sms = torch.cuda.get_device_properties(device).multi_processor_count if on_gpu else None
    resident = _env_choice("RNNLAB_TRITON_RESIDENT") if gates is not None else None
    return schedule(batch, hidden, sms=sms, gates=gates, itemsize=dtype.itemsize,
                    backward=backward, layer_norm=layer_norm, columns=_env_columns(),
                    resident=resident,
                    launch_sync=os.environ.get("RNNLAB_TRITON_SYNC") == "launch")


def column_programs(batch: int, hidden: int, device: torch.device) -> tuple[int, str]:
    """How many programs share a tile's hidden units in a streamed kernel, and how they
    synchronise (the ``SYNC`` of :func:`~rnnlab.backends.triton.kernels_common.substep_end`).

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
    plan = plan_for(batch, hidden, device)
    return plan["columns"], plan["SYNC"]


def launch(kernel, batch: int, hidden: int, substeps: int, *args, dtype, device,
           gates: int | None = None, backward: bool = False, **extra) -> None:
    """Run ``kernel`` over ``substeps`` sub-steps on a grid of (tiles of ``BLOCK_B``
    sequences, column programs) as :func:`plan_for` decides (``gates``, ``backward`` and the
    kernel's ``LAYER_NORM`` option: see :func:`schedule`); see
    :mod:`rnnlab.backends.triton.kernels_common`."""
    plan = plan_for(batch, hidden, device, gates, dtype, backward,
                    extra.get("LAYER_NORM", False))
    grid = (triton.cdiv(batch, plan["BLOCK_B"]), plan.pop("columns"))
    sync = plan["SYNC"]
    options = dict(**plan, PRECISION=precision(dtype, device), **extra)
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
