// The regularisers inside the recurrence for rnnlab's CPU engine (the math of
// rnnlab/regularisers.py): the masks arrive drawn, as tensors, and the time loops read rows
// of them.
//
//   recurrent dropout  m (B, S), already scaled by 1/(1-p): the recurrent product reads
//                      h̄_{t-1} = m∘h_{t-1} (kept for dW_hh); backward dh_{t-1} += (da W_hh)∘m
//   zoneout            d_t (T, B, S) keep weights: s_t = s̃_t + d_t∘(s_{t-1} - s̃_t); backward
//                      the gradient g reaching s_t sends g∘d_t to s_{t-1} and g∘(1-d_t) into
//                      the step
#pragma once

#include "common.h"

#include <ATen/ops/mul.h>

namespace rnnlab {

// A mask's contiguous (rows, S) data in x's dtype, or nullptr when absent.
template <typename T>
inline const T* mask_data(const c10::optional<Tensor>& m, const Tensor& like, const char* name,
                          int64_t numel) {
  if (!has(m)) return nullptr;
  TORCH_CHECK(m->scalar_type() == like.scalar_type() && m->is_contiguous() &&
                  m->numel() == numel,
              "rnnlab cpu engine: ", name, " must be a contiguous ", like.scalar_type(),
              " tensor of ", numel, " elements");
  return m->data_ptr<T>();
}

// Recurrent dropout's inputs of the recurrent product, h̄_{t-1} = m∘h_{t-1} for t < T (kept for
// dW_hh), with h̄_0 = m∘h_0 filled (the time loop writes the others); undefined without it.
inline Tensor recurrent_inputs(const Tensor& h0, const c10::optional<Tensor>& rec, int64_t T) {
  if (!has(rec)) return Tensor();
  Tensor hin = saved_empty({T, h0.size(0), h0.size(1)}, h0.options());
  Tensor first = hin[0];
  at::mul_out(first, h0, *rec);
  return hin;
}

// Zoneout of one row of n units: s = s̃ + d∘(prev - s̃) (s may be s̃: in place).
template <typename T>
inline void zone_row(T* s, const T* s_new, const T* __restrict prev, const T* __restrict d,
                     int64_t n) {
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) s[j] = s_new[j] + d[j] * (prev[j] - s_new[j]);
}

// dst = a∘b on n values.
template <typename T>
inline void mul_row(T* __restrict dst, const T* __restrict a, const T* __restrict b, int64_t n) {
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) dst[j] = a[j] * b[j];
}

// The recurrent gradient reaching s_{t-1} on a running row: dh = prod (∘m) (+ (dy + dh)∘d),
// where prod = (da W_hh) of this step; dh holds the gradient reaching s_t from step t+1 on
// entry and dy the output's. m, d null when off.
template <typename T>
inline void recurrent_grad_row(T* __restrict dh, const T* __restrict prod,
                               const T* __restrict dy, const T* __restrict m,
                               const T* __restrict d, int64_t n) {
  if (d) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) {
      const T keep = (dy[j] + dh[j]) * d[j];
      dh[j] = (m ? prod[j] * m[j] : prod[j]) + keep;
    }
  } else if (m) {
    mul_row(dh, prod, m, n);
  } else {
    std::memcpy(dh, prod, n * sizeof(T));
  }
}

}  // namespace rnnlab
