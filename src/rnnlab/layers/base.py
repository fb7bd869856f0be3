"""What every recurrent layer shares: torch's arguments and parameter names, initial states,
the call path ``validate → normalise → backend → outputs``, gate tracing, torch conversion.

A family (RNN, LSTM, GRU, SRU) subclasses :class:`RecurrentBase` and supplies its parameter
shapes, its state layout and its one-direction recurrence (``sequence`` / ``trace``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnlab.backends import BACKEND_NAMES, run, select_backend
from rnnlab.init import Init, apply_init, resolve_init
from rnnlab.layers import autocast, validate
from rnnlab.layers.sequence import from_batch, reverse_time, to_batch
from rnnlab.regularisers import NONE as NO_REGULARISERS
from rnnlab.regularisers import prepare

INITIAL_STATES = ("zeros", "random", "learned")


class RecurrentBase(nn.Module):
    """Base of :class:`rnnlab.RNN`, :class:`rnnlab.LSTM`, :class:`rnnlab.GRU`, :class:`rnnlab.SRU`.

    Args (as :class:`torch.nn.RNNBase`):
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        proj_size (LSTM only), device, dtype.
    Keyword-only args:
        backend: ``"auto"`` (fastest engine that gives the same result), ``"reference"``
            (time loop + hand-derived BPTT) or ``"native"`` (torch's fused op).
        initial_state: state used when none is passed: ``"zeros"`` (torch's behaviour),
            ``"random"`` (``U(-1, 1)`` drawn per call) or ``"learned"`` (parameters
            ``initial_h`` / ``initial_c`` of shape (L·D, S), shared over the batch).
        init: initialisation policy applied after torch's default draw: ``"torch"`` (default,
            unchanged), ``"orthogonal"``, ``"identity"``, ``"forget_bias:1"``, ``"chrono:T"``
            or an :class:`rnnlab.Init`; see :mod:`rnnlab.init`.
    """

    gate_count: int = 1  # row blocks in weight_ih / weight_hh
    state_names: tuple[str, ...] = ("h0",)  # pieces of hx, in order
    torch_class: type[nn.Module] | None = None
    regularisers = NO_REGULARISERS  # a family's __init__ sets its own (rnnlab.regularisers)
    generator: torch.Generator | None = None  # where regulariser masks are drawn, None: global
    _compute_dtype: torch.dtype | None = None  # under autocast: the dtype of cell_params
    # the layer's family, "LSTM", "GRU", "RNN", "SRU" …: its class in rnnlab.layers, which a
    # subclass (a user's, or the copy torch's parametrizations make) inherits
    family: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("rnnlab.layers."):
            cls.family = cls.__name__

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, *, backend: str = "auto", initial_state: str = "zeros",
                 init="torch", device=None, dtype=None):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            validate.check_int(name, value)
        validate.check_proj_size(proj_size, hidden_size)
        if proj_size and self.family != "LSTM":
            raise ValueError(f"proj_size: only LSTM supports a projection, not {self.family}")
        for name, value in (("bias", bias), ("batch_first", batch_first),
                            ("bidirectional", bidirectional)):
            validate.check_bool(name, value)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout: expected a number in [0, 1], got {dropout!r}")
        validate.check_choice("backend", backend, BACKEND_NAMES)
        validate.check_choice("initial_state", initial_state, INITIAL_STATES)
        validate.check_factory(device, dtype)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.backend, self.initial_state = backend, initial_state
        self.init = resolve_init(init)
        kw = {"device": device, "dtype": dtype}
        self._param_keys: list[list[dict[str, str]]] = []
        for k in range(num_layers):
            layer_input = input_size if k == 0 else self.output_size * self.num_directions
            keys = []
            for d in range(self.num_directions):
                suffix = f"_l{k}" + ("_reverse" if d else "")
                names = {}
                for short, shape in self.param_shapes(layer_input).items():
                    self.register_parameter(short + suffix, nn.Parameter(torch.empty(shape, **kw)))
                    names[short] = short + suffix
                keys.append(names)
            self._param_keys.append(keys)
        if initial_state == "learned":
            for name, size in zip(self.state_names, self.state_sizes()):
                rows = num_layers * self.num_directions
                setattr(self, "initial_" + name[0], nn.Parameter(torch.zeros(rows, size, **kw)))
        self.reset_parameters()
        if backend == "native" and (reason := self.torch_op_lacks()
                                    or self.native_unsupported()):
            raise ValueError(f"backend: 'native' cannot run this configuration: {reason}")

    # ---- what a family supplies -------------------------------------------------------------
    def param_shapes(self, layer_input: int) -> dict[str, tuple[int, ...]]:
        """Parameter shapes of one direction of one layer (torch's names and order)."""
        H, rows = self.hidden_size, self.gate_count * self.hidden_size
        shapes = {"weight_ih": (rows, layer_input), "weight_hh": (rows, self.output_size)}
        if self.bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, H)
        return shapes

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def bptt(self, masks) -> tuple:
        """This layer's hand-derived BPTT (:mod:`rnnlab.bptt`): ``(sequence, trace, extra)``,
        each function called as ``f(x, state, params, mask, *extra)``; ``masks`` are the
        regulariser masks of this call (:func:`rnnlab.regularisers.prepare`)."""
        raise NotImplementedError

    def sequence(self, x, state, params, mask, masks=None):
        """One direction of one layer on the reference engine: ``(y (T, B, H_out),
        final_state)``; ``params`` and ``masks`` as :func:`rnnlab.layers.stack.run_stacked`
        passes them (regularisers applied)."""
        run, _, extra = self.bptt(masks)
        return run(x, state, params, mask, *extra)

    def trace_sequence(self, x, state, params, mask) -> dict[str, Tensor]:
        """Like :meth:`sequence`, but returns the per-step gates and states, ``h`` included."""
        params, masks = prepare(self, x, params)
        _, trace, extra = self.bptt(masks)
        return trace(x, state, params, mask, *extra)

    def native_unsupported(self) -> str | None:
        """Why torch's fused op cannot run this configuration, or None."""
        return None

    def activation_options(self) -> list[str]:
        """The non-default activations of this layer, as ``"option=value"`` strings."""
        return []

    def torch_op_lacks(self, training: bool | None = None) -> str | None:
        """What torch's fused op lacks to compute this layer in this mode (``training``,
        default ``self.training``) beyond :meth:`native_unsupported`: non-default activations,
        and regularisers that change the function (recurrent dropout, zoneout, weight dropout
        while training; the zoneout expectation in eval mode). None when torch's op may run it.
        The ``native`` engine and :meth:`to_torch` refuse a layer for which this is not None;
        rnnlab's own engines say in their ``unsupported`` what they compute."""
        training = self.training if training is None else training
        extras = self.activation_options() + self.regularisers.changes(training)
        return f"torch's fused op does not compute {', '.join(extras)}" if extras else None

    def extra_repr_options(self) -> list[str]:
        return []

    # ---- shared machinery -------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def reset_parameters(self) -> None:
        """torch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)); then the ``init``
        policy (:func:`rnnlab.init.apply_init`), which leaves it unchanged by default."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if not name.startswith("initial_"):
                    p.uniform_(-bound, bound)
        apply_init(self, self.init)

    def cell_params(self, layer: int, direction: int) -> dict[str, Tensor]:
        """Parameters of one layer and direction by their short names (``weight_ih`` …), in
        the dtype the layer computes in (:mod:`rnnlab.layers.autocast`)."""
        params = {short: getattr(self, full)
                  for short, full in self._param_keys[layer][direction].items()}
        if self._compute_dtype is not None:
            params = {short: p.to(self._compute_dtype) for short, p in params.items()}
        return params

    def weights(self) -> list[Tensor]:
        """The parameters of every layer and direction, as the engines read them (by name: a
        replica made by :func:`torch.nn.parallel.replicate` holds them as plain tensors, which
        ``parameters()`` does not list)."""
        return [getattr(self, full) for keys in self._param_keys for names in keys
                for full in names.values()]

    def records_grad(self, x: Tensor) -> bool:
        """Whether a call on ``x`` records autograd's graph (grad mode on, and ``x`` or a weight
        requires grad): a training call, for the engines' measured speed rules."""
        if not torch.is_grad_enabled():
            return False
        return x.requires_grad or any(p.requires_grad for p in self.weights())

    def flatten_parameters(self) -> None:
        """Put the recurrent weights in one contiguous buffer for cuDNN, as
        :meth:`torch.nn.RNNBase.flatten_parameters`: on CUDA, for a configuration cuDNN runs,
        the parameters become views into one chunk, so the native engine does not compact them
        at every call. Elsewhere (CPU, SRU, variants torch lacks) there is nothing to do."""
        if self.native_unsupported() is not None:
            return
        weights = self.weights()
        first = weights[0]
        if (not first.is_cuda or not torch._use_cudnn_rnn_flatten_weight()
                or not torch.backends.cudnn.is_acceptable(first)
                or any(w.dtype != first.dtype or not w.is_cuda for w in weights)
                or len({w.data_ptr() for w in weights}) != len(weights)):
            return
        from torch.backends.cudnn import rnn as cudnn_rnn

        per_direction = (4 if self.bias else 2) + (1 if self.proj_size else 0)
        with torch.cuda.device_of(first), torch.no_grad():
            torch._cudnn_rnn_flatten_weight(
                weights, per_direction, self.input_size, cudnn_rnn.get_cudnn_mode(
                    self.native_mode), self.hidden_size, self.proj_size, self.num_layers,
                self.batch_first, self.bidirectional)

    def _apply(self, fn, recurse=True):
        module = super()._apply(fn, recurse)
        self.flatten_parameters()  # as torch.nn after .cuda() / .to(): one buffer again
        return module

    def initial_states(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        rows = self.num_layers * self.num_directions
        states = []
        for name, size in zip(self.state_names, self.state_sizes()):
            if self.initial_state == "learned":
                learned = getattr(self, "initial_" + name[0])
                states.append(learned.unsqueeze(1).expand(rows, batch, size))
            elif self.initial_state == "random":
                states.append(torch.rand(rows, batch, size, dtype=like.dtype, device=like.device)
                              * 2 - 1)
            else:
                states.append(like.new_zeros(rows, batch, size))
        return tuple(states)

    def split_hx(self, hx) -> tuple[Tensor, ...]:
        """torch's ``hx`` (a tensor, or a tuple for LSTM) as a tuple of state tensors."""
        return (hx,)

    def join_hx(self, states: tuple[Tensor, ...]):
        return states[0]

    def _prepare(self, input, hx, lengths):
        validate.check_input(self, input, lengths)
        batch, unbatched = to_batch(input, lengths, self.batch_first)
        B = batch.x.shape[1]
        rows = self.num_layers * self.num_directions
        if hx is None:
            states = self.initial_states(B, batch.x)
        else:
            states = self.split_hx(hx)
            for name, state, size in zip(self.state_names, states, self.state_sizes()):
                expected = (rows, size) if unbatched else (rows, B, size)
                validate.check_state(self, state, name, expected)
            if unbatched:
                states = tuple(s.unsqueeze(1) for s in states)
        return batch, unbatched, states

    def forward(self, input, hx=None, *, lengths=None):
        """Run the layer. ``input``: (T, B, I), (B, T, I) with ``batch_first``, (T, I)
        unbatched, or a PackedSequence; ``lengths`` (B,) optionally marks padded steps of a
        tensor input. Returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for LSTM) as torch.
        """
        batch, unbatched, states = self._prepare(input, hx, lengths)
        dtype = autocast.compute_dtype(self, batch.x)
        if dtype is None:
            out, finals = run(select_backend(self, batch), self, batch, states)
        else:  # torch.autocast: torch.nn's dtype rules, the same on every engine
            batch = autocast.cast_batch(batch, dtype)
            states = tuple(s.to(dtype) for s in states)
            with autocast.computing_in(self, dtype, batch.x.device.type):
                out, finals = run(select_backend(self, batch), self, batch, states)
        if unbatched:
            finals = tuple(s.squeeze(1) for s in finals)
        return from_batch(out, batch, unbatched, self.batch_first), self.join_hx(finals)

    @torch.no_grad()
    def trace(self, input, hx=None, *, lengths=None) -> list[dict[str, Tensor]]:
        """Per-step gate activations and cell states, for diagnostics and plots.

        Returns one dict per layer and direction (index ``layer * D + direction``) mapping a
        gate name (``i, f, g, o`` / ``r, z, n`` / ``f, r``) or state (``c``, ``h``) to a
        (T, B, H) tensor in time order, always time-major. Uses the reference forward; the
        normal call path is untouched.
        """
        batch, _, states = self._prepare(input, hx, lengths)
        mask, rev = batch.mask, batch.reverse_index()
        x, traces = batch.x, []
        for k in range(self.num_layers):
            outputs = []
            for d in range(self.num_directions):
                index = k * self.num_directions + d
                state = tuple(s[index] for s in states)
                x_dir = x if d == 0 else reverse_time(x, rev)
                params = self.cell_params(k, d)
                gates = self.trace_sequence(x_dir, state, params, mask)
                if d == 1:
                    gates = {name: reverse_time(v, rev) for name, v in gates.items()}
                traces.append(gates)
                outputs.append(gates["h"])
            x = torch.cat(outputs, dim=-1)
        return traces

    # ---- torch interop ----------------------------------------------------------------------
    def torch_kwargs(self) -> dict:
        kw = dict(input_size=self.input_size, hidden_size=self.hidden_size,
                  num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                  dropout=self.dropout, bidirectional=self.bidirectional)
        if self.proj_size:
            kw["proj_size"] = self.proj_size
        return kw

    @classmethod
    def from_torch(cls, module: nn.Module, **options):
        """Build the rnnlab layer equivalent to a ``torch.nn`` layer, weights included."""
        if cls.torch_class is None:
            raise TypeError(f"module: torch.nn has no {cls.__name__} to convert from")
        if not isinstance(module, cls.torch_class):
            raise TypeError(f"module: expected torch.nn.{cls.torch_class.__name__}, got "
                            f"{type(module).__name__}")
        ref = next(module.parameters())
        kw = {k: getattr(module, k) for k in ("input_size", "hidden_size", "num_layers", "bias",
                                               "batch_first", "dropout", "bidirectional")}
        if getattr(module, "proj_size", 0):
            kw["proj_size"] = module.proj_size
        if getattr(module, "nonlinearity", None):
            kw["nonlinearity"] = module.nonlinearity
        layer = cls(**kw, **options, device=ref.device, dtype=ref.dtype)
        layer.load_state_dict(module.state_dict(), strict=False)
        return layer

    def to_torch(self) -> nn.Module:
        """The equivalent ``torch.nn`` layer, weights included."""
        # regularisers are dropped: the torch module computes this layer's eval-mode function
        if reason := self.torch_op_lacks(training=False) or self.native_unsupported():
            raise ValueError(f"to_torch: torch.nn has no equivalent of this layer: {reason}")
        ref = next(self.parameters())
        module = self.torch_class(**self.torch_kwargs(), device=ref.device, dtype=ref.dtype)
        module.load_state_dict({k: v for k, v in self.state_dict().items()
                                if not k.startswith("initial_")})
        return module

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False), ("proj_size", 0),
                              ("backend", "auto"), ("initial_state", "zeros"), ("init", Init())):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return ", ".join([s, *self.extra_repr_options(), *self.activation_options(),
                          *self.regularisers.repr_options(self.family)])
