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
# # 3. LSTM: the gates, and the cell state as a highway for the gradient
#
# The LSTM (Long Short-Term Memory) splits the state in two vectors: $h_t$, the short-term
# state it outputs, and $C_t$, the long-term **cell state**. Three gates, each a sigmoid
# ($\sigma$, values between 0 and 1) of the current input and the previous hidden state,
# decide what happens to $C_t$:
#
# $$i_{t}=σ(W_{xi}x_{t}+W_{hi}h_{t-1}+b_{i})$$
#
# $$f_{t}=σ(W_{xf}x_{t}+W_{hf}h_{t-1}+b_{f})$$
#
# $$o_{t}=σ(W_{xo}x_{t}+W_{ho}h_{t-1}+b_{o})$$
#
# $$g_{t}=tanh(W_{xg}x_{t}+W_{hg}h_{t-1}+b_{g})$$
#
# $$C_{t}=f_{t}∘C_{t-1}+i_{t}∘g_{t}$$
#
# $$h_{t}=o_{t}∘tanh(C_{t})$$
#
# * input gate $i_t$: how much of this step's candidate $g_t$ to write into the cell;
# * forget gate $f_t$: how much of the past cell state to keep (near 0: erase, near 1: keep);
# * output gate $o_t$: how much of the cell to reveal as $h_t$.
#
# ($∘$ is the entrywise product.) In rnnlab, as in `torch.nn.LSTM`, the four blocks are
# stacked in the order `i, f, g, o` in `weight_ih_l0` and `weight_hh_l0`.

# %% [markdown] lang="ko"
# # 3. LSTM: 게이트, 그리고 그레디언트의 고속도로인 셀 상태
#
# LSTM(Long Short-Term Memory)은 상태를 두 개의 벡터로 나눕니다. 출력으로 내보내는 단기
# 상태(short-term state) $h_t$ 와 장기 상태(long-term state)인 **셀 상태(cell state)** $C_t$
# 입니다. 현재 입력과 이전 은닉 상태로 계산한 시그모이드($\sigma$, 0~1 사이 값) 게이트 세 개가
# $C_t$ 에 무슨 일이 일어날지 정합니다.
#
# $$i_{t}=σ(W_{xi}x_{t}+W_{hi}h_{t-1}+b_{i})$$
#
# $$f_{t}=σ(W_{xf}x_{t}+W_{hf}h_{t-1}+b_{f})$$
#
# $$o_{t}=σ(W_{xo}x_{t}+W_{ho}h_{t-1}+b_{o})$$
#
# $$g_{t}=tanh(W_{xg}x_{t}+W_{hg}h_{t-1}+b_{g})$$
#
# $$C_{t}=f_{t}∘C_{t-1}+i_{t}∘g_{t}$$
#
# $$h_{t}=o_{t}∘tanh(C_{t})$$
#
# * 입력 게이트(input gate) $i_t$: 이번 시점의 후보 $g_t$ 를 셀에 얼마나 반영할지
# * 망각 게이트(forget gate) $f_t$: 과거 셀 상태를 얼마나 유지할지 (0 에 가까우면 삭제, 1 에
#   가까우면 유지)
# * 출력 게이트(output gate) $o_t$: 셀을 $h_t$ 로 얼마나 내보낼지
#
# ($∘$ 는 같은 위치의 성분끼리 곱하는 entrywise product 입니다.) rnnlab 에서는
# `torch.nn.LSTM` 과 마찬가지로 네 블록이 `weight_ih_l0`, `weight_hh_l0` 에 `i, f, g, o` 순서로
# 쌓여 있습니다.

# %%
import os

import matplotlib.pyplot as plt
import torch

import rnnlab
from rnnlab.lab import TrainConfig, train
from rnnlab.lab.diagnostics.gradflow import gradient_flow

TINY = os.environ.get("RNNLAB_DOCS_TINY", "") not in ("", "0")  # the CI setting
torch.manual_seed(0)

# %% [markdown] lang="en"
# ## The cell state as a highway
#
# Along the cell state, one step back is $\partial C_t/\partial C_{t-1} = \operatorname{diag}(f_t)$
# (plus smaller paths through $h_{t-1}$): no weight matrix, no $\tanh'$, only the forget gate.
# Where the network keeps $f_t$ near 1, the gradient passes through many steps almost
# unchanged; the RNN of tutorial 2 multiplied by $\operatorname{diag}(1-h_i^2)W_{hh}$ instead.
# The same measurement as there, $\lVert\partial L/\partial h_k\rVert$ for a loss at the last
# step, for an RNN and an LSTM of the same size at initialisation. `init="forget_bias:1"`
# starts the forget gate's bias at 1, so $f_t \approx \sigma(1) \approx 0.73$ and more of the
# cell is kept, a common choice:

# %% [markdown] lang="ko"
# ## 고속도로인 셀 상태
#
# 셀 상태를 따라 한 시점 거꾸로 가면 $\partial C_t/\partial C_{t-1} = \operatorname{diag}(f_t)$
# 입니다($h_{t-1}$ 을 거치는 더 작은 경로를 제외하면). 가중치 행렬도, $\tanh'$ 도 없고 망각
# 게이트만 있습니다. 네트워크가 $f_t$ 를 1 가까이 유지하면 그레디언트는 많은 시점을 거의 그대로
# 지나갑니다. 튜토리얼 2 의 RNN 은 대신 $\operatorname{diag}(1-h_i^2)W_{hh}$ 를 곱했습니다.
# 거기서와 같은 측정, 즉 마지막 시점의 손실에 대한 $\lVert\partial L/\partial h_k\rVert$ 를 같은
# 크기의 RNN 과 LSTM 에 대해 초기화 상태에서 해 봅니다. `init="forget_bias:1"` 은 망각 게이트의
# 바이어스를 1 로 시작해서 $f_t \approx \sigma(1) \approx 0.73$ 이 되게 하며, 셀을 더 많이
# 유지하는 흔한 선택입니다.

# %%
T = 30 if TINY else 100
x = torch.randn(T, 16, 8)
layers = {
    "RNN": rnnlab.RNN(8, 64),
    "LSTM": rnnlab.LSTM(8, 64),
    "LSTM, forget bias 1": rnnlab.LSTM(8, 64, init="forget_bias:1"),
}
fig, ax = plt.subplots(figsize=(7, 4))
for name, layer in layers.items():
    flow = gradient_flow(layer, x)
    print(f"{name:20s} |dL/dh_0| / |dL/dh_T| = 10^{flow.orders_of_magnitude():+.1f}")
    ax.semilogy(range(T + 1), flow.curve, label=name)
ax.set_xlabel("k (step)")
ax.set_ylabel("‖∂L/∂h_k‖")
ax.set_title(f"gradient reaching step k from a loss at step T = {T}, at initialisation")
ax.legend()
plt.show()

# %% [markdown] lang="en"
# The plain RNN's gradient at $k = 0$ underflows to 0 in float32 (printed as `10^-inf`). At
# initialisation the LSTM's gates sit near $\sigma(0) = 0.5$, so its highway still halves
# the gradient at every step; starting the forget gate at $\sigma(1)$ keeps many orders of
# magnitude more. Training then moves $f_t$ where the task needs it, as the next part shows.

# %% [markdown] lang="ko"
# 기본 RNN 의 $k = 0$ 그레디언트는 float32 에서 0 으로 언더플로됩니다(`10^-inf` 로 출력).
# 초기화 상태의 LSTM 은 게이트가 $\sigma(0) = 0.5$ 근처에 있으므로 고속도로에서도 매 시점
# 그레디언트가 절반이 됩니다. 망각 게이트를 $\sigma(1)$ 에서 시작하면 여러 자릿수를 더
# 보존합니다. 그 다음은 학습이 $f_t$ 를 태스크가 필요로 하는 곳으로 옮기며, 다음 부분에서 그
# 모습을 봅니다.

# %% [markdown] lang="en"
# ## The gates at work
#
# `layer.trace(x)` returns the real per-step activations of every gate (`i, f, g, o`) and of
# `c` and `h`, one dict per layer and direction, each tensor `(T, B, H)`. To see them do
# something, train an LSTM on the **adding problem**: each sequence is $T$ pairs
# (value, marker); exactly two steps are marked, and the target is the sum of the two marked
# values. The network must notice the marked steps, write their values into the cell, and
# hold them until the end.

# %% [markdown] lang="ko"
# ## 일하는 게이트들
#
# `layer.trace(x)` 는 모든 게이트(`i, f, g, o`)와 `c`, `h` 의 실제 시점별 활성값을 돌려줍니다.
# 레이어와 방향마다 dict 하나이고, 각 텐서는 `(T, B, H)` 입니다. 게이트가 무언가를 하는 모습을
# 보려면 LSTM 을 **adding problem** 으로 학습시킵니다. 각 시퀀스는 (값, 표시) 쌍 $T$ 개이고,
# 정확히 두 시점에 표시가 있으며, 정답은 표시된 두 값의 합입니다. 네트워크는 표시된 시점을
# 알아채고, 그 값을 셀에 쓰고, 끝까지 유지해야 합니다.

# %%
config = TrainConfig(task="adding", cell="lstm", hidden=32, seq_len=20 if TINY else 30,
                     steps=40 if TINY else 400, batch_size=64, lr=1e-2, eval_every=50,
                     eval_size=256, seed=0)
result = train(config, progress=False)
print(f"test MSE {result.final_metric:.4f} (chance {result.chance:.4f})")

x, y = result.task.batch("test", 1, torch.Generator().manual_seed(3))
trace = result.model.rnn.trace(x)[0]  # layer 0, forward direction
marked = torch.nonzero(x[:, 0, 1]).flatten().tolist()
print("marked steps:", marked, " target:", round(y.item(), 3))

# %%
# the units whose cell state changes most at the marked steps
dc = (trace["c"][1:, 0] - trace["c"][:-1, 0]).abs()
units = dc[[m - 1 for m in marked if m > 0]].sum(0).topk(4).indices
fig, axes = plt.subplots(1, 4, figsize=(15, 3.2), sharex=True)
for ax, gate in zip(axes, ["i", "f", "o", "c"]):
    for u in units.tolist():
        ax.plot(trace[gate][:, 0, u], label=f"unit {u}")
    for m in marked:
        ax.axvline(m, color="gray", linestyle=":")
    ax.set_title({"i": "input gate i_t", "f": "forget gate f_t", "o": "output gate o_t",
                  "c": "cell state C_t"}[gate])
    ax.set_xlabel("t")
axes[0].legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown] lang="en"
# Dotted lines mark the two marked steps. Look for the unit whose forget gate sits near 1:
# it is the accumulator. Its input gate opens (near 1) at the marked steps and is shut
# (near 0) everywhere else, and its cell state jumps at the marked steps and is held in
# between: written when the input matters, kept otherwise. Most other units forget quickly
# ($f_t$ well below 1). (The picture varies with the seed; run it with other samples.) A heat
# map of # every unit's forget gate over the same sample:

# %% [markdown] lang="ko"
# 점선은 표시된 두 시점입니다. 망각 게이트가 1 가까이에 있는 유닛을 찾아보세요. 그 유닛이
# 누산기입니다. 입력 게이트는 표시된 시점에만 열리고(1 에 가까움) 나머지 시점에는 닫혀
# 있으며(0 에 가까움), 셀 상태는 표시된 시점에 뛰어오른 뒤 그 사이에는 유지됩니다. 입력이
# 중요할 때 쓰고, 나머지 시간에는 보존하는 것입니다. 다른 유닛들은 대부분 빨리 잊습니다
# ($f_t$ 가 1 보다 한참 작음). (그림은 시드에 따라 달라지니 다른 샘플로도 실행해
# 보세요.) 같은 샘플에서 모든 유닛의 망각 게이트를 히트맵으로 보면:

# %%
fig, ax = plt.subplots(figsize=(8, 3))
im = ax.imshow(trace["f"][:, 0].T, aspect="auto", cmap="viridis", vmin=0, vmax=1)
for m in marked:
    ax.axvline(m, color="white", linestyle=":")
ax.set_xlabel("t")
ax.set_ylabel("unit")
ax.set_title("forget gate f_t of every unit")
fig.colorbar(im)
plt.show()
print("mean forget gate:", round(trace["f"].mean().item(), 3),
      " mean input gate:", round(trace["i"].mean().item(), 3))

# %% [markdown] lang="en"
# The LSTM does not *guarantee* that the gradient survives (the seed articles say as much:
# it makes it easier); it gives the network a path where the gradient is multiplied only by
# gates that it can learn to hold open. The GRU of the next tutorial does the same with one
# state and two gates.

# %% [markdown] lang="ko"
# LSTM 이 그레디언트의 보존을 *보장*하지는 않습니다(원문도 "더 쉽게 만든다"고 말합니다).
# 대신 네트워크가 열어 두도록 학습할 수 있는 게이트만 곱해지는 경로를 줍니다. 다음 튜토리얼의
# GRU 는 상태 하나와 게이트 두 개로 같은 일을 합니다.
