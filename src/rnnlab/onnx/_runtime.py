"""Running an exported model in onnxruntime with the layer's calling convention, and checking it
against the layer."""

from __future__ import annotations

import os

import numpy as np
import onnx
import torch


def run_onnxruntime(model, input, hx=None, lengths=None):
    """Run an exported model in onnxruntime with the layer's calling convention; returns
    ``(output, h_n)`` or ``(output, (h_n, c_n))`` as torch tensors."""
    import onnxruntime as ort

    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, (str, os.PathLike)):
        model = os.fspath(model)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {"input": input.detach().cpu().numpy()}
    if "sequence_lens" in names:
        if lengths is None:
            raise ValueError("lengths: the model has a sequence_lens input")
        feeds["sequence_lens"] = np.asarray(torch.as_tensor(lengths).cpu(), dtype=np.int32)
    state_inputs = [n for n in names if n in ("h0", "c0")]
    if state_inputs:
        if hx is None:
            raise ValueError(f"hx: the model has initial-state inputs {state_inputs}")
        parts = hx if isinstance(hx, (tuple, list)) else (hx,)
        for name, part in zip(state_inputs, parts):
            feeds[name] = part.detach().cpu().numpy()
    out = [torch.from_numpy(o) for o in session.run(None, feeds)]
    return (out[0], tuple(out[1:])) if len(out) == 3 else (out[0], out[1])


def verify(module, model, x, hx, lengths, atol, rtol=1e-5):
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            expected = module(x, hx, lengths=lengths)
    finally:
        module.train(was_training)
    got = run_onnxruntime(model, x, hx, lengths)
    flat = lambda r: [r[0], *(r[1] if isinstance(r[1], tuple) else (r[1],))]
    for name, a, b in zip(["output", "h_n", "c_n"], flat(got), flat(expected)):
        b = b.detach().cpu()
        excess = ((a - b).abs() - rtol * b.abs()).max().item()
        if not excess <= atol:
            err = (a - b).abs().max().item()
            raise AssertionError(f"verify: onnxruntime's {name} differs from the layer's by "
                                 f"{err:.3g} (> atol={atol} + rtol={rtol} · |value|)")
