"""``backend="auto"`` on CUDA by the crossover table: the file's schema, the nearest measured
point, the 5 % rule, engines that cannot run a call, no data, the CPU path untouched, and the
benchmarks' writers round-tripping through the format (fake timings, no GPU)."""

import json
import re
import sys
from pathlib import Path

import pytest
import torch

import rnnlab
from rnnlab.backends import AUTO_ORDER, BACKENDS, crossover, select_backend
from rnnlab.backends.crossover_table import Row, Table, load, write
from rnnlab.layers.sequence import Batch

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import gpu_layers  # noqa: E402
import variants  # noqa: E402

SOURCE = {"gpu": "NVIDIA H200", "torch": "2.11.0+cu130", "cuda": "13.0", "cudnn": "91900",
          "triton": "3.6.0", "float32": "TF32", "date": "2026-12-05",
          "commands": ["python benchmarks/gpu_layers.py --crossover t.json"]}
CUDA_ENGINES = [name for name in AUTO_ORDER if name != "cpu"]  # native, triton, reference


def row(B, H, T=100, family="LSTM", config="plain", dtype="float32", mode="infer", **us):
    return Row(family, config, dtype, mode, B, H, T, us)


def grid() -> crossover.Crossover:
    """LSTM plain float32 inference at B {8, 64} × H {256, 1024}: each point's own winner."""
    return crossover.Crossover(Table(SOURCE, (
        row(8, 256, native=10.0, triton=5.0), row(8, 1024, native=10.0, triton=20.0),
        row(64, 256, native=10.0, triton=30.0), row(64, 1024, native=10.0, triton=40.0),
        row(64, 1024, T=1024, native=10.0, triton=50.0))))


def winner(table, B, H, T=100) -> dict:
    return table.nearest("LSTM", "plain", "float32", "infer", B, H, T).us_per_step


def test_the_committed_table_loads():
    table = load(crossover.TABLE)
    assert (table.source is None) == (not table.rows)
    assert crossover.committed().source == table.source


@pytest.mark.parametrize("B, H, T, triton", [
    (8, 256, 100, 5.0),        # a measured point
    (11, 300, 100, 5.0),       # nearer (8, 256) than any other in log-space
    (40, 256, 100, 30.0),      # ln(64/40) < ln(40/8)
    (1, 64, 100, 5.0),         # below the grid: its edge
    (4096, 8192, 100, 40.0),   # above it
    (64, 1024, 600, 50.0),     # same (B, H), T nearer 1024 than 100
])
def test_nearest_point_in_log_space(B, H, T, triton):
    assert winner(grid(), B, H, T)["triton"] == triton


def test_no_rows_for_the_call_gives_none():
    table = grid()
    assert table.nearest("LSTM", "plain", "bfloat16", "infer", 8, 256, 100) is None
    assert table.nearest("LSTM", "plain", "float32", "train", 8, 256, 100) is None
    assert table.nearest("GRU", "plain", "float32", "infer", 8, 256, 100) is None


@pytest.mark.parametrize("times, runnable, expected", [
    ({"native": 10.0, "triton": 9.6}, CUDA_ENGINES, "native"),   # within 5 %: AUTO_ORDER's
    ({"native": 10.0, "triton": 9.4}, CUDA_ENGINES, "triton"),   # more than 5 % faster
    ({"native": 9.0, "triton": 10.0}, CUDA_ENGINES, "native"),
    ({"triton": 10.0, "reference": 10.4}, CUDA_ENGINES, "triton"),
    ({"triton": 10.0, "reference": 9.0}, CUDA_ENGINES, "reference"),
    ({"native": 1.0, "triton": 10.0}, ["triton", "reference"], "triton"),  # native cannot run
    ({"native": 1.0}, ["triton", "reference"], None),                # none of them timed
])
def test_fastest_within_five_percent(times, runnable, expected):
    choice = crossover.fastest(times, runnable)
    assert choice == expected
    if choice is not None:  # never more than 5 % slower than the fastest that can run
        assert times[choice] <= 1.05 * min(times[n] for n in runnable if n in times)


def choice_with(monkeypatch, table, layer, batch):
    monkeypatch.setattr(crossover, "committed", lambda: crossover.Crossover(table))
    return crossover.measured_choice(
        layer, batch, CUDA_ENGINES, lambda n: BACKENDS[n].unsupported(layer, batch) is None)


def test_engines_that_cannot_run_the_call_are_never_chosen(monkeypatch):
    batch = Batch(torch.randn(5, 8, 4))
    faster_triton = Table(SOURCE, (row(8, 6, native=10.0, triton=1.0),))
    with torch.no_grad():
        assert choice_with(monkeypatch, faster_triton, rnnlab.LSTM(4, 6), batch) == "triton"
        # the triton engine has no proj_size: cuDNN, though measured slower
        assert choice_with(monkeypatch, faster_triton, rnnlab.LSTM(4, 6, proj_size=3),
                           batch) == "native"
        # cuDNN has no peepholes: the fastest of those that can run them
        peephole = Table(SOURCE, (row(8, 6, config="peephole_clip_coupled", native=1.0,
                                      triton=20.0, reference=10.0),))
        assert choice_with(monkeypatch, peephole, rnnlab.LSTM(4, 6, peephole=True),
                           batch) == "reference"


@pytest.mark.parametrize("make, config", [
    (lambda: rnnlab.LSTM(4, 6), "plain"),
    (lambda: rnnlab.LSTM(4, 6, proj_size=3), "plain"),
    (lambda: rnnlab.LSTM(4, 6, cell_clip=3.0, zoneout=0.1), "peephole_clip_coupled"),
    (lambda: rnnlab.LSTM(4, 6, layer_norm=True, zoneout=0.1), "layer_norm"),
    (lambda: rnnlab.GRU(4, 6, reset_after=False), "reset_before"),
    (lambda: rnnlab.GRU(4, 6, activation="relu", zoneout=0.1), "activations"),
    (lambda: rnnlab.GRU(4, 6, zoneout=0.1), "regularisers"),
    (lambda: rnnlab.GRU(4, 6, zoneout=0.1).eval(), "plain"),  # eval: the plain layer's function
    (lambda: rnnlab.RNN(4, 6, nonlinearity="relu"), "plain"),
    (lambda: rnnlab.SRU(4, 6), "plain"),
    (lambda: rnnlab.MinGRU(4, 6), None),
])
def test_config_class(make, config):
    assert crossover.config_class(make()) == config


def test_the_call_s_dtype_and_mode_pick_the_row(monkeypatch):
    table = Table(SOURCE, (row(8, 6, mode="train", native=10.0, triton=1.0),
                           row(8, 6, mode="infer", native=1.0, triton=10.0)))
    layer, x = rnnlab.LSTM(4, 6), torch.randn(5, 8, 4)
    assert choice_with(monkeypatch, table, layer, Batch(x)) == "triton"  # weights need grad
    with torch.no_grad():
        assert choice_with(monkeypatch, table, layer, Batch(x)) == "native"
    assert choice_with(monkeypatch, table, layer, Batch(x.double())) is None  # no float64 rows
    assert choice_with(monkeypatch, Table(None, ()), layer, Batch(x)) is None


def test_the_cpu_path_ignores_the_table(monkeypatch):
    layer, batch = rnnlab.LSTM(4, 6), Batch(torch.randn(5, 8, 4))
    before = select_backend(layer, batch).name
    monkeypatch.setattr(crossover, "committed", lambda: crossover.Crossover(Table(SOURCE, (
        row(8, 6, mode="train", native=100.0, reference=1.0),))))
    assert select_backend(layer, batch).name == before != "reference"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_on_cuda_follows_the_table(monkeypatch):
    layer = rnnlab.GRU(4, 6, device="cuda")
    batch = Batch(torch.randn(5, 8, 4, device="cuda"))
    for fast, slow in (("native", "triton"), ("triton", "native")):
        monkeypatch.setattr(crossover, "committed", lambda f=fast, s=slow: crossover.Crossover(
            Table(SOURCE, (row(8, 6, family="GRU", mode="train", **{f: 1.0, s: 2.0}),))))
        assert select_backend(layer, batch).name == fast
    monkeypatch.setattr(crossover, "committed", lambda: crossover.Crossover(Table(None, ())))
    assert select_backend(layer, batch).name == "native"  # no data: cuDNN first


def good_table() -> dict:
    return {"format": 1, "source": dict(SOURCE), "rows": [
        {"family": "LSTM", "config": "plain", "dtype": "bfloat16", "mode": "train", "B": 8,
         "H": 256, "T": 1024, "us_per_step": {"native": 35.8, "triton": 17.9}}]}


def set_path(data, path, value):
    *parents, last = path
    for key in parents:
        data = data[key]
    if value is KeyError:
        del data[last]
    elif isinstance(data, list) and last == len(data):
        data.append(value)
    else:
        data[last] = value


@pytest.mark.parametrize("path, value, field", [
    (("format",), 2, "format"),
    (("rows",), KeyError, "the table"),
    (("extra",), 1, "the table.extra"),
    (("source", "float32"), "tf32", "source.float32"),
    (("source", "commands"), [], "source.commands"),
    (("source",), None, "source"),                                  # null only without rows
    (("rows", 0, "dtype"), "float64", "rows[0].dtype"),
    (("rows", 0, "config"), "peephole", "rows[0].config"),
    (("rows", 0, "B"), 0, "rows[0].B"),
    (("rows", 0, "H"), 2.5, "rows[0].H"),
    (("rows", 0, "us_per_step", "cudnn"), 3.0, "rows[0].us_per_step"),
    (("rows", 0, "us_per_step", "triton"), -1.0, "rows[0].us_per_step.triton"),
    (("rows", 1), dict(good_table()["rows"][0]), "rows[1]"),       # a duplicate
])
def test_a_bad_field_is_named_with_the_file(tmp_path, path, value, field):
    data = good_table()
    set_path(data, path, value)
    file = tmp_path / "table.json"
    file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(file))}: {re.escape(field)}: expected"):
        load(file)


def test_not_json_is_named(tmp_path):
    file = tmp_path / "table.json"
    file.write_text("{")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(file))}: not JSON"):
        load(file)


def measured(family, dtype, mode, B, H, T, **engines) -> dict:
    """A row as ``gpu_layers.measure`` returns it (the fields the table reads)."""
    return dict(family=family, dtype=dtype, mode=mode, B=B, H=H, T=T, engines=engines,
                triton=engines["triton"])


def test_gpu_layers_writer_round_trips_and_merges(tmp_path):
    file = tmp_path / "crossover_cuda.json"
    first = [measured("LSTM", "bfloat16", "train", 8, 256, 1024, triton=17.9, native=35.8),
             measured("SRU", "float32", "infer", 8, 256, 256, triton=4.5, reference=90.0)]
    gpu_layers.write_crossover(file, first, SOURCE)
    table = load(file)
    assert table.source == SOURCE
    assert {r.key: r.us_per_step for r in table.rows} == {
        ("LSTM", "plain", "bfloat16", "train", 8, 256, 1024): {"native": 35.8, "triton": 17.9},
        ("SRU", "plain", "float32", "infer", 8, 256, 256): {"reference": 90.0, "triton": 4.5}}
    again = {**SOURCE, "commands": ["python benchmarks/gpu_layers.py --families SRU"]}
    gpu_layers.write_crossover(
        file, [measured("SRU", "float32", "infer", 8, 256, 256, triton=5.0, reference=80.0)],
        again)
    table = load(file)
    assert table.source["commands"] == SOURCE["commands"] + again["commands"]
    assert len(table.rows) == 2  # the same configuration replaced
    assert crossover.Crossover(table).nearest("SRU", "plain", "float32", "infer", 8, 256, 256) \
        .us_per_step == {"reference": 80.0, "triton": 5.0}
    with pytest.raises(ValueError, match=rf"^{re.escape(str(file))}: measured with gpu 'NVIDIA H200'"):
        write(file, [], {**SOURCE, "gpu": "NVIDIA H100"})


def test_variants_writer_takes_each_class_s_first_variant(tmp_path):
    B, H, T = 2, 8, 5
    layers = {(family, variant, "auto"): getattr(rnnlab, family)(H, H, **options)
              for family, variant, options in variants.VARIANTS}
    # fake times in ms: each variant's own, the same for every engine but native (half)
    times = {(family, variant, engine): float(k + 1) / (2 if engine == "native" else 1)
             for k, (family, variant, _) in enumerate(variants.VARIANTS)
             for engine in ("reference", "triton", "native")
             if engine != "native" or variant in ("plain", "relu")}
    rows = variants.crossover_rows(times, layers, ["reference", "native", "triton"],
                                   "bfloat16", True, (B, H, T))
    file = tmp_path / "crossover_cuda.json"
    write(file, rows, SOURCE)
    table = load(file)
    got = {(r.family, r.config): r.us_per_step for r in table.rows}
    first = {}
    for k, (family, variant, _) in enumerate(variants.VARIANTS):
        first.setdefault((family, crossover.config_class(layers[family, variant, "auto"])), k)
    assert set(got) == set(first)
    for key, k in first.items():
        us = (k + 1) * 1e3 / T
        assert got[key]["triton"] == pytest.approx(us)
        assert got[key].get("native") == (pytest.approx(us / 2) if key[1] == "plain" else None)
    assert {r.mode for r in table.rows} == {"train"}
    assert {r.dtype for r in table.rows} == {"bfloat16"}
