"""What a variant costs: every LSTM/GRU/RNN/SRU variant on every engine, against torch.nn.

For each variant (peepholes, cell clipping, coupled gates, layer norm, zoneout, recurrent and
weight dropout, other activations, GRU's reset before the product, …) and mode, times in one
process, interleaved round by round (median of the rounds after warm-up):

  * the rnnlab layer on ``auto`` and forced onto each engine (``reference``, ``native``, and
    ``cpu`` on the CPU or ``triton`` on CUDA); an engine that refuses the variant shows "—";
  * the baselines a user would write instead: ``torch.nn.LSTM`` (``torch.nn.GRU`` for GRU
    rows), plain, and a Python loop of ``nn.LSTMCell``, at the same sizes and dtype.

A training step is forward + backward of ``output.sum()`` from cleared gradients, the layer in
train mode (its regularisers active); an inference call is a forward under ``torch.no_grad``
in eval mode. Each engine's time comes with its ratios to torch.nn.LSTM, to the LSTMCell loop
and to the same engine on the family's plain layer (the first row of each family), and each row
says which engine ``auto`` picked and whether that engine (its forced column) was within 5 % of
the fastest engine there.

    python benchmarks/variants.py                  # CPU: B=16, I=H=128, T=100, 2 threads
    python benchmarks/variants.py --device cuda    # GPU: B=64, I=H=512, T=100, fp32 and bf16
    python benchmarks/variants.py --quick          # tiny sizes, one round: checks the script
    python benchmarks/variants.py --device cuda --crossover crossover_cuda.json

Writes ``benchmarks/results/variants_<device>.md`` (``variants_<device>_quick.md`` with
``--quick``) with the machine and the command. On CUDA ``--crossover FILE`` adds to the crossover
table FILE that ``backend="auto"`` reads there (:mod:`rnnlab.backends.crossover_table`) one row
per family, configuration class, dtype and mode: the µs per step of each forced engine on the
class's first variant here (its representative: ``peephole`` for peepholes, clipping and coupled
gates, ``zoneout=0.1`` for the regularisers, …).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from cpu_engine import cpu_model  # benchmarks/ is the script's folder

import rnnlab
from rnnlab.backends import crossover_table, select_backend
from rnnlab.backends.crossover import config_class
from rnnlab.layers.sequence import to_batch

# (family, variant, options); the first row of a family is its plain layer
VARIANTS = [
    ("LSTM", "plain", {}),
    ("LSTM", "peephole", {"peephole": True}),
    ("LSTM", "cell_clip=3", {"cell_clip": 3.0}),
    ("LSTM", "coupled", {"coupled": True}),
    ("LSTM", "layer_norm", {"layer_norm": True}),
    ("LSTM", "zoneout=0.1", {"zoneout": 0.1}),
    ("LSTM", "recurrent_dropout=0.25", {"recurrent_dropout": 0.25}),
    ("LSTM", "weight_dropout=0.5", {"weight_dropout": 0.5}),
    ("LSTM", "gate_activation=hard_sigmoid", {"gate_activation": "hard_sigmoid"}),
    ("LSTM", "layer_norm + zoneout=0.1", {"layer_norm": True, "zoneout": 0.1}),
    ("LSTM", "layer_norm + recurrent_dropout=0.25",
     {"layer_norm": True, "recurrent_dropout": 0.25}),
    ("GRU", "plain", {}),
    ("GRU", "reset_after=False", {"reset_after": False}),
    ("GRU", "layer_norm", {"layer_norm": True}),
    ("GRU", "zoneout=0.1", {"zoneout": 0.1}),
    ("GRU", "recurrent_dropout=0.25", {"recurrent_dropout": 0.25}),
    ("RNN", "relu", {"nonlinearity": "relu"}),
    ("RNN", "relu, zoneout=0.1", {"nonlinearity": "relu", "zoneout": 0.1}),
    ("SRU", "plain", {}),
    ("SRU", "zoneout=0.1", {"zoneout": 0.1}),
]
ENGINES = {"cpu": ["auto", "reference", "native", "cpu"],
           "cuda": ["auto", "reference", "native", "triton"]}
SIZES = {"cpu": (16, 128, 100), "cuda": (64, 512, 100), "quick": (2, 8, 5)}  # B, I = H, T
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOLERATED = 1.05  # auto within 5 % of the fastest engine of its row


def cell_loop(cell, x):
    """``nn.LSTMCell`` over the steps of x (T, B, I): the outputs (T, B, H)."""
    h = x.new_zeros(x.shape[1], cell.hidden_size)
    state, outputs = (h, h), []
    for x_t in x:
        state = cell(x_t, state)
        outputs.append(state[0])
    return torch.stack(outputs)


def runner(module, forward, training: bool):
    """One training step (from cleared gradients) or one inference call of ``forward()``."""
    if training:
        def run():
            module.zero_grad(set_to_none=True)
            forward().sum().backward()
    else:
        def run():
            with torch.no_grad():
                forward()
    return run


def timed_ms(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3


def is_refusal(error: Exception) -> bool:
    """A layer's refusal of a forced engine (``backend: '…' cannot run …``)."""
    return isinstance(error, (ValueError, NotImplementedError)) and \
        str(error).startswith("backend:")


def build(device, dtype, B, H, T):
    """The input, the baselines, every (variant, engine) layer an engine accepts (the same
    draws for every engine's layer), and why the layer itself refuses a variant, if it does."""
    kw = dict(device=device, dtype=dtype)
    x = torch.randn(T, B, H, **kw)
    baselines = {"torch.nn.LSTM": torch.nn.LSTM(H, H, **kw),
                 "torch.nn.GRU": torch.nn.GRU(H, H, **kw),
                 "LSTMCell loop": torch.nn.LSTMCell(H, H, **kw)}
    layers, unavailable = {}, {}
    for k, (family, variant, options) in enumerate(VARIANTS):
        for engine in ENGINES[device.type]:
            torch.manual_seed(k)
            try:
                layers[family, variant, engine] = getattr(rnnlab, family)(
                    H, H, **options, backend=engine, **kw)
            except ValueError as error:  # refused when built, by an engine or the layer
                if not is_refusal(error):
                    unavailable[family, variant] = str(error)
    return x, baselines, layers, unavailable


def runs(x, baselines, layers, training: bool) -> dict:
    """Every callable of one mode, the modules set to train or eval mode."""
    fns = {}
    for name, module in baselines.items():
        module.train(training)
        forward = (lambda m=module: cell_loop(m, x)) if name == "LSTMCell loop" else \
            (lambda m=module: m(x)[0])
        fns[name] = runner(module, forward, training)
    for key, layer in layers.items():
        layer.train(training)
        fns[key] = runner(layer, lambda m=layer: m(x)[0], training)
    return fns


def measure(fns: dict, device, rounds: int, warmup: int) -> dict:
    """Median ms of every callable that runs; a refused one is left out. The first warm-up
    call finds the refusals; then ``rounds`` rounds time every callable once each."""
    live = {}
    for key, fn in fns.items():
        try:
            fn()
        except Exception as error:
            if not is_refusal(error):
                raise
            continue
        for _ in range(warmup - 1):
            fn()
        live[key] = fn
    samples = {key: [] for key in live}
    for _ in range(rounds):
        for key, fn in live.items():
            samples[key].append(timed_ms(fn, device))
    return {key: statistics.median(v) for key, v in samples.items()}


def auto_picks(x, layers, training: bool) -> dict:
    """The engine ``auto`` chooses for each variant in this mode."""
    picks = {}
    with torch.set_grad_enabled(training):
        batch = to_batch(x, None, False)[0]
        for (family, variant, engine), layer in layers.items():
            if engine == "auto":
                layer.train(training)
                picks[family, variant] = select_backend(layer, batch).name
    return picks


def table(times: dict, picks: dict, unavailable: dict, engines: list[str]) -> list[str]:
    """One markdown table of a mode: ms (× torch.nn.LSTM · × LSTMCell loop · × own plain)."""
    plain = {}
    for family, variant, _ in VARIANTS:
        plain.setdefault(family, variant)
    lines = ["| family | variant | " + " | ".join(engines)
             + " | auto × torch.nn.GRU | auto picks | its engine within 5 % of the fastest |",
             "|" + " --- |" * (len(engines) + 5)]
    for family, variant, _ in VARIANTS:
        cells = []
        for engine in engines:
            t = times.get((family, variant, engine))
            if t is None:
                cells.append("—")
                continue
            base = times.get((family, plain[family], engine))
            own = f"{t / base:.2f}" if base else "—"
            cells.append(f"{t:.2f} ({t / times['torch.nn.LSTM']:.2f} · "
                         f"{t / times['LSTMCell loop']:.2f} · {own})")
        auto = times.get((family, variant, "auto"))
        versus_gru = f"{auto / times['torch.nn.GRU']:.2f}" if family == "GRU" and auto else ""
        forced = {e: times[family, variant, e] for e in engines[1:]
                  if (family, variant, e) in times}
        picked_engine = picks.get((family, variant))
        if auto is None or not forced:
            verdict = "—"
        else:  # the engine auto picked, timed as forced (auto's own time is a second sample)
            fastest = min(forced, key=forced.get)
            ratio = forced.get(picked_engine, auto) / forced[fastest]
            verdict = "yes" if ratio <= TOLERATED else \
                f"**no**: {fastest} {ratio:.2f}× faster"
        picked = picked_engine or \
            f"— (rnnlab refuses: {unavailable[family, variant]})"
        lines.append(f"| {family} | {variant} | " + " | ".join(cells)
                     + f" | {versus_gru} | {picked} | {verdict} |")
    return lines


def crossover_rows(times: dict, layers: dict, engines: list[str], dtype: str, training: bool,
                   sizes) -> list[crossover_table.Row]:
    """The crossover table's rows of one mode: per family and configuration class
    (:func:`rnnlab.backends.crossover.config_class` of the layer in this mode) the µs per step
    of each forced engine that ran the class's first variant."""
    B, H, T = sizes
    rows = {}
    for family, variant, _ in VARIANTS:
        layer = layers.get((family, variant, "auto"))
        if layer is None:  # rnnlab refuses the variant
            continue
        layer.train(training)
        key = (family, config_class(layer))
        us = {e: times[family, variant, e] * 1e3 / T for e in engines
              if (family, variant, e) in times}
        if key not in rows and us:
            rows[key] = crossover_table.Row(family, key[1], dtype,
                                            "train" if training else "infer", B, H, T, us)
    return list(rows.values())


def machine(device) -> str:
    from rnnlab.backends.triton.launch import cudnn_rnn_tf32

    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        where = (f"GPU {p.name} ({p.multi_processor_count} SMs), CUDA {torch.version.cuda}, "
                 f"cuDNN {torch.backends.cudnn.version()}; float32 in "
                 f"{'TF32' if cudnn_rnn_tf32() else 'IEEE'} in cuDNN and the triton kernels, "
                 f"{'TF32' if torch.backends.cuda.matmul.allow_tf32 else 'IEEE'} in matmuls")
        try:
            import triton
            where += f"; Triton {triton.__version__}"
        except ImportError:
            pass
    else:
        where = f"CPU {cpu_model()}, {torch.get_num_threads()} torch threads"
    return (f"{where}; torch {torch.__version__}, Python {platform.python_version()}, "
            f"{platform.platform()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtypes", default=None,
                        help="comma-separated (default: float32 on the CPU; float32,bfloat16 "
                             "on CUDA)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one round: checks the script, times nothing")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--crossover", type=Path, default=None, metavar="FILE",
                        help="with --device cuda: add the measured rows to this crossover table "
                             "(created if absent)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU")
    if args.crossover and device.type != "cuda":
        parser.error("--crossover: the table is of CUDA timings, run with --device cuda")
    dtypes = (args.dtypes or ("float32,bfloat16" if device.type == "cuda" else "float32"))
    dtypes = dtypes.split(",")
    if unknown := [d for d in dtypes if d not in DTYPES]:
        parser.error(f"--dtypes: expected names of {', '.join(DTYPES)}, got {', '.join(unknown)}")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds, args.warmup = 1, 1
    B, H, T = SIZES["quick" if args.quick else device.type]
    out = args.out or Path(__file__).parent / "results" / (
        f"variants_{device.type}{'_quick' if args.quick else ''}.md")
    engines = ENGINES[device.type]

    started = time.time()
    sections, total = [], 2 * len(dtypes)
    for dtype_name in dtypes:
        torch.manual_seed(0)
        x, baselines, layers, unavailable = build(device, DTYPES[dtype_name], B, H, T)
        for training in (True, False):
            mode = "training step" if training else "inference call"
            times = measure(runs(x, baselines, layers, training), device, args.rounds,
                            max(1, args.warmup))
            picks = auto_picks(x, layers, training)
            if args.crossover:
                crossover_table.write(
                    args.crossover,
                    crossover_rows(times, layers, engines[1:], dtype_name, training, (B, H, T)),
                    crossover_table.describe_source(
                        device, f"python benchmarks/variants.py {' '.join(sys.argv[1:])}"))
            sections += [f"## {dtype_name}, {mode}", "",
                         "Baselines: " + " · ".join(f"{name} {times[name]:.2f} ms"
                                                    for name in baselines), "",
                         *table(times, picks, unavailable, engines), ""]
            print(f"{dtype_name} {mode}: {len(times)} timings", flush=True)
            write_report(out, sections, total, args, device, (B, H, T), started)
    print(f"wrote {out}" + (f" and {args.crossover}" if args.crossover else ""))


def write_report(out: Path, sections: list[str], total: int, args, device, sizes,
                 started: float) -> None:
    """The report so far (rewritten after every section: a run cut short keeps them)."""
    done = sum(line.startswith("## ") for line in sections)
    progress = "" if done == total else f", cut short: {done} of {total} sections"
    B, H, T = sizes
    lines = ["# rnnlab variants vs torch.nn", "",
             f"Command: `python benchmarks/variants.py {' '.join(sys.argv[1:])}`"
             f" ({(time.time() - started) / 60:.1f} min{progress})  ",
             f"Machine: {machine(device)}  ",
             f"Sizes: B={B}, I=H={H}, T={T}; median of {args.rounds} interleaved rounds after "
             f"{max(1, args.warmup)} warm-up call(s).", "",
             "Each engine cell: ms (× torch.nn.LSTM plain · × nn.LSTMCell loop · × the same "
             "engine on the family's plain layer); — where the engine refuses the variant. "
             "A training step is forward + backward in train mode (regularisers active), an "
             "inference call a forward under no_grad in eval mode.", "", *sections]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
