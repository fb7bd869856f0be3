"""Which ONNX form a layer exports as: the standard ``LSTM`` / ``GRU`` / ``RNN`` operator where
one fits (:func:`operator_unsupported` is None), else a Scan over one step of the cell."""

from __future__ import annotations

from rnnlab.layers.base import RecurrentBase
from rnnlab.layers.gru import GRU
from rnnlab.layers.lstm import LSTM
from rnnlab.layers.min_rnn import _MinRNN
from rnnlab.layers.rnn import RNN
from rnnlab.layers.sru import SRU


def zoneout_expectation(module) -> tuple[float, float] | None:
    """``(p_h, p_c)`` when the layer's eval mode mixes in the previous state (zoneout with
    ``zoneout_eval="expectation"``), else None."""
    reg = getattr(module, "regularisers", None)
    if reg is None or not reg.changes(training=False):
        return None
    return reg.zoneout_h, reg.zoneout_c


def _symmetric_gate(act) -> bool:
    """Whether ``1 - φ(a) = φ(-a)``, which ONNX's ``input_forget`` mapping needs."""
    return act.name == "sigmoid" or (act.name == "hard_sigmoid" and act.beta == 0.5)


def operator_unsupported(module: RecurrentBase) -> str | None:
    """Why ``module`` has no standard ONNX operator (so exports as a Scan), or None."""
    if isinstance(module, SRU):
        return "ONNX has no SRU operator"
    if isinstance(module, _MinRNN):
        return f"ONNX has no {type(module).__name__} operator"
    extras = []
    if zoneout_expectation(module):
        extras.append("zoneout_eval='expectation'")
    if isinstance(module, LSTM):
        if module.layer_norm:
            extras.append("layer_norm")
        if module.proj_size:
            extras.append("proj_size")
        if module.options.cell_clip is not None:
            extras.append("cell_clip (ONNX's clip bounds the gate pre-activations, rnnlab's "
                          "clamps c_t)")
        if module.options.coupled and not _symmetric_gate(module.options.gate_act):
            extras.append("coupled gates with this gate_activation (onnxruntime's input_forget "
                          "sets f = 1 - i; rnnlab's i = 1 - f maps onto it only for sigmoid)")
    elif isinstance(module, GRU):
        if module.layer_norm:
            extras.append("layer_norm")
    elif not isinstance(module, RNN):
        return f"{type(module).__name__} is not an rnnlab RNN, LSTM or GRU"
    if extras:
        return f"the ONNX {type(module).__name__} operator has no {', '.join(extras)}"
    return None


def op_type(module) -> str:
    """The ONNX operator of an RNN, LSTM or GRU layer."""
    return "LSTM" if isinstance(module, LSTM) else "GRU" if isinstance(module, GRU) else "RNN"
