"""Engines behind the layer API, chosen per call.

Every backend has ``name``, ``unsupported(layer, batch) -> str | None`` (why it cannot run this
call, or None) and ``run(layer, batch, states) -> (output (T, B, D·H_out), final states)``.
``backend="auto"`` takes the first backend in :data:`AUTO_ORDER` that supports the call (an
engine's ``prefer(layer, batch)``, where it has one, may decline a call it measured slower on);
on CUDA, where the committed crossover table has measured the call's configuration, it takes
the fastest engine measured there that can run the call, within 5 % preferring the earlier in
:data:`AUTO_ORDER` (:mod:`rnnlab.backends.crossover`). Every backend computes the same
function, so the choice changes speed, never the result beyond float rounding. A new engine
(``triton``, ``cpu``) registers itself in :data:`BACKENDS` and takes its place in
:data:`AUTO_ORDER`.

The compiled engines (:data:`KERNEL_ENGINES`) are opaque to torch's transforms. Under
``torch.compile``, ``torch.export``, ``torch.func``, forward-mode AD and ``torch.jit.trace``
``auto`` skips them; a layer forced onto one runs it outside the compiled graph under
``torch.compile`` (a graph break) and raises ``NotImplementedError`` naming the use and the
engines that support it under the others (:func:`rnnlab.transforms.needing_plain_ops`). Under
``torch.func`` and forward-mode AD ``auto`` takes the reference engine's autograd twin.
"""

from __future__ import annotations

import torch

from rnnlab.backends import cpu, crossover, native, reference, triton
from rnnlab.transforms import differentiating, needing_plain_ops, tracing

BACKENDS = {"reference": reference, "native": native, "cpu": cpu, "triton": triton}
# triton after native: on CUDA, cuDNN keeps what it can run except where the crossover table
# (benchmarks/gpu_check.sh → crossover_cuda.json) measured the Triton kernels faster
AUTO_ORDER = ["cpu", "native", "triton", "reference"]
BACKEND_NAMES = ("auto", *BACKENDS)
# engines whose kernels torch's transforms cannot see into (C++ extension, Triton launches)
KERNEL_ENGINES = {"cpu", "triton"}


def select_backend(layer, batch):
    """The engine for this call: the layer's forced backend; or on CUDA the fastest the crossover
    table measured among those that can run it; else the first in :data:`AUTO_ORDER` that fits."""
    if layer.backend != "auto":
        if layer.backend in KERNEL_ENGINES and (transform := needing_plain_ops()) is not None:
            raise NotImplementedError(
                f"backend: {transform} cannot see into the {layer.backend!r} engine's kernels; "
                "backend='auto', 'reference' or 'native' (where torch.nn runs the layer) "
                "support it")
        engine = BACKENDS[layer.backend]
        if (reason := engine.unsupported(layer, batch)) and layer._compute_dtype is not None:
            raise NotImplementedError(
                f"backend: {layer.backend!r} cannot run under torch.autocast ({reason}); "
                "backend='auto' or 'reference' support it")
        if reason:
            raise ValueError(f"backend: {layer.backend!r} cannot run this call: {reason}")
        return engine
    differentiated = differentiating()
    skip = set()
    if differentiated or tracing():
        skip = KERNEL_ENGINES | ({"native"} if differentiated else set())
    candidates = [name for name in AUTO_ORDER if name not in skip]
    if batch.x.device.type == "cuda":
        measured = crossover.measured_choice(
            layer, batch, candidates, lambda name: BACKENDS[name].unsupported(layer, batch) is None)
        if measured is not None:
            return BACKENDS[measured]
    for name in candidates:
        engine = BACKENDS[name]
        prefer = getattr(engine, "prefer", None)  # an engine may decline where it is slower
        if prefer is not None and not prefer(layer, batch):
            continue
        if engine.unsupported(layer, batch) is None:
            return engine
    raise AssertionError("the reference backend supports every call")


@torch.compiler.disable
def _run_outside_graph(engine, layer, batch, states):
    return engine.run(layer, batch, states)


def run(engine, layer, batch, states):
    """``engine.run(layer, batch, states)``; a compiled engine under ``torch.compile`` runs
    outside the graph (Dynamo cannot trace into its kernels)."""
    if engine.name in KERNEL_ENGINES and tracing() == "torch.compile":
        return _run_outside_graph(engine, layer, batch, states)
    return engine.run(layer, batch, states)
