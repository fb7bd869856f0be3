"""``benchmarks/gpu_step_profile.py``: its product-only kernel computes the recurrent product the
engine's kernels do (so the split it reports times the real work), on the engine's launch plans
(streamed and resident, one and two column programs), and its ``--smoke`` mode writes a
report. Compiled on the GPU where there is one, else under the Triton interpreter."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_gpu_benchmark import smoke_environment

from rnnlab.backends.triton.launch import launch

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from gpu_step_profile import product_kernel  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("gates", [4, 3, 1])
@pytest.mark.parametrize("resident, columns", [("0", "1"), ("1", "2")],
                         ids=["streamed", "resident-2-columns"])
def test_product_kernel_runs_the_recurrent_product(gates, backward, resident, columns,
                                                    monkeypatch):
    monkeypatch.setenv("RNNLAB_TRITON_RESIDENT", resident)
    monkeypatch.setenv("RNNLAB_TRITON_COLUMN_PROGRAMS", columns)
    B, H, substeps, scale = 3, 20, 3, 0.5
    width = gates * H if backward else H
    buf = torch.randn(2, B, width, device=DEVICE)
    w = torch.randn(gates * H, H, device=DEVICE) / H**0.5
    expected = buf[0].clone()
    for _ in range(substeps):  # Σ_g A_g W_gᵀ forward, Σ_g D_g W_g backward, times scale
        if backward:
            step = sum(expected[:, g * H:(g + 1) * H] @ w[g * H:(g + 1) * H] for g in range(gates))
            expected = (scale * step).repeat(1, gates)
        else:
            expected = scale * sum(expected @ w[g * H:(g + 1) * H].T for g in range(gates))
    lengths = torch.full((B,), substeps, dtype=torch.int32, device=DEVICE)
    launch(product_kernel, B, H, substeps, buf, w, lengths, scale, B, H, dtype=torch.float32,
           device=DEVICE, gates=gates, backward=backward, GATES=gates, BACKWARD=backward)
    torch.testing.assert_close(buf[substeps % 2], expected, rtol=1e-5, atol=1e-5)


def test_smoke_run_writes_the_split(tmp_path):
    out = tmp_path / "profile.md"
    subprocess.run([sys.executable, str(BENCHMARKS / "gpu_step_profile.py"), "--smoke", "--out",
                    str(out)], env=smoke_environment(), check=True, capture_output=True,
                   timeout=300)
    rows = [line for line in out.read_text().splitlines()
            if line.startswith(("| LSTM ", "| GRU ", "| RNN "))]
    assert [(r.split(" | ")[0][2:], r.split(" | ")[4]) for r in rows] == [
        (f, phase) for f in ("LSTM", "GRU", "RNN") for phase in ("forward", "backward")]
