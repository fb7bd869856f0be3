"""The lab's tasks, one module each, and a registry to build them by name.

=============  ============  ===========  ==========================================
name           shape         metric       chance
=============  ============  ===========  ==========================================
adding         many-to-one   mse          1/6 (predict the mean sum, 1)
digits         many-to-one   accuracy     0.1 (T = 8 rows or T = 64 pixels)
digits-flat    one-to-one    accuracy     0.1 (T = 1)
digit-draw     one-to-many   mse          predict the mean image (from the data)
charlm         many-to-many  bpc          log2(vocabulary size)
sunspots       many-to-many  mse          predict the training mean (from the data)
copy           many-to-many  xent         10 ln 8 / (T + 20)
future         many-to-many  accuracy     1 / vocab (bidirectional layers win)
music          many-to-many  nll          per-key training frequencies (from the data)
mnist          many-to-one   accuracy     0.1 (T = 784 pixels or T = 28 rows)
pmnist         many-to-one   accuracy     0.1 (the pixels in a fixed random order)
reverse        seq2seq       accuracy     1 / vocab
sort           seq2seq       accuracy     1 / vocab
=============  ============  ===========  ==========================================

Every task takes ``seq_len`` (None: its default) and ``train_size`` (None: no cap), and some
take more (``vocab``, ``offset``, ``text``, ``dataset``); see each class.
"""

from __future__ import annotations

from rnnlab.lab.tasks.adding import AddingTask
from rnnlab.lab.tasks.base import SHAPES, Task
from rnnlab.lab.tasks.charlm import CharLMTask
from rnnlab.lab.tasks.copy_memory import CopyMemoryTask
from rnnlab.lab.tasks.digit_draw import DigitDrawTask
from rnnlab.lab.tasks.digits import DigitsTask
from rnnlab.lab.tasks.digits_flat import FlatDigitsTask
from rnnlab.lab.tasks.future import FutureTagTask
from rnnlab.lab.tasks.mnist import MNISTTask, PermutedMNISTTask
from rnnlab.lab.tasks.music import MusicTask
from rnnlab.lab.tasks.reverse import ReverseTask
from rnnlab.lab.tasks.sort import SortTask
from rnnlab.lab.tasks.sunspots import SunspotsTask

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (
    AddingTask, DigitsTask, FlatDigitsTask, DigitDrawTask, CharLMTask, SunspotsTask,
    CopyMemoryTask, FutureTagTask, ReverseTask, SortTask, MusicTask, MNISTTask,
    PermutedMNISTTask)}


def make_task(name: str, **options) -> Task:
    """Build the task registered as ``name`` with its options (``seq_len``, ``train_size``,
    …). Raises ValueError naming ``task`` for an unknown name, and the option for a bad
    value."""
    if name not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {name!r}")
    cls = TASKS[name]
    try:
        return cls(**options)
    except TypeError as error:  # an option this task does not take
        raise ValueError(f"task {name!r}: {error}") from None


__all__ = [
    "SHAPES",
    "TASKS",
    "AddingTask",
    "CharLMTask",
    "CopyMemoryTask",
    "DigitDrawTask",
    "DigitsTask",
    "FlatDigitsTask",
    "FutureTagTask",
    "MNISTTask",
    "MusicTask",
    "PermutedMNISTTask",
    "ReverseTask",
    "SortTask",
    "SunspotsTask",
    "Task",
    "make_task",
]
