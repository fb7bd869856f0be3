"""The lab: tasks of every shape, a model wrapper, training with checkpoints, diagnostics and
reports, reachable from Python and from the ``rnnlab`` command line.

>>> from rnnlab.lab import TrainConfig, train
>>> result = train(TrainConfig(task="adding", cell="lstm", hidden=32, seq_len=20, steps=50))
>>> result.final_metric  # test MSE; chance is 1/6
"""

from rnnlab.lab.tasks import TASKS, Task, make_task

__all__ = ["TASKS", "Task", "make_task"]
