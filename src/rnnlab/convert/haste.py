"""Weights between rnnlab (torch's layout) and Haste's PyTorch layers (lmnt-com/haste,
``haste_pytorch``), from Haste's documented layouts (``docs/pytorch/haste_pytorch/*.md`` and
``frameworks/pytorch/*.py``; Haste needs CUDA to install, so these converters are tested by
round trips and against an independent implementation of Haste's equations).

Haste computes ``x @ kernel`` and ``h @ recurrent_kernel`` (time-major, like torch's default):

=================  =====================================================================
Haste layer        variables (H = hidden_size, I = input_size)
=================  =====================================================================
``LSTM``           ``kernel`` (I, 4H), ``recurrent_kernel`` (H, 4H), ``bias`` (4H,), gate
                   order ``i, g, f, o`` (torch: ``i, f, g, o``); one bias = ``b_ih + b_hh``
``GRU``            ``kernel`` (I, 3H), ``recurrent_kernel`` (H, 3H), ``bias`` (3H,),
                   ``recurrent_bias`` (3H,), gate order ``z, r, h`` (torch: ``r, z, n``);
                   reset gate applied after the recurrent product (= torch's GRU) and
                   ``h_t = z∘h_{t-1} + (1-z)∘h̃``
``LayerNormLSTM``  LSTM's, plus ``gamma`` (2, 4H) (input and recurrent LN gains, ``i,g,f,o``),
                   ``gamma_h`` (H,), ``beta_h`` (H,) (LN of ``c_t``) =
                   ``rnnlab.LSTM(layer_norm=True)``'s ``ln_ih_weight``, ``ln_hh_weight``,
                   ``ln_c_weight``, ``ln_c_bias``
``LayerNormGRU``   GRU's, plus ``gamma`` (2, 3H) (input and recurrent LN gains, ``z,r,h``) =
                   ``rnnlab.GRU(layer_norm=True)``'s ``ln_ih_weight``, ``ln_hh_weight``
=================  =====================================================================

Layer norm normalises over all gate rows at once, so reordering the gate blocks of its gain
leaves it unchanged. Haste's own ``to_native_weights`` splits the LSTM bias in halves between
``bias_ih`` and ``bias_hh``; here ``*_from_haste`` puts it all in ``bias_ih`` (``bias_hh`` = 0),
the same function. Haste's dropout (DropConnect on ``recurrent_kernel``) and zoneout are
training options, not weights. Haste's IndRNN has no rnnlab counterpart.

All functions take and return torch tensors (dicts named after the target's variables).
"""

from __future__ import annotations

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
    reorder,
    split_bias,
    tensor,
    torch_weights,
    vector,
    weights_from_kernels,
)

__all__ = [
    "gru_from_haste",
    "gru_to_haste",
    "haste_weights",
    "layer_norm_gru_from_haste",
    "layer_norm_gru_to_haste",
    "layer_norm_lstm_from_haste",
    "layer_norm_lstm_to_haste",
    "load_haste_weights",
    "lstm_from_haste",
    "lstm_to_haste",
]

LSTM_ORDER, GRU_ORDER = "igfo", "zrn"  # Haste's gate orders; torch's are "ifgo" and "rzn"


def _to_haste(w_ih: Tensor, w_hh: Tensor, src: str, dst: str) -> dict[str, Tensor]:
    kernel, recurrent = kernels_from_weights(w_ih, w_hh, src, dst)
    return {"kernel": kernel.contiguous(), "recurrent_kernel": recurrent.contiguous()}


def _bias_or_zeros(b, size: int, like: Tensor, name: str) -> Tensor:
    return like.new_zeros(size) if b is None else vector(b, size, name)


# ---- LSTM ---------------------------------------------------------------------------------------
def lstm_from_haste(kernel, recurrent_kernel, bias) -> dict[str, Tensor]:
    """Haste ``LSTM`` (``i, g, f, o``) → torch's ``weight_ih``, ``weight_hh``, ``bias_ih`` =
    Haste's bias, ``bias_hh`` = 0 (``i, f, g, o``)."""
    kernel, recurrent, H = kernels(kernel, recurrent_kernel, 4)
    out = weights_from_kernels(kernel, recurrent, LSTM_ORDER, "ifgo")
    out.update(split_bias(vector(bias, 4 * H, "bias", LSTM_ORDER, "ifgo")))
    return out


def lstm_to_haste(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> dict[str, Tensor]:
    """torch LSTM weights → Haste ``kernel`` (I, 4H), ``recurrent_kernel`` (H, 4H), ``bias``
    (4H,) = ``b_ih + b_hh`` in order ``i, g, f, o`` (zeros without bias: Haste always has one)."""
    w_ih, w_hh, H = torch_weights(weight_ih, weight_hh, 4)
    bias = (_bias_or_zeros(bias_ih, 4 * H, w_ih, "bias_ih")
            + _bias_or_zeros(bias_hh, 4 * H, w_ih, "bias_hh"))
    return {**_to_haste(w_ih, w_hh, "ifgo", LSTM_ORDER), "bias": reorder(bias, "ifgo", LSTM_ORDER)}


def layer_norm_lstm_from_haste(kernel, recurrent_kernel, bias, gamma, gamma_h,
                               beta_h) -> dict[str, Tensor]:
    """Haste ``LayerNormLSTM`` → ``rnnlab.LSTM(layer_norm=True)``'s parameters."""
    out = lstm_from_haste(kernel, recurrent_kernel, bias)
    H = out["weight_hh"].shape[1]
    gamma = tensor(gamma, "gamma")
    check_shape(gamma, (2, 4 * H), "gamma")
    out["ln_ih_weight"] = reorder(gamma[0], LSTM_ORDER, "ifgo")
    out["ln_hh_weight"] = reorder(gamma[1], LSTM_ORDER, "ifgo")
    out["ln_c_weight"] = vector(gamma_h, H, "gamma_h")
    out["ln_c_bias"] = vector(beta_h, H, "beta_h")
    return out


def layer_norm_lstm_to_haste(weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                             ln_c_weight, ln_c_bias) -> dict[str, Tensor]:
    """``rnnlab.LSTM(layer_norm=True)``'s parameters → Haste ``LayerNormLSTM``'s."""
    out = lstm_to_haste(weight_ih, weight_hh, bias_ih, bias_hh)
    H = out["recurrent_kernel"].shape[0]
    gains = [vector(g, 4 * H, n, "ifgo", LSTM_ORDER)
             for g, n in ((ln_ih_weight, "ln_ih_weight"), (ln_hh_weight, "ln_hh_weight"))]
    out["gamma"] = torch.stack(gains)
    out["gamma_h"] = vector(ln_c_weight, H, "ln_c_weight")
    out["beta_h"] = vector(ln_c_bias, H, "ln_c_bias")
    return out


# ---- GRU ----------------------------------------------------------------------------------------
def gru_from_haste(kernel, recurrent_kernel, bias, recurrent_bias) -> dict[str, Tensor]:
    """Haste ``GRU`` (``z, r, h``) → torch GRU (``r, z, n``): ``bias`` → ``bias_ih``,
    ``recurrent_bias`` → ``bias_hh``."""
    kernel, recurrent, H = kernels(kernel, recurrent_kernel, 3)
    out = weights_from_kernels(kernel, recurrent, GRU_ORDER, "rzn")
    out["bias_ih"] = vector(bias, 3 * H, "bias", GRU_ORDER, "rzn")
    out["bias_hh"] = vector(recurrent_bias, 3 * H, "recurrent_bias", GRU_ORDER, "rzn")
    return out


def gru_to_haste(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> dict[str, Tensor]:
    """torch GRU (``reset_after=True``) → Haste ``GRU``'s ``kernel``, ``recurrent_kernel``,
    ``bias``, ``recurrent_bias`` (zeros without bias)."""
    w_ih, w_hh, H = torch_weights(weight_ih, weight_hh, 3)
    return {**_to_haste(w_ih, w_hh, "rzn", GRU_ORDER),
            "bias": reorder(_bias_or_zeros(bias_ih, 3 * H, w_ih, "bias_ih"), "rzn", GRU_ORDER),
            "recurrent_bias": reorder(_bias_or_zeros(bias_hh, 3 * H, w_ih, "bias_hh"), "rzn",
                                      GRU_ORDER)}


def layer_norm_gru_from_haste(kernel, recurrent_kernel, bias, recurrent_bias,
                              gamma) -> dict[str, Tensor]:
    """Haste ``LayerNormGRU`` → ``rnnlab.GRU(layer_norm=True)``'s parameters."""
    out = gru_from_haste(kernel, recurrent_kernel, bias, recurrent_bias)
    H = out["weight_hh"].shape[1]
    gamma = tensor(gamma, "gamma")
    check_shape(gamma, (2, 3 * H), "gamma")
    out["ln_ih_weight"] = reorder(gamma[0], GRU_ORDER, "rzn")
    out["ln_hh_weight"] = reorder(gamma[1], GRU_ORDER, "rzn")
    return out


def layer_norm_gru_to_haste(weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                            ln_hh_weight) -> dict[str, Tensor]:
    """``rnnlab.GRU(layer_norm=True)``'s parameters → Haste ``LayerNormGRU``'s."""
    out = gru_to_haste(weight_ih, weight_hh, bias_ih, bias_hh)
    H = out["recurrent_kernel"].shape[0]
    out["gamma"] = torch.stack([vector(g, 3 * H, n, "rzn", GRU_ORDER)
                                for g, n in ((ln_ih_weight, "ln_ih_weight"),
                                             (ln_hh_weight, "ln_hh_weight"))])
    return out


# ---- whole layers -------------------------------------------------------------------------------
_HASTE_NAMES = {
    ("LSTM", False): ("kernel", "recurrent_kernel", "bias"),
    ("LSTM", True): ("kernel", "recurrent_kernel", "bias", "gamma", "gamma_h", "beta_h"),
    ("GRU", False): ("kernel", "recurrent_kernel", "bias", "recurrent_bias"),
    ("GRU", True): ("kernel", "recurrent_kernel", "bias", "recurrent_bias", "gamma"),
}
_FROM = {("LSTM", False): lstm_from_haste, ("LSTM", True): layer_norm_lstm_from_haste,
         ("GRU", False): gru_from_haste, ("GRU", True): layer_norm_gru_from_haste}
_TO = {("LSTM", False): lstm_to_haste, ("LSTM", True): layer_norm_lstm_to_haste,
       ("GRU", False): gru_to_haste, ("GRU", True): layer_norm_gru_to_haste}


def _key(layer) -> tuple[str, bool]:
    fam = family(layer)
    if fam not in ("LSTM", "GRU"):
        raise ValueError(f"layer: Haste has no {fam} counterpart here; expected an rnnlab "
                         "LSTM or GRU")
    extras = extra_options(layer)
    if fam == "GRU" and not layer.reset_after:
        extras.append("reset_after=False")
    if extras:
        raise ValueError(f"layer: Haste's {fam} has no {', '.join(extras)}")
    return fam, bool(layer.layer_norm)


def load_haste_weights(layer, weights: dict, layer_index: int = 0, direction: int = 0) -> None:
    """Copy a Haste layer's variables (a dict by Haste's names, e.g. ``haste_layer.state_dict()``)
    into layer ``layer_index``, ``direction`` of an rnnlab ``LSTM`` / ``GRU`` (with
    ``layer_norm=True`` for Haste's ``LayerNormLSTM`` / ``LayerNormGRU``).

    Haste always has biases: loading into a layer with ``bias=False`` requires them to be 0.
    """
    key = _key(layer)
    names = _HASTE_NAMES[key]
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"weights: missing Haste variables {missing} for "
                         f"{'LayerNorm' if key[1] else ''}{key[0]} (expected {list(names)})")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"weights: unknown Haste variables {unknown} (expected {list(names)})")
    load(layer, _FROM[key](**{n: weights[n] for n in names}), layer_index, direction)


def haste_weights(layer, layer_index: int = 0, direction: int = 0) -> dict[str, Tensor]:
    """Layer ``layer_index``, ``direction`` of an rnnlab ``LSTM`` / ``GRU`` as the variables of
    the matching Haste layer (``load_state_dict``-ready)."""
    key = _key(layer)
    check_index(layer, layer_index, direction)
    p = layer.cell_params(layer_index, direction)
    p.setdefault("bias_ih", None)
    p.setdefault("bias_hh", None)
    return {k: v.detach().clone() for k, v in _TO[key](**p).items()}
