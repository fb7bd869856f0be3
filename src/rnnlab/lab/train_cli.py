"""``rnnlab train`` and ``rnnlab demo``: the command-line face of :func:`rnnlab.lab.train`."""

from __future__ import annotations

import argparse
import json
import math
import sys

from rnnlab.cli import UsageError, non_negative_int, positive_float, positive_int
from rnnlab.lab.config import CLIPS, OPTIMIZERS, TrainConfig
from rnnlab.lab.guards import clipping_advice
from rnnlab.lab.model import CELLS
from rnnlab.lab.tasks import TASKS
from rnnlab.lab.train import TrainResult, train

DEFAULT_CHECKPOINT_EVERY = 500  # with --out and no --checkpoint-every

# The demo: a small LSTM learns the adding problem well below chance in well under a
# minute on two CPU cores.
DEMO = TrainConfig(task="adding", cell="lstm", hidden=32, seq_len=30, steps=500, batch_size=64,
                   lr=1e-2, clip="norm", clip_value=1.0, seed=0, eval_every=50, threads=1)


def register(subparsers) -> None:
    """Add ``train`` and ``demo`` to the ``rnnlab`` parser."""
    p = subparsers.add_parser("train", help="train one model on one task",
                              description="Train a recurrent model on a lab task, with "
                              "periodic evaluation and checkpoints (--out) that --resume "
                              "continues exactly.")
    p.add_argument("--task", choices=list(TASKS), default="adding", help="task (default adding)")
    p.add_argument("--cell", choices=CELLS, default="lstm", help="recurrent cell (default lstm)")
    p.add_argument("--hidden", type=positive_int, default=128, help="hidden units (default 128)")
    p.add_argument("--layers", type=positive_int, default=1, help="stacked layers (default 1)")
    p.add_argument("--bidirectional", action="store_true", help="add a backward direction")
    p.add_argument("--seq-len", type=positive_int, default=None,
                   help="sequence length T (default: the task's)")
    p.add_argument("--steps", type=positive_int, default=2000, help="optimizer steps (2000)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="batch size (64)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (1e-3)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="adam, sgd or rmsprop")
    p.add_argument("--momentum", type=float, default=0.0, help="SGD or RMSprop momentum (0)")
    p.add_argument("--clip", choices=CLIPS, default="norm",
                   help="gradient clipping: none, norm (default) or value")
    p.add_argument("--clip-value", type=positive_float, default=1.0,
                   help="max gradient norm (--clip norm) or |element| (--clip value); 1.0")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (0)")
    p.add_argument("--eval-every", type=positive_int, default=100,
                   help="evaluate on the test split every N steps (100)")
    p.add_argument("--eval-size", type=positive_int, default=512,
                   help="test examples per evaluation (512)")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=None,
                   help=f"checkpoint every N steps (with --out: {DEFAULT_CHECKPOINT_EVERY}; "
                   "0: only at the end and on Ctrl-C)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder for checkpoints and result.json")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh even if --out already holds checkpoints")
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="use only this many distinct training examples")
    p.add_argument("--recurrent-gain", type=positive_float, default=1.0,
                   help="scale the recurrent weights at initialisation (1.0)")
    p.add_argument("--nonlinearity", choices=("tanh", "relu"), default=None,
                   help="the RNN cell's nonlinearity (--cell rnn only)")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout between stacked layers")
    p.add_argument("--device", default="cpu", help="torch device (cpu)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads (default: torch's; 1 is often fastest for small "
                   "models)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_train)

    d = subparsers.add_parser("demo", help="a quick run: a small LSTM learns the adding problem",
                              description="Train a small LSTM on the adding problem "
                              f"(T = {DEMO.seq_len}, {DEMO.steps} steps, under a minute on "
                              "a laptop CPU) and print how its loss falls below chance.")
    d.add_argument("--steps", type=positive_int, default=DEMO.steps,
                   help=f"optimizer steps ({DEMO.steps})")
    d.add_argument("--seed", type=non_negative_int, default=DEMO.seed, help="random seed (0)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=run_demo)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` that ``rnnlab train`` arguments describe."""
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out DIR, the folder of the run to continue")
    layer_options = {}
    if args.nonlinearity is not None:
        if args.cell != "rnn":
            raise UsageError(f"--nonlinearity applies to --cell rnn, not {args.cell}")
        layer_options["nonlinearity"] = args.nonlinearity
    if args.dropout is not None:
        if not 0 <= args.dropout < 1:
            raise UsageError(f"--dropout: expected a number in [0, 1), got {args.dropout}")
        layer_options["dropout"] = args.dropout
    every = args.checkpoint_every
    if every is None:
        every = DEFAULT_CHECKPOINT_EVERY if args.out is not None else 0
    if every and args.out is None:
        raise UsageError("--checkpoint-every needs --out DIR")
    return TrainConfig(task=args.task, cell=args.cell, hidden=args.hidden, num_layers=args.layers,
                       bidirectional=args.bidirectional, seq_len=args.seq_len, steps=args.steps,
                       batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                       momentum=args.momentum, clip=args.clip, clip_value=args.clip_value,
                       seed=args.seed, eval_every=args.eval_every, eval_size=args.eval_size,
                       checkpoint_every=every, out_dir=args.out, train_size=args.train_size,
                       recurrent_gain=args.recurrent_gain, device=args.device,
                       threads=args.threads, layer_options=layer_options)


def run_train(args: argparse.Namespace) -> int:
    """Run ``rnnlab train`` with the parsed arguments and print the result (or its JSON); returns the exit code."""
    config = config_from_args(args)
    result = train(config, resume=args.resume, progress=not args.no_progress,
                   overwrite=args.overwrite)
    if args.json:
        print(json.dumps(result.summary()))
    else:
        print_result(result)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Run ``rnnlab demo``: a short LSTM on the adding problem, printing its loss and a verdict; returns the exit code."""
    config = TrainConfig(**{**DEMO.to_dict(), "steps": args.steps, "seed": args.seed})
    print(f"rnnlab demo: an LSTM with {config.hidden} units learns the adding problem "
          f"(T = {config.seq_len}): sum the two marked numbers of a sequence.")
    result = train(config, progress=not args.no_progress)
    print_result(result)
    verdict = ("learned it" if result.final_metric < result.chance / 10 else
               "is learning (more --steps help)" if result.final_metric < result.chance
               else "is still at chance")
    print(f"The LSTM {verdict}: test MSE {result.final_metric:.4f} against {result.chance:.3f} "
          "for always answering 1.")
    print("Next, a tanh RNN on longer sequences: "
          "rnnlab train --task adding --cell rnn --seq-len 100 --steps 2000")
    return 0


def print_result(result: TrainResult, file=None) -> None:
    """The evaluation table and a summary line of a finished run (on stdout by default)."""
    file = file or sys.stdout
    cfg, task = result.config, result.task
    name = result.metric_name
    print(f"{'step':>7} {'train loss':>11} {'grad norm':>10} {'test ' + name:>12}", file=file)
    evals = result.evals
    shown = evals if len(evals) <= 12 else [evals[round(i * (len(evals) - 1) / 11)]
                                           for i in range(12)]
    for h in shown:
        print(f"{h['step']:>7} {h['loss']:>11.4f} {h['grad_norm']:>10.3g} {h['metric']:>12.4f}",
              file=file)
    layers = f"{cfg.num_layers} layer{'s' if cfg.num_layers > 1 else ''}"
    direction = ", bidirectional" if cfg.bidirectional else ""
    better = "higher" if result.higher_is_better else "lower"
    ms = result.seconds_per_step * 1000 if math.isfinite(result.seconds_per_step) else math.nan
    print(f"{task.name} ({task.shape}, T = {task.seq_len}): {cfg.cell}, hidden {cfg.hidden}, "
          f"{layers}{direction}: test {name} {result.final_metric:.4f} ({better} is better; "
          f"chance {result.chance:.4g}), {result.params:,} parameters, {ms:.1f} ms/step, "
          f"{result.steps} steps", file=file)
    if result.diverged:
        print(f"training stopped: {result.fault}; "
              f"{clipping_advice(cfg.clip, cfg.clip_value, cfg.lr)}", file=file)
    if result.checkpoint:
        print(f"checkpoint: {result.checkpoint}", file=file)
