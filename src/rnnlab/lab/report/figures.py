"""The report's figures, drawn with matplotlib's headless Agg backend (no display needed).

Each function takes plain numbers (lists and dicts, as the JSON records hold them), writes one
PNG and returns its path.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never open a window, never need a display

import matplotlib.pyplot as plt

CELL_COLORS = {"rnn": "#d62728", "lstm": "#1f77b4", "gru": "#2ca02c", "sru": "#9467bd"}


def _color(label: str, index: int):
    for cell, color in CELL_COLORS.items():
        if label.lower().startswith(cell):
            return color
    return f"C{index % 10}"


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _positive(values):
    """Values for a log axis: non-positive and NaN entries become NaN (gaps)."""
    return [v if v is not None and isinstance(v, (int, float)) and v > 0 and math.isfinite(v)
            else math.nan for v in values]


def gradflow_figure(conditions: list[tuple[str, dict]], path, title: str = "") -> Path:
    """‖∂L/∂h_k‖ against k; step-Jacobian singular values; memory gate over time.
    ``conditions``: ``(label, measure_model record)`` pairs."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for i, (label, rec) in enumerate(conditions):
        flow = rec["gradflow"]
        curve = _positive(flow["norms"][flow["main"]])
        ax.semilogy(range(len(curve)), curve, label=label, color=_color(label, i),
                    linestyle="-" if "init" not in label else "--")
    ax.set_xlabel("step k (the loss reads step T)")
    ax.set_ylabel("‖∂L/∂h_k‖")
    ax.set_title("gradient reaching step k")
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, (label, rec) in enumerate(conditions):
        jac = rec["jacobian"]
        t = sorted(jac, key=int)[len(jac) // 2]
        ax.semilogy(_positive(jac[t]["mean"]), label=f"{label} (t={t})", color=_color(label, i),
                    linestyle="-" if "init" not in label else "--")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xlabel("index (sorted)")
    ax.set_ylabel("singular value of ∂s_t/∂s_{t−1}")
    ax.set_title("step-Jacobian spectrum")
    ax.legend(fontsize=7)
    ax = axes[2]
    drawn = False
    for i, (label, rec) in enumerate(conditions):
        gates = rec.get("gates") or {}
        name = rec.get("memory_gate")
        if name in gates:
            ax.plot(gates[name]["mean_by_step"], label=f"{label}: mean {name}",
                    color=_color(label, i), linestyle="-" if "init" not in label else "--")
            drawn = True
        elif "h" in gates:
            ax.plot(gates["h"]["saturation_by_step"], label=f"{label}: |h| > 0.95",
                    color=_color(label, i), linestyle=":")
            drawn = True
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step t")
    ax.set_title("memory gate mean (RNN: tanh saturation)")
    if drawn:
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def gradflow_cells_figure(curves: dict[str, list[float]], path, title: str = "") -> Path:
    """‖∂L/∂h_k‖ against k, one line per cell (labels ``"lstm (trained)"`` …)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (label, curve) in enumerate(curves.items()):
        style = "--" if "init" in label else ":" if "whole state" in label else "-"
        ax.semilogy(range(len(curve)), _positive(curve), label=label, color=_color(label, i),
                    linestyle=style)
    ax.set_xlabel("step k (the loss reads the last step)")
    ax.set_ylabel("‖∂L/∂h_k‖ (mean over samples)")
    ax.set_title(title or "gradient norm vs time step")
    ax.legend(fontsize=8)
    return _save(fig, path)


def learning_curves(panels: list[dict], path) -> Path:
    """One panel per experiment: test metric against step, one line per run.

    ``panels``: ``{"title", "metric", "chance", "runs": {label: [(step, metric), …]},
    "log": bool}``."""
    n = max(len(panels), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        for i, (label, points) in enumerate(panel["runs"].items()):
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=label, color=_color(label, i), marker=".",
                        linestyle="--" if "bi" in label.split()[-1:] else "-")
        if panel.get("chance") is not None and math.isfinite(panel["chance"]):
            ax.axhline(panel["chance"], color="grey", linestyle=":", label="chance")
        if panel.get("log"):
            ax.set_yscale("log")
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"test {panel['metric']}")
        ax.legend(fontsize=7)
    return _save(fig, path)


def metric_bars(groups: dict[str, dict[str, float]], path, ylabel: str, title: str = "",
                chance: dict[str, float] | None = None, log: bool = False) -> Path:
    """Grouped bars: ``groups[group][label] = value`` (groups on the x axis)."""
    labels = []
    for values in groups.values():
        labels += [k for k in values if k not in labels]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) + 2), 4))
    width = 0.8 / max(len(labels), 1)
    for j, label in enumerate(labels):
        xs = [i + (j - (len(labels) - 1) / 2) * width for i in range(len(groups))]
        ys = [groups[g].get(label, math.nan) for g in groups]
        ax.bar(xs, ys, width=width, label=label, color=_color(label, j))
    if chance:
        for i, g in enumerate(groups):
            if g in chance and chance[g] is not None and math.isfinite(chance[g]):
                ax.hlines(chance[g], i - 0.45, i + 0.45, colors="grey", linestyles=":")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(list(groups), fontsize=8)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def training_trace(runs: dict[str, list[dict]], path, title: str = "") -> Path:
    """Training loss and gradient norm (before clipping) per step, one line per run."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for i, (label, history) in enumerate(runs.items()):
        steps = [h["step"] for h in history]
        color = f"C{i}"
        axes[0].semilogy(steps, _positive([h["loss"] for h in history]), label=label,
                         color=color, linewidth=0.9)
        axes[1].semilogy(steps, _positive([h["grad_norm"] for h in history]), label=label,
                         color=color, linewidth=0.9)
    axes[0].set_ylabel("training loss")
    axes[1].set_ylabel("gradient norm (before clipping)")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def gate_heatmaps(panels: list[dict], path, title: str = "") -> Path:
    """Gate activations over one sample sequence: one heatmap (units × time) per panel.

    ``panels``: ``{"title", "values": [[unit values] per step], "marks": [steps]}``."""
    n = max(len(panels), 1)
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.9 * n + 0.6), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        values = panel["values"]  # T × H
        image = ax.imshow(list(map(list, zip(*values))), aspect="auto", cmap="viridis",
                          vmin=panel.get("vmin", 0.0), vmax=panel.get("vmax", 1.0),
                          interpolation="nearest")
        marks = panel.get("marks", [])
        if marks:  # above the image, so the gate values at the marks stay visible
            ax.plot(marks, [-0.5 - 0.04 * len(values[0])] * len(marks), "v", color="red",
                    markersize=6, clip_on=False)
        ax.set_ylabel("unit", fontsize=8)
        ax.set_title(panel["title"], fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.02)
    axes[-1, 0].set_xlabel("time step (red triangles: marked positions)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
