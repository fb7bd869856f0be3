"""Benchmark of rnnlab's Triton engine (``backend="triton"``) against torch.nn (cuDNN) on a GPU.

For each family (LSTM, GRU, RNN-tanh), batch B, hidden size H (= input size) and length T,
times in one process, interleaved round by round with CUDA events:

  * ``triton``     the rnnlab layer on the Triton engine, in ``--dtype``,
  * ``torch.nn``   the torch layer in ``--dtype`` (cuDNN),
  * ``torch fp16`` the torch layer in float16 (cuDNN's persistent kernels need a half type),

for inference (forward under ``torch.no_grad``) and training (forward + backward of
``output.sum()``; the input is data). SRU rows time ``rnnlab.SRU`` on the Triton engine
against ``torch.nn.LSTM`` of the same size (the SRU paper's claim). Named configurations:
B=16, T=1024, I=H=768 and B=64, T=100, I=H=512. Reports the median µs per time step, the
achieved TFLOP/s of the rnnlab layer and its speed-up over each torch column, the machine,
and the acceptance targets of the Triton engine's issue; writes a markdown report.

    python benchmarks/gpu_layers.py                    # full grid, bf16
    python benchmarks/gpu_layers.py --families LSTM --batches 8,32 --lengths 1024
    python benchmarks/gpu_layers.py --columns 8   # split each tile's units over 8 programs
    TRITON_INTERPRET=1 python benchmarks/gpu_layers.py --smoke   # tiny, on the CPU: checks
                                                                 # the script, times nothing
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import rnnlab

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TORCH_LAYERS = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN,
                "SRU": torch.nn.LSTM}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "SRU": 3}
NAMED = [(16, 768, 1024), (64, 512, 100)]  # (B, H, T)


def flops_per_step(family: str, B: int, H: int, training: bool) -> int:
    """FLOPs of one step: input projection and recurrent product forward; in training also
    the backward recurrent product, dW_ih and dW_hh (the input needs no gradient)."""
    n = GATES[family] * H
    if family == "SRU":  # no recurrent product
        return 2 * B * n * H * (2 if training else 1)
    return 2 * B * n * H * (5 if training else 2)


def make_layers(family: str, H: int, dtype, device):
    torch_layer = TORCH_LAYERS[family](H, H, device=device, dtype=dtype)
    ours = getattr(rnnlab, family)(H, H, backend="triton", device=device, dtype=dtype)
    if family != "SRU":
        ours.load_state_dict(torch_layer.state_dict())
    layers = {"triton": ours, "torch.nn": torch_layer}
    if dtype != torch.float16:
        layers["torch fp16"] = TORCH_LAYERS[family](H, H, device=device, dtype=torch.float16)
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


def measure(family, B, H, T, training, dtype, device, rounds, warmup):
    """Median µs per step of each column and the median (over rounds) of the paired ratios."""
    layers = make_layers(family, H, dtype, device)
    x = torch.randn(T, B, H, device=device)
    fns = {name: step_fn(layer, x, training) for name, layer in layers.items()}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(elapsed_ms(fn, device) * 1e3 / T)
    med = {name: statistics.median(v) for name, v in samples.items()}
    speedup = {name: statistics.median(a / b for a, b in zip(samples[name], samples["triton"]))
               for name in samples if name != "triton"}
    return med, speedup


def machine(device) -> list[str]:
    lines = [f"- {platform.platform()}, Python {platform.python_version()}, "
             f"torch {torch.__version__}",
             f"- triton engine: {os.environ.get('RNNLAB_TRITON_COLUMN_PROGRAMS', '1')} "
             f"program(s) per tile of sequences, sync {os.environ.get('RNNLAB_TRITON_SYNC', 'auto')}"]
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


def acceptance(rows, dtype_name) -> list[str]:
    """The issue's targets, checked on the rows they name."""
    def verdict(selected, key, target, better):
        if not selected:
            return "not measured"
        values = [r[key] for r in selected]
        worst = min(values) if better == "higher" else max(values)
        met = sum((v >= target) if better == "higher" else (v <= target) for v in values)
        return f"{met}/{len(values)} met, worst {worst:.2f}"

    def rows_where(pred):
        return [r for r in rows if pred(r)]

    half = dtype_name in ("bfloat16", "float16")
    lstm_persistent = rows_where(lambda r: half and r["family"] == "LSTM" and 8 <= r["B"] <= 32
                                 and r["T"] == 1024)
    for r in rows:
        r["time_vs_fp16"] = 1 / r["speedup"].get("torch fp16", r["speedup"]["torch.nn"])
    non_persistent = rows_where(lambda r: r["family"] != "SRU" and (
        r["family"] != "LSTM" or r["B"] < 8 or dtype_name != "float16"))
    big = rows_where(lambda r: r["B"] >= 256 and r["family"] != "SRU")
    peak = 989.0 if half else 494.0  # H100 SXM dense bf16 / tf32 tensor TFLOP/s
    for r in big:
        r["peak_share"] = r["tflops"] / peak
    sru = rows_where(lambda r: r["family"] == "SRU" and r["mode"] == "train")
    return [
        "| target | result |", "| --- | --- |",
        "| half LSTM, B 8–32, T = 1024: forward ≤ 0.67× torch.nn fp16 time | "
        + verdict([r for r in lstm_persistent if r["mode"] == "infer"], "time_vs_fp16", 0.67,
                  "lower") + " |",
        "| same, training ≤ 0.8× | "
        + verdict([r for r in lstm_persistent if r["mode"] == "train"], "time_vs_fp16", 0.8,
                  "lower") + " |",
        "| no persistent cuDNN kernel: ≥ 5× torch.nn, same dtype | "
        + verdict([dict(s=r["speedup"]["torch.nn"]) for r in non_persistent], "s", 5.0,
                  "higher") + " |",
        f"| B ≥ 256: ≥ 50 % of dense tensor peak ({peak:.0f} TFLOP/s) | "
        + verdict(big, "peak_share", 0.5, "higher") + " |",
        "| SRU training ≥ 5× torch.nn.LSTM | "
        + verdict([dict(s=r["speedup"]["torch.nn"]) for r in sru], "s", 5.0, "higher") + " |",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=DTYPES, default="bfloat16")
    parser.add_argument("--families", default="LSTM,GRU,RNN,SRU")
    parser.add_argument("--batches", default="1,8,32,128,512")
    parser.add_argument("--hiddens", default="128,256,512,1024")
    parser.add_argument("--lengths", default="64,1024")
    parser.add_argument("--no-named", action="store_true", help="skip the named configurations")
    parser.add_argument("--columns", type=int, default=None,
                        help="programs per tile of sequences (RNNLAB_TRITON_COLUMN_PROGRAMS)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes on the CPU under TRITON_INTERPRET=1: checks the script")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.columns:
        os.environ["RNNLAB_TRITON_COLUMN_PROGRAMS"] = str(args.columns)
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_layers.py needs a CUDA GPU (or --smoke under TRITON_INTERPRET=1)")
    dtype = DTYPES[args.dtype]
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    grid = list(itertools.product(args.families.split(","), ints(args.batches),
                                  ints(args.hiddens), ints(args.lengths)))
    if not args.no_named:
        grid += [(f, B, H, T) for f in ("LSTM", "GRU") for B, H, T in NAMED]
    if args.smoke:
        grid, args.rounds, args.warmup = [("LSTM", 2, 16, 3), ("SRU", 2, 16, 3)], 1, 0
    out = args.out or Path(__file__).with_name("results") / (
        "gpu_layers_smoke.md" if args.smoke
        else f"gpu_layers_{args.dtype}{f'_columns{args.columns}' if args.columns else ''}.md")

    started, rows = time.time(), []
    for (family, B, H, T), training in itertools.product(grid, (False, True)):
        med, speedup = measure(family, B, H, T, training, dtype, device, args.rounds, args.warmup)
        tflops = flops_per_step(family, B, H, training) / med["triton"] / 1e6
        rows.append(dict(family=family, B=B, H=H, T=T, mode="train" if training else "infer",
                         med=med, speedup=speedup, tflops=tflops))
        print(f"{family:4} B={B:3} H={H:4} T={T:4} {rows[-1]['mode']:5} "
              + "  ".join(f"{n} {v:9.2f}" for n, v in med.items())
              + f"  µs/step  ×{speedup['torch.nn']:.2f} vs torch.nn", flush=True)

    columns = list(rows[0]["med"])
    lines = [f"# rnnlab Triton engine vs torch.nn (cuDNN), {args.dtype}", "",
             "Generated by `python benchmarks/gpu_layers.py "
             f"{' '.join(sys.argv[1:])}` in "
             f"{(time.time() - started) / 60:.1f} min.", "", "## Machine", "",
             *machine(device), "",
             "## Acceptance", "", *acceptance(rows, args.dtype), "",
             "## Results", "",
             "µs per time step (median over rounds); speed-up = torch time / triton time (median "
             "of paired rounds); SRU rows compare with torch.nn.LSTM of the same size.", "",
             "| family | B | H | T | mode | " + " | ".join(f"{c} µs" for c in columns)
             + " | " + " | ".join(f"× vs {c}" for c in columns[1:]) + " | TFLOP/s |",
             "|" + " --- |" * (5 + 2 * len(columns))]
    for r in rows:
        lines.append(f"| {r['family']} | {r['B']} | {r['H']} | {r['T']} | {r['mode']} | "
                     + " | ".join(f"{r['med'][c]:.2f}" for c in columns) + " | "
                     + " | ".join(f"{r['speedup'][c]:.2f}" for c in columns[1:])
                     + f" | {r['tflops']:.2f} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
