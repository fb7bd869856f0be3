"""Checkpoints are untrusted input: nothing in rnnlab unpickles, and a checkpoint whose JSON,
tensors, dtypes or values do not fit is refused with a message naming the file and the
tensor (each case below is self-consistent: its checksum matches, so the checks behind the
checksum are the ones that must catch it)."""

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import rnnlab
from rnnlab.lab import checkpoint as ckpt
from rnnlab.lab.checkpoint import CheckpointError
from rnnlab.lab.train import load_model, train

# reading a file with any of these can run code stored in it
UNSAFE = re.compile(r"\bimport pickle\b|\bpickle\.loads?\(|\bcloudpickle\b|\bdill\b|\bjoblib\b"
                    r"|allow_pickle\s*=\s*True|\btorch\.jit\.load\(|\bmarshal\.loads?\("
                    r"|\btorch\.load\((?![^)]*weights_only\s*=\s*True)")


def test_no_pickle_path_anywhere_in_rnnlab():
    files = sorted(Path(rnnlab.__file__).parent.rglob("*.py"))
    assert len(files) > 40
    found = [f"{p}: {m.group(0)}" for p in files for m in UNSAFE.finditer(p.read_text())]
    assert found == []


@pytest.fixture
def run(tmp_path, tiny):
    """A finished tiny run with checkpoints at steps 5 and 10: ``(config, checkpoints dir)``."""
    config = tiny(out_dir=str(tmp_path / "run"), checkpoint_every=5)
    train(config, progress=False)
    return config, tmp_path / "run" / "checkpoints"


def _rewrite(path: Path, tensors=None, state=None) -> None:
    """Change a checkpoint's tensors and/or JSON, keeping it self-consistent (the tensor list
    and the checksum follow the new tensors) unless ``state`` changes them itself."""
    weights, state_file = path / ckpt.WEIGHTS, path / ckpt.STATE
    saved = load_file(str(weights))
    if tensors is not None:
        tensors(saved)
    save_file(saved, str(weights))
    data = json.loads(state_file.read_text())
    data["tensors"] = {k: [str(v.dtype).removeprefix("torch."), list(v.shape)]
                       for k, v in saved.items()}
    data["weights_sha256"] = ckpt.sha256_file(weights)
    if state is not None:
        state(data)
    state_file.write_text(json.dumps(data))


def test_json_config_that_does_not_match_the_tensors(run, tiny):
    config, root = run
    newest = root / "step-00000010"
    _rewrite(newest, state=lambda s: s["config"].update(hidden=16))
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: tensor "
                       r"'model\.rnn\.weight_ih_l0' is torch\.float32 \(32, 2\), the model "
                       r"expects torch\.float32 \(64, 2\)"):
        load_model(newest)
    resumed = tiny(hidden=16, steps=12, out_dir=config.out_dir)  # the config the JSON claims
    with pytest.raises(CheckpointError, match=r"'model\.rnn\.weight_ih_l0' is .*\(32, 2\)"):
        train(resumed, resume=True, progress=False)


@pytest.mark.parametrize("change,needle", [({"cell": "transformer"}, "cell"),
                                           ({"nope": 1}, "unknown fields"),
                                           ({"hidden": -4}, "hidden"),
                                           ({"task_options": []}, "task_options")])
def test_json_config_that_describes_no_model(run, change, needle):
    _, root = run
    _rewrite(root / "step-00000010", state=lambda s: s["config"].update(change))
    with pytest.raises(CheckpointError, match=rf"state\.json: its config describes no valid "
                       rf"model \(.*{needle}"):
        load_model(root / "step-00000010")


def test_a_tensor_of_the_wrong_dtype(run, tiny):
    config, root = run
    newest = root / "step-00000010"

    def widen(t):
        t["model.rnn.weight_hh_l0"] = t["model.rnn.weight_hh_l0"].double()

    _rewrite(newest, tensors=widen)
    with pytest.raises(CheckpointError, match=r"tensor 'model\.rnn\.weight_hh_l0' is "
                       r"torch\.float64 \(32, 8\), the model expects torch\.float32 \(32, 8\)"):
        load_model(newest)

    def widen_adam(t):
        t["optimizer.1.exp_avg"] = t["optimizer.1.exp_avg"].double()

    _rewrite(root / "step-00000005", tensors=widen_adam)
    with pytest.raises(CheckpointError, match=r"tensor 'optimizer\.1\.exp_avg' is "
                       r"torch\.float64 \(32, 8\), its parameter torch\.float32 \(32, 8\)"):
        ckpt.restore(ckpt.load_checkpoint(root / "step-00000005"), *_fresh(config))


def _fresh(config):
    from rnnlab.lab.train import make_model, make_optimizer

    model = make_model(config)
    return model, make_optimizer(config, model)


def test_tensors_that_differ_from_the_json_list(run):
    _, root = run
    newest = root / "step-00000010"

    def relist(state):
        state["tensors"]["model.head.bias"] = ["float16", [1]]

    _rewrite(newest, state=relist)
    with pytest.raises(CheckpointError, match=r"tensor 'model\.head\.bias' is float32 \(1,\), "
                       r"state\.json lists float16 \(1,\)"):
        ckpt.load_checkpoint(newest)


@pytest.mark.parametrize("case", ["extra", "missing", "optimizer-extra", "optimizer-bad-name"])
def test_extra_and_missing_tensors(run, case):
    config, root = run
    newest = root / "step-00000010"
    change, expected = {
        "extra": (lambda t: t.update({"model.backdoor": torch.zeros(3)}),
                  r"does not match the model \(missing \[\], unexpected \['backdoor'\]\)"),
        "missing": (lambda t: t.pop("model.head.bias"),
                    r"does not match the model \(missing \['head\.bias'\], unexpected \[\]\)"),
        "optimizer-extra": (lambda t: t.update({"optimizer.99.exp_avg": torch.zeros(3)}),
                            r"tensor 'optimizer\.99\.exp_avg' names no parameter of the model"),
        "optimizer-bad-name": (lambda t: t.update({"optimizer.x": torch.zeros(3)}),
                               r"tensor 'optimizer\.x' names no parameter"),
    }[case]
    _rewrite(newest, tensors=change)
    with pytest.raises(CheckpointError, match=expected) as error:
        ckpt.restore(ckpt.load_checkpoint(newest), *_fresh(config))
    assert str(newest / "weights.safetensors") in str(error.value)


def test_nan_in_a_checkpoint_is_refused_and_the_previous_one_used(run, caplog):
    config, root = run

    def poison(t):
        t["model.rnn.bias_hh_l0"][3] = float("nan")

    _rewrite(root / "step-00000010", tensors=poison)
    with pytest.raises(CheckpointError, match=r"tensor 'model\.rnn\.bias_hh_l0' holds "
                       r"non-finite values"):
        ckpt.load_checkpoint(root / "step-00000010")
    assert ckpt.load_latest(root).step == 5
    assert "using the previous checkpoint" in caplog.text
    resumed = train(config, resume=True, progress=False)
    assert resumed.steps == 10 and all(torch.isfinite(p).all()
                                       for p in resumed.model.parameters())


MALFORMED = {
    "step is text": (lambda s: s.update(step="10"), r"the field 'step' is not a JSON number"),
    "negative step": (lambda s: s.update(step=-1), "negative step"),
    "tensors a list": (lambda s: s.update(tensors=[]), r"the field 'tensors' is not a JSON dict"),
    "tensor entry": (lambda s: s["tensors"].update({"model.head.bias": "float32"}),
                     r"the entry of tensor 'model\.head\.bias' is not \[dtype, shape\]"),
    "history entry": (lambda s: s["history"].append("step 11"), "a history entry lacks"),
    "no config": (lambda s: s.pop("config"), r"missing the field 'config'"),
    "not a dict": (lambda s: (s.clear(), s.update(format=None)), "not an rnnlab checkpoint"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_json_fields(run, case):
    _, root = run
    change, expected = MALFORMED[case]
    _rewrite(root / "step-00000010", state=change)
    with pytest.raises(CheckpointError, match=expected):
        ckpt.load_checkpoint(root / "step-00000010")
    assert ckpt.load_latest(root).step == 5


@pytest.mark.parametrize("part", ["rng", "optimizer", "optimizer-groups"])
def test_malformed_resume_state(run, part):
    config, root = run
    for path in ckpt.list_checkpoints(root):
        if part == "rng":
            _rewrite(path, state=lambda s: s["rng"].update(torch=[1, 2, 3]))
        elif part == "optimizer":
            _rewrite(path, state=lambda s: s["optimizer"].update(state=[]))
        else:
            _rewrite(path, state=lambda s: s["optimizer"]["param_groups"][0].update(lr="fast"))
    expected = {"rng": "the random number generator states are not valid",
                "optimizer": "the optimizer state is malformed",
                "optimizer-groups": "optimizer parameter group 0's 'lr' is 'fast'"}[part]
    with pytest.raises(CheckpointError, match=rf"step-00000010/state\.json: {expected}"):
        train(config.__class__(**{**config.to_dict(), "steps": 12}), resume=True,
              progress=False)


class _Payload:
    """Unpickling this writes a file: the proof that a loader ran code from the checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_pickle_disguised_as_safetensors_is_never_unpickled(run, tmp_path):
    import pickle

    _, root = run
    newest, marker = root / "step-00000010", tmp_path / "code-ran"
    weights = newest / "weights.safetensors"
    weights.write_bytes(pickle.dumps({"model.head.bias": _Payload(marker)}))
    _rewrite_sha_only(newest)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        ckpt.load_checkpoint(newest)
    with pytest.raises(CheckpointError):
        load_model(newest)
    assert not marker.exists()


def _rewrite_sha_only(path: Path) -> None:
    state = json.loads((path / ckpt.STATE).read_text())
    state["weights_sha256"] = ckpt.sha256_file(path / ckpt.WEIGHTS)
    (path / ckpt.STATE).write_text(json.dumps(state))
