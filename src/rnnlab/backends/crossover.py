"""``backend="auto"`` on CUDA by measurement: which engine is fastest for a call, read from the
committed crossover table (``crossover_cuda.json``, format in
:mod:`rnnlab.backends.crossover_table`, produced by ``benchmarks/gpu_check.sh`` on a GPU).

A call's rows are those of its layer's family, configuration class (:func:`config_class`), input
dtype and mode (``train`` when the call records autograd's graph, else ``infer``). Of them it
takes the measured point nearest in log-space of the batch B and hidden size H,

.. math::
    d^2 = (\\ln B - \\ln B_r)^2 + (\\ln H - \\ln H_r)^2,

so beyond the measured grid the nearest edge holds. Rows at the same distance (one (B, H)
measured at several lengths T, or a call midway between grid points) go to the one nearest in
``ln T``, then to the smaller B and H. Then :func:`fastest`: among the engines timed in that row that can run
the call, the first in ``AUTO_ORDER`` whose time is within 5 % of the fastest one's. So ``auto``
is never more than 5 % slower than the fastest engine measured for the row, and on a near tie it
keeps the earlier engine: cuDNN (``native``) before ``triton``, which is taken only where it
measured more than 5 % faster, or where cuDNN cannot run the call. The row is measured on one
unidirectional layer; stacked, bidirectional and packed calls take the same row.

With no rows for the call (an empty table: nothing measured yet) :func:`measured_choice` is None
and :func:`rnnlab.backends.select_backend` keeps its order.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from rnnlab.backends.crossover_table import FAMILIES, Row, Table, load

TABLE = Path(__file__).with_name("crossover_cuda.json")
TOLERANCE = 1.05  # auto within 5 % of the fastest engine measured for the row


def config_class(layer) -> str | None:
    """The layer's configuration class (:data:`rnnlab.backends.crossover_table.CONFIGS`): the
    first that applies of ``layer_norm``; ``peephole_clip_coupled`` (LSTM peepholes, cell
    clipping, coupled gates); ``reset_before`` (GRU ``reset_after=False``); ``activations``
    (non-default ones); ``regularisers`` (those that change this mode's function); else
    ``plain``. None for a family the table does not measure."""
    if layer.family not in FAMILIES:
        return None
    if getattr(layer, "layer_norm", False):
        return "layer_norm"
    if layer.family == "LSTM" and (layer.peephole or layer.options.cell_clip is not None
                                   or layer.options.coupled):
        return "peephole_clip_coupled"
    if layer.family == "GRU" and not layer.reset_after:
        return "reset_before"
    if layer.activation_options():
        return "activations"
    if layer.regularisers.changes(layer.training):
        return "regularisers"
    return "plain"


def fastest(us_per_step: dict[str, float], runnable: list[str]) -> str | None:
    """The first engine of ``runnable`` (in ``AUTO_ORDER`` order) whose time is within
    :data:`TOLERANCE` of the fastest of them; None when none was timed."""
    timed = [name for name in runnable if name in us_per_step]
    if not timed:
        return None
    best = min(us_per_step[name] for name in timed)
    return next(name for name in timed if us_per_step[name] <= TOLERANCE * best)


class Crossover:
    """A table's rows indexed by (family, config, dtype, mode), for the nearest-point lookup."""

    def __init__(self, table: Table):
        self.source = table.source
        self._rows: dict[tuple, list[Row]] = {}
        for row in table.rows:
            self._rows.setdefault(row.key[:4], []).append(row)

    def nearest(self, family: str, config: str, dtype: str, mode: str, B: int, H: int,
                T: int) -> Row | None:
        """The row of this family, config, dtype and mode nearest to (B, H) in log-space (then
        to T), or None when the table has none."""
        rows = self._rows.get((family, config, dtype, mode))
        if not rows:
            return None

        def distance(row):
            return (math.hypot(math.log(B / row.B), math.log(H / row.H)),
                    abs(math.log(T / row.T)), row.B, row.H, row.T)

        return min(rows, key=distance)


@functools.cache
def committed() -> Crossover:
    """The package's table, loaded (and validated) once."""
    return Crossover(load(TABLE))


def measured_choice(layer, batch, candidates: list[str], can_run) -> str | None:
    """The engine the table measured fastest for this call among ``candidates`` (engine names
    in ``AUTO_ORDER`` order) for which ``can_run(name)``; None without rows for the call or
    when none of the row's engines can run it."""
    config = config_class(layer)
    if config is None:
        return None
    x = batch.x
    mode = "train" if layer.records_grad(x) else "infer"
    row = committed().nearest(layer.family, config, str(x.dtype).removeprefix("torch."), mode,
                              x.shape[1], layer.hidden_size, x.shape[0])
    if row is None:
        return None
    return fastest(row.us_per_step, [name for name in candidates
                                     if name in row.us_per_step and can_run(name)])
