"""The published benchmarks as lab runs: polyphonic music, sequential MNIST, adding at T = 600
and copy memory at T = 1000 (Bai et al. 2018), the IRNN (Le et al. 2015), clipping on
Nottingham (Pascanu et al. 2013) and the LSTM's initialisation on adding at T = 400.

:func:`plan_benchmarks` turns a preset's benchmark settings into job specs for
:func:`rnnlab.lab.compare.compare`. Each spec carries ``experiment`` and ``cell_key``, the
keys of :mod:`rnnlab.lab.published` its result is set beside. Model sizes follow the papers
where they are stated (Bai et al.'s Table 3 for the LSTM, about equal parameter counts for
GRU and tanh RNN, as in their Table 1); every difference of protocol is described in the
report from the run's own configuration.
"""

from __future__ import annotations

from rnnlab.lab.tasks.music_data import music_split

THREE = ("lstm", "gru", "rnn")  # the cells of Bai et al.'s Table 1
# hidden units giving about the parameter count of Bai et al.'s Table 1 for each cell
PAPER_HIDDEN = {"adding-600": {"lstm": 130, "gru": 151, "rnn": 263},  # ≈ 70K
                "copy-1000": {"lstm": 50, "gru": 58, "rnn": 111},  # ≈ 16K
                "mnist": {"lstm": 130, "gru": 148, "rnn": 258}}  # ≈ 68K
# Bai et al.'s Table 3 forget-gate biases of the LSTM
PAPER_FORGET_BIAS = {"adding-600": 1.0, "mnist": 1.0, "pmnist": 10.0, "music-jsb": 10.0}
IRNN_OPTIONS = {"nonlinearity": "relu", "init": "identity"}  # Le et al. 2015


def _job(p, seed, experiment, claim, group, cell_key, cell, *, task, steps, hidden,
         batch_size, lr, optimizer="adam", clip="norm", clip_value=1.0, seq_len=None,
         num_layers=1, train_size=None, task_options=None, layer_options=None, momentum=0.0,
         eval_every=None, select_on_valid=False) -> dict:
    config = {"task": task, "cell": cell, "hidden": hidden, "num_layers": num_layers,
              "seq_len": seq_len, "steps": steps, "batch_size": batch_size, "lr": lr,
              "optimizer": optimizer, "momentum": momentum, "clip": clip,
              "clip_value": clip_value, "seed": seed, "train_size": train_size,
              "eval_every": eval_every or max(steps // 10, 1), "eval_size": p.eval_size,
              "threads": 1, "task_options": dict(task_options or {}),
              "layer_options": dict(layer_options or {})}
    return {"id": f"{experiment}-{cell_key}".replace(" ", "").replace(",", "-"),
            "claim": claim, "group": group, "label": cell_key, "config": config,
            "experiment": experiment, "cell_key": cell_key, "select_on_valid": select_on_valid}


def _lstm_init(experiment: str, layer_options: dict) -> dict:
    bias = PAPER_FORGET_BIAS.get(experiment)
    return {**layer_options, "init": f"forget_bias:{bias}"} if bias else layer_options


def music_jobs(p, seed) -> list[dict]:
    """Next-step NLL on each of ``p.music`` (JSB, Nottingham) for LSTM, GRU and tanh RNN of
    ``p.music_layers`` × ``p.music_hidden`` units, dropout ``p.music_dropout`` between layers,
    Adam, clip 1, the test NLL taken at the best validation evaluation."""
    jobs = []
    for dataset in p.music:
        sequences = len(music_split(dataset, "train"))
        per_epoch = max(sequences // p.music_batch, 1)
        experiment = f"music-{dataset}"
        for cell in THREE:
            options = {"dropout": p.music_dropout} if p.music_layers > 1 else {}
            if cell == "lstm":
                options = _lstm_init(experiment, options)
            jobs.append(_job(p, seed, experiment, "music", f"music {dataset}", cell, cell,
                             task="music", steps=round(p.music_epochs * per_epoch),
                             hidden=p.music_hidden, num_layers=p.music_layers,
                             batch_size=p.music_batch, lr=p.music_lr,
                             seq_len=p.music_len.get(dataset),
                             task_options={"dataset": dataset}, layer_options=options,
                             eval_every=per_epoch * max(round(p.music_epochs / 20), 1),
                             select_on_valid=True))
    return jobs


def mnist_jobs(p, seed) -> list[dict]:
    """Sequential (and permuted) MNIST for LSTM, GRU and tanh RNN at about Bai et al.'s 68K
    parameters (``p.mnist_paper_size``) or ``p.hidden`` units, RMSprop, clip 1."""
    jobs = []
    for task in p.mnist:
        for cell in THREE:
            hidden = PAPER_HIDDEN["mnist"][cell] if p.mnist_paper_size else p.hidden
            options = _lstm_init(task, {}) if cell == "lstm" else {}
            jobs.append(_job(p, seed, task, "mnist", f"{task} T={p.mnist_len}", cell, cell,
                             task=task, seq_len=p.mnist_len, steps=p.mnist_steps,
                             hidden=hidden, batch_size=p.mnist_batch, lr=p.mnist_lr,
                             optimizer="rmsprop", layer_options=options))
    return jobs


def long_jobs(p, seed) -> list[dict]:
    """Bai et al.'s long-range tasks at their sizes: adding at T = ``p.long_adding_len`` (50,000
    training sequences, batch 32, Adam 2e-3, LSTM clip 5) and copy memory at T =
    ``p.long_copy_len`` (10,000 sequences, batch 32, RMSprop 5e-4, clip 1)."""
    jobs = []
    if p.long_adding_steps:
        for cell in THREE:
            jobs.append(_job(p, seed, "adding-600", "long", f"adding T={p.long_adding_len}",
                             cell, cell, task="adding", seq_len=p.long_adding_len,
                             steps=p.long_adding_steps, train_size=50_000,
                             hidden=PAPER_HIDDEN["adding-600"][cell], batch_size=32, lr=2e-3,
                             clip_value=5.0 if cell == "lstm" else 1.0,
                             layer_options=_lstm_init("adding-600", {}) if cell == "lstm"
                             else {}))
    if p.long_copy_steps:
        for cell in THREE:
            jobs.append(_job(p, seed, "copy-1000", "long", f"copy T={p.long_copy_len}", cell,
                             cell, task="copy", seq_len=p.long_copy_len,
                             steps=p.long_copy_steps, train_size=10_000,
                             hidden=PAPER_HIDDEN["copy-1000"][cell], batch_size=32, lr=5e-4,
                             optimizer="rmsprop"))
    return jobs


def irnn_jobs(p, seed) -> list[dict]:
    """Le et al.'s IRNN (ReLU, W_hh = I, zero biases) against a tanh RNN and an LSTM of the
    same width on adding at T = ``p.irnn_len`` (Hu et al.'s settings: Adam 1e-4, batch 32,
    clip 100 … here ``p.irnn_lr`` and clip 1) and, with ``p.irnn_mnist``, pixel MNIST."""
    jobs = []
    runs = (("irnn", "rnn", IRNN_OPTIONS), ("rnn", "rnn", {}), ("lstm", "lstm", {}))
    for key, cell, options in runs:
        jobs.append(_job(p, seed, f"irnn-adding-{p.irnn_len}", "irnn",
                         f"irnn adding T={p.irnn_len}", key, cell, task="adding",
                         seq_len=p.irnn_len, steps=p.irnn_steps, hidden=p.irnn_hidden,
                         batch_size=32, lr=p.irnn_lr, layer_options=options))
    if p.irnn_mnist_steps:
        for key, cell, options in runs:
            jobs.append(_job(p, seed, "irnn-mnist", "irnn", "irnn mnist T=784", key, cell,
                             task="mnist", seq_len=784, steps=p.irnn_mnist_steps,
                             hidden=p.irnn_hidden, batch_size=p.mnist_batch, lr=p.irnn_lr,
                             optimizer="rmsprop", layer_options=options))
    return jobs


def clipping_jobs(p, seed) -> list[dict]:
    """Pascanu et al.'s Table 1 setting: a tanh RNN on Nottingham trained with SGD + momentum
    (MSGD), with and without clipping the gradient norm at ``p.clipping_threshold``."""
    jobs = []
    per_epoch = max(len(music_split("nottingham", "train")) // p.music_batch, 1)
    for clip in ("none", "norm"):
        jobs.append(_job(p, seed, "clipping-nottingham", "clipping", "clipping nottingham",
                         f"rnn, clip {clip}", "rnn", task="music",
                         seq_len=p.music_len.get("nottingham"),
                         steps=round(p.clipping_epochs * per_epoch), hidden=p.clipping_hidden,
                         batch_size=p.music_batch, lr=p.clipping_lr, optimizer="sgd",
                         momentum=0.9, clip=clip, clip_value=p.clipping_threshold,
                         task_options={"dataset": "nottingham"}, select_on_valid=True,
                         eval_every=per_epoch * max(round(p.clipping_epochs / 20), 1)))
    return jobs


def init_jobs(p, seed) -> list[dict]:
    """The LSTM on adding at T = ``p.init_len`` with torch's default initialisation, a
    forget-gate bias of 1 (Jozefowicz et al. 2015) and chrono initialisation with T_max = T
    (Tallec & Ollivier 2018); everything else as the preset's adding runs."""
    inits = ("torch", "forget_bias:1.0", f"chrono:{p.init_len}")
    return [_job(p, seed, f"init-adding-{p.init_len}", "init", f"init adding T={p.init_len}",
                 f"lstm, init {init}", "lstm", task="adding", seq_len=p.init_len,
                 steps=p.init_steps, hidden=p.hidden, batch_size=p.batch_size, lr=p.lr,
                 clip_value=p.clip_value, layer_options={"init": init},
                 eval_every=p.eval_every)
            for init in inits]


BENCHMARKS = {"music": music_jobs, "mnist": mnist_jobs, "long": long_jobs, "irnn": irnn_jobs,
              "clipping": clipping_jobs, "init": init_jobs}


def plan_benchmarks(p, tasks, seed: int = 0) -> list[dict]:
    """The job specs of the benchmarks named in ``tasks``, with the settings of preset ``p``."""
    jobs = []
    for name, make in BENCHMARKS.items():
        if name in tasks:
            jobs += make(p, seed)
    return jobs
