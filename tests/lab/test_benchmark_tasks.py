"""The published benchmarks' tasks: polyphonic music (JSB Chorales, Nottingham) and
sequential / permuted MNIST — data loading, shapes, metric and chance level, offline."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnlab.lab.tasks import make_task
from rnnlab.lab.tasks.mnist_data import mnist_split
from rnnlab.lab.tasks.music import PAD
from rnnlab.lab.tasks.music_data import music_split


@pytest.mark.parametrize(("dataset", "sizes"), [("jsb", (229, 76, 77)),
                                                ("nottingham", (694, 173, 170))])
def test_music_splits_are_the_published_ones(dataset, sizes):
    splits = [music_split(dataset, s) for s in ("train", "valid", "test")]
    assert tuple(len(s) for s in splits) == sizes
    roll = splits[0][0]
    assert roll.shape[1] == 88 and roll.dtype == torch.float32
    assert set(torch.unique(roll).tolist()) <= {0.0, 1.0}


def test_music_nll_is_summed_over_keys_and_averaged_over_scored_steps():
    task = make_task("music", seq_len=20)
    x, y = task.batch("train", 3, torch.Generator().manual_seed(0))
    y[15:, 1] = PAD  # pretend the second sequence ended early
    logits = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    scored = y[..., 0] != PAD
    per_step = F.binary_cross_entropy_with_logits(logits, y.clamp_min(0), reduction="none").sum(-1)
    expected = per_step[scored].mean()
    assert task.metric(logits, y) == pytest.approx(float(expected), rel=1e-5)
    assert int(scored.sum()) == 3 * 20 - 5


def test_music_windows_are_next_step_pairs_and_padding_is_not_scored():
    task = make_task("music", seq_len=200)  # longer than any JSB sequence: whole ones
    x, y = task.batch("train", 4, torch.Generator().manual_seed(2))
    for b in range(4):
        n = int((y[:, b, 0] != PAD).sum())
        assert torch.equal(x[1:n, b], y[:n - 1, b])
        assert (x[n:, b] == 0).all() and (y[n:, b] == PAD).all()


def test_music_evaluation_scores_every_test_step_and_chance_is_the_key_frequencies():
    task = make_task("music")
    x, y = task.evaluation_batch(0, torch.Generator())
    rolls = music_split("jsb", "test")
    assert x.shape == (max(len(r) for r in rolls) - 1, 77, 88)
    assert int((y[..., 0] != PAD).sum()) == sum(len(r) - 1 for r in rolls)
    assert task.metric(task.chance_prediction(x, y), y) == pytest.approx(task.chance)
    assert 9 < task.chance < task.uniform_nll == pytest.approx(88 * math.log(2))
    uniform = torch.zeros_like(y)
    assert task.metric(uniform, y) == pytest.approx(task.uniform_nll, rel=1e-5)
    valid = make_task("music", eval_split="valid")
    assert valid.evaluation_batch(0, torch.Generator())[0].shape[1] == 76


def test_music_options_are_checked():
    with pytest.raises(ValueError, match="dataset"):
        make_task("music", dataset="bach")
    with pytest.raises(ValueError, match="eval_split"):
        make_task("music", eval_split="train")
    with pytest.raises(ValueError, match="train_size"):
        make_task("music", train_size=1000)
    assert len(make_task("music", train_size=5).rolls["train"]) == 5


def test_mnist_subset_split_is_fixed_balanced_and_scaled():
    images, labels = mnist_split("train")
    test_images, test_labels = mnist_split("test")
    assert images.shape == (4000, 784) and test_images.shape == (1000, 784)
    assert torch.bincount(test_labels).tolist() == [100] * 10
    assert 0 <= float(images.min()) and float(images.max()) <= 1


def test_mnist_pixels_rows_and_permutation_read_the_same_image():
    gen = lambda: torch.Generator().manual_seed(3)
    pixels, y = make_task("mnist").batch("train", 2, gen())
    rows, y_rows = make_task("mnist", seq_len=28).batch("train", 2, gen())
    permuted, y_perm = make_task("pmnist").batch("train", 2, gen())
    assert pixels.shape == (784, 2, 1) and rows.shape == (28, 2, 28)
    assert torch.equal(y, y_rows) and torch.equal(y, y_perm)
    assert torch.equal(pixels[:, :, 0], rows.permute(0, 2, 1).reshape(784, 2))
    assert not torch.equal(permuted, pixels)
    assert torch.equal(permuted.sort(0).values, pixels.sort(0).values)  # the same pixels
    order = make_task("pmnist").order
    assert torch.equal(permuted[:, :, 0], pixels[order, :, 0])


def test_mnist_options_are_checked():
    with pytest.raises(ValueError, match="seq_len"):
        make_task("mnist", seq_len=100)
    with pytest.raises(ValueError, match="train_size"):
        make_task("mnist", train_size=5000)
    task = make_task("mnist", seq_len=28)
    x, y = task.evaluation_batch(0, torch.Generator())
    assert x.shape == (28, 1000, 28) and task.chance == 0.1
