"""CPU benchmark of rnnlab layers against torch.nn, in one run.

For each family (LSTM, GRU, RNN) and size, times in the same process:
  * ``torch.nn``        the torch layer (oneDNN / ATen),
  * ``cell loop``       a Python loop of ``torch.nn.*Cell`` under autograd,
  * ``rnnlab <backend>`` for ``auto`` and every registered backend that supports the call,
for inference (forward, no grad) and training (forward + backward). Reports the median
µs per time step over interleaved rounds and each ratio to torch.nn, and writes a markdown table.

    python benchmarks/cpu_layers.py               # full grid -> benchmarks/results/cpu_layers.md
    python benchmarks/cpu_layers.py --quick       # a few sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time
from pathlib import Path

import torch

import rnnlab
from rnnlab.backends import BACKENDS
from rnnlab.layers.sequence import Batch

FAMILIES = {"LSTM": (torch.nn.LSTM, torch.nn.LSTMCell),
            "GRU": (torch.nn.GRU, torch.nn.GRUCell),
            "RNN": (torch.nn.RNN, torch.nn.RNNCell)}


def cell_loop(cell, x, family):
    h = x.new_zeros(x.shape[1], cell.hidden_size)
    state = (h, h.clone()) if family == "LSTM" else h
    outputs = []
    for x_t in x:
        state = cell(x_t, state)
        outputs.append(state[0] if family == "LSTM" else state)
    return torch.stack(outputs)


def timed_interleaved(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds per run of each callable: two warm-up calls each, then ``repeats``
    rounds that time every callable once, so a burst of load hits all columns alike."""
    for fn in runs.values():
        fn()
        fn()
    samples = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def runners(family, B, H, T, training):
    torch_cls, cell_cls = FAMILIES[family]
    reference = torch_cls(H, H)
    cell = cell_cls(H, H)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in reference.state_dict().items()})
    x = torch.randn(T, B, H, requires_grad=training)

    def wrap(forward):
        def run():
            if training:
                out = forward()
                out.sum().backward()
            else:
                with torch.no_grad():
                    forward()
        return run

    yield "torch.nn", wrap(lambda: reference(x)[0])
    yield "cell loop", wrap(lambda: cell_loop(cell, x, family))
    layers = {"auto": getattr(rnnlab, family)(H, H)}
    for name in BACKENDS:
        layers[name] = getattr(rnnlab, family)(H, H, backend=name)
    for name, layer in layers.items():
        layer.load_state_dict(reference.state_dict())
        if BACKENDS.get(name) and BACKENDS[name].unsupported(layer, Batch(x)):
            continue
        yield f"rnnlab {name}", wrap(lambda layer=layer: layer(x)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few sizes only")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu_layers.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches, hiddens, lengths = ((1, 64), (64, 256), (100,)) if args.quick else \
        ((1, 16, 64), (64, 128, 256), (100, 256))
    rows = []
    for family, training, B, H, T in itertools.product(FAMILIES, (False, True), batches,
                                                        hiddens, lengths):
        runs = dict(runners(family, B, H, T, training))
        times = {name: t / T * 1e6 for name, t in timed_interleaved(runs, args.repeats).items()}
        base = times["torch.nn"]
        rows.append((family, "train" if training else "infer", B, H, T, times, base))
        cells = "  ".join(f"{n}={t:.1f}µs ({t / base:.2f}x)" for n, t in times.items())
        print(f"{family:4} {rows[-1][1]} B={B:<3} H={H:<3} T={T:<3} {cells}", flush=True)
    write_table(rows, args)


def write_table(rows, args):
    columns = list(rows[0][5])
    lines = [
        "# CPU benchmark: rnnlab vs torch.nn",
        "",
        f"Command: `python benchmarks/cpu_layers.py{' --quick' if args.quick else ''}"
        f"{f' --threads {args.threads}' if args.threads else ''} --repeats {args.repeats}`  ",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}; float32; "
        f"median of {args.repeats} interleaved rounds after warm-up; input size = hidden size = H.",
        "",
        "µs per time step (ratio to torch.nn; < 1 is faster).",
        "",
        "| family | mode | B | H | T | " + " | ".join(columns) + " |",
        "|---" * (5 + len(columns)) + "|",
    ]
    for family, mode, B, H, T, times, base in rows:
        cells = [f"{times[c]:.1f} ({times[c] / base:.2f}x)" if c in times else "—"
                 for c in columns]
        lines.append(f"| {family} | {mode} | {B} | {H} | {T} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
