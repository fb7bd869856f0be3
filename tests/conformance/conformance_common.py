"""Shared pieces of the conformance suite (issue 16, "Drop-in means everything").

Every usage a user has with ``torch.nn.RNN/LSTM/GRU`` is checked on every engine
(``backend=``) against what a user would compare it with:

* RNN, LSTM, GRU: the ``torch.nn`` layer loaded with the same ``state_dict``;
* SRU (torch has no SRU): :class:`SRUOracle`, autograd through a Python loop of the cell step
  :func:`rnnlab.cells.sru.sru_step` (:func:`parity.masked_loop`), with the same parameter names,
  so that ``functional_call``, parametrizations and ``state_dict`` apply to it unchanged.

What each (usage, engine) is expected to do lives in :data:`EXPECT` / :func:`expect`; the tests
read it to choose their assertion and ``python tests/conformance/conformance_table.py`` prints
``docs/conformance.md`` from it, so the table says what the tests assert.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from parity import masked_loop, output_tensors
from torch import nn

import rnnlab
from rnnlab.cells.sru import sru_step

T, B, I, H = 5, 3, 4, 6
FAMILIES = ["RNN", "LSTM", "GRU", "SRU"]
TORCH_FAMILIES = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
ENGINES = ["auto", "reference", "native", "cpu", "triton"]
KERNEL_ENGINES = ("cpu", "triton")  # compiled kernels torch's transforms cannot see into

# tolerances: float64 (every engine but triton) as the issue asks, float32 for triton on CUDA
TOL64 = dict(atol=1e-8, rtol=1e-8)
TOL32 = dict(atol=1e-4, rtol=1e-4)
TOL32_SECOND = dict(atol=1e-3, rtol=1e-3)

# ---- what each usage is expected to do on each engine ----------------------------------------
WORKS, CLEAR, AS_TORCH = "works", "clear error", "as torch.nn"

# (key, label in the docs table, the use a kernel engine's NotImplementedError names or None)
USAGES = [
    ("forward_backward", "forward + backward (outputs, input/state/parameter gradients)", None),
    ("double_backward", "double backward (`create_graph=True`, gradient penalty)", None),
    ("compile", "`torch.compile` (inductor, fullgraph, dynamic T, input with/without grad)",
     None),
    ("jit_trace", "`torch.jit.trace` (same and new input)", "torch.jit.trace"),
    ("export", "`torch.export.export` (run the exported program)", "torch.export"),
    ("functional_call", "`torch.func.functional_call` (no transform)", None),
    ("func_grad", "`torch.func.grad` over `functional_call`", "torch.func transforms"),
    ("func_vjp", "`torch.func.vjp`", "torch.func transforms"),
    ("func_jvp", "`torch.func.jvp` (float64)", "torch.func transforms"),
    ("func_jvp_f32", "`torch.func.jvp` (float32)", "torch.func transforms"),
    ("forward_ad", "`torch.autograd.forward_ad` (dual tensors)", "forward-mode AD"),
    ("func_vmap", "`torch.func.vmap`", "torch.func transforms"),
    ("autocast", "AMP `torch.autocast` (CPU bf16; CUDA fp16/bf16): torch.nn's dtypes",
     "torch.autocast"),
    ("flatten_parameters", "`flatten_parameters()`", None),
    ("deepcopy_pickle", "`copy.deepcopy` / `pickle`", None),
    ("meta_to_empty", "meta device, `to_empty()`, `reset_parameters()`", None),
    ("weight_norm", "`parametrizations.weight_norm` on the recurrent weight", None),
    ("spectral_norm", "`parametrizations.spectral_norm` on the recurrent weight", None),
    ("prune", "`prune.l1_unstructured` on the recurrent weight", None),
    ("hooks", "forward hooks, full backward hooks", None),
    ("state_dict", "`state_dict` round trips with torch.nn", None),
    ("replicate", "DataParallel replication (`replicate`; `nn.DataParallel` on CUDA)", None),
]
USE = {key: use for key, _, use in USAGES}

# where native follows torch.nn, errors included (torch.nn raises there in some configurations)
NATIVE_AS_TORCH = {
    "func_vmap": "torch.nn raises `RuntimeError: Batching rule not implemented for "
                 "aten::lstm.input` (`rnn_tanh`, `gru` likewise) for all three families; native "
                 "raises the same",
    "func_jvp_f32": "where torch.nn raises (on the CPU: the LSTM, `NotImplementedError`, no "
                    "forward AD for `mkldnn_rnn_layer`) native raises the same; elsewhere "
                    "(CPU RNN, GRU) works",
}

# cells that are not plain "works" for a family: (usage, engine, family) -> note
NOTES = {
    ("autocast", "cpu", None): "clear error (`NotImplementedError`: torch.autocast) where the "
                               "layer computes in bf16/fp16 (RNN, LSTM, SRU); works for GRU, "
                               "which torch.nn keeps in float32 on the CPU",
    ("compile", "auto", "LSTM"): "works; LSTM on the CPU without fullgraph (its fused op runs "
                                 "outside the graph, as torch.nn.LSTM's)",
    ("compile", "native", "LSTM"): "works; LSTM on the CPU without fullgraph (its fused op "
                                   "runs outside the graph, as torch.nn.LSTM's)",
    ("compile", "cpu", None): "works without fullgraph (the C++ kernels run outside the graph: "
                              "a graph break)",
    ("compile", "triton", None): "works without fullgraph (the Triton kernels run outside the "
                                 "graph: a graph break)",
}


def expect(usage: str, engine: str) -> str:
    """What ``engine`` does for ``usage``: :data:`WORKS`, :data:`CLEAR` (``NotImplementedError``
    naming the use and the engines that support it) or :data:`AS_TORCH` (native: torch.nn's
    result, or torch.nn's error where torch.nn raises)."""
    if usage == "autocast":  # the cpu engine computes in float32/float64 only
        return CLEAR if engine == "cpu" else WORKS
    if engine in KERNEL_ENGINES and USE[usage] is not None:
        return CLEAR
    if engine == "native" and usage in NATIVE_AS_TORCH:
        return AS_TORCH
    return WORKS


def assert_clear_error(info, usage: str, engine: str) -> None:
    """The ``NotImplementedError`` of a kernel engine names the use, the engine and the engines
    that support the use ('auto', 'reference')."""
    message = str(info.value)
    assert info.type is NotImplementedError, f"{info.type.__name__}: {message}"
    for needed in (USE[usage], repr(engine), "'auto'", "'reference'"):
        assert needed in message, f"{needed!r} not named in: {message}"


def assert_same_error(expected: BaseException, actual: BaseException) -> None:
    """``actual`` is torch.nn's error: same type, same message (up to the op's name)."""
    assert type(actual) is type(expected), f"{type(actual).__name__}: {actual} (torch.nn: " \
                                           f"{type(expected).__name__}: {expected})"
    first = lambda e: re.sub(r"aten::\w+(\.\w+)?", "aten::OP", str(e).splitlines()[0])  # noqa
    assert first(actual) == first(expected)


# ---- the SRU's oracle --------------------------------------------------------------------------
class SRUOracle(nn.Module):
    """One-layer, one-direction SRU as autograd through a Python loop of
    :func:`rnnlab.cells.sru.sru_step` (via :func:`parity.masked_loop`, the state being
    ``[h, c]``), with ``rnnlab.SRU``'s parameter names. Returns ``(output, c_n)`` as the layer.
    """

    def __init__(self, layer: rnnlab.SRU):
        super().__init__()
        assert layer.num_layers == 1 and not layer.bidirectional and not layer.batch_first
        self.hidden_size = layer.hidden_size
        for name, p in layer.named_parameters():
            self.register_parameter(name, nn.Parameter(p.detach().clone()))

    def forward(self, x, c0=None):
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
            c0 = None if c0 is None else c0.unsqueeze(1)
        Hs = self.hidden_size
        c = x.new_zeros(x.shape[1], Hs) if c0 is None else c0[0]
        bias = getattr(self, "bias_l0", None)

        def step(x_t, hc):
            h, c_new, _ = sru_step(F.linear(x_t, self.weight_ih_l0), x_t, hc[..., Hs:],
                                   self.weight_c_l0, bias)
            return torch.cat([h, c_new], -1)

        ys, last = masked_loop(step, x, torch.cat([torch.zeros_like(c), c], -1), None)
        out, c_n = ys[..., :Hs], last[..., Hs:].unsqueeze(0)
        if unbatched:
            out, c_n = out.squeeze(1), c_n.squeeze(1)
        return out, c_n


# ---- cases -------------------------------------------------------------------------------------
CASES = [("auto", "cpu"), ("reference", "cpu"), ("native", "cpu"), ("cpu", "cpu"),
         ("triton", "cpu"), ("auto", "cuda"), ("reference", "cuda"), ("native", "cuda"),
         ("triton", "cuda")]
CASE_IDS = [f"{e}-{d}" for e, d in CASES]


def _cpu_engine_unavailable() -> str | None:
    from rnnlab.backends.cpu import _build

    try:
        return _build.error()
    except RuntimeError as exc:  # RNNLAB_REQUIRE_CPU_ENGINE=1: a broken build fails the test
        pytest.fail(str(exc), pytrace=False)


def skip_reason(family: str, engine: str, device: str) -> str | None:
    if engine == "triton" and device == "cpu":
        return "the triton engine runs on CUDA (its CPU interpreter is tests/triton_backend's)"
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    if engine == "triton" and device == "cuda" and importlib_missing("triton"):
        return "triton is not installed"
    if family == "SRU" and engine == "native":
        return "torch has no fused SRU op: SRU(backend='native') is refused " \
               "(test_sru_native_is_refused)"
    if engine == "cpu" and (error := _cpu_engine_unavailable()) is not None:
        if os.environ.get("RNNLAB_REQUIRE_CPU_ENGINE", "") not in ("", "0"):
            pytest.fail(f"the C++ CPU engine is unavailable: {error}", pytrace=False)
        return f"the C++ CPU engine cannot be built here: {error}"
    return None


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


@dataclass
class Case:
    """One family on one engine and device, with the dtype and tolerances the comparison uses."""

    family: str
    engine: str
    device: str

    @property
    def dtype(self):
        return torch.float32 if self.engine == "triton" else torch.float64

    @property
    def tol(self):
        return TOL32 if self.dtype == torch.float32 else TOL64

    @property
    def tol2(self):
        return TOL32_SECOND if self.dtype == torch.float32 else TOL64

    @property
    def kernel(self) -> bool:
        return self.engine in KERNEL_ENGINES

    @property
    def recurrent_weight(self) -> str:
        return "weight_c_l0" if self.family == "SRU" else "weight_hh_l0"

    def make(self, dtype=None, device=None, **kw):
        """``(expected, layer)``: the torch.nn layer (SRU: :class:`SRUOracle`) and the rnnlab
        layer on this engine, with the same weights."""
        dtype, device = dtype or self.dtype, device or self.device
        cls = getattr(rnnlab, self.family)
        if self.family == "SRU":
            layer = cls(I, H, backend=self.engine, dtype=dtype, device=device, **kw)
            return SRUOracle(layer), layer
        expected = TORCH_FAMILIES[self.family](I, H, dtype=dtype, device=device, **kw)
        layer = cls(I, H, backend=self.engine, dtype=dtype, device=device, **kw)
        layer.load_state_dict(expected.state_dict())
        return expected, layer

    def randn(self, *shape, dtype=None, requires_grad=False):
        return torch.randn(*shape, dtype=dtype or self.dtype, device=self.device,
                           requires_grad=requires_grad)

    def states(self, requires_grad=False):
        """An initial state as the family takes it (a tuple for LSTM) and its tensors."""
        n = 2 if self.family == "LSTM" else 1
        leaves = [self.randn(1, B, H, requires_grad=requires_grad) for _ in range(n)]
        return (tuple(leaves) if n == 2 else leaves[0]), leaves

    def join(self, leaves):
        return tuple(leaves) if self.family == "LSTM" else leaves[0]


@contextmanager
def oracle(case):
    """Where torch.nn computes the expected values of a case: on CUDA, for every engine but
    native, without cuDNN (torch's other CUDA path differentiates twice and in forward mode,
    cuDNN's does not); for native with it, the very op native calls."""
    if case.device == "cuda" and case.engine != "native":
        with torch.backends.cudnn.flags(enabled=False, allow_tf32=False):
            yield
    else:
        yield


def expected_or_error(case, compute):
    """``(compute(), None)`` under :func:`oracle`; on the native engine, where torch.nn itself
    raises, ``(None, error)``: native must raise the same (as torch.nn)."""
    try:
        with oracle(case):
            return compute(), None
    except Exception as exc:
        if case.engine != "native":
            raise
        return None, exc


def assert_raises_same(error, call):
    """``call()`` raises torch.nn's ``error`` (:func:`assert_same_error`)."""
    with pytest.raises(Exception) as info:
        call()
    assert_same_error(error, info.value)


def assert_refused(case, usage, call):
    """A kernel engine refuses ``call()`` with the clear error of ``usage``."""
    with pytest.raises(Exception) as info:
        call()
    assert_clear_error(info, usage, case.engine)


def run(module, x, hx=None):
    """``module(x, hx)`` as a flat list [output, *final states]."""
    return output_tensors(module(x) if hx is None else module(x, hx))


def assert_close(actual, expected, tol, what):
    assert len(actual) == len(expected), f"{what}: {len(actual)} vs {len(expected)} tensors"
    for k, (a, e) in enumerate(zip(actual, expected)):
        torch.testing.assert_close(a, e, **tol, msg=lambda m, k=k: f"{what} [{k}]: {m}")
