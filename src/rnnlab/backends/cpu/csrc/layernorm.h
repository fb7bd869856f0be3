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
