"""``rnnlab gradflow``: vanishing and exploding gradients made visible for one cell."""

from __future__ import annotations

import argparse
import sys

from rnnlab.cli import UsageError, non_negative_int, positive_float, positive_int
from rnnlab.lab.model import CELLS


def register(subparsers) -> None:
    """Add the ``rnnlab gradflow`` sub-command and its options to the CLI's parser."""
    p = subparsers.add_parser(
        "gradflow", help="gradient norm ‖∂L/∂h_k‖ vs k, spectral radius, step Jacobians",
        description="Measure how the gradient of a loss at the last step reaches each earlier "
        "step (‖∂L/∂h_k‖ against k), the spectral radius of the recurrent matrix per gate, the "
        "singular values of the step Jacobians ∂h_t/∂h_{t-1} and the gate statistics, at "
        "initialisation and (with --trained-steps) after training on the adding problem with "
        "and without gradient clipping. Prints a table; writes gradflow.json and gradflow.png.")
    p.add_argument("--cell", choices=CELLS, default="rnn", help="recurrent cell (default rnn)")
    p.add_argument("--seq-len", type=positive_int, default=100, help="sequence length T (100)")
    p.add_argument("--hidden", type=positive_int, default=64, help="hidden units (64)")
    p.add_argument("--scale", type=positive_float, nargs="+", default=[1.0], metavar="S",
                   help="multiply the recurrent weights by S at initialisation; several values "
                   "compare (e.g. --scale 0.5 1 2) (default 1)")
    p.add_argument("--trained-steps", type=non_negative_int, default=0, metavar="N",
                   help="also train N steps on the adding problem and measure again (0)")
    p.add_argument("--clip", choices=("none", "norm", "value"), nargs="+",
                   default=["norm", "none"],
                   help="clipping modes of the trained runs (default: norm none)")
    p.add_argument("--clip-value", type=positive_float, default=1.0, help="clip threshold (1)")
    p.add_argument("--lr", type=positive_float, default=3e-3, help="learning rate (3e-3)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="training batch (32)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (0)")
    p.add_argument("--nonlinearity", choices=("tanh", "relu"), default=None,
                   help="the RNN cell's nonlinearity (--cell rnn only)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder for gradflow.json and gradflow.png (default gradflow-CELL-TT)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rnnlab gradflow`` with the parsed arguments: print the table, write the JSON and figure; returns the exit code."""
    from rnnlab.lab.diagnostics.experiment import GradflowConfig, format_table, run_gradflow

    layer_options = {}
    if args.nonlinearity is not None:
        if args.cell != "rnn":
            raise UsageError(f"--nonlinearity applies to --cell rnn, not {args.cell}")
        layer_options["nonlinearity"] = args.nonlinearity
    out_dir = args.out or f"gradflow-{args.cell}-T{args.seq_len}"
    cfg = GradflowConfig(cell=args.cell, seq_len=args.seq_len, hidden=args.hidden,
                         scales=tuple(args.scale), trained_steps=args.trained_steps,
                         clips=tuple(dict.fromkeys(args.clip)), clip_value=args.clip_value,
                         lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         threads=args.threads, out_dir=out_dir, layer_options=layer_options)
    try:
        cfg.validate()
    except ValueError as error:
        raise UsageError(str(error)) from None
    log = None if args.no_progress else (lambda text: print(f"rnnlab gradflow: {text}",
                                                            file=sys.stderr))
    out = run_gradflow(cfg, progress=not args.no_progress, log=log)
    print(format_table(out))
    files = out.get("files", {})
    print(f"wrote {files.get('figure')} and {files.get('json')} ({out['seconds']:.1f} s)")
    return 0
