"""``benchmarks/gpu_layers.py`` keeps working as the library changes: its ``--smoke`` mode runs
the whole script (layers, timing, acceptance table, report) at tiny sizes, compiled on the GPU
where there is one, else under the Triton interpreter on the CPU. It checks the report's
structure only; the times of a smoke run mean nothing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from rnnlab.backends.crossover_table import load

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_layers.py"


def smoke_environment() -> dict:
    """The GPU as the tests see it; without one, the interpreter. (A GPU never takes the
    interpreter: Triton 3.6's, a CUDA image's, fails on the kernels under NumPy 2.4.)"""
    env = dict(os.environ)
    if torch.cuda.is_available():
        env.pop("TRITON_INTERPRET", None)
    else:
        env.update(TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="")
    return env


def test_smoke_run_writes_a_complete_report(tmp_path):
    out, table = tmp_path / "report.md", tmp_path / "crossover_cuda.json"
    subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out),
                    "--crossover", str(table)],
                   env=smoke_environment(), check=True, capture_output=True, timeout=300)
    # the crossover table: every row, triton and the engine auto weighs it against
    rows = load(table).rows
    assert {(r.family, r.dtype, r.mode) for r in rows} == {
        (f, d, m) for f in ("LSTM", "SRU") for d in ("bfloat16", "float32")
        for m in ("train", "infer")}
    assert {r.family: set(r.us_per_step) for r in rows} == {
        "LSTM": {"native", "triton"}, "SRU": {"reference", "triton"}}
    report = out.read_text()
    for section in ("## Machine", "## Acceptance", "## Results"):
        assert section in report
    assert "cut short" not in report
    rows = [line for line in report.splitlines() if line.startswith(("| LSTM |", "| SRU |"))]
    # LSTM and SRU, inference and training, triton bf16 and fp32
    assert len(rows) == 8
    assert {line.split(" | ")[1] for line in rows} == {"bf16", "fp32"}
    assert all(line.count("|") == 15 for line in rows)  # 14 columns
    # the verdict counted the one SRU training row of each dtype
    for dtype in ("bf16", "fp32"):
        assert re.search(rf"\| {dtype} \| SRU training ≥ 5× torch.nn.LSTM, same dtype \| [01]/1 met",
                         report)
