"""Benchmark of rnnlab's Triton engine (``backend="triton"``) against torch.nn (cuDNN) on a GPU.

For each family (LSTM, GRU, RNN-tanh, SRU), batch B, hidden size H (= input size) and length T,
times in one process, interleaved round by round with CUDA events:

  * ``triton <dtype>`` the rnnlab layer on the Triton engine, for each of ``--dtypes``,
  * ``torch bf16``, ``torch fp16``, ``torch fp32`` the torch layer (cuDNN) in each dtype, with
    the same weights (float16 is where cuDNN has its persistent kernels),

for inference (forward under ``torch.no_grad``) and training (forward + backward of
``output.sum()``; the input is data). float32 runs under torch's TF32 settings as found: by
default cuDNN's RNNs and the triton kernels both use TF32 (``torch.backends.cudnn.allow_tf32``).
SRU rows time ``rnnlab.SRU`` on the Triton engine against ``torch.nn.LSTM`` of the same size
(the SRU paper's claim). ``--proj-size P`` also times every LSTM configuration with H > P as a
projected LSTM (``proj_size=P``, rows ``LSTM-projP``, crossover class ``projection``) against
torch.nn's projected LSTM; those rows are outside the acceptance targets. Named configurations: B=16, T=1024, I=H=768 and B=64, T=100, I=H=512.
Reports, per triton dtype, the median µs per time step of every column, the speed-up of the
triton layer over each torch column, its achieved TFLOP/s, the machine, and the acceptance
targets of the Triton engine's issue. The markdown report is rewritten after every
configuration, so a run cut short keeps what it measured.

With ``--crossover FILE`` it also times the rnnlab layer on the engine ``auto`` would otherwise
weigh against triton (``native``, i.e. cuDNN, for LSTM, GRU and RNN; the reference engine for SRU,
which cuDNN cannot run) and adds the rows to the crossover table FILE that ``backend="auto"``
reads on CUDA (:mod:`rnnlab.backends.crossover_table`; rewritten after every configuration too).

    python benchmarks/gpu_layers.py                    # full grid, triton bf16 and fp32
    python benchmarks/gpu_layers.py --families LSTM --batches 8,32 --lengths 1024
    python benchmarks/gpu_layers.py --columns 8   # split each tile's units over 8 programs
    python benchmarks/gpu_layers.py --streamed    # also time the triton layers with their
                                                  # weights streamed (RNNLAB_TRITON_RESIDENT=0)
    python benchmarks/gpu_layers.py --crossover crossover_cuda.json  # and the auto table
    python benchmarks/gpu_layers.py --families LSTM --proj-size 128   # and projected, P = 128
    python benchmarks/gpu_layers.py --smoke       # tiny: on the GPU, or on the CPU under
                                                  # TRITON_INTERPRET=1; checks the script,
                                                  # times nothing
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import rnnlab
from rnnlab.backends import crossover_table

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SHORT = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
TORCH_COLUMNS = {"torch bf16": torch.bfloat16, "torch fp16": torch.float16,
                 "torch fp32": torch.float32}
TORCH_LAYERS = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN,
                "SRU": torch.nn.LSTM}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "SRU": 3}
NAMED = [(16, 768, 1024), (64, 512, 100)]  # (B, H, T)
PEAK = {"bfloat16": 989.0, "float16": 989.0, "float32": 494.0}  # H100 SXM dense TFLOP/s
                                                               # (bf16/fp16; tf32)


def flops_per_step(family: str, B: int, H: int, training: bool, proj: int = 0) -> int:
    """FLOPs of one step: input projection and recurrent product forward; in training also
    the backward recurrent product, dW_ih and dW_hh (the input needs no gradient). With a
    projection to ``proj`` units the recurrent product is over ``proj`` units, and the
    projection's product (forward; backward and dW_hr in training) is added."""
    n = GATES[family] * H
    if family == "SRU":  # no recurrent product
        return 2 * B * n * H * (2 if training else 1)
    passes = 3 if training else 1  # forward; backward and the weight gradient
    recurrent = 2 * B * n * (proj or H) + (2 * B * proj * H if proj else 0)
    return 2 * B * n * H * (2 if training else 1) + recurrent * passes


def crossover_engines(family: str) -> list[str]:
    """The engines timed beside triton for the crossover table: cuDNN (``native``) where it
    runs the family, else the reference engine (SRU)."""
    return ["reference"] if family == "SRU" else ["native"]


def make_layers(family: str, H: int, dtypes: list[str], device, engines=(), proj=0) -> dict:
    """The rnnlab layer on triton and on each of ``engines`` in each of ``dtypes``, and the
    torch layer in each torch column's dtype, all with the torch layer's weights (SRU: the
    triton layer's); ``proj``: the LSTM's ``proj_size``."""
    options = {"proj_size": proj} if proj else {}
    torch_layer = TORCH_LAYERS[family](H, H, device=device, **options)
    layers = {}
    for name in dtypes:
        for engine in ("triton", *engines):
            ours = getattr(rnnlab, family)(H, H, backend=engine, device=device,
                                           dtype=DTYPES[name], **options)
            if family != "SRU":
                ours.load_state_dict(torch_layer.state_dict())
            elif engine != "triton":
                ours.load_state_dict(layers[f"triton {SHORT[name]}"].state_dict())
            if engine == "native":
                ours.flatten_parameters()  # as a user's layer after .to(device): one buffer
            layers[f"{engine} {SHORT[name]}"] = ours
    for column, dtype in TORCH_COLUMNS.items():
        layers[column] = copy.deepcopy(torch_layer).to(dtype)
    return layers


def step_fn(layer, x, training: bool):
    x = x.to(next(layer.parameters()).dtype)
    if training:
        def run():
            layer(x)[0].sum().backward()
    else:
        def run():
            with torch.no_grad():
                layer(x)
    return run


def streamed(fn):
    """``fn`` with the Triton kernels' weights streamed from memory every step
    (``RNNLAB_TRITON_RESIDENT=0``), whatever the host would choose."""
    def run():
        before = os.environ.get("RNNLAB_TRITON_RESIDENT")
        os.environ["RNNLAB_TRITON_RESIDENT"] = "0"
        try:
            fn()
        finally:
            if before is None:
                del os.environ["RNNLAB_TRITON_RESIDENT"]
            else:
                os.environ["RNNLAB_TRITON_RESIDENT"] = before
    return run


def resident_form(family: str, B: int, H: int, dtype, device, proj: int = 0) -> str:
    """Whether the host keeps the family's recurrent weights on chip for (B, H, dtype)."""
    from rnnlab.backends.triton.launch import plan_for

    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}.get(family)
    if gates is None or proj:  # the projected LSTM streams its weights
        return "—"
    return "resident" if plan_for(B, H, device, gates, dtype)["RESIDENT"] else "streamed"


def elapsed_ms(fn, device) -> float:
    if device.type != "cuda":
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    fn()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end)


def measure(family, B, H, T, training, dtypes, device, rounds, warmup, engines=(),
            compare_streamed=False, proj=0) -> list[dict]:
    """One row per triton dtype: the median µs per step of every column, of triton and each of
    ``engines`` (rnnlab layers), and the median (over rounds) of the paired ratios torch time /
    triton time; with ``compare_streamed`` also the triton layer with its weights streamed,
    and the ratio streamed time / triton time. ``proj``: the LSTM's ``proj_size``."""
    layers = make_layers(family, H, dtypes, device, engines, proj)
    x = torch.randn(T, B, H, device=device)
    fns = {name: step_fn(layer, x, training) for name, layer in layers.items()}
    if compare_streamed:
        for name in dtypes:
            fns[f"streamed {SHORT[name]}"] = streamed(fns[f"triton {SHORT[name]}"])
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(elapsed_ms(fn, device) * 1e3 / T)
    med = {name: statistics.median(v) for name, v in samples.items()}
    rows = []
    for name in dtypes:
        ours = f"triton {SHORT[name]}"
        rows.append(dict(
            family=family, proj=proj, dtype=name, B=B, H=H, T=T, mode="train" if training else "infer",
            triton=med[ours], torch={c: med[c] for c in TORCH_COLUMNS},
            engines={e: med[f"{e} {SHORT[name]}"] for e in ("triton", *engines)},
            speedup={c: statistics.median(a / b for a, b in zip(samples[c], samples[ours]))
                     for c in TORCH_COLUMNS},
            tflops=flops_per_step(family, B, H, training, proj) / med[ours] / 1e6))
        if compare_streamed:
            mine = f"streamed {SHORT[name]}"
            rows[-1].update(form=resident_form(family, B, H, DTYPES[name], device, proj),
                            streamed=med[mine], vs_streamed=statistics.median(
                                a / b for a, b in zip(samples[mine], samples[ours])))
    return rows


def label(row: dict) -> str:
    """A row's family, ``LSTM-projP`` for the LSTM projected to P units."""
    return f"{row['family']}-proj{row['proj']}" if row["proj"] else row["family"]


def write_crossover(path: Path, rows: list[dict], source: dict) -> crossover_table.Table:
    """Add the measured rows (plain layers, or the projected LSTM: µs per step of triton and
    the other engines) to the crossover table at ``path``
    (:func:`rnnlab.backends.crossover_table.write`)."""
    return crossover_table.write(path, [
        crossover_table.Row(r["family"], "projection" if r["proj"] else "plain", r["dtype"], r["mode"], r["B"], r["H"], r["T"],
                            r["engines"]) for r in rows], source)


def machine(device) -> list[str]:
    from rnnlab.backends.triton.launch import cudnn_rnn_tf32

    lines = [f"- {platform.platform()}, Python {platform.python_version()}, "
             f"torch {torch.__version__}",
             f"- triton engine: {os.environ.get('RNNLAB_TRITON_COLUMN_PROGRAMS', '1')} "
             f"program(s) per tile of sequences, sync {os.environ.get('RNNLAB_TRITON_SYNC', 'auto')}",
             f"- float32: cuDNN's RNNs and the triton kernels in "
             f"{'TF32' if cudnn_rnn_tf32() else 'IEEE float32'} (torch.backends.cudnn.allow_tf32), "
             f"torch matmuls in {'TF32' if torch.backends.cuda.matmul.allow_tf32 else 'IEEE float32'}"
             " (torch.backends.cuda.matmul.allow_tf32)"]
    try:
        import triton
        lines.append(f"- Triton {triton.__version__}")
    except ImportError:
        pass
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        lines.append(f"- GPU: {p.name}, {p.multi_processor_count} SMs, "
                     f"{p.total_memory / 2**30:.0f} GiB; CUDA {torch.version.cuda}, "
                     f"cuDNN {torch.backends.cudnn.version()}")
    else:
        lines.append("- no GPU: a smoke run under the Triton interpreter; the times mean nothing")
    return lines


def acceptance(rows) -> list[str]:
    """The issue's targets, checked per triton dtype on the rows they name."""
    def verdict(values, target, better):
        if not values:
            return "not measured"
        worst = min(values) if better == "higher" else max(values)
        met = sum((v >= target) if better == "higher" else (v <= target) for v in values)
        return f"{met}/{len(values)} met, worst {worst:.2f}"

    lines = ["| dtype | target | result |", "| --- | --- | --- |"]
    for name in dict.fromkeys(r["dtype"] for r in rows):
        mine = [r for r in rows if r["dtype"] == name and not r["proj"]]
        same = f"torch {SHORT[name]}"
        half = name in ("bfloat16", "float16")
        persistent = [r for r in mine if half and r["family"] == "LSTM" and 8 <= r["B"] <= 32
                      and r["T"] == 1024]
        time_vs_fp16 = {m: [1 / r["speedup"]["torch fp16"] for r in persistent
                            if r["mode"] == m] for m in ("infer", "train")}
        # cuDNN's persistent kernels: the float16 LSTM from B = 8
        non_persistent = [r["speedup"][same] for r in mine if r["family"] != "SRU" and (
            r["family"] != "LSTM" or r["B"] < 8 or name != "float16")]
        big = [r["tflops"] / PEAK[name] for r in mine if r["B"] >= 256 and r["family"] != "SRU"]
        sru = [r["speedup"][same] for r in mine if r["family"] == "SRU" and r["mode"] == "train"]
        d = SHORT[name]
        lines += [
            f"| {d} | half LSTM, B 8–32, T = 1024: forward ≤ 0.67× torch.nn fp16 time | "
            + verdict(time_vs_fp16["infer"], 0.67, "lower") + " |",
            f"| {d} | same, training ≤ 0.8× | " + verdict(time_vs_fp16["train"], 0.8, "lower")
            + " |",
            f"| {d} | no persistent cuDNN kernel: ≥ 5× torch.nn, same dtype | "
            + verdict(non_persistent, 5.0, "higher") + " |",
            f"| {d} | B ≥ 256: ≥ 50 % of dense tensor peak ({PEAK[name]:.0f} TFLOP/s) | "
            + verdict(big, 0.5, "higher") + " |",
            f"| {d} | SRU training ≥ 5× torch.nn.LSTM, same dtype | "
            + verdict(sru, 5.0, "higher") + " |",
        ]
    return lines


def report(rows, done: int, total: int, args, device, started: float) -> str:
    columns = list(TORCH_COLUMNS)
    progress = "" if done == total else f" (cut short: {done} of {total} configurations)"
    lines = ["# rnnlab Triton engine vs torch.nn (cuDNN)", "",
             "Generated by `python benchmarks/gpu_layers.py "
             f"{' '.join(sys.argv[1:])}` in {(time.time() - started) / 60:.1f} min{progress}.",
             "", "## Machine", "", *machine(device), "",
             "## Acceptance", "", *acceptance(rows), "",
             "## Results", "",
             "µs per time step (median over rounds); speed-up = torch time / triton time (median "
             "of paired rounds, > 1: triton faster); torch columns are the same measurements for "
             "every triton dtype of a configuration; SRU rows compare with torch.nn.LSTM of the "
             "same size.", "",
             "| family | dtype | B | H | T | mode | triton µs | "
             + " | ".join(f"{c} µs" for c in columns) + " | "
             + " | ".join(f"× vs {c}" for c in columns) + " | TFLOP/s |"
             + (" weights | streamed µs | × vs streamed |" if args.streamed else ""),
             "|" + " --- |" * (8 + 2 * len(columns) + (3 if args.streamed else 0))]
    for r in rows:
        lines.append(f"| {label(r)} | {SHORT[r['dtype']]} | {r['B']} | {r['H']} | {r['T']} | "
                     f"{r['mode']} | {r['triton']:.2f} | "
                     + " | ".join(f"{r['torch'][c]:.2f}" for c in columns) + " | "
                     + " | ".join(f"{r['speedup'][c]:.2f}" for c in columns)
                     + f" | {r['tflops']:.2f} |"
                     + (f" {r['form']} | {r['streamed']:.2f} | {r['vs_streamed']:.2f} |"
                        if args.streamed else ""))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="bfloat16,float32",
                        help=f"triton dtypes, comma-separated, of {', '.join(DTYPES)}")
    parser.add_argument("--families", default="LSTM,GRU,RNN,SRU")
    parser.add_argument("--batches", default="1,8,32,128,512")
    parser.add_argument("--hiddens", default="128,256,512,1024")
    parser.add_argument("--lengths", default="64,1024")
    parser.add_argument("--no-named", action="store_true", help="skip the named configurations")
    parser.add_argument("--columns", type=int, default=None,
                        help="programs per tile of sequences (RNNLAB_TRITON_COLUMN_PROGRAMS)")
    parser.add_argument("--proj-size", type=int, default=0,
                        help="also time each LSTM configuration with H > P projected to P units")
    parser.add_argument("--streamed", action="store_true",
                        help="also time the triton layers with their weights streamed "
                             "(RNNLAB_TRITON_RESIDENT=0) beside the host's choice")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, to check the script: on the GPU, or without one on "
                             "the CPU under TRITON_INTERPRET=1")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--crossover", type=Path, default=None, metavar="FILE",
                        help="also time the native (SRU: reference) engine and add the rows to "
                             "this crossover table (created if absent)")
    args = parser.parse_args()
    dtypes = args.dtypes.split(",")
    if unknown := [d for d in dtypes if d not in DTYPES]:
        parser.error(f"--dtypes: expected names of {', '.join(DTYPES)}, got {', '.join(unknown)}")
    if args.columns:
        os.environ["RNNLAB_TRITON_COLUMN_PROGRAMS"] = str(args.columns)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not (args.smoke and os.environ.get("TRITON_INTERPRET") == "1"):
        raise SystemExit("gpu_layers.py needs a CUDA GPU (or --smoke under TRITON_INTERPRET=1)")
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    grid = list(itertools.product(args.families.split(","), ints(args.batches),
                                  ints(args.hiddens), ints(args.lengths)))
    if not args.no_named:
        grid += [(f, B, H, T) for f in ("LSTM", "GRU") for B, H, T in NAMED]
    if args.smoke:
        grid, args.rounds, args.warmup = [("LSTM", 2, 16, 3), ("SRU", 2, 16, 3)], 1, 0
    if args.proj_size < 0:
        parser.error(f"--proj-size: expected 0 (none) or a number of units, got {args.proj_size}")
    grid = [(*c, 0) for c in grid]
    if args.proj_size:
        grid += [(f, B, H, T, args.proj_size) for f, B, H, T, _ in grid
                 if f == "LSTM" and H > args.proj_size]
    out = args.out or Path(__file__).with_name("results") / (
        "gpu_layers_smoke.md" if args.smoke
        else f"gpu_layers_{'_'.join(dtypes)}{f'_columns{args.columns}' if args.columns else ''}.md")
    out.parent.mkdir(parents=True, exist_ok=True)

    started, rows = time.time(), []
    if args.crossover:
        source = crossover_table.describe_source(
            device, f"python benchmarks/gpu_layers.py {' '.join(sys.argv[1:])}")
    cases = list(itertools.product(grid, (False, True)))
    for done, ((family, B, H, T, proj), training) in enumerate(cases, 1):
        engines = crossover_engines(family) if args.crossover else ()
        new = measure(family, B, H, T, training, dtypes, device, args.rounds, args.warmup,
                      engines, args.streamed, proj)
        rows += new
        for r in new:
            print(f"{label(r):4} {SHORT[r['dtype']]} B={B:3} H={H:4} T={T:4} {r['mode']:5} "
                  f"triton {r['triton']:9.2f} "
                  + "  ".join(f"{c} {v:9.2f}" for c, v in r["torch"].items())
                  + "".join(f"  {e} {r['engines'][e]:9.2f}" for e in engines)
                  + "  µs/step  " + "  ".join(f"×{r['speedup'][c]:.2f} vs {c}"
                                               for c in TORCH_COLUMNS)
                  + (f"  {r['form']}, streamed {r['streamed']:.2f} (×{r['vs_streamed']:.2f})"
                     if args.streamed else ""), flush=True)
        out.write_text(report(rows, done, len(cases), args, device, started))
        if args.crossover:
            write_crossover(args.crossover, new, source)
    print(f"wrote {out}" + (f" and {args.crossover}" if args.crossover else ""))


if __name__ == "__main__":
    main()
