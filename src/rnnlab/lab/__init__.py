"""The lab: tasks of every shape, a model wrapper, training with checkpoints, diagnostics and
reports, reachable from Python and from the ``rnnlab`` command line.

>>> from rnnlab.lab import TrainConfig, train
>>> result = train(TrainConfig(task="adding", cell="lstm", hidden=32, seq_len=20, steps=50))
>>> result.final_metric, result.chance  # test MSE against 1/6

``rnnlab.lab.train`` is the function; import the module's other names from it directly
(``from rnnlab.lab.train import TrainConfig, evaluate``). ``rnnlab.lab.compare`` is likewise
the function of :mod:`rnnlab.lab.compare` (``from rnnlab.lab.compare import plan``).
"""

from rnnlab.lab.checkpoint import CheckpointError, CheckpointWriteError
from rnnlab.lab.compare import CompareResult, compare
from rnnlab.lab.guards import NonFiniteInputError
from rnnlab.lab.model import CELLS, HiddenStates, SequenceModel
from rnnlab.lab.tasks import TASKS, Task, make_task
from rnnlab.lab.train import (
    TrainConfig,
    TrainingInterrupted,
    TrainResult,
    evaluate,
    load_model,
    make_model,
    train,
)

__all__ = [
    "CELLS",
    "TASKS",
    "CheckpointError",
    "CheckpointWriteError",
    "CompareResult",
    "HiddenStates",
    "NonFiniteInputError",
    "SequenceModel",
    "Task",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "compare",
    "evaluate",
    "load_model",
    "make_model",
    "make_task",
    "train",
]
