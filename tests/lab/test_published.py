"""The published record beside the lab's numbers: the data module, row agreement, ordering,
the benchmark verdicts, the underflow wording, --device, --scale and the ETA."""

import math

import pytest

from rnnlab.lab import published as P
from rnnlab.lab.compare import eta, plan, resolve_device
from rnnlab.lab.presets import get_preset
from rnnlab.lab.report import benchmark_verdicts as BV
from rnnlab.lab.report import verdicts as V
from rnnlab.lab.report.published_table import agreement, published_table


def test_every_published_number_cites_a_table_and_a_protocol():
    assert len(P.PUBLISHED) >= 25
    for p in P.PUBLISHED:
        assert ("Table" in p.source or "quoted" in p.source) and p.protocol
        assert math.isfinite(p.value)
        assert p.metric in ("accuracy", "nll", "mse", "xent")
        if p.metric == "accuracy":
            assert 0 < p.value <= 1  # fractions, like the lab's metric
    jsb = {p.cell: p.value for p in P.published_for("music-jsb")}
    assert jsb == {"lstm": 8.45, "gru": 8.43, "rnn": 8.91}
    assert P.published_for("nothing") == []


def _record(cell, value, chance, **extra):
    config = {"task_options": {}, "train_size": None, "num_layers": 1, "hidden": 8,
              "clip": "norm", "clip_value": 1.0, "steps": 10, "batch_size": 4,
              "optimizer": "adam", "lr": 1e-3}
    return {"cell": cell, "cell_key": cell, "final_metric": value, "chance": chance,
            "task": "music", "seq_len": 128, "params": 1000, "config": config,
            "diverged": False, "history": [], **extra}


def test_agreement_in_magnitude():
    assert agreement(8.6, 8.45, 11.1, "nll")[0]  # within 10 %
    ok, words = agreement(10.0, 8.45, 11.1, "nll")
    assert not ok and "18% higher" in words
    assert agreement(0.17, 0.164, 1 / 6, "mse") == (True, "agrees: both at the baseline")
    assert agreement(1e-4, 5.3e-5, 1 / 6, "mse") == (True, "agrees: both solved")
    ok, words = agreement(0.60, 0.872, 0.1, "accuracy")
    assert not ok and "27.2 points lower" in words
    assert not agreement(math.nan, 8.45, 11.1, "nll")[0]


def test_published_table_judges_ordering_and_magnitude():
    runs = {c: _record(c, v, 11.1) for c, v in (("lstm", 8.6), ("gru", 8.5), ("rnn", 9.0))}
    table = published_table("music-jsb", runs)
    assert table["status"] == V.CONFIRMED and len(table["rows"]) == 3
    assert "2 of 2 published differences" in table["text"]  # LSTM~GRU tied; both beat RNN
    runs["rnn"] = _record("rnn", 8.0, 11.1)  # the tanh RNN ahead: ordering broken
    table = published_table("music-jsb", runs)
    assert table["status"] == V.PARTLY and "not: LSTM ahead of RNN" in table["text"]
    assert published_table("music-jsb", {}) is None
    at_chance = {c: _record(c, v, 11.1) for c, v in (("lstm", 11.0), ("gru", 10.9),
                                                     ("rnn", 11.2))}
    table = published_table("music-jsb", at_chance)  # all at the baseline: no order at all
    assert table["status"] == V.NOT_CONFIRMED and "0 of 2" in table["text"]
    row = table["rows"][0]
    assert row["source"].startswith("Bai") and "T = 128" in row["our_protocol"]


def test_gated_section_sets_bai_beside_the_largest_adding_t():
    records = [{"claim": "gated", "task": "adding", "seq_len": T, **_record(c, v, 1 / 6)}
               for T in (100, 400) for c, v in (("lstm", 0.17), ("gru", 1e-4), ("rnn", 0.17))]
    for r in records:
        r["task"] = "adding"
    tables = BV.published_tables(records)
    table = tables["gated"][0]
    assert table["experiment"] == "adding-600" and table["status"] == V.CONFIRMED
    from rnnlab.lab.report.summary import build_verdicts

    gated = build_verdicts(records, {}, tables)[0]
    assert "0.164" in gated.text and "T = 600" in gated.text


def test_benchmark_verdicts_both_ways():
    def runs(experiment, claim, values, chance):
        return [{**_record(k, v, chance), "experiment": experiment, "claim": claim,
                 "cell_key": k} for k, v in values.items()]

    good = (runs("irnn-adding-100", "irnn", {"irnn": 0.002, "rnn": 0.16, "lstm": 0.001}, 1 / 6)
            + runs("init-adding-400", "init", {"lstm, init torch": 0.17,
                                               "lstm, init forget_bias:1.0": 0.003,
                                               "lstm, init chrono:400": 0.001}, 1 / 6)
            + runs("clipping-nottingham", "clipping",
                   {"rnn, clip none": 4.2, "rnn, clip norm": 3.9}, 10.3))
    verdicts = {v.claim: v for v in BV.benchmark_verdicts(good, BV.published_tables(good))}
    assert {c: v.status for c, v in verdicts.items()} == {
        "irnn": V.CONFIRMED, "init": V.CONFIRMED, "clipping": V.CONFIRMED}
    assert "Hu et al." in verdicts["init"].text and "3.80 → 3.48" in verdicts["clipping"].text
    bad = (runs("init-adding-400", "init", {"lstm, init torch": 0.17,
                                            "lstm, init forget_bias:1.0": 0.16,
                                            "lstm, init chrono:400": 0.003}, 1 / 6)
           + runs("clipping-nottingham", "clipping",
                  {"rnn, clip none": 3.9, "rnn, clip norm": 3.9}, 10.3))
    verdicts = {v.claim: v for v in BV.benchmark_verdicts(bad, {})}
    assert verdicts["init"].status == V.PARTLY
    assert verdicts["clipping"].status == V.NOT_CONFIRMED


def test_vanishing_says_underflow_not_inf():
    v = V.vanishing({"rnn": -math.inf, "lstm": -0.5}, 400)
    assert v.status == V.CONFIRMED
    assert "inf decades" not in v.text and "underflows to zero" in v.text
    assert "45 decades" in v.text


def test_device_resolution(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device, line = resolve_device("auto")
    assert device == "cpu" and "no GPU" in line
    with pytest.raises(ValueError, match="device: cuda"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    device, line = resolve_device("auto")
    assert device == "cuda" and "NVIDIA H200" in line and "auto" in line


def test_eta_and_scaled_presets():
    assert math.isnan(eta(10.0, 0.0, 100.0))
    assert eta(10.0, 25.0, 100.0) == pytest.approx(30.0)
    paper = get_preset("paper")
    small = paper.scaled(0.01)
    assert small.mnist_steps == round(paper.mnist_steps * 0.01)
    assert small.music_epochs == pytest.approx(paper.music_epochs * 0.01)
    assert small.speed_steps == paper.speed_steps and small.hidden == paper.hidden
    assert small.name == "paper × 0.01"
    with pytest.raises(ValueError, match="scale"):
        paper.scaled(0)


def test_paper_plan_uses_the_published_sizes():
    jobs = {j["id"]: j for j in plan(get_preset("paper"))}
    lstm = jobs["music-jsb-lstm"]["config"]
    assert (lstm["num_layers"], lstm["hidden"], lstm["batch_size"]) == (2, 200, 1)
    assert lstm["layer_options"] == {"dropout": 0.2, "init": "forget_bias:10.0"}
    adding = jobs["adding-600-lstm"]["config"]
    assert (adding["seq_len"], adding["train_size"], adding["batch_size"]) == (600, 50_000, 32)
    assert adding["steps"] * 32 == 10 * 50_000  # ten epochs
    assert jobs["copy-1000-lstm"]["config"]["seq_len"] == 1000
    assert jobs["irnn-adding-400-irnn"]["config"]["layer_options"] == {
        "nonlinearity": "relu", "init": "identity"}
    assert all(j["cost"] > 0 for j in jobs.values())
