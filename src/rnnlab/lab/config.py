"""``TrainConfig``: everything that defines a training run, JSON-able and validated (stored in
every checkpoint; :mod:`rnnlab.lab.train` runs it)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from rnnlab.lab.model import CELLS
from rnnlab.lab.tasks import TASKS

OPTIMIZERS = ("adam", "sgd", "rmsprop")
CLIPS = ("none", "norm", "value")


@dataclass
class TrainConfig:
    """Everything that defines a training run (JSON-able; stored in every checkpoint)."""

    task: str = "adding"  # task name, a key of rnnlab.lab.tasks.TASKS
    cell: str = "lstm"  # recurrent cell: rnn | lstm | gru | sru
    hidden: int = 128  # hidden units per direction and layer
    num_layers: int = 1  # stacked recurrent layers
    bidirectional: bool = False  # add a backward direction (refused on causal tasks)
    seq_len: int | None = None  # sequence length T (None: the task's default)
    steps: int = 2000  # optimizer steps in all (a resumed run continues up to this many)
    batch_size: int = 64  # training examples per step
    lr: float = 1e-3  # learning rate
    optimizer: str = "adam"  # adam | sgd | rmsprop
    momentum: float = 0.0  # SGD and RMSprop momentum (Adam ignores it)
    clip: str = "norm"  # gradient clipping: none | norm (total norm) | value (each element)
    clip_value: float = 1.0  # the largest total norm (clip=norm) or |element| (clip=value)
    seed: int = 0  # seeds the initial weights and the stream of training batches
    eval_every: int = 100  # evaluate on the test split every N steps, and after the last
    eval_size: int = 512  # test examples per evaluation (the same fixed examples each time)
    checkpoint_every: int = 0  # write a checkpoint every N steps (0: only at the end and on
    # Ctrl-C); needs out_dir
    out_dir: str | None = None  # folder for checkpoints/ and result.json (None: write nothing)
    train_size: int | None = None  # cap on distinct training examples ("small data"; None: all)
    recurrent_gain: float = 1.0  # multiply every weight_hh by this at initialisation (>1
    # pushes a tanh RNN towards exploding gradients, <1 towards vanishing)
    device: str = "cpu"  # torch device to train on (exact resume is promised on the CPU)
    threads: int | None = None  # torch CPU threads during the run (None: leave torch's
    # setting); 1 is often fastest for small models, and keep it fixed for bitwise resumes
    task_options: dict = field(default_factory=dict)  # more task options (vocab, offset, text)
    layer_options: dict = field(default_factory=dict)  # more rnnlab layer options
    # (nonlinearity, dropout, backend, peephole, initial_state …)

    # fields a resumed run must share with its checkpoint: they decide the model, the data
    # stream and the optimisation; the others (steps, evaluation, output) may change
    RESUME_KEYS = ("task", "cell", "hidden", "num_layers", "bidirectional", "seq_len",
                   "batch_size", "lr", "optimizer", "momentum", "clip", "clip_value", "seed",
                   "train_size", "recurrent_gain", "task_options", "layer_options")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"config: unknown fields {unknown}")
        return cls(**data)

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.task not in TASKS:
            raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {self.cell!r}")
        for name in ("hidden", "num_layers", "steps", "batch_size", "eval_every", "eval_size"):
            _positive_int(name, getattr(self, name))
        for name in ("seq_len", "train_size"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        _int("checkpoint_every", self.checkpoint_every, minimum=0)
        _int("seed", self.seed, minimum=0)
        for name in ("lr", "clip_value", "recurrent_gain"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: expected a positive number, got {value!r}")
        if not isinstance(self.momentum, (int, float)) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.clip not in CLIPS:
            raise ValueError(f"clip: expected one of {CLIPS}, got {self.clip!r}")
        if self.threads is not None:
            _positive_int("threads", self.threads)
        if self.checkpoint_every and self.out_dir is None:
            raise ValueError("checkpoint_every: checkpoints need out_dir")
        if not isinstance(self.task_options, dict) or not isinstance(self.layer_options, dict):
            raise ValueError("task_options, layer_options: expected dicts")  # noqa: TRY004


def _int(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def _positive_int(name: str, value) -> None:
    _int(name, value, 1)
