"""Which of torch's program transforms is running a layer.

rnnlab's engines hide work from autograd: the reference engine's hand-derived backward
(``torch.autograd.Function``) and the compiled kernels of the ``cpu`` and ``triton`` engines.
Some uses need to see every operation: ``torch.func`` transforms (``grad``, ``vmap``,
``jvp``, ``vjp``), forward-mode AD (``torch.autograd.forward_ad``) and ``torch.jit.trace``.
Under them the reference engine runs its autograd twin (:mod:`rnnlab.bptt.unrolled`) and
``backend="auto"`` skips the compiled engines, which refuse the call when forced (as under
``torch.export``; under ``torch.compile`` a forced compiled engine runs outside the graph,
while ``auto`` takes the engines Dynamo traces). Under
``torch.func`` and forward-mode AD ``auto`` also skips the native engine: torch's fused
recurrent ops have no batching rule for ``vmap`` and the LSTM's no forward-mode derivative on
the CPU, while the twin has both.
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


def needing_plain_ops() -> str | None:
    """The running use that must see every operation (:func:`differentiating`, or
    ``torch.jit.trace``), or None."""
    if torch.jit.is_tracing():
        return "torch.jit.trace"
    return differentiating()


def refusing_kernels() -> str | None:
    """The running use under which a compiled engine (``cpu``, ``triton``) cannot run: those
    of :func:`needing_plain_ops`, and ``torch.export``, which needs the whole program as one
    graph and cannot trace into the kernels. None when the kernels may run (under
    ``torch.compile`` they run outside the graph)."""
    if torch.compiler.is_exporting():
        return "torch.export"
    return needing_plain_ops()
