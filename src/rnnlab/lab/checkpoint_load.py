"""Loading untrusted checkpoints: nothing is unpickled, and ``state.json``'s fields, the
checksum, every tensor's dtype, shape and finiteness, and (:func:`restore`) the match with the
model and optimizer being restored are checked; any failure is a :class:`CheckpointError`
naming the file and the tensor."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from rnnlab.lab.checkpoint_files import sha256_file
from rnnlab.lab.checkpoint_format import (
    FORMAT,
    STATE,
    VERSION,
    WEIGHTS,
    Checkpoint,
    CheckpointError,
    dtype_name,
    list_checkpoints,
)

logger = logging.getLogger("rnnlab.lab.checkpoint")  # records under the public module's name

# the fields of state.json that loading and resuming read, and their JSON types
_FIELDS = {"step": int, "weights_sha256": str, "config": dict, "rng": dict, "history": list,
           "tensors": dict}


def _check_fields(state_file: Path, state: dict) -> None:
    """Raise :class:`CheckpointError` unless ``state.json``'s fields have the types loading
    relies on (an untrusted file may hold anything)."""
    for key, kind in _FIELDS.items():
        if key not in state:
            raise CheckpointError(f"{state_file}: missing the field {key!r}")
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise CheckpointError(f"{state_file}: the field {key!r} is not a JSON "
                                  f"{'number' if kind is int else kind.__name__}")
    if state["step"] < 0:
        raise CheckpointError(f"{state_file}: negative step {state['step']}")
    for name, entry in state["tensors"].items():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], list)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                        for n in entry[1])):
            raise CheckpointError(f"{state_file}: the entry of tensor {name!r} is not "
                                  "[dtype, shape]")
    for record in state["history"]:
        if not isinstance(record, dict) or not all(
                isinstance(record.get(k), (int, float)) for k in ("step", "loss", "time")):
            raise CheckpointError(f"{state_file}: a history entry lacks numeric step, loss and "
                                  "time")


def load_checkpoint(path) -> Checkpoint:
    """Read and verify one checkpoint directory: the format and structure of ``state.json``,
    the checksum, that every tensor is the dtype and shape listed and finite."""
    path = Path(path)
    weights, state_file = path / WEIGHTS, path / STATE
    for required in (weights, state_file):
        if not required.is_file():
            raise CheckpointError(f"{required}: missing, not a complete checkpoint")
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{state_file}: not readable JSON ({error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{state_file}: not an rnnlab checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{state_file}: checkpoint format version {state.get('version')}, "
                              f"this rnnlab reads version {VERSION}")
    _check_fields(state_file, state)
    digest = sha256_file(weights)
    if digest != state["weights_sha256"]:
        raise CheckpointError(f"{weights}: checksum mismatch (sha256 {digest[:12]}…, "
                              f"{STATE} expects {str(state['weights_sha256'])[:12]}…): the file "
                              "is corrupt or was modified")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({error})") from None
    listed = {k: f"{v[0]} {tuple(v[1])}" for k, v in state["tensors"].items()}
    found = {k: f"{dtype_name(v)} {tuple(v.shape)}" for k, v in tensors.items()}
    for name in sorted(set(listed) | set(found)):
        if found.get(name) != listed.get(name):
            raise CheckpointError(f"{weights}: tensor {name!r} is {found.get(name, 'absent')}, "
                                  f"{STATE} lists {listed.get(name, 'no such tensor')}")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{weights}: tensor {name!r} holds non-finite values "
                                  "(NaN or inf): training had diverged")
    return Checkpoint(path, int(state["step"]), state, tensors)


def load_latest(root) -> Checkpoint:
    """The newest usable checkpoint under ``root``: a corrupt newest one is reported in the
    log and skipped for the one before it. Raises :class:`CheckpointError` when there is none
    or none is usable (the message names the newest one's problem)."""
    candidates = list_checkpoints(root)
    if not candidates:
        raise CheckpointError(f"{root}: no checkpoint to resume from")
    errors = []
    for path in candidates:
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as error:
            errors.append(error)
            continue
        for error in errors:
            logger.warning("skipping unusable checkpoint: %s", error)
        if errors:
            logger.warning("using the previous checkpoint %s (step %d)", path, checkpoint.step)
        return checkpoint
    more = f" (and {len(errors) - 1} older checkpoint(s) are unusable too)" if len(errors) > 1 else ""
    raise CheckpointError(f"{errors[0]}{more}")


def check_config(checkpoint: Checkpoint, config: dict, keys) -> None:
    """Raise :class:`CheckpointError` unless the checkpoint's config equals ``config`` on
    ``keys`` (the fields that decide the model, the data and the optimisation)."""
    saved = checkpoint.config
    diffs = [f"{k} {saved.get(k)!r} ≠ {config.get(k)!r}" for k in keys
             if saved.get(k) != config.get(k)]
    if diffs:
        raise CheckpointError(f"{checkpoint.path / STATE}: written by a different configuration "
                              f"(checkpoint vs now: {', '.join(diffs)})")


def restore(checkpoint: Checkpoint, model: torch.nn.Module, optimizer=None) -> None:
    """Load the checkpoint's tensors into ``model`` (and ``optimizer``) after checking that
    every name, shape and dtype matches; raises :class:`CheckpointError` otherwise."""
    where = checkpoint.weights_path
    expected = model.state_dict()
    saved = {k[len("model."):]: v for k, v in checkpoint.tensors.items() if k.startswith("model.")}
    missing, unexpected = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{where}: does not match the model (missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]})")
    for name, target in expected.items():
        got = saved[name]
        if got.shape != target.shape or got.dtype != target.dtype:
            raise CheckpointError(f"{where}: tensor 'model.{name}' is {got.dtype} "
                                  f"{tuple(got.shape)}, the model expects {target.dtype} "
                                  f"{tuple(target.shape)}")
    if optimizer is not None:
        sd = _optimizer_state(checkpoint, optimizer)
    model.load_state_dict(saved, strict=True)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(sd)
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{checkpoint.path / STATE}: the optimizer state is not valid "
                                  f"({type(error).__name__}: {error})") from None


def _kind(value):
    """What a JSON value must look like to stand for ``value``: numbers are alike, a list
    stands for a tuple of the same kinds."""
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (tuple, list)):
        return tuple(_kind(v) for v in value)
    return type(value).__name__


def _optimizer_state(checkpoint: Checkpoint, optimizer) -> dict:
    """The ``optimizer.state_dict()`` the checkpoint describes, each tensor checked against
    its parameter's shape and dtype."""
    where, state_file = checkpoint.weights_path, checkpoint.path / STATE
    saved = checkpoint.state.get("optimizer")
    kind = saved.get("type") if isinstance(saved, dict) else None
    if kind != type(optimizer).__name__:
        raise CheckpointError(f"{where}: holds {kind} optimizer state, expected "
                              f"{type(optimizer).__name__}")
    current = optimizer.state_dict()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups, entries = saved.get("param_groups"), saved.get("state")
    well_formed = (
        isinstance(groups, list) and isinstance(entries, dict)
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
        and all(k.isdigit() and isinstance(v, dict) for k, v in entries.items()))
    if not well_formed:
        raise CheckpointError(f"{state_file}: the optimizer state is malformed")
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in current["param_groups"]]:
        raise CheckpointError(f"{where}: optimizer parameter groups do not match the model")
    for number, (group, fresh) in enumerate(zip(groups, current["param_groups"])):
        for key, value in fresh.items():
            if key == "params":
                continue
            if key not in group:  # written by another torch version: the fresh optimizer's
                group[key] = value
            if _kind(group[key]) != _kind(value):
                raise CheckpointError(f"{state_file}: optimizer parameter group {number}'s "
                                      f"{key!r} is {group[key]!r}, not like {value!r}")
            if isinstance(value, tuple):  # JSON turned tuples (Adam's betas) into lists
                group[key] = tuple(group[key])
    state: dict[int, dict] = {int(i): dict(v) for i, v in entries.items()}
    for name, tensor in checkpoint.tensors.items():
        if not name.startswith("optimizer."):
            continue
        index, _, key = name.removeprefix("optimizer.").partition(".")
        if not index.isdigit() or not key or int(index) >= len(params):
            raise CheckpointError(f"{where}: tensor {name!r} names no parameter of the model "
                                  f"(it has {len(params)})")
        param = params[int(index)]
        if tensor.dim() > 0 and (tensor.shape != param.shape or tensor.dtype != param.dtype):
            raise CheckpointError(f"{where}: tensor {name!r} is {tensor.dtype} "
                                  f"{tuple(tensor.shape)}, its parameter {param.dtype} "
                                  f"{tuple(param.shape)}")
        state.setdefault(int(index), {})[key] = tensor
    return {"state": state, "param_groups": groups}
