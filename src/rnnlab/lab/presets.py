"""Settings of ``rnnlab compare``: how long, how large, which sequence lengths.

``quick`` is tuned to show the main effects in a few minutes on two CPU cores (every number
was chosen by measuring: a 32-unit LSTM, GRU and SRU solve the adding problem at T = 100 in
well under 1000 Adam steps at lr 1e-2, batch 64, while a tanh RNN stays at chance). ``full``
runs longer sequences and longer training. ``tiny`` only exercises the code (seconds; for
tests and smoke checks): its verdicts mean nothing. ``paper`` runs the published
protocols of the benchmarks (Bai et al. 2018's sizes, data and epochs, where the lab's data
allow) for a GPU; every preset can be shortened with :meth:`Preset.scaled`.
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
    # the published benchmarks (rnnlab.lab.benchmarks), run when their name is in tasks
    # music: next-step NLL on JSB Chorales / Nottingham, LSTM, GRU, tanh RNN
    music: tuple[str, ...] = ("jsb",)
    music_layers: int = 1
    music_hidden: int = 64
    music_dropout: float = 0.2  # between stacked layers
    music_batch: int = 8  # sequences per step
    music_lr: float = 1e-2  # Adam
    music_epochs: float = 30.0
    music_len: dict = field(default_factory=dict)  # longest training window per data set
    # mnist: sequential (and permuted) MNIST, RMSprop, clip 1
    mnist: tuple[str, ...] = ("mnist", "pmnist")
    mnist_len: int = 28  # 784: one pixel per step, 28: one row per step
    mnist_steps: int = 300
    mnist_batch: int = 64
    mnist_lr: float = 1e-3
    mnist_paper_size: bool = False  # Bai et al.'s ≈68K parameters instead of `hidden` units
    # long: Bai et al.'s adding T = 600 and copy T = 1000 at their sizes and data
    long_adding_len: int = 600
    long_adding_steps: int = 300
    long_copy_len: int = 1000
    long_copy_steps: int = 300
    # irnn: ReLU RNN with identity init vs tanh RNN vs LSTM (adding; pixel MNIST when > 0)
    irnn_len: int = 100
    irnn_steps: int = 1000
    irnn_hidden: int = 64
    irnn_lr: float = 1e-3
    irnn_mnist_steps: int = 0
    # clipping: tanh RNN on Nottingham, SGD + momentum, with and without clipping
    clipping_epochs: float = 2.0
    clipping_hidden: int = 100
    clipping_lr: float = 0.05
    clipping_threshold: float = 1.0
    # init: the LSTM on adding at T = init_len, torch default vs forget bias 1 vs chrono
    init_len: int = 400
    init_steps: int = 1000
    tasks: tuple[str, ...] = ("adding", "digits", "future", "music", "mnist", "irnn", "init")
    expected_cpu_minutes: float | None = None  # wall time on two quiet CPU cores (README)
    extra: dict = field(default_factory=dict)

    def replace(self, **changes) -> Preset:
        return dataclasses.replace(self, **changes)

    def scaled(self, factor: float) -> Preset:
        """This preset with every training length (steps, epochs) times ``factor`` (at least
        one step or a tenth of an epoch each): a stated reduction of a protocol."""
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) \
                or not 0 < factor <= 1:
            raise ValueError(f"scale: expected a number in (0, 1], got {factor!r}")
        changes = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_steps") and f.name != "speed_steps" and value:
                changes[f.name] = max(round(value * factor), 1)
            elif f.name.endswith("_epochs") and value:
                changes[f.name] = max(value * factor, 0.1)
        name = self.name if factor == 1 else f"{self.name} × {factor:g}"
        return dataclasses.replace(self, name=name, expected_cpu_minutes=None, **changes)


_FULL = Preset(
    name="full",
    description="longer sequences and training: adding at T = 50 … 400, copy memory, "
                "64 units; JSB Chorales at Bai et al.'s size, pixel MNIST, adding T = 600 "
                "and copy T = 1000 shortened, IRNN at T = 200, clipping on Nottingham, "
                "LSTM initialisations at T = 400",
    hidden=64, lr=1e-2, adding_lens=(50, 100, 200, 400), adding_steps=4000,
    copy_lens=(50,), copy_steps=4000, exploding_len=100, exploding_steps=1000,
    digits_len=64, digits_steps=3000, digits_small=200, future_len=40, future_steps=1500,
    speed_hidden=256, speed_len=200, speed_steps=30, eval_every=200, eval_size=512,
    measure_batch=32, music_layers=2, music_hidden=200, music_batch=1, music_lr=1e-3,
    music_epochs=60, mnist_len=784, mnist_steps=300, long_adding_steps=400,
    long_copy_steps=400, irnn_len=200, irnn_steps=1500, irnn_hidden=100, irnn_lr=1e-4,
    clipping_epochs=3, init_steps=1500, expected_cpu_minutes=25,
    tasks=("adding", "copy", "digits", "future", "music", "mnist", "long", "irnn",
           "clipping", "init"))

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="a few minutes on two CPU cores: adding at T = 20 and 100, digits, "
                    "future tags, exploding gradients, SRU/LSTM timing; JSB Chorales (1 × 64 "
                    "units), MNIST read by rows, IRNN at T = 100, LSTM initialisations at "
                    "T = 400",
        expected_cpu_minutes=5),
    "full": _FULL,
    # the full preset's settings for the seed claims, the published protocols for the rest
    "paper": dataclasses.replace(
        _FULL,
        name="paper",
        description="the published protocols for one GPU: JSB Chorales and Nottingham at Bai "
                    "et al.'s LSTM size (whole sequences, one per batch), pixel MNIST and "
                    "permuted MNIST at ≈68K parameters for 9,375 steps of 64 (Bai's 10 epochs "
                    "of 60,000, on the 4,000-image subset), adding T = 600 (50,000 sequences, "
                    "10 epochs of 32) and copy T = 1000 (10,000 sequences, 15,625 steps of "
                    "32) at ≈70K / 16K parameters, IRNN at T = 400 and on pixel MNIST, "
                    "clipping on Nottingham, LSTM initialisations at T = 400; the seed claims "
                    "at the full preset's settings",
        music=("jsb", "nottingham"), music_len={"jsb": 160, "nottingham": 1800},
        mnist_steps=9375, mnist_paper_size=True, long_adding_steps=15_625,
        long_copy_steps=15_625, irnn_len=400, irnn_steps=20_000, irnn_mnist_steps=9375,
        clipping_epochs=20, clipping_hidden=200, init_steps=10_000,
        expected_cpu_minutes=420),
    "tiny": Preset(
        name="tiny",
        description="a smoke test of the whole pipeline in seconds; its numbers mean nothing",
        hidden=8, batch_size=8, adding_lens=(5, 10), adding_steps=6, copy_lens=(5,),
        copy_steps=4, exploding_len=6, exploding_steps=6, digits_steps=5, digits_small=20,
        future_len=6, future_steps=5, speed_hidden=8, speed_len=6, speed_batch=4,
        speed_steps=2, speed_warmup=1, eval_every=3, eval_size=16, measure_batch=4,
        music_hidden=8, music_epochs=0.2, music_len={"jsb": 16, "nottingham": 16},
        mnist=("pmnist",), mnist_steps=3, mnist_batch=8, long_adding_len=12,
        long_adding_steps=2, long_copy_len=8, long_copy_steps=2, irnn_len=8, irnn_steps=3,
        irnn_hidden=8, clipping_epochs=0.1, clipping_hidden=8, init_len=10, init_steps=3,
        tasks=("adding", "copy", "digits", "future", "music", "mnist", "long", "irnn",
               "clipping", "init")),
}


def get_preset(name: str) -> Preset:
    """The :class:`Preset` registered as ``name``; raises ValueError naming ``preset`` for an unknown one."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]
