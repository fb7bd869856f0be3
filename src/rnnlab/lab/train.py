"""Training a :class:`~rnnlab.lab.model.SequenceModel` on a lab task: seeds, Adam or SGD,
gradient clipping, periodic evaluation, a progress bar, and checkpoints with exact resume.

Determinism: the initial weights come from ``torch.manual_seed(seed)`` and every training
batch from one :class:`torch.Generator` seeded with ``seed``; evaluation draws from its own
fixed generator and never touches the training streams. All of it (the data generator, the
global generators, the optimizer's state) goes into each checkpoint, so on the CPU a run
stopped at step k and resumed ends bit for bit where an uninterrupted run with the same
configuration ends.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnlab.lab import checkpoint as ckpt
from rnnlab.lab import distributed
from rnnlab.lab.config import TrainConfig
from rnnlab.lab.guards import NumericGuard, clipping_advice, total_norm
from rnnlab.lab.model import SequenceModel
from rnnlab.lab.tasks import Task, make_task

logger = logging.getLogger(__name__)

EVAL_SEED = 2_147_483_647  # the test examples: the same for every run, seed and step
CHECKPOINT_DIR = "checkpoints"
RESULT_FILE = "result.json"


@dataclass
class TrainResult:
    """What :func:`train` returns.

    history: one dict per step done (resumed runs include the steps before the resume):
        ``step``, ``loss`` (training loss of that batch), ``grad_norm`` (total gradient norm
        before clipping), ``time`` (training seconds since the run began), and at evaluation
        steps ``metric`` and ``eval_loss`` on the test examples.
    final_metric: the task's metric after the last step (NaN if no evaluation ran).
    seconds_per_step: mean wall time of a training step (forward, backward, update) in this
        call, evaluation and checkpoints excluded.
    diverged: the loss, a gradient or (after the update) a parameter became non-finite;
        training stopped at that step, its update was not applied (or was undone), the model
        keeps its last finite parameters and no checkpoint of that step was written.
    fault: where it diverged, one line naming the step and the tensor (see
        :mod:`rnnlab.lab.guards`); None when it did not.
    """

    config: TrainConfig
    task: Task
    model: SequenceModel
    history: list[dict]
    final_metric: float
    metric_name: str
    higher_is_better: bool
    chance: float
    params: int
    seconds_per_step: float
    steps: int
    diverged: bool = False
    checkpoint: str | None = None
    fault: str | None = None

    @property
    def evals(self) -> list[dict]:
        """The history entries that carry an evaluation."""
        return [h for h in self.history if "metric" in h]

    def summary(self) -> dict:
        """JSON-able summary (what ``result.json`` holds)."""
        return {"config": self.config.to_dict(), "task": self.task.describe(),
                "metric": self.metric_name, "final_metric": self.final_metric,
                "higher_is_better": self.higher_is_better, "chance": self.chance,
                "params": self.params, "seconds_per_step": self.seconds_per_step,
                "steps": self.steps, "diverged": self.diverged, "fault": self.fault,
                "evals": self.evals, "checkpoint": self.checkpoint}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`. ``step``: steps done; ``checkpoint``: where they were
    saved (None without ``out_dir``)."""

    def __init__(self, step: int, checkpoint: str | None):
        super().__init__(f"interrupted after step {step}")
        self.step, self.checkpoint = step, checkpoint


# ---- building -------------------------------------------------------------------------------
def make_task_for(config: TrainConfig) -> Task:
    """The task of a configuration."""
    return make_task(config.task, seq_len=config.seq_len, train_size=config.train_size,
                     **config.task_options)


def make_model(config: TrainConfig, task: Task | None = None) -> SequenceModel:
    """The model of a configuration with its initial weights (``torch.manual_seed(seed)``,
    then ``recurrent_gain``); the caller's global RNG state is left as it was."""
    task = task or make_task_for(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = SequenceModel(config.cell, task, config.hidden, config.num_layers,
                              config.bidirectional, **config.layer_options)
    if config.recurrent_gain != 1.0:
        scaled = [p for n, p in model.named_parameters() if ".weight_hh" in n]
        if not scaled:
            raise ValueError(f"recurrent_gain: {config.cell} has no weight_hh to scale")
        with torch.no_grad():
            for p in scaled:
                p.mul_(config.recurrent_gain)
    return model.to(config.device)


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer the configuration names (``adam``, ``sgd``, ``rmsprop``) over the model's parameters."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=config.lr, momentum=config.momentum)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)


def checkpoint_dir(config: TrainConfig) -> Path | None:
    """``out_dir/checkpoints`` of a run, or None when it writes nothing."""
    return None if config.out_dir is None else Path(config.out_dir) / CHECKPOINT_DIR


def load_model(path, device: str = "cpu") -> tuple[SequenceModel, Task, TrainConfig, int]:
    """A trained model back from a run folder (its newest usable checkpoint) or from one
    checkpoint directory: ``(model, task, config, step)``. The checkpoint is untrusted: a
    configuration that describes no valid model, or tensors that do not fit the model it
    describes, raise :class:`~rnnlab.lab.checkpoint.CheckpointError`."""
    path = Path(path)
    if (path / ckpt.STATE).is_file():
        checkpoint = ckpt.load_checkpoint(path)
    else:
        checkpoint = ckpt.load_latest(path / CHECKPOINT_DIR if (path / CHECKPOINT_DIR).is_dir()
                                      else path)
    try:
        config = TrainConfig.from_dict({**checkpoint.config, "device": device})
        config.validate()
        task = make_task_for(config)
        model = make_model(config, task)
    except (KeyError, TypeError, ValueError) as error:
        raise ckpt.CheckpointError(f"{checkpoint.path / ckpt.STATE}: its config describes no "
                                   f"valid model ({error})") from None
    ckpt.restore(checkpoint, model)
    model.eval()
    return model, task, config, checkpoint.step


# ---- evaluation -----------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: SequenceModel, task: Task, size: int = 512,
             device: str | torch.device = "cpu") -> tuple[float, float]:
    """``(metric, loss)`` on fixed test examples (``size`` of them, or the whole test split of
    a small data set, see :meth:`Task.evaluation_batch`), without touching any RNG state the
    training uses. seq2seq models decode greedily (no teacher forcing)."""
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(EVAL_SEED)
            generator = torch.Generator().manual_seed(EVAL_SEED)
            x, y = task.evaluation_batch(size, generator)
            x, y = x.to(device), y.to(device)
            pred = model(x)
            return task.metric(pred, y), float(task.loss(pred, y))
    finally:
        model.train(was_training)


# ---- training -------------------------------------------------------------------------------
class _StopFlag:
    """First Ctrl-C asks to stop at the end of the current step; a second one stops now."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("Ctrl-C: stopping after this step (press again to stop at once)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(config: TrainConfig, resume: bool = False, progress: bool = True,
          overwrite: bool = False,
          callback: Callable[[int, dict], None] | None = None,
          also_evaluate: Callable[[SequenceModel], dict] | None = None) -> TrainResult:
    """Train the configured model; see :class:`TrainConfig` and :class:`TrainResult`.

    Args:
        resume: continue from the newest usable checkpoint in ``out_dir/checkpoints``
            (its configuration must match on :attr:`TrainConfig.RESUME_KEYS`). Raises
            :class:`~rnnlab.lab.checkpoint.CheckpointError` when there is none.
        progress: show a tqdm progress bar (loss, metric, steps/s) on stderr.
        overwrite: without ``resume``, delete checkpoints already in ``out_dir`` instead of
            refusing to start.
        callback: called as ``callback(step, record)`` after each step (record: the history
            entry). It may raise KeyboardInterrupt to stop the run like Ctrl-C.
        also_evaluate: called as ``also_evaluate(model)`` at every evaluation, after the
            test split is scored; the dict it returns joins that history entry (e.g. a
            validation metric, see :mod:`rnnlab.lab.selection`).

    Raises:
        TrainingInterrupted (a KeyboardInterrupt) on Ctrl-C, after saving a checkpoint of the
        last finished step when ``out_dir`` is set.
    """
    config.validate()
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        with distributed.session(config):  # data-parallel under torchrun, else a no-op
            return _train(config, resume, progress, overwrite, callback, also_evaluate)
    finally:
        torch.set_num_threads(threads)


def _train(config, resume, progress, overwrite, callback, also_evaluate) -> TrainResult:
    task = make_task_for(config)
    model = make_model(config, task)
    optimizer = make_optimizer(config, model)
    data = torch.Generator().manual_seed(config.seed)
    root = checkpoint_dir(config)
    history: list[dict] = []
    start, last_saved = 0, None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if resume:
            if root is None:
                raise ValueError("resume: needs out_dir, the folder of the run to resume")
            checkpoint = ckpt.load_latest(root)
            ckpt.check_config(checkpoint, config.to_dict(), TrainConfig.RESUME_KEYS)
            ckpt.restore(checkpoint, model, optimizer)
            checkpoint.restore_rng({"data": data})
            history, start = list(checkpoint.history), checkpoint.step
            last_saved = str(checkpoint.path)
            logger.info("resuming %s from step %d", checkpoint.path, start)
        elif root is not None and ckpt.list_checkpoints(root):
            if not overwrite:
                raise ValueError(f"out_dir: {config.out_dir} already holds checkpoints; resume "
                                 "the run, pass overwrite, or choose another folder")
            distributed.current().barrier()  # every rank has looked before rank 0 deletes
            if distributed.current().is_writer:
                ckpt.remove_checkpoints(root)
        run = _Run(config, task, model, optimizer, data, root, history, start, last_saved)
        run.also_evaluate = also_evaluate
        return run.loop(progress, callback)


class _Run:
    """The state of one call of :func:`train` (kept together for checkpoints)."""

    def __init__(self, config, task, model, optimizer, data, root, history, start, last_saved):
        self.config, self.task, self.model, self.optimizer = config, task, model, optimizer
        self.data, self.root, self.history = data, root, history
        self.step, self.last_saved = start, last_saved
        self.saved_step = start if last_saved else None
        self.time_offset = history[-1]["time"] if history else 0.0
        self.step_seconds: list[float] = []
        self.guard = NumericGuard(model)
        self.advice = clipping_advice(config.clip, config.clip_value, config.lr)
        self.fault: str | None = None
        self.parallel = distributed.current()
        self.forward = self.parallel.wrap(model)  # DDP around the model under torchrun
        self.also_evaluate: Callable[[SequenceModel], dict] | None = None

    def evaluate(self, record: dict) -> None:
        """Score the test examples (and whatever ``also_evaluate`` adds) into ``record``."""
        record["metric"], record["eval_loss"] = evaluate(self.model, self.task,
                                                         self.config.eval_size,
                                                         self.config.device)
        if self.also_evaluate is not None:
            record.update(self.also_evaluate(self.model))

    def save(self) -> None:
        # a diverged step was not applied (the loop said so): resuming from it would differ
        if self.root is None or self.saved_step == self.step or self.diverged:
            return
        path = self.root / ckpt.checkpoint_name(self.step)
        if self.parallel.is_writer:  # one writer; the other ranks wait for it
            path = ckpt.save_checkpoint(
                self.root, self.step, self.model, self.optimizer, config=self.config.to_dict(),
                history=self.history, rng=ckpt.capture_rng({"data": self.data}),
                extra={"task": self.task.describe()})
        self.parallel.barrier()
        self.last_saved, self.saved_step = str(path), self.step

    @property
    def diverged(self) -> bool:
        return self.fault is not None

    def train_step(self) -> dict:
        cfg, model, task, guard = self.config, self.model, self.task, self.guard
        step = self.step + 1
        began = time.perf_counter()
        model.train()
        x, y = task.batch("train", cfg.batch_size, self.data)
        guard.check_batch(step, x, y)  # the whole batch, the same on every rank
        x, y, weight = self.parallel.shard(task, x, y)  # this rank's rows (all of them alone)
        x, y = x.to(cfg.device), y.to(cfg.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss = task.loss(self.forward(x, y), y) * weight
        loss.backward()
        loss_value = self.parallel.mean(loss)
        params = [p for p in model.parameters() if p.grad is not None]
        norm_value = total_norm([p.grad for p in params]).item()  # before clipping
        self.fault = guard.check_gradients(step, loss_value, norm_value)
        if self.fault is None:
            if cfg.clip == "norm":
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_value)
            elif cfg.clip == "value":
                torch.nn.utils.clip_grad_value_(params, cfg.clip_value)
            self.fault = guard.update(step, self.optimizer)
        elapsed = time.perf_counter() - began
        self.step_seconds.append(elapsed)
        self.time_offset += elapsed
        return {"step": self.step + 1, "loss": loss_value, "grad_norm": norm_value,
                "time": self.time_offset}

    def loop(self, progress: bool, callback) -> TrainResult:
        from tqdm.auto import tqdm

        cfg = self.config
        bar = tqdm(total=cfg.steps, initial=min(self.step, cfg.steps),
                   disable=not progress or not self.parallel.is_writer,
                   unit="step", desc=f"{cfg.task}/{cfg.cell}", dynamic_ncols=True)
        at_boundary = True
        try:
            with _StopFlag() as stop:
                while self.step < cfg.steps and not self.diverged:
                    at_boundary = False
                    record = self.train_step()
                    self.history.append(record)
                    self.step += 1
                    at_boundary = True
                    if self.diverged:
                        kept = ", the last checkpoint is kept" if self.root else ""
                        logger.warning("%s: training stopped%s; %s", self.fault, kept,
                                       self.advice)
                    else:
                        self.guard.watch_loss(self.step, record["loss"],
                                              self.history[0]["loss"], self.advice)
                    if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                        self.evaluate(record)
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save()
                    bar.update(1)
                    postfix = {"loss": f"{record['loss']:.4g}"}
                    last_eval = next((h for h in reversed(self.history) if "metric" in h), None)
                    if last_eval is not None:
                        postfix[self.task.metric_name] = f"{last_eval['metric']:.4g}"
                    bar.set_postfix(postfix, refresh=False)
                    if callback is not None:
                        callback(self.step, record)
                    if stop.requested:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            if at_boundary:
                self.save()
            else:  # stopped in the middle of a step: its state is half-updated
                logger.warning("interrupted inside step %d; the last checkpoint is the one "
                               "to resume from", self.step + 1)
            raise TrainingInterrupted(self.step, self.last_saved) from None
        bar.close()
        return self.finish()

    def finish(self) -> TrainResult:
        cfg = self.config
        evals = [h for h in self.history if "metric" in h]
        if self.history and "metric" not in self.history[-1]:
            self.evaluate(self.history[-1])
            evals.append(self.history[-1])
        final = evals[-1]["metric"] if evals else math.nan
        if not self.history:  # steps already done (a resume past the end)
            final, _ = evaluate(self.model, self.task, cfg.eval_size, cfg.device)
        self.save()
        result = TrainResult(
            config=cfg, task=self.task, model=self.model, history=self.history,
            final_metric=final, metric_name=self.task.metric_name,
            higher_is_better=self.task.higher_is_better, chance=self.task.chance,
            params=self.model.parameter_count(),
            seconds_per_step=(sum(self.step_seconds) / len(self.step_seconds)
                              if self.step_seconds else math.nan),
            steps=self.step, diverged=self.diverged, checkpoint=self.last_saved,
            fault=self.fault)
        if cfg.out_dir is not None and self.parallel.is_writer:
            ckpt.write_json_atomic(Path(cfg.out_dir) / RESULT_FILE, result.summary())
        return result
