"""``benchmarks/variants.py`` keeps working as the library changes: its ``--quick`` mode runs the
whole script (every variant on every engine, the baselines, auto's choice, the report) at tiny
sizes, on the CPU and, where there is one, on the GPU. It checks the report's structure only;
the times of a quick run mean nothing."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "variants.py"
sys.path.insert(0, str(SCRIPT.parent))
from variants import ENGINES, VARIANTS  # noqa: E402


def table_rows(report: str, section: str) -> list[list[str]]:
    """The cells of the variant rows under ``## <section>``."""
    body = report.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in body.splitlines()
            if line.startswith(("| LSTM |", "| GRU |", "| RNN |", "| SRU |"))]


@pytest.mark.parametrize("device, dtype", [
    ("cpu", "float32"),
    pytest.param("cuda", "bfloat16", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs CUDA")),
])
def test_quick_run_writes_a_complete_report(device, dtype, tmp_path):
    out = tmp_path / "variants.md"
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--device", device, "--dtypes",
                    dtype, "--out", str(out)], check=True, capture_output=True, timeout=600)
    report = out.read_text()
    assert report.startswith("# rnnlab variants vs torch.nn")
    assert f"Command: `python benchmarks/variants.py --quick --device {device}" in report
    assert ("Machine: GPU" if device == "cuda" else "Machine: CPU") in report
    engines = ENGINES[device]
    for mode in ("training step", "inference call"):
        rows = table_rows(report, f"{dtype}, {mode}")
        assert [tuple(r[:2]) for r in rows] == [(f, v) for f, v, _ in VARIANTS]
        for family, variant, *cells in rows:
            timed, picked = cells[:len(engines)], cells[len(engines) + 1]
            assert picked, f"{family} {variant}: auto's choice missing"
            if not picked.startswith("— (rnnlab refuses"):
                assert timed[0] != "—", f"{family} {variant}: auto did not run"
                assert picked in engines[1:], picked
                if picked != "native":  # native refuses regularisers when built, eval or not
                    assert timed[engines.index(picked)] != "—", "auto picked a refusing engine"
            if variant in ("plain", "relu"):  # a family's plain row is its own baseline
                assert all(c.endswith("· 1.00)") for c in timed if c != "—"), timed
        native = engines.index("native")
        assert dict(((r[0], r[1]), r[2 + native]) for r in rows)["LSTM", "peephole"] == "—"
