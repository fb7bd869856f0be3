"""Checkpoints: atomic writes, verification on load, a corrupt one never costs the previous."""

import json
import re
from pathlib import Path

import pytest
import torch

from rnnlab.lab import checkpoint as ckpt
from rnnlab.lab import checkpoint_files
from rnnlab.lab.checkpoint import CheckpointError
from rnnlab.lab.train import make_model, train


def _run(tmp_path, tiny, steps=10):
    out = tmp_path / "run"
    result = train(tiny(steps=steps, out_dir=str(out), checkpoint_every=5), progress=False)
    return result, out / "checkpoints"


def test_layout_json_and_no_pickle(tmp_path, tiny):
    result, root = _run(tmp_path, tiny)
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step-00000010", "step-00000005"]
    newest = root / "step-00000010"
    assert sorted(p.name for p in newest.iterdir()) == ["state.json", "weights.safetensors"]
    state = json.loads((newest / "state.json").read_text())
    assert state["step"] == 10 and state["config"]["hidden"] == 8
    assert state["weights_sha256"] == ckpt.sha256_file(newest / "weights.safetensors")
    assert len(state["history"]) == 10 and state["optimizer"]["type"] == "Adam"
    assert set(state["rng"]) == {"torch", "python", "numpy", "generators"}
    assert any(k.startswith("optimizer.") and k.endswith("exp_avg") for k in state["tensors"])
    assert not list(root.glob(".tmp-*"))
    loaded = ckpt.load_checkpoint(newest)
    model = make_model(result.config)
    ckpt.restore(loaded, model)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  result.model.state_dict().values()))
    # nothing in the lab or the CLI unpickles
    lab = Path(ckpt.__file__).parent
    files = [*lab.glob("*.py"), *lab.glob("tasks/*.py"), lab.parent / "cli.py"]
    code = "\n".join(p.read_text() for p in files)
    assert "import pickle" not in code and not re.search(r"torch\.load\((?![^)]*weights_only=True)", code)


def _flip_byte(path: Path, offset: int = -10):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "state-json", "missing"])
def test_a_corrupt_newest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, tiny, damage):
    whole, root = _run(tmp_path, tiny)
    newest = root / "step-00000010"
    weights = newest / "weights.safetensors"
    if damage == "flip":
        _flip_byte(weights)
        expected = r"weights\.safetensors: checksum mismatch"
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
        expected = "checksum mismatch"
    elif damage == "state-json":
        (newest / "state.json").write_text('{"format": "rnnlab-checkpoint", "ver')
        expected = r"state\.json: not readable JSON"
    else:
        weights.unlink()
        expected = "missing"
    with pytest.raises(CheckpointError, match=expected) as error:
        ckpt.load_checkpoint(newest)
    assert str(newest) in str(error.value)  # the message names the file
    assert len(str(error.value).splitlines()) == 1
    fallback = ckpt.load_latest(root)
    assert fallback.step == 5  # the previous checkpoint is intact and used
    # resuming from it redoes steps 6–10 and ends exactly where the whole run ended
    resumed = train(whole.config, resume=True, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                  whole.model.state_dict().values()))


def test_every_checkpoint_corrupt_is_an_error(tmp_path, tiny):
    _, root = _run(tmp_path, tiny)
    for path in ckpt.list_checkpoints(root):
        _flip_byte(path / "weights.safetensors", 200)
    with pytest.raises(CheckpointError, match=r"checksum mismatch.*1 older checkpoint"):
        ckpt.load_latest(root)


def test_a_checkpoint_for_another_model_is_rejected_on_shapes(tmp_path, tiny):
    _result, root = _run(tmp_path, tiny)
    other = make_model(tiny(hidden=16))
    with pytest.raises(CheckpointError, match=r"model\.rnn\.weight_ih_l0.*\(32, 2\).*\(64, 2\)"):
        ckpt.restore(ckpt.load_checkpoint(root / "step-00000010"), other)
    sru = make_model(tiny(cell="sru"))
    with pytest.raises(CheckpointError, match="does not match the model"):
        ckpt.restore(ckpt.load_checkpoint(root / "step-00000010"), sru)
    sgd = torch.optim.SGD(make_model(tiny()).parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match="Adam optimizer state, expected SGD"):
        ckpt.restore(ckpt.load_checkpoint(root / "step-00000010"), make_model(tiny()), sgd)


def test_non_finite_tensors_are_never_written_and_the_previous_checkpoint_stays(tmp_path, tiny):
    model = make_model(tiny())
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(8, 2, 2)).sum().backward()
    optimizer.step()
    good = ckpt.save_checkpoint(tmp_path, 3, model, optimizer)
    with torch.no_grad():
        optimizer.state[model.head.weight]["exp_avg"][0, 1] = float("inf")
    with pytest.raises(CheckpointError, match=r"step 4: tensor 'optimizer\.4\.exp_avg' holds "
                       "non-finite"):
        ckpt.save_checkpoint(tmp_path, 4, model, optimizer)
    with torch.no_grad():
        model.rnn.weight_ih_l0[0, 0] = float("nan")
    for step in (3, 4):  # neither over the good checkpoint nor as a newer one
        with pytest.raises(CheckpointError, match=rf"refusing to write the checkpoint of step "
                           rf"{step}: tensor 'model\.rnn\.weight_ih_l0' holds non-finite"):
            ckpt.save_checkpoint(tmp_path, step, model)
    assert [p.name for p in tmp_path.iterdir()] == [good.name]
    assert ckpt.load_latest(tmp_path).step == 3


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_debris(tmp_path, tiny, monkeypatch):
    model = make_model(tiny())
    good = ckpt.save_checkpoint(tmp_path, 1, model)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_files, "save_file", broken)
    with pytest.raises(ckpt.CheckpointWriteError, match=r"step 2 \(disk full\); the newest "
                       "checkpoint, .*step-00000001, is untouched"):
        ckpt.save_checkpoint(tmp_path, 2, model)
    assert ckpt.list_checkpoints(tmp_path) == [good]
    assert [p.name for p in tmp_path.iterdir()] == [good.name]
    assert ckpt.load_latest(tmp_path).step == 1


def test_keep_and_rewrite_of_the_same_step(tmp_path, tiny):
    model = make_model(tiny())
    for step in (1, 2, 3, 3):
        ckpt.save_checkpoint(tmp_path, step, model, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000003", "step-00000002"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002", "step-00000003"]


def test_rng_states_round_trip():
    import random

    import numpy as np

    gen = torch.Generator().manual_seed(5)
    state = json.loads(json.dumps(ckpt.capture_rng({"data": gen})))
    expected = (torch.rand(3), random.random(), np.random.rand(), torch.rand(2, generator=gen))
    gen2 = torch.Generator()
    ckpt.restore_rng(state, {"data": gen2})
    got = (torch.rand(3), random.random(), np.random.rand(), torch.rand(2, generator=gen2))
    assert torch.equal(expected[0], got[0]) and expected[1:3] == got[1:3]
    assert torch.equal(expected[3], got[3])
