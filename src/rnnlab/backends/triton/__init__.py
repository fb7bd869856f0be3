"""The ``triton`` engine: fused Triton kernels of the recurrence, forward and BPTT, for GPUs.

Per layer and direction the input projection of all steps is one GEMM (cuBLAS through torch).
A Triton kernel then runs the whole time loop: each program owns a tile of sequences for all
T steps, fuses the recurrent product with the point-wise cell and writes the gates and states
once for the backward (see :mod:`rnnlab.backends.triton.kernels_common`). The backward kernel
runs the recurrent chain with ``W_hhᵀ``; the weight gradients are GEMMs over all steps.
Kernels compute in float32 and read float32, float16 or bfloat16 weights. Precision follows
torch.nn's rule for its cuDNN RNNs: the float32 recurrent products run in TF32 exactly when
``torch.backends.cudnn.allow_tf32`` is true (the default; ``torch.backends.cudnn.rnn.fp32_precision``
where torch sets it per operator), in IEEE float32 otherwise; float16 and bfloat16 products run
on the tensor cores and accumulate in float32 (:func:`rnnlab.backends.triton.launch.precision`).
The GEMMs around the loop are torch matmuls and follow torch's matmul setting
(``torch.backends.cuda.matmul.allow_tf32``, False by default).

Covered: LSTM (with peepholes, cell clipping, coupled gates, ``proj_size``, layer norm),
GRU (both reset forms, layer norm), RNN (tanh, ReLU) and SRU, stacked, bidirectional, with
variable lengths; any gate, candidate and output activations of :mod:`rnnlab.activations`
(``tl.constexpr`` choices of each family's kernel), and the regularisers of
:mod:`rnnlab.regularisers` (recurrent dropout, zoneout and its eval-mode expectation, weight
dropout) with the masks the layer draws, so equal generators give the reference engine's
result. ``backend="auto"`` keeps torch's fused op (cuDNN) first where it applies, except where
the crossover table measured this engine more than 5 % faster (:mod:`rnnlab.backends.crossover`),
and uses this engine on CUDA for what cuDNN cannot run (SRU, the LSTM variants, GRU with
``reset_after=False``, layer norm, activations, regularisers). The layer norms reduce over a
whole row each step: their kernels add sub-steps in which a tile's programs share partial row
statistics (see :mod:`rnnlab.backends.triton.layernorm_lstm_kernels`).
On the CPU the engine runs only when forced and only under the Triton interpreter
(``TRITON_INTERPRET=1``), which is how the tests check it without a GPU.

On CUDA each tile's hidden units are split over as many programs as the GPU has
multiprocessors for it, synchronised by a grid barrier, one per step (the LSTM, RNN and
reset-after GRU backward included; see :func:`rnnlab.backends.triton.launch.column_programs`); the projected
LSTM takes two per step, forward and backward (the projection and the recurrent product each
read the whole of the other's result). Where each program then owns one block of hidden units
and its slices of ``W_hh`` fit in its shared memory, the LSTM (unprojected), GRU and RNN
kernels, the layer-normalised ones included, keep those slices on chip for all T steps instead of
reading them from memory every step (*resident* weights; the rule is
:func:`rnnlab.backends.triton.launch.schedule`'s, set from the offline compile in
``benchmarks/results/kernel_resources_sm90.md``). Environment:
``RNNLAB_TRITON_COLUMN_PROGRAMS=n`` asks for ``n`` programs per tile instead (1 under the
interpreter by default); ``RNNLAB_TRITON_SYNC=launch`` synchronises them with one launch per
sub-step; ``RNNLAB_TRITON_RESIDENT=0`` streams the weights everywhere, ``=1`` keeps them
resident (under the interpreter too) and raises an error saying why where that cannot apply
(the projected LSTM, or slices over the on-chip budget).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

from rnnlab.layers.stack import run_stacked

name = "triton"

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_FAMILIES = ("LSTM", "GRU", "RNN", "SRU")


@functools.cache
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _family_module(layer):
    """The family's module (:mod:`rnnlab.backends.triton.lstm` …)."""
    import importlib

    return importlib.import_module(f"rnnlab.backends.triton.{layer.family.lower()}")


def _options_unsupported(layer) -> str | None:
    if layer.family not in _FAMILIES:
        return f"the triton engine has no {layer.family} kernel"
    return _family_module(layer).unsupported(layer)


def unsupported(layer, batch) -> str | None:
    """Why the triton engine cannot run this call (no Triton, device, dtype, or a configuration its kernels lack), or None."""
    x = batch.x
    if not _triton_installed():
        return "Triton is not installed (pip install triton)"
    if x.device.type != "cuda" and not _interpreting():
        return (f"the triton engine runs on CUDA GPUs (or on the CPU under TRITON_INTERPRET=1), "
                f"the input is on {x.device}")
    if x.dtype not in _DTYPES:
        return f"the triton engine computes float32, float16 or bfloat16, not {x.dtype}"
    # the parameters share a dtype and device (validate), cast under autocast (cell_params)
    p = layer.cell_params(0, 0)["weight_ih"]
    if p.device != x.device or p.dtype != x.dtype:
        return (f"the triton engine needs the parameters on {x.device} in {x.dtype}, found "
                f"{p.dtype} on {p.device}")
    return _options_unsupported(layer)


def prefer(layer, batch) -> bool:
    """``backend="auto"`` considers this engine on CUDA only (never the interpreter)."""
    return batch.x.device.type == "cuda"


def run(layer, batch, states):
    """Run the layer on rnnlab's Triton kernels: ``(output (T, B, D·H_out), final states)``."""
    return run_stacked(layer, batch, states,
                       getattr(_family_module(layer), layer.family.lower() + "_sequence")(layer))
