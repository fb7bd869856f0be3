"""Numerical guards: a non-finite input, loss, gradient or parameter stops training at that
step with a message naming the step and the tensor, the model keeps its last finite
parameters and the last good checkpoint stays the newest; an exploding loss gets the
clipping advice."""

import importlib
import logging

import pytest
import torch

from rnnlab.cli import main
from rnnlab.lab import checkpoint as ckpt
from rnnlab.lab.guards import NonFiniteInputError, clipping_advice
from rnnlab.lab.train import make_model, train

NAN = float("nan")
train_module = importlib.import_module("rnnlab.lab.train")  # rnnlab.lab.train is the function


def _same_parameters(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values()))


def _steps_on_disk(out):
    return [ckpt.load_checkpoint(p).step for p in ckpt.list_checkpoints(out / "checkpoints")]


def _poison_task(monkeypatch, step, poison):
    """Make the task of the next run hand ``poison(x, y)`` as its training batch of ``step``."""
    make_task_for = train_module.make_task_for

    def make(config):
        task = make_task_for(config)
        batch, calls = task.batch, []

        def poisoned(split, size, generator):
            x, y = batch(split, size, generator)
            if split == "train":
                calls.append(1)
                if len(calls) == step:
                    return poison(x.clone(), y.clone())
            return x, y

        task.batch = poisoned
        return task

    monkeypatch.setattr(train_module, "make_task_for", make)


@pytest.mark.parametrize("which", ["x", "y"])
def test_a_non_finite_batch_stops_training_naming_step_tensor_and_index(
        tmp_path, tiny, monkeypatch, which):
    def poison(x, y):  # adding: x (T, B, 2), y (B, 1)
        if which == "x":
            x[3, 1, 0] = float("inf")
        else:
            y[5, 0] = NAN
        return x, y

    _poison_task(monkeypatch, 7, poison)
    config = tiny(out_dir=str(tmp_path), checkpoint_every=2)
    expected = (r"inputs x hold 1 inf of 128 values \(first at index \(3, 1, 0\) of shape "
                r"\(8, 8, 2\)\)" if which == "x" else
                r"targets y hold 1 NaN of 8 values \(first at index \(5, 0\)")
    with pytest.raises(NonFiniteInputError, match=rf"^step 7: the training {expected}"):
        train(config, progress=False)
    assert _steps_on_disk(tmp_path) == [6, 4]  # nothing of step 7 was written
    monkeypatch.undo()
    whole = train(tiny(), progress=False)
    assert _same_parameters(train(config, resume=True, progress=False).model, whole.model)


def test_a_non_finite_batch_is_one_line_from_the_cli(tmp_path, tiny, monkeypatch, capsys):
    def poison(x, y):
        x[0, 0, 0] = NAN
        return x, y

    _poison_task(monkeypatch, 2, poison)
    argv = ["train", "--hidden", "8", "--seq-len", "8", "--batch-size", "8", "--steps", "4",
            "--threads", "1", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "step 2: the training inputs x hold 1 NaN" in err[0]


def test_a_non_finite_gradient_is_named_before_clipping_spreads_it(tmp_path, tiny, monkeypatch):
    """clip_grad_norm_ would turn every gradient into NaN: the guard names the one that was."""
    make = train_module.make_model

    def poisoned_model(config, task=None):
        model = make(config, task)
        calls = []

        def hook(grad):
            calls.append(1)
            return grad * NAN if len(calls) == 6 else grad

        model.rnn.weight_hh_l0.register_hook(hook)
        return model

    monkeypatch.setattr(train_module, "make_model", poisoned_model)
    config = tiny(out_dir=str(tmp_path / "run"), checkpoint_every=2, clip="norm")
    result = train(config, progress=False)
    assert result.diverged and result.steps == 6
    assert result.fault.startswith("step 6: the gradient of rnn.weight_hh_l0 holds ")
    assert "NaN of 256 values" in result.fault
    assert _steps_on_disk(tmp_path / "run") == [4, 2]
    monkeypatch.undo()
    five = train(tiny(steps=5), progress=False)  # step 6 was not applied
    assert _same_parameters(result.model, five.model)


def test_a_non_finite_loss_is_named(tiny, monkeypatch):
    make_task_for = train_module.make_task_for

    def make(config):
        task = make_task_for(config)
        loss, calls = task.loss, []

        def poisoned(pred, y):
            calls.append(1)
            return loss(pred, y) * (NAN if len(calls) == 3 else 1.0)

        task.loss = poisoned
        return task

    monkeypatch.setattr(train_module, "make_task_for", make)
    result = train(tiny(), progress=False)
    assert result.diverged and result.fault == "step 3: the loss is nan"
    assert result.summary()["fault"] == result.fault


def test_an_update_that_overflows_a_parameter_is_undone_and_named(tmp_path, tiny):
    config = tiny(optimizer="sgd", lr=3e38, clip="none", out_dir=str(tmp_path),
                  checkpoint_every=1)
    result = train(config, progress=False)
    assert result.diverged and result.steps == 1
    assert result.fault.startswith("step 1: the update made the parameter ")
    assert result.fault.endswith("; the update was undone")
    assert _same_parameters(result.model, make_model(config))  # the initial weights
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert _steps_on_disk(tmp_path) == []  # no checkpoint of non-finite weights


def test_an_exploding_loss_gets_the_clipping_advice(tmp_path, tiny, caplog):
    config = tiny(cell="rnn", optimizer="sgd", lr=1.0, clip="none", steps=40,
                  out_dir=str(tmp_path), checkpoint_every=1)
    with caplog.at_level(logging.WARNING, logger="rnnlab"):
        result = train(config, progress=False)
    losses = [h["loss"] for h in result.history]
    exploding = [r.getMessage() for r in caplog.records if "exploding" in r.getMessage()]
    assert len(exploding) == 1  # warned once, while the loss was still finite
    step = int(exploding[0].split(":")[0].removeprefix("step "))
    assert losses[step - 1] > 100 * losses[0] and all(x <= 100 * losses[0]
                                                       for x in losses[:step - 1])
    assert "try gradient clipping (--clip norm --clip-value 1.0)" in exploding[0]
    # it then diverged: stopped, named, and the newest checkpoint is the last finite step
    assert result.diverged and result.steps < 40 and result.fault.startswith(
        f"step {result.steps}: ")
    assert _steps_on_disk(tmp_path)[0] == result.steps - 1
    stopped = [r.getMessage() for r in caplog.records if "training stopped" in r.getMessage()]
    assert stopped == [f"{result.fault}: training stopped, the last checkpoint is kept; "
                       f"{clipping_advice('none', 1.0, 1.0)}"]


def test_the_cli_prints_where_it_diverged_and_the_advice(tmp_path, capsys):
    argv = ["train", "--cell", "rnn", "--hidden", "8", "--seq-len", "8", "--batch-size", "8",
            "--steps", "40", "--optimizer", "sgd", "--lr", "1", "--clip", "none",
            "--threads", "1", "--no-progress", "--eval-size", "32"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "training stopped: step " in captured.out and "--clip norm" in captured.out
    assert "the gradients are exploding" in captured.err


def test_the_advice_follows_the_clipping_in_use():
    assert "--clip norm" in clipping_advice("none", 1.0, 0.1)
    assert clipping_advice("norm", 5.0, 0.1) == ("try a smaller --clip-value (now 5) or a "
                                                  "lower --lr (now 0.1)")
