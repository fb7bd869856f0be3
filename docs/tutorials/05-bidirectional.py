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
# # 5. Bidirectional layers: when the future matters
#
# An RNN predicts the present from the past only. A **bidirectional** RNN (BRNN, Schuster &
# Paliwal 1997) runs two recurrences over the sequence, one forward in time and one backward,
# and reads both at every step:
#
# $$\overrightarrow{h}_{t} = f(\overrightarrow{W}_{x} x_{t} + \overrightarrow{W}_{h}\overrightarrow{h}_{t-1} + \overrightarrow{b})$$
#
# $$\overleftarrow{h}_{t} = f(\overleftarrow{W}_{x} x_{t} + \overleftarrow{W}_{h}\overleftarrow{h}_{t+1} + \overleftarrow{b})$$
#
# $$y_{t} = W_{y}[\overrightarrow{h}_{t}; \overleftarrow{h}_{t}] + b_y$$
#
# The two directions have their own weights; $y_t$ sees the whole sequence, past and future.
# This only makes sense when the whole sequence is available before the outputs are needed
# (tagging a sentence, not forecasting tomorrow). A BRNN inherits the vanishing gradients of
# its cells, which is why it is usually built from LSTM or GRU cells.

# %% [markdown] lang="ko"
# # 5. 양방향 레이어: 미래가 중요할 때
#
# RNN 은 이전 정보만을 사용하여 현재 상태를 예측합니다. **양방향(bidirectional)** RNN(BRNN,
# Schuster & Paliwal 1997)은 이 한계를 극복하기 위해 시퀀스 위에서 순환을 두 번, 시간 순서대로
# 한 번과 거꾸로 한 번 실행하고, 매 시점 둘을 함께 읽습니다. 과거의 은닉 상태로 현재 은닉
# 상태를 계산하는 메모리 셀과, 미래의 은닉 상태로 현재 은닉 상태를 계산하는 메모리 셀 두 개를
# 쓰는 셈입니다.
#
# $$\overrightarrow{h}_{t} = f(\overrightarrow{W}_{x} x_{t} + \overrightarrow{W}_{h}\overrightarrow{h}_{t-1} + \overrightarrow{b})$$
#
# $$\overleftarrow{h}_{t} = f(\overleftarrow{W}_{x} x_{t} + \overleftarrow{W}_{h}\overleftarrow{h}_{t+1} + \overleftarrow{b})$$
#
# $$y_{t} = W_{y}[\overrightarrow{h}_{t}; \overleftarrow{h}_{t}] + b_y$$
#
# 두 방향은 각자의 가중치를 갖고, $y_t$ 는 과거와 미래를 포함한 시퀀스 전체를 봅니다. 출력이
# 필요하기 전에 시퀀스 전체가 주어질 때에만 의미가 있습니다(문장의 태깅이지, 내일의 예측이
# 아닙니다). BRNN 도 셀의 vanishing gradient 문제를 그대로 물려받기 때문에 보통 LSTM 이나 GRU
# 셀로 만듭니다.

# %%
import os

import matplotlib.pyplot as plt
import torch

import rnnlab
from rnnlab.lab import TrainConfig, train

TINY = os.environ.get("RNNLAB_DOCS_TINY", "") not in ("", "0")  # the CI setting
torch.manual_seed(0)

# %% [markdown] lang="en"
# ## What each half of the output sees
#
# `bidirectional=True` doubles the output: `(T, B, 2H)`, the forward $\overrightarrow{h}_t$
# in the first $H$ features and the backward $\overleftarrow{h}_t$ in the last $H$, exactly
# as `torch.nn.GRU`. Change the input at one step $s$ and look at which outputs move: the
# forward half changes only from $s$ on, the backward half only up to $s$.

# %% [markdown] lang="ko"
# ## 출력의 각 절반이 보는 것
#
# `bidirectional=True` 이면 출력이 두 배가 됩니다. `(T, B, 2H)` 에서 앞쪽 $H$ 개 특성은 순방향
# $\overrightarrow{h}_t$, 뒤쪽 $H$ 개는 역방향 $\overleftarrow{h}_t$ 이며, `torch.nn.GRU` 와
# 똑같습니다. 한 시점 $s$ 의 입력을 바꾸고 어떤 출력이 움직이는지 보면, 순방향 절반은 $s$
# 이후만, 역방향 절반은 $s$ 까지만 바뀝니다.

# %%
T, H, s = 12, 16, 6
layer = rnnlab.GRU(4, H, bidirectional=True)
x = torch.randn(T, 1, 4)
x2 = x.clone()
x2[s] += 1.0  # change the input at step s only
with torch.no_grad():
    out, h_n = layer(x)
    change = (layer(x2)[0] - out).abs()[:, 0]
print("output", tuple(out.shape), " h_n", tuple(h_n.shape))
print("forward half changed at steps: ", torch.nonzero(change[:, :H].sum(1) > 0).flatten().tolist())
print("backward half changed at steps:", torch.nonzero(change[:, H:].sum(1) > 0).flatten().tolist())

fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(torch.arange(T) - 0.2, change[:, :H].sum(1), width=0.4, label="forward half")
ax.bar(torch.arange(T) + 0.2, change[:, H:].sum(1), width=0.4, label="backward half")
ax.axvline(s, color="gray", linestyle=":")
ax.set_xlabel("t")
ax.set_ylabel("|change of y_t|")
ax.set_title(f"effect of changing the input at step s = {s}")
ax.legend()
plt.show()

# %% [markdown] lang="en"
# ## A task where the future matters
#
# The lab's `future` task tags each position with the symbol that comes two steps *later*:
# $y_t = x_{t+2}$, symbols drawn independently from 8. Nothing up to step $t$ tells anything
# about $x_{t+2}$, so a unidirectional layer cannot beat chance (1/8), whatever its cell,
# while the backward direction has read the answer two steps earlier. The same GRU, one
# direction against two:

# %% [markdown] lang="ko"
# ## 미래가 중요한 태스크
#
# lab 의 `future` 태스크는 각 위치를 두 시점 *뒤의* 기호로 태깅합니다. $y_t = x_{t+2}$ 이고
# 기호는 8 개 중에서 독립적으로 뽑습니다. $t$ 시점까지의 어떤 정보도 $x_{t+2}$ 에 대해 알려주지
# 않으므로, 단방향 레이어는 셀이 무엇이든 우연 수준(1/8)을 넘을 수 없습니다. 반면 역방향은 답을
# 두 시점 먼저 읽었습니다. 같은 GRU 를 한 방향과 두 방향으로 비교합니다.

# %%
steps = 40 if TINY else 200
results = {}
for bidirectional in (False, True):
    config = TrainConfig(task="future", cell="gru", hidden=32, bidirectional=bidirectional,
                         steps=steps, batch_size=32, lr=1e-2, eval_every=max(steps // 10, 1),
                         eval_size=256, seed=0)
    name = "bidirectional GRU" if bidirectional else "GRU"
    results[name] = r = train(config, progress=False)
    print(f"{name:17s} accuracy {r.final_metric:.3f} (chance {r.chance:.3f}), "
          f"{r.params} parameters")

fig, ax = plt.subplots(figsize=(7, 4))
for name, r in results.items():
    ax.plot(*zip(*[(h["step"], h["metric"]) for h in r.history if "metric" in h]),
            marker="o", label=name)
ax.axhline(r.chance, color="gray", linestyle="--", label="chance")
ax.set_xlabel("step")
ax.set_ylabel("test accuracy")
ax.set_title("future task: y_t = x_{t+2}")
ax.legend()
plt.show()

# %% [markdown] lang="en"
# The unidirectional GRU stays at chance; the bidirectional one solves the task. The lab
# refuses `bidirectional=True` on causal tasks (forecasting, language modelling), where
# reading the future would be cheating.

# %% [markdown] lang="ko"
# 단방향 GRU 는 우연 수준에 머물고, 양방향 GRU 는 태스크를 풉니다. lab 은 미래를 읽으면
# 반칙이 되는 인과적(causal) 태스크(예측, 언어 모델)에서는 `bidirectional=True` 를 거부합니다.
