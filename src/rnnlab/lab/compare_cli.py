"""``rnnlab compare``: train every cell on the lab's tasks and write the report."""

from __future__ import annotations

import argparse

from rnnlab.cli import UsageError, non_negative_int, positive_int
from rnnlab.lab.compare import ALL_CELLS, KNOWN_TASKS
from rnnlab.lab.presets import PRESETS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="train RNN, LSTM, GRU and SRU on the lab's tasks; write a report",
        description="Turn each claim of the source articles into a measured experiment: "
        "tanh RNN vs gated cells as T grows, vanishing and exploding gradients, GRU vs LSTM, "
        "bidirectional layers, SRU's speed. Writes index.html, summary.md, results.json and "
        "figures to --out and prints the summary table with a verdict per claim.")
    p.add_argument("--preset", choices=list(PRESETS), default="quick",
                   help="quick (minutes, default), full (longer T and training), tiny "
                   "(smoke test)")
    p.add_argument("--tasks", nargs="+", choices=KNOWN_TASKS, default=None, metavar="TASK",
                   help=f"tasks to run, of {', '.join(KNOWN_TASKS)} (default: the preset's)")
    p.add_argument("--cells", nargs="+", choices=ALL_CELLS, default=list(ALL_CELLS),
                   metavar="CELL", help="cells to train (default: all four)")
    p.add_argument("--out", metavar="DIR", default="rnnlab-compare",
                   help="report folder (default rnnlab-compare)")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="parallel training processes (default: CPU cores, at most 4)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (0)")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnlab.lab.compare import compare

    if args.tasks is not None and not args.tasks:
        raise UsageError("--tasks: name at least one task")
    compare(preset=args.preset, tasks=args.tasks, out_dir=args.out, cells=args.cells,
            jobs=args.jobs, seed=args.seed, progress=not args.quiet, print_summary=True)
    return 0
