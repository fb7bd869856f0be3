"""Weights between rnnlab (torch's layout) and Keras 3 recurrent layers.

Keras stores one layer as ``kernel`` (I, G·H), ``recurrent_kernel`` (H, G·H) and ``bias``,
the transposes of torch's ``weight_ih`` (G·H, I) and ``weight_hh`` (G·H, H), computing
``x @ kernel + h @ recurrent_kernel + bias`` (batch-major, ``batch_first=True`` in torch):

==========================  =====================  =====================================
Keras layer                 gate order             bias
==========================  =====================  =====================================
``LSTM``                    ``i, f, c, o``         (4H,): torch's ``b_ih + b_hh``
                            (= torch ``i, f, g, o``)
``GRU(reset_after=True)``   ``z, r, h``            (2, 3H): row 0 input bias, row 1
                            (torch ``r, z, n``)    recurrent bias (= torch's ``b_ih, b_hh``)
``GRU(reset_after=False)``  ``z, r, h``            (3H,): ``b_ih + b_hh`` (exact for
                                                   ``rnnlab.GRU(reset_after=False)``, whose
                                                   ``b_hn`` sits outside the reset gate)
``SimpleRNN``               one block              (H,): ``b_ih + b_hh``
==========================  =====================  =====================================

Both GRU conventions update ``h_t = z∘h_{t-1} + (1-z)∘h̃`` as torch. Keras 3 defaults
(``activation="tanh"``, ``recurrent_activation="sigmoid"``) are torch's; converters move
weights only, so other activations must be set on both sides by the caller. Where Keras has
one bias and torch two, ``*_from_keras`` puts it in ``bias_ih`` and zeros in ``bias_hh``, and
``*_to_keras`` adds torch's two.

``*_from_keras`` accept numpy arrays, tensors or Keras variables and return torch tensors
(``weight_ih, weight_hh, bias_ih, bias_hh``); ``*_to_keras`` return numpy arrays
(``kernel, recurrent_kernel, bias``), ready for ``keras_layer.set_weights``.

Example::

    >>> k = keras.layers.LSTM(20)                       # built on inputs of 10 features
    >>> lstm = rnnlab.LSTM(10, 20, batch_first=True)
    >>> load_keras_weights(lstm, k.get_weights())     # or: from_keras_layer(k)
    >>> k.set_weights(keras_weights(lstm))            # and back
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnlab.convert._common import (
    check_index,
    check_shape,
    extra_options,
    family,
    kernels,
    kernels_from_weights,
    load,
    numpy,
    reorder,
    split_bias,
    tensor,
    torch_weights,
    vector,
    weights_from_kernels,
)

__all__ = [
    "from_keras_layer",
    "gru_from_keras",
    "gru_to_keras",
    "keras_weights",
    "load_keras_weights",
    "lstm_from_keras",
    "lstm_to_keras",
    "simple_rnn_from_keras",
    "simple_rnn_to_keras",
]


def _torch_side(weight_ih, weight_hh, bias_ih, bias_hh, gates: int):
    w_ih, w_hh, H = torch_weights(weight_ih, weight_hh, gates)
    if (bias_ih is None) != (bias_hh is None):
        raise ValueError("bias_ih, bias_hh: give both or neither")
    b_ih = None if bias_ih is None else tensor(bias_ih, "bias_ih")
    b_hh = None if bias_hh is None else tensor(bias_hh, "bias_hh")
    for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if b is not None:
            check_shape(b, (gates * H,), name)
    return w_ih, w_hh, b_ih, b_hh, H


def _to_keras(w_ih: Tensor, w_hh: Tensor, src: str = "", dst: str = "") -> dict[str, np.ndarray]:
    kernel, recurrent = kernels_from_weights(w_ih, w_hh, src, dst)
    return {"kernel": numpy(kernel), "recurrent_kernel": numpy(recurrent)}


def _single_bias_from_keras(out: dict, bias, size: int, src: str = "", dst: str = "") -> dict:
    if bias is not None:
        out.update(split_bias(vector(bias, size, "bias", src, dst)))
    return out


# ---- LSTM ---------------------------------------------------------------------------------------
def lstm_from_keras(kernel, recurrent_kernel, bias=None) -> dict[str, Tensor]:
    """Keras ``LSTM`` weights (gate order ``i, f, c, o``) → torch's ``weight_ih`` (4H, I),
    ``weight_hh`` (4H, H), ``bias_ih`` = the Keras bias, ``bias_hh`` = 0."""
    kernel, recurrent, H = kernels(kernel, recurrent_kernel, 4)
    return _single_bias_from_keras(weights_from_kernels(kernel, recurrent), bias, 4 * H)


def lstm_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> dict[str, np.ndarray]:
    """torch LSTM weights (``i, f, g, o``) → Keras ``kernel`` (I, 4H), ``recurrent_kernel``
    (H, 4H) and ``bias`` = ``b_ih + b_hh`` (absent when torch has no bias)."""
    w_ih, w_hh, b_ih, b_hh, _ = _torch_side(weight_ih, weight_hh, bias_ih, bias_hh, 4)
    out = _to_keras(w_ih, w_hh)
    if b_ih is not None:
        out["bias"] = numpy(b_ih + b_hh)
    return out


# ---- GRU ----------------------------------------------------------------------------------------
def gru_from_keras(kernel, recurrent_kernel, bias=None,
                   reset_after: bool | None = None) -> dict[str, Tensor]:
    """Keras ``GRU`` weights (gate order ``z, r, h``) → torch's (``r, z, n``).

    ``reset_after`` is read from the bias shape: (2, 3H) is Keras' ``reset_after=True``
    (torch's GRU; row 0 → ``bias_ih``, row 1 → ``bias_hh``), (3H,) is ``reset_after=False``
    (``rnnlab.GRU(reset_after=False)``; the bias → ``bias_ih``, ``bias_hh`` = 0). Passing
    ``reset_after`` checks it (needed only to document a layer without bias: the weights
    themselves do not depend on it).
    """
    kernel, recurrent, H = kernels(kernel, recurrent_kernel, 3)
    out = weights_from_kernels(kernel, recurrent, "zrn", "rzn")
    if bias is None:
        return out
    b = tensor(bias, "bias")
    found = b.dim() == 2
    if reset_after is not None and bool(reset_after) != found:
        raise ValueError(f"bias: shape {tuple(b.shape)} is Keras' reset_after={found}, but "
                         f"reset_after={reset_after} was given")
    if found:
        check_shape(b, (2, 3 * H), "bias")
        out["bias_ih"] = reorder(b[0], "zrn", "rzn")
        out["bias_hh"] = reorder(b[1], "zrn", "rzn")
        return out
    return _single_bias_from_keras(out, b, 3 * H, "zrn", "rzn")


def gru_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None,
                 reset_after: bool = True) -> dict[str, np.ndarray]:
    """torch GRU weights (``r, z, n``) → Keras ``kernel``, ``recurrent_kernel`` (``z, r, h``)
    and ``bias``: (2, 3H) = ``[b_ih; b_hh]`` for ``reset_after=True`` (torch's GRU), (3H,) =
    ``b_ih + b_hh`` for ``reset_after=False`` (``rnnlab.GRU(reset_after=False)``)."""
    w_ih, w_hh, b_ih, b_hh, _ = _torch_side(weight_ih, weight_hh, bias_ih, bias_hh, 3)
    out = _to_keras(w_ih, w_hh, "rzn", "zrn")
    if b_ih is not None:
        b_ih, b_hh = reorder(b_ih, "rzn", "zrn"), reorder(b_hh, "rzn", "zrn")
        out["bias"] = numpy(torch.stack([b_ih, b_hh]) if reset_after else b_ih + b_hh)
    return out


# ---- SimpleRNN ----------------------------------------------------------------------------------
def simple_rnn_from_keras(kernel, recurrent_kernel, bias=None) -> dict[str, Tensor]:
    """Keras ``SimpleRNN`` weights → torch RNN's (``bias_ih`` = the bias, ``bias_hh`` = 0)."""
    kernel, recurrent, H = kernels(kernel, recurrent_kernel, 1)
    return _single_bias_from_keras(weights_from_kernels(kernel, recurrent), bias, H)


def simple_rnn_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> dict[str, np.ndarray]:
    """torch RNN weights → Keras ``SimpleRNN`` (``bias`` = ``b_ih + b_hh``)."""
    w_ih, w_hh, b_ih, b_hh, _ = _torch_side(weight_ih, weight_hh, bias_ih, bias_hh, 1)
    out = _to_keras(w_ih, w_hh)
    if b_ih is not None:
        out["bias"] = numpy(b_ih + b_hh)
    return out


# ---- whole layers -------------------------------------------------------------------------------
def _as_dict(weights) -> dict:
    if isinstance(weights, dict):
        unknown = set(weights) - {"kernel", "recurrent_kernel", "bias"}
        if unknown:
            raise ValueError(f"weights: unknown Keras variables {sorted(unknown)}; expected "
                             "kernel, recurrent_kernel, bias")
        return dict(weights)
    weights = list(weights)
    if len(weights) not in (2, 3):
        raise ValueError(f"weights: expected [kernel, recurrent_kernel(, bias)] as "
                         f"get_weights() returns, got {len(weights)} arrays")
    return dict(zip(("kernel", "recurrent_kernel", "bias"), weights))


def _check_plain(layer, fam: str) -> None:
    if fam not in ("LSTM", "GRU", "RNN"):
        raise ValueError(f"layer: Keras has no {fam}; expected an rnnlab LSTM, GRU or RNN")
    extras = extra_options(layer, ("peephole", "layer_norm"))
    if extras:
        raise ValueError(f"layer: Keras' {fam} has no {', '.join(extras)}")


def load_keras_weights(layer, weights, layer_index: int = 0, direction: int = 0) -> None:
    """Copy one Keras layer's weights into layer ``layer_index``, ``direction`` of an rnnlab
    ``LSTM``, ``GRU`` or ``RNN``.

    ``weights``: ``keras_layer.get_weights()`` (``[kernel, recurrent_kernel, bias]``) or a
    dict of those names. A GRU's ``reset_after`` must match the Keras bias shape; a layer
    without bias needs Keras' ``use_bias=False``.
    """
    fam = family(layer)
    _check_plain(layer, fam)
    check_index(layer, layer_index, direction)
    w = _as_dict(weights)
    if fam == "LSTM":
        params = lstm_from_keras(w["kernel"], w["recurrent_kernel"], w.get("bias"))
    elif fam == "GRU":
        params = gru_from_keras(w["kernel"], w["recurrent_kernel"], w.get("bias"),
                                reset_after=layer.reset_after if "bias" in w else None)
    else:
        params = simple_rnn_from_keras(w["kernel"], w["recurrent_kernel"], w.get("bias"))
    load(layer, params, layer_index, direction)


def keras_weights(layer, layer_index: int = 0, direction: int = 0) -> list[np.ndarray]:
    """Layer ``layer_index``, ``direction`` of an rnnlab ``LSTM``, ``GRU`` or ``RNN`` as the
    list a Keras ``LSTM`` / ``GRU`` (with the layer's ``reset_after``) / ``SimpleRNN`` takes
    in ``set_weights``: ``[kernel, recurrent_kernel(, bias)]``."""
    fam = family(layer)
    _check_plain(layer, fam)
    check_index(layer, layer_index, direction)
    p = layer.cell_params(layer_index, direction)
    args = (p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
    if fam == "LSTM":
        out = lstm_to_keras(*args)
    elif fam == "GRU":
        out = gru_to_keras(*args, reset_after=layer.reset_after)
    else:
        out = simple_rnn_to_keras(*args)
    return [out[k] for k in ("kernel", "recurrent_kernel", "bias") if k in out]


_TORCH_DEFAULTS = {"activation": "tanh", "recurrent_activation": "sigmoid"}


def from_keras_layer(keras_layer, **options):
    """A new rnnlab layer computing what a built Keras 3 ``LSTM``, ``GRU``, ``SimpleRNN`` (or a
    ``Bidirectional`` of one, ``merge_mode="concat"``) computes, with ``batch_first=True``.

    ``options`` go to the rnnlab constructor (``dtype``, ``backend`` …). Keras features with
    no rnnlab counterpart here raise ``ValueError``: ``go_backwards``, ``stateful``,
    non-default activations (except SimpleRNN's ``"relu"``), other merge modes.
    """
    import rnnlab

    name = type(keras_layer).__name__
    if name == "Bidirectional":
        if keras_layer.merge_mode != "concat":
            raise ValueError(f"keras_layer: merge_mode={keras_layer.merge_mode!r}; rnnlab "
                             "concatenates the two directions (merge_mode='concat')")
        fwd, bwd = keras_layer.forward_layer, keras_layer.backward_layer
        layer = _build(rnnlab, fwd, bidirectional=True, **options)
        load_keras_weights(layer, fwd.get_weights(), 0, 0)
        load_keras_weights(layer, bwd.get_weights(), 0, 1)
        return layer
    layer = _build(rnnlab, keras_layer, **options)
    load_keras_weights(layer, keras_layer.get_weights())
    return layer


def _build(rnnlab, k, **options):
    name = type(k).__name__
    classes = {"LSTM": rnnlab.LSTM, "GRU": rnnlab.GRU, "SimpleRNN": rnnlab.RNN}
    if name not in classes:
        raise ValueError(f"keras_layer: expected a Keras LSTM, GRU, SimpleRNN or Bidirectional, "
                         f"got {name}")
    if not k.built:
        raise ValueError("keras_layer: build it first (call it on an input or use build())")
    if getattr(k, "stateful", False):
        raise ValueError("keras_layer: stateful=True has no rnnlab counterpart")
    bidirectional = options.get("bidirectional", False)
    if getattr(k, "go_backwards", False) and not bidirectional:
        raise ValueError("keras_layer: go_backwards=True; reverse the input instead")
    cell = getattr(k, "cell", k)
    act = getattr(cell.activation, "__name__", str(cell.activation))
    kw = {}
    if name == "SimpleRNN":
        if act not in ("tanh", "relu"):
            raise ValueError(f"keras_layer: SimpleRNN activation {act!r}; rnnlab.RNN has "
                             "'tanh' and 'relu'")
        kw["nonlinearity"] = act
    else:
        rec = getattr(cell.recurrent_activation, "__name__", str(cell.recurrent_activation))
        if act != "tanh" or rec != "sigmoid":
            raise ValueError(f"keras_layer: activation={act!r}, recurrent_activation={rec!r}; "
                             "convert with the weight functions and set the activations on "
                             "the rnnlab layer yourself")
        if name == "GRU":
            kw["reset_after"] = bool(cell.reset_after)
    kernel = k.get_weights()[0]
    return classes[name](kernel.shape[0], cell.units, bias=bool(cell.use_bias), batch_first=True,
                         **kw, **options)
