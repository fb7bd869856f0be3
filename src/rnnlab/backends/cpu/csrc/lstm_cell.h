// The LSTM's point-wise cell for rnnlab's CPU engine (the math of rnnlab/bptt/lstm.py): one
// step on n units of one batch row, forward and backward, that lstm.cpp's time loops call
// after each step's recurrent product. The default cell (σ, tanh, nothing else) is one fused
// vectorised pass; the general cell -- peepholes, clipping, coupled gates, any activations of
// activations.h, zoneout of h and c -- a few vectorised passes.
#pragma once

#include "activations.h"
#include "common.h"
#include "regularisers.h"

#include <limits>

namespace rnnlab {

// The point-wise options of a general row (every pointer offset to the row's first unit).
template <typename T>
struct LSTMCell {
  const T* peep;  // p_i, p_f, p_o, H apart (zeros without peepholes)
  T clip;         // +inf without clipping
  bool coupled;   // i = 1 - f
  Act<T> gate, cand, out;  // φ of i, f, o; of g; of c_t in h_t
};

template <typename T>
LSTMCell<T> lstm_cell(const T* peep, double cell_clip, bool coupled, c10::ArrayRef<double> acts) {
  TORCH_CHECK(acts.size() == 9, "rnnlab lstm: acts must hold 3 activations (code, alpha, beta)");
  for (int k = 0; k < 3; ++k)
    TORCH_CHECK(valid_act_code(static_cast<int>(acts[3 * k])), "rnnlab lstm: activation code ",
                acts[3 * k]);
  const T clip = cell_clip > 0 ? static_cast<T>(cell_clip) : std::numeric_limits<T>::infinity();
  return {peep, clip, coupled, act_at<T>(&acts[0]), act_at<T>(&acts[3]), act_at<T>(&acts[6])};
}

template <typename T>
bool default_acts(const LSTMCell<T>& c) {
  return c.gate.code == kSigmoid && c.cand.code == kTanh && c.out.code == kTanh;
}

// The default cell on n units of one batch row (pointers offset to the first unit; the gate
// blocks of g and bias are H apart): `g` holds the pre-activations on entry and the gates
// i, f, g, o on exit; `out` receives m = o∘tanh(c_t) (h_t, or the input of W_hr).
template <typename T>
inline void lstm_cell_row(T* __restrict g, const T* __restrict bias,
                          const T* __restrict c_prev, T* __restrict c_new, T* __restrict out,
                          int64_t n, int64_t H) {
  T* __restrict gi = g;
  T* __restrict gf = g + H;
  T* __restrict gg = g + 2 * H;
  T* __restrict go = g + 3 * H;
  const T* __restrict bi = bias;
  const T* __restrict bf = bias + H;
  const T* __restrict bg = bias + 2 * H;
  const T* __restrict bo = bias + 3 * H;
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    T i = sigmoid_(gi[j] + bi[j]), f = sigmoid_(gf[j] + bf[j]);
    T gt = tanh_(gg[j] + bg[j]), o = sigmoid_(go[j] + bo[j]);
    T c = f * c_prev[j] + i * gt;
    gi[j] = i;
    gf[j] = f;
    gg[j] = gt;
    go[j] = o;
    c_new[j] = c;
    out[j] = o * tanh_(c);
  }
}

// The general cell, as lstm_cell_row with the options of `cell` (peep already offset):
//   i, f = φ_g(a + p∘c_{t-1}) (coupled: i = 1 - f), g = φ_c(a_g), c̃ = clip(f∘c_{t-1} + i∘g),
//   o = φ_g(a_o + p_o∘c̃), out = o∘φ_o(c̃); clipped[j] = 1 where c̃ was clamped.
// `phi`: n values of scratch.
template <typename T>
inline void lstm_cell_row_general(T* __restrict g, const T* __restrict bias,
                                  const T* __restrict c_prev, T* __restrict c_new,
                                  T* __restrict out, int64_t n, int64_t H,
                                  const LSTMCell<T>& cell, T* __restrict clipped,
                                  T* __restrict phi) {
  T* __restrict gi = g;
  T* __restrict gf = g + H;
  T* __restrict gg = g + 2 * H;
  T* __restrict go = g + 3 * H;
  const T* __restrict p_i = cell.peep;
  const T* __restrict p_f = cell.peep + H;
  const T* __restrict p_o = cell.peep + 2 * H;
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    const T cp = c_prev[j];
    gi[j] += bias[j] + p_i[j] * cp;
    gf[j] += bias[H + j] + p_f[j] * cp;
    gg[j] += bias[2 * H + j];
  }
  activate(cell.gate, gf, gf, n);
  if (cell.coupled) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) gi[j] = T(1) - gf[j];
  } else {
    activate(cell.gate, gi, gi, n);
  }
  activate(cell.cand, gg, gg, n);
  const T clip = cell.clip;
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    T c = gf[j] * c_prev[j] + gi[j] * gg[j];
    clipped[j] = (c > clip || c < -clip) ? T(1) : T(0);
    c = c > clip ? clip : c;
    c = c < -clip ? -clip : c;
    c_new[j] = c;
    go[j] += bias[3 * H + j] + p_o[j] * c;
  }
  activate(cell.gate, go, go, n);
  activate(cell.out, c_new, phi, n);
  mul_row(out, go, phi, n);
}

// The default cell's backward on n units of one row (pointers offset to the first unit; gate
// blocks of g and da are H apart). The gradient reaching m_t = o∘tanh(c_t) (h_t without
// projection) is dh_a + dh_b; dc: the gradient reaching c_t on entry, c_{t-1} on exit.
template <typename T>
inline void lstm_cell_backward_row(const T* __restrict g, const T* __restrict c_prev,
                                   const T* __restrict c_cur, const T* __restrict dh_a,
                                   const T* __restrict dh_b, T* __restrict dc,
                                   T* __restrict da, int64_t n, int64_t H) {
  const T* __restrict gi = g;
  const T* __restrict gf = g + H;
  const T* __restrict gg = g + 2 * H;
  const T* __restrict go = g + 3 * H;
  T* __restrict da_i = da;
  T* __restrict da_f = da + H;
  T* __restrict da_g = da + 2 * H;
  T* __restrict da_o = da + 3 * H;
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    T i = gi[j], f = gf[j], gt = gg[j], o = go[j];
    T dh = dh_a[j] + dh_b[j];
    T tc = tanh_(c_cur[j]);
    da_o[j] = dh * tc * o * (T(1) - o);
    T dcn = dc[j] + dh * o * (T(1) - tc * tc);
    da_g[j] = dcn * i * (T(1) - gt * gt);
    da_f[j] = dcn * c_prev[j] * f * (T(1) - f);
    da_i[j] = dcn * gt * i * (T(1) - i);
    dc[j] = dcn * f;
  }
}

// The general backward, as lstm_cell_backward_row with the options of `cell` (peep offset),
// c_cur = c̃_t, and zoneout: the gradient entering the step is (dh_a + dh_b)∘(1 - d^h) (z_h:
// zeros where the caller applied it already) and dc∘(1 - d^c), while dc∘d^c goes straight to
// c_{t-1}. The derivatives come from the stored outputs (activations.h); `scratch`: 2n values.
template <typename T>
inline void lstm_cell_backward_row_general(const T* __restrict g, const T* __restrict c_prev,
                                           const T* __restrict c_cur,
                                           const T* __restrict dh_a, const T* __restrict dh_b,
                                           const T* __restrict z_h, T* __restrict dc,
                                           const T* __restrict z_c, T* __restrict da,
                                           int64_t n, int64_t H, const LSTMCell<T>& cell,
                                           const T* __restrict clipped, T* __restrict scratch) {
  const T* __restrict gi = g;
  const T* __restrict gf = g + H;
  const T* __restrict gg = g + 2 * H;
  const T* __restrict go = g + 3 * H;
  T* __restrict da_i = da;
  T* __restrict da_f = da + H;
  T* __restrict da_g = da + 2 * H;
  T* __restrict da_o = da + 3 * H;
  T* __restrict phi = scratch;       // φ_o(c̃_t)
  T* __restrict k_c = scratch + n;   // φ_o'(c̃_t)
  // each gate's derivative into its da row first, read back (and overwritten) below
  activation_grad(cell.gate, gi, da_i, n);
  activation_grad(cell.gate, gf, da_f, n);
  activation_grad(cell.cand, gg, da_g, n);
  activation_grad(cell.gate, go, da_o, n);
  activate(cell.out, c_cur, phi, n);
  activation_grad(cell.out, phi, k_c, n);
  const T* __restrict p_i = cell.peep;
  const T* __restrict p_f = cell.peep + H;
  const T* __restrict p_o = cell.peep + 2 * H;
  const T coupled = cell.coupled ? T(1) : T(0);
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    T i = gi[j], f = gf[j], gt = gg[j], o = go[j];
    T dh = (dh_a[j] + dh_b[j]) * (T(1) - z_h[j]);
    T dao = dh * phi[j] * da_o[j];
    T dc_in = dc[j];
    T dcn = dc_in * (T(1) - z_c[j]) + dh * o * k_c[j] + dao * p_o[j];
    dcn = clipped[j] != T(0) ? T(0) : dcn;
    T daf = dcn * (c_prev[j] - coupled * gt) * da_f[j];  // coupled: i = 1 - f
    T dai = (T(1) - coupled) * dcn * gt * da_i[j];
    da_g[j] = dcn * i * da_g[j];
    da_o[j] = dao;
    da_f[j] = daf;
    da_i[j] = dai;
    dc[j] = dcn * f + dai * p_i[j] + daf * p_f[j] + dc_in * z_c[j];
  }
}

}  // namespace rnnlab
