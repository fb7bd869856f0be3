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
# # 4. GRU: the reset and update gates
#
# The GRU (Gated Recurrent Unit) simplifies the LSTM: two gates instead of three, and no
# separate cell state: the memory is $h_t$ itself. The LSTM's input and forget gates are
# merged into one **update gate** $z_t$, and a **reset gate** $r_t$ acts on the previous
# hidden state:
#
# $$r_t = \sigma(W_r x_t + U_r h_{t-1}), \qquad z_t = \sigma(W_z x_t + U_z h_{t-1})$$
#
# $$\tilde h_t = \tanh(W_h x_t + U_h (r_t \circ h_{t-1}))$$
#
# $$h_t = z_t \circ h_{t-1} + (1 - z_t) \circ \tilde h_t$$
#
# (biases left out). $r_t$ decides how much of the past goes into the candidate $\tilde h_t$,
# $z_t$ how much of the previous state is kept, and $1 - z_t$ how much of the new candidate
# comes in. Because $h_t$ is a convex mix of $h_{t-1}$ and $\tilde h_t$, it stays in
# $(-1, 1)$ with no extra $\tanh$ on the output.

# %% [markdown] lang="ko"
# # 4. GRU: 리셋 게이트와 업데이트 게이트
#
# GRU(Gated Recurrent Unit)는 LSTM 을 간소화한 모델입니다. 게이트는 세 개가 아니라 두 개이고,
# 별도의 셀 상태가 없어서 메모리가 곧 $h_t$ 입니다. LSTM 의 입력 게이트와 망각 게이트가
# **업데이트 게이트(update gate)** $z_t$ 하나로 합쳐졌고, **리셋 게이트(reset gate)** $r_t$ 는
# 이전 hidden state 에 바로 적용됩니다.
#
# $$r_t = \sigma(W_r x_t + U_r h_{t-1}), \qquad z_t = \sigma(W_z x_t + U_z h_{t-1})$$
#
# $$\tilde h_t = \tanh(W_h x_t + U_h (r_t \circ h_{t-1}))$$
#
# $$h_t = z_t \circ h_{t-1} + (1 - z_t) \circ \tilde h_t$$
#
# (바이어스는 생략). $r_t$ 는 후보 $\tilde h_t$ 에 과거를 얼마나 넣을지(지난 정보를 얼마나
# 버릴지), $z_t$ 는 이전 상태를 얼마나 유지할지, $1 - z_t$ 는 새 후보를 얼마나 받아들일지를
# 정합니다. $h_t$ 가 $h_{t-1}$ 과 $\tilde h_t$ 의 볼록 결합이므로 출력에 $\tanh$ 를 한 번 더
# 쓰지 않아도 $(-1, 1)$ 안에 머뭅니다.

# %%
import os

import matplotlib.pyplot as plt
import torch

import rnnlab
from rnnlab.lab import TrainConfig, train

TINY = os.environ.get("RNNLAB_DOCS_TINY", "") not in ("", "0")  # the CI setting
torch.manual_seed(0)

# %% [markdown] lang="en"
# ## Two places for the reset gate
#
# The equation above is the original GRU (Cho et al. 2014): the reset gate multiplies
# $h_{t-1}$ *before* the recurrent product. cuDNN, and so `torch.nn.GRU`, apply it *after*:
#
# $$\tilde h_t = \tanh(W_h x_t + r_t \circ (U_h h_{t-1} + b_{hn}))$$
#
# which lets all three recurrent products $U_r h, U_z h, U_h h$ run as one matrix product per
# step. rnnlab has both, with the same parameters: `reset_after=True` (torch's, the default)
# and `reset_after=False` (the original). Computing each by hand from the cell's weights
# (stacked `r, z, n` as in torch):

# %% [markdown] lang="ko"
# ## 리셋 게이트의 두 위치
#
# 위의 수식은 원래의 GRU(Cho et al. 2014)로, 리셋 게이트가 순환 행렬 곱 *전에* $h_{t-1}$ 에
# 곱해집니다. cuDNN 과 그래서 `torch.nn.GRU` 는 *후에* 곱합니다.
#
# $$\tilde h_t = \tanh(W_h x_t + r_t \circ (U_h h_{t-1} + b_{hn}))$$
#
# 이렇게 하면 세 개의 순환 곱 $U_r h, U_z h, U_h h$ 를 매 시점 행렬 곱 한 번으로 계산할 수
# 있습니다. rnnlab 은 같은 파라미터로 둘 다 지원합니다. `reset_after=True` (torch 의 형태, 기본값)
# 와 `reset_after=False` (원래 형태)입니다. 셀의 가중치(torch 처럼 `r, z, n` 순서로 쌓임)로 각각
# 손으로 계산해 봅니다.

# %%
after = rnnlab.GRUCell(3, 4)  # reset_after=True
before = rnnlab.GRUCell(3, 4, reset_after=False)
before.load_state_dict(after.state_dict())  # the very same parameters
x, h = torch.randn(2, 3), torch.randn(2, 4)

Wr, Wz, Wh = after.weight_ih.chunk(3)
Ur, Uz, Uh = after.weight_hh.chunk(3)
bir, biz, bin_ = after.bias_ih.chunk(3)
bhr, bhz, bhn = after.bias_hh.chunk(3)
with torch.no_grad():
    r = torch.sigmoid(x @ Wr.T + bir + h @ Ur.T + bhr)
    z = torch.sigmoid(x @ Wz.T + biz + h @ Uz.T + bhz)
    for name, cell, cand in [
        ("reset_after=True ", after, torch.tanh(x @ Wh.T + bin_ + r * (h @ Uh.T + bhn))),
        ("reset_after=False", before, torch.tanh(x @ Wh.T + bin_ + (r * h) @ Uh.T + bhn)),
    ]:
        by_hand = z * h + (1 - z) * cand
        print(name, "cell vs by hand:", (cell(x, h) - by_hand).abs().max().item())
    print("the two forms differ by", (after(x, h) - before(x, h)).abs().max().item())

# %% [markdown] lang="en"
# ## Parameters
#
# Per layer, an RNN has one block of weights, a GRU three ($r, z, \tilde h$) and an LSTM four
# ($i, f, g, o$), each block $H \times (I + H)$ plus biases:

# %% [markdown] lang="ko"
# ## 파라미터 수
#
# 레이어마다 RNN 은 가중치 블록이 하나, GRU 는 세 개($r, z, \tilde h$), LSTM 은 네 개
# ($i, f, g, o$)이고, 각 블록은 $H \times (I + H)$ 에 바이어스가 더해집니다.

# %%
for cls in (rnnlab.RNN, rnnlab.GRU, rnnlab.LSTM):
    n = sum(p.numel() for p in cls(16, 64).parameters())
    print(f"{cls.__name__:5s} input 16, hidden 64: {n:6d} parameters")

# %% [markdown] lang="en"
# ## Accuracy against the LSTM
#
# The seed articles report that the GRU performs about as well as the LSTM, and sometimes
# better with little data. A small check: the `digits` task (8×8 handwritten digits read one
# row per step, many-to-one) with only 300 training images, for the LSTM and both GRU forms,
# same hidden size, same seed, same steps:

# %% [markdown] lang="ko"
# 원문들은 GRU 가 LSTM 과 성능이 크게 다르지 않고, 데이터가 적을 때는 GRU 가 좀 더 낫다고
# 말합니다. 작게 확인해 봅니다. `digits` 태스크(8×8 손글씨 숫자를 시점마다 한 행씩 읽는 many to
# one)에서 학습 이미지를 300 장만 쓰고, LSTM 과 두 가지 GRU 를 같은 은닉 크기, 같은 시드, 같은
# 스텝 수로 학습시킵니다.

# %%
runs = {
    "LSTM": dict(cell="lstm"),
    "GRU (reset after)": dict(cell="gru"),
    "GRU (reset before)": dict(cell="gru", layer_options={"reset_after": False}),
}
steps = 30 if TINY else 300
results = {}
for name, options in runs.items():
    config = TrainConfig(task="digits", hidden=32, steps=steps, batch_size=32, lr=3e-3,
                         train_size=300, eval_every=max(steps // 10, 1), eval_size=512,
                         seed=0, **options)
    results[name] = r = train(config, progress=False)
    print(f"{name:19s} {r.params:5d} parameters, test accuracy {r.final_metric:.3f}")

fig, ax = plt.subplots(figsize=(7, 4))
for name, r in results.items():
    ax.plot(*zip(*[(h["step"], h["metric"]) for h in r.history if "metric" in h]),
            marker="o", label=name)
ax.set_xlabel("step")
ax.set_ylabel("test accuracy")
ax.set_title("digits, 300 training images")
ax.legend()
plt.show()

# %% [markdown] lang="en"
# One seed and one small task are not a benchmark: read the numbers as "about the same, with
# fewer parameters", and run `rnnlab compare` (tutorial 7) for repeated, larger comparisons.
# The two reset forms compute different functions with the same parameters, and learn
# alike here; the reset-after form exists for speed (one recurrent product per step), and
# it is the only one `torch.nn.GRU` and cuDNN implement.

# %% [markdown] lang="ko"
# 시드 하나와 작은 태스크 하나는 벤치마크가 아닙니다. "파라미터는 더 적고 성능은 비슷하다"
# 정도로 읽고, 반복된 더 큰 비교는 `rnnlab compare`(튜토리얼 7)로 해 보세요.
# 두 리셋 형태는 같은 파라미터로 서로 다른 함수를 계산하지만, 여기서는 비슷하게
# 학습합니다. reset-after 형태는 속도(시점마다 순환 곱 한 번)를 위한 것이며, `torch.nn.GRU` 와
# cuDNN 은 이 형태만 구현합니다.
