"""Memory of long sequences: with truncated BPTT the peak memory of a training pass does not
grow with the sequence length T, where full BPTT's grows linearly; a T = 100,000 pass fits a
stated bound. Measured as the peak resident memory of a fresh process (``memory_probe.py``,
Linux: ``/proc/self/status``)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("memory_probe.py")
BOUND_MIB = 16  # what a truncated-BPTT pass may add to the process's peak memory, any T

pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                                reason="the probe reads and resets Linux's VmHWM")


def _probe(hidden: int, batch: int, chunk: int, *passes: str) -> dict:
    done = subprocess.run([sys.executable, str(PROBE), str(hidden), str(batch), str(chunk),
                           *passes], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    for r in results:
        print(f"\n{r['mode']}: T={r['T']} H={r['H']} B={r['B']} chunk={r['chunk']}: peak "
              f"{r['peak_mib']} MiB resident, {r['growth_mib']} MiB over the {r['before_mib']} "
              "MiB before the pass")
    return {(r["mode"], r["T"]): r["growth_mib"] for r in results}


def test_truncated_bptt_memory_does_not_grow_with_t():
    growth = _probe(16, 4, 100, "tbptt:2000", "tbptt:20000", "full:20000")
    assert growth["tbptt", 20000] - growth["tbptt", 2000] < 2  # 10× the steps, same memory
    assert growth["tbptt", 20000] < BOUND_MIB
    assert growth["tbptt", 20000] < growth["full", 20000] / 10  # full BPTT keeps every step


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
def test_a_100k_step_sequence_trains_within_the_bound(batch):
    growth = _probe(16, batch, 100, "tbptt:100000", "full:100000")
    assert growth["tbptt", 100000] < BOUND_MIB
    assert growth["tbptt", 100000] < growth["full", 100000] / 10
