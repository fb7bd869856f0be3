"""Data-parallel training for :func:`rnnlab.lab.train.train` under ``torchrun``.

Launch the usual training command with ``torchrun``; nothing else changes::

    torchrun --nproc-per-node 4 -m rnnlab.cli train --task adding --out runs/adding
    torchrun --nproc-per-node 2 -m rnnlab.cli train ... --device cuda    # one GPU per process

:func:`session` (entered by ``train``) sees torchrun's environment (``WORLD_SIZE`` > 1) and
starts the process group: ``gloo`` on the CPU, ``nccl`` with ``device="cuda"`` (process k on
``cuda:LOCAL_RANK``). Then every step:

* every process draws the same global batch of ``batch_size`` examples from the same seeded
  data stream, and keeps its own contiguous share of the rows (``batch_size`` must divide by
  the number of processes);
* the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages
  the gradients; each process weights its loss by its share of the scored positions, so the
  averaged gradient is the gradient of the global batch's loss, as in one process (equal up to
  float rounding, the order of the sums differs);
* the recorded loss is the global batch's; gradient clipping, the optimizer step and
  evaluation then run identically everywhere.

Only rank 0 writes checkpoints and ``result.json``. A checkpoint holds the model, the
optimizer and the data stream, none of which depends on the number of processes, so a run
resumes with any world size (or in one process) and continues the same trajectory.
Randomness inside the forward (dropout, ``initial_state="random"``) is drawn per process, so
with it the run is only statistically, not numerically, the single-process one.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass
class Parallel:
    """How the current training process shares the work (one process: all no-ops)."""

    rank: int = 0
    world_size: int = 1
    device: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Whether this process writes files (checkpoints, results): rank 0."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to call for training forwards: DDP around ``model`` when distributed."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.device(self.device).index] if self.device and self.device.startswith("cuda") \
            else None
        # unused parameters (e.g. a learned initial state that a given state replaces) get no
        # gradient, as in one process
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def shard(self, task, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float]:
        """This process's rows of the global batch ``(x, y)``, and the weight of its loss:
        ``world_size · (scored positions here) / (scored positions in the batch)``, so that
        DDP's average of the weighted losses' gradients is the global loss's gradient."""
        if not self.enabled:
            return x, y, 1.0
        bx, by = task.batch_dim(x, "x"), task.batch_dim(y, "y")
        batch = x.shape[bx]
        if batch % self.world_size:
            raise ValueError(f"batch_size: {batch} does not divide over {self.world_size} "
                             "processes")
        share = batch // self.world_size
        xs = x.narrow(bx, self.rank * share, share)
        ys = y.narrow(by, self.rank * share, share)
        return xs, ys, self.world_size * _scored(task, ys) / max(_scored(task, y), 1)

    def mean(self, weighted_loss: Tensor) -> float:
        """The global batch's loss from the processes' weighted losses."""
        value = weighted_loss.detach()
        if not self.enabled:
            return value.item()
        value = value.clone().reshape(1)
        dist.all_reduce(value)
        return value.item() / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def _scored(task, y: Tensor) -> int:
    """How many positions of ``y`` the task's loss averages over."""
    if getattr(task, "target", None) == "class":
        from rnnlab.lab.tasks.base import IGNORE

        return int((y != IGNORE).sum())
    return y.numel()


_CURRENT = Parallel()


def current() -> Parallel:
    """The parallel setting of the training in progress."""
    return _CURRENT


def world_from_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment variables."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


@contextlib.contextmanager
def session(config):
    """Set up data parallelism for one training run when launched by torchrun (or when the
    caller already started a process group); a no-op otherwise. Ends the process group it
    started."""
    global _CURRENT
    started = False
    _, world, local_rank = world_from_env()
    if not dist.is_available() or (world <= 1 and not dist.is_initialized()):
        yield _CURRENT
        return
    cuda = str(config.device).startswith("cuda")
    if cuda:
        if str(config.device) not in ("cuda", f"cuda:{local_rank}"):
            raise ValueError(f"device: with several processes use device='cuda' (process k "
                             f"takes cuda:LOCAL_RANK), got {config.device!r}")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
        started = True
    previous = _CURRENT
    _CURRENT = Parallel(dist.get_rank(), dist.get_world_size(),
                        f"cuda:{torch.cuda.current_device()}" if cuda else None)
    try:
        yield _CURRENT
    finally:
        _CURRENT = previous
        if started:
            dist.destroy_process_group()
