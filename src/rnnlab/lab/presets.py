"""Settings of ``rnnlab compare``: how long, how large, which sequence lengths.

``quick`` is tuned to show the main effects in a few minutes on two CPU cores (every number
was chosen by measuring: a 32-unit LSTM, GRU and SRU solve the adding problem at T = 100 in
well under 1000 Adam steps at lr 1e-2, batch 64, while a tanh RNN stays at chance). ``full``
runs longer sequences and longer training. ``tiny`` only exercises the code (seconds; for
tests and smoke checks): its verdicts mean nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    hidden: int = 32  # hidden units of every cell (equal size: the comparison is per unit)
    batch_size: int = 64
    lr: float = 1e-2  # Adam
    clip_value: float = 1.0  # clip by norm everywhere except the unclipped exploding run
    eval_every: int = 100
    eval_size: int = 256
    # (a) tanh RNN vs gated cells as T grows; (vanishing) gradient flow at the largest T
    adding_lens: tuple[int, ...] = (20, 100)
    adding_steps: int = 1000
    copy_lens: tuple[int, ...] = ()  # the copy-memory task (delays), for the same claim
    copy_steps: int = 2000
    # (b) exploding gradients: a tanh RNN with W_hh scaled by exploding_gain, plain SGD
    exploding_len: int = 50
    exploding_steps: int = 300
    exploding_gain: float = 2.0
    exploding_lr: float = 0.1
    # (c) GRU vs LSTM on sequential digits (rows), full and small training set
    digits_len: int = 8
    digits_steps: int = 400
    digits_small: int = 100
    # (d) bidirectional vs unidirectional on the future-tag task
    future_len: int = 20
    future_steps: int = 300
    # (e) SRU vs LSTM speed: timed training steps at equal size, per backend
    speed_hidden: int = 128
    speed_len: int = 100
    speed_batch: int = 32
    speed_steps: int = 15
    speed_warmup: int = 3
    speed_backends: tuple[str, ...] = ("reference", "auto")
    measure_batch: int = 16  # sequences the gradient-flow measurement reads
    tasks: tuple[str, ...] = ("adding", "digits", "future")
    extra: dict = field(default_factory=dict)

    def replace(self, **changes) -> Preset:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="a few minutes on two CPU cores: adding at T = 20 and 100, digits, "
                    "future tags, exploding gradients, SRU/LSTM timing"),
    "full": Preset(
        name="full",
        description="longer sequences and training: adding at T = 50 … 400, copy memory, "
                    "64 units (an hour or more on a laptop CPU)",
        hidden=64, lr=1e-2, adding_lens=(50, 100, 200, 400), adding_steps=4000,
        copy_lens=(50,), copy_steps=4000, exploding_len=100, exploding_steps=1000,
        digits_len=64, digits_steps=3000, digits_small=200, future_len=40, future_steps=1500,
        speed_hidden=256, speed_len=200, speed_steps=30, eval_every=200, eval_size=512,
        measure_batch=32, tasks=("adding", "copy", "digits", "future")),
    "tiny": Preset(
        name="tiny",
        description="a smoke test of the whole pipeline in seconds; its numbers mean nothing",
        hidden=8, batch_size=8, adding_lens=(5, 10), adding_steps=6, copy_lens=(5,),
        copy_steps=4, exploding_len=6, exploding_steps=6, digits_steps=5, digits_small=20,
        future_len=6, future_steps=5, speed_hidden=8, speed_len=6, speed_batch=4,
        speed_steps=2, speed_warmup=1, eval_every=3, eval_size=16, measure_batch=4,
        tasks=("adding", "copy", "digits", "future")),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]
