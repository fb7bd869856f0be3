"""Which of torch's program transforms is running a layer.

rnnlab's engines hide work from autograd: the reference engine's hand-derived backward
(``torch.autograd.Function``, whose loops write into buffers with ``out=``) and the compiled
kernels of the ``cpu`` and ``triton`` engines. Some uses need to see every operation: the
``torch.func`` transforms (``grad``, ``vmap``, ``jvp``, ``vjp``) and forward-mode AD
(:func:`differentiating`), and the tracers ``torch.export`` and ``torch.jit.trace``
(:func:`tracing`). Under them (:func:`needing_plain_ops`):

* the reference engine runs its autograd twin (:mod:`rnnlab.bptt.unrolled`), plain operations
  that autograd differentiates and the tracers record;
* a layer forced onto a compiled engine raises ``NotImplementedError``, and ``auto`` skips
  them;
* under ``torch.func`` and forward-mode AD ``auto`` also skips the native engine: torch's fused
  recurrent ops have no batching rule for ``vmap``, and the CPU LSTM's no forward-mode
  derivative, while the twin has both.

``torch.compile`` is the exception: Dynamo puts the reference engine's Functions into the graph
as single calls (they are marked ``torch.compiler.allow_in_graph``) and AOTAutograd traces their
hand-written forward and backward, which compiles to faster code than the twin's unrolled
autograd graph; ``auto`` skips the compiled engines there, and a forced one runs outside the
graph (a graph break).
"""

from __future__ import annotations

import torch
from torch.autograd import forward_ad


def differentiating() -> str | None:
    """The running ``torch.func`` transform or forward-mode AD, or None."""
    if torch._C._are_functorch_transforms_active():
        return "torch.func transforms (grad, vmap, jvp, vjp)"
    if forward_ad._current_level >= 0:
        return "forward-mode AD"
    return None


def _exporting() -> bool:
    # torch.compiler.is_exporting is newer than torch 2.6, where an export counts as a compile
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return is_exporting is not None and is_exporting()


def tracing() -> str | None:
    """The running tracer (``torch.export``, ``torch.compile``, ``torch.jit.trace``), or None."""
    if _exporting():
        return "torch.export"
    if torch.compiler.is_compiling():
        return "torch.compile"
    if torch.jit.is_tracing():
        return "torch.jit.trace"
    return None


def needing_plain_ops() -> str | None:
    """The running use that must see every operation: :func:`differentiating` or
    :func:`tracing` but ``torch.compile``; or None."""
    use = differentiating() or tracing()
    return None if use == "torch.compile" else use
