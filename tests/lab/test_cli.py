"""The rnnlab command line: train and demo end to end, resume, and bad input."""

import json

import pytest

from rnnlab.cli import main

TINY = ["--hidden", "8", "--seq-len", "8", "--batch-size", "8", "--eval-every", "3",
        "--eval-size", "32", "--threads", "1", "--no-progress"]


def test_train_end_to_end_then_resume(tmp_path, capsys):
    out = str(tmp_path / "run")
    code = main(["train", "--task", "adding", "--cell", "lstm", "--steps", "6", "--out", out,
                 "--checkpoint-every", "3", *TINY])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "test mse" in captured.out and "chance 0.1667" in captured.out
    assert "checkpoint:" in captured.out and "step-00000006" in captured.out
    assert (tmp_path / "run" / "result.json").is_file()
    code = main(["train", "--task", "adding", "--cell", "lstm", "--steps", "9", "--out", out,
                 "--resume", "--json", *TINY])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["steps"] == 9 and [e["step"] for e in summary["evals"]] == [3, 6, 9]


@pytest.mark.parametrize("task,cell,extra", [("future", "gru", ["--bidirectional"]),
                                             ("sort", "sru", ["--layers", "2"]),
                                             ("charlm", "rnn", ["--nonlinearity", "relu"])])
def test_train_other_tasks_and_cells(task, cell, extra, capsys):
    code = main(["train", "--task", task, "--cell", cell, "--steps", "3", *extra, *TINY])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{task} (" in captured.out


def test_demo_runs(capsys):
    assert main(["demo", "--steps", "20", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test mse" in out and "adding" in out


BAD = {
    "unknown task": (["train", "--task", "nope"], "--task"),
    "unknown cell": (["train", "--cell", "tcn"], "--cell"),
    "negative hidden": (["train", "--hidden", "-3"], "--hidden"),
    "zero seq-len": (["train", "--seq-len", "0"], "--seq-len"),
    "not a number": (["train", "--lr", "fast"], "--lr"),
    "bad seq-len for the task": (["train", "--task", "digits", "--seq-len", "10"], "seq_len"),
    "bidirectional on a causal task": (["train", "--task", "charlm", "--bidirectional"],
                                       "bidirectional"),
    "resume without --out": (["train", "--resume"], "--resume needs --out"),
    "nonlinearity on an lstm": (["train", "--nonlinearity", "relu"], "--nonlinearity"),
    "unknown command": (["fly"], "invalid choice"),
    "no command": ([], "usage"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_exit_code_2(case, capsys):
    argv, needle = BAD[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    if argv:
        assert len(err.strip().splitlines()) == 1, err


def test_missing_checkpoint_for_resume(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--resume", *TINY]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no checkpoint" in err


def test_corrupt_checkpoint_for_resume_names_the_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "3", "--out", str(out), *TINY]) == 0
    weights = out / "checkpoints" / "step-00000003" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5])
    capsys.readouterr()
    assert main(["train", "--steps", "6", "--out", str(out), "--resume", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weights.safetensors: checksum mismatch" in err[0]


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["--version"]) == 0
