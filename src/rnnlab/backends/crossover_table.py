"""The CUDA crossover table: the time per step of every engine, measured on a GPU, per
configuration — the file format, read (validated) and written.

The table (``crossover_cuda.json`` beside this module, committed from a run of
``benchmarks/gpu_check.sh`` on an H100/H200) is one JSON object::

    {"format": 1,
     "about": "free text",                               (optional)
     "source": {"gpu": "NVIDIA H200", "torch": "2.11.0+cu130", "cuda": "13.0",
                "cudnn": "91900", "triton": "3.6.0", "float32": "TF32",
                "date": "2026-12-05", "commands": ["python benchmarks/gpu_layers.py …", …]},
     "rows": [{"family": "LSTM", "config": "plain", "dtype": "bfloat16", "mode": "train",
               "B": 8, "H": 256, "T": 1024, "us_per_step": {"native": 35.8, "triton": 17.9}},
              …]}

``source`` says where and how the rows were measured (``float32``: whether the float32 rows ran
their recurrent products in TF32 or IEEE float32); it is null only in a table without rows
(nothing measured yet). A row is one measured configuration: the layer's ``family``, its
``config`` class (:data:`CONFIGS`), the input's ``dtype``, the ``mode`` (``train``: forward and
backward; ``infer``: forward without a graph), the batch ``B``, hidden size ``H`` (= input size)
and length ``T``, and the median µs per time step of each engine timed there (one layer, one
direction). At most one row per (family, config, dtype, mode, B, H, T).
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path

FORMAT = 1
FAMILIES = ("LSTM", "GRU", "RNN", "SRU")
# a layer's configuration class (rnnlab.backends.crossover.config_class): its family's plain
# layer, or the option set cuDNN cannot run that it has
CONFIGS = ("plain", "peephole_clip_coupled", "reset_before", "layer_norm", "activations",
           "regularisers")
DTYPES = ("float32", "float16", "bfloat16")
MODES = ("train", "infer")
ENGINES = ("reference", "native", "triton")  # the engines that run on CUDA
SOURCE_FIELDS = ("gpu", "torch", "cuda", "cudnn", "triton", "float32", "date", "commands")

ABOUT = ("backend='auto' on CUDA: the median µs per time step of each engine per configuration "
         "(rnnlab.backends.crossover_table). Written by benchmarks/gpu_check.sh OUTDIR "
         "(OUTDIR/crossover_cuda.json); commit it as src/rnnlab/backends/crossover_cuda.json.")


@dataclass(frozen=True)
class Row:
    """One measured configuration: its key and the µs per step of each engine timed."""

    family: str
    config: str
    dtype: str
    mode: str
    B: int
    H: int
    T: int
    us_per_step: dict[str, float]

    @property
    def key(self) -> tuple:
        """(family, config, dtype, mode, B, H, T): one row per key in a table."""
        return (self.family, self.config, self.dtype, self.mode, self.B, self.H, self.T)

    def to_json(self) -> dict:
        """The row as the file holds it (µs rounded to ns)."""
        return {"family": self.family, "config": self.config, "dtype": self.dtype,
                "mode": self.mode, "B": self.B, "H": self.H, "T": self.T,
                "us_per_step": {e: round(us, 3) for e, us in sorted(self.us_per_step.items())}}


@dataclass(frozen=True)
class Table:
    """A crossover table: where it was measured (``source``, None when empty) and its rows."""

    source: dict | None
    rows: tuple[Row, ...]


class _Checker:
    """Validates one file's JSON, each error naming the file and the field."""

    def __init__(self, path):
        self.path = path

    def fail(self, field: str, expected: str, value):
        raise ValueError(f"{self.path}: {field}: expected {expected}, got {value!r}")

    def choice(self, obj: dict, name: str, field: str, allowed):
        value = obj.get(name)
        if value not in allowed:
            self.fail(field, "one of " + ", ".join(map(str, allowed)), value)
        return value

    def count(self, obj: dict, name: str, field: str) -> int:
        value = obj.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.fail(field, "a positive integer", value)
        return value

    def keys(self, obj, field: str, required: tuple, optional: tuple = ()):
        if not isinstance(obj, dict):
            self.fail(field, "a JSON object", obj)
        if missing := [k for k in required if k not in obj]:
            self.fail(field, f"the field {missing[0]!r}", sorted(obj))
        if unknown := sorted(set(obj) - set(required) - set(optional)):
            self.fail(f"{field}.{unknown[0]}", "only the fields "
                      + ", ".join((*required, *optional)), obj[unknown[0]])

    def source(self, source) -> dict:
        self.keys(source, "source", SOURCE_FIELDS)
        for name in SOURCE_FIELDS[:-1]:
            if not isinstance(source[name], str) or not source[name]:
                self.fail(f"source.{name}", "a non-empty string", source[name])
        self.choice(source, "float32", "source.float32", ("TF32", "IEEE"))
        commands = source["commands"]
        if not isinstance(commands, list) or not commands or \
                not all(isinstance(c, str) and c for c in commands):
            self.fail("source.commands", "a non-empty list of command lines", commands)
        return source

    def row(self, row, field: str) -> Row:
        self.keys(row, field, ("family", "config", "dtype", "mode", "B", "H", "T",
                               "us_per_step"))
        times = row["us_per_step"]
        if not isinstance(times, dict) or not times:
            self.fail(f"{field}.us_per_step", "a non-empty object engine → µs", times)
        for engine, us in times.items():
            if engine not in ENGINES:
                self.fail(f"{field}.us_per_step", "engines of " + ", ".join(ENGINES), engine)
            if not isinstance(us, (int, float)) or isinstance(us, bool) or \
                    not (math.isfinite(us) and us > 0):
                self.fail(f"{field}.us_per_step.{engine}", "a positive number of µs", us)
        return Row(self.choice(row, "family", f"{field}.family", FAMILIES),
                   self.choice(row, "config", f"{field}.config", CONFIGS),
                   self.choice(row, "dtype", f"{field}.dtype", DTYPES),
                   self.choice(row, "mode", f"{field}.mode", MODES),
                   self.count(row, "B", f"{field}.B"), self.count(row, "H", f"{field}.H"),
                   self.count(row, "T", f"{field}.T"),
                   {engine: float(us) for engine, us in times.items()})

    def table(self, data) -> Table:
        self.keys(data, "the table", ("format", "source", "rows"), ("about",))
        if data["format"] != FORMAT:
            self.fail("format", str(FORMAT), data["format"])
        if not isinstance(data["rows"], list):
            self.fail("rows", "a list of rows", data["rows"])
        rows = tuple(self.row(r, f"rows[{i}]") for i, r in enumerate(data["rows"]))
        seen = {}
        for i, row in enumerate(rows):
            if row.key in seen:
                self.fail(f"rows[{i}]", f"one row per configuration (rows[{seen[row.key]}] "
                          "has the same family, config, dtype, mode, B, H, T)", row.key)
            seen[row.key] = i
        if data["source"] is None:
            if rows:
                self.fail("source", "where the rows were measured (null only without rows)",
                          None)
            return Table(None, rows)
        return Table(self.source(data["source"]), rows)


def load(path) -> Table:
    """Read and validate a crossover table; a ``ValueError`` names the file and the bad field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON: {error}") from None
    return _Checker(path).table(data)


def describe_source(device, command: str) -> dict:
    """The ``source`` of rows measured now on ``device`` by ``command`` (a CUDA device; on the
    CPU, a benchmark's smoke run under the Triton interpreter, ``gpu`` says so)."""
    import torch
    import triton

    from rnnlab.backends.triton.launch import cudnn_rnn_tf32

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        "none: a smoke run on the CPU under the Triton interpreter, the times mean nothing"
    return {"gpu": gpu, "torch": torch.__version__,
            "cuda": str(torch.version.cuda), "cudnn": str(torch.backends.cudnn.version()),
            "triton": triton.__version__, "float32": "TF32" if cudnn_rnn_tf32() else "IEEE",
            "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
            "commands": [command]}


def write(path, rows, source: dict) -> Table:
    """Add ``rows`` measured as ``source`` says to the table at ``path`` (created if absent, or
    if it has no rows): a row replaces one of the same configuration; ``source``'s command joins
    the commands. Merging rows of another GPU or other versions is a ``ValueError``. Returns the
    table written (validated as :func:`load` reads it)."""
    path = Path(path)
    merged, commands = {}, []
    old = load(path) if path.exists() else Table(None, ())
    if old.source is not None:
        machine = [f for f in SOURCE_FIELDS if f not in ("date", "commands")]
        if differing := [f for f in machine if old.source[f] != source[f]]:
            raise ValueError(f"{path}: measured with {differing[0]} "
                             f"{old.source[differing[0]]!r}, the new rows with "
                             f"{source[differing[0]]!r}: write them to another file")
        commands = old.source["commands"]
    for row in (*old.rows, *rows):
        merged[row.key] = row
    data = {"format": FORMAT, "about": ABOUT,
            "source": {**source, "commands": [*commands, *(c for c in source["commands"]
                                                           if c not in commands)]},
            "rows": [row.to_json() for _, row in sorted(merged.items())]}
    table = _Checker(path).table(json.loads(json.dumps(data)))
    head = json.dumps({**data, "rows": None}, indent=1, ensure_ascii=False)
    rows = ",\n  ".join(json.dumps(r, ensure_ascii=False) for r in data["rows"])  # one a line
    path.write_text(head.replace('"rows": null', f'"rows": [\n  {rows}\n ]' if rows else
                                 '"rows": []') + "\n")
    return table
