"""Print docs/conformance.md from the expectations the conformance tests assert
(conformance_common.EXPECT via :func:`conformance_common.expect`).

    python tests/conformance/conformance_table.py > docs/conformance.md
    python tests/conformance/conformance_table.py --junit report.xml > docs/conformance.md

With ``--junit`` (a ``pytest --junit-xml`` report of ``tests/conformance``) the page also lists
the tests that failed in that run: the cells whose promise main does not keep yet.
``test_conf_table.py`` checks that the page holds the table this script prints.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conformance_common import (  # noqa: E402
    AS_TORCH,
    CLEAR,
    ENGINES,
    NATIVE_AS_TORCH,
    NOTES,
    USAGES,
    USE,
    WORKS,
    expect,
)

HEADER = """# Conformance with torch.nn

`rnnlab.RNN`, `rnnlab.LSTM`, `rnnlab.GRU` and `rnnlab.SRU` are meant as drop-in replacements
for `torch.nn.RNN`, `torch.nn.LSTM` and `torch.nn.GRU`. The conformance suite
(`tests/conformance/`) takes the ways people use torch.nn's recurrent layers one by one and
checks each on every engine (`backend=`), for the four families:

* RNN, LSTM, GRU against the `torch.nn` layer loaded with the same `state_dict`;
* SRU (torch has no SRU) against an oracle: autograd through a Python loop of the cell step
  `rnnlab.cells.sru.sru_step`, with the same parameter names.

Numbers are compared in float64 to 1e-8 (outputs, first- and second-order gradients, jvp,
vjp), except where a usage fixes another dtype (autocast, float32 jvp) and on the triton
engine (float32, CUDA). Sizes are small: T=5 (and 7), B=3, I=4, H=6, one layer. The
parametrizations and pruning act on the recurrent weight, `weight_hh_l0` (SRU: `weight_c_l0`),
on torch.nn's layer and on rnnlab's alike.

Each cell says what the tests assert:

* **works**: the same results as torch.nn (or the oracle);
* **clear error**: `NotImplementedError` whose message names the use, the engine and the
  engines that support it (`'auto'`, `'reference'`);
* **as torch.nn**: the native engine is torch's own fused op, so where torch.nn raises it raises
  the same error, and elsewhere it gives torch.nn's results.

The native column is checked that way in every row: where torch.nn itself raises for a case
(on CUDA, for instance, cuDNN's RNNs have no double backward), the test asserts that native
raises the same error; the cells name where this happens on the CPU. On CUDA the other engines
are compared with torch.nn's non-cuDNN path, which differentiates twice and in forward mode.

The `triton` column runs on CUDA only (skipped on the CPU); with a GPU the `auto`, `reference`
and `native` cases also run on CUDA, with autocast in float16 and bfloat16 there.
`SRU(backend="native")` is refused when built (`ValueError: backend: 'native' cannot run this
configuration: torch has no fused SRU op`), so the native column is about RNN, LSTM and GRU.

Regenerate this page with `python tests/conformance/conformance_table.py` (add
`--junit report.xml` from `pytest tests/conformance --junit-xml report.xml` to list the
failures of a run); `tests/conformance/test_conf_table.py` fails when the table below and the
tests' expectations disagree.
"""

TEST_OF = {key: f"`test_{key}`" for key, _, _ in USAGES}
TEST_OF["compile"] += ", `test_compile_sru_with_graph_breaks`"
for key in ("func_vmap", "func_jvp_f32"):  # the premise of their 'as torch.nn' cells
    TEST_OF[key] += ", `test_torch_nn_vmap_and_f32_lstm_jvp_still_fail`"


def cell(usage: str, engine: str) -> str:
    outcome = expect(usage, engine)
    notes = sorted({NOTES[k] for k in NOTES if k[0] == usage and k[1] == engine})
    if outcome == CLEAR:
        if notes:
            return "; ".join(notes)
        return f"clear error (`NotImplementedError`: {USE[usage]})"
    if outcome == AS_TORCH:
        return f"as torch.nn (error): {NATIVE_AS_TORCH[usage]}"
    assert outcome == WORKS
    return "; ".join(notes) if notes else "works"


def table() -> str:
    columns = [e + (" (CUDA)" if e == "triton" else "") for e in ENGINES]
    lines = ["| usage | test | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(ENGINES)]
    for key, label, _ in USAGES:
        cells = [cell(key, e) for e in ENGINES]
        lines.append(f"| {label} | {TEST_OF[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def failures(junit: str) -> dict[tuple[str, str], list[str]]:
    """(test function, engine) → the failed ids of a junit report, with the error's first line."""
    found = defaultdict(list)
    for case in ET.parse(junit).iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is None:
            continue
        name = case.get("name")
        function, _, params = name.partition("[")
        engine = next((e for e in ENGINES if re.search(rf"(^|-){e}(-|\]|$)", params)), "")
        message = (bad.get("message") or "").strip().splitlines()
        text = f"`{name}`: {message[0][:200] if message else ''}"
        if name.startswith("test_docs_page") or name.startswith("test_every_usage"):
            continue  # about this page itself
        if where := re.findall(r"^(src/rnnlab/[\w/]+\.py:\d+): ", bad.text or "", re.M):
            text += f" (raised at `{where[-1]}`)"
        found[(function, engine)].append(text)
    return found


def revision() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=os.path.dirname(__file__))
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def status(junit: str) -> str:
    found = failures(junit)
    run_at = f"the run this page was made from (main at `{revision()}`, CPU)"
    if not found:
        return f"\n## Status\n\nEvery conformance test passed in {run_at}.\n"
    lines = ["", "## Status: tests that fail", "",
             f"Cells whose promise rnnlab does not keep yet, as failed in {run_at}:", ""]
    for (function, engine), ids in sorted(found.items()):
        lines.append(f"* `{function}`, engine `{engine or '-'}`:")
        lines.extend(f"    * {i}" for i in ids)
    return "\n".join(lines) + "\n"


def page(junit: str | None = None) -> str:
    text = HEADER + "\n" + table()
    return text + (status(junit) if junit else "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", help="a pytest --junit-xml report of tests/conformance")
    print(page(parser.parse_args().junit), end="")
