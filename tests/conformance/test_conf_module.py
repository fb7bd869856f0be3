"""Conformance, the module's life: autocast, flatten_parameters, copies, the meta device,
parametrizations and pruning, hooks, state_dict and data-parallel replication, each against
torch.nn doing the same (SRU: the autograd oracle), on every engine."""

from __future__ import annotations

import copy
import io
import pickle
import sys
import warnings

import pytest
import torch
import torch.nn.utils.prune  # noqa: F401  (torch.nn.utils.prune is not imported by torch)
from conformance_common import (
    CLEAR,
    TORCH_FAMILIES,
    B,
    H,
    I,
    SRUOracle,
    T,
    assert_clear_error,
    assert_close,
    expect,
    run,
)
from parity import loss_of, output_tensors
from torch import nn

import rnnlab

EXACT = dict(atol=0, rtol=0)


def param_grads(module, x, hx=None):
    out = run(module, x, hx)
    return out, list(torch.autograd.grad(loss_of(out), list(module.parameters())))


# ---- autocast -----------------------------------------------------------------------------------
def amp_dtypes(device):
    return [torch.bfloat16] if device == "cpu" else [torch.float16, torch.bfloat16]


def amp_tol(amp):
    return dict(atol=3e-2, rtol=3e-2) if amp == torch.bfloat16 else dict(atol=1e-2, rtol=1e-2)


def test_autocast(case):
    """Under torch.autocast the outputs have torch.nn's dtypes for the same family and device
    (measured here, not assumed: the CPU GRU keeps float32, the others take the autocast
    dtype), values close to torch.nn's at the autocast dtype's tolerance, and the float32
    parameters get float32 gradients close to torch.nn's. SRU: the dtype rule of families torch
    lacks (the autocast dtype), against the oracle run in that dtype. The forced cpu engine
    (float32/float64 kernels) refuses a call torch.nn computes in bf16/fp16 with a clear
    error."""
    expected, layer = case.make(dtype=torch.float32)
    x = case.randn(T, B, I, dtype=torch.float32)
    for amp in amp_dtypes(case.device):
        if case.family == "SRU":
            oracle = copy.deepcopy(expected).to(amp)
            out_e = run(oracle, x.to(amp))
            g_e = torch.autograd.grad(loss_of([t.float() for t in out_e]),
                                      list(oracle.parameters()))
            g_e = [g.float() for g in g_e]
        else:
            with torch.autocast(case.device, dtype=amp):
                out_e = run(expected, x)
            g_e = torch.autograd.grad(loss_of([t.float() for t in out_e]),
                                      list(expected.parameters()))
        if expect("autocast", case.engine) == CLEAR and out_e[0].dtype == amp:
            with pytest.raises(Exception) as info, torch.autocast(case.device, dtype=amp):
                run(layer, x)
            assert_clear_error(info, "autocast", case.engine)
            continue
        with torch.autocast(case.device, dtype=amp):
            out_a = run(layer, x)
        g_a = torch.autograd.grad(loss_of([t.float() for t in out_a]), list(layer.parameters()))
        assert [t.dtype for t in out_a] == [t.dtype for t in out_e], \
            f"{amp}: rnnlab {[t.dtype for t in out_a]}, expected {[t.dtype for t in out_e]}"
        assert_close([t.float() for t in out_a], [t.float() for t in out_e], amp_tol(amp),
                     f"outputs under autocast({amp})")
        assert [g.dtype for g in g_a] == [p.dtype for p in layer.parameters()]
        for name, a, e in zip([n for n, _ in layer.named_parameters()], g_a, g_e):
            scale = e.abs().max().item() + 1e-3
            torch.testing.assert_close(a, e, atol=5e-2 * scale, rtol=5e-2,
                                       msg=lambda m, n=name, d=amp: f"grad {n} under {d}: {m}")


# ---- flatten_parameters --------------------------------------------------------------------------
def test_flatten_parameters(case):
    """Exists, returns None (as torch.nn's), keeps the same Parameter objects (an optimizer
    built before still trains the layer) and leaves the results unchanged; afterwards no
    'not part of single contiguous chunk' warning."""
    expected, layer = case.make()
    x = case.randn(T, B, I)
    before = run(layer, x)
    params = list(layer.parameters())
    assert layer.flatten_parameters() is None
    if isinstance(expected, nn.RNNBase):
        assert expected.flatten_parameters() is None
    assert all(a is b for a, b in zip(layer.parameters(), params, strict=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        after = run(layer, x)
    assert not [w for w in caught if "contiguous chunk" in str(w.message)], \
        [str(w.message) for w in caught]
    assert_close(after, before, EXACT, "outputs after flatten_parameters")
    assert_close(after, run(expected, x), case.tol, "outputs against torch.nn")


# ---- copies -------------------------------------------------------------------------------------
def test_deepcopy_pickle(case):
    """copy.deepcopy and a pickle round trip: same engine, same function and gradients as
    torch.nn, and parameters of their own (changing the copy leaves the original)."""
    expected, layer = case.make()
    x = case.randn(T, B, I)
    out_e, g_e = param_grads(expected, x)
    for how, clone in (("deepcopy", copy.deepcopy(layer)),
                       ("pickle", pickle.loads(pickle.dumps(layer)))):
        assert type(clone) is type(layer) and clone.backend == layer.backend
        out_a, g_a = param_grads(clone, x)
        assert_close(out_a, out_e, case.tol, f"{how}: outputs")
        assert_close(g_a, g_e, case.tol, f"{how}: parameter gradients")
        with torch.no_grad():
            for p in clone.parameters():
                p.add_(1.0)
        assert_close(run(layer, x), out_e, case.tol, f"{how}: the original after changing it")


# ---- the meta device ----------------------------------------------------------------------------
def test_meta_to_empty(case):
    """Built on the meta device, materialised with to_empty(), initialised with
    reset_parameters() under a seed: torch.nn's default initialisation (the same draws in the
    same order, so equal weights), then a forward and backward as torch.nn's."""
    cls = getattr(rnnlab, case.family)
    layer = cls(I, H, backend=case.engine, dtype=case.dtype, device="meta")
    assert all(p.is_meta for p in layer.parameters())
    layer.to_empty(device=case.device)
    torch.manual_seed(5)
    layer.reset_parameters()
    if case.family == "SRU":
        bound = 1 / H ** 0.5
        for name, p in layer.named_parameters():
            assert p.device.type == case.device and p.abs().max() <= bound, name
            assert p.unique().numel() == p.numel(), f"{name}: not a random draw"
        expected = SRUOracle(layer)
    else:
        expected = TORCH_FAMILIES[case.family](I, H, dtype=case.dtype, device="meta")
        expected.to_empty(device=case.device)
        torch.manual_seed(5)
        expected.reset_parameters()
        assert list(layer.state_dict()) == list(expected.state_dict())
        assert_close(list(layer.state_dict().values()), list(expected.state_dict().values()),
                     EXACT, "weights after reset_parameters")
    x = case.randn(T, B, I)
    out_e, g_e = param_grads(expected, x)
    out_a, g_a = param_grads(layer, x)
    assert_close(out_a, out_e, case.tol, "outputs")
    assert_close(g_a, g_e, case.tol, "parameter gradients")


# ---- parametrizations and pruning on the recurrent weight ---------------------------------------
def assert_same_under(case, apply):
    """``apply(module, weight_name)`` on torch.nn and on the layer (same seed); then outputs and
    the gradients of every parameter (the parametrization's originals included) agree."""
    expected, layer = case.make()
    for module in (expected, layer):
        torch.manual_seed(7)
        apply(module, case.recurrent_weight)
    names_e = [n for n, _ in expected.named_parameters()]
    assert [n for n, _ in layer.named_parameters()] == names_e
    x = case.randn(T, B, I, requires_grad=True)
    hx, leaves = case.states(requires_grad=True)
    results = []
    for module in (expected, layer):
        # one evaluation of the parametrization per call (torch.nn's RNNBase reads its weights
        # more than once per forward, and spectral_norm steps its power iteration at each)
        with nn.utils.parametrize.cached():
            out = run(module, x, hx)
            results.append((out, torch.autograd.grad(loss_of(out),
                                                     [x, *leaves, *module.parameters()])))
    assert_close(results[1][0], results[0][0], case.tol, "outputs")
    assert_close(results[1][1], results[0][1], case.tol,
                 f"gradients (input, states, {', '.join(names_e)})")
    return expected, layer


def test_weight_norm(case):
    assert_same_under(case, nn.utils.parametrizations.weight_norm)


def test_spectral_norm(case):
    assert_same_under(case, nn.utils.parametrizations.spectral_norm)


def test_prune(case):
    _, layer = assert_same_under(
        case, lambda m, name: nn.utils.prune.l1_unstructured(m, name, amount=0.3))
    weight = getattr(layer, case.recurrent_weight)
    assert (weight == 0).sum() == round(0.3 * weight.numel())


# ---- hooks ---------------------------------------------------------------------------------------
def clone_all(ts):
    return [None if t is None else t.detach().clone() for t in ts]


def test_hooks(case):
    """Forward pre-hooks, forward hooks and full backward hooks fire once each, with the same
    arguments, outputs, grad_input and grad_output (None where torch.nn's is None) as torch.nn's;
    a forward hook's return value replaces the output."""
    expected, layer = case.make()
    x = case.randn(T, B, I, requires_grad=True)
    hx, _ = case.states(requires_grad=True)
    seen = []
    for module in (expected, layer):
        record = {"pre": [], "forward": [], "backward": []}
        module.register_forward_pre_hook(
            lambda m, args, r=record: r["pre"].append([type(a).__name__ for a in args]))
        module.register_forward_hook(
            lambda m, args, out, r=record: r["forward"].append(clone_all(output_tensors(out))))
        module.register_full_backward_hook(
            lambda m, gi, go, r=record: r["backward"].append((clone_all(gi), clone_all(go))))
        loss_of(run(module, x, hx)).backward()
        seen.append(record)
    e, a = seen
    assert a["pre"] == e["pre"] and len(a["forward"]) == 1 and len(a["backward"]) == 1
    assert_close(a["forward"][0], e["forward"][0], case.tol, "forward hook outputs")
    for what, k in (("grad_input", 0), ("grad_output", 1)):
        ga, ge = a["backward"][0][k], e["backward"][0][k]
        assert [g is None for g in ga] == [g is None for g in ge], f"{what}: None pattern"
        assert_close([g for g in ga if g is not None], [g for g in ge if g is not None],
                     case.tol, what)
    handle = layer.register_forward_hook(lambda m, args, out: (out[0] * 2, out[1]))
    doubled = layer(x.detach())[0]
    handle.remove()
    assert_close([doubled], [run(expected, x.detach())[0] * 2], case.tol, "replaced output")


# ---- state_dict ---------------------------------------------------------------------------------
def test_state_dict(case):
    """torch.nn → rnnlab and rnnlab → torch.nn with strict loading (same keys, same order),
    and through torch.save / torch.load(weights_only=True): the same function. SRU: rnnlab →
    oracle → a fresh rnnlab layer."""
    expected, layer = case.make()
    x = case.randn(T, B, I)
    assert list(layer.state_dict()) == list(expected.state_dict())
    cls = getattr(rnnlab, case.family)
    fresh_layer = cls(I, H, backend=case.engine, dtype=case.dtype, device=case.device)
    buffer = io.BytesIO()
    torch.save(expected.state_dict(), buffer)
    buffer.seek(0)
    fresh_layer.load_state_dict(torch.load(buffer, weights_only=True))
    assert_close(run(fresh_layer, x), run(expected, x), case.tol, "torch.nn → rnnlab")
    if case.family == "SRU":
        fresh_expected = SRUOracle(cls(I, H, dtype=case.dtype, device=case.device))
    else:
        fresh_expected = TORCH_FAMILIES[case.family](I, H, dtype=case.dtype, device=case.device)
    fresh_expected.load_state_dict(layer.state_dict())
    assert_close(run(fresh_expected, x), run(layer, x), case.tol, "rnnlab → torch.nn")


# ---- data-parallel replication ------------------------------------------------------------------
def replicate_on_cpu(module, n, monkeypatch):
    """``torch.nn.parallel.replicate`` as DataParallel calls it, its CUDA broadcast replaced by
    differentiable CPU copies: replicas whose parameters are non-leaf tensors, not
    Parameters."""
    replicate = sys.modules["torch.nn.parallel.replicate"]
    monkeypatch.setattr(replicate, "_broadcast_coalesced_reshape",
                        lambda tensors, devices, detach=False:
                        [[t.detach() if detach else t.view_as(t) for t in tensors]
                         for _ in devices])
    return replicate.replicate(module, list(range(n)))


def test_replicate(case, monkeypatch):
    """DataParallel-style: replicas (CPU: torch's replicate with CPU copies; CUDA:
    nn.DataParallel over the batch dimension) compute torch.nn's outputs, and the gradients
    reach the original parameters as torch.nn's do."""
    expected, layer = case.make()
    xs = [case.randn(T, B, I) for _ in range(2)]
    results = []
    for module in (expected, layer):
        if case.device == "cpu":
            outs = [run(r, x) for r, x in zip(replicate_on_cpu(module, 2, monkeypatch), xs)]
        else:
            parallel = nn.DataParallel(module, dim=1)
            outs = [run(parallel, x) for x in xs]
        loss = sum(loss_of(o) for o in outs)
        loss.backward()
        results.append(([t.detach() for o in outs for t in o],
                        [p.grad for p in module.parameters()]))
    assert_close(results[1][0], results[0][0], case.tol, "replica outputs")
    assert all(g is not None for g in results[1][1]), "gradients did not reach the parameters"
    assert_close(results[1][1], results[0][1], case.tol, "gradients of the original parameters")


def test_sru_native_is_refused():
    """torch has no fused SRU op: SRU(backend='native') says so when built (the SRU's 'native'
    cells in docs/conformance.md)."""
    with pytest.raises(ValueError, match=r"^backend: 'native' cannot run this configuration: "
                                         r"torch has no fused SRU op$"):
        rnnlab.SRU(I, H, backend="native")
