"""From run records to verdicts and tables (terminal and markdown)."""

from __future__ import annotations

import math
import statistics

from rnnlab.lab.published import FINDINGS
from rnnlab.lab.report import verdicts as V
from rnnlab.lab.report.benchmark_verdicts import benchmark_verdicts, published_tables

CLAIM_ORDER = ("gated", "vanishing", "exploding", "gru", "bidirectional", "speed", "music",
               "mnist", "long", "irnn", "clipping", "init")
EXTRA_CELLS = ("mingru", "minlstm")  # rows of their own, quoted but never judged


def _runs(records, claim, **match):
    return [r for r in records if r["claim"] == claim
            and all(r.get(k) == v for k, v in match.items())]


def gated_results(records, task: str = "adding") -> tuple[dict, float | None]:
    """``{T: {cell: final metric}}`` and the chance level for ``task``."""
    out: dict = {}
    chance = None
    for r in _runs(records, "gated", task=task):
        out.setdefault(r["seq_len"], {})[r["cell"]] = r["final_metric"]
        chance = r["chance"]
    return out, chance


def _state_orders(flow: dict) -> float:
    """log10(‖∂L/∂s_0‖ / ‖∂L/∂s_last‖) for the whole state (LSTM: h and c together)."""
    curve = [_nan(v) for v in flow["norms"]["state"]]
    last = next((v for v in reversed(curve) if math.isfinite(v) and v > 0), math.nan)
    if not (math.isfinite(curve[0]) and curve[0] > 0 and math.isfinite(last)):
        return math.nan
    return math.log10(curve[0] / last)


def gradient_orders(records) -> tuple[dict, dict, int | None, dict]:
    """log10 decay of ‖∂L/∂h_k‖ over T per cell: (trained, at init, T, whole-state trained)."""
    trained, init, T, state = {}, {}, None, {}
    for r in records:
        if r["claim"] == "gated" and r["task"] == "adding" and "measure" in r:
            flow = r["measure"]["gradflow"]
            trained[r["cell"]] = _nan(flow["orders_of_magnitude"])
            state[r["cell"]] = _state_orders(flow)
            T = r["seq_len"]
            if "init_measure" in r:
                init[r["cell"]] = _nan(r["init_measure"]["gradflow"]["orders_of_magnitude"])
    return trained, init, T, state


def _nan(value):
    return math.nan if value is None else value


def exploding_numbers(record) -> dict:
    """From a run record: the largest and median gradient norm and the final training loss, for the exploding-gradient verdict."""
    norms = [_nan(h[2]) for h in record["history"]]
    finite = [n for n in norms if math.isfinite(n)]
    losses = [_nan(h[1]) for h in record["history"]]
    tail = losses[-max(len(losses) // 10, 1):]
    final = statistics.mean(tail) if tail and all(math.isfinite(x) for x in tail) else math.nan
    return {"max_norm": max(norms) if norms else math.nan,
            "median_norm": statistics.median(finite) if finite else math.nan,
            "diverged": bool(record["diverged"]), "final_loss": final,
            "steps": record["steps"]}


def build_verdicts(records, speed, tables: dict | None = None) -> list:
    """Every claim's verdict; ``tables`` (default: computed) are the published-vs-measured
    tables the benchmark verdicts read."""
    tables = published_tables(records) if tables is None else tables
    out = []
    results, chance = gated_results(records, "adding")
    gated = V.gated_vs_rnn(results, chance if chance is not None else math.nan, "adding")
    if results:
        row = results[max(results)]
        if "lstm" in row and V.near_chance(row["lstm"], chance, False):
            gated.text += " " + FINDINGS["adding-lstm"] + "."
    out.append(gated)
    copy_results, copy_chance = gated_results(records, "copy")
    if copy_results:
        v = V.gated_vs_rnn(copy_results, copy_chance, "copy")
        v.claim = "gated-copy"
        out.append(v)
    trained, _init, T, state = gradient_orders(records)
    out.append(V.vanishing(trained, T or 0, state_orders=state))
    runs = {r["config"]["clip"]: r for r in _runs(records, "exploding")}
    out.append(V.exploding(exploding_numbers(runs["none"]) if "none" in runs else {},
                           exploding_numbers(runs["norm"]) if "norm" in runs else {}))
    cells = {}
    higher, metric, test_size = True, "accuracy", None
    for r in _runs(records, "gru"):
        c = cells.setdefault(r["cell"], {"params": r["params"], "metrics": {}})
        c["metrics"][r["setting"]] = r["final_metric"]
        higher, metric = r["higher_is_better"], r["metric"]
        test_size = r["config"].get("eval_size")
    out.append(V.gru_vs_lstm(cells.get("lstm"), cells.get("gru"), higher, metric, test_size))
    uni, bi, fchance = {}, {}, math.nan
    for r in _runs(records, "bidirectional"):
        if r["cell"] in EXTRA_CELLS:  # the claim is about the classic cells
            continue
        (bi if r["bidirectional"] else uni)[r["cell"]] = r["final_metric"]
        fchance = r["chance"]
    out.append(V.bidirectional(uni, bi, fchance))
    out.append(V.sru_speed(speed.get("times", {}), speed.get("engines"),
                           speed.get("settings", {}).get("hidden")))
    return out + benchmark_verdicts(records, tables)


# ---- tables -------------------------------------------------------------------------------------
COLUMNS = ("experiment", "cell", "metric", "final", "chance", "params", "ms/step", "steps",
           "engine")


def table_rows(records) -> list[list[str]]:
    """One row of the summary table per run record (group, label, metric, final value, chance, parameters, ms/step, steps)."""
    rows = []
    for r in records:
        final = "diverged" if r["diverged"] else f"{r['final_metric']:.4g}"
        ms = r["seconds_per_step"] * 1000 if r["seconds_per_step"] is not None else math.nan
        rows.append([r["group"], r["label"], r["metric"], final, f"{r['chance']:.4g}",
                     f"{r['params']:,}", f"{ms:.1f}", str(r["steps"]), r.get("engine", "")])
    return rows


def speed_rows(speed) -> list[list[str]]:
    """One row per backend and cell of the step-time measurement (engine, µs per step, recurrent parameters)."""
    rows = []
    for backend, cells in speed.get("times", {}).items():
        for cell, seconds in cells.items():
            engine = speed.get("engines", {}).get(backend, {}).get(cell, backend)
            rows.append([backend, cell, engine, f"{seconds * 1e6:,.0f}",
                         f"{speed.get('params', {}).get(cell, 0):,}"])
    return rows


def _format(header, rows) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(f"{x:<{w}}" for x, w in zip(row, widths)) for row in rows]
    return out


def terminal_summary(result) -> str:
    """The summary table, the step times and the verdicts of a :class:`~rnnlab.lab.compare.CompareResult` as plain text for the terminal."""
    lines = [f"rnnlab compare ({result.preset} preset, {result.seconds:.0f} s)", ""]
    lines += _format(COLUMNS, table_rows(result.runs))
    if result.speed.get("times"):
        s = result.speed["settings"]
        lines += ["", (f"training step time (hidden {s['hidden']}, T = {s['seq_len']}, batch "
                      f"{s['batch_size']}, median of {s['steps']}, {s['threads']} thread(s))")]
        lines += _format(("backend", "cell", "engine", "µs/step", "recurrent params"),
                         speed_rows(result.speed))
    lines += ["", "verdicts:"]
    for v in result.verdicts:
        lines.append(f"  [{v.status}] {v.title}: {v.text}")
    if result.out_dir is not None and result.files:
        lines += ["", f"report: {result.files.get('html')}"]
    return "\n".join(lines)


def markdown_table(header, rows) -> str:
    """A Markdown table from a header and rows."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(out)
