"""One-line verdicts, computed from the measured numbers (never written in advance).

Each function takes plain numbers and returns a :class:`Verdict` whose ``status`` is
``"confirmed"``, ``"partly"``, ``"not confirmed"`` or ``"not run"`` and whose ``text`` quotes
the numbers that decided it. The thresholds are module constants, stated in the report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

CONFIRMED, PARTLY, NOT_CONFIRMED, NOT_RUN = "confirmed", "partly", "not confirmed", "not run"

SOLVED_MSE = 0.01  # adding problem: "solved" below this test MSE (chance 1/6 ≈ 0.167)
SOLVED_FRACTION = 0.1  # other lower-is-better metrics: solved below this fraction of chance
NEAR_CHANCE = 0.5  # lower-is-better: "near chance" when metric >= this fraction of chance
VANISHED_ORDERS = 3.0  # the tanh RNN's gradient must shrink by at least this many decades
KEPT_ORDERS = 2.0  # … and the LSTM's by less ("not by orders of magnitude")
SPIKE_RATIO = 10.0  # a gradient spike: max norm >= this × the median norm of the run
HARM_RATIO = 2.0  # unclipped final loss >= this × the clipped one counts as harm
METRIC_TOLERANCE = 0.02  # GRU "matches" LSTM within this (accuracy) or this fraction (loss),
# or within two standard errors of the accuracy difference when the test size is known
SPEED_MARGIN = 1.1  # "faster" means at least this ratio of step times (else on par)
BIDIRECTIONAL_GAIN = 0.1  # bidirectional must beat unidirectional by this accuracy
FLOAT32_DECADES = 45  # log10(1 / 1.4e-45, the smallest positive float32): from a norm near 1


@dataclass
class Verdict:
    claim: str  # short id: "gated", "vanishing", "exploding", "gru", "bidirectional", "speed"
    title: str
    status: str
    text: str

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def line(self) -> str:
        return f"{self.status.upper()}: {self.text}"


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0 or 0.01 <= abs(value) < 1:
        return f"{value:.4f}"
    if 1e-5 <= abs(value) < 0.01:
        return f"{value:.2g}"
    if 1 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.2e}"


def _status(good: int, total: int) -> str:
    if total == 0:
        return NOT_RUN
    return CONFIRMED if good == total else PARTLY if good else NOT_CONFIRMED


def solved(metric: float, chance: float, higher_is_better: bool, task: str = "adding") -> bool:
    """Whether a final metric counts as solving the task."""
    if metric is None or math.isnan(metric):
        return False
    if higher_is_better:
        return metric >= 0.9
    if task == "adding":
        return metric < SOLVED_MSE
    return metric < SOLVED_FRACTION * chance


def near_chance(metric: float, chance: float, higher_is_better: bool) -> bool:
    """Whether a final metric stays near the chance level (no real learning)."""
    if metric is None or math.isnan(metric):
        return True  # diverged: certainly not learned
    if higher_is_better:
        return metric <= chance + 0.1 * (1 - chance)
    return metric >= NEAR_CHANCE * chance


def gated_vs_rnn(results: dict[int, dict[str, float]], chance: float, task: str = "adding",
                 higher_is_better: bool = False, gated=("lstm", "gru")) -> Verdict:
    """Claim: a tanh RNN fails on long dependencies that gated cells learn, more so as T grows.

    ``results[T][cell]`` = final metric. Decided at the largest T: every cell of ``gated``
    that ran must solve the task (adding: MSE < 0.01) and the tanh RNN must stay near chance
    (≥ half of chance for a loss)."""
    title = f"tanh RNN vs gated cells on {task} as T grows"
    lengths = sorted(T for T, row in results.items() if row)
    if not lengths or "rnn" not in results[lengths[-1]]:
        return Verdict("gated", title, NOT_RUN, f"needs the tanh RNN and a gated cell on {task}")
    T = lengths[-1]
    row = results[T]
    present = [c for c in gated if c in row]
    if not present:
        return Verdict("gated", title, NOT_RUN, f"needs a gated cell on {task}")
    gated_ok = [c for c in present if solved(row[c], chance, higher_is_better, task)]
    rnn_fails = near_chance(row["rnn"], chance, higher_is_better)
    good = len(gated_ok) + int(rnn_fails)
    status = _status(good, len(present) + 1)
    what = "MSE" if task == "adding" else "metric"
    parts = [f"at T = {T}: " + ", ".join(f"{c.upper()} {_fmt(row[c])}" for c in present)]
    others = [c for c in row if c not in present and c != "rnn"]
    if others:
        parts[0] += " (" + ", ".join(f"{c.upper()} {_fmt(row[c])}" for c in others) + ")"
    parts[0] += f" vs tanh RNN {_fmt(row['rnn'])} (chance {_fmt(chance)})"
    earlier = [t for t in lengths[:-1] if "rnn" in results[t]]
    for t in earlier:
        state = ("solves it" if solved(results[t]["rnn"], chance, higher_is_better, task)
                 else "stays near chance" if near_chance(results[t]["rnn"], chance,
                                                         higher_is_better)
                 else "learns part of it")
        parts.append(f"at T = {t} the RNN {state} ({_fmt(results[t]['rnn'])})")
    if status == CONFIRMED:
        lead = (f"gated cells solve {task} ({what} < {SOLVED_MSE:g}) where the tanh RNN stays "
                "near chance" if task == "adding" else
                f"gated cells solve {task} where the tanh RNN stays near chance")
    elif status == PARTLY:
        missing = [c.upper() for c in present if c not in gated_ok]
        lead = ("the tanh RNN stays near chance but " + ", ".join(missing) + " did not solve it"
                if rnn_fails else "the gated cells solve it but so does the tanh RNN, mostly")
    else:
        lead = "no gated cell solved it" + ("" if rnn_fails else " and the RNN learned it")
    return Verdict("gated", title, status, lead + ": " + "; ".join(parts) + ".")


def vanishing(orders: dict[str, float], T: int, stage: str = "trained",
              state_orders: dict[str, float] | None = None) -> Verdict:
    """Claim: ‖∂L/∂h_k‖ decays by orders of magnitude over T for the tanh RNN, not for LSTM.

    ``orders[cell]`` = log10(‖∂L/∂h_0‖ / ‖∂L/∂h_T‖). Confirmed when the RNN's gradient shrinks
    by at least :data:`VANISHED_ORDERS` decades and the LSTM's by less than
    :data:`KEPT_ORDERS`. ``state_orders`` (the same for the whole state, LSTM's ``(h, c)``)
    is quoted, not judged."""
    title = "vanishing gradients: ‖∂L/∂h_k‖ over T steps"
    if "rnn" not in orders or "lstm" not in orders:
        return Verdict("vanishing", title, NOT_RUN, "needs the tanh RNN and the LSTM")
    rnn, lstm = orders["rnn"], orders["lstm"]
    rnn_ok = not math.isnan(rnn) and rnn <= -VANISHED_ORDERS
    lstm_ok = not math.isnan(lstm) and lstm > -KEPT_ORDERS
    status = _status(int(rnn_ok) + int(lstm_ok), 2)

    def decades(v):
        if v is None or math.isnan(v):
            return "n/a"
        if v == -math.inf:
            return (f"underflows to zero (more than float32's ≈{FLOAT32_DECADES} decades, "
                    "so the decay cannot be counted)")
        if v == math.inf:
            return "grows beyond float32's range"
        return f"{-v:.1f} decades" if v < 0 else f"grows {v:.1f} decades"

    others = ", ".join(f"{c.upper()} {decades(v)}" for c, v in orders.items()
                       if c not in ("rnn", "lstm"))
    state = ""
    if state_orders and "lstm" in state_orders:
        state = f"; the LSTM's whole state (h, c): {decades(state_orders['lstm'])}"
    text = (f"over T = {T} steps ({stage}) the tanh RNN's ‖∂L/∂h_k‖ {_shrinks(decades(rnn))}, "
            f"the LSTM's {decades(lstm)}" + (f" ({others})" if others else "") + state
            + f"; thresholds: RNN ≥ {VANISHED_ORDERS:g}, LSTM < {KEPT_ORDERS:g} decades.")
    return Verdict("vanishing", title, status, text)


def _shrinks(words: str) -> str:
    return words if words.startswith(("underflows", "grows", "n/a")) else f"shrinks {words}"


def exploding(unclipped: dict, clipped: dict) -> Verdict:
    """Claim: without clipping, gradient norms spike and training diverges or degrades;
    clipping keeps it stable.

    Each dict: ``max_norm``, ``median_norm`` (gradient norms before clipping), ``diverged``
    (bool), ``final_loss`` (training loss at the end, NaN if diverged)."""
    title = "exploding gradients with and without clipping"
    if not unclipped or not clipped:
        return Verdict("exploding", title, NOT_RUN, "needs a clipped and an unclipped run")
    ratio = unclipped["max_norm"] / max(unclipped["median_norm"], 1e-30)
    spikes = not math.isfinite(unclipped["max_norm"]) or ratio >= SPIKE_RATIO
    u_loss, c_loss = unclipped["final_loss"], clipped["final_loss"]
    harmed = bool(unclipped["diverged"]) or not math.isfinite(u_loss) or (
        math.isfinite(c_loss) and u_loss >= HARM_RATIO * c_loss)
    clipped_ok = not clipped["diverged"] and math.isfinite(c_loss)
    status = _status(int(spikes) + int(harmed and clipped_ok), 2)
    spike = ("non-finite" if not math.isfinite(unclipped["max_norm"]) else
             f"{_fmt(unclipped['max_norm'])}, {ratio:.3g}× its median")
    u_end = "diverged" if unclipped["diverged"] else f"ended at loss {_fmt(u_loss)}"
    c_end = "diverged" if clipped["diverged"] else f"ended at loss {_fmt(c_loss)}"
    text = (f"without clipping the gradient norm peaked at {spike} and training {u_end}; "
            f"clipped by norm it {c_end} (peak gradient before clipping "
            f"{_fmt(clipped['max_norm'])}).")
    return Verdict("exploding", title, status, text)


def gru_vs_lstm(lstm: dict, gru: dict, higher_is_better: bool, metric: str = "accuracy",
                test_size: int | None = None) -> Verdict:
    """Claim: a GRU matches an LSTM with fewer parameters, also on small training sets.

    Each dict: ``params`` and ``metrics`` ({setting: final metric}, e.g. ``"full"``,
    ``"small"``). GRU "matches" when it is no worse than the LSTM by more than the
    tolerance: for an accuracy measured on ``test_size`` examples, two standard errors of the
    difference of two such accuracies (at least :data:`METRIC_TOLERANCE`); otherwise
    :data:`METRIC_TOLERANCE` (absolute for accuracy, relative for a loss)."""
    title = "GRU vs LSTM: parameters and accuracy, small training set included"
    if not lstm or not gru:
        return Verdict("gru", title, NOT_RUN, "needs an LSTM and a GRU run")
    fewer = gru["params"] < lstm["params"]
    saving = 1 - gru["params"] / lstm["params"]
    matches, parts = 0, []
    settings = [s for s in lstm["metrics"] if s in gru["metrics"]]
    for s in settings:
        a, b = lstm["metrics"][s], gru["metrics"][s]
        if higher_is_better:
            tol = METRIC_TOLERANCE
            if test_size and 0 <= a <= 1 and 0 <= b <= 1:
                tol = max(tol, 2 * math.sqrt((a * (1 - a) + b * (1 - b)) / test_size))
            ok = b >= a - tol
        else:
            tol = METRIC_TOLERANCE
            ok = b <= a * (1 + tol) + 1e-12
        matches += int(ok)
        better = "≥" if (b >= a if higher_is_better else b <= a) else "<"
        within = "" if (b >= a if higher_is_better else b <= a) else (
            f", within ±{tol:.3g}" if ok else f", beyond ±{tol:.3g}")
        parts.append(f"{s}: GRU {_fmt(b)} {better} LSTM {_fmt(a)}{within}")
    status = _status(int(fewer) + matches, 1 + len(settings))
    noise = (f"; tolerance: 2 standard errors on {test_size} test examples"
             if test_size and higher_is_better else f"; tolerance {METRIC_TOLERANCE:g}")
    text = (f"GRU has {gru['params']:,} parameters vs LSTM {lstm['params']:,} "
            f"({saving:.0%} fewer); {metric} " + ", ".join(parts) + noise + ".")
    return Verdict("gru", title, status, text)


def bidirectional(uni: dict[str, float], bi: dict[str, float], chance: float) -> Verdict:
    """Claim: a bidirectional layer beats a unidirectional one where the future matters.

    ``uni[cell]``, ``bi[cell]`` = final accuracy. Confirmed when every cell gains at least
    :data:`BIDIRECTIONAL_GAIN` accuracy from the backward direction."""
    title = "bidirectional vs unidirectional where the future matters"
    cells = [c for c in uni if c in bi]
    if not cells:
        return Verdict("bidirectional", title, NOT_RUN, "needs uni- and bidirectional runs")
    good = sum(bi[c] - uni[c] >= BIDIRECTIONAL_GAIN for c in cells)
    status = _status(good, len(cells))
    text = ("accuracy bi vs uni: " + ", ".join(f"{c.upper()} {bi[c]:.3f} vs {uni[c]:.3f}"
                                               for c in cells)
            + f" (chance {chance:.3f}; a win needs +{BIDIRECTIONAL_GAIN:g}).")
    return Verdict("bidirectional", title, status, text)


def sru_speed(times: dict[str, dict[str, float]], engines: dict[str, dict[str, str]] | None = None,
              hidden: int | None = None) -> Verdict:
    """Claim: SRU trains faster than an LSTM of the same size.

    ``times[backend][cell]`` = seconds per training step; ``engines[backend][cell]`` = the
    engine that ran (what ``auto`` chose). Confirmed when SRU is faster on every backend."""
    title = "SRU speed vs LSTM at equal size"
    rows = [(b, t) for b, t in times.items() if "sru" in t and "lstm" in t]
    if not rows:
        return Verdict("speed", title, NOT_RUN, "needs SRU and LSTM timings")
    good, parts = 0, []
    for backend, t in rows:
        ratio = t["lstm"] / t["sru"]
        good += int(ratio >= SPEED_MARGIN)
        names = ""
        if engines and backend in engines:
            e = engines[backend]
            if e.get("sru") != backend or e.get("lstm") != backend:
                names = f" [SRU→{e.get('sru')}, LSTM→{e.get('lstm')}]"
        speed = (f"{ratio:.2f}× faster" if ratio >= SPEED_MARGIN else
                 f"{1 / ratio:.2f}× slower" if ratio <= 1 / SPEED_MARGIN else
                 f"on par, {ratio:.2f}×")
        parts.append(f"{backend}{names}: SRU {t['sru'] * 1e6:,.0f} µs vs LSTM "
                     f"{t['lstm'] * 1e6:,.0f} µs per step (SRU {speed})")
    size = f" (hidden {hidden})" if hidden else ""
    return Verdict("speed", title, _status(good, len(rows)),
                   f"training step{size}: " + "; ".join(parts) + ".")
