"""Faults: the ``rnnlab train`` process killed with SIGKILL at random moments and resumed
ends bit for bit where an uninterrupted run ends; a corrupt newest checkpoint is rejected
and resume falls back to the previous one, saying so; a full disk and a read-only folder
give one clear error and lose no checkpoint."""

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from rnnlab.cli import build_parser, main
from rnnlab.lab import checkpoint as ckpt
from rnnlab.lab import checkpoint_files
from rnnlab.lab.checkpoint import CheckpointWriteError
from rnnlab.lab.train import train
from rnnlab.lab.train_cli import config_from_args

STEPS = 30
TINY = ["--hidden", "8", "--seq-len", "8", "--batch-size", "8", "--eval-every", "10",
        "--eval-size", "32", "--threads", "1", "--no-progress"]


def _args(out: Path, *extra: str) -> list[str]:
    """``rnnlab train`` arguments of the SIGKILL trials: a checkpoint after every step."""
    return ["train", *TINY, "--steps", str(STEPS), "--checkpoint-every", "1", "--out", str(out),
            *extra]


def _newest_step(root: Path) -> int:
    found = ckpt.list_checkpoints(root)
    return int(found[0].name.removeprefix("step-")) if found else 0


def _kill_at_random(out: Path, rng: random.Random) -> dict:
    """Run the CLI (resuming when there is a checkpoint) and SIGKILL it at a random moment of
    its training: after a random step's checkpoint, plus a random 0–20 ms (about one step
    and its checkpoint write). Returns what the kill left on disk."""
    root = out / "checkpoints"
    before = _newest_step(root)
    debris_before = _debris(root)
    target = rng.randint(min(before + 1, STEPS - 2), STEPS - 2)  # ≤ before: kill at start-up
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab.cli",
                             *_args(out, *(["--resume"] if before else []))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None and _newest_step(root) < target:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert killed or proc.returncode == 0, err.decode()
    newest = ckpt.load_latest(root)  # whatever the moment, a usable checkpoint is there
    return {"killed": killed, "after_step": newest.step,
            "mid_write": bool(_debris(root) - debris_before)}


def _debris(root: Path) -> set[str]:
    """What an interrupted checkpoint write leaves: hidden temporary directories."""
    return {p.name for p in root.iterdir() if p.name.startswith(".")} if root.is_dir() else set()


def _sigkill_trials(tmp_path, trials: int, max_kills: int, seed: int) -> list[dict]:
    reference = train(_config(tmp_path / "reference"), progress=False)
    expected = ckpt.load_checkpoint(reference.checkpoint)
    rng = random.Random(seed)
    outcomes = []
    for trial in range(trials):
        out = tmp_path / f"trial-{trial}"
        kills = [_kill_at_random(out, rng) for _ in range(rng.randint(1, max_kills))]
        assert main(_args(out, "--resume")) == 0  # the last resume runs in this process
        final = ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[0])
        assert final.step == STEPS and final.tensors.keys() == expected.tensors.keys()
        assert all(torch.equal(final.tensors[k], expected.tensors[k]) for k in expected.tensors), \
            f"trial {trial}: parameters or optimizer state differ after the kills {kills}"
        losses = [(h["step"], h["loss"], h["grad_norm"]) for h in final.history]
        assert losses == [(h["step"], h["loss"], h["grad_norm"]) for h in expected.history]
        outcomes.extend(kills)
    print(f"\nSIGKILL: {trials} trials, {len(outcomes)} kills "
          f"({sum(k['killed'] for k in outcomes)} landed while running, "
          f"{sum(k['mid_write'] for k in outcomes)} inside a checkpoint write), resumed at "
          f"steps {[k['after_step'] for k in outcomes]}: all bit-identical to the "
          "uninterrupted run")
    return outcomes


def _config(out: Path):
    """The configuration :func:`_args` describe."""
    return config_from_args(build_parser().parse_args(_args(out)))


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    outcomes = _sigkill_trials(tmp_path, trials=3, max_kills=1, seed=0)
    assert sum(k["killed"] for k in outcomes) >= 1  # (one might finish first: still checked)


@pytest.mark.slow
def test_sigkill_many_trials(tmp_path):
    outcomes = _sigkill_trials(tmp_path, trials=20, max_kills=3, seed=1)
    assert sum(k["killed"] for k in outcomes) >= 20


# ---- a corrupt checkpoint on disk ------------------------------------------------------------
def _argv(out: Path, steps: int, *extra: str) -> list[str]:
    """``rnnlab train`` arguments of the runs in this process: a checkpoint every 3 steps."""
    return ["train", *TINY, "--steps", str(steps), "--checkpoint-every", "3", "--out", str(out),
            *extra]


@pytest.mark.parametrize("damage", ["truncated", "bit-flip", "emptied"])
def test_resume_rejects_a_corrupt_checkpoint_and_says_it_uses_the_previous(
        tmp_path, capsys, damage):
    assert main(_argv(tmp_path / "whole", 9)) == 0
    out = tmp_path / "run"
    assert main(_argv(out, 6)) == 0
    weights = out / "checkpoints" / "step-00000006" / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[:len(data) // 2],
                         "bit-flip": data[:-7] + bytes([data[-7] ^ 0x10]) + data[-6:],
                         "emptied": b""}[damage])
    capsys.readouterr()
    assert main(_argv(out, 9, "--resume")) == 0
    err = capsys.readouterr().err
    assert f"rnnlab: skipping unusable checkpoint: {weights}: checksum mismatch" in err
    assert f"using the previous checkpoint {out / 'checkpoints' / 'step-00000003'} (step 3)" in err
    whole = ckpt.load_checkpoint(tmp_path / "whole" / "checkpoints" / "step-00000009")
    resumed = ckpt.load_checkpoint(out / "checkpoints" / "step-00000009")
    assert all(torch.equal(whole.tensors[k], resumed.tensors[k]) for k in whole.tensors)


# ---- a full disk, a read-only folder ------------------------------------------------------
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _half_written(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"\0" * 100)  # some of it reached the disk
    _no_space()


FULL_DISK = {  # where the write fails: each step of save_checkpoint that touches the disk
    "directory": (tempfile, "mkdtemp", _no_space),
    "weights": (checkpoint_files, "save_file", _half_written),
    "fsync": (checkpoint_files, "_fsync_file", _no_space),
    "state.json": (checkpoint_files, "_write_text", _no_space),
}


@pytest.mark.parametrize("where", sorted(FULL_DISK))
def test_a_full_disk_stops_with_a_clear_error_and_keeps_the_last_checkpoint(
        tmp_path, tiny, monkeypatch, where):
    whole = train(tiny(), progress=False)
    config = tiny(out_dir=str(tmp_path), checkpoint_every=5)
    owner, name, fault = FULL_DISK[where]

    def fill_the_disk(step, record):
        if step == 5:  # the checkpoint of step 5 is written: the disk is full from now on
            monkeypatch.setattr(owner, name, fault)

    with pytest.raises(CheckpointWriteError) as error:
        train(config, progress=False, callback=fill_the_disk)
    root = tmp_path / "checkpoints"
    assert error.value.errno == errno.ENOSPC
    assert str(error.value) == (f"{root}: cannot write the checkpoint of step 10 (No space left "
                                f"on device); the newest checkpoint, {root / 'step-00000005'}, "
                                "is untouched")
    assert sorted(p.name for p in root.iterdir()) == ["step-00000005"]  # and no debris
    monkeypatch.undo()  # space again: resume redoes steps 6–10 exactly
    resumed = train(config, resume=True, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                  whole.model.state_dict().values()))


def test_a_full_disk_is_one_line_and_exit_code_1_from_the_cli(tmp_path, monkeypatch, capsys):
    real, calls = checkpoint_files.save_file, []

    def fills_up(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            _half_written(*args, **kwargs)
        real(*args, **kwargs)

    monkeypatch.setattr(checkpoint_files, "save_file", fills_up)
    assert main(_argv(tmp_path, 9)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    root = tmp_path / "checkpoints"
    assert err == [f"rnnlab train: error: {root}: cannot write the checkpoint of step 6 (No "
                   f"space left on device); the newest checkpoint, {root / 'step-00000003'}, "
                   "is untouched"]
    assert ckpt.load_latest(root).step == 3


def _read_only(path: Path):
    """Make a folder read-only for real and return the function that undoes it: ``chmod``
    for a normal user; as root, whom ``chmod`` does not stop, the immutable attribute
    (``chattr +i``). Skips the test when neither stops a write here."""

    def stops_writes() -> bool:
        try:
            (path / ".probe").touch()
        except OSError:
            return True
        (path / ".probe").unlink()
        return False

    mode = path.stat().st_mode
    path.chmod(0o555)
    if stops_writes():
        return lambda: path.chmod(mode)
    path.chmod(mode)
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode == 0:
        def undo():
            subprocess.run([chattr, "-i", str(path)], check=True)

        if stops_writes():
            return undo
        undo()
    pytest.skip("neither chmod nor chattr +i makes a folder read-only here")


def test_a_read_only_folder_stops_with_a_clear_error_and_keeps_the_last_checkpoint(
        tmp_path, tiny):
    whole = train(tiny(), progress=False)
    config = tiny(out_dir=str(tmp_path), checkpoint_every=5)
    root, undo = tmp_path / "checkpoints", []

    def read_only_after_step_5(step, record):
        if step == 5:
            undo.append(_read_only(root))

    try:
        with pytest.raises(CheckpointWriteError, match=rf"^{root}: cannot write the checkpoint "
                           r"of step 10 \((Permission denied|Operation not permitted)\); the "
                           rf"newest checkpoint, {root / 'step-00000005'}, is untouched$"):
            train(config, progress=False, callback=read_only_after_step_5)
    finally:
        for step in undo:
            step()
    assert sorted(p.name for p in root.iterdir()) == ["step-00000005"]
    resumed = train(config, resume=True, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                  whole.model.state_dict().values()))


def test_a_read_only_file_system_simulated(tmp_path, tiny, monkeypatch):
    """EROFS, what a folder on a read-only mount gives (simulated: mounting needs privileges)."""

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def mount_read_only_after_step_3(step, record):
        if step == 3:
            monkeypatch.setattr(tempfile, "mkdtemp", read_only)

    config = tiny(steps=6, out_dir=str(tmp_path), checkpoint_every=3)
    with pytest.raises(CheckpointWriteError, match=r"step 6 \(Read-only file system\); the "
                       r"newest checkpoint, .*step-00000003, is untouched") as error:
        train(config, progress=False, callback=mount_read_only_after_step_3)
    assert error.value.errno == errno.EROFS
    assert ckpt.load_latest(tmp_path / "checkpoints").step == 3
