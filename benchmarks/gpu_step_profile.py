"""Where a step of the Triton engine's recurrence goes: its time split into the recurrent
product, the point-wise epilogue and the synchronisation of the column programs, on a GPU.

For each family (LSTM, GRU, RNN), batch B, hidden size H and dtype, one plain unidirectional
layer on ``backend="triton"`` runs training steps (forward + backward of ``output.sum()``) while
its kernel launches are timed with CUDA events. Beside each of its recurrent kernels, on the
same grid and launch plan (:func:`rnnlab.backends.triton.launch.plan_for`: block sizes, column
programs, resident or streamed ``W_hh``, ``SYNC``) and over the same number of sub-steps, run:

  * ``barrier_kernel``: only the sub-steps' synchronisation (:func:`substep_end`);
  * ``product_kernel``: the recurrent product of every gate (forward ``h̄_{t-1} W_hhᵀ`` with
    :func:`gate_product`, backward ``da_t W_hh`` with :func:`state_product`, the same helpers
    as the engine's kernels, resident or streamed as planned) on an operand that the previous
    sub-step wrote, then the synchronisation.

Per time step (µs, medians over the rounds; the three add up to the layer's kernel / T)::

    barrier  = barrier_kernel / T
    product  = (product_kernel - barrier_kernel) / T
    epilogue = (layer's kernel - product_kernel) / T     (the cell, its loads and stores)

The split is of the recurrent kernels alone; the GEMMs around them (input projection, weight
gradients) are not in it.

    python benchmarks/gpu_step_profile.py              # B 8/64, H 256/1024, T 256, bf16 + fp32
    python benchmarks/gpu_step_profile.py --families LSTM --batches 8 --hiddens 1024
    python benchmarks/gpu_step_profile.py --smoke      # tiny: on the GPU, or on the CPU under
                                                       # TRITON_INTERPRET=1; times nothing

Writes ``benchmarks/results/gpu_step_profile.md`` (``--out``), rewritten after every row.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

import rnnlab
from rnnlab.backends.triton import launch as launch_module
from rnnlab.backends.triton.kernels_common import (
    column_block,
    gate_operand,
    gate_product,
    operand_tile,
    state_product,
    substep_end,
    tile_rows,
)

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@triton.jit
def barrier_kernel(lengths_ptr, S0, S1, sync_ptr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                   BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, SYNC: tl.constexpr,
                   H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """Sub-steps ``S0 ≤ s < S1`` that only synchronise the tile's programs."""
    for s in range(S0, S1):
        substep_end(sync_ptr, tl.program_id(0), s - S0, SYNC)


@triton.jit
def product_kernel(buf_ptr, w_ptr, lengths_ptr, scale, B, H, S0, S1, sync_ptr,
                   BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                   PRECISION: tl.constexpr, SYNC: tl.constexpr, H_PAD: tl.constexpr,
                   RESIDENT: tl.constexpr, GATES: tl.constexpr, BACKWARD: tl.constexpr):
    """Sub-steps of the recurrent product alone. ``buf`` holds two slots of the operand, (B, H)
    forward (``h̄``), (B, GATES·H) backward (the gate gradients); sub-step ``s`` multiplies slot
    ``s % 2`` by ``W`` (GATES·H, H) for the program's columns, sums the gates, and writes the
    result (times ``scale``, to keep it bounded) into slot ``(s + 1) % 2`` (backward: into
    every gate block), the operand of the next sub-step."""
    tile, rows, row_mask, _ = tile_rows(lengths_ptr, B, BLOCK_B)
    if BACKWARD:
        width = GATES * H
    else:
        width = H
    # as the engine's kernels: resident, the program's slices loaded once (unused ones: w0)
    w0 = gate_operand(w_ptr, 0, H, BLOCK_H, H_PAD, not BACKWARD, PRECISION, RESIDENT)
    w1 = w0
    w2 = w0
    w3 = w0
    if GATES > 1:
        w1 = gate_operand(w_ptr, 1, H, BLOCK_H, H_PAD, not BACKWARD, PRECISION, RESIDENT)
        w2 = gate_operand(w_ptr, 2, H, BLOCK_H, H_PAD, not BACKWARD, PRECISION, RESIDENT)
    if GATES > 3:
        w3 = gate_operand(w_ptr, 3, H, BLOCK_H, H_PAD, not BACKWARD, PRECISION, RESIDENT)
    for s in range(S0, S1):
        a_ptr = buf_ptr + (s % 2) * B * width
        out_ptr = buf_ptr + ((s + 1) % 2) * B * width
        if RESIDENT and not BACKWARD:
            a_tile = operand_tile(a_ptr, H, rows, row_mask, H, w0, H_PAD)
        else:
            a_tile = a_ptr
        for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
            cols, col_mask, tile_mask, _ = column_block(j, rows, row_mask, H, BLOCK_H)
            acc = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
            if BACKWARD:
                acc = state_product(acc, a_ptr, width, w_ptr, w0, 0, rows, row_mask, cols,
                                    col_mask, H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
                if GATES > 1:
                    acc = state_product(acc, a_ptr, width, w_ptr, w1, 1, rows, row_mask, cols,
                                        col_mask, H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
                    acc = state_product(acc, a_ptr, width, w_ptr, w2, 2, rows, row_mask, cols,
                                        col_mask, H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
                if GATES > 3:
                    acc = state_product(acc, a_ptr, width, w_ptr, w3, 3, rows, row_mask, cols,
                                        col_mask, H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
            else:
                acc = gate_product(acc, a_ptr, a_tile, w_ptr, w0, 0, rows, row_mask, cols,
                                   col_mask, H, BLOCK_K, PRECISION, RESIDENT)
                if GATES > 1:
                    acc = gate_product(acc, a_ptr, a_tile, w_ptr, w1, 1, rows, row_mask, cols,
                                       col_mask, H, BLOCK_K, PRECISION, RESIDENT)
                    acc = gate_product(acc, a_ptr, a_tile, w_ptr, w2, 2, rows, row_mask, cols,
                                       col_mask, H, BLOCK_K, PRECISION, RESIDENT)
                if GATES > 3:
                    acc = gate_product(acc, a_ptr, a_tile, w_ptr, w3, 3, rows, row_mask, cols,
                                       col_mask, H, BLOCK_K, PRECISION, RESIDENT)
            acc = acc * scale
            at = rows[:, None] * width + cols[None, :]
            if BACKWARD:
                for g in tl.static_range(GATES):
                    tl.store(out_ptr + at + g * H, acc, mask=tile_mask)
            else:
                tl.store(out_ptr + at, acc, mask=tile_mask)
        substep_end(sync_ptr, tile, s - S0, SYNC)


@contextlib.contextmanager
def timed_launches(family: str, records: list):
    """While inside, every launch of the family's Triton module appends (kernel name,
    substeps, start event, end event, the launch's arguments) to ``records``."""
    module = importlib.import_module(f"rnnlab.backends.triton.{family.lower()}")
    original = module.launch

    def timed(kernel, batch, hidden, substeps, *args, **kwargs):
        start, end = (torch.cuda.Event(enable_timing=True) if torch.cuda.is_available()
                      else None for _ in range(2))
        if start is not None:
            start.record()
        original(kernel, batch, hidden, substeps, *args, **kwargs)
        if end is not None:
            end.record()
        records.append((kernel.fn.__name__, substeps, start, end, (batch, hidden, kwargs)))

    module.launch = timed
    try:
        yield
    finally:
        module.launch = original


def elapsed_us(start, end) -> float:
    return start.elapsed_time(end) * 1e3 if start is not None else 0.0


def timed_us(fn) -> float:
    """One call of ``fn`` timed with CUDA events (0 off the GPU: the smoke test)."""
    if not torch.cuda.is_available():
        fn()
        return 0.0
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    return elapsed_us(start, end)


def synthetic_runs(family: str, launch_args, substeps: int, backward: bool, device):
    """The barrier-only and product-only kernels on the grid and plan of one of the layer's
    launches (``launch_args`` = (batch, hidden, its keyword arguments))."""
    batch, hidden, kwargs = launch_args
    gates, dtype = GATES[family], kwargs["dtype"]
    common = dict(dtype=dtype, device=device, gates=gates, backward=backward)
    lengths = torch.full((batch,), substeps, dtype=torch.int32, device=device)
    width = gates * hidden if backward else hidden
    buf = torch.randn(2, batch, width, device=device)
    w = (torch.randn(gates * hidden, hidden, device=device) / hidden**0.5).to(dtype)
    scale = 1.0 / gates

    def barrier():
        launch_module.launch(barrier_kernel, batch, hidden, substeps, lengths, **common)

    def product():
        launch_module.launch(product_kernel, batch, hidden, substeps, buf, w, lengths, scale,
                             batch, hidden, **common, GATES=gates, BACKWARD=backward)

    return barrier, product


def profile_row(family: str, B: int, H: int, T: int, dtype, rounds: int, device) -> dict:
    """Median µs per step of the layer's forward and backward kernels and their split."""
    torch.manual_seed(0)
    layer = getattr(rnnlab, family)(H, H, backend="triton", device=device, dtype=dtype)
    x = torch.randn(T, B, H, device=device, dtype=dtype)
    samples: dict[str, list[float]] = {}
    plans: dict[str, str] = {}
    synthetic = {}
    for r in range(rounds + 1):  # round 0 compiles and warms up
        records: list = []
        with timed_launches(family, records):
            layer.zero_grad(set_to_none=True)
            layer(x)[0].sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        for name, substeps, start, end, launch_args in records:
            phase = "backward" if "backward" in name else "forward"
            if phase not in synthetic:
                synthetic[phase] = (substeps, synthetic_runs(family, launch_args, substeps,
                                                             phase == "backward", device))
                plan = launch_module.plan_for(launch_args[0], launch_args[1], device,
                                              GATES[family], launch_args[2]["dtype"],
                                              phase == "backward")
                plans[phase] = (f"{plan['columns']}×{triton.cdiv(B, plan['BLOCK_B'])} programs, "
                                f"{'resident' if plan.get('RESIDENT') else 'streamed'}, "
                                f"{plan['SYNC']}")
            if r:
                samples.setdefault(f"{phase} kernel", []).append(elapsed_us(start, end))
        for phase, (_, (barrier, product)) in synthetic.items():
            barrier_us, product_us = timed_us(barrier), timed_us(product)
            if r:
                samples.setdefault(f"{phase} barrier", []).append(barrier_us)
                samples.setdefault(f"{phase} product", []).append(product_us)
    med = {k: statistics.median(v) for k, v in samples.items()}
    row = {}
    for phase in synthetic:  # per time step: the three parts add up to the kernel's time
        kernel, barrier, product = (med[f"{phase} {part}"] for part in ("kernel", "barrier",
                                                                         "product"))
        row[phase] = dict(plan=plans[phase], step=kernel / T, barrier=barrier / T,
                          product=(product - barrier) / T, epilogue=(kernel - product) / T)
    return row


def machine(device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        gpu = f"{p.name}, {p.multi_processor_count} SMs"
        versions = (f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
                    f"Triton {triton.__version__}")
    else:
        gpu, versions = "no GPU (Triton interpreter)", f"torch {torch.__version__}"
    return f"{gpu}; {versions}; {platform.node()}, {time.strftime('%Y-%m-%d')}"


def write_report(out: Path, lines: list[str], header: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + "\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="LSTM,GRU,RNN")
    parser.add_argument("--batches", default="8,64")
    parser.add_argument("--hiddens", default="256,1024")
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--dtypes", default="bf16,fp32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "gpu_step_profile.md")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one round: checks the script (CPU: TRITON_INTERPRET=1)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.smoke:
        args.families, args.batches, args.hiddens, args.dtypes = "LSTM,GRU,RNN", "3", "20", "fp32"
        args.length, args.rounds = 4, 1
    header = (f"# Where a step of the Triton engine goes\n\n{machine(device)}\n\n"
              f"`python {' '.join(sys.argv)}`: one layer, training step, T = {args.length}; µs "
              "per step (medians of the rounds), split as `benchmarks/gpu_step_profile.py` "
              "says: product = product-only kernel − barrier-only kernel, epilogue = the "
              "layer's kernel − product-only kernel.\n\n"
              "| family | dtype | B | H | pass | plan | µs/step | product | epilogue | barrier |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n")
    lines: list[str] = []
    for family in args.families.split(","):
        for dtype_name in args.dtypes.split(","):
            for B in map(int, args.batches.split(",")):
                for H in map(int, args.hiddens.split(",")):
                    row = profile_row(family, B, H, args.length, DTYPES[dtype_name],
                                      args.rounds, device)
                    for phase, r in row.items():
                        lines.append(f"| {family} | {dtype_name} | {B} | {H} | {phase} | "
                                     f"{r['plan']} | {r['step']:.1f} | {r['product']:.1f} | "
                                     f"{r['epilogue']:.1f} | {r['barrier']:.1f} |")
                        print(lines[-1], flush=True)
                    write_report(args.out, lines, header)


if __name__ == "__main__":
    main()
