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
# # 1. The RNN cell and the four task shapes
#
# A feed-forward network maps one input to one output and forgets it. A recurrent network
# keeps a **hidden state** $h_t$: at every time step the cell reads the current input $x_t$
# *together with* its own previous output $h_{t-1}$,
#
# $$h_{t} = \phi_{h}(W_{xh}x_{t} + W_{hh}h_{t-1}+b_{h})$$
#
# $$y_{t} = \phi_{y}(W_{hy}h_{t} + b_{y})$$
#
# with $W_{xh}$ input → hidden, $W_{hh}$ recurrent, $W_{hy}$ hidden → output, and the same
# weights at every step. $h_0$ starts at zero (or random values).

# %% [markdown] lang="ko"
# # 1. RNN 셀과 네 가지 태스크 형태
#
# 피드 포워드 신경망은 입력 하나를 출력 하나로 바꾸고 그것을 잊어버립니다. 순환 신경망은
# **은닉 상태(hidden state)** $h_t$ 를 가지고 있어서, 매 시점마다 현재 입력 $x_t$ 와 자기 자신의
# 이전 출력 $h_{t-1}$ 을 *함께* 연산합니다.
#
# $$h_{t} = \phi_{h}(W_{xh}x_{t} + W_{hh}h_{t-1}+b_{h})$$
#
# $$y_{t} = \phi_{y}(W_{hy}h_{t} + b_{y})$$
#
# $W_{xh}$ 는 입력 → 은닉, $W_{hh}$ 는 순환(recurrent), $W_{hy}$ 는 은닉 → 출력 가중치이고, 모든
# 시점에서 같은 가중치를 씁니다. $h_0$ 는 0(또는 랜덤 값)으로 초기화되어 시작합니다.

# %%
import os

import matplotlib.pyplot as plt
import torch

import rnnlab
from rnnlab.lab import TrainConfig, make_task, train

TINY = os.environ.get("RNNLAB_DOCS_TINY", "") not in ("", "0")  # the CI setting
torch.manual_seed(0)

# %% [markdown] lang="en"
# ## The cell is the equation
#
# `rnnlab.RNNCell` has torch's parameter names: `weight_ih` is $W_{xh}$, `weight_hh` is
# $W_{hh}$, and $b_h$ is split in two, `bias_ih + bias_hh`. Computing the equation by hand with
# its weights gives the cell's output:

# %% [markdown] lang="ko"
# ## 셀은 수식 그대로입니다
#
# `rnnlab.RNNCell` 은 torch 와 같은 파라미터 이름을 씁니다. `weight_ih` 가 $W_{xh}$,
# `weight_hh` 가 $W_{hh}$ 이고, $b_h$ 는 `bias_ih + bias_hh` 두 개로 나뉘어 있습니다. 셀의
# 가중치로 수식을 손으로 계산하면 셀의 출력과 같습니다.

# %%
cell = rnnlab.RNNCell(input_size=3, hidden_size=4)
x_t, h_prev = torch.randn(2, 3), torch.randn(2, 4)  # a batch of 2

by_hand = torch.tanh(x_t @ cell.weight_ih.T + h_prev @ cell.weight_hh.T
                     + cell.bias_ih + cell.bias_hh)
print("cell(x_t, h_{t-1}):", cell(x_t, h_prev)[0])
print("by hand:           ", by_hand[0])
print("max difference:", (cell(x_t, h_prev) - by_hand).abs().max().item())

# %% [markdown] lang="en"
# A layer, `rnnlab.RNN`, runs the cell along a whole sequence (shape `(T, B, I)`, time first
# as in `torch.nn.RNN`) and returns every $h_t$ and the last one. Looping the cell by hand
# gives the same numbers:

# %% [markdown] lang="ko"
# 레이어 `rnnlab.RNN` 은 셀을 시퀀스 전체(`torch.nn.RNN` 처럼 시간 축이 먼저인 `(T, B, I)`)에
# 걸쳐 반복 실행하고, 모든 $h_t$ 와 마지막 상태를 돌려줍니다. 셀을 직접 반복해도 같은 값이
# 나옵니다.

# %%
layer = rnnlab.RNN(input_size=3, hidden_size=4)
x = torch.randn(6, 2, 3)  # T = 6 steps, B = 2 sequences
out, h_T = layer(x)

step = rnnlab.RNNCell(3, 4)
step.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
h = torch.zeros(2, 4)
for t in range(x.shape[0]):
    h = step(x[t], h)
print("output:", tuple(out.shape), " h_T:", tuple(h_T.shape))
print("layer's h_T equals the loop:", torch.allclose(h_T[0], h, atol=1e-6))

# %% [markdown] lang="en"
# ## Four task shapes
#
# Depending on how many inputs go in and how many outputs come out, recurrent tasks come in
# four shapes. rnnlab's lab has a small task of each shape, and `rnnlab.lab.train` wires the
# layer for it (`SequenceModel`): many-to-one reads the last $h_T$, many-to-many applies
# $W_{hy}$ at every step, one-to-many feeds one vector at step 0 and zeros after.
#
# | shape | task | input → output |
# |---|---|---|
# | one-to-one | `digits-flat` | an 8×8 digit as one vector → its class |
# | one-to-many | `digit-draw` | a class → the 8 rows of a digit image |
# | many-to-one | `digits` | the 8 rows of a digit, one per step → its class |
# | many-to-many | `sunspots` | monthly sunspot numbers → the next month's, at every step |

# %% [markdown] lang="ko"
# ## 네 가지 태스크 형태
#
# 입력 개수와 출력 개수에 따라 순환 신경망의 태스크는 one to one, one to many, many to one,
# many to many 네 가지로 나뉩니다. rnnlab 의 lab 에는 형태마다 작은 태스크가 있고,
# `rnnlab.lab.train` 이 그 형태에 맞게 레이어를 연결합니다(`SequenceModel`). many to one 은
# 마지막 $h_T$ 를 읽고, many to many 는 매 시점에 $W_{hy}$ 를 적용하며, one to many 는 0 시점에
# 벡터 하나를 넣고 그 뒤에는 0 을 넣습니다.
#
# | 형태 | 태스크 | 입력 → 출력 |
# |---|---|---|
# | one to one | `digits-flat` | 8×8 숫자 이미지 한 장(벡터 하나) → 클래스 |
# | one to many | `digit-draw` | 클래스 → 숫자 이미지의 8 개 행 |
# | many to one | `digits` | 숫자 이미지의 8 개 행(시점마다 한 행) → 클래스 |
# | many to many | `sunspots` | 월별 흑점 수 → 매 시점마다 다음 달의 값 |

# %%
tasks = ["digits-flat", "digit-draw", "digits", "sunspots"]
for name in tasks:
    task = make_task(name)
    x, y = task.batch("train", 4, torch.Generator().manual_seed(0))
    print(f"{name:12s} {task.shape:13s} x {tuple(x.shape)!s:14s} y {tuple(y.shape)}")

# %% [markdown] lang="en"
# The shapes are time-major where there is time: `digits` is 8 steps of 8 pixels, the
# one-to-many target is 8 steps of 8 values. Now train a plain RNN (32 hidden units) on each
# and compare its test metric with the task's chance level:

# %% [markdown] lang="ko"
# 시간 축이 있는 곳은 시간이 먼저입니다. `digits` 는 8 픽셀씩 8 시점, one to many 의 정답은
# 8 개 값씩 8 시점입니다. 이제 각 태스크에 은닉 유닛 32 개짜리 기본 RNN 을 학습시키고, 테스트
# 지표를 우연 수준(chance)과 비교해 봅니다.

# %%
steps = 30 if TINY else 250
results = {}
for name in tasks:
    config = TrainConfig(task=name, cell="rnn", hidden=32, steps=steps, batch_size=32,
                         lr=3e-3, eval_every=max(steps // 10, 1), eval_size=256, seed=0)
    results[name] = r = train(config, progress=False)
    print(f"{name:12s} {r.task.shape:13s} {r.metric_name} {r.final_metric:.3f} "
          f"(chance {r.chance:.3f}), {r.params} parameters")

# %%
fig, axes = plt.subplots(1, 4, figsize=(14, 3))
for ax, (name, r) in zip(axes, results.items()):
    points = [(h["step"], h["metric"]) for h in r.history if "metric" in h]
    ax.plot(*zip(*points), marker="o", label="RNN")
    ax.axhline(r.chance, color="gray", linestyle="--", label="chance")
    ax.set_title(f"{name} ({r.task.shape})")
    ax.set_xlabel("step")
    ax.set_ylabel(r.metric_name)
axes[0].legend()
fig.tight_layout()
plt.show()

# %% [markdown] lang="en"
# The same cell beats chance on every shape (accuracy above it, MSE below it): only the
# wiring around it changes. The next tutorial looks at how the gradient travels back through
# the steps, and why long sequences make that hard.

# %% [markdown] lang="ko"
# 같은 셀이 네 가지 형태 모두에서 우연 수준보다 낫습니다(정확도는 그보다 높고 MSE 는 그보다
# 낮습니다). 바뀌는 것은 셀 주변의 연결뿐입니다. 다음 튜토리얼에서는 그레디언트가 시점을
# 거슬러 어떻게 전달되는지, 그리고 시퀀스가 길면 왜 어려워지는지를 살펴봅니다.
