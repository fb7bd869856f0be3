"""rnnlab compare and rnnlab gradflow: verdict logic on synthetic numbers, CLI end to end on
tiny settings."""

import json
import math

import pytest

from rnnlab.cli import main
from rnnlab.lab.report import verdicts as V


# ---- verdicts, both outcomes ------------------------------------------------------------------
def test_gated_vs_rnn_verdict():
    chance = 1 / 6
    good = {20: {"rnn": 0.002, "lstm": 0.001, "gru": 0.001},
            100: {"rnn": 0.165, "lstm": 0.0008, "gru": 0.004, "sru": 0.02}}
    v = V.gated_vs_rnn(good, chance)
    assert v.status == V.CONFIRMED
    assert "T = 100" in v.text and "0.0008" in v.text and "T = 20 the RNN solves it" in v.text
    bad = {100: {"rnn": 0.003, "lstm": 0.15, "gru": 0.16}}
    assert V.gated_vs_rnn(bad, chance).status == V.NOT_CONFIRMED
    mixed = {100: {"rnn": 0.16, "lstm": 0.001, "gru": 0.05}}
    v = V.gated_vs_rnn(mixed, chance)
    assert v.status == V.PARTLY and "GRU" in v.text
    assert V.gated_vs_rnn({}, chance).status == V.NOT_RUN


def test_vanishing_verdict():
    assert V.vanishing({"rnn": -6.5, "lstm": -0.4}, 100).status == V.CONFIRMED
    assert V.vanishing({"rnn": -0.5, "lstm": -3.0}, 100).status == V.NOT_CONFIRMED
    assert V.vanishing({"rnn": -6.5, "lstm": -3.0}, 100).status == V.PARTLY
    assert V.vanishing({"lstm": -1.0}, 100).status == V.NOT_RUN


def test_exploding_verdict():
    clipped = {"max_norm": 40.0, "median_norm": 0.5, "diverged": False, "final_loss": 0.17}
    blown = {"max_norm": math.inf, "median_norm": 1e8, "diverged": True, "final_loss": math.nan}
    v = V.exploding(blown, clipped)
    assert v.status == V.CONFIRMED and "diverged" in v.text
    calm = {"max_norm": 2.0, "median_norm": 1.0, "diverged": False, "final_loss": 0.17}
    assert V.exploding(calm, clipped).status == V.NOT_CONFIRMED
    spiky_harmless = {"max_norm": 50.0, "median_norm": 1.0, "diverged": False, "final_loss": 0.17}
    assert V.exploding(spiky_harmless, clipped).status == V.PARTLY
    assert V.exploding({}, clipped).status == V.NOT_RUN


def test_gru_vs_lstm_verdict():
    lstm = {"params": 5000, "metrics": {"full": 0.95, "small": 0.80}}
    gru = {"params": 3800, "metrics": {"full": 0.94, "small": 0.82}}
    v = V.gru_vs_lstm(lstm, gru, higher_is_better=True)
    assert v.status == V.CONFIRMED and "24% fewer" in v.text
    worse = {"params": 3800, "metrics": {"full": 0.70, "small": 0.50}}
    assert V.gru_vs_lstm(lstm, worse, True).status == V.PARTLY  # fewer params only
    bigger = {"params": 6000, "metrics": {"full": 0.70, "small": 0.50}}
    assert V.gru_vs_lstm(lstm, bigger, True).status == V.NOT_CONFIRMED
    # a loss: lower is better
    assert V.gru_vs_lstm({"params": 10, "metrics": {"full": 0.1}},
                         {"params": 8, "metrics": {"full": 0.1}}, False).status == V.CONFIRMED


def test_bidirectional_and_speed_verdicts():
    assert V.bidirectional({"lstm": 0.125}, {"lstm": 0.99}, 0.125).status == V.CONFIRMED
    assert V.bidirectional({"lstm": 0.125}, {"lstm": 0.13}, 0.125).status == V.NOT_CONFIRMED
    v = V.sru_speed({"reference": {"lstm": 0.02, "sru": 0.01}, "auto": {"lstm": 0.005,
                                                                       "sru": 0.01}},
                    {"reference": {"lstm": "reference", "sru": "reference"},
                     "auto": {"lstm": "native", "sru": "reference"}})
    assert v.status == V.PARTLY and "2.00× faster" in v.text and "LSTM→native" in v.text
    assert V.sru_speed({"reference": {"lstm": 0.02, "sru": 0.01}}).status == V.CONFIRMED
    assert V.sru_speed({"reference": {"lstm": 0.01, "sru": 0.02}}).status == V.NOT_CONFIRMED
    assert V.sru_speed({}).status == V.NOT_RUN


# ---- CLI end to end -------------------------------------------------------------------------
def test_gradflow_cli(tmp_path, capsys):
    out = tmp_path / "gf"
    code = main(["gradflow", "--cell", "rnn", "--seq-len", "12", "--hidden", "6", "--scale", "2",
                 "--trained-steps", "1", "--clip", "norm", "none", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "init, scale 2" in text and "clip none" in text and "k0/kT" in text
    data = json.loads((out / "gradflow.json").read_text())
    assert [c["stage"] for c in data["conditions"]] == ["init", "trained", "trained"]
    first = data["conditions"][0]["record"]
    assert len(first["gradflow"]["norms"]["h"]) == 13
    assert first["candidate_radius"] > 0 and first["jacobian"]
    assert (out / "gradflow.png").stat().st_size > 1000


def test_gradflow_cli_sru_scales_weight_c(tmp_path, capsys):
    assert main(["gradflow", "--cell", "sru", "--seq-len", "6", "--hidden", "4", "--scale", "0.5",
                 "3", "--out", str(tmp_path / "sru"), "--no-progress"]) == 0
    assert "ρ(f)" in capsys.readouterr().out  # SRU: the forget path's v_f
    data = json.loads((tmp_path / "sru" / "gradflow.json").read_text())
    small, large = (c["record"]["candidate_radius"] for c in data["conditions"])
    assert large == pytest.approx(6 * small, rel=1e-5)


@pytest.mark.parametrize("argv", [
    ["gradflow", "--cell", "tanh"],
    ["gradflow", "--seq-len", "-3"],
    ["gradflow", "--scale", "0"],
    ["gradflow", "--cell", "sru", "--scale", "2", "--trained-steps", "3"],
    ["gradflow", "--cell", "lstm", "--nonlinearity", "relu"],
    ["compare", "--preset", "huge"],
    ["compare", "--tasks", "weather"],
    ["compare", "--jobs", "0"],
])
def test_bad_input_exits_2(argv, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0]


def test_compare_cli_tiny(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", "--preset", "tiny", "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "verdicts:" in text and "adding T=10" in text
    page = (out / "index.html").read_text()
    summary = (out / "summary.md").read_text()
    for claim in ("gated", "vanishing", "exploding", "gru", "bidirectional", "speed", "music",
                  "mnist", "long", "irnn", "clipping", "init"):
        assert f"id='{claim}'" in page
    for name in ("learning_curves.png", "gradient_flow.png", "gates.png", "exploding.png",
                 "speed.png", "final_adding.png"):
        assert (out / name).is_file() and name in page
    assert "## Verdicts" in summary and "SRU speed" in summary
    data = json.loads((out / "results.json").read_text())
    assert {v["status"] for v in data["verdicts"]} <= {V.CONFIRMED, V.PARTLY, V.NOT_CONFIRMED,
                                                        V.NOT_RUN}
    # a published-vs-measured table for every claim with published numbers, citing its table
    assert set(data["published"]) >= {"gated", "gated-copy", "music", "mnist", "long",
                                      "clipping"}
    rows = [row for tables in data["published"].values() for t in tables for row in t["rows"]]
    assert all("Table" in row["source"] or "quoted" in row["source"] for row in rows)
    assert "Beside the published record" in summary and "Bai, Kolter &amp; Koltun 2018" in page
    assert data["device"].startswith("device: cpu")


def test_compare_python_api_subset():
    from rnnlab.lab.compare import compare

    result = compare("tiny", tasks=["future"], cells=["lstm"], out_dir=None, jobs=1,
                     progress=False)
    assert [r["label"] for r in result.runs] == ["lstm uni", "lstm bi"]
    assert result.verdict("bidirectional").status != V.NOT_RUN
    assert result.verdict("gated").status == V.NOT_RUN
    assert result.verdict("speed").status == V.NOT_RUN
