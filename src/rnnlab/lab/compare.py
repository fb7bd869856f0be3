"""``rnnlab compare``: every claim of the source articles as a measured experiment.

:func:`compare` trains RNN, LSTM, GRU and SRU (and bidirectional variants on the future-tag
task) with :func:`rnnlab.lab.train.train`, measures gradient flow and gates with
:mod:`rnnlab.lab.diagnostics`, times SRU against LSTM, and writes a report folder
(``index.html``, ``summary.md``, ``results.json``, PNG figures). Each claim gets a verdict
computed from the numbers by :mod:`rnnlab.lab.report.verdicts`:

(a) ``gated``: a tanh RNN fails on the adding problem (and copy memory) as T grows, gated
    cells do not (Hochreiter & Schmidhuber 1997; Bengio et al. 1994);
    ``vanishing``: ‖∂L/∂h_k‖ shrinks by orders of magnitude over T for the tanh RNN, not for
    the LSTM (Hochreiter 1991; Pascanu et al. 2013);
(b) ``exploding``: without clipping gradient norms spike and training diverges; clipping by
    norm keeps it stable (Pascanu et al. 2013);
(c) ``gru``: a GRU matches an LSTM with fewer parameters, small training set included
    (Cho et al. 2014; Chung et al. 2014);
(d) ``bidirectional``: a bidirectional layer wins where the future matters (Schuster &
    Paliwal 1997);
(e) ``speed``: SRU trains faster than an LSTM of the same size (Lei et al. 2018).

Beside the published record (:mod:`rnnlab.lab.benchmarks`, numbers and citations in
:mod:`rnnlab.lab.published`): polyphonic music (``music``), sequential MNIST (``mnist``),
adding at T = 600 and copy at T = 1000 (``long``), the IRNN (``irnn``), clipping on
Nottingham (``clipping``) and the LSTM's initialisation (``init``), each with a
published-vs-measured table (:mod:`rnnlab.lab.report.published_table`) and a verdict.

Runs are independent, so they go to ``jobs`` worker processes (one CPU thread each) on
``device``; each finished run logs the share of the work done and an ETA for the whole
comparison. The timings of (e) run alone afterwards, in this process.

More rows, no more claims: ``cells`` may add ``"mingru"`` and ``"minlstm"`` (Feng et al.
2024; trained on the adding, copy and future tasks beside the others, quoted in the verdict
texts but never judged), and ``regularisers`` (``{"recurrent_dropout": 0.1, "zoneout": 0.1,
"weight_dropout": 0.2}``) adds one regularised run per cell that accepts them at the largest
T of the adding and copy tasks (claim ``"regularisers"``, which no verdict reads).
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.lab.benchmarks import BENCHMARKS, plan_benchmarks
from rnnlab.lab.presets import PRESETS, Preset, get_preset

CLASSIC_CELLS = ("rnn", "lstm", "gru", "sru")  # the default: what the claims are about
ALL_CELLS = (*CLASSIC_CELLS, "mingru", "minlstm")
# the layer regularisers and the cells whose layers accept them (README's option table)
REGULARISER_CELLS = {"recurrent_dropout": ("rnn", "lstm", "gru"),
                     "zoneout": ("rnn", "lstm", "gru", "sru"),
                     "weight_dropout": ("rnn", "lstm", "gru")}
CLAIM_TASKS = {"gated": ("adding", "copy"), "vanishing": ("adding",), "exploding": ("adding",),
               "gru": ("digits",), "bidirectional": ("future",), "speed": ("adding",)}
KNOWN_TASKS = ("adding", "copy", "digits", "future", *BENCHMARKS)
DEVICES = ("auto", "cpu", "cuda")
GATE_BLOCKS = {"rnn": 1, "gru": 3, "sru": 3, "lstm": 4, "mingru": 2, "minlstm": 3}


@dataclass
class CompareResult:
    """What :func:`compare` returns: every run's record, the timings, the verdicts, and the
    paths of the files written."""

    preset: str
    runs: list[dict]
    speed: dict
    verdicts: list
    out_dir: Path | None
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = math.nan
    device: str = "cpu"  # where the runs trained, in words
    published: dict = field(default_factory=dict)  # {claim: [published-vs-measured table]}

    def verdict(self, claim: str):
        return next(v for v in self.verdicts if v.claim == claim)

    def to_dict(self) -> dict:
        return {"preset": self.preset, "runs": self.runs, "speed": self.speed,
                "verdicts": [v.to_dict() for v in self.verdicts], "files": self.files,
                "seconds": self.seconds, "device": self.device, "published": self.published}


# ---- the plan ---------------------------------------------------------------------------------
def _config(p: Preset, seed: int, **kw) -> dict:
    base = {"hidden": p.hidden, "batch_size": p.batch_size, "lr": p.lr, "clip": "norm",
                "clip_value": p.clip_value, "seed": seed, "eval_every": p.eval_every,
                "eval_size": p.eval_size, "threads": 1}
    base.update(kw)
    return base


def estimate_cost(config: dict) -> float:
    """A job's relative cost, for ordering and the ETA: multiply-adds of the recurrent
    matrices over the run, steps · T · batch · layers · gates · H · (H + 32), with T the
    task's (longest) sequence length, counted once more for a second direction."""
    from rnnlab.lab.config import TrainConfig
    from rnnlab.lab.train import make_task_for

    task = make_task_for(TrainConfig(**{k: v for k, v in config.items() if k != "device"}))
    T = max(task.seq_len, task.output_len)
    if task.name == "music":
        rolls = task.rolls["train"]
        T = min(T, sum(len(r) for r in rolls) / len(rolls))
    H = config.get("hidden", 32)
    directions = 2 if config.get("bidirectional") else 1
    return float(config["steps"] * T * config["batch_size"] * config.get("num_layers", 1)
                 * directions * GATE_BLOCKS.get(config["cell"], 4) * H * (H + 32))


def check_regularisers(regularisers) -> dict[str, float]:
    """``{name: p}`` with known names and 0 <= p < 1 (ValueError otherwise)."""
    out = {}
    for name, value in dict(regularisers or {}).items():
        if name not in REGULARISER_CELLS:
            raise ValueError(f"regularisers: expected some of {', '.join(REGULARISER_CELLS)}, "
                             f"got {name!r}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or not 0 <= value < 1:
            raise ValueError(f"regularisers: {name} expected a probability in [0, 1), "
                             f"got {value!r}")
        if value:
            out[name] = float(value)
    return out


def regulariser_options(cell: str, regularisers: dict[str, float]) -> dict[str, float]:
    """The regularisers ``cell``'s layer accepts (SRU: zoneout only; min cells: none)."""
    return {k: v for k, v in regularisers.items() if cell in REGULARISER_CELLS[k]}


def plan(p: Preset, tasks=None, cells=CLASSIC_CELLS, seed: int = 0,
         regularisers: dict | None = None) -> list[dict]:
    """The training runs of a preset, as job specs (JSON-able dicts), each with its
    :func:`estimate_cost`.

    ``regularisers`` (``{name: p}``) adds, at the largest T of the adding and copy tasks, one
    run per cell whose layer accepts any of them, with those as its ``layer_options``. The
    published benchmarks (:mod:`rnnlab.lab.benchmarks`) train their own cells, whatever
    ``cells`` says."""
    tasks = tuple(p.tasks if tasks is None else tasks)
    regularisers = check_regularisers(regularisers)
    jobs = []

    def add(job_id, claim, group, label, config, **flags):
        jobs.append({"id": job_id, "claim": claim, "group": group, "label": label,
                     "config": config, **flags})

    if "adding" in tasks:
        longest = max(p.adding_lens)
        for T in p.adding_lens:
            for cell in cells:
                add(f"adding-T{T}-{cell}", "gated", f"adding T={T}", cell,
                    _config(p, seed, task="adding", cell=cell, seq_len=T, steps=p.adding_steps),
                    measure_after=T == longest, sample_gates=T == longest,
                    measure_init=T == longest)
        if "rnn" in cells:
            for clip in ("none", "norm"):
                add(f"exploding-{clip}", "exploding", "exploding", f"rnn, clip {clip}",
                    _config(p, seed, task="adding", cell="rnn", seq_len=p.exploding_len,
                            steps=p.exploding_steps, optimizer="sgd", lr=p.exploding_lr,
                            clip=clip, recurrent_gain=p.exploding_gain,
                            eval_every=max(p.exploding_steps // 5, 1)),
                    full_history=True)
    if "copy" in tasks:
        for T in p.copy_lens:
            for cell in cells:
                add(f"copy-T{T}-{cell}", "gated", f"copy T={T}", cell,
                    _config(p, seed, task="copy", cell=cell, seq_len=T, steps=p.copy_steps))
    for task, lens, steps in (("adding", p.adding_lens, p.adding_steps),
                              ("copy", p.copy_lens, p.copy_steps)):
        if not regularisers or task not in tasks or not lens:
            continue
        T = max(lens)
        for cell in cells:
            options = regulariser_options(cell, regularisers)
            if not options:
                continue
            add(f"{task}-T{T}-{cell}-regularised", "regularisers", f"{task} T={T} regularised",
                f"{cell}, " + ", ".join(f"{k}={v:g}" for k, v in options.items()),
                _config(p, seed, task=task, cell=cell, seq_len=T, steps=steps,
                        layer_options=options))
    if "digits" in tasks:
        for setting, size in (("full", None), ("small", p.digits_small)):
            for cell in [c for c in ("lstm", "gru") if c in cells]:
                add(f"digits-{setting}-{cell}", "gru", f"digits {setting}", cell,
                    _config(p, seed, task="digits", cell=cell, seq_len=p.digits_len,
                            steps=p.digits_steps, train_size=size), setting=setting)
    if "future" in tasks:
        for cell in cells:
            for bi in (False, True):
                add(f"future-{cell}-{'bi' if bi else 'uni'}", "bidirectional", "future",
                    f"{cell} {'bi' if bi else 'uni'}",
                    _config(p, seed, task="future", cell=cell, seq_len=p.future_len,
                            steps=p.future_steps, bidirectional=bi), bidirectional=bi)
    jobs += plan_benchmarks(p, tasks, seed)
    for job in jobs:
        job["cost"] = estimate_cost(job["config"])
    return jobs


# ---- one run (in a worker process) --------------------------------------------------------------
def _history(history: list[dict], full: bool, limit: int = 400) -> list[list[float]]:
    rows = history if full or len(history) <= limit else [
        history[round(i * (len(history) - 1) / (limit - 1))] for i in range(limit)]
    return [[h["step"], h["loss"], h["grad_norm"]] for h in rows]


def _gate_sample(model, task) -> dict:
    """The memory gate (RNN: h) of one test sequence, for a heatmap: values T × H."""
    import torch

    from rnnlab.lab.diagnostics.gates import MEMORY_GATE
    from rnnlab.lab.diagnostics.measure import layer_inputs
    from rnnlab.lab.diagnostics.state import cell_kind

    generator = torch.Generator().manual_seed(7)
    x, _ = task.batch("test", 1, generator)
    with torch.no_grad():
        trace = model.rnn.trace(layer_inputs(model, x))[0]
    kind = cell_kind(model.rnn)
    name = MEMORY_GATE[kind] or "h"
    values = trace[name][:, 0].tolist()
    marks = []
    if x.dim() == 3 and x.shape[-1] == 2:  # the adding problem's marker channel
        marks = [int(t) for t in torch.nonzero(x[:, 0, 1]).flatten()]
    return {"gate": name, "values": values, "marks": marks,
            "range": [-1.0, 1.0] if name == "h" else [0.0, 1.0]}


def run_job(job: dict) -> dict:
    """Train one run and measure it; returns a JSON-able record."""
    import torch

    from rnnlab.lab.diagnostics.measure import measure_model
    from rnnlab.lab.selection import best_by_validation, validation_evaluator
    from rnnlab.lab.train import TrainConfig, make_model, make_task_for, train

    torch.set_num_threads(job["config"].get("threads") or torch.get_num_threads())
    began, cpu = time.perf_counter(), time.process_time()
    config = TrainConfig(**job["config"])
    record = {k: v for k, v in job.items() if k != "config"}
    record["config"] = config.to_dict()
    task = make_task_for(config)
    if job.get("measure_init"):
        record["init_measure"] = measure_model(make_model(config, task).cpu(), task,
                                               batch_size=job.get("measure_batch", 16))
    also = validation_evaluator(task, config.task_options) if job.get("select_on_valid") \
        else None
    result = train(config, progress=False, also_evaluate=also)
    record["engine"] = _engine(result.model, result.task, config.device)
    record.update(
        task=config.task, cell=config.cell, seq_len=result.task.seq_len,
        bidirectional=config.bidirectional, metric=result.metric_name,
        final_metric=result.final_metric, chance=result.chance,
        higher_is_better=result.higher_is_better, params=result.params,
        recurrent_params=result.model.recurrent_parameter_count(),
        seconds_per_step=result.seconds_per_step, steps=result.steps,
        diverged=result.diverged,
        evals=[[h["step"], h["metric"]] for h in result.evals],
        history=_history(result.history, job.get("full_history", False)))
    if also is not None:
        best = best_by_validation(result.history, result.higher_is_better)
        record["selected"] = best
        if best is not None and not result.diverged:
            record["last_metric"] = result.final_metric
            record["final_metric"] = best["test"]
    result.model.cpu()  # the measurements below run on the CPU, whatever trained
    if job.get("measure_after"):
        record["measure"] = measure_model(result.model, result.task,
                                          batch_size=job.get("measure_batch", 16))
    if job.get("sample_gates"):
        record["gate_sample"] = _gate_sample(result.model, result.task)
    record["wall_seconds"] = time.perf_counter() - began
    record["cpu_seconds"] = time.process_time() - cpu
    return record


def _engine(model, task, device: str) -> str:
    """The engine ``backend="auto"`` (or the configured backend) runs for this model."""
    import torch

    from rnnlab.backends import select_backend
    from rnnlab.layers.sequence import Batch

    x = torch.zeros(min(task.seq_len, 8), 2, model.rnn.input_size, device=device)
    try:
        return select_backend(model.rnn, Batch(x)).name
    except (ValueError, RuntimeError) as error:
        return f"unknown ({error})"


# ---- timing (in this process, alone) -----------------------------------------------------------
def time_training_steps(p: Preset, cells=("lstm", "sru"), seed: int = 0,
                        threads: int | None = None, device: str = "cpu") -> dict:
    """Median seconds per training step (forward, backward, Adam) of each cell on each
    backend of ``p.speed_backends``, at hidden ``p.speed_hidden``, T ``p.speed_len``, batch
    ``p.speed_batch``. Returns ``{"times": {backend: {cell: s}}, "engines": {backend: {cell:
    engine name}}, "params": {cell: n}, "settings": {...}}``."""
    import torch

    from rnnlab.backends import select_backend
    from rnnlab.lab.train import TrainConfig, train
    from rnnlab.layers.sequence import Batch

    times: dict = {}
    engines: dict = {}
    params: dict = {}
    for backend in p.speed_backends:
        for cell in cells:
            options = {} if backend == "auto" else {"backend": backend}
            steps = p.speed_steps + p.speed_warmup
            config = TrainConfig(task="adding", cell=cell, hidden=p.speed_hidden,
                                 seq_len=p.speed_len, steps=steps, batch_size=p.speed_batch,
                                 lr=1e-3, clip="norm", seed=seed, eval_every=steps,
                                 eval_size=p.speed_batch, threads=threads,
                                 layer_options=options, device=device)
            try:
                result = train(config, progress=False)
            except ValueError as error:  # this backend cannot run this cell
                engines.setdefault(backend, {})[cell] = f"unavailable: {error}"
                continue
            stamps = [0.0] + [h["time"] for h in result.history]
            per_step = [b - a for a, b in itertools.pairwise(stamps)][p.speed_warmup:]
            times.setdefault(backend, {})[cell] = statistics.median(per_step)
            x = torch.zeros(p.speed_len, p.speed_batch, result.model.rnn.input_size,
                            device=device)
            engines.setdefault(backend, {})[cell] = select_backend(result.model.rnn,
                                                                   Batch(x)).name
            params[cell] = result.model.recurrent_parameter_count()
    return {"times": times, "engines": engines, "params": params,
            "settings": {"hidden": p.speed_hidden, "seq_len": p.speed_len,
                         "batch_size": p.speed_batch, "steps": p.speed_steps,
                         "threads": threads or torch.get_num_threads(), "device": device}}


def resolve_device(device: str) -> tuple[str, str]:
    """``(torch device, a line saying where the runs train)`` for ``cpu``, ``cuda[:N]`` or
    ``auto``; ValueError naming ``device`` for anything else or a CUDA that is not there."""
    import platform

    import torch

    if not isinstance(device, str) or not (device in DEVICES or device.startswith("cuda:")):
        raise ValueError(f"device: expected one of {', '.join(DEVICES)} or cuda:N, "
                         f"got {device!r}")
    cpu = f"cpu ({platform.processor() or platform.machine()}, {default_jobs()} cores usable)"
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda", (f"device: cuda ({torch.cuda.get_device_name(0)}), chosen by "
                            "--device auto because torch sees a GPU")
        return "cpu", f"device: {cpu}, chosen by --device auto because torch sees no GPU"
    if device == "cpu":
        return "cpu", f"device: {cpu}"
    if not torch.cuda.is_available():
        raise ValueError(f"device: {device} was asked for but torch sees no CUDA device "
                         f"(torch {torch.__version__})")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ValueError(f"device: {device} does not exist ({torch.cuda.device_count()} "
                         "CUDA devices)")
    return device, f"device: {device} ({torch.cuda.get_device_name(index)})"


# ---- the whole comparison ----------------------------------------------------------------------
def default_jobs() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def eta(elapsed: float, done_cost: float, total_cost: float) -> float:
    """Seconds left for the whole comparison, assuming the remaining jobs run at the rate of
    cost per wall second seen so far (NaN before any job finished)."""
    if done_cost <= 0:
        return math.nan
    return elapsed * max(total_cost - done_cost, 0.0) / done_cost


def _run_all(jobs: list[dict], workers: int, log) -> list[dict]:
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i]["cost"])
    records: list = [None] * len(jobs)
    done, done_cost = 0, 0.0
    total_cost = sum(job["cost"] for job in jobs)
    began = time.perf_counter()

    def report(i, record):
        nonlocal done, done_cost
        done += 1
        done_cost += jobs[i]["cost"]
        if log:
            metric = record["final_metric"]
            left = eta(time.perf_counter() - began, done_cost, total_cost)
            log(f"[{done}/{len(jobs)}] {record['group']}, {record['label']}: "
                f"{record['metric']} {metric:.4g} ({record['wall_seconds']:.1f} s; "
                f"{done_cost / total_cost:.0%} of the work done, ETA "
                f"{_duration(left) if done < len(jobs) else 'done'})")

    if workers <= 1:
        for i in order:
            records[i] = run_job(jobs[i])
            report(i, records[i])
        return records
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # no fork of a threaded torch
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_job, jobs[i]): i for i in order}
        for future in as_completed(futures):
            i = futures[future]
            records[i] = future.result()
            report(i, records[i])
    return records


def compare(preset: str | Preset = "quick", tasks=None, out_dir: str | Path | None = "rnnlab-compare",
            cells=CLASSIC_CELLS, jobs: int | None = None, seed: int = 0, progress: bool = True,
            print_summary: bool = False, regularisers: dict | None = None,
            device: str = "cpu", scale: float = 1.0) -> CompareResult:
    """Run the comparison and write the report.

    Args:
        preset: ``"quick"`` (minutes), ``"full"`` (longer T and training), ``"paper"`` (the
            published protocols, for a GPU), ``"tiny"`` (a smoke test) or a
            :class:`~rnnlab.lab.presets.Preset`.
        tasks: which of ``adding``, ``copy``, ``digits``, ``future`` and the published
            benchmarks ``music``, ``mnist``, ``long``, ``irnn``, ``clipping``, ``init`` to run
            (default: the preset's). Claims whose task is left out are reported as "not
            run".
        out_dir: the report folder (None: write nothing).
        cells: the cells to train, of ``rnn``, ``lstm``, ``gru``, ``sru``, ``mingru``,
            ``minlstm`` (default the first four; the min cells are extra rows that no
            verdict judges).
        jobs: worker processes (default: the CPU cores, at most 4); 1 runs in this process.
            Workers start with the ``spawn`` method, which re-imports the calling script: in
            a script, call :func:`compare` under ``if __name__ == "__main__":`` (or pass
            ``jobs=1``).
        seed: seeds every run.
        progress: log each finished run on stderr.
        print_summary: print the summary table and verdicts on stdout.
        regularisers: ``{"recurrent_dropout": p, "zoneout": p, "weight_dropout": p}`` (any
            of them): extra regularised runs at the largest adding and copy T, for each cell
            whose layer accepts one (RNN, LSTM, GRU all three; SRU zoneout; min cells none).
            Extra rows in the table; the verdicts read only the plain runs.
        device: ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"auto"`` (CUDA when torch sees a
            GPU, else the CPU; a line says which). Every run trains there, each layer on
            the fastest engine for it (``backend="auto"``).
        scale: multiply every training length of the preset by this (0 < scale <= 1), a
            stated reduction (see :meth:`~rnnlab.lab.presets.Preset.scaled`).
    """
    from rnnlab.lab.report.benchmark_verdicts import published_tables
    from rnnlab.lab.report.summary import build_verdicts, terminal_summary

    p = get_preset(preset) if isinstance(preset, str) else preset
    if scale != 1:
        p = p.scaled(scale)
    device, device_line = resolve_device(device)
    if tasks is not None:
        tasks = tuple(dict.fromkeys(tasks))
        unknown = [t for t in tasks if t not in KNOWN_TASKS]
        if unknown:
            raise ValueError(f"tasks: expected some of {', '.join(KNOWN_TASKS)}, got {unknown}")
    cells = tuple(dict.fromkeys(cells))
    bad = [c for c in cells if c not in ALL_CELLS]
    if bad or not cells:
        raise ValueError(f"cells: expected some of {', '.join(ALL_CELLS)}, got {list(cells)}")
    regularisers = check_regularisers(regularisers)
    if regularisers:
        chosen = p.tasks if tasks is None else tasks
        if not any(t in chosen and lens for t, lens in (("adding", p.adding_lens),
                                                        ("copy", p.copy_lens))):
            raise ValueError("regularisers: the regularised runs need the adding or copy task")
        if not any(regulariser_options(c, regularisers) for c in cells):
            raise ValueError(f"regularisers: none of the cells {', '.join(cells)} accepts "
                             f"{', '.join(regularisers)} (RNN, LSTM, GRU do; SRU zoneout)")
    workers = default_jobs() if jobs is None else jobs
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"jobs: expected a positive integer, got {jobs!r}")
    began = time.perf_counter()
    log = (lambda text: print(f"rnnlab compare: {text}", file=sys.stderr, flush=True)) \
        if progress else None
    specs = plan(p, tasks, cells, seed, regularisers)
    for spec in specs:
        spec["measure_batch"] = p.measure_batch
        spec["config"]["device"] = device
    if log:
        log(device_line)
        log(f"preset {p.name}: {len(specs)} training runs on {workers} worker"
            f"{'s' if workers > 1 else ''}")
    records = _run_all(specs, workers, log)
    speed: dict = {}
    chosen = p.tasks if tasks is None else tasks
    if "adding" in chosen and {"lstm", "sru"} <= set(cells):
        if log:
            log("timing SRU and LSTM training steps")
        speed = time_training_steps(p, seed=seed, threads=1 if workers > 1 else None,
                                    device=device)
    tables = published_tables(records)
    verdicts = build_verdicts(records, speed, tables)
    result = CompareResult(preset=p.name, runs=records, speed=speed, verdicts=verdicts,
                           out_dir=None if out_dir is None else Path(out_dir),
                           device=device_line, published=tables)
    result.seconds = time.perf_counter() - began
    if out_dir is not None:
        from rnnlab.lab.report.html import write_report

        result.files = write_report(result, p, Path(out_dir))
    if print_summary:
        print(terminal_summary(result))
    return result


__all__ = ["ALL_CELLS", "CLASSIC_CELLS", "DEVICES", "PRESETS", "REGULARISER_CELLS",
           "CompareResult", "compare", "estimate_cost", "plan", "resolve_device", "run_job",
           "time_training_steps"]
