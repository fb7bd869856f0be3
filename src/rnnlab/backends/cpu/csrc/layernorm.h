// Layer normalisation for the layer-normalised LSTM and GRU loops of rnnlab's CPU engine (the
// math of rnnlab/bptt/layernorm_lstm.py and layernorm_gru.py): row moments, the forward
// normalisation, and the backward through it,
//
//   ẑ = (z - mean z)·s,  s = 1/sqrt(var z + eps)  (biased variance, eps = 1e-5)
//   dz = (dẑ - mean(dẑ) - ẑ∘mean(dẑ∘ẑ))·s
//
// for whole rows (the input side's forward, all T·B rows at once) and as partial sums of a
// row's slice, which the threads of a time loop -- each owning some of a row's units -- add up.
#pragma once

#include <ATen/ops/ones.h>
#include <ATen/ops/sum.h>

#include "activations.h"
#include "common.h"

#define RNNLAB_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP)
#define RNNLAB_SIMD_SUM(...) RNNLAB_PRAGMA(omp simd reduction(+ : __VA_ARGS__))
#else
#define RNNLAB_SIMD_SUM(...)
#endif

namespace rnnlab {

constexpr double kLayerNormEps = 1e-5;

// mean and s = 1/sqrt(var + eps) of z[0..n), in two passes (biased variance).
template <typename T>
inline void row_moments(const T* __restrict z, int64_t n, T& mean, T& rstd) {
  T sum = T(0);
  RNNLAB_SIMD_SUM(sum)
  for (int64_t j = 0; j < n; ++j) sum += z[j];
  mean = sum / static_cast<T>(n);
  const T m = mean;
  T ss = T(0);
  RNNLAB_SIMD_SUM(ss)
  for (int64_t j = 0; j < n; ++j) ss += (z[j] - m) * (z[j] - m);
  rstd = T(1) / std::sqrt(ss / static_cast<T>(n) + static_cast<T>(kLayerNormEps));
}

// (Σ d, Σ d∘ẑ) over n values: a slice's share of mean(dẑ) and mean(dẑ∘ẑ).
template <typename T>
inline void backward_sums(const T* __restrict d, const T* __restrict z_hat, int64_t n, T& s1,
                          T& s2) {
  T a = T(0), b = T(0);
  RNNLAB_SIMD_SUM(a, b)
  for (int64_t j = 0; j < n; ++j) {
    a += d[j];
    b += d[j] * z_hat[j];
  }
  s1 += a;
  s2 += b;
}

// dz = (dẑ - m1 - ẑ∘m2)·s in place on d (m1 = mean(dẑ), m2 = mean(dẑ∘ẑ) of the whole row).
template <typename T>
inline void backward_apply(T* __restrict d, const T* __restrict z_hat, int64_t n, T m1, T m2,
                           T s) {
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) d[j] = (d[j] - m1 - z_hat[j] * m2) * s;
}

// The means (mean(dẑ), mean(dẑ∘ẑ)) of row b over its G values, from the partial sums
// (Σ dẑ, Σ dẑ∘ẑ) that each of the `sharing` threads of the row left at sums[(r·B + b)·2].
template <typename T>
inline void row_means(const T* sums, int sharing, int64_t B, int64_t b, int64_t G, T m[2]) {
  m[0] = m[1] = T(0);
  for (int r = 0; r < sharing; ++r) {
    m[0] += sums[(r * B + b) * 2];
    m[1] += sums[(r * B + b) * 2 + 1];
  }
  m[0] /= static_cast<T>(G);
  m[1] /= static_cast<T>(G);
}

// A thread's share of a row of K gate blocks (G = K·H values; the thread owns units
// [j0, j0 + n) of every block): (Σ dẑ, Σ dẑ∘ẑ) added to s[0], s[1].
template <int K, typename T>
inline void block_backward_sums(const T* d, const T* z_hat, int64_t H, int64_t j0, int64_t n,
                                T s[2]) {
  for (int k = 0; k < K; ++k)
    backward_sums(d + k * H + j0, z_hat + k * H + j0, n, s[0], s[1]);
}

// The same share of the row: dz = (dẑ - m[0] - ẑ∘m[1])·s in place on d, m the row's means.
template <int K, typename T>
inline void block_backward_apply(T* d, const T* z_hat, int64_t H, int64_t j0, int64_t n,
                                 const T m[2], T s) {
  for (int k = 0; k < K; ++k)
    backward_apply(d + k * H + j0, z_hat + k * H + j0, n, m[0], m[1], s);
}

// h̄ = m∘h over n units: the next step's recurrent input under recurrent dropout.
template <typename T>
inline void masked_input(T* __restrict h_bar, const T* __restrict m, const T* __restrict h,
                         int64_t n) {
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) h_bar[j] = m[j] * h[j];
}

// What a layer-normalised loop's backward leaves to GEMMs over all T·B rows, from dp (T, B, G)
// and dq (T, B, G), the gradients of the input and recurrent pre-activations:
//   dx = dp W_ih (when need_dx),  dW_ih = dpᵀ x,  dW_hh = dqᵀ h̄,
// h̄ = m∘h_{t-1} (hin) under recurrent dropout, else h_{t-1} (hs without its last step).
struct InputGrads {
  Tensor dx, dw_ih, dw_hh;
};

template <typename T>
inline InputGrads input_grads(const Tensor& dp, const Tensor& dq, const Tensor& x,
                              const Tensor& w_ih, const Tensor& hs,
                              const c10::optional<Tensor>& hin, bool need_dx) {
  const int64_t Tn = x.size(0), B = x.size(1), G = dp.size(2);
  Tensor dp2 = dp.view({Tn * B, G});
  Tensor dx = need_dx ? matmul<T>(dp2, false, w_ih, false).view({Tn, B, x.size(2)}) : Tensor();
  Tensor h_in = has(hin) ? flat(*hin) : flat(hs.narrow(0, 0, Tn));
  return {dx, weight_grads<T>(dp2, {flat(x)})[0],
          weight_grads<T>(dq.view({Tn * B, G}), {h_in})[0]};
}

// Every row r < rows of z (rows × n): ẑ in place, s[r], and out = ẑ∘gain (+ shift).
template <typename T>
void layer_norm_rows(T* z, int64_t rows, int64_t n, const T* gain, const T* shift, T* s,
                     T* out) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)),
                   [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* __restrict zr = z + r * n;
      T* __restrict o = out + r * n;
      T mean, rstd;
      row_moments(zr, n, mean, rstd);
      s[r] = rstd;
      RNNLAB_SIMD
      for (int64_t j = 0; j < n; ++j) {
        const T zh = (zr[j] - mean) * rstd;
        zr[j] = zh;
        o[j] = shift ? zh * gain[j] + shift[j] : zh * gain[j];
      }
    }
  });
}

// A thread's share of a layer-normalised time loop: batch rows [b0, b1) and hidden units
// [j0, j1) of every gate. With enough rows each thread takes whole rows: their moments and
// norms are its own, and a step needs no barrier. Otherwise the threads split the units of
// every row, as the plain loops do, and meet at a barrier (`sync`) before each row-wide
// reduction; `rank` then numbers a thread among those sharing a row.
struct Share {
  int64_t b0, b1, j0, j1;
  int rank, sharing;

  void sync(int nt) const {
    if (sharing > 1) barrier(nt);
  }
};

constexpr int64_t kMinRowsPerThread = 4;

template <typename T>
inline Share share_of(int64_t B, int64_t H, int tid, int nt) {
  if (B >= kMinRowsPerThread * nt) return {B * tid / nt, B * (tid + 1) / nt, 0, H, 0, 1};
  const Units u = unit_slice<T>(H, tid, nt);
  return {0, B, u.j0, u.j1, tid, nt};
}

// A mask's contiguous data in x's dtype with `numel` values, or nullptr when absent.
template <typename T>
inline const T* optional_data(const c10::optional<Tensor>& m, const Tensor& like,
                              const char* name, int64_t numel) {
  if (!has(m)) return nullptr;
  TORCH_CHECK(m->scalar_type() == like.scalar_type() && m->is_contiguous() &&
                  m->numel() == numel,
              "rnnlab cpu engine: ", name, " must be a contiguous ", like.scalar_type(),
              " tensor of ", numel, " elements");
  return m->data_ptr<T>();
}

// The activations (code, alpha, beta) triples of `acts`, checked.
template <typename T>
inline std::vector<Act<T>> activations_of(c10::ArrayRef<double> acts, size_t count) {
  TORCH_CHECK(acts.size() == 3 * count, "rnnlab cpu engine: expected ", count,
              " activations as (code, alpha, beta) triples, got ", acts.size(), " values");
  std::vector<Act<T>> out;
  for (size_t k = 0; k < count; ++k) {
    out.push_back(act_at<T>(acts.data() + 3 * k));
    TORCH_CHECK(valid_act_code(out.back().code), "rnnlab cpu engine: activation code ",
                out.back().code, " is not an index of rnnlab.activations.NAMES");
  }
  return out;
}

}  // namespace rnnlab
