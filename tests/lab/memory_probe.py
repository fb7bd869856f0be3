"""Peak memory of training passes over long sequences, measured in a process of their own.

    python tests/lab/memory_probe.py H B CHUNK MODE:T [MODE:T ...]     (MODE: tbptt or full)

trains ``rnnlab.LSTM(1, H)`` and a linear head to predict the next value of B noisy sine
waves, one pass per ``MODE:T`` argument over the first T steps, either with truncated BPTT
(:class:`rnnlab.tbptt.TruncatedBPTT`: an update every CHUNK steps, the state carried and
detached) or with full BPTT (one backward through all T steps). It prints one JSON object
per pass: ``mode``, ``T``, ``H``, ``B``, ``chunk``, ``updates``, ``before_mib`` (resident
memory before the pass, with torch, the model, all the data and a warm-up chunk in it),
``peak_mib`` (the peak resident memory during the pass) and ``growth_mib`` (their
difference: what the pass needed).

Linux only: the peak is the kernel's high-water mark ``VmHWM`` of ``/proc/self/status``,
reset before each pass by writing 5 to ``/proc/self/clear_refs``. (``getrusage``'s
``ru_maxrss`` cannot be reset, and a process started by a bigger one inherits its mark.)
"""

import json
import math
import re
import sys
from pathlib import Path

import torch

import rnnlab
from rnnlab.tbptt import TruncatedBPTT

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def memory_mib(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak since the last reset) in MiB."""
    return int(re.search(rf"^{field}:\s+(\d+) kB", STATUS.read_text(), re.M).group(1)) / 1024


def reset_peak() -> float:
    """Set the high-water mark to the current resident memory, which it returns (MiB)."""
    CLEAR_REFS.write_text("5")
    return memory_mib("VmRSS")


def measure(hidden: int, batch: int, chunk: int, passes: list[tuple[str, int]]) -> list[dict]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    lstm, head = rnnlab.LSTM(1, hidden), torch.nn.Linear(hidden, 1)
    optimizer = torch.optim.SGD([*lstm.parameters(), *head.parameters()], lr=1e-2)
    longest = max(steps for _, steps in passes)
    t = torch.arange(longest + 1, dtype=torch.float32).view(-1, 1, 1)
    waves = torch.sin(t * 0.01 * (1 + torch.arange(batch).view(1, -1, 1)))
    series = waves + 0.1 * torch.randn(longest + 1, batch, 1)

    def update(output, target) -> float:
        loss = torch.nn.functional.mse_loss(head(output), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    update(lstm(series[:chunk])[0], series[1:chunk + 1])  # warm-up: allocator pools, engine
    results = []
    for mode, steps in passes:
        x, y = series[:steps], series[1:steps + 1]
        before = reset_peak()
        if mode == "tbptt":
            losses = [update(piece.output, piece.targets[0])
                      for piece in TruncatedBPTT(lstm, chunk).chunks(x, y)]
        elif mode == "full":
            losses = [update(lstm(x)[0], y)]
        else:
            raise ValueError(f"mode: expected tbptt or full, got {mode!r}")
        assert all(math.isfinite(v) for v in losses)
        peak = memory_mib("VmHWM")
        results.append({"mode": mode, "T": steps, "H": hidden, "B": batch, "chunk": chunk,
                        "updates": len(losses), "before_mib": round(before, 1),
                        "peak_mib": round(peak, 1), "growth_mib": round(peak - before, 2)})
    return results


if __name__ == "__main__":
    hidden, batch, chunk = map(int, sys.argv[1:4])
    passes = [(mode, int(steps)) for mode, steps in (a.split(":") for a in sys.argv[4:])]
    for result in measure(hidden, batch, chunk, passes):
        print(json.dumps(result))
