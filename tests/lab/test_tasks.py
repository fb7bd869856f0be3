"""Every task: the promised shapes and dtypes, determinism, and its chance level."""

import math

import pytest
import torch

from rnnlab.lab.tasks import SHAPES, TASKS, make_task
from rnnlab.lab.tasks.base import IGNORE

# (task, options) → expected x shape and y shape for batch size B, with T the task's seq_len
SMALL = {
    "adding": {"seq_len": 12},
    "digits": {},
    "digits-flat": {},
    "digit-draw": {},
    "charlm": {"seq_len": 16},
    "sunspots": {"seq_len": 10},
    "copy": {"seq_len": 7},
    "future": {"seq_len": 9},
    "reverse": {"seq_len": 6},
    "sort": {"seq_len": 6},
    "music": {"seq_len": 16},
    "mnist": {"seq_len": 28},
    "pmnist": {"seq_len": 28},
}


def test_registry_covers_every_shape():
    assert set(SMALL) == set(TASKS)
    assert {cls.shape for cls in TASKS.values()} == set(SHAPES)


def test_unknown_task_is_a_value_error_naming_task():
    with pytest.raises(ValueError, match="task"):
        make_task("nope")
    with pytest.raises(ValueError, match="task 'adding'"):
        make_task("adding", vocab=3)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_batch_shapes_and_dtypes(name):
    task = make_task(name, **SMALL[name])
    B = 5
    x, y = task.batch("train", B, torch.Generator().manual_seed(1))
    T, T_out = task.seq_len, task.output_len
    if task.shape == "one-to-many":
        assert x.shape == (B, task.input_size)
    elif task.token_input:
        assert x.shape == (T if name != "copy" else T + 20, B)
        assert x.dtype == torch.long and 0 <= x.min() and x.max() < task.input_size
    else:
        assert x.shape == (T, B, task.input_size)
    if not task.token_input:
        assert x.dtype == torch.float32
    if task.shape in ("many-to-one", "one-to-one"):
        expected_y = (B,) if task.target == "class" else (B, task.output_size)
    else:
        expected_y = (T_out, B) if task.target == "class" else (T_out, B, task.output_size)
    assert y.shape == expected_y
    if task.target == "class":
        assert y.dtype == torch.long
        scored = y[y != IGNORE]
        assert scored.min() >= 0 and scored.max() < task.output_size
    else:
        assert y.dtype == torch.float32
    assert task.chance == task.chance and task.chance > 0  # documented and finite
    # the same generator state gives the same batch; the test split is available too
    x2, y2 = task.batch("train", B, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    xt, yt = task.batch("test", B, torch.Generator().manual_seed(1))
    assert xt.shape == x.shape and yt.shape == y.shape


# chance level measured on a big batch of the test split, with the predictor that ignores
# the input; tolerance from the sampling error of each metric
TOLERANCE = {"adding": 0.01, "digits": 0.02, "digits-flat": 0.02, "digit-draw": 0.004,
             "charlm": 1e-5, "sunspots": 0.08, "copy": 1e-5, "future": 0.01,
             "reverse": 0.01, "sort": 0.01, "music": 0.3, "mnist": 0.02, "pmnist": 0.02}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_chance_level(name):
    task = make_task(name, **SMALL[name])
    x, y = task.batch("test", 8192, torch.Generator().manual_seed(2))
    measured = task.metric(task.chance_prediction(x, y), y)
    assert measured == pytest.approx(task.chance, abs=TOLERANCE[name])


def test_published_chance_values():
    assert make_task("adding").chance == pytest.approx(1 / 6)
    assert make_task("digits", seq_len=64).chance == 0.1
    assert make_task("copy", seq_len=100).chance == pytest.approx(10 * math.log(8) / 120)
    lm = make_task("charlm")
    assert lm.chance == pytest.approx(math.log2(len(lm.vocab)))
    assert lm.unigram_bpc < lm.chance
    assert make_task("reverse", vocab=5).chance == pytest.approx(0.2)


def test_adding_marks_one_in_each_half_and_target_is_their_sum():
    task = make_task("adding", seq_len=10)
    x, y = task.batch("train", 64, torch.Generator().manual_seed(0))
    marks = x[..., 1]
    assert torch.equal(marks[:5].sum(0), torch.ones(64))
    assert torch.equal(marks[5:].sum(0), torch.ones(64))
    assert torch.allclose((x[..., 0] * marks).sum(0), y[:, 0])


def test_digits_rows_and_pixels_read_the_same_image():
    gen = lambda: torch.Generator().manual_seed(3)
    rows, y_rows = make_task("digits", seq_len=8).batch("test", 4, gen())
    pixels, y_pix = make_task("digits", seq_len=64).batch("test", 4, gen())
    assert torch.equal(y_rows, y_pix)
    assert torch.equal(rows.transpose(0, 1).reshape(4, 64), pixels.transpose(0, 1).reshape(4, 64))
    with pytest.raises(ValueError, match="seq_len"):
        make_task("digits", seq_len=10)


def test_copy_memory_layout():
    task = make_task("copy", seq_len=5)
    x, y = task.batch("train", 3, torch.Generator().manual_seed(0))
    assert x.shape == (25, 3)
    assert (x[:10] >= 1).all() and (x[:10] <= 8).all()
    assert (x[10:14] == 0).all() and (x[14] == 9).all() and (x[15:] == 0).all()
    assert (y[:15] == 0).all() and torch.equal(y[15:], x[:10])


def test_future_and_seq2seq_targets():
    fut = make_task("future", seq_len=6, offset=2)
    x, y = fut.batch("train", 3, torch.Generator().manual_seed(0))
    assert torch.equal(y[:4], x[2:]) and (y[4:] == IGNORE).all()
    x, y = make_task("reverse").batch("train", 3, torch.Generator().manual_seed(0))
    assert torch.equal(y, x.flip(0))
    x, y = make_task("sort").batch("train", 3, torch.Generator().manual_seed(0))
    assert torch.equal(y, x.sort(0).values)


def test_train_size_caps_the_distinct_training_examples():
    task = make_task("adding", seq_len=8, train_size=3)
    x, _ = task.batch("train", 200, torch.Generator().manual_seed(0))
    assert len({tuple(col.flatten().tolist()) for col in x.transpose(0, 1)}) == 3
    xt, _ = task.batch("test", 200, torch.Generator().manual_seed(0))
    assert len({tuple(col.flatten().tolist()) for col in xt.transpose(0, 1)}) == 200
    digits = make_task("digits", train_size=7)
    _, y = digits.batch("train", 500, torch.Generator().manual_seed(0))
    assert len(set(y.tolist())) <= 7
    with pytest.raises(ValueError, match="train_size"):
        make_task("digits", train_size=100_000)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_sizes_are_rejected(bad):
    with pytest.raises(ValueError, match="seq_len"):
        make_task("adding", seq_len=bad)
    with pytest.raises(ValueError, match="train_size"):
        make_task("adding", train_size=bad)
    with pytest.raises(ValueError, match="batch_size"):
        make_task("adding").batch("train", bad, torch.Generator())


def test_charlm_round_trips_text():
    lm = make_task("charlm", seq_len=20)
    assert lm.decode(lm.encode("Shall I compare thee")) == "Shall I compare thee"
    x, y = lm.batch("train", 2, torch.Generator().manual_seed(0))
    assert torch.equal(x[1:], y[:-1])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_evaluation_batch_is_fixed_and_exact_for_small_data_sets(name):
    task = make_task(name, **SMALL[name])
    x, y = task.evaluation_batch(64, torch.Generator().manual_seed(0))
    x2, y2 = task.evaluation_batch(64, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    if name in ("digits", "digits-flat", "digit-draw"):
        assert y.shape[0 if task.target == "class" else 1] == 360  # the whole test split
    if name == "sunspots":
        assert task.metric(task.chance_prediction(x, y), y) == pytest.approx(task.chance, rel=1e-5)
        assert task.metric(x, y) == pytest.approx(task.persistence_mse, rel=1e-5)
    if name == "digit-draw":
        assert task.metric(task.chance_prediction(x, y), y) == pytest.approx(task.chance, rel=1e-5)
