"""Fixtures of the conformance suite: ``case`` is one family on one engine and device
(:class:`conformance_common.Case`); CUDA cases run where a GPU is present."""

import warnings

import pytest
import torch
from conformance_common import CASE_IDS, CASES, FAMILIES, Case, skip_reason
from parity import ieee_float32


@pytest.fixture(params=[(f, e, d) for f in FAMILIES for e, d in CASES],
                ids=[f"{f}-{i}" for f in FAMILIES for i in CASE_IDS])
def case(request):
    family, engine, device = request.param
    if (reason := skip_reason(family, engine, device)) is not None:
        pytest.skip(reason)
    return Case(family, engine, device)


@pytest.fixture(autouse=True)
def _no_tf32():
    """On CUDA, float32 comparisons (the triton engine) without TF32 in cuDNN or matmuls."""
    with ieee_float32():
        yield


@pytest.fixture(autouse=True)
def _quiet_and_fresh():
    """torch.jit.trace's TracerWarnings are expected; Dynamo starts afresh in every test."""
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch._dynamo.reset()
