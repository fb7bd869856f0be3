"""All diagnostics of one model at one moment, as one JSON-able record.

:func:`measure_model` takes a lab :class:`~rnnlab.lab.model.SequenceModel` and its task,
draws a fixed batch, and returns the gradient flow ‖∂L/∂h_k‖ for a loss at the last step,
the spectral radius of each recurrent block, the singular values of the step Jacobians at a
few steps, and the gate statistics over time. ``rnnlab gradflow`` and ``rnnlab compare`` both
call it, at initialisation and after training.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.lab.diagnostics.gates import MEMORY_GATE, gate_statistics, summarise
from rnnlab.lab.diagnostics.gradflow import gradient_flow
from rnnlab.lab.diagnostics.jacobian import jacobian_singular_values
from rnnlab.lab.diagnostics.spectral import CANDIDATE, spectral_radii

DIAGNOSTIC_SEED = 12345  # the batch every measurement reads (not a training or test batch)


def layer_inputs(model, x: Tensor) -> Tensor:
    """What ``model.rnn`` reads for a task batch ``x`` (symbols embedded, time-major)."""
    if hasattr(model, "_inputs"):
        return model._inputs(x)
    return model.embedding(x) if getattr(model, "embedding", None) is not None else x


def last_step_loss(model, task, y: Tensor):
    """A loss that reads only the last output ``y_T`` through the model's head, per sample.

    Real targets: ``L_b = ŷ_b`` (summed over outputs), the prediction itself; for a squared
    error ``∂L/∂h_k = 2(ŷ − y) ∂ŷ/∂h_k``, so the decay over k is the same, without the
    residual's size (small once trained) in the way. Class targets: the per-sample
    cross-entropy of the last step's target.
    """
    target = y
    if task.shape not in ("many-to-one", "one-to-one") and y.dim() >= 2:
        target = y[-1]
    if task.target == "class":
        target = target.clamp_min(0)
        return lambda h: F.cross_entropy(model.head(h), target, reduction="none")
    return lambda h: model.head(h).reshape(h.shape[0], -1).sum(-1)


def jacobian_times(T: int, count: int = 5) -> list[int]:
    """``count`` steps spread over 1 … T."""
    if T <= count:
        return list(range(1, T + 1))
    return sorted({max(1, round(1 + i * (T - 1) / (count - 1))) for i in range(count)})


def measure_model(model, task, *, batch_size: int = 16, jacobian_samples: int = 4,
                  jacobian_steps: int = 5, seed: int = DIAGNOSTIC_SEED,
                  gates: bool = True, float64: bool = True) -> dict:
    """Gradient flow, spectral radii, step-Jacobian singular values and gate statistics of
    ``model.rnn`` on one fixed batch of ``task``. Returns a JSON-able dict:

    ``gradflow`` (:meth:`GradientFlow.to_dict`), ``spectral`` ({gate: radius}),
    ``candidate`` (the candidate block's name) and ``candidate_radius`` (both None for
    minGRU and minLSTM, which have no recurrent matrix), ``jacobian``
    ({t: {"mean": mean singular values over samples (sorted), "max": mean σ_max,
    "min": mean σ_min}}), ``gates`` (per gate: time-averaged ``mean`` and ``saturation``,
    and per-step ``mean_by_step`` / ``saturation_by_step``), ``memory_gate``.

    With ``float64`` (default) a double-precision copy of the model is measured, so that a
    gradient that vanishes by 40 decades or more reads as a number, not as float32's 0.
    """
    if float64:
        model = copy.deepcopy(model).double()
    rnn = model.rnn
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x, y = task.batch("test", batch_size, generator)
            ref = next(model.parameters())
            x, y = x.to(ref.device), y.to(ref.device)
            if x.is_floating_point():
                x = x.to(ref.dtype)
            if y.is_floating_point():
                y = y.to(ref.dtype)
            with torch.no_grad():
                inputs = layer_inputs(model, x)
            flow = gradient_flow(rnn, inputs, last_step_loss(model, task, y))
            T = inputs.shape[0]
            sv = jacobian_singular_values(rnn, inputs[:, :jacobian_samples],
                                          jacobian_times(T, jacobian_steps))
            record = {"gradflow": flow.to_dict(), "seq_len": T}
            radii = spectral_radii(rnn)  # {} without a recurrent matrix (min cells)
            kind = flow.cell
            record.update(spectral=radii, candidate=CANDIDATE[kind],
                          candidate_radius=radii.get(CANDIDATE[kind]))
            record["jacobian"] = {
                str(t): {"mean": s.mean(0).tolist(), "max": float(s[:, 0].mean()),
                         "min": float(s[:, -1].mean())}
                for t, s in sv.items()}
            record["memory_gate"] = MEMORY_GATE[kind]
            if gates and hasattr(rnn, "trace"):
                stats = gate_statistics(rnn, inputs[:, :jacobian_samples])
                summary = summarise(stats)
                record["gates"] = {
                    name: {**summary[name], "mean_by_step": s["mean"],
                           "saturation_by_step": s["saturation"]}
                    for name, s in stats["gates"].items()}
    finally:
        model.train(was_training)
    return record


def headline(record: dict) -> dict:
    """The few numbers a table shows: norms at a few k, decay ratio, radius, σ_max."""
    flow = record["gradflow"]
    curve = flow["norms"][flow["main"]]
    T = flow["seq_len"]
    ks = sorted({0, T // 4, T // 2, (3 * T) // 4, T})
    sigma = [v["max"] for v in record["jacobian"].values()]
    return {"k": ks, "norm_at_k": [curve[k] for k in ks], "decay_ratio": flow["decay_ratio"],
            "orders": flow["orders_of_magnitude"], "radius": record["candidate_radius"],
            "sigma_max": sum(sigma) / len(sigma) if sigma else math.nan}
