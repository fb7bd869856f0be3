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
# # 6. SRU: an element-wise recurrence and one big GEMM
#
# RNN, LSTM and GRU all multiply $h_{t-1}$ by a matrix at every step, so step $t$ must wait
# for step $t-1$, and the work per step is a small matrix product that parallelises poorly.
# The **SRU** (Simple Recurrent Unit, Lei et al. 2018) removes the matrix from the recurrence:
#
# $$\tilde x_t = W x_t$$
#
# $$f_t = \sigma(W_f x_t + v_f \circ c_{t-1} + b_f)$$
#
# $$r_t = \sigma(W_r x_t + v_r \circ c_{t-1} + b_r)$$
#
# $$c_t = f_t \circ c_{t-1} + (1 - f_t) \circ \tilde x_t$$
#
# $$h_t = r_t \circ c_t + (1 - r_t) \circ x_t$$
#
# Lines 1–3 and 4 are the **light recurrence**: the forget gate $f_t$ controls the flow of
# information and the state $c_t$ mixes the previous state with the current input. Every
# matrix ($W, W_f, W_r$) reads only $x_t$; the state enters through the *vectors* $v_f, v_r$,
# a point-wise product instead of a matrix product. Line 5 is a **highway** connection: the
# reset gate $r_t$ mixes the state with the input itself, which helps deep stacks train.
# (When the input size differs from $H$, $x_t$ in the highway is replaced by $W_{hw} x_t$.)

# %% [markdown] lang="ko"
# # 6. SRU: 성분별 순환과 한 번의 큰 GEMM
#
# RNN, LSTM, GRU 는 모두 매 시점 $h_{t-1}$ 에 행렬을 곱하므로 $t$ 시점은 $t-1$ 시점을 기다려야
# 하고, 시점마다의 일은 병렬화가 잘 안 되는 작은 행렬 곱입니다. 이전 time step 에 대한 의존성
# 때문에 병렬 처리가 어려워 학습이 느렸습니다. **SRU**(Simple Recurrent Unit, Lei et al. 2018)는
# 순환에서 행렬을 없앴습니다.
#
# $$\tilde x_t = W x_t$$
#
# $$f_t = \sigma(W_f x_t + v_f \circ c_{t-1} + b_f)$$
#
# $$r_t = \sigma(W_r x_t + v_r \circ c_{t-1} + b_r)$$
#
# $$c_t = f_t \circ c_{t-1} + (1 - f_t) \circ \tilde x_t$$
#
# $$h_t = r_t \circ c_t + (1 - r_t) \circ x_t$$
#
# 1–3 번과 4 번 수식이 **light recurrence** 입니다. forget gate $f_t$ 는 정보 흐름을 제어하고,
# state $c_t$ 는 이전 state 와 현재 입력을 forget gate 에 따라 조정합니다. 모든 행렬
# ($W, W_f, W_r$)은 $x_t$ 만 읽고, 상태는 *벡터* $v_f, v_r$ 을 통해 들어옵니다. 병렬 처리를 위해
# matrix multiplication 대신 point-wise multiplication 을 하는 것입니다. 5 번 수식은
# **highway** 연결입니다. reset gate $r_t$ 가 상태와 입력 자체를 섞으며, 깊은 모델의 학습을
# 돕습니다. (입력 크기가 $H$ 와 다르면 highway 의 $x_t$ 대신 $W_{hw} x_t$ 를 씁니다.)

# %%
import os
import time

import matplotlib.pyplot as plt
import torch

import rnnlab

TINY = os.environ.get("RNNLAB_DOCS_TINY", "") not in ("", "0")  # the CI setting
torch.manual_seed(0)

# %% [markdown] lang="en"
# ## One GEMM, then an element-wise loop
#
# Because no matrix reads $c_{t-1}$, the products $W x_t, W_f x_t, W_r x_t$ of *all* steps
# can be computed first, as one matrix product of the $(T \cdot B) \times I$ inputs with the
# stacked $3H \times I$ weights (`weight_ih_l0`, rows $W, W_f, W_r$). What is left for the
# time loop is element-wise. Written out, and checked against `rnnlab.SRU`:

# %% [markdown] lang="ko"
# ## GEMM 한 번, 그리고 성분별 루프
#
# $c_{t-1}$ 을 읽는 행렬이 없으므로, *모든* 시점의 곱 $W x_t, W_f x_t, W_r x_t$ 를 먼저
# $(T \cdot B) \times I$ 입력과 쌓아 놓은 $3H \times I$ 가중치(`weight_ih_l0`, 행 순서
# $W, W_f, W_r$)의 행렬 곱 한 번으로 계산할 수 있습니다. 시간 루프에 남는 것은 성분별 연산뿐입니다.
# 직접 적고 `rnnlab.SRU` 와 비교해 봅니다.

# %%
T, B, H = 20, 4, 8
sru = rnnlab.SRU(H, H)  # input size = H: the highway reads x_t itself
x = torch.randn(T, B, H)
print({name: tuple(p.shape) for name, p in sru.named_parameters()})

with torch.no_grad():
    U = (x.reshape(T * B, H) @ sru.weight_ih_l0.T).reshape(T, B, 3 * H)  # the one GEMM
    x_tilde, u_f, u_r = U.split(H, dim=-1)
    v_f, v_r = sru.weight_c_l0
    b_f, b_r = sru.bias_l0.split(H)
    c, hs = torch.zeros(B, H), []
    for t in range(T):  # element-wise only
        f = torch.sigmoid(u_f[t] + v_f * c + b_f)
        r = torch.sigmoid(u_r[t] + v_r * c + b_r)
        c = f * c + (1 - f) * x_tilde[t]
        hs.append(r * c + (1 - r) * x[t])
    out, c_n = sru(x)
print("written out vs rnnlab.SRU:", (torch.stack(hs) - out).abs().max().item(),
      (c - c_n[0]).abs().max().item())

# %% [markdown] lang="en"
# Each state dimension is independent of the others: unit $j$ of $c_t$ depends only on unit
# $j$ of $c_{t-1}$. So the loop parallelises over the batch *and* the hidden units, and the
# sequential part costs $O(B \cdot H)$ per step instead of an LSTM's $O(B \cdot H^2)$.
#
# ## Speed against the LSTM, on this machine
#
# Forward and backward of one layer, SRU against LSTM at the same hidden size, for several
# sequence lengths, each with `backend="auto"` (the fastest engine rnnlab has for it on this
# device), on one CPU thread. Times are the best of a few repeats (the one least disturbed by
# other work on the machine), measured when this page was built:

# %% [markdown] lang="ko"
# 상태의 각 차원은 서로 독립입니다. $c_t$ 의 $j$ 번째 유닛은 $c_{t-1}$ 의 $j$ 번째 유닛에만
# 의존합니다. 그래서 루프는 배치와 은닉 유닛 모두에 대해 병렬화되고, 순차적인 부분의 비용은
# 시점마다 LSTM 의 $O(B \cdot H^2)$ 대신 $O(B \cdot H)$ 입니다.
#
# ## 이 컴퓨터에서 LSTM 과 속도 비교
#
# 레이어 하나의 순전파와 역전파를, 같은 은닉 크기의 SRU 와 LSTM 에 대해 여러 시퀀스 길이로
# 잽니다. 둘 다 `backend="auto"` (이 장치에서 rnnlab 이 가진 가장 빠른 엔진)이고, CPU 스레드
# 하나로 잽니다. 시간은 몇 번
# 반복한 값 중 가장 빠른 값(컴퓨터의 다른 작업에 가장 덜 방해받은 값)이며, 이 페이지를 빌드할
# 때 측정한 것입니다.

# %%
def time_step(layer, x, repeats):
    """Best seconds of forward + backward over the repeats (the least disturbed by other
    work on the machine)."""
    times = []
    for _ in range(repeats + 1):  # the first call warms up (and may compile an engine)
        start = time.perf_counter()
        out = layer(x)[0]
        out.sum().backward()
        times.append(time.perf_counter() - start)
    return min(times[1:])


H, B = (64, 8) if TINY else (256, 32)
lengths = [16, 64] if TINY else [16, 64, 256]
repeats = 2 if TINY else 7
threads = torch.get_num_threads()
torch.set_num_threads(1)  # time the work, not how threads get scheduled on a busy machine
print(f"hidden {H}, batch {B}, 1 CPU thread")
timings = {"SRU": [], "LSTM": []}
for T in lengths:
    x = torch.randn(T, B, H)
    for name, cls in (("SRU", rnnlab.SRU), ("LSTM", rnnlab.LSTM)):
        timings[name].append(time_step(cls(H, H), x, repeats))
    print(f"T = {T:4d}: SRU {1000 * timings['SRU'][-1]:7.2f} ms, "
          f"LSTM {1000 * timings['LSTM'][-1]:7.2f} ms, "
          f"LSTM / SRU = {timings['LSTM'][-1] / timings['SRU'][-1]:.1f}")
torch.set_num_threads(threads)

fig, ax = plt.subplots(figsize=(6, 4))
for name, seconds in timings.items():
    ax.loglog(lengths, [1000 * s for s in seconds], marker="o", label=name)
ax.set_xticks(lengths, [str(T) for T in lengths])
ax.minorticks_off()
ax.set_xlabel("sequence length T")
ax.set_ylabel("forward + backward (ms)")
ax.set_title(f"one layer, hidden {H}, batch {B}, one CPU thread")
ax.legend()
plt.show()

# %% [markdown] lang="en"
# Both grow with $T$ (the recurrence stays sequential), but the SRU's steps are cheaper
# because their sequential work has no matrix product. Timings on a busy machine are noisy;
# rerun to see the spread. The ratio depends on the
# machine, the engine and the sizes: on a GPU the paper reports SRU 5–9× faster than
# cuDNN's LSTM; `benchmarks/` in the repository has rnnlab's own measurements. Try other
# sizes above.

# %% [markdown] lang="ko"
# 둘 다 $T$ 에 따라 늘어나지만(순환은 여전히 순차적입니다), SRU 의 시점은 순차적인 부분에
# 행렬 곱이 없어서 더 쌉니다. 바쁜 컴퓨터에서의 측정은 흔들리니 다시 실행해 편차를 보세요. 비율은 컴퓨터, 엔진, 크기에 따라 다릅니다. GPU 에서 논문은
# cuDNN 으로 최적화된 LSTM 보다 5~9 배 빠르다고 보고합니다. 저장소의 `benchmarks/` 에 rnnlab
# 자체의 측정이 있습니다. 위에서 다른 크기로도 실행해 보세요.
