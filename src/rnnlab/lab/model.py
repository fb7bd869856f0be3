"""``SequenceModel``: one rnnlab recurrent layer between an input encoding and a linear head,
wired for the shape of a lab task (many-to-one, many-to-many, seq2seq, one-to-many,
one-to-one)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from rnnlab.lab.tasks.base import Task

logger = logging.getLogger(__name__)

CELLS = ("rnn", "lstm", "gru", "sru", "mingru", "minlstm")
# rnnlab class name of each cell (the min cells are the parallel-scan MinGRU / MinLSTM)
_CLASS_NAMES = {"mingru": "MinGRU", "minlstm": "MinLSTM"}


def layer_class(cell: str) -> type[nn.Module]:
    """The rnnlab layer class of ``cell`` (``"rnn"`` → :class:`rnnlab.RNN`, ``"mingru"`` →
    :class:`rnnlab.MinGRU`, …)."""
    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {cell!r}")
    import rnnlab

    name = _CLASS_NAMES.get(cell, cell.upper())
    cls = getattr(rnnlab, name, None)
    if cls is None:
        raise ValueError(f"cell: rnnlab.{name} is not available in this version of rnnlab")
    return cls


@dataclass
class HiddenStates:
    """What :meth:`SequenceModel.hidden_states` returns.

    pred: the model's prediction, the same as ``model(x, y)`` up to float rounding.
    h: ``h[d][k]``, the (B, H_out) output of the last recurrent layer at step k (time order)
        in direction d (0 forward, 1 backward when bidirectional).
    c: the same for the cell state (LSTM, SRU), None for RNN, GRU, minGRU and minLSTM.

    Every tensor is a node of the graph that computed ``pred``, and the one the recurrence
    carries to the next step (for RNN, GRU and LSTM ``h``; for LSTM and SRU ``c``), so
    ``torch.autograd.grad(loss, h[0])`` gives the total derivatives ∂L/∂h_k, every path
    through later steps included. SRU's ``h_k`` is not recurrent (its recurrence runs on
    ``c``), so for SRU ∂L/∂h_k holds only the direct path and ∂L/∂c_k is the one to measure.
    A state the loss does not read (LSTM's last ``c``, SRU's early ``h`` in a many-to-one
    task) is unused by the graph: pass ``materialize_grads=True`` to get zeros for it.
    """

    pred: Tensor
    h: list[list[Tensor]]
    c: list[list[Tensor]] | None


class SequenceModel(nn.Module):
    """An rnnlab recurrent layer wired for a task.

    * Input: symbols (``task.token_input``) go through ``embedding`` (an ``nn.Embedding`` of
      ``embedding_size``); float features go into the layer as they are.
    * ``rnn``: the rnnlab layer (``rnnlab.RNN`` / ``LSTM`` / ``GRU`` / ``SRU`` / ``MinGRU`` /
      ``MinLSTM``), time-major,
      with ``num_layers``, ``bidirectional`` and ``layer_options`` (``nonlinearity``,
      ``dropout``, ``backend``, ``peephole`` …) passed through. Diagnostics reach it as
      ``model.rnn`` (and the decoder as ``model.decoder`` for seq2seq).
    * ``head``: a linear map from the layer's output (D·H_out) to ``task.output_size``
      (logits for a class target, values for a real one).

    By shape: many-to-one and one-to-one read the last step of each direction (forward at
    T − 1, backward at 0); many-to-many applies the head at every step; one-to-many feeds the
    single input vector at step 0 and zeros after, for ``task.output_len`` steps; seq2seq
    (Cho et al. 2014) encodes the source with ``rnn`` into a context vector (its last step per
    direction), then ``decoder`` (a unidirectional layer of the same cell) reads at each step
    the previous target symbol (``decoder_embedding``, with a start symbol at index
    ``output_size``) joined to the context. Given ``y`` it decodes with teacher forcing;
    without it, greedily, one step at a time.

    Args:
        cell: ``"rnn"``, ``"lstm"``, ``"gru"``, ``"sru"``, ``"mingru"`` or ``"minlstm"`` (the
            min cells carry only ``h``, and have no recurrent matrix).
        task: the :class:`~rnnlab.lab.tasks.base.Task` it is built for (sizes and shape).
        hidden_size: H, per direction.
        num_layers, bidirectional: of ``rnn`` (a causal task refuses ``bidirectional``).
        embedding_size: width of the symbol embeddings (default 32).
        layer_options: more keyword arguments of the rnnlab layer.
    """

    def __init__(self, cell: str, task: Task, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, embedding_size: int = 32, **layer_options):
        super().__init__()
        cls = layer_class(cell)
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers),
                            ("embedding_size", embedding_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if bidirectional and task.causal:
            raise ValueError(f"bidirectional: task {task.name!r} is causal (its target at step t "
                             "is the input at a later step), a backward direction would read "
                             "the answer")
        for reserved in ("input_size", "hidden_size", "num_layers", "bidirectional",
                         "batch_first"):
            if reserved in layer_options:
                raise ValueError(f"{reserved}: set by SequenceModel, not a layer option")
        self.cell, self.task_shape = cell, task.shape
        self.output_len = task.output_len
        self.layer_options = dict(layer_options)
        self._layer_cls = cls
        self.embedding = (nn.Embedding(task.input_size, embedding_size)
                          if task.token_input else None)
        rnn_input = embedding_size if task.token_input else task.input_size
        self.rnn = cls(rnn_input, hidden_size, num_layers=num_layers,
                       bidirectional=bidirectional, **layer_options)
        width = self.rnn.output_size * self.rnn.num_directions
        if task.shape == "seq2seq":
            self.decoder_embedding = nn.Embedding(task.output_size + 1, embedding_size)
            self.start_symbol = task.output_size
            self.decoder = cls(embedding_size + width, hidden_size, num_layers=num_layers,
                               **layer_options)
            width = self.decoder.output_size
        else:
            self.decoder_embedding = self.decoder = None
        self.head = nn.Linear(width, task.output_size)
        self._clones: dict = {}  # single-layer twins of ``rnn`` for hidden_states (not modules)

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Predictions for a task batch ``x``; ``y`` (seq2seq only) enables teacher forcing."""
        out = self.rnn(self._inputs(x))[0]
        return self._readout(out, y)

    def hidden_states(self, x: Tensor, y: Tensor | None = None) -> HiddenStates:
        """Run like :meth:`forward`, but the last layer of ``rnn`` one step at a time, and
        return the prediction with that layer's per-step states (see :class:`HiddenStates`).

        To measure how the gradient of the loss reaches each step (vanishing / exploding)::

            hs = model.hidden_states(x, y)
            loss = task.loss(hs.pred, y)
            grads = torch.autograd.grad(loss, hs.h[0])   # ∂L/∂h_k, k = 0 … T-1
            norms = [g.norm(dim=-1).mean() for g in grads]

        For seq2seq the states are the encoder's. Lower layers (``num_layers > 1``) run as one
        call. Slower than :meth:`forward` (T calls of the layer); gradients wrt the
        parameters are the same.
        """
        out, h, c = self._unrolled(self._inputs(x))
        return HiddenStates(self._readout(out, y), h, c)

    # ---- pieces -----------------------------------------------------------------------------
    def _inputs(self, x: Tensor) -> Tensor:
        """The layer's input (T, B, I) for a task batch."""
        if self.task_shape == "one-to-many":
            steps = x.new_zeros(self.output_len, *x.shape)
            steps[0] = x
            return steps
        return self.embedding(x) if self.embedding is not None else x

    def _last(self, out: Tensor) -> Tensor:
        """The last step of each direction: forward at T − 1, backward at 0."""
        if self.rnn.num_directions == 1:
            return out[-1]
        H = self.rnn.output_size
        return torch.cat([out[-1, :, :H], out[0, :, H:]], dim=-1)

    def _readout(self, out: Tensor, y: Tensor | None) -> Tensor:
        if self.task_shape in ("many-to-one", "one-to-one"):
            return self.head(self._last(out))
        if self.task_shape == "seq2seq":
            return self._decode(self._last(out), y)
        return self.head(out)

    def _decode(self, context: Tensor, y: Tensor | None) -> Tensor:
        B = context.shape[0]
        if y is not None:
            start = y.new_full((1, B), self.start_symbol)
            previous = torch.cat([start, y[:-1].clamp_min(0)], dim=0)
            steps = torch.cat([self.decoder_embedding(previous),
                               context.unsqueeze(0).expand(y.shape[0], -1, -1)], dim=-1)
            return self.head(self.decoder(steps)[0])
        symbol = torch.full((B,), self.start_symbol, dtype=torch.long, device=context.device)
        state, logits = None, []
        for _ in range(self.output_len):
            step = torch.cat([self.decoder_embedding(symbol), context], dim=-1).unsqueeze(0)
            out, state = self.decoder(step, state)
            logits.append(self.head(out[0]))
            symbol = logits[-1].argmax(-1)
        return torch.stack(logits)

    def _clone(self, num_layers: int, bidirectional: bool, input_size: int) -> nn.Module:
        """A twin of ``rnn`` with fewer layers (weights come from ``rnn`` at call time)."""
        key = (num_layers, bidirectional, input_size)
        if key not in self._clones:
            options = dict(self.layer_options)
            if num_layers == 1:
                options.pop("dropout", None)
            ref = next(self.rnn.parameters())
            with torch.random.fork_rng(devices=[]):  # building it must not move the RNG
                self._clones[key] = self._layer_cls(
                    input_size, self.rnn.hidden_size, num_layers=num_layers,
                    bidirectional=bidirectional, device=ref.device, dtype=ref.dtype, **options)
        return self._clones[key]

    def _params_of(self, clone: nn.Module, layer_map: dict[tuple[int, int], tuple[int, int]]):
        """``rnn``'s parameters under the clone's names: clone (layer, dir) ← rnn (layer, dir)."""
        params = {}
        for (k, d), (k_src, d_src) in layer_map.items():
            names = clone._param_keys[k][d]
            source = self.rnn.cell_params(k_src, d_src)
            params.update({names[short]: source[short] for short in names})
        return params

    def _unrolled(self, inputs: Tensor):
        rnn = self.rnn
        L, D = rnn.num_layers, rnn.num_directions
        T, B = inputs.shape[:2]
        initial = rnn.initial_states(B, inputs)  # pieces (L·D, B, S)
        x = inputs
        if L > 1:
            lower = self._clone(L - 1, rnn.bidirectional, rnn.input_size)
            layer_map = {(k, d): (k, d) for k in range(L - 1) for d in range(D)}
            hx = rnn.join_hx(tuple(s[:(L - 1) * D] for s in initial))
            x = functional_call(lower, self._params_of(lower, layer_map), (x, hx))[0]
            if rnn.dropout and self.training:
                x = F.dropout(x, rnn.dropout, training=True)
        step = self._clone(1, False, x.shape[-1])
        names = [n[0] for n in rnn.state_names]
        outputs, hs, cs = [], [], []
        for d in range(D):
            params = self._params_of(step, {(0, 0): (L - 1, d)})
            row = (L - 1) * D + d
            state = tuple(s[row:row + 1] for s in initial)
            h_dir: list = [None] * T
            c_dir: list = [None] * T
            for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                out, new = functional_call(step, params, (x[t:t + 1], rnn.join_hx(state)))
                new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
                h_dir[t] = out[0]
                pieces = {"h": h_dir[t]}
                if "c" in names:
                    c_dir[t] = pieces["c"] = new[names.index("c")][0]
                # carry the very tensors handed out, so gradients wrt them are total
                state = tuple(pieces[name].unsqueeze(0) for name in names)
            hs.append(h_dir)
            cs.append(c_dir)
            outputs.append(torch.stack(h_dir))
        out = torch.cat(outputs, dim=-1)
        return out, hs, (cs if "c" in names else None)

    def parameter_count(self) -> int:
        """Number of trainable parameters (all of them: encoding, layers, head)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def recurrent_parameter_count(self) -> int:
        """Parameters of the recurrent layer(s) only (``rnn`` and ``decoder``)."""
        layers = [self.rnn] + ([self.decoder] if self.decoder is not None else [])
        return sum(p.numel() for layer in layers for p in layer.parameters())
