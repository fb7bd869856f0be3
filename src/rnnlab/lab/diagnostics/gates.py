"""Gate statistics over time, from a layer's ``.trace()``.

Saturation: the fraction of units (over the batch) whose sigmoid gate is below 0.05 or above
0.95 — a saturated gate passes almost no gradient through its own derivative σ(1 − σ), and
for tanh activations (LSTM's ``g``, GRU's ``n``, a tanh RNN's ``h``) |value| > 0.95. The memory
gate is the one that decides how much of the old state survives a step: LSTM's forget gate
``f``, GRU's update gate ``z`` (torch: ``h_t = (1 − z)∘n + z∘h_{t−1}``), SRU's ``f``; its mean
over time near 1 means long memory.

minGRU's ``z`` and minLSTM's ``f, i`` (normalised, ``f + i = 1``) are sigmoid gates that read
only the input; their candidate ``g(x)`` is not a tanh (no saturation to report). minLSTM's
memory gate is ``f``; minGRU's ``z`` is its update gate, the *written* fraction
(``h_t = (1 − z)∘h_{t−1} + z∘h̃_t``): there, near 0 means long memory.
"""

from __future__ import annotations

from torch import Tensor

from rnnlab.lab.diagnostics.state import cell_kind

SIGMOID_GATES = {"lstm": ("i", "f", "o"), "gru": ("r", "z"), "sru": ("f", "r"), "rnn": (),
                 "mingru": ("z",), "minlstm": ("f", "i")}
TANH_VALUES = {"lstm": ("g",), "gru": ("n",), "sru": (), "rnn": ("h",), "mingru": (),
               "minlstm": ()}
MEMORY_GATE = {"lstm": "f", "gru": "z", "sru": "f", "rnn": None, "mingru": "z",
               "minlstm": "f"}


def saturation(values: Tensor, kind: str = "sigmoid", low: float = 0.05,
               high: float = 0.95) -> Tensor:
    """Fraction saturated per step of a (T, B, H) tensor → (T,)."""
    if kind == "sigmoid":
        sat = (values < low) | (values > high)
    else:
        sat = values.abs() > high
    return sat.float().mean(dim=(1, 2))


def gate_statistics(layer, x: Tensor, hx=None, *, layer_index: int = 0, direction: int = 0,
                    low: float = 0.05, high: float = 0.95) -> dict:
    """Per-step statistics of one layer and direction's gates on input ``x``.

    Returns ``{"cell", "gates": {name: {"mean": [T], "saturation": [T]}}, "memory_gate",
    "trace": the raw trace dict}``; ``mean`` is over batch and units.
    """
    kind = cell_kind(layer)
    D = 2 if layer.bidirectional else 1
    was_training = layer.training
    layer.eval()
    try:
        traces = layer.trace(x, hx)
    finally:
        layer.train(was_training)
    trace = traces[layer_index * D + direction]
    stats = {}
    names = SIGMOID_GATES[kind] + TANH_VALUES[kind]
    if not any(name in trace for name in names) and "h" in trace:
        names = ("h",)  # a trace without the gates: report the state alone
    for name in names:
        if name not in trace:
            continue
        v = trace[name]
        form = "sigmoid" if name in SIGMOID_GATES[kind] else "tanh"  # h: tanh-bounded or not
        stats[name] = {"kind": form, "mean": v.mean(dim=(1, 2)).tolist(),
                       "saturation": saturation(v, form, low, high).tolist()}
    return {"cell": kind, "gates": stats, "memory_gate": MEMORY_GATE[kind], "trace": trace}


def summarise(stats: dict) -> dict[str, dict[str, float]]:
    """Time-averaged mean and saturation per gate."""
    out = {}
    for name, s in stats["gates"].items():
        T = max(len(s["mean"]), 1)
        out[name] = {"mean": sum(s["mean"]) / T, "saturation": sum(s["saturation"]) / T}
    return out
