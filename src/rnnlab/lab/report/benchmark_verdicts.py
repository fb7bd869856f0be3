"""Verdicts of the published-benchmark claims (music, MNIST, Bai et al.'s long tasks, IRNN,
clipping on Nottingham, the LSTM's initialisation), and the published-vs-measured table of
every claim that has published numbers (see :mod:`rnnlab.lab.report.published_table`)."""

from __future__ import annotations

import math

from rnnlab.lab.published import FINDINGS
from rnnlab.lab.report import verdicts as V
from rnnlab.lab.report.published_table import published_table

# claim -> the published experiments shown in its section, in order
CLAIM_EXPERIMENTS = {
    "gated": ("adding-600",), "gated-copy": ("copy-1000",),
    "music": ("music-jsb", "music-nottingham", "music-jsb-chung"),
    "mnist": ("mnist", "pmnist"), "long": ("adding-600", "copy-1000"),
    "irnn": ("irnn-mnist", "irnn-mnist-hu"), "clipping": ("clipping-nottingham",)}
# published experiments matched against runs of another experiment key
SAME_RUNS = {"music-jsb-chung": "music-jsb", "irnn-mnist-hu": "irnn-mnist"}
SECONDARY = ("music-jsb-chung", "irnn-mnist-hu")  # shown beside, not judged
CLIP_GAIN = 0.01  # clipping must lower the test NLL by at least this fraction
IRNN_GAIN = 0.05  # IRNN must beat the tanh RNN by this accuracy on MNIST


def runs_by_experiment(records) -> dict[str, dict[str, dict]]:
    """``{experiment: {cell_key: record}}`` of the benchmark runs."""
    out: dict = {}
    for r in records:
        if r.get("experiment"):
            out.setdefault(r["experiment"], {})[r["cell_key"]] = r
    return out


def largest_gated(records, task: str) -> dict[str, dict]:
    """``{cell: record}`` of the seed claim's runs of ``task`` at its largest T."""
    runs = [r for r in records if r["claim"] == "gated" and r["task"] == task
            and not r.get("experiment")]
    if not runs:
        return {}
    T = max(r["seq_len"] for r in runs)
    return {r["cell"]: r for r in runs if r["seq_len"] == T}


def published_tables(records) -> dict[str, list[dict]]:
    """``{claim: [table, …]}``: every published-vs-measured table the runs allow."""
    by_experiment = runs_by_experiment(records)
    tables: dict = {}
    for claim, experiments in CLAIM_EXPERIMENTS.items():
        for experiment in experiments:
            if claim == "gated":
                runs = largest_gated(records, "adding")
            elif claim == "gated-copy":
                runs = largest_gated(records, "copy")
            else:
                runs = by_experiment.get(SAME_RUNS.get(experiment, experiment), {})
            table = published_table(experiment, runs)
            if table is not None:
                table["judged"] = experiment not in SECONDARY
                tables.setdefault(claim, []).append(table)
    return tables


def _combined(claim: str, title: str, tables: list[dict], missing: str) -> V.Verdict:
    judged = [t for t in tables if t["judged"]]
    if not judged:
        return V.Verdict(claim, title, V.NOT_RUN, missing)
    statuses = {t["status"] for t in judged}
    status = statuses.pop() if len(statuses) == 1 else V.PARTLY
    text = " ".join(f"{t['experiment']}: {t['text']}" for t in judged)
    return V.Verdict(claim, title, status, text)


def _metric(runs: dict, key: str) -> float:
    """The run's final metric; NaN when it is missing or diverged."""
    r = runs.get(key)
    return math.nan if r is None or r.get("diverged") else r["final_metric"]


def _shown(value: float) -> str:
    return "diverged" if math.isnan(value) else V._fmt(value)


def irnn_verdict(by_experiment: dict) -> V.Verdict:
    """Claim (Le et al. 2015): a ReLU RNN with identity initialisation learns long
    dependencies a tanh RNN cannot: on adding it must solve the task (or reach less than half
    the tanh RNN's MSE) and on pixel MNIST beat it by :data:`IRNN_GAIN`."""
    title = "IRNN: ReLU RNN with identity initialisation vs tanh RNN and LSTM"
    adding = next((v for k, v in by_experiment.items() if k.startswith("irnn-adding")), None)
    mnist = by_experiment.get("irnn-mnist")
    if not adding and not mnist:
        return V.Verdict("irnn", title, V.NOT_RUN, "needs the irnn runs")
    good, total, parts = 0, 0, []
    if adding and "irnn" in adding and "rnn" in adding:
        irnn, rnn, lstm = (_metric(adding, k) for k in ("irnn", "rnn", "lstm"))
        T = adding["irnn"]["seq_len"]
        ok = not math.isnan(irnn) and (irnn < V.SOLVED_MSE or irnn < 0.5 * rnn)
        good, total = good + ok, total + 1
        parts.append(f"adding T = {T}: IRNN {_shown(irnn)} vs tanh RNN {_shown(rnn)}, LSTM "
                     f"{_shown(lstm)} (chance {V._fmt(adding['irnn']['chance'])})")
    if mnist and "irnn" in mnist and "rnn" in mnist:
        irnn, rnn, lstm = (_metric(mnist, k) for k in ("irnn", "rnn", "lstm"))
        ok = not math.isnan(irnn) and irnn >= rnn + IRNN_GAIN
        good, total = good + ok, total + 1
        parts.append(f"pixel MNIST: IRNN {_shown(irnn)} vs tanh RNN {_shown(rnn)}, LSTM "
                     f"{_shown(lstm)} (Le et al.: 0.97 vs 0.35)")
    return V.Verdict("irnn", title, V._status(good, total), "; ".join(parts) + ".")


def clipping_verdict(by_experiment: dict) -> V.Verdict:
    """Claim (Pascanu et al. 2013, Table 1): clipping the gradient norm improves the test NLL
    of a tanh RNN trained with SGD + momentum on Nottingham (3.80 → 3.48)."""
    title = "clipping on Nottingham (Pascanu et al.'s Table 1 setting)"
    runs = by_experiment.get("clipping-nottingham", {})
    if "rnn, clip none" not in runs or "rnn, clip norm" not in runs:
        return V.Verdict("clipping", title, V.NOT_RUN, "needs the clipped and unclipped runs")
    none, clipped = runs["rnn, clip none"], runs["rnn, clip norm"]
    a, b = none["final_metric"], clipped["final_metric"]
    diverged = none["diverged"] or math.isnan(a)
    ok = not clipped["diverged"] and (diverged or b <= a * (1 - CLIP_GAIN))
    peak = max((h[2] for h in none["history"] if h[2] is not None and math.isfinite(h[2])),
               default=math.nan)
    text = (f"test NLL without clipping {'diverged' if diverged else V._fmt(a)}, clipped at "
            f"{clipped['config']['clip_value']:g}: {V._fmt(b)} (Pascanu et al.: 3.80 → 3.48); "
            f"largest unclipped gradient norm {V._fmt(peak)}; a gain needs ≥ {CLIP_GAIN:.0%}.")
    return V.Verdict("clipping", title, V.CONFIRMED if ok else V.NOT_CONFIRMED, text)


def init_verdict(by_experiment: dict) -> V.Verdict:
    """Claim: with a forget-gate bias of 1 (Jozefowicz et al. 2015) or chrono initialisation
    (Tallec & Ollivier 2018) the LSTM solves adding at T = 400 where torch's default leaves it
    at chance. Each of the two must solve it (MSE < SOLVED_MSE), the default stay near chance."""
    title = "LSTM initialisation on adding: torch default vs forget bias 1 vs chrono"
    runs = next((v for k, v in by_experiment.items() if k.startswith("init-adding")), None)
    if not runs:
        return V.Verdict("init", title, V.NOT_RUN, "needs the init runs")
    default = next((r for k, r in runs.items() if k.endswith("init torch")), None)
    others = {k.removeprefix("lstm, init "): r for k, r in runs.items() if r is not default}
    chance = next(iter(runs.values()))["chance"]
    T = next(iter(runs.values()))["seq_len"]
    good = int(default is not None and V.near_chance(default["final_metric"], chance, False))
    good += sum(V.solved(r["final_metric"], chance, False) for r in others.values())
    parts = [f"{k} {V._fmt(r['final_metric'])}" for k, r in others.items()]
    text = (f"adding T = {T}, test MSE: torch default "
            f"{V._fmt(default['final_metric']) if default else 'n/a'}, " + ", ".join(parts)
            + f" (chance {V._fmt(chance)}, solved below {V.SOLVED_MSE:g}). "
            + FINDINGS["adding-init"] + ".")
    return V.Verdict("init", title, V._status(good, 1 + len(others)), text)


def benchmark_verdicts(records, tables: dict[str, list[dict]]) -> list[V.Verdict]:
    """The verdicts of the benchmark claims whose runs are present."""
    by_experiment = runs_by_experiment(records)
    claims = {r["claim"] for r in records}
    out = []
    if "music" in claims:
        out.append(_combined("music", "polyphonic music: LSTM, GRU, tanh RNN beside Bai et al.",
                             tables.get("music", []), "needs the music runs"))
    if "mnist" in claims:
        out.append(_combined("mnist", "sequential and permuted MNIST beside Bai et al.",
                             tables.get("mnist", []), "needs the MNIST runs"))
    if "long" in claims:
        out.append(_combined("long", "adding T = 600 and copy T = 1000 beside Bai et al.",
                             tables.get("long", []), "needs the long runs"))
    if "irnn" in claims:
        out.append(irnn_verdict(by_experiment))
    if "clipping" in claims:
        out.append(clipping_verdict(by_experiment))
    if "init" in claims:
        out.append(init_verdict(by_experiment))
    return out
