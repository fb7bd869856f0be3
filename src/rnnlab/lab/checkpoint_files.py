"""Atomic checkpoint files: a checkpoint is written into a hidden temporary directory, flushed
to disk (``fsync``) and renamed into place in one step; old checkpoints beyond ``keep`` and
the debris of an interrupted write are pruned. Also the sha256 of a file and an atomic JSON
write."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import save_file
from torch import Tensor

from rnnlab.lab.checkpoint_format import FORMAT, STATE, WEIGHTS, checkpoint_name, list_checkpoints


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
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


def write_checkpoint_files(root: Path, step: int, tensors: dict[str, Tensor], state: dict) -> Path:
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


def prune_checkpoints(root: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints under ``root``, and the debris of
    interrupted writes."""
    for old in list_checkpoints(root)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    # left by a crash (SIGKILL, power loss) in the middle of a write
    for stray in (*root.glob(".tmp-step-*"), *root.glob(".old-step-*")):
        shutil.rmtree(stray, ignore_errors=True)
