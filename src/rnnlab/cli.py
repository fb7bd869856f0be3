"""The ``rnnlab`` command line: a thin layer over :mod:`rnnlab.lab`.

Subcommands register themselves: :data:`COMMANDS` lists the modules that define
``register(subparsers)``; each adds its parser and sets ``func`` (``args → exit code``) with
``set_defaults``. A module listed that is not installed is skipped, so a command can live in
its own module (``rnnlab.lab.gradflow_cli``, ``rnnlab.lab.compare_cli``) and be added with one
line here.

Bad input (an unknown task or cell, a negative size, a missing checkpoint to resume) ends
with one line on stderr and exit code 2, never a traceback; a failed write (disk full,
read-only folder) likewise with exit code 1. Set ``RNNLAB_DEBUG=1`` to see the traceback of
such an error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMANDS = [
    "rnnlab.lab.train_cli",  # train, demo
    "rnnlab.lab.gradflow_cli",  # gradflow (when present)
    "rnnlab.lab.compare_cli",  # compare (when present)
]


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and do not exit."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


# ---- argument types, for every subcommand -----------------------------------------------------
def positive_int(text: str) -> int:
    value = _number(text, int)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _number(text: str, kind):
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None


# ---- parser and entry point ---------------------------------------------------------------------
def build_parser() -> Parser:
    from rnnlab import __version__

    parser = Parser(prog="rnnlab", description="Recurrent networks from the equations: "
                    "train and compare RNN, LSTM, GRU and SRU on the lab's tasks.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:  # that command is not part of this installation
                continue
            raise
        module.register(subparsers)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it between calls)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _log_to_stderr(level: int) -> None:
    """Show the library's log records (``rnnlab.*``) on stderr as ``rnnlab: message``."""
    logger = logging.getLogger("rnnlab")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("rnnlab: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    """Run ``rnnlab`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help, --version
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _log_to_stderr(logging.INFO if args.verbose else logging.WARNING)
    from rnnlab.lab.train import TrainingInterrupted

    try:
        return int(args.func(args) or 0)
    except TrainingInterrupted as stop:
        where = (f"; checkpoint {stop.checkpoint} (add --resume to continue)"
                 if stop.checkpoint else "")
        print(f"rnnlab {args.command}: interrupted after step {stop.step}{where}",
              file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"rnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, PermissionError) as error:
        if os.environ.get("RNNLAB_DEBUG"):
            raise
        print(f"rnnlab {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # a write the disk refused (full, read-only folder)
        if os.environ.get("RNNLAB_DEBUG"):
            raise
        print(f"rnnlab {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
