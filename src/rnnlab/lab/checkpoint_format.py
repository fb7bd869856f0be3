"""The checkpoint format's names and records: the file names and version, a step's directory
name, how a dtype is written, the errors, and :class:`Checkpoint`, a loaded checkpoint.

The format itself is described in :mod:`rnnlab.lab.checkpoint`, the public module.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnlab.lab.checkpoint_rng import restore_rng

FORMAT = "rnnlab-checkpoint"
VERSION = 1
WEIGHTS = "weights.safetensors"
STATE = "state.json"
_NAME = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or written for another model."""


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (disk full, read-only folder …); the checkpoints already on
    disk are untouched. ``errno`` is the failed write's."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


@dataclass
class Checkpoint:
    """A loaded, verified checkpoint.

    path: its directory. step: optimizer steps done. state: the parsed ``state.json``.
    tensors: every tensor of ``weights.safetensors`` by its flat name.
    """

    path: Path
    step: int
    state: dict
    tensors: dict[str, Tensor]

    @property
    def config(self) -> dict:
        return self.state["config"]

    @property
    def history(self) -> list[dict]:
        return self.state["history"]

    @property
    def rng(self) -> dict:
        return self.state["rng"]

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    def restore_rng(self, generators: dict[str, torch.Generator] | None = None) -> None:
        """:func:`restore_rng` of this checkpoint's saved states; a malformed state is a
        :class:`CheckpointError`."""
        try:
            restore_rng(self.rng, generators)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{self.path / STATE}: the random number generator states "
                                  f"are not valid ({type(error).__name__}: {error})") from None


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint of ``step``: ``step-00000500``."""
    return f"step-{step:08d}"


def dtype_name(tensor: Tensor) -> str:
    """A tensor's dtype without the ``torch.`` prefix (``float32``)."""
    return str(tensor.dtype).removeprefix("torch.")


def list_checkpoints(root) -> list[Path]:
    """Checkpoint directories under ``root``, newest (highest step) first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def remove_checkpoints(root) -> None:
    """Delete every checkpoint under ``root`` (to start a run afresh)."""
    for path in list_checkpoints(root):
        shutil.rmtree(path)
