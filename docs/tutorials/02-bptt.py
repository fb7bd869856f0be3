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
# # 2. Backpropagation through time, and why gradients vanish or explode
#
# Training an RNN is ordinary backpropagation on the network unrolled over the $T$ steps
# (Back Propagation Through Time, BPTT). With the loss summed over the steps,
# $L = \sum_{t=1}^{T}L_{t}$, the gradient of the recurrent weights collects a term from every
# earlier step $k$:
#
# $$\frac{\partial L_{t}}{\partial W_{hh}} = \frac{\partial L_{t}}{\partial y_{t}}\frac{\partial y_{t}}{\partial h_{t}}\left(\sum_{k=1}^{t}\frac{\partial h_{t}}{\partial h_{k}}\frac{\partial h_{k}}{\partial W_{hh}}\right)$$
#
# $$\frac{\partial h_{t}}{\partial h_{k}} = \prod_{i=k+1}^{t}\frac{\partial h_{i}}{\partial h_{i-1}}$$
#
# The product is the heart of the matter: the same $W_{hh}$ is multiplied in $t-k$ times.

# %% [markdown] lang="ko"
# # 2. 시간에 따른 역전파(BPTT), 그리고 그레디언트가 사라지거나 폭발하는 이유
#
# RNN 의 학습은 $T$ 개 시점으로 펼친(unroll) 네트워크에 대한 평범한 역전파입니다(Back
# Propagation Through Time, BPTT). 손실을 시점별로 더하면 $L = \sum_{t=1}^{T}L_{t}$ 이고, 순환
# 가중치의 그레디언트에는 이전의 모든 시점 $k$ 로부터 오는 항이 모입니다.
#
# $$\frac{\partial L_{t}}{\partial W_{hh}} = \frac{\partial L_{t}}{\partial y_{t}}\frac{\partial y_{t}}{\partial h_{t}}\left(\sum_{k=1}^{t}\frac{\partial h_{t}}{\partial h_{k}}\frac{\partial h_{k}}{\partial W_{hh}}\right)$$
#
# $$\frac{\partial h_{t}}{\partial h_{k}} = \prod_{i=k+1}^{t}\frac{\partial h_{i}}{\partial h_{i-1}}$$
#
# 핵심은 이 곱입니다. 같은 $W_{hh}$ 가 $t-k$ 번 곱해집니다.

# %%
import os

import matplotlib.pyplot as plt
import torch

import rnnlab
from rnnlab.bptt.rnn import RNNOptions, rnn_backward, rnn_forward
from rnnlab.lab.diagnostics.gradflow import gradient_flow
from rnnlab.lab.diagnostics.scaling import scale_recurrent
from rnnlab.lab.diagnostics.spectral import spectral_radius

TINY = os.environ.get("RNNLAB_DOCS_TINY", "") not in ("", "0")  # the CI setting
torch.manual_seed(0)

# %% [markdown] lang="en"
# ## The backward pass, written out
#
# For $h_t = \tanh(a_t)$ with $a_t = W_{xh}x_t + W_{hh}h_{t-1} + b_h$, one step of the chain
# rule backwards is
#
# $$\delta a_t = (\delta y_t + \delta h_t) \circ (1 - h_t^2), \qquad \delta h_{t-1} = W_{hh}^\top \delta a_t$$
#
# and, once the loop is done, every weight gradient is a sum over the steps, for example
# $\partial L/\partial W_{hh} = \sum_t \delta a_t\, h_{t-1}^\top$. Here it is in a few lines of
# torch, for a small layer and the loss $L = \sum_t w \cdot h_t$:

# %% [markdown] lang="ko"
# ## 역전파를 직접 적어 보기
#
# $h_t = \tanh(a_t)$, $a_t = W_{xh}x_t + W_{hh}h_{t-1} + b_h$ 일 때, 연쇄 법칙을 한 시점 거꾸로
# 적용하면
#
# $$\delta a_t = (\delta y_t + \delta h_t) \circ (1 - h_t^2), \qquad \delta h_{t-1} = W_{hh}^\top \delta a_t$$
#
# 이고, 루프가 끝나면 모든 가중치 그레디언트는 시점에 대한 합이 됩니다. 예를 들어
# $\partial L/\partial W_{hh} = \sum_t \delta a_t\, h_{t-1}^\top$ 입니다. 작은 레이어와 손실
# $L = \sum_t w \cdot h_t$ 에 대해 torch 몇 줄로 적으면 다음과 같습니다.

# %%
layer = rnnlab.RNN(input_size=3, hidden_size=5, dtype=torch.float64)
W_xh, W_hh = layer.weight_ih_l0, layer.weight_hh_l0
b_h = layer.bias_ih_l0 + layer.bias_hh_l0
x = torch.randn(12, 2, 3, dtype=torch.float64)  # T = 12, B = 2
w = torch.randn(5, dtype=torch.float64)

with torch.no_grad():
    # forward: keep every h_t
    h = [torch.zeros(2, 5, dtype=torch.float64)]
    for t in range(len(x)):
        h.append(torch.tanh(x[t] @ W_xh.T + h[-1] @ W_hh.T + b_h))
    # backward: from t = T down to 1
    dW_hh = torch.zeros_like(W_hh)
    dh = torch.zeros(2, 5, dtype=torch.float64)  # δh_T: nothing comes from after the end
    for t in reversed(range(len(x))):
        dy = w.expand(2, 5)  # ∂L_t/∂h_t for L_t = w·h_t
        da = (dy + dh) * (1 - h[t + 1] ** 2)
        dW_hh += da.T @ h[t]
        dh = da @ W_hh  # δh_{t-1} = W_hhᵀ δa_t (rows are samples)

# %% [markdown] lang="en"
# rnnlab's reference engine does exactly this in `rnnlab.bptt.rnn` (`rnn_forward` keeps the
# states, `rnn_backward` runs the loop, then forms the weight gradients as one matrix product
# over all steps). Autograd, differentiating the layer, must agree with both:

# %% [markdown] lang="ko"
# rnnlab 의 reference 엔진은 `rnnlab.bptt.rnn` 에서 정확히 이것을 합니다(`rnn_forward` 가
# 상태를 저장하고, `rnn_backward` 가 루프를 돈 뒤 모든 시점에 대한 가중치 그레디언트를 한 번의
# 행렬 곱으로 만듭니다). 레이어를 미분한 autograd 결과도 둘과 같아야 합니다.

# %%
with torch.no_grad():
    y, h_T, cache = rnn_forward(x, torch.zeros(2, 5, dtype=torch.float64), W_xh, W_hh,
                                layer.bias_ih_l0, layer.bias_hh_l0, None, RNNOptions())
    grads = rnn_backward(w.expand_as(y).contiguous(), torch.zeros_like(h_T), cache)
dW_hh_rnnlab = grads[3]  # order: x, h0, W_ih, W_hh, b_ih, b_hh

layer_ref = rnnlab.RNN(3, 5, dtype=torch.float64, backend="reference")
layer_ref.load_state_dict(layer.state_dict())
out, _ = layer_ref(x)
(out @ w).sum().backward()
dW_hh_autograd = layer_ref.weight_hh_l0.grad

print("written out vs rnnlab.bptt:", (dW_hh - dW_hh_rnnlab).abs().max().item())
print("written out vs autograd:   ", (dW_hh - dW_hh_autograd).abs().max().item())

# %% [markdown] lang="en"
# (With `backend="reference"` the layer's backward *is* `rnn_backward`; rnnlab's tests also
# check it against `torch.autograd.gradcheck` and against `torch.nn.RNN`.)
#
# ## Why the gradient vanishes or explodes
#
# Each factor $\partial h_i/\partial h_{i-1} = \operatorname{diag}(1-h_i^2)\,W_{hh}$. The
# $\tanh'$ part is at most 1, so over many steps the size of the product is governed by
# $W_{hh}$: roughly, if its spectral radius $\rho(W_{hh})$ (the largest $|\lambda|$) is below 1,
# $\lVert\partial h_T/\partial h_k\rVert$ shrinks geometrically in $T-k$; above 1 it can grow.
# The seed articles put it as $|w|<1$: vanishing, $|w|>1$: exploding.
#
# `rnnlab.lab.diagnostics.gradflow.gradient_flow` measures $\lVert\partial L/\partial h_k\rVert$
# for a loss on the last output, at every $k$. We take an RNN whose $W_{hh}$ is orthogonal
# ($\rho = 1$) and scale it to several radii:

# %% [markdown] lang="ko"
# (`backend="reference"` 인 레이어의 역전파가 바로 `rnn_backward` 입니다. rnnlab 의 테스트는
# 이것을 `torch.autograd.gradcheck` 와 `torch.nn.RNN` 으로도 검증합니다.)
#
# ## 그레디언트가 사라지거나 폭발하는 이유
#
# 각 인수는 $\partial h_i/\partial h_{i-1} = \operatorname{diag}(1-h_i^2)\,W_{hh}$ 입니다.
# $\tanh'$ 부분은 1 이하이므로, 시점이 많아지면 곱의 크기는 $W_{hh}$ 가 좌우합니다. 대략
# 스펙트럼 반지름 $\rho(W_{hh})$ (가장 큰 $|\lambda|$) 가 1 보다 작으면
# $\lVert\partial h_T/\partial h_k\rVert$ 는 $T-k$ 에 따라 기하급수적으로 줄어들고(vanishing),
# 1 보다 크면 커질 수 있습니다(exploding). 원문 표현으로는 $|w|<1$: vanishing gradient,
# $|w|>1$: exploding gradient 입니다.
#
# `rnnlab.lab.diagnostics.gradflow.gradient_flow` 는 마지막 출력에 걸린 손실에 대해 모든 $k$ 의
# $\lVert\partial L/\partial h_k\rVert$ 를 측정합니다. $W_{hh}$ 가 직교 행렬($\rho = 1$)인 RNN 을
# 여러 반지름으로 스케일해 봅니다.

# %%
T = 30 if TINY else 100
x = torch.randn(T, 16, 8)
radii = [0.7, 0.9, 1.0, 1.2, 2.0]
fig, ax = plt.subplots(figsize=(7, 4))
for r in radii:
    layer = rnnlab.RNN(8, 64, init="orthogonal")
    scale_recurrent(layer, r)  # W_hh ← r · W_hh
    flow = gradient_flow(layer, x)
    rho = spectral_radius(layer.weight_hh_l0)
    print(f"rho(W_hh) = {rho:.2f}: |dL/dh_0| / |dL/dh_T| = 10^{flow.orders_of_magnitude():+.1f}")
    ax.semilogy(range(T + 1), flow.curve, label=f"ρ = {rho:.1f}")
ax.set_xlabel("k (step)")
ax.set_ylabel("‖∂L/∂h_k‖")
ax.set_title(f"gradient reaching step k from a loss at step T = {T}")
ax.legend()
plt.show()

# %% [markdown] lang="en"
# Read the plot from right (the loss, $k = T$) to left (the first steps): below $\rho = 1$
# the curve falls in a straight line on the log scale, many orders of magnitude over the
# sequence: the first inputs get almost no gradient, which is why a plain RNN "forgets" them
# while training. Even at $\rho = 1$ it shrinks, because every $\tanh'$ factor is below 1.
# Above 1 the gradient grows as it goes back.
#
# ## Clipping
#
# Exploding gradients have a blunt but effective fix: before the update, rescale the gradient
# if its total norm is above a threshold $\theta$,
# $g \leftarrow g \cdot \min(1, \theta/\lVert g\rVert)$ (`torch.nn.utils.clip_grad_norm_`;
# `TrainConfig(clip="norm", clip_value=θ)` in the lab). One SGD step on a layer with
# $\rho(W_{hh}) = 2$, with and without clipping, from the same weights:

# %% [markdown] lang="ko"
# 그림은 오른쪽(손실이 있는 $k = T$)에서 왼쪽(첫 시점들)으로 읽습니다. $\rho = 1$ 보다 작으면
# 곡선이 로그 축에서 직선으로 떨어져 시퀀스를 따라 여러 자릿수나 작아집니다. 처음 입력들은
# 그레디언트를 거의 받지 못하고, 그래서 기본 RNN 은 학습하면서 앞부분을 "잊어버립니다".
# $\rho = 1$ 에서도 줄어드는데, $\tanh'$ 인수가 모두 1 보다 작기 때문입니다. 1 보다 크면
# 그레디언트는 거꾸로 갈수록 커집니다.
#
# ## 클리핑(clipping)
#
# 그레디언트 폭발에는 단순하지만 효과적인 해결책이 있습니다. 업데이트 전에 그레디언트의 전체
# 노름이 임계값 $\theta$ 보다 크면 $g \leftarrow g \cdot \min(1, \theta/\lVert g\rVert)$ 로
# 줄입니다(`torch.nn.utils.clip_grad_norm_`, lab 에서는 `TrainConfig(clip="norm", clip_value=θ)`).
# $\rho(W_{hh}) = 2$ 인 레이어에서 같은 가중치로 시작해 클리핑 없이, 그리고 클리핑하여 SGD 를 한
# 스텝씩 밟아 봅니다.

# %%
def one_step(clip: float | None, lr: float = 0.05):
    torch.manual_seed(1)
    layer = rnnlab.RNN(8, 64, init="orthogonal")
    scale_recurrent(layer, 2.0)
    x, target = torch.randn(T, 16, 8), torch.randn(16, 64)
    loss_of = lambda: torch.nn.functional.mse_loss(layer(x)[1][0], target)
    before = loss_of()
    before.backward()
    norm = torch.nn.utils.clip_grad_norm_(layer.parameters(), clip or float("inf"))
    with torch.no_grad():
        for p in layer.parameters():
            p -= lr * p.grad
        after = loss_of()
    return before.item(), norm.item(), after.item()


for clip in (None, 1.0):
    before, norm, after = one_step(clip)
    print(f"clip={clip}: gradient norm {norm:.1f}, loss {before:.3f} -> {after:.3f}")

# %% [markdown] lang="en"
# With a gradient norm in the thousands or more, the unclipped step jumps far along a
# direction that only describes the loss nearby, and the loss can get worse; the clipped step
# moves at most $\text{lr} \cdot \theta$ along the same direction.
#
# Clipping leaves the direction of the gradient alone and only limits the step, so it cures
# exploding gradients; it cannot help vanishing ones, where the gradient is already tiny. For
# those the cell itself has to change: that is the LSTM of the next tutorial.

# %% [markdown] lang="ko"
# 그레디언트 노름이 수천 이상이면, 클리핑하지 않은 스텝은 근처의 손실만 설명하는 방향을 따라
# 멀리 뛰어 버려 손실이 오히려 나빠질 수 있습니다. 클리핑한 스텝은 같은 방향으로 최대
# $\text{lr} \cdot \theta$ 만큼만 움직입니다.
#
# 클리핑은 그레디언트의 방향은 그대로 두고 스텝의 크기만 제한하므로 그레디언트 폭발을 막아
# 줍니다. 하지만 이미 아주 작아진 그레디언트, 즉 vanishing 에는 도움이 되지 않습니다. 그러려면
# 셀 자체가 바뀌어야 하고, 그것이 다음 튜토리얼의 LSTM 입니다.
