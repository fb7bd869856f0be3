"""JSB Chorales at Bai, Kolter & Koltun (2018)'s LSTM size, beside their Table 1.

Trains LSTM, GRU and tanh RNN of 2 layers × 200 units (dropout 0.2 between the layers,
gradient norm clipped at 1, Adam 1e-3, one sequence per step; the LSTM's forget-gate bias 10,
their Table 3) on the published split that ships with rnnlab, evaluates the validation and
test NLL after every epoch and reports the test NLL at the epoch of the best validation NLL
(their ``music_test.py`` keeps the best validation model). One torch thread per run.

    python benchmarks/jsb_chorales.py                      # 80 epochs -> docs/results/jsb-chorales.json
    python benchmarks/jsb_chorales.py --cells lstm --epochs 40
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from rnnlab.lab.published import published_for
from rnnlab.lab.selection import best_by_validation, validation_evaluator
from rnnlab.lab.tasks.music_data import music_split
from rnnlab.lab.train import TrainConfig, make_task_for, train


def run(cell: str, epochs: int, lr: float, seed: int) -> dict:
    per_epoch = len(music_split("jsb", "train"))
    init = "forget_bias:10.0" if cell == "lstm" else "torch"
    config = TrainConfig(task="music", cell=cell, hidden=200, num_layers=2,
                         steps=per_epoch * epochs, batch_size=1, lr=lr, clip="norm",
                         clip_value=1.0, eval_every=per_epoch, threads=1, seed=seed,
                         task_options={"dataset": "jsb"},
                         layer_options={"dropout": 0.2, "init": init})
    began = time.perf_counter()
    result = train(config, progress=False,
                   also_evaluate=validation_evaluator(make_task_for(config), config.task_options))
    best = best_by_validation(result.history, higher_is_better=False)
    return {"cell": cell, "params": result.params, "epochs": epochs, "lr": lr,
            "best_epoch": best["step"] // per_epoch, "valid": best["valid"],
            "test": best["test"], "last_epoch_test": result.final_metric,
            "seconds": time.perf_counter() - began,
            "curve": [[h["step"] // per_epoch, h["valid_metric"], h["metric"]]
                      for h in result.history if "valid_metric" in h]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/results/jsb-chorales.json")
    args = parser.parse_args()
    published = {p.cell: p.value for p in published_for("music-jsb")}
    runs = []
    for cell in args.cells:
        record = run(cell, args.epochs, args.lr, args.seed)
        gap = record["test"] / published[cell] - 1
        print(f"{cell}: test NLL {record['test']:.3f} at epoch {record['best_epoch']} "
              f"(published {published[cell]}, {gap:+.1%}), {record['params']:,} parameters, "
              f"{record['seconds']:.0f} s", flush=True)
        runs.append(record)
    Path(args.out).write_text(json.dumps({"machine": platform.platform(),
                                          "processor": platform.processor(),
                                          "published": published, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
