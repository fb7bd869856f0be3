"""The ``cpu`` engine: fused C++ forward and hand-derived BPTT for the CPU.

Per layer and direction, the input projection of all steps is one GEMM; a C++ time loop then
does the recurrent GEMM of each step and the point-wise cell in one vectorised pass over the
gate buffer, writing gates and states once for the backward. The backward runs the recurrent
chain in C++ and forms the weight gradients as GEMMs over all steps at once. Sources in
``csrc/``, compiled at first use (see :mod:`rnnlab.backends.cpu._build`), on every torch the
package declares (CI builds it on the oldest and on 2.13).

Environment (details in :mod:`rnnlab.backends.cpu._build`): ``RNNLAB_CPU_ENGINE=0`` switches
the engine off; ``RNNLAB_REQUIRE_CPU_ENGINE=1`` makes a failed build an error (``RuntimeError``
with the compiler's output) instead of a warning and a fallback, as CI runs;
``RNNLAB_CPU_ENGINE_VERBOSE=1`` shows the compiler's output; ``RNNLAB_CPU_GEMM=aten|packed``
picks the GEMMs for comparisons.

``backend="auto"`` picks this engine before ``native`` where :func:`prefer` says so: the
configurations where ``benchmarks/cpu_engine.py`` measured it faster (see
``benchmarks/results/cpu_engine.md``), and every configuration ``native`` cannot run.
"""

from __future__ import annotations

import torch

from rnnlab.backends.cpu import _build
from rnnlab.layers.stack import run_stacked

name = "cpu"

_DTYPES = (torch.float32, torch.float64)


_FAMILIES = ("LSTM", "GRU", "RNN", "SRU")


def _family_module(layer):
    """The family's module (:mod:`rnnlab.backends.cpu.lstm` …), or None."""
    if layer.family not in _FAMILIES:
        return None
    import importlib

    return importlib.import_module(f"rnnlab.backends.cpu.{layer.family.lower()}")


def _options_unsupported(layer) -> str | None:
    module = _family_module(layer)
    if module is None:
        return f"the cpu engine has no {layer.family} kernel"
    return module.unsupported(layer)


def unsupported(layer, batch) -> str | None:
    """Why the cpu engine cannot run this call (device, dtype, configuration, or no compiler), or None."""
    x = batch.x
    if x.device.type != "cpu":
        return f"the cpu engine runs on the CPU, the input is on {x.device}"
    if x.dtype not in _DTYPES:
        return f"the cpu engine computes in float32 or float64, not {x.dtype}"
    # the parameters share a dtype and device (validate), cast under autocast (cell_params)
    p = layer.cell_params(0, 0)["weight_ih"]
    if p.device.type != "cpu" or p.dtype != x.dtype:
        return (f"the cpu engine needs the parameters on the CPU in {x.dtype}, found "
                f"{p.dtype} on {p.device}")
    if reason := _options_unsupported(layer):
        return reason
    if (error := _build.error()) is not None:
        return f"the C++ engine is unavailable: {error}"
    return None


def _grad_needed(layer, batch) -> bool:
    if not torch.is_grad_enabled():
        return False
    return batch.x.requires_grad or any(p.requires_grad for p in layer.weights())


def prefer(layer, batch) -> bool:
    """Whether ``backend="auto"`` should try this engine before ``native`` for this call: the
    rule ``benchmarks/cpu_engine.py`` measured (``benchmarks/results/cpu_engine.md``).

    Faster than torch's op in training for every family and size measured, and in inference
    for GRU, RNN and small LSTMs; an LSTM's inference at B·H ≥ 16·256 is GEMM-bound for both
    engines (within noise of each other), so it stays with oneDNN there. Configurations
    ``native`` cannot run (SRU, peepholes, activations, regularisers, …) always come here.
    """
    if layer.native_unsupported() is not None or layer.reference_only_reason() is not None:
        return True
    if layer.family == "LSTM" and not layer.proj_size and not _grad_needed(layer, batch):
        return batch.x.shape[1] * layer.hidden_size < 16 * 256
    return True


def run(layer, batch, states):
    """Run the layer on rnnlab's C++ engine: ``(output (T, B, D·H_out), final states)``."""
    module = _family_module(layer)
    return run_stacked(layer, batch, states, getattr(module, module.__name__.rsplit(".", 1)[1]
                                                     + "_sequence")(layer))
