"""Training checkpoints: tensors in safetensors, everything else in a small JSON, no pickle.

A checkpoint is a directory ``<root>/step-00000500/`` holding

* ``weights.safetensors``: the model's tensors (``model.<name>``) and the optimizer's
  per-parameter tensors (``optimizer.<index>.<key>``, e.g. Adam's ``exp_avg``), on the CPU;
* ``state.json``: the format version, the step, the training configuration, the task's
  description, the optimizer's other state (hyper-parameters, plain numbers), the random
  number generators' states, the training history, and the sha256 of the weights file.

Writing is atomic: both files go to a hidden temporary directory, are flushed to disk
(``fsync``) and the directory is renamed into place in one step, so a crash, a SIGKILL or
Ctrl-C while writing leaves at most a stray temporary directory (removed by the next save),
never a half-written checkpoint. A tensor holding NaN or inf is refused before anything is
written, and a write that fails (disk full, read-only folder) raises
:class:`CheckpointWriteError` and leaves the checkpoints already there untouched. The
``keep`` newest checkpoints are kept (two by default), so a checkpoint that turns out
corrupt (a disk error, a truncated copy) never takes the previous good one with it:
:func:`load_latest` falls back to it, saying so in the log.

Loading treats the files as untrusted: nothing is unpickled (safetensors and JSON only), the
checksum, the format and the JSON's structure are verified, every tensor must be finite and
match the dtype and shape ``state.json`` lists, and (:func:`restore`) every name, shape and
dtype must match the model and optimizer being restored; any failure is a
:class:`CheckpointError` naming the file and the tensor.

This module is the public one: everything is imported from here. The parts live beside it,
one concept each: :mod:`~rnnlab.lab.checkpoint_format` (the names, the errors,
:class:`Checkpoint`), :mod:`~rnnlab.lab.checkpoint_files` (atomic writing and pruning),
:mod:`~rnnlab.lab.checkpoint_rng` (the random number generators' states) and
:mod:`~rnnlab.lab.checkpoint_load` (loading and checking untrusted checkpoints); saving is
here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from rnnlab.lab.checkpoint_files import (
    prune_checkpoints,
    sha256_file,
    write_checkpoint_files,
    write_json_atomic,
)
from rnnlab.lab.checkpoint_format import (
    FORMAT,
    STATE,
    VERSION,
    WEIGHTS,
    Checkpoint,
    CheckpointError,
    CheckpointWriteError,
    checkpoint_name,
    dtype_name,
    list_checkpoints,
    remove_checkpoints,
)
from rnnlab.lab.checkpoint_load import check_config, load_checkpoint, load_latest, restore
from rnnlab.lab.checkpoint_rng import capture_rng, restore_rng

__all__ = [
    "FORMAT",
    "STATE",
    "VERSION",
    "WEIGHTS",
    "Checkpoint",
    "CheckpointError",
    "CheckpointWriteError",
    "capture_rng",
    "check_config",
    "checkpoint_name",
    "flatten_state",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest",
    "remove_checkpoints",
    "restore",
    "restore_rng",
    "save_checkpoint",
    "sha256_file",
    "write_json_atomic",
]

logger = logging.getLogger(__name__)


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def flatten_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None):
    """``(tensors, optimizer_json)``: every tensor under a flat name, the rest JSON-able."""
    tensors = {f"model.{k}": v.detach().to("cpu").contiguous().clone()
               for k, v in model.state_dict().items()}
    optimizer_json = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        rest: dict[str, dict] = {}
        for index, entries in sd["state"].items():
            rest[str(index)] = {}
            for key, value in entries.items():
                if isinstance(value, Tensor):
                    tensors[f"optimizer.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
                else:
                    rest[str(index)][key] = _jsonable(value)
        optimizer_json = {"type": type(optimizer).__name__, "state": rest,
                          "param_groups": _jsonable(sd["param_groups"])}
    return tensors, optimizer_json


def save_checkpoint(root, step: int, model: torch.nn.Module, optimizer=None, *,
                    config: dict | None = None, history: list | None = None,
                    rng: dict | None = None, extra: dict | None = None, keep: int = 2) -> Path:
    """Write the checkpoint of ``step`` under ``root`` atomically; keep the ``keep`` newest.

    Returns the checkpoint's directory. ``extra`` goes into ``state.json`` as is (JSON-able).
    Raises :class:`CheckpointError` (before writing anything) when a tensor holds NaN or
    inf, and :class:`CheckpointWriteError` when the disk refuses the write; either way the
    checkpoints already under ``root`` stay as they were.
    """
    root = Path(root)
    tensors, optimizer_json = flatten_state(model, optimizer)
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{root}: refusing to write the checkpoint of step {step}: "
                                  f"tensor {name!r} holds non-finite values (NaN or inf)")
    state = {
        "format": FORMAT, "version": VERSION, "step": step,
        "tensors": {k: [dtype_name(v), list(v.shape)] for k, v in tensors.items()},
        "config": config or {}, "optimizer": optimizer_json, "rng": rng or {},
        "history": history or [], **(extra or {}),
    }
    try:
        final = write_checkpoint_files(root, step, tensors, state)
    except OSError as error:
        kept = list_checkpoints(root)
        left = (f"the newest checkpoint, {kept[0]}, is untouched" if kept
                else "there was no checkpoint before")
        raise CheckpointWriteError(f"{root}: cannot write the checkpoint of step {step} "
                                   f"({error.strerror or error}); {left}", error.errno) from error
    prune_checkpoints(root, keep)
    logger.info("checkpoint of step %d written to %s", step, final)
    return final

