"""Data-parallel lab training: ``torchrun --nproc-per-node 2`` (gloo, CPU, loopback) trains
like one process with the same global batch, writes checkpoints once, and resumes with
another world size."""

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnlab.lab import distributed
from rnnlab.lab.checkpoint import load_checkpoint
from rnnlab.lab.tasks.base import IGNORE
from rnnlab.lab.train import TrainConfig, load_model, train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, nproc=2, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
           "--master-addr=127.0.0.1", f"--master-port={free_port()}",
           "-m", "rnnlab.cli", "train", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rank_main(rank, world, port, config_dict, resume):
    """One process of a 2-process run, as torchrun would start it (environment variables)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(TrainConfig.from_dict(config_dict), resume=resume, progress=False)


def run_ranks(config: TrainConfig, world=2, resume=False, timeout=300):
    """Fork ``world`` processes (they share the already imported torch, unlike torchrun's
    fresh interpreters, which the slow test below launches)."""
    ctx = multiprocessing.get_context("fork")
    port = free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, config.to_dict(), resume))
             for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert codes == [0] * world, codes


CONFIG = {"task": "adding", "cell": "lstm", "hidden": 8, "seq_len": 12, "batch_size": 8,
          "eval_every": 3, "eval_size": 16, "checkpoint_every": 3, "threads": 1, "seed": 3}


@pytest.mark.skipif(sys.platform != "linux", reason="forks the test process")
def test_two_processes_equal_one_and_resume_with_another_world_size(tmp_path):
    # one process, the global batch, 6 steps (a checkpoint at 3 to compare with); first, so
    # that the forked ranks below start warm
    config = TrainConfig(**CONFIG, steps=6, out_dir=str(tmp_path / "single"))
    single = train(config, progress=False)

    dist_dir = tmp_path / "ddp"
    run_ranks(TrainConfig(**CONFIG, steps=3, out_dir=str(dist_dir)))
    # one writer: one set of checkpoints and one result
    assert sorted(p.name for p in (dist_dir / "checkpoints").iterdir()) == ["step-00000003"]
    summary = json.loads((dist_dir / "result.json").read_text())
    assert summary["steps"] == 3

    at3, _, _, step = load_model(tmp_path / "single" / "checkpoints" / "step-00000003")
    ddp3, _, _, ddp_step = load_model(dist_dir)
    assert step == ddp_step == 3
    for key, value in params(at3).items():
        torch.testing.assert_close(params(ddp3)[key], value, atol=1e-6, rtol=1e-5)
    assert summary["evals"][0]["metric"] == pytest.approx(single.evals[0]["metric"], rel=1e-4)
    history = load_checkpoint(dist_dir / "checkpoints" / "step-00000003").history
    assert len(history) == 3
    for a, b in zip(history, single.history[:3]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)

    # the 2-process checkpoint resumed in 1 process ends where the 1-process run ends
    resumed = train(TrainConfig.from_dict({**config.to_dict(), "out_dir": str(dist_dir)}),
                    resume=True, progress=False)
    assert resumed.steps == 6
    for key, value in params(single.model).items():
        torch.testing.assert_close(params(resumed.model)[key], value, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_torchrun_cli_resumes_a_one_process_run_with_two(tmp_path):
    """End to end through ``torchrun -m rnnlab.cli train`` (fresh interpreters: slow here)."""
    args = ["--task", "adding", "--cell", "gru", "--hidden", "8", "--seq-len", "10",
            "--batch-size", "8", "--eval-every", "2", "--eval-size", "16",
            "--checkpoint-every", "2", "--threads", "1", "--no-progress"]
    full = tmp_path / "full"
    torchrun([*args, "--steps", "4", "--out", str(full)], nproc=1)
    part = tmp_path / "part"
    torchrun([*args, "--steps", "2", "--out", str(part)], nproc=1)
    torchrun([*args, "--steps", "4", "--out", str(part), "--resume"], nproc=2)
    assert max(p.name for p in (part / "checkpoints").iterdir()) == "step-00000004"
    a, _, _, _ = load_model(full)
    b, _, _, step = load_model(part)
    assert step == 4
    for key, value in params(a).items():
        torch.testing.assert_close(params(b)[key], value, atol=1e-6, rtol=1e-5)


class _ClassTask:
    target = "class"

    @staticmethod
    def batch_dim(t, which):
        return 0


def test_shard_weights_make_the_global_mean():
    """Each rank's loss weight makes DDP's average the global mean, also when ranks score
    different numbers of positions (ignored targets)."""
    torch.manual_seed(0)
    x = torch.randn(6, 5, 3)
    y = torch.randint(0, 3, (6, 5))
    y[0, :4] = IGNORE  # rank 0's rows score fewer positions
    logits = torch.randn(6, 5, 3)

    def loss(p, t):
        return torch.nn.functional.cross_entropy(p.reshape(-1, 3), t.reshape(-1),
                                                 ignore_index=IGNORE)

    world = 3
    total = 0.0
    for rank in range(world):
        xs, ys, weight = distributed.Parallel(rank, world).shard(_ClassTask, x, y)
        assert xs.shape[0] == ys.shape[0] == 2
        rows = slice(2 * rank, 2 * rank + 2)
        total += float(loss(logits[rows], ys)) * weight
    assert total / world == pytest.approx(float(loss(logits, y)), rel=1e-6)
    with pytest.raises(ValueError, match="batch_size: 6 does not divide over 4"):
        distributed.Parallel(0, 4).shard(_ClassTask, x, y)
    one = distributed.Parallel()
    assert one.shard(_ClassTask, x, y) == (x, y, 1.0) and one.is_writer and not one.enabled
    assert one.wrap(torch.nn.Linear(2, 2)).__class__ is torch.nn.Linear


def test_session_is_a_no_op_in_one_process():
    with distributed.session(TrainConfig()) as parallel:
        assert parallel.world_size == 1 and distributed.current() is parallel
    assert not torch.distributed.is_initialized()
    assert Path(distributed.__file__).name == "distributed.py"
