"""Engines behind the layer API, chosen per call.

Every backend has ``name``, ``unsupported(layer, batch) -> str | None`` (why it cannot run this
call, or None) and ``run(layer, batch, states) -> (output (T, B, D·H_out), final states)``.
``backend="auto"`` takes the first backend in :data:`AUTO_ORDER` that supports the call; every
backend computes the same function, so the choice changes speed, never the result beyond
float rounding. A new engine (``triton``, ``cpu``) registers itself in :data:`BACKENDS` and
takes its place in :data:`AUTO_ORDER`.
"""

from __future__ import annotations

import torch

from rnnlab.backends import cpu, native, reference, triton

BACKENDS = {"reference": reference, "native": native, "cpu": cpu, "triton": triton}
# triton after native: on CUDA, cuDNN keeps what it can run until the GPU benchmark
# (benchmarks/gpu_layers.py) has measured where the Triton kernels beat it
AUTO_ORDER = ["cpu", "native", "triton", "reference"]
BACKEND_NAMES = ("auto", *BACKENDS)
# engines torch.compile cannot trace (C++ extension calls): "auto" skips them while compiling
NOT_TRACEABLE = {"cpu", "triton"}


def select_backend(layer, batch):
    """The engine for this call: the layer's forced backend, or the first that fits."""
    if layer.backend != "auto":
        engine = BACKENDS[layer.backend]
        if reason := engine.unsupported(layer, batch):
            raise ValueError(f"backend: {layer.backend!r} cannot run this call: {reason}")
        return engine
    compiling = torch.compiler.is_compiling()
    for name in AUTO_ORDER:
        if compiling and name in NOT_TRACEABLE:
            continue
        engine = BACKENDS[name]
        prefer = getattr(engine, "prefer", None)  # an engine may decline where it is slower
        if prefer is not None and not prefer(layer, batch):
            continue
        if engine.unsupported(layer, batch) is None:
            return engine
    raise AssertionError("the reference backend supports every call")
