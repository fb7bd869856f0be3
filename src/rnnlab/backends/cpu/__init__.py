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

import importlib

import torch

from rnnlab.backends.cpu import _build
from rnnlab.layers.stack import run_stacked

name = "cpu"

_DTYPES = (torch.float32, torch.float64)
_FAMILIES = ("LSTM", "GRU", "RNN", "SRU")


def _options_unsupported(layer) -> str | None:
    """The engine computes every option of its families (activations, regularisers, layer
    norm, peepholes, …); only other families are refused."""
    if layer.family not in _FAMILIES:
        return f"the cpu engine has no {layer.family} kernel"
    return None


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


def _onednn_lstm_faster(isa: str, training: bool, B: int, H: int) -> bool:
    """Where torch's oneDNN LSTM op measured faster than this engine (``benchmarks/cpu_engine.py``
    on 2 cores): on AVX-512 (``benchmarks/results/cpu_engine_avx512.md``) training from
    B·H = 16·128 on, except at B ≥ 64, and inference above B·H = 16·128 (at 16·128 the two
    measured within ±6 % of each other, this engine's worst case the smaller: 3 % slower
    there, ``variants_cpu.md``); on AVX2 (``cpu_engine.md``, and for unmeasured ISAs)
    inference from B·H = 16·256 on. Elsewhere the two are on par or this engine is faster."""
    if isa == "AVX512":
        return B < 64 and B * H >= 16 * 128 if training else B * H > 16 * 128
    return not training and B * H >= 16 * 256


def prefer(layer, batch) -> bool:
    """Whether ``backend="auto"`` should try this engine before ``native`` for this call: the
    rule ``benchmarks/cpu_engine.py`` measured.

    Faster than torch's op for every GRU, RNN and SRU measured, and for the configurations
    ``native`` cannot run (peepholes, layer norm, activations, regularisers, …), which always
    come here. For a plain LSTM it depends on the machine's vector ISA, the mode and B·H
    (:func:`_onednn_lstm_faster`).
    """
    if layer.native_unsupported() is not None or layer.torch_op_lacks() is not None:
        return True
    if layer.family != "LSTM" or layer.proj_size:
        return True
    return not _onednn_lstm_faster(torch.backends.cpu.get_cpu_capability(),
                                   layer.records_grad(batch.x), batch.x.shape[1],
                                   layer.hidden_size)


def run(layer, batch, states):
    """Run the layer on rnnlab's C++ engine: ``(output (T, B, D·H_out), final states)``."""
    family = layer.family.lower()  # its Functions: rnnlab.backends.cpu.<family>
    module = importlib.import_module(f"rnnlab.backends.cpu.{family}")
    return run_stacked(layer, batch, states, getattr(module, f"{family}_sequence")(layer))
