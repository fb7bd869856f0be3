"""train(): determinism, evaluation, exact resume after an interruption, divergence."""

import json
import os
import signal
import time

import pytest
import torch

from rnnlab.lab.checkpoint import CheckpointError, list_checkpoints
from rnnlab.lab.train import TrainConfig, TrainingInterrupted, evaluate, load_model, train


def _same_parameters(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def _losses(result):
    return [(h["step"], h["loss"], h["grad_norm"], h.get("metric")) for h in result.history]


def test_result_fields_and_determinism(tiny):
    state = torch.get_rng_state()
    a = train(tiny(), progress=False)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left alone
    b = train(tiny(), progress=False)
    assert _same_parameters(a.model, b.model) and _losses(a) == _losses(b)
    assert [h["step"] for h in a.history] == list(range(1, 11))
    assert [h["step"] for h in a.evals] == [5, 10]
    assert a.final_metric == a.evals[-1]["metric"] and a.metric_name == "mse"
    assert a.chance == pytest.approx(1 / 6) and a.steps == 10 and not a.diverged
    assert a.params == a.model.parameter_count() and a.seconds_per_step > 0
    assert all(h["grad_norm"] > 0 and h["time"] > 0 for h in a.history)
    c = train(tiny(seed=1), progress=False)
    assert not _same_parameters(a.model, c.model)


def test_evaluation_is_fixed_and_isolated(tiny):
    result = train(tiny(steps=2), progress=False)
    state = torch.get_rng_state()
    first = evaluate(result.model, result.task, 64)
    assert evaluate(result.model, result.task, 64) == first
    assert torch.equal(state, torch.get_rng_state())


def _interrupt_at(step, how):
    def callback(done, record):
        if done == step:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
            else:
                raise KeyboardInterrupt

    return callback


RESUME_CASES = {
    "adding-lstm-adam": {},
    "copy-gru-sgd-2layers-dropout": {
        "task": "copy", "cell": "gru", "seq_len": 4, "optimizer": "sgd", "momentum": 0.9,
        "lr": 0.1, "clip": "value", "clip_value": 0.5, "num_layers": 2,
        "layer_options": {"dropout": 0.3}},
    "reverse-sru-bidirectional": {
        "task": "reverse", "cell": "sru", "seq_len": 4, "bidirectional": True, "clip": "none"},
    "digits-rnn-small-data": {"task": "digits", "cell": "rnn", "train_size": 20, "eval_every": 3},
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, tiny, case):
    options = RESUME_CASES[case]
    whole = train(tiny(out_dir=str(tmp_path / "whole"), checkpoint_every=5, **options),
                  progress=False)
    config = tiny(out_dir=str(tmp_path / "cut"), checkpoint_every=5, **options)
    how = "signal" if case.startswith("adding") else "raise"
    with pytest.raises(TrainingInterrupted) as stop:
        train(config, progress=False, callback=_interrupt_at(7, how))
    assert stop.value.step == 7 and stop.value.checkpoint.endswith("step-00000007")
    resumed = train(config, resume=True, progress=False)
    assert _same_parameters(whole.model, resumed.model)
    assert _losses(whole) == _losses(resumed)
    assert resumed.final_metric == whole.final_metric


def test_run_to_five_then_resume_to_ten(tmp_path, tiny):
    whole = train(tiny(), progress=False)
    out = str(tmp_path / "run")
    first = train(tiny(steps=5, out_dir=out), progress=False)
    assert first.steps == 5 and first.checkpoint.endswith("step-00000005")
    second = train(tiny(steps=10, out_dir=out), resume=True, progress=False)
    assert second.steps == 10 and _same_parameters(whole.model, second.model)
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["steps"] == 10 and summary["final_metric"] == second.final_metric
    again = train(tiny(steps=10, out_dir=out), resume=True, progress=False)  # nothing left
    assert again.steps == 10 and _same_parameters(whole.model, again.model)
    model, _task, config, step = load_model(out)
    assert step == 10 and config.hidden == 8 and _same_parameters(model, whole.model)


def test_resume_refuses_another_configuration_and_missing_checkpoints(tmp_path, tiny):
    out = str(tmp_path / "run")
    train(tiny(steps=5, out_dir=out), progress=False)
    with pytest.raises(CheckpointError, match=r"different configuration.*hidden 8 ≠ 16"):
        train(tiny(steps=10, hidden=16, out_dir=out), resume=True, progress=False)
    with pytest.raises(CheckpointError, match="cell 'lstm' ≠ 'gru'"):
        train(tiny(steps=10, cell="gru", out_dir=out), resume=True, progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(tiny(out_dir=str(tmp_path / "empty")), resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(tiny(steps=5, out_dir=out), progress=False)
    fresh = train(tiny(steps=3, out_dir=out), progress=False, overwrite=True)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step-00000003"]
    assert fresh.steps == 3


def test_divergence_stops_without_checkpointing_non_finite_weights(tmp_path, tiny):
    config = tiny(cell="rnn", optimizer="sgd", lr=1e12, clip="none", steps=50,
                  out_dir=str(tmp_path), checkpoint_every=1, recurrent_gain=3.0)
    result = train(config, progress=False)
    assert result.diverged and result.steps < 50
    for path in list_checkpoints(tmp_path / "checkpoints"):
        assert int(path.name.split("-")[1]) < result.steps


@pytest.mark.parametrize("field,value", [("task", "nope"), ("cell", "tcn"), ("hidden", -1),
                                         ("steps", 0), ("lr", -1.0), ("clip", "maybe"),
                                         ("optimizer", "lbfgs"), ("seq_len", 0),
                                         ("checkpoint_every", 3), ("train_size", 0)])
def test_bad_configurations_name_the_field(field, value, tiny):
    with pytest.raises(ValueError, match=field):
        train(tiny(**{field: value}), progress=False)


def test_config_round_trips_through_a_dict(tiny):
    config = tiny(layer_options={"dropout": 0.1}, num_layers=2)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"nope": 1})
