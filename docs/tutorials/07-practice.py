# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] lang="en"
# # 7. From here to practice
#
# The previous tutorials looked at one idea at a time. This one goes through what you use
# when training recurrent networks for real with rnnlab: the engines that compute a layer,
# the regularisers for recurrent layers, checkpoints that resume exactly, and the lab's
# `rnnlab compare`, which measures the claims of the earlier tutorials on every cell.

# %% [markdown] lang="ko"
# # 7. 실전으로
#
# 앞의 튜토리얼들은 한 번에 아이디어 하나씩 살펴보았습니다. 이번에는 rnnlab 으로 순환 신경망을
# 실제로 학습시킬 때 쓰는 것들을 살펴봅니다. 레이어를 계산하는 엔진, 순환 레이어를 위한 정규화,
# 정확히 이어서 학습하는 체크포인트, 그리고 앞의 튜토리얼에서 본 주장들을 모든 셀에 대해 측정하는
# lab 의 `rnnlab compare` 입니다.

# %%
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import rnnlab
from rnnlab.lab import TrainConfig, load_model, train

TINY = os.environ.get("RNNLAB_DOCS_TINY", "") not in ("", "0")  # the CI setting
torch.manual_seed(0)
work = Path(tempfile.mkdtemp(prefix="rnnlab-tutorial-"))

# %% [markdown] lang="en"
# ## Engines: `backend=`
#
# Every layer computes the same function on several engines: `reference` (a Python loop over
# the cell and the hand-derived BPTT of tutorial 2), `native` (torch's fused op), `cpu`
# (rnnlab's C++ engine, compiled at first use) and, on CUDA, `triton`. `backend="auto"`
# (the default) picks the fastest that supports the configuration. The results agree up to
# float rounding; the time does not (one CPU thread here):

# %% [markdown] lang="ko"
# ## 엔진: `backend=`
#
# 모든 레이어는 여러 엔진에서 같은 함수를 계산합니다. `reference` (셀에 대한 Python 루프와
# 튜토리얼 2 의 손으로 유도한 BPTT), `native` (torch 의 융합 연산), `cpu` (처음 쓸 때 컴파일되는
# rnnlab 의 C++ 엔진), 그리고 CUDA 에서는 `triton` 입니다. 기본값 `backend="auto"` 는 그
# 설정을 지원하는 가장 빠른 엔진을 고릅니다. 결과는 부동소수점 반올림 범위 안에서 같고, 시간은
# 다릅니다(여기서는 CPU 스레드 하나).

# %%
T, B, H = (20, 8, 32) if TINY else (50, 16, 64)
x = torch.randn(T, B, H)
base = rnnlab.LSTM(H, H)
reference_out = None
threads = torch.get_num_threads()
torch.set_num_threads(1)  # time the work, not how threads get scheduled on a busy machine
for backend in ("reference", "native", "cpu", "auto"):
    layer = rnnlab.LSTM(H, H, backend=backend)
    layer.load_state_dict(base.state_dict())
    layer(x)[0].sum().backward()  # warm-up (compiles the cpu engine the first time)
    start = time.perf_counter()
    for _ in range(3):
        out = layer(x)[0]
        out.sum().backward()
    ms = (time.perf_counter() - start) / 3 * 1000
    reference_out = out if reference_out is None else reference_out
    print(f"{backend:9s} {ms:8.2f} ms forward+backward, max difference from reference "
          f"{(out - reference_out).abs().max().item():.1e}")
torch.set_num_threads(threads)

# %% [markdown] lang="en"
# ## Regularisers: recurrent dropout and zoneout
#
# Ordinary dropout on $h_{t-1}$ at every step would erase the memory. Two regularisers are
# built for recurrences (keyword arguments of `RNN`, `LSTM`, `GRU`):
#
# * `recurrent_dropout=p` (Gal & Ghahramani 2016): one dropout mask $m$ per sequence on the
#   state where it enters $W_{hh}$, the same at every step: $W_{hh}(m \circ h_{t-1})$;
# * `zoneout=p` (Krueger et al. 2017): each unit keeps its previous value with probability
#   $p$ at each step, $h_t = d_t \circ h_{t-1} + (1 - d_t) \circ \tilde h_t$ with
#   $d_t \sim \text{Bernoulli}(p)$, so the gradient also flows through the kept units
#   unchanged.
#
# Both act in training mode only: in `eval()` mode the layer is the plain one. A small
# over-fitting setting (the `digits` task with 200 training images) with and without them:

# %% [markdown] lang="ko"
# ## 정규화: recurrent dropout 과 zoneout
#
# 매 시점 $h_{t-1}$ 에 보통의 dropout 을 쓰면 기억이 지워집니다. 순환을 위해 만든 정규화가 두
# 가지 있습니다(`RNN`, `LSTM`, `GRU` 의 키워드 인자).
#
# * `recurrent_dropout=p` (Gal & Ghahramani 2016): 시퀀스마다 dropout 마스크 $m$ 하나를
#   상태가 $W_{hh}$ 로 들어가는 곳에 모든 시점 똑같이 적용합니다: $W_{hh}(m \circ h_{t-1})$
# * `zoneout=p` (Krueger et al. 2017): 각 유닛이 시점마다 확률 $p$ 로 이전 값을 유지합니다.
#   $h_t = d_t \circ h_{t-1} + (1 - d_t) \circ \tilde h_t$, $d_t \sim \text{Bernoulli}(p)$
#   이므로, 유지된 유닛을 통해 그레디언트도 그대로 흐릅니다.
#
# 둘 다 학습 모드에서만 작동하고, `eval()` 모드의 레이어는 보통 레이어와 같습니다. 과적합이
# 일어나기 쉬운 작은 설정(학습 이미지 200 장의 `digits` 태스크)에서 정규화 유무를 비교합니다.

# %%
layer = rnnlab.LSTM(8, 16, zoneout=0.2)
x_small = torch.randn(10, 2, 8)
layer.train()
print("training mode, two calls differ:", not torch.equal(layer(x_small)[0], layer(x_small)[0]))
layer.eval()
print("eval mode, two calls equal:     ", torch.equal(layer(x_small)[0], layer(x_small)[0]))

steps = 30 if TINY else 150
variants = {"plain": {}, "recurrent_dropout=0.25": {"recurrent_dropout": 0.25},
            "zoneout=0.1": {"zoneout": 0.1}}
for name, options in variants.items():
    config = TrainConfig(task="digits", cell="lstm", hidden=32, steps=steps, batch_size=32,
                         lr=3e-3, train_size=200, eval_every=steps, eval_size=512, seed=0,
                         layer_options=options)
    r = train(config, progress=False)
    train_loss = sum(h["loss"] for h in r.history[-20:]) / len(r.history[-20:])
    print(f"{name:23s} training loss {train_loss:.3f}, test accuracy {r.final_metric:.3f}")

# %% [markdown] lang="en"
# The noise shows in the training loss, which is higher with a regulariser. Whether the test
# accuracy gains depends on whether the plain model over-fits: in a run this short it hardly
# does yet, and a regulariser mostly slows learning down. Set `steps = 1000` and
# `hidden=64` above to give the plain model time to over-fit its 200 images, and compare
# again. One seed is only an illustration; `rnnlab compare --regularisers` runs them on the
# lab's tasks.
#
# ## Checkpoints that resume exactly
#
# With `out_dir`, `rnnlab.lab.train` writes safetensors checkpoints (weights, optimizer,
# every random generator, the history) every `checkpoint_every` steps and on Ctrl-C;
# `resume=True` continues from the newest one. A run stopped and resumed ends exactly where
# an uninterrupted run ends:

# %% [markdown] lang="ko"
# 정규화의 잡음은 학습 손실에서 보입니다. 정규화를 쓰면 학습 손실이 더 높습니다. 테스트
# 정확도가 좋아지는지는 보통 모델이 과적합하는지에 달려 있습니다. 이렇게 짧은 학습에서는 아직
# 거의 과적합하지 않으므로 정규화는 주로 학습을 늦춥니다. 위에서 `steps = 1000`,
# `hidden=64` 로 바꿔 보통 모델이 200 장의 이미지에 과적합할 시간을 주고 다시 비교해 보세요.
# 시드 하나는 예시일 뿐이고, `rnnlab compare --regularisers` 가 lab 의 태스크에서 정규화를
# 비교합니다.
#
# ## 정확히 이어서 학습하는 체크포인트
#
# `out_dir` 를 주면 `rnnlab.lab.train` 은 `checkpoint_every` 스텝마다, 그리고 Ctrl-C 때
# safetensors 체크포인트(가중치, 옵티마이저, 모든 난수 생성기, 기록)를 씁니다. `resume=True` 는
# 가장 최근 체크포인트에서 이어 갑니다. 중간에 멈췄다가 이어서 학습한 결과는 한 번에 끝까지
# 학습한 결과와 정확히 같습니다.

# %%
half = 20 if TINY else 100
common = dict(task="adding", cell="gru", hidden=32, seq_len=20, batch_size=32,
              eval_every=half, eval_size=256, seed=0)
whole = train(TrainConfig(steps=2 * half, **common), progress=False)

run_dir = work / "run"
train(TrainConfig(steps=half, out_dir=str(run_dir), checkpoint_every=half, **common),
      progress=False)  # stops after `half` steps
print("checkpoints:", sorted(p.name for p in (run_dir / "checkpoints").iterdir()))
resumed = train(TrainConfig(steps=2 * half, out_dir=str(run_dir), checkpoint_every=half,
                            **common), resume=True, progress=False)
print("final loss, uninterrupted:", whole.history[-1]["loss"])
print("final loss, resumed:      ", resumed.history[-1]["loss"])

model, task, config, step = load_model(run_dir)  # a trained model back, for inference
print(f"loaded {config.cell} at step {step}:", type(model.rnn).__name__, model.rnn.hidden_size)

# %% [markdown] lang="en"
# The same from the shell: `rnnlab train --task adding --cell gru --out runs/a
# --checkpoint-every 100`, then `--resume` (see `rnnlab train --help`).
#
# ## `rnnlab compare`: every claim measured
#
# `rnnlab compare --preset quick` (a few minutes on a 2-core CPU) trains RNN, LSTM, GRU and
# SRU on the lab's tasks and writes a report (`index.html` with figures, `summary.md`) with a
# verdict per claim: gated cells against the tanh RNN as $T$ grows, vanishing and exploding
# gradients, GRU against LSTM, bidirectional layers, SRU's speed: the ideas of tutorials 1–6.
# Here the command runs at its `tiny` preset, which only exercises the code in seconds (its
# verdicts mean nothing; use `quick` or `full` for real ones). From Python it is
# `rnnlab.lab.compare(preset="quick")`.

# %% [markdown] lang="ko"
# 셸에서도 똑같이 할 수 있습니다. `rnnlab train --task adding --cell gru --out runs/a
# --checkpoint-every 100` 다음에 `--resume` (`rnnlab train --help` 참고).
#
# ## `rnnlab compare`: 모든 주장을 측정하기
#
# `rnnlab compare --preset quick` (2 코어 CPU 에서 몇 분)은 RNN, LSTM, GRU, SRU 를 lab 의
# 태스크로 학습시키고, 주장마다 판정(verdict)을 담은 보고서(그림이 있는 `index.html`,
# `summary.md`)를 씁니다. $T$ 가 커질 때 tanh RNN 대비 게이트 셀, vanishing/exploding gradient,
# GRU 대 LSTM, 양방향 레이어, SRU 의 속도, 즉 튜토리얼 1–6 의 아이디어들입니다. 여기서는 코드만
# 몇 초 안에 실행해 보는 `tiny` 프리셋으로 명령을 돌립니다(판정에는 의미가 없으니, 진짜 판정은
# `quick` 이나 `full` 로 얻으세요). Python 에서는 `rnnlab.lab.compare(preset="quick")` 입니다.

# %%
out = work / "compare"
command = [sys.executable, "-m", "rnnlab.cli", "compare", "--preset", "tiny", "--out", str(out),
           "--jobs", "1", "--quiet"] + (["--tasks", "adding"] if TINY else [])
print("$ rnnlab", " ".join(command[3:]))
start = time.perf_counter()
subprocess.run(command, check=True, capture_output=True, text=True)
seconds = time.perf_counter() - start

report = json.loads((out / "results.json").read_text())
print(f"{len(report['runs'])} runs, {seconds:.0f} s in all;",
      "written:", sorted(p.name for p in out.iterdir()))
for verdict in report["verdicts"]:
    print(f"- {verdict['claim']:13s} {verdict['status']}")

fig, ax = plt.subplots(figsize=(9, 5))
ax.imshow(plt.imread(out / "gradient_flow.png"))
ax.axis("off")
plt.show()

# %% [markdown] lang="en"
# That is the report's gradient-flow figure, the measurement of tutorials 2 and 3 for every
# cell. From here: the [API reference](../reference/index.md) lists every option, and
# `rnnlab --help` every command.

# %% [markdown] lang="ko"
# 보고서의 gradient flow 그림이며, 튜토리얼 2 와 3 의 측정을 모든 셀에 대해 한 것입니다. 이제
# [API 레퍼런스](../reference/index.md) 에서 모든 옵션을, `rnnlab --help` 에서 모든 명령을 볼 수
# 있습니다.
