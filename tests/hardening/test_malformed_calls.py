"""Property-based hardening campaign over the public API: every malformed call (constructor
options, input, PackedSequence, hx, lengths, cells, packing, Init, step, torch conversion,
forced backends) raises a ValueError or TypeError whose message starts with the name of the
argument at fault (``"lengths: …"``), never an error from deep inside a kernel and never a
silently wrong result.

Each example makes exactly one malformed call, through ``malformed`` (conftest.py), which
checks the exception type and the name and counts the call per category; the run ends with
the counts. Well-formed edge cases are in ``test_edge_cases.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.nn.utils.rnn import pack_padded_sequence as torch_pack

import rnnlab
from rnnlab.backends import BACKEND_NAMES
from rnnlab.layers.base import INITIAL_STATES


def campaign(examples: int):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Case:
    """One malformed call: ``call()`` must raise ``exc`` naming one of ``names``."""

    label: str
    call: Callable
    exc: type[Exception]
    names: tuple[str, ...]

    def __repr__(self) -> str:
        return self.label


class Opaque:
    """An object no argument accepts."""

    def __repr__(self) -> str:
        return "Opaque()"


NAN, INF = float("nan"), float("inf")
LAYERS = {"RNN": rnnlab.RNN, "LSTM": rnnlab.LSTM, "GRU": rnnlab.GRU, "SRU": rnnlab.SRU,
          "MinGRU": rnnlab.MinGRU, "MinLSTM": rnnlab.MinLSTM}
CELLS = {"RNNCell": rnnlab.RNNCell, "LSTMCell": rnnlab.LSTMCell, "GRUCell": rnnlab.GRUCell,
         "SRUCell": rnnlab.SRUCell, "LayerNormLSTMCell": rnnlab.LayerNormLSTMCell,
         "MinGRUCell": rnnlab.MinGRUCell, "MinLSTMCell": rnnlab.MinLSTMCell}
NON_FLOAT = [torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool, torch.complex64]
OTHER_FLOAT = [torch.float64, torch.float16, torch.bfloat16]  # the layers are float32


def bad(values, exc) -> st.SearchStrategy:
    """(value, expected exception) for each of ``values``."""
    return st.tuples(st.sampled_from(values), st.just(exc))


# ---- bad values per kind of constructor argument ---------------------------------------------
_NOT_AN_INT = [2.0, "3", None, True, False, [3], np.int64(3), torch.tensor(3), Opaque()]
SIZE = st.tuples(st.integers(-8, 0), st.just(ValueError)) | bad(_NOT_AN_INT, TypeError)
CELL_SIZE = st.tuples(st.integers(-8, -1), st.just(ValueError)) | bad(_NOT_AN_INT, TypeError)
FLAG = bad([0, 1, "yes", "False", None, 1.0, [True], torch.tensor(True), Opaque()], TypeError)
_NOT_A_RATE = [NAN, INF, -INF, "0.5", None, True, [0.1], np.ones(2), torch.tensor(0.5), Opaque()]
RATE = st.one_of(st.tuples(st.floats(-1e3, -1e-6) | st.floats(1 + 1e-6, 1e3), st.just(ValueError)),
                 bad(_NOT_A_RATE, ValueError))  # [0, 1]: dropout, zoneout
OPEN_RATE = RATE | bad([1, 1.0], ValueError)  # [0, 1): recurrent_dropout, weight_dropout
LSTM_ZONEOUT = RATE | bad([(0.1,), (0.1, 0.2, 0.3), (0.1, 2.0), ("a", 0.1), (NAN, 0.1), []],
                          ValueError)
OTHER_ZONEOUT = RATE | bad([(0.1, 0.1), [0.2, 0.3]], ValueError)  # pairs are the LSTM's


def choice(valid) -> st.SearchStrategy:
    junk = ["", "AUTO", "Zeros", "tanh ", "relu6", "cudnn", "expect", None, 3, [], ("auto",),
            np.ones(2), Opaque()]
    text = st.text(max_size=8).filter(lambda s: s not in valid)
    return st.tuples(st.sampled_from(junk) | text, st.just(ValueError))


INIT = st.one_of(
    bad([3, 1.5, ["orthogonal"], ("chrono", 10), np.ones(2), Opaque(), {"foo": 1},
         {"recurrent": "orthogonal", "forget": 1.0}], TypeError),
    bad(["ortho", "chrono", "chrono:", "chrono:1", "chrono:abc", "chrono:nan", "forget_bias:x",
         "forget_bias:inf", "orthogonal:0", "orthogonal:-1", "identity:nan", "torch:1",
         "orthogonal+", "+", "", "chrono:10+forget_bias", {"recurrent": "unitary"},
         {"gain": 0}, {"gain": "x"}, {"chrono": 1}, {"forget_bias": "1"},
         {"chrono": 10, "forget_bias": 1.0}, {"recurrent": []}], ValueError))
DEVICE = bad(["nope", "cpu:x", "gpu", "cuda:", "", "cpu:-1", 3.5, [], Opaque()], ValueError)
DTYPE = bad([*NON_FLOAT, "float32", 32, Opaque()], TypeError)
ACTIVATION = bad(["", "Sigmoid", "gelu", "swish", 3, [], {}, (), np.ones(2), ("tanh", 1.0),
                  ("sigmoid", 1.0), ("hard_sigmoid", 0.2, 0.5, 1.0), ("hard_sigmoid", "a"),
                  ("leaky_relu", -0.1), ("elu", 0.0), ("elu", -1), ("scaled_tanh", 0),
                  ("scaled_tanh", NAN), ("affine", INF), ("relu", True)], ValueError)
CELL_CLIP = st.one_of(st.tuples(st.floats(-1e3, 0.0), st.just(ValueError)),
                      bad([NAN, -INF, "1", True, [1.0], np.ones(2), Opaque()], ValueError))
GENERATOR = bad([3, "gen", Opaque(), torch.ones(1), np.random.default_rng(0)], TypeError)


def proj_size(hidden: int) -> st.SearchStrategy:
    return st.one_of(st.tuples(st.integers(-5, -1) | st.integers(hidden, hidden + 4),
                               st.just(ValueError)),
                     bad([1.0, "1", True, None, [1]], TypeError))


COMMON = {"input_size": SIZE, "hidden_size": SIZE, "num_layers": SIZE, "bias": FLAG,
          "batch_first": FLAG, "bidirectional": FLAG, "dropout": RATE,
          "backend": choice(BACKEND_NAMES), "initial_state": choice(INITIAL_STATES),
          "init": INIT, "device": DEVICE, "dtype": DTYPE}
REGULARISERS = {"recurrent_dropout": OPEN_RATE, "zoneout": OTHER_ZONEOUT,
                "weight_dropout": OPEN_RATE, "zoneout_eval": choice(("identity", "expectation")),
                "generator": GENERATOR}
OPTIONS = {
    "RNN": {**REGULARISERS, "nonlinearity": choice(("tanh", "relu"))},
    "LSTM": {**REGULARISERS, "zoneout": LSTM_ZONEOUT, "peephole": FLAG, "coupled": FLAG,
             "layer_norm": FLAG, "cell_clip": CELL_CLIP, "gate_activation": ACTIVATION,
             "activation": ACTIVATION, "output_activation": ACTIVATION},
    "GRU": {**REGULARISERS, "reset_after": FLAG, "layer_norm": FLAG,
            "gate_activation": ACTIVATION, "activation": ACTIVATION},
    "SRU": {"zoneout": OTHER_ZONEOUT, "zoneout_eval": REGULARISERS["zoneout_eval"],
            "generator": GENERATOR},
    "MinGRU": {},
    "MinLSTM": {},
}

# options valid one by one that a family cannot combine: (family, options, argument named)
CONFLICTS = [
    *[("LSTM", {"layer_norm": True, **other}, "layer_norm") for other in (
        {"peephole": True}, {"coupled": True}, {"cell_clip": 1.0}, {"proj_size": 1})],
    ("GRU", {"layer_norm": True, "reset_after": False}, "layer_norm"),
    *[(family, {"backend": "native", **other}, "backend") for family, other in (
        ("LSTM", {"peephole": True}), ("LSTM", {"coupled": True}), ("LSTM", {"cell_clip": 2.0}),
        ("LSTM", {"layer_norm": True}), ("LSTM", {"activation": "relu"}),
        ("LSTM", {"recurrent_dropout": 0.3}), ("GRU", {"reset_after": False}),
        ("GRU", {"layer_norm": True}), ("GRU", {"zoneout": 0.1}), ("RNN", {"weight_dropout": 0.1}),
        ("SRU", {}), ("MinGRU", {}), ("MinLSTM", {}))],
    *[(family, {"init": init}, "init") for family, init in (
        ("RNN", "forget_bias"), ("RNN", "chrono:10"), ("RNN", rnnlab.Init(forget_bias=2.0)),
        ("LSTM", "identity"), ("GRU", "irnn"), ("SRU", "orthogonal"), ("MinGRU", "orthogonal"),
        ("MinLSTM", "identity"), ("SRU", "identity"))],
    *[(family, {"init": "forget_bias", "bias": False}, "init")
      for family in ("LSTM", "GRU", "SRU", "MinGRU", "MinLSTM")],
]


@st.composite
def constructor_cases(draw) -> Case:
    input_size, hidden_size = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    if draw(st.integers(0, 5)) == 0:
        family, options, name = draw(st.sampled_from(CONFLICTS))
        exc = ValueError
    else:
        family = draw(st.sampled_from(sorted(LAYERS)))
        strategies = {**COMMON, **OPTIONS[family]}
        if family == "LSTM":
            strategies["proj_size"] = proj_size(hidden_size)
        name = draw(st.sampled_from(sorted(strategies)))
        value, exc = draw(strategies[name])
        options = {name: value}
    kwargs = {"input_size": input_size, "hidden_size": hidden_size, **options}
    return Case(f"{family}(**{kwargs!r})", lambda: LAYERS[family](**kwargs), exc, (name,))


# ---- layers and their inputs ----------------------------------------------------------------
@st.composite
def layers(draw):
    """A small valid layer: (family, layer)."""
    family = draw(st.sampled_from(sorted(LAYERS)))
    hidden = draw(st.integers(2, 5))
    kwargs = {"num_layers": draw(st.integers(1, 2)), "batch_first": draw(st.booleans()),
              "bidirectional": draw(st.booleans()),
              "backend": draw(st.sampled_from(["auto", "reference"]))}
    if family == "LSTM" and draw(st.booleans()):
        kwargs["proj_size"] = draw(st.integers(1, hidden - 1))
    return family, LAYERS[family](draw(st.integers(1, 4)), hidden, **kwargs)


def padded_shape(layer, T: int, B: int) -> tuple[int, int, int]:
    return (B, T, layer.input_size) if layer.batch_first else (T, B, layer.input_size)


def caller(draw, layer):
    """The layer's forward or its trace (the same checks guard both)."""
    return layer if draw(st.booleans()) else layer.trace


def other_shape(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that differs from ``shape``: one dim grown or shrunk, one dropped or added."""
    how = draw(st.sampled_from(["grow", "shrink", "drop", "add"] if shape else ["add"]))
    dims = list(shape)
    if how == "add":
        dims.insert(draw(st.integers(0, len(dims))), draw(st.integers(1, 3)))
    else:
        k = draw(st.integers(0, len(dims) - 1))
        if how == "drop":
            del dims[k]
        else:
            dims[k] = dims[k] + draw(st.integers(1, 3)) if how == "grow" or dims[k] == 0 \
                else dims[k] - 1
    return tuple(dims)


@st.composite
def input_cases(draw) -> Case:
    family, layer = draw(layers())
    run = caller(draw, layer)
    T, B, I = draw(st.integers(1, 4)), draw(st.integers(1, 3)), layer.input_size
    shape = draw(st.sampled_from([padded_shape(layer, T, B), (T, I)]))
    kind = draw(st.sampled_from(["type", "rank", "features", "dtype", "float_dtype", "device",
                                 "layer_device", "empty"]))
    if kind == "type":
        x = draw(st.sampled_from([None, 3, 2.5, "x", [[0.0] * I], np.zeros(shape, np.float32),
                                  (torch.zeros(shape),), {"input": torch.zeros(shape)}]))
        exc = TypeError
    elif kind == "rank":
        rank = draw(st.sampled_from([0, 1, 4, 5]))
        dims = [draw(st.integers(1, 3)) for _ in range(rank - 1)]
        x, exc = (torch.zeros(*dims, I) if rank else torch.tensor(0.0)), ValueError
    elif kind == "features":
        features = draw(st.integers(0, I + 3).filter(lambda n: n != I))
        x, exc = torch.zeros(*shape[:-1], features), ValueError
    elif kind in ("dtype", "float_dtype"):
        dtype = draw(st.sampled_from(NON_FLOAT if kind == "dtype" else OTHER_FLOAT))
        x, exc = torch.zeros(shape, dtype=dtype), TypeError
    elif kind == "device":
        x, exc = torch.zeros(shape, device="meta"), ValueError
    elif kind == "layer_device":
        layer.to("meta")
        x, exc = torch.zeros(shape), ValueError
    else:
        time_dim = 1 if layer.batch_first and len(shape) == 3 else 0
        x, exc = torch.zeros(shape[:time_dim] + (0,) + shape[time_dim + 1:]), ValueError
    label = f"{family} {kind}: {getattr(run, '__name__', 'forward')}({_describe(x)})"
    return Case(label, lambda: run(x), exc, ("input",))


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)} {value.dtype} {value.device}"
    if isinstance(value, PackedSequence):
        return f"PackedSequence({_describe(value.data)}, batch_sizes={value.batch_sizes})"
    return repr(value)


def random_lengths(draw, T: int, B: int) -> list[int]:
    return draw(st.lists(st.integers(1, T), min_size=B, max_size=B))


# ---- PackedSequence ---------------------------------------------------------------------------
PACKED_FAULTS = ["increasing", "zero", "sum", "sizes_dtype", "sizes_2d", "empty", "data_type",
                 "data_rank", "features", "dtype", "float_dtype", "device", "indices", "lengths"]


@st.composite
def packed_cases(draw) -> Case:
    family, layer = draw(layers())
    run = caller(draw, layer)
    T, B, I = draw(st.integers(1, 4)), draw(st.integers(1, 3)), layer.input_size
    lengths = random_lengths(draw, T, B)
    packed = torch_pack(torch.zeros(T, B, I), torch.tensor(lengths), enforce_sorted=False)
    data, sizes = packed.data, packed.batch_sizes
    kind = draw(st.sampled_from(PACKED_FAULTS))
    names, exc, kwargs = ("input",), ValueError, {}
    if kind == "increasing":  # one more step, with more sequences than the first
        extra = int(sizes[0]) + draw(st.integers(1, 2))
        packed = packed._replace(data=torch.zeros(len(data) + extra, I),
                                 batch_sizes=torch.cat([sizes, torch.tensor([extra])]))
    elif kind == "zero":
        packed = packed._replace(batch_sizes=torch.cat([sizes, torch.tensor([0])]))
    elif kind == "sum":
        rows = draw(st.integers(0, len(data) + 3).filter(lambda n: n != len(data)))
        packed = packed._replace(data=torch.zeros(rows, I))
    elif kind == "sizes_dtype":
        dtype = draw(st.sampled_from([torch.float32, torch.int32, torch.bool]))
        packed = packed._replace(batch_sizes=sizes.to(dtype))
    elif kind == "sizes_2d":
        packed = packed._replace(batch_sizes=sizes[None])
    elif kind == "empty":
        packed = packed._replace(data=data[:0], batch_sizes=sizes[:0])
    elif kind == "data_type":
        packed, exc = packed._replace(data=draw(st.sampled_from([data.tolist(), None]))), TypeError
    elif kind == "data_rank":
        packed = packed._replace(data=draw(st.sampled_from([data.flatten(), data[:, :, None]])))
    elif kind == "features":
        features = draw(st.integers(0, I + 3).filter(lambda n: n != I))
        packed = packed._replace(data=torch.zeros(len(data), features))
    elif kind in ("dtype", "float_dtype"):
        dtype = draw(st.sampled_from(NON_FLOAT if kind == "dtype" else OTHER_FLOAT))
        packed, exc = packed._replace(data=data.to(dtype)), TypeError
    elif kind == "device":
        packed = packed._replace(data=data.to("meta"))
    elif kind == "indices":
        order = torch.arange(B)
        sorted_indices, unsorted_indices = draw(st.sampled_from([
            (order, None), (None, order), (order + B, order), (order, order[:-1]),
            (order.float(), order), (torch.cat([order, order[:1]]), order),
            *([(torch.zeros(B, dtype=torch.int64), order)] if B > 1 else [])]))
        packed = packed._replace(sorted_indices=sorted_indices, unsorted_indices=unsorted_indices)
    else:
        kwargs, names = {"lengths": draw(st.sampled_from([lengths, sorted(lengths)[::-1]]))}, \
            ("lengths",)
    return Case(f"{family} {kind}: {_describe(packed)} {kwargs}", lambda: run(packed, **kwargs),
                exc, names)


# ---- hx ---------------------------------------------------------------------------------------
def state_sizes(family: str, layer) -> dict[str, int]:
    if family == "LSTM":
        return {"h0": layer.output_size, "c0": layer.hidden_size}
    return {"c0" if family == "SRU" else "h0": layer.hidden_size}


@st.composite
def hx_cases(draw) -> Case:
    family, layer = draw(layers())
    run = caller(draw, layer)
    T, B, I = draw(st.integers(1, 4)), draw(st.integers(1, 3)), layer.input_size
    form = draw(st.sampled_from(["batched", "unbatched", "packed"]))
    if form == "packed":
        x = rnnlab.pack_padded_sequence(torch.zeros(T, B, I), random_lengths(draw, T, B),
                                        enforce_sorted=False)
    else:
        x = torch.zeros(padded_shape(layer, T, B) if form == "batched" else (T, I))
    rows = layer.num_layers * layer.num_directions
    sizes = state_sizes(family, layer)
    good = {name: torch.zeros((rows, size) if form == "unbatched" else (rows, B, size))
            for name, size in sizes.items()}
    target = draw(st.sampled_from(sorted(sizes)))
    kinds = ["type", "shape", "dtype", "float_dtype", "device"]
    kind = draw(st.sampled_from(kinds + (["arity", "not_tuple"] if family == "LSTM"
                                         else ["wrapped"])))
    names, exc = (target,), ValueError
    if kind == "type":
        junk = [0.0, [0.0], "h", Opaque(), np.zeros(tuple(good[target].shape))]
        bad_state = draw(st.sampled_from(junk + [None] * (family == "LSTM")))  # None: no hx
        exc = TypeError
    elif kind == "shape":
        bad_state = torch.zeros(other_shape(draw, tuple(good[target].shape)))
    elif kind in ("dtype", "float_dtype"):
        dtype = draw(st.sampled_from(NON_FLOAT if kind == "dtype" else OTHER_FLOAT))
        bad_state, exc = good[target].to(dtype), TypeError
    elif kind == "device":
        bad_state = good[target].to("meta")
    states = [bad_state if kind in kinds and name == target else good[name] for name in sizes]
    if kind == "arity":
        hx, exc, names = draw(st.sampled_from([states[:1], states * 2, []])), TypeError, ("hx",)
        hx = tuple(hx) if draw(st.booleans()) else hx
    elif kind == "not_tuple":
        hx, exc, names = draw(st.sampled_from([states[0], {"h0": states[0]}])), TypeError, ("hx",)
    elif kind == "wrapped":
        hx, exc = draw(st.sampled_from([tuple(states), list(states), tuple(states) * 2])), TypeError
    else:
        hx = tuple(states) if family == "LSTM" else states[0]
    label = f"{family} {form} {kind} ({target}): hx={_describe(hx)}"
    return Case(label, lambda: run(x, hx), exc, names)


# ---- lengths ----------------------------------------------------------------------------------
def container(draw, values: list):
    """``values`` as a list, tuple, int64 / int32 tensor or numpy array."""
    return draw(st.sampled_from([list, tuple, torch.tensor,
                                 lambda v: torch.tensor(v, dtype=torch.int32), np.array]))(values)


@st.composite
def lengths_cases(draw) -> Case:
    family, layer = draw(layers())
    run = caller(draw, layer)
    T, B = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    x = torch.zeros(padded_shape(layer, T, B))
    valid = random_lengths(draw, T, B)
    kind = draw(st.sampled_from(["type", "dtype", "count", "rank", "range", "unbatched",
                                 "meta"]))
    exc = ValueError
    if kind == "type":
        lengths, exc = draw(st.sampled_from([
            "3,2", b"\x01", {"a": 1}, Opaque(), [None] * B, [[1], [1, 2]], ["a"] * B,
            [2**70] * B, {1, 2}])), TypeError
    elif kind == "dtype":
        lengths, exc = draw(st.sampled_from([
            [float(v) for v in valid], torch.tensor(valid, dtype=torch.float32),
            [True] * B, torch.tensor(valid, dtype=torch.complex64),
            np.array(valid, dtype=np.float64)])), TypeError
    elif kind == "count":
        count = draw(st.integers(0, B + 3).filter(lambda n: n != B))
        lengths = container(draw, (valid * 4)[:count])
    elif kind == "rank":
        lengths = draw(st.sampled_from([[[v] for v in valid], [valid, valid], T,
                                        torch.tensor(T)]))
    elif kind == "range":
        wrong, at = draw(st.sampled_from([0, -1, -T, T + 1, T + 5])), draw(st.integers(0, B - 1))
        lengths = container(draw, [wrong if k == at else v for k, v in enumerate(valid)])
    elif kind == "unbatched":
        x, lengths = torch.zeros(T, layer.input_size), container(draw, [T])
    else:
        lengths = torch.tensor(valid, device="meta")
    label = f"{family} {kind}: x={_describe(x)}, lengths={_describe(lengths)}"
    return Case(label, lambda: run(x, lengths=lengths), exc, ("lengths",))


# ---- cells ------------------------------------------------------------------------------------
CELL_OPTIONS = {
    "RNNCell": {"nonlinearity": choice(("tanh", "relu"))},
    "GRUCell": {"reset_after": FLAG, "layer_norm": FLAG},
    "LSTMCell": {"peephole": FLAG, "coupled": FLAG, "cell_clip": CELL_CLIP},
}


def cell_states(name: str, cell) -> dict[str, int]:
    if name in ("LSTMCell", "LayerNormLSTMCell"):
        return {"h": getattr(cell, "proj_size", 0) or cell.hidden_size, "c": cell.hidden_size}
    return {{"SRUCell": "c", "MinGRUCell": "hx", "MinLSTMCell": "hx"}.get(name, "h"):
            cell.hidden_size}


@st.composite
def cell_constructor_cases(draw) -> Case:
    name = draw(st.sampled_from(sorted(CELLS)))
    input_size, hidden_size = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    strategies = {"input_size": CELL_SIZE, "hidden_size": CELL_SIZE, "bias": FLAG,
                  "device": DEVICE, "dtype": DTYPE, **CELL_OPTIONS.get(name, {})}
    if name == "LSTMCell":
        strategies["proj_size"] = proj_size(hidden_size)
    if name == "GRUCell" and draw(st.integers(0, 9)) == 0:
        argument, options, exc = "layer_norm", {"layer_norm": True, "reset_after": False}, \
            ValueError
    else:
        argument = draw(st.sampled_from(sorted(strategies)))
        value, exc = draw(strategies[argument])
        options = {argument: value}
    kwargs = {"input_size": input_size, "hidden_size": hidden_size, **options}
    return Case(f"{name}(**{kwargs!r})", lambda: CELLS[name](**kwargs), exc, (argument,))


@st.composite
def cell_call_cases(draw) -> Case:
    name = draw(st.sampled_from(sorted(CELLS)))
    hidden = draw(st.integers(2, 5))
    options = {"proj_size": draw(st.integers(0, hidden - 1))} if name == "LSTMCell" else {}
    cell = CELLS[name](draw(st.integers(1, 4)), hidden, **options)
    B, I = draw(st.integers(1, 3)), cell.input_size
    shape = draw(st.sampled_from([(B, I), (I,)]))
    sizes = cell_states(name, cell)
    pair = len(sizes) == 2
    good = [torch.zeros(*shape[:-1], size) for size in sizes.values()]
    kind = draw(st.sampled_from(["input_type", "input_rank", "features", "dtype", "float_dtype",
                                 "device", "state_type", "state_shape", "state_dtype",
                                 "state_device"] + (["arity", "not_tuple"] if pair else [])))
    k = draw(st.integers(0, len(sizes) - 1))
    x, states, exc, names = torch.zeros(shape), list(good), ValueError, (list(sizes)[k],)
    if kind == "input_type":
        x, exc, names = draw(st.sampled_from([None, [0.0] * I, np.zeros(shape), 1.0])), \
            TypeError, ("input",)
    elif kind == "input_rank":
        x, names = draw(st.sampled_from([torch.tensor(0.0), torch.zeros(2, B, I),
                                         torch.zeros(B, B, I)])), ("input",)
    elif kind == "features":
        features = draw(st.integers(0, I + 3).filter(lambda n: n != I))
        x, names = torch.zeros(*shape[:-1], features), ("input",)
    elif kind in ("dtype", "float_dtype"):
        dtype = draw(st.sampled_from(NON_FLOAT if kind == "dtype" else OTHER_FLOAT))
        x, exc, names = x.to(dtype), TypeError, ("input",)
    elif kind == "device":
        x, names = x.to("meta"), ("input",)
    elif kind == "state_type":
        states[k], exc = draw(st.sampled_from([0.0, [0.0], "h", Opaque(),
                                               np.zeros(tuple(good[k].shape))])), TypeError
        if not pair and draw(st.booleans()):
            states = [tuple(good)]  # a tuple where one tensor is expected
    elif kind == "state_shape":
        states[k] = torch.zeros(other_shape(draw, tuple(good[k].shape)))
    elif kind == "state_dtype":
        dtype = draw(st.sampled_from(NON_FLOAT + OTHER_FLOAT))
        states[k], exc = good[k].to(dtype), TypeError
    elif kind == "state_device":
        states[k] = good[k].to("meta")
    state = tuple(states) if pair else states[0]
    if kind == "arity":
        state, exc, names = draw(st.sampled_from([good[:1], good * 2, tuple(good[:1])])), \
            TypeError, ("state",)
    elif kind == "not_tuple":
        state, exc, names = good[0], TypeError, ("state",)
    label = f"{name} {kind}: x={_describe(x)}, state={_describe(state)}"
    return Case(label, lambda: cell(x, state), exc, names)


# a backend forced at construction that cannot run a call: (family, options, input options)
REFUSED_CALLS = [
    ("MinGRU", {"backend": "cpu"}, {}), ("MinLSTM", {"backend": "cpu"}, {}),
    ("GRU", {"backend": "cpu", "dtype": torch.float16}, {"dtype": torch.float16}),
    ("SRU", {"backend": "cpu", "dtype": torch.bfloat16}, {"dtype": torch.bfloat16}),
    ("LSTM", {"backend": "cpu", "device": "meta"}, {"device": "meta"}),
    ("GRU", {"backend": "native", "device": "meta"}, {"device": "meta", "lengths": [1]}),
]


# ---- the rest of the public API: packing, Init, step, torch conversion, forced backends -------
@st.composite
def misc_cases(draw) -> Case:
    api = draw(st.sampled_from(["pack", "Init", "step", "from_torch", "to_torch", "backend"]))
    if api == "backend":
        family, options, call = draw(st.sampled_from(REFUSED_CALLS))
        layer = LAYERS[family](3, 4, **options)
        x = torch.zeros(2, 1, 3, dtype=call.get("dtype"), device=call.get("device"))
        kwargs = {"lengths": call["lengths"]} if "lengths" in call else {}
        return Case(f"{family}(3, 4, **{options})({_describe(x)}, **{kwargs})",
                    lambda: layer(x, **kwargs), ValueError, ("backend",))
    if api == "pack":
        T, B = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        lengths, x, kwargs = random_lengths(draw, T, B), torch.zeros(T, B, 2), {}
        kind = draw(st.sampled_from(["input_type", "input_rank", "empty", "lengths", "unsorted",
                                     "flag"]))
        exc, names = ValueError, ("input",)
        if kind == "input_type":
            x, exc = draw(st.sampled_from([None, x.tolist(), x.numpy(), 3.0])), TypeError
        elif kind == "input_rank":
            x = draw(st.sampled_from([torch.tensor(1.0), torch.zeros(T)]))
        elif kind == "empty":
            x, lengths = torch.zeros(0, B, 2), [0] * B
        elif kind == "lengths":
            lengths, exc = draw(st.sampled_from([
                (["a"] * B, TypeError), ([1.0] * B, TypeError), (lengths + [1], ValueError),
                ([T + 1] * B, ValueError), ([0] * B, ValueError)]))
            names = ("lengths",)
        elif kind == "unsorted":  # increasing, with the default enforce_sorted=True
            B = draw(st.integers(2, 3))
            x, lengths, names = torch.zeros(B, B, 2), list(range(1, B + 1)), ("lengths",)
        else:
            flag = draw(st.sampled_from(["batch_first", "enforce_sorted"]))
            kwargs = {flag: draw(st.sampled_from(["yes", 1, None, [True]]))}
            exc, names = TypeError, (flag,)
        label = f"pack_padded_sequence({_describe(x)}, {lengths!r}, **{kwargs})"
        return Case(label, lambda: rnnlab.pack_padded_sequence(x, lengths, **kwargs), exc, names)
    if api == "Init":
        field, value = draw(st.sampled_from([
            ("recurrent", "unitary"), ("recurrent", None), ("recurrent", ["orthogonal"]),
            ("gain", 0), ("gain", -1.0), ("gain", NAN), ("gain", "1"), ("gain", True),
            ("forget_bias", "1"), ("forget_bias", NAN), ("forget_bias", INF),
            ("chrono", 1), ("chrono", NAN), ("chrono", "100"), ("chrono", -INF)]))
        return Case(f"Init({field}={value!r})", lambda: rnnlab.Init(**{field: value}),
                    ValueError, ("init",))
    if api == "step":
        family = draw(st.sampled_from(["MinGRU", "MinLSTM"]))
        L, B = draw(st.integers(1, 2)), draw(st.integers(1, 3))
        layer = LAYERS[family](3, 4, num_layers=L)
        x, hx = torch.zeros(B, 3), torch.zeros(L, B, 4)
        kind = draw(st.sampled_from(["input_type", "input_shape", "input_dtype", "hx_type",
                                     "hx_shape", "hx_dtype", "bidirectional"]))
        exc, names = ValueError, ("input",)
        if kind == "input_type":
            x, exc = draw(st.sampled_from([None, [0.0] * 3, np.zeros(3)])), TypeError
        elif kind == "input_shape":
            x = torch.zeros(draw(st.sampled_from([(), (1, B, 3), (B, 4), (2,)])))
        elif kind == "input_dtype":
            x, exc = x.to(draw(st.sampled_from(NON_FLOAT + OTHER_FLOAT))), TypeError
        elif kind == "hx_type":
            hx, exc, names = draw(st.sampled_from([[0.0], 0.0, (hx,)])), TypeError, ("hx",)
        elif kind == "hx_shape":
            hx, names = torch.zeros(other_shape(draw, (L, B, 4))), ("hx",)
        elif kind == "hx_dtype":
            hx, exc, names = hx.to(draw(st.sampled_from(NON_FLOAT + OTHER_FLOAT))), TypeError, \
                ("hx",)
        else:
            layer, names = LAYERS[family](3, 4, num_layers=L, bidirectional=True), ("step",)
        label = f"{family}.step({_describe(x)}, {_describe(hx)}) [{kind}]"
        return Case(label, lambda: layer.step(x, hx), exc, names)
    if api == "from_torch":
        family = draw(st.sampled_from(sorted(LAYERS)))
        module = draw(st.sampled_from([nn.GRU(2, 3), nn.Linear(2, 3), nn.LSTMCell(2, 3), "lstm",
                                       None]))
        if family == "GRU" and isinstance(module, nn.GRU):
            module = nn.RNN(2, 3)
        return Case(f"{family}.from_torch({module!r})", lambda: LAYERS[family].from_torch(module),
                    TypeError, ("module",))
    family, options = draw(st.sampled_from([
        ("LSTM", {"peephole": True}), ("LSTM", {"coupled": True}), ("LSTM", {"cell_clip": 3.0}),
        ("LSTM", {"layer_norm": True}), ("LSTM", {"activation": "relu"}),
        ("GRU", {"reset_after": False}), ("GRU", {"gate_activation": "hard_sigmoid"}),
        ("RNN", {"zoneout": 0.1, "zoneout_eval": "expectation"}), ("SRU", {}), ("MinGRU", {}),
        ("MinLSTM", {})]))
    layer = LAYERS[family](2, 3, **options)
    return Case(f"{family}(2, 3, **{options}).to_torch()", layer.to_torch, ValueError,
                ("to_torch",))


# ---- the campaign: one malformed call per example ---------------------------------------------
@campaign(220)
@given(case=constructor_cases())
def test_layer_constructors(case, malformed):
    malformed("constructor", case.call, case.exc, *case.names)


@campaign(110)
@given(case=input_cases())
def test_layer_inputs(case, malformed):
    malformed("input", case.call, case.exc, *case.names)


@campaign(100)
@given(case=packed_cases())
def test_packed_sequences(case, malformed):
    malformed("packed", case.call, case.exc, *case.names)


@campaign(120)
@given(case=hx_cases())
def test_initial_states(case, malformed):
    malformed("hx", case.call, case.exc, *case.names)


@campaign(100)
@given(case=lengths_cases())
def test_lengths(case, malformed):
    malformed("lengths", case.call, case.exc, *case.names)


@campaign(60)
@given(case=cell_constructor_cases())
def test_cell_constructors(case, malformed):
    malformed("cell", case.call, case.exc, *case.names)


@campaign(100)
@given(case=cell_call_cases())
def test_cell_calls(case, malformed):
    malformed("cell", case.call, case.exc, *case.names)


@campaign(80)
@given(case=misc_cases())
def test_packing_init_step_conversion(case, malformed):
    malformed("misc", case.call, case.exc, *case.names)
