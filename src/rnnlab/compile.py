"""rnnlab under :func:`torch.compile`.

* The **native** backend (torch's fused ``_VF`` ops) compiles with ``fullgraph=True``: no
  graph breaks, but for the CPU LSTM's op, which runs outside the graph as in
  :class:`torch.nn.LSTM` (:mod:`rnnlab.backends.native`). ``backend="auto"`` skips the C++
  ``cpu`` engine while compiling (its extension calls cannot be traced, see
  ``rnnlab.backends.KERNEL_ENGINES``) and so takes ``native`` for every configuration
  ``torch.nn`` has.
* The **reference** backend runs each layer and direction through a hand-written
  :class:`torch.autograd.Function` (``rnnlab.bptt``) whose forward and backward loop over time
  in Python and write into preallocated buffers with ``out=``. Dynamo tries to trace inside
  the Function, meets an ``out=`` into a non-contiguous slice ("Attempted to call op with
  non-contiguous `out=` tensor"), and breaks the graph there: the Function then runs eagerly,
  with the right result and gradients, but ``fullgraph=True`` fails and compiling takes long
  (dynamo first traces the loop, then gives up). Only the plain RNN's Function traces.
* :func:`allow_in_graph` marks those Functions as opaque calls for Dynamo: then the
  reference backend also compiles with ``fullgraph=True``, and with ``backend="eager"`` the
  hand-written forward and backward run as they are (fast to compile). Backends that trace
  further (``aot_eager``, ``inductor``) still trace through the Function's time loop, which
  unrolls it: correct, slow to compile for long sequences.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import torch

_ALLOWED: list[type] = []


def autograd_functions() -> list[type[torch.autograd.Function]]:
    """The hand-written autograd Functions of the reference backend (``rnnlab.bptt``)."""
    from rnnlab import bptt

    found = []
    for info in pkgutil.iter_modules(bptt.__path__):
        module = importlib.import_module(f"rnnlab.bptt.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, torch.autograd.Function) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def allow_in_graph() -> list[type[torch.autograd.Function]]:
    """Let ``torch.compile(..., fullgraph=True)`` take the reference backend: Dynamo writes
    each of :func:`autograd_functions` into the graph as one call instead of tracing its
    Python loop. Process-wide and idempotent; returns the Functions marked."""
    for fn in autograd_functions():
        if fn not in _ALLOWED:
            torch.compiler.allow_in_graph(fn)
            _ALLOWED.append(fn)
    return list(_ALLOWED)
