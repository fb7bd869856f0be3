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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

logger = logging.getLogger(__name__)

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


# ---- file helpers -------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data) -> None:
    """Write JSON to ``path`` through a temporary file, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


# ---- random number generators ---------------------------------------------------------------
def capture_rng(generators: dict[str, torch.Generator] | None = None) -> dict:
    """JSON-able states of torch's global CPU generator, Python's ``random``, NumPy's global
    generator, and the named torch generators (e.g. the training data stream)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state().tolist(),
        "python": [version, list(mt), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "generators": {k: g.get_state().tolist() for k, g in (generators or {}).items()},
    }


def restore_rng(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    """Put back what :func:`capture_rng` saved (global generators and the named ones)."""
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    for key, generator in (generators or {}).items():
        generator.set_state(torch.tensor(state["generators"][key], dtype=torch.uint8))


# ---- saving ---------------------------------------------------------------------------------
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


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def _dtype_name(tensor: Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


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
        "tensors": {k: [_dtype_name(v), list(v.shape)] for k, v in tensors.items()},
        "config": config or {}, "optimizer": optimizer_json, "rng": rng or {},
        "history": history or [], **(extra or {}),
    }
    try:
        final = _write(root, step, tensors, state)
    except OSError as error:
        kept = list_checkpoints(root)
        left = (f"the newest checkpoint, {kept[0]}, is untouched" if kept
                else "there was no checkpoint before")
        raise CheckpointWriteError(f"{root}: cannot write the checkpoint of step {step} "
                                   f"({error.strerror or error}); {left}", error.errno) from error
    _prune(root, keep)
    logger.info("checkpoint of step %d written to %s", step, final)
    return final


def _write(root: Path, step: int, tensors: dict[str, Tensor], state: dict) -> Path:
    """Write ``tensors`` and ``state`` (plus the weights' checksum) into a temporary
    directory under ``root``, flush it to disk and rename it to the checkpoint's name."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{checkpoint_name(step)}-", dir=root))
    try:
        weights = tmp / WEIGHTS
        save_file(tensors, str(weights), metadata={"format": FORMAT, "step": str(step)})
        _fsync_file(weights)
        _write_text(tmp / STATE, json.dumps({**state, "weights_sha256": sha256_file(weights)}))
        _fsync_dir(tmp)
        final = root / checkpoint_name(step)
        stale = None
        if final.exists():  # the same step written again (e.g. Ctrl-C right after a save)
            stale = root / f".old-{final.name}-{os.getpid()}"
            os.replace(final, stale)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` and flush it to disk."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _prune(root: Path, keep: int) -> None:
    for old in list_checkpoints(root)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    # left by a crash (SIGKILL, power loss) in the middle of a write
    for stray in (*root.glob(".tmp-step-*"), *root.glob(".old-step-*")):
        shutil.rmtree(stray, ignore_errors=True)


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


# ---- loading --------------------------------------------------------------------------------
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
    found = {k: f"{_dtype_name(v)} {tuple(v.shape)}" for k, v in tensors.items()}
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
