"""rnnlab compare with the extra cells (minGRU, minLSTM) and the layer regularisers; the min
cells in the lab's model, training and diagnostics."""

import json

import pytest
import torch

import rnnlab
import rnnlab.lab
from rnnlab.cli import main
from rnnlab.lab.compare import CLASSIC_CELLS, plan
from rnnlab.lab.diagnostics.gates import gate_statistics
from rnnlab.lab.diagnostics.measure import headline, measure_model
from rnnlab.lab.diagnostics.spectral import candidate_radius, spectral_radii
from rnnlab.lab.diagnostics.state import cell_kind
from rnnlab.lab.model import SequenceModel
from rnnlab.lab.presets import get_preset
from rnnlab.lab.tasks import make_task
from rnnlab.lab.train import TrainConfig, train

MIN_CELLS = ("mingru", "minlstm")


# ---- the model and diagnostics ---------------------------------------------------------------
@pytest.mark.parametrize("cell", MIN_CELLS)
def test_sequence_model_with_a_min_cell_trains(cell):
    task = make_task("adding", seq_len=8)
    model = SequenceModel(cell, task, 8)
    assert type(model.rnn) is {"mingru": rnnlab.MinGRU, "minlstm": rnnlab.MinLSTM}[cell]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        x, y = task.batch("train", 8, generator)
        loss = task.loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    hs = model.hidden_states(x)
    assert hs.c is None and len(hs.h[0]) == 8
    torch.testing.assert_close(hs.pred, model(x), atol=1e-5, rtol=1e-5)


def test_cell_kind_tells_min_cells_from_classic_ones():
    assert cell_kind(rnnlab.MinLSTM(3, 4)) == "minlstm"
    assert cell_kind(rnnlab.MinGRU(3, 4)) == "mingru"
    assert cell_kind(rnnlab.LSTM(3, 4)) == "lstm"
    assert cell_kind(rnnlab.GRU(3, 4)) == "gru"
    assert cell_kind(torch.nn.LSTM(3, 4)) == "lstm"


@pytest.mark.parametrize(("cell", "gates"), [("mingru", {"z"}), ("minlstm", {"f", "i"})])
def test_diagnostics_degrade_gracefully_for_min_cells(cell, gates):
    result = train(TrainConfig(task="adding", cell=cell, hidden=6, seq_len=6, steps=2,
                               batch_size=4, eval_every=2, eval_size=8, threads=1))
    record = measure_model(result.model, result.task, batch_size=4)
    assert record["spectral"] == {} and record["candidate_radius"] is None
    assert set(record["gates"]) == gates
    assert headline(record)["radius"] is None
    assert len(record["gradflow"]["norms"]["h"]) == 7
    assert spectral_radii(result.model.rnn) == {}
    assert candidate_radius(result.model.rnn) is None
    stats = gate_statistics(result.model.rnn, torch.randn(5, 2, result.model.rnn.input_size))
    assert stats["cell"] == cell and set(stats["gates"]) == gates


def test_gradflow_cli_runs_a_min_cell(tmp_path, capsys):
    assert main(["gradflow", "--cell", "minlstm", "--seq-len", "6", "--hidden", "4",
                 "--out", str(tmp_path / "g"), "--no-progress"]) == 0
    assert "ρ(—)" in capsys.readouterr().out
    assert main(["gradflow", "--cell", "mingru", "--scale", "2", "--out",
                 str(tmp_path / "h")]) == 2


# ---- the plan ---------------------------------------------------------------------------------
def test_plan_adds_regularised_runs_only_where_the_layer_accepts_them():
    p = get_preset("tiny")
    regs = {"recurrent_dropout": 0.1, "zoneout": 0.1, "weight_dropout": 0.2}
    jobs = plan(p, ("adding",), ("lstm", "sru", "mingru"), regularisers=regs)
    extra = {j["config"]["cell"]: j for j in jobs if j["claim"] == "regularisers"}
    assert set(extra) == {"lstm", "sru"}
    assert extra["lstm"]["config"]["layer_options"] == regs
    assert extra["sru"]["config"]["layer_options"] == {"zoneout": 0.1}
    assert extra["lstm"]["config"]["seq_len"] == max(p.adding_lens)
    assert len({j["id"] for j in jobs}) == len(jobs)
    plain = plan(p, ("adding",), ("lstm", "sru", "mingru"))
    assert all(j["claim"] != "regularisers" for j in plain)
    assert [j for j in jobs if j["claim"] != "regularisers"] == plain
    with pytest.raises(ValueError, match="regularisers"):
        plan(p, ("adding",), ("lstm",), regularisers={"dropconnect": 0.1})
    with pytest.raises(ValueError, match="regularisers"):
        plan(p, ("adding",), ("lstm",), regularisers={"zoneout": 1.5})


# ---- compare end to end -----------------------------------------------------------------------
def test_compare_with_min_cells_and_a_regulariser(tmp_path):
    out = tmp_path / "report"
    result = rnnlab.lab.compare("tiny", tasks=["adding", "future"],
                                cells=("lstm", "mingru", "minlstm"), out_dir=out, jobs=1,
                                progress=False, regularisers={"zoneout": 0.1})
    assert isinstance(result, rnnlab.lab.CompareResult)
    cells = {r["cell"] for r in result.runs}
    assert {"mingru", "minlstm"} <= cells
    regularised = [r for r in result.runs if r["claim"] == "regularisers"]
    assert [r["cell"] for r in regularised] == ["lstm"]
    assert regularised[0]["config"]["layer_options"] == {"zoneout": 0.1}
    measured = {r["cell"]: r["measure"] for r in result.runs if "measure" in r}
    assert measured["mingru"]["candidate_radius"] is None
    page = (out / "index.html").read_text()
    summary = (out / "summary.md").read_text()
    for label in ("mingru", "minlstm", "zoneout=0.1"):
        assert label in summary
    assert "id='bidirectional'" in page
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == len(result.runs)
    # the min cells are rows, not judged: the bidirectional verdict reads the LSTM alone
    assert "MINGRU" not in result.verdict("bidirectional").text


def test_compare_rejects_regularisers_no_cell_accepts():
    with pytest.raises(ValueError, match="regularisers"):
        rnnlab.lab.compare("tiny", tasks=["adding"], cells=["mingru"], out_dir=None, jobs=1,
                           progress=False, regularisers={"weight_dropout": 0.2})
    with pytest.raises(ValueError, match="regularisers"):
        rnnlab.lab.compare("tiny", tasks=["future"], cells=["lstm"], out_dir=None, jobs=1,
                           progress=False, regularisers={"zoneout": 0.1})


def test_compare_cli_with_a_min_cell_and_regularisers(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", "--preset", "tiny", "--tasks", "adding", "--cells", "mingru", "rnn",
                 "--regularisers", "recurrent_dropout=0.1", "zoneout=0.1",
                 "weight_dropout=0.2", "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "mingru" in text and "verdicts:" in text
    assert "rnn, recurrent_dropout=0.1, zoneout=0.1, weight_dropout=0.2" in text
    assert (out / "index.html").is_file()
    assert main(["compare", "--regularisers", "dropconnect=0.1",
                 "--out", str(tmp_path / "x")]) == 2


def test_default_cells_are_the_classic_four():
    import inspect

    from rnnlab.lab.compare import compare

    assert inspect.signature(compare).parameters["cells"].default == CLASSIC_CELLS
    assert CLASSIC_CELLS == ("rnn", "lstm", "gru", "sru")
