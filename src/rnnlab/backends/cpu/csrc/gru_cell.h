// The GRU's point-wise cell for rnnlab's CPU engine (the math of rnnlab/bptt/gru.py): one step
// on n units of one batch row, forward and backward, in both forms, that gru.cpp's time loops
// call around each step's recurrent product(s). Every pointer is offset to the row's first
// unit; gate blocks r, z, n (of gates, biases and their gradients) are H apart. With σ and tanh
// and no zoneout (`plain`) each function is one fused vectorised pass; otherwise -- any
// activations of activations.h, zoneout -- a few vectorised passes.
//
// Backward, with g = dy_t + dh the gradient reaching h_t and g̃ = g∘(1-d) the share entering
// the step (zoneout keep weights d; zeros without zoneout):
//   da_n = g̃∘(1-z)∘φ_c'(n),  da_z = g̃∘(h_{t-1} - n)∘φ_g'(z),  and dh_{t-1} = g̃∘z + g∘d + the
//   recurrent product's part (reset_after: (dgh W_hh)∘m; original: (d(r∘h̄)∘r + …)∘m).
#pragma once

#include "activations.h"
#include "common.h"
#include "regularisers.h"

namespace rnnlab {

template <typename T>
struct GRUActs {
  Act<T> gate, cand;  // φ_g of r, z; φ_c of n
};

template <typename T>
GRUActs<T> gru_acts(c10::ArrayRef<double> acts) {
  TORCH_CHECK(acts.size() == 6, "rnnlab gru: acts must hold 2 activations (code, alpha, beta)");
  for (int k = 0; k < 2; ++k)
    TORCH_CHECK(valid_act_code(static_cast<int>(acts[3 * k])), "rnnlab gru: activation code ",
                acts[3 * k]);
  return {act_at<T>(&acts[0]), act_at<T>(&acts[3])};
}

template <typename T>
bool default_acts(const GRUActs<T>& a) {
  return a.gate.code == kSigmoid && a.cand.code == kTanh;
}

// h_t = n + z∘(h_{t-1} - n)
template <typename T>
inline void gru_update(T* __restrict h, const T* __restrict n_, const T* __restrict z,
                       const T* __restrict hp, int64_t n) {
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) h[j] = n_[j] + z[j] * (hp[j] - n_[j]);
}

// reset_after: r, z = φ_g(gx + b_i + gh + b_h), n = φ_c(gx_n + b_in + r∘(gh_n + b_hn)),
// h̃ = n + z∘(h_{t-1} - n). `g` holds gx on entry and r, z, n on exit; gh: h̄ W_hhᵀ; `ghn`
// receives gh_n + b_hn (for the backward), `h` receives h̃.
template <typename T>
inline void gru_row_reset_after(T* __restrict g, const T* __restrict gh,
                                const T* __restrict bi, const T* __restrict bh,
                                const T* __restrict hp, T* __restrict ghn, T* __restrict h,
                                int64_t n, int64_t H, const GRUActs<T>& act, bool plain) {
  T* __restrict gr = g;
  T* __restrict gz = g + H;
  T* __restrict gn = g + 2 * H;
  if (plain) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) {
      T r = sigmoid_(gr[j] + bi[j] + gh[j] + bh[j]);
      T z = sigmoid_(gz[j] + bi[H + j] + gh[H + j] + bh[H + j]);
      T hn_b = gh[2 * H + j] + bh[2 * H + j];
      T nn = tanh_(gn[j] + bi[2 * H + j] + r * hn_b);
      gr[j] = r;
      gz[j] = z;
      gn[j] = nn;
      ghn[j] = hn_b;
      h[j] = nn + z * (hp[j] - nn);
    }
    return;
  }
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    gr[j] += bi[j] + gh[j] + bh[j];
    gz[j] += bi[H + j] + gh[H + j] + bh[H + j];
  }
  activate(act.gate, gr, gr, n);
  activate(act.gate, gz, gz, n);
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    T hn_b = gh[2 * H + j] + bh[2 * H + j];
    ghn[j] = hn_b;
    gn[j] += bi[2 * H + j] + gr[j] * hn_b;
  }
  activate(act.cand, gn, gn, n);
  gru_update(h, gn, gz, hp, n);
}

// original form, before the product W_hn: r, z = φ_g(a + b_i + b_h) with a = gx + h̄ W_hrzᵀ in
// g's r, z blocks (replaced by the gates); `rh` receives r∘h̄, W_hn's input.
template <typename T>
inline void gru_row_gates(T* __restrict g, const T* __restrict bi, const T* __restrict bh,
                          const T* __restrict hbar, T* __restrict rh, int64_t n, int64_t H,
                          const GRUActs<T>& act, bool plain) {
  T* __restrict gr = g;
  T* __restrict gz = g + H;
  if (plain) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) {
      T r = sigmoid_(gr[j] + bi[j] + bh[j]);
      gr[j] = r;
      gz[j] = sigmoid_(gz[j] + bi[H + j] + bh[H + j]);
      rh[j] = r * hbar[j];
    }
    return;
  }
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    gr[j] += bi[j] + bh[j];
    gz[j] += bi[H + j] + bh[H + j];
  }
  activate(act.gate, gr, gr, n);
  activate(act.gate, gz, gz, n);
  mul_row(rh, gr, hbar, n);
}

// original form, after W_hn: n = φ_c(a_n + b_in + b_hn) with a_n = gx_n + (r∘h̄) W_hnᵀ in g's n
// block (replaced by n), and h̃ = n + z∘(h_{t-1} - n) into `h`.
template <typename T>
inline void gru_row_candidate(T* __restrict g, const T* __restrict bi, const T* __restrict bh,
                              const T* __restrict hp, T* __restrict h, int64_t n, int64_t H,
                              const GRUActs<T>& act, bool plain) {
  const T* __restrict gz = g + H;
  T* __restrict gn = g + 2 * H;
  if (plain) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) {
      T nn = tanh_(gn[j] + bi[2 * H + j] + bh[2 * H + j]);
      gn[j] = nn;
      h[j] = nn + gz[j] * (hp[j] - nn);
    }
    return;
  }
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) gn[j] += bi[2 * H + j] + bh[2 * H + j];
  activate(act.cand, gn, gn, n);
  gru_update(h, gn, gz, hp, n);
}

// reset_after backward: dgx = [da_r, da_z, da_n], dgh = [da_r, da_z, da_n∘r] (the gradients of
// the input and recurrent pre-activations), with da_r = da_n∘(gh_n + b_hn)∘φ_g'(r); `next`
// receives g̃∘z + g∘d. d: zoneout keep weights (zeros without; unread when plain).
template <typename T>
inline void gru_backward_row_reset_after(const T* __restrict g, const T* __restrict hp,
                                         const T* __restrict ghn, const T* __restrict dy,
                                         const T* __restrict dh, const T* __restrict d,
                                         T* __restrict dgx, T* __restrict dgh,
                                         T* __restrict next, int64_t n, int64_t H,
                                         const GRUActs<T>& act, bool plain) {
  const T* __restrict r_ = g;
  const T* __restrict z_ = g + H;
  const T* __restrict n_ = g + 2 * H;
  if (plain) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) {
      T r = r_[j], z = z_[j], nn = n_[j];
      T gsum = dy[j] + dh[j];
      T da_n = gsum * (T(1) - z) * (T(1) - nn * nn);
      T da_z = gsum * (hp[j] - nn) * z * (T(1) - z);
      T da_r = da_n * ghn[j] * r * (T(1) - r);
      dgx[j] = da_r;
      dgx[H + j] = da_z;
      dgx[2 * H + j] = da_n;
      dgh[j] = da_r;
      dgh[H + j] = da_z;
      dgh[2 * H + j] = da_n * r;
      next[j] = gsum * z;
    }
    return;
  }
  // the derivatives into dgx's blocks, read back and overwritten below
  activation_grad(act.gate, r_, dgx, n);
  activation_grad(act.gate, z_, dgx + H, n);
  activation_grad(act.cand, n_, dgx + 2 * H, n);
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    T r = r_[j], z = z_[j], nn = n_[j];
    T gsum = dy[j] + dh[j];
    T gt = gsum * (T(1) - d[j]);
    T da_n = gt * (T(1) - z) * dgx[2 * H + j];
    T da_z = gt * (hp[j] - nn) * dgx[H + j];
    T da_r = da_n * ghn[j] * dgx[j];
    dgx[j] = da_r;
    dgx[H + j] = da_z;
    dgx[2 * H + j] = da_n;
    dgh[j] = da_r;
    dgh[H + j] = da_z;
    dgh[2 * H + j] = da_n * r;
    next[j] = gt * z + gsum * d[j];
  }
}

// original-form backward, before the product d(r∘h̄) = da_n W_hn: da_z, da_n into da's blocks.
template <typename T>
inline void gru_backward_row_zn(const T* __restrict g, const T* __restrict hp,
                                const T* __restrict dy, const T* __restrict dh,
                                const T* __restrict d, T* __restrict da, int64_t n, int64_t H,
                                const GRUActs<T>& act, bool plain) {
  const T* __restrict z_ = g + H;
  const T* __restrict n_ = g + 2 * H;
  if (plain) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) {
      T z = z_[j], nn = n_[j];
      T gsum = dy[j] + dh[j];
      da[2 * H + j] = gsum * (T(1) - z) * (T(1) - nn * nn);
      da[H + j] = gsum * (hp[j] - nn) * z * (T(1) - z);
    }
    return;
  }
  activation_grad(act.gate, z_, da + H, n);
  activation_grad(act.cand, n_, da + 2 * H, n);
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    T z = z_[j], nn = n_[j];
    T gt = (dy[j] + dh[j]) * (T(1) - d[j]);
    da[2 * H + j] = gt * (T(1) - z) * da[2 * H + j];
    da[H + j] = gt * (hp[j] - nn) * da[H + j];
  }
}

// original-form backward, after it: da_r = d(r∘h̄)∘h̄∘φ_g'(r) into da's r block, and into
// `next` the part of dh_{t-1} outside W_hrz: g̃∘z + g∘d + d(r∘h̄)∘r -- or, when `masked`
// (recurrent dropout masks that part too), g̃∘z + g∘d with d(r∘h̄)∘r left in drh.
template <typename T>
inline void gru_backward_row_r(const T* __restrict g, const T* __restrict hbar,
                               const T* __restrict dy, const T* __restrict dh,
                               const T* __restrict d, T* __restrict drh, T* __restrict da,
                               T* __restrict next, int64_t n, int64_t H, const GRUActs<T>& act,
                               bool plain, bool masked) {
  const T* __restrict r_ = g;
  const T* __restrict z_ = g + H;
  if (plain && !masked) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) {
      T r = r_[j];
      T gsum = dy[j] + dh[j];
      da[j] = drh[j] * hbar[j] * r * (T(1) - r);
      next[j] = gsum * z_[j] + drh[j] * r;
    }
    return;
  }
  activation_grad(act.gate, r_, da, n);
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    T r = r_[j];
    T gsum = dy[j] + dh[j];
    T gt = gsum * (T(1) - d[j]);
    da[j] = drh[j] * hbar[j] * da[j];
    next[j] = gt * z_[j] + gsum * d[j];
    drh[j] *= r;
  }
  if (!masked) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) next[j] += drh[j];
  }
}

}  // namespace rnnlab
