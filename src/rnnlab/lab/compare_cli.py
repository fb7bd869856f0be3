"""``rnnlab compare``: train every cell on the lab's tasks and write the report."""

from __future__ import annotations

import argparse

from rnnlab.cli import UsageError, non_negative_int, positive_int
from rnnlab.lab.compare import ALL_CELLS, CLASSIC_CELLS, KNOWN_TASKS, REGULARISER_CELLS
from rnnlab.lab.presets import PRESETS


def regulariser(text: str) -> tuple[str, float]:
    """``NAME=P`` → ``(NAME, P)`` for ``--regularisers``."""
    name, sep, value = text.partition("=")
    if not sep or name not in REGULARISER_CELLS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=P with NAME one of {', '.join(REGULARISER_CELLS)}, got {text!r}")
    try:
        p = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number after {name}=, got {value!r}") \
            from None
    if not 0 <= p < 1:
        raise argparse.ArgumentTypeError(f"{name}: expected a probability in [0, 1), got {p:g}")
    return name, p


def scale(text: str) -> float:
    """``--scale``: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value:g}")
    return value


def register(subparsers) -> None:
    """Add the ``rnnlab compare`` sub-command and its options to the CLI's parser."""
    p = subparsers.add_parser(
        "compare", help="train RNN, LSTM, GRU and SRU on the lab's tasks; write a report",
        description="Turn each claim of the source articles into a measured experiment: "
        "tanh RNN vs gated cells as T grows, vanishing and exploding gradients, GRU vs LSTM, "
        "bidirectional layers, SRU's speed; and the published benchmarks beside their "
        "published numbers: polyphonic music, sequential MNIST, adding T=600 and copy T=1000, "
        "IRNN, clipping, LSTM initialisation. Writes index.html, summary.md, results.json and "
        "figures to --out and prints the summary table with a verdict per claim.")
    p.add_argument("--preset", choices=list(PRESETS), default="quick",
                   help="quick (minutes on 2 CPU cores, default), full (longer T and "
                   "training, under an hour on 2 cores), paper (the published protocols, "
                   "for a GPU), tiny (smoke test)")
    p.add_argument("--scale", type=scale, default=1.0,
                   help="multiply every training length of the preset by this number in "
                   "(0, 1], e.g. 0.05 for a stated reduction of --preset paper on a CPU")
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="cpu (default), cuda, cuda:N, or auto (CUDA when torch sees a GPU; a "
                   "line says which); each layer trains on its fastest engine")
    p.add_argument("--tasks", nargs="+", choices=KNOWN_TASKS, default=None, metavar="TASK",
                   help=f"tasks to run, of {', '.join(KNOWN_TASKS)} (default: the preset's)")
    p.add_argument("--cells", nargs="+", choices=ALL_CELLS, default=list(CLASSIC_CELLS),
                   metavar="CELL", help=f"cells to train, of {', '.join(ALL_CELLS)} (default: "
                   f"{' '.join(CLASSIC_CELLS)}; mingru and minlstm add rows, not verdicts)")
    p.add_argument("--regularisers", nargs="+", type=regulariser, default=None,
                   metavar="NAME=P",
                   help="also train regularised runs at the largest adding/copy T, e.g. "
                   "recurrent_dropout=0.1 zoneout=0.1 weight_dropout=0.2 (each cell gets the "
                   "ones its layer accepts: RNN, LSTM, GRU all; SRU zoneout)")
    p.add_argument("--out", metavar="DIR", default="rnnlab-compare",
                   help="report folder (default rnnlab-compare)")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="parallel training processes (default: CPU cores, at most 4)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (0)")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rnnlab compare`` with the parsed arguments (see :func:`rnnlab.lab.compare.compare`); returns the exit code."""
    from rnnlab.lab.compare import compare

    if args.tasks is not None and not args.tasks:
        raise UsageError("--tasks: name at least one task")
    compare(preset=args.preset, tasks=args.tasks, out_dir=args.out, cells=args.cells,
            jobs=args.jobs, seed=args.seed, progress=not args.quiet, print_summary=True,
            regularisers=dict(args.regularisers or ()), device=args.device, scale=args.scale)
    return 0
