"""Offline resource report of the Triton engine's recurrent kernels on Hopper (sm_90), with no
GPU: Triton's own compiler and ptxas build the forward and backward kernels of the LSTM, GRU
and RNN with the block sizes the host picks on a 132-SM H200
(:func:`rnnlab.backends.triton.launch.schedule`), streamed and resident, and the report gives
per kernel (the layer-normalised LSTM and GRU as LN-LSTM, LN-GRU) the registers per thread, the bytes spilled, the shared memory, ``num_warps``, and
whether the recurrent weights stayed on chip: every load of ``W_hh`` outside the time loop
in the TTGIR (resident) or inside it (streamed).

    python benchmarks/kernel_resources.py                      # the full grid, ~15 min
    python benchmarks/kernel_resources.py --hiddens 256 --batches 8 --families LSTM
    python benchmarks/kernel_resources.py --out benchmarks/results/kernel_resources_sm90.md
    python benchmarks/kernel_resources.py --families LN-LSTM,LN-GRU \
        --rows-from benchmarks/results/kernel_resources_sm90.md --out …   # the other rows kept
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from rnnlab.activations import NAMES
from rnnlab.backends.triton.gru_kernels import gru_backward_kernel, gru_forward_kernel
from rnnlab.backends.triton.launch import RESIDENT_BUDGET, resident_bytes, schedule
from rnnlab.backends.triton.lstm_kernels import lstm_backward_kernel, lstm_forward_kernel
from rnnlab.backends.triton.rnn_kernels import rnn_backward_kernel, rnn_forward_kernel

SMS = 132  # an H200
TARGET = GPUTarget("cuda", 90, 32)
SHARED_LIMIT = 227 * 1024  # sm_90's opt-in shared memory per block
KERNELS = {  # family: (gates, forward, backward, the kernels' options)
    "LSTM": (4, lstm_forward_kernel, lstm_backward_kernel,
             dict(PEEPHOLE=False, HAS_CLIP=False, COUPLED=False, OUT_ACT=NAMES.index("tanh"),
                  ZONE_H=0, ZONE_C=0, PROJ=False, LAYER_NORM=False)),
    "GRU": (3, gru_forward_kernel, gru_backward_kernel,
            dict(RESET_AFTER=True, HAS_BIAS=True, ZONE=0, LAYER_NORM=False)),
    "RNN": (1, rnn_forward_kernel, rnn_backward_kernel, dict(RELU=False, ZONE=0)),
    "LN-LSTM": (4, lstm_forward_kernel, lstm_backward_kernel,
                dict(PEEPHOLE=False, HAS_CLIP=False, COUPLED=False, OUT_ACT=NAMES.index("tanh"),
                     ZONE_H=0, ZONE_C=0, PROJ=False, LAYER_NORM=True)),
    "LN-GRU": (3, gru_forward_kernel, gru_backward_kernel,
               dict(RESET_AFTER=True, HAS_BIAS=True, ZONE=0, LAYER_NORM=True)),
}
COMMON = dict(TRAINING=True, REC=False, GATE_ACT=NAMES.index("sigmoid"),
              CAND_ACT=NAMES.index("tanh"))
DTYPES = {"bf16": (torch.bfloat16, "*bf16", "ieee"), "fp32": (torch.float32, "*fp32", "tf32")}
INTS = {"T", "B", "H", "P", "S0", "S1"}


def signature(fn, w_type: str, constexprs: dict) -> tuple[dict, dict]:
    """Triton's signature of ``fn``: pointers (W_hh in the weights' type), ints, floats."""
    sig, values = {}, {}
    for k, name in enumerate(fn.arg_names):
        if name in constexprs:
            sig[name], values[(k,)] = "constexpr", constexprs[name]
        elif name.endswith("_ptr"):
            sig[name] = {"w_hh_ptr": w_type, "lengths_ptr": "*i32", "sync_ptr": "*i32",
                         "clipped_ptr": "*i8"}.get(name, "*fp32")
        else:
            sig[name] = "i32" if name in INTS else "fp32"
    return sig, values


def weight_loads(ttgir: str) -> tuple[int, int]:
    """Loads of the weights (values derived from the ``w_hh_ptr`` argument) outside and inside
    loops of the TTGIR: resident weights are all loaded outside, before the time loop."""
    tainted, outside, inside, stack = {"%w_hh_ptr"}, 0, 0, []
    for line in ttgir.splitlines():
        depth = stack.count("for")
        result = re.match(r"\s*(%[\w#]+)(?::\d+)? = (\S+)", line)
        operands = set(re.findall(r"%[\w]+", line.split("=", 1)[1] if result else line))
        if result and operands & tainted and result.group(2) in (
                "tt.splat", "tt.addptr", "tt.broadcast", "tt.expand_dims", "ttg.convert_layout"):
            tainted.add(result.group(1).split("#")[0])
        if result and result.group(2) == "tt.load" and operands & tainted:
            if depth:
                inside += 1
            else:
                outside += 1
        for ch in line:
            if ch == "{":
                stack.append("for" if "scf.for" in line else "x")
            elif ch == "}" and stack:
                stack.pop()
    return outside, inside


def resources(kernel) -> dict:
    """Registers and spill bytes of a compiled kernel, from ptxas' report (the first of
    Triton's ptxas builds that reads the PTX's version)."""
    tools = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "kernel.ptx"
        ptx.write_text(kernel.asm["ptx"])
        for ptxas in (tools / "ptxas", tools / "ptxas-blackwell"):
            log = subprocess.run([str(ptxas), "-v", "--gpu-name=sm_90a", str(ptx), "-o",
                                  str(Path(tmp) / "kernel.cubin")], capture_output=True,
                                 text=True).stderr
            if "Used" in log:
                break
    regs = re.search(r"Used (\d+) registers", log)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return dict(regs=int(regs.group(1)) if regs else -1,
                spills=int(spill.group(1)) + int(spill.group(2)) if spill else -1)


def compile_kernel(fn, w_type: str, constexprs: dict, num_warps: int, num_stages: int):
    sig, values = signature(fn, w_type, constexprs)
    return triton.compile(ASTSource(fn=fn, signature=sig, constexprs=values), target=TARGET,
                          options=dict(num_warps=num_warps, num_stages=num_stages))


def rows_for(family: str, dtype: str, B: int, H: int, resident: bool, warps: int | None
             ) -> list[dict]:
    """Compile the family's forward and backward for one (dtype, B, H) and form: two rows.
    ``warps``: the resident kernels' ``num_warps`` instead of the host's."""
    gates, forward, backward, options = KERNELS[family]
    torch_dtype, w_type, precision = DTYPES[dtype]
    out = []
    for direction, fn in (("fwd", forward), ("bwd", backward)):
        plan = schedule(B, H, sms=SMS, gates=gates, itemsize=torch_dtype.itemsize,
                        backward=direction == "bwd", layer_norm=options.get("LAYER_NORM", False),
                        resident=False if not resident else None)
        note = ""
        if resident and not plan["RESIDENT"]:  # compile what the host refuses, to show why
            tiles = triton.cdiv(B, plan["BLOCK_B"])
            block_h = max(16, triton.next_power_of_2(triton.cdiv(H, SMS // tiles)))
            plan.update(BLOCK_H=block_h, columns=triton.cdiv(H, block_h), RESIDENT=True,
                        SYNC="grid", num_stages=1, num_warps=8)
            note = "host keeps it streamed"
        if plan["RESIDENT"] and warps:
            plan["num_warps"] = warps
        columns = plan.pop("columns")
        num_warps, num_stages = plan.pop("num_warps", 4), plan.pop("num_stages", 3)
        constexprs = dict(plan, PRECISION=precision, **COMMON, **options)
        if direction == "bwd":
            constexprs.pop("TRAINING")
            if family.endswith("GRU"):
                constexprs.pop("HAS_BIAS")
        kernel = compile_kernel(fn, w_type, constexprs, num_warps, num_stages)
        outside, inside = weight_loads(kernel.asm["ttgir"])
        shared = kernel.metadata.shared
        estimate = resident_bytes(gates, plan["H_PAD"], plan["BLOCK_H"], plan["BLOCK_B"],
                                  torch_dtype.itemsize, direction == "bwd",
                                  options.get("LAYER_NORM", False))
        out.append(dict(family=family, dtype=dtype, B=B, H=H, dir=direction, estimate=estimate,
                        form="resident" if plan["RESIDENT"] else "streamed",
                        BLOCK_B=plan["BLOCK_B"], BLOCK_H=plan["BLOCK_H"], columns=columns,
                        warps=num_warps, stages=num_stages, shared=shared,
                        on_chip="yes" if outside and not inside else "no",
                        loads=f"{outside}/{inside}", fits=shared <= SHARED_LIMIT, note=note,
                        **resources(kernel)))
    return out


def read_rows(path: Path, skip: set[str]) -> list[dict]:
    """The rows of an earlier report (``--out``), but those of the families in ``skip``, with
    their ``resident_bytes`` estimate recomputed."""
    names = ["family", "dtype", "B", "H", "dir", "form", "BLOCK_B", "BLOCK_H", "columns",
             "warps", "regs", "spills", "shared", "loads", "on_chip", "note"]
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(names) or cells[0] in skip or not cells[2].isdigit():
            continue
        r = dict(zip(names, cells))
        r["fits"] = not r["shared"].endswith("(over)")
        for key in ("B", "H", "BLOCK_B", "BLOCK_H", "columns", "warps", "regs", "spills"):
            r[key] = int(r[key])
        r["shared"] = int(r["shared"].split()[0])
        gates, _, _, options = KERNELS[r["family"]]
        torch_dtype = DTYPES[r["dtype"]][0]
        r["estimate"] = resident_bytes(gates, max(16, triton.next_power_of_2(r["H"])),
                                       r["BLOCK_H"], r["BLOCK_B"], torch_dtype.itemsize,
                                       r["dir"] == "bwd", options.get("LAYER_NORM", False))
        rows.append(r)
    return rows


def rule(rows: list[dict]) -> list[str]:
    """What the rows say about the host's resident rule."""
    resident = [r for r in rows if r["form"] == "resident"]
    kept = [r for r in resident if not r["note"]]
    refused = [r for r in resident if r["note"]]
    under = [r for r in resident if r["shared"] > r["estimate"]]
    exact = [r for r in resident if r["shared"] == r["estimate"]]
    spilled = sorted({(r["BLOCK_B"], r["H"], r["dir"]) for r in kept if r["spills"] > 0})
    streamed_spills = [r["spills"] for r in rows if r["form"] == "streamed"]
    lines = ["## Rule", ""]
    if kept:
        lines.append(f"- The {len(kept)} kernels the host keeps resident take at most "
                     f"{max(r['shared'] for r in kept)} bytes of shared memory (sm_90: "
                     f"{SHARED_LIMIT}); their W_hh loads are all before the time loop: "
                     f"{sum(r['on_chip'] == 'yes' for r in kept)}/{len(kept)}.")
    if refused:
        lines.append(f"- The {len(refused)} resident kernels the host refuses take "
                     f"{min(r['shared'] for r in refused)}–{max(r['shared'] for r in refused)} "
                     f"bytes; over the limit: {sum(not r['fits'] for r in refused)}.")
    lines.append(f"- `launch.resident_bytes` (G·H_PAD·BLOCK_H·itemsize + BLOCK_B·H_PAD·(4 "
                 f"backward and layer norms, itemsize plain forward) + 4096) is exact for {len(exact)} of "
                 f"{len(resident)} resident kernels, at least the compiler's figure for "
                 f"{len(resident) - len(under)} (at most "
                 f"{max((r['estimate'] - r['shared'] for r in resident), default=0)} bytes "
                 f"over); under it for {len(under)}.")
    lines.append("- Spilling resident kernels (BLOCK_B, H, direction): "
                 + (", ".join(f"({b}, {h}, {d})" for b, h, d in spilled) or "none")
                 + f"; streamed kernels spill up to {max(streamed_spills, default=0)} bytes.")
    lines += ["", "Implied rule (`launch.schedule`): keep W_hh resident when each program can own "
              "one block (BLOCK_H the smallest power of two ≥ 16 whose blocks fit the SMs left "
              "for a tile) and `resident_bytes` ≤ `RESIDENT_BUDGET`; the shared memory is the "
              "binding limit (a resident kernel over it cannot launch). Resident kernels run "
              "with num_stages = 1 (software pipelining would stage copies of the per-step "
              "operand tiles: 656 KB in the H = 1024 LSTM backward) and `launch.resident_warps`"
              " (4 warps for the forward of a 16-row tile, 8 otherwise: of the 4- and 8-warp "
              "compiles, 8 warps spilled less in every spilling backward and 64-row tile, 4 "
              "warps in 3 of the 4 spilling 16-row forwards).", ""]
    return lines


def report(rows: list[dict], command: str) -> str:
    lines = ["# Resources of the Triton engine's recurrent kernels on sm_90 (offline compile)", "",
             f"- Triton {triton.__version__}, torch {torch.__version__}, Python "
             f"{platform.python_version()}, {platform.machine()}; target {TARGET.backend} "
             f"sm_{TARGET.arch}; block sizes from `launch.schedule` for {SMS} SMs (an H200)",
             f"- command: `{command}`",
             "- regs: registers per thread (ptxas); spills: spill store + load bytes; shared: "
             "bytes of shared memory per program (Triton's metadata; sm_90 allows "
             f"{SHARED_LIMIT}); W loads out/in: loads of W_hh outside / inside the loops in the "
             "TTGIR; on chip: every W_hh load before the time loop",
             f"- host budget (`launch.RESIDENT_BUDGET`): {RESIDENT_BUDGET} bytes", "",
             "| family | dtype | B | H | dir | form | BLOCK_B | BLOCK_H | programs | warps | "
             "regs | spills | shared | W loads out/in | on chip | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fits = "" if r["fits"] else " (over)"
        lines.append(f"| {r['family']} | {r['dtype']} | {r['B']} | {r['H']} | {r['dir']} | "
                     f"{r['form']} | {r['BLOCK_B']} | {r['BLOCK_H']} | {r['columns']} | "
                     f"{r['warps']} | {r['regs']} | {r['spills']} | {r['shared']}{fits} | "
                     f"{r['loads']} | {r['on_chip']} | {r['note']} |")
    return "\n".join(lines + ["", *rule(rows)]) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(KERNELS))
    parser.add_argument("--dtypes", default="bf16,fp32")
    parser.add_argument("--hiddens", default="256,512,1024")
    parser.add_argument("--batches", default="8,64")
    parser.add_argument("--forms", default="streamed,resident")
    parser.add_argument("--resident-warps", type=int, default=None,
                        help="num_warps of the resident kernels (default: the host's)")
    parser.add_argument("--rows-from", type=Path,
                        help="an earlier report: keep its rows of the families not compiled")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = []
    for family in args.families.split(","):
        for dtype in args.dtypes.split(","):
            for B in map(int, args.batches.split(",")):
                for H in map(int, args.hiddens.split(",")):
                    for resident in (form == "resident" for form in args.forms.split(",")):
                        for row in rows_for(family, dtype, B, H, resident,
                                            args.resident_warps):
                            rows.append(row)
                            print(row, flush=True)
    if args.rows_from:
        rows = read_rows(args.rows_from, set(args.families.split(","))) + rows
    text = report(rows, "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]))
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
