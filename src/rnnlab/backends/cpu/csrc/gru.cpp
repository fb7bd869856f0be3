// GRU forward and hand-derived BPTT (the math of rnnlab/bptt/gru.py), one direction of one
// layer, in torch's reset_after form and in the original one.
//
// reset_after: gx = x W_ihᵀ (all steps, one GEMM), per step gh = h̄_{t-1} W_hhᵀ, then one
//   point-wise pass: r, z = φ_g(gx + b_ih + gh + b_hh), n = φ_c(gx_n + b_in + r∘(gh_n + b_hn)),
//   h_t = n + z∘(h_{t-1} - n). Saved: r, z, n, gh_n + b_hn, every h.
// original:    gx = x W_ihᵀ; per step a_rz = gx_rz + h̄_{t-1} W_hrzᵀ -> r, z; rh = r∘h̄_{t-1};
//   a_n = gx_n + rh W_hnᵀ -> n (two products per step). Saved: r, z, n, rh, every h.
// Backward: one point-wise pass per step writes the pre-activation gradients, the recurrent
// product(s) then give dh_{t-1}; weight gradients are GEMMs over all T·B rows.
//
// Variants are options of the same loops: any activations φ_g, φ_c of activations.h, recurrent
// dropout (h̄ = m∘h_{t-1} wherever h enters W_hh, not in z∘h_{t-1}; kept for dW_hh) and zoneout
// h_t = h̃_t + d_t∘(h_{t-1} - h̃_t) (regularisers.h). σ and tanh without zoneout keep one fused
// pass per row; otherwise a few vectorised passes per row.
#include "activations.h"
#include "common.h"
#include "regularisers.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/sum.h>

#include <memory>
#include <vector>

namespace rnnlab {

namespace {

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

// dst += a + b + c on n values (the pre-activations of r, z from their four parts)
template <typename T>
inline void add3_into(T* __restrict dst, const T* __restrict a, const T* __restrict b,
                      const T* __restrict c, int64_t n) {
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) dst[j] += a[j] + b[j] + c[j];
}

// h_t = n + z∘(h_{t-1} - n)
template <typename T>
inline void gru_update(T* __restrict h, const T* __restrict n_, const T* __restrict z,
                       const T* __restrict hp, int64_t n) {
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) h[j] = n_[j] + z[j] * (hp[j] - n_[j]);
}

template <typename T>
std::vector<Tensor> gru_forward_impl(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                     const Tensor& w_hh, const c10::optional<Tensor>& b_ih,
                                     const c10::optional<Tensor>& b_hh,
                                     const c10::optional<Tensor>& mask,
                                     const c10::optional<Tensor>& rec,
                                     const c10::optional<Tensor>& zone, bool reset_after,
                                     c10::ArrayRef<double> acts) {
  const int64_t Tn = x.size(0), B = x.size(1), H = w_hh.size(1);
  auto opts = x.options();
  const GRUActs<T> act = gru_acts<T>(acts);
  const T* m_rec = mask_data<T>(rec, x, "rec", B * H);
  const T* z_h = mask_data<T>(zone, x, "zone", Tn * B * H);
  const bool plain = act.gate.code == kSigmoid && act.cand.code == kTanh && !z_h;
  Tensor G = saved_empty({Tn, B, 3 * H}, opts);  // gx, then r, z, n
  matmul<T>(flat(x), false, w_ih, true, G.view({Tn * B, 3 * H}));
  Tensor zeros = at::zeros({3 * H}, opts);
  Tensor bi = has(b_ih) ? b_ih->contiguous() : zeros;
  Tensor bh = has(b_hh) ? b_hh->contiguous() : zeros;
  Tensor hs = saved_empty({Tn + 1, B, H}, opts);
  hs[0].copy_(h0);
  Tensor y = at::empty({Tn, B, H}, opts);
  Tensor aux = saved_empty({Tn, B, H}, opts);  // gh_n + b_hn (reset_after) or r∘h̄_{t-1}
  Tensor gh = scratch(kRowsScratch, {B, 3 * H}, opts);
  Tensor hin = recurrent_inputs(h0, rec, Tn);  // h̄_{t-1} = m∘h_{t-1}

  T* g_ptr = G.data_ptr<T>();
  T* h_ptr = hs.data_ptr<T>();
  T* y_ptr = y.data_ptr<T>();
  T* aux_ptr = aux.data_ptr<T>();
  T* gh_ptr = gh.data_ptr<T>();
  T* hin_ptr = m_rec ? hin.data_ptr<T>() : nullptr;
  const T* bi_ptr = bi.data_ptr<T>();
  const T* bh_ptr = bh.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;

  const T* w = w_hh.data_ptr<T>();
  // reset_after: the whole W_hh (3 gate blocks); original: rows r, z (2 blocks), then rows n
  StepWeight<T> W_a(kStepW1, w, H, /*trans=*/true, reset_after ? 3 : 2, H, H);
  std::unique_ptr<StepWeight<T>> W_n;
  if (!reset_after)
    W_n = std::make_unique<StepWeight<T>>(kStepW2, w + 2 * H * H, H, true, 1, H, H);

  team(team_size<T>(B * 3 * H * H, H), [&](int tid, int nt) {
    const Units u = unit_slice<T>(H, tid, nt);
    const int64_t n = u.j1 - u.j0;
    const T* __restrict bir = bi_ptr + u.j0;
    const T* __restrict biz = bi_ptr + H + u.j0;
    const T* __restrict bin = bi_ptr + 2 * H + u.j0;
    const T* __restrict bhr = bh_ptr + u.j0;
    const T* __restrict bhz = bh_ptr + H + u.j0;
    const T* __restrict bhn = bh_ptr + 2 * H + u.j0;
    // a running row's end of step: zoneout, the output, the next product's input m∘h_t
    auto finish_row = [&](int64_t t, int64_t o) {
      T* h_new = h_ptr + (t + 1) * B * H + o;
      if (z_h) zone_row(h_new, h_new - B * H, z_h + t * B * H + o, n);
      std::memcpy(y_ptr + t * B * H + o, h_new, n * sizeof(T));
    };
    auto next_input = [&](int64_t t, int64_t o) {
      if (m_rec && t + 1 < Tn)
        mul_row(hin_ptr + (t + 1) * B * H + o, h_ptr + (t + 1) * B * H + o, m_rec + o, n);
    };
    auto carry_row = [&](int64_t t, int64_t o) {  // padded step: carry the state, output 0
      std::memcpy(h_ptr + (t + 1) * B * H + o, h_ptr + t * B * H + o, n * sizeof(T));
      std::memset(y_ptr + t * B * H + o, 0, n * sizeof(T));
    };
    for (int64_t t = 0; t < Tn; ++t) {
      T* g = g_ptr + t * B * 3 * H;
      const T* h_prev = h_ptr + t * B * H;
      const T* h_read = m_rec ? hin_ptr + t * B * H : h_prev;
      T* h_new = h_ptr + (t + 1) * B * H;
      T* aux_t = aux_ptr + t * B * H;
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      if (reset_after) {
        W_a.apply_units(B, h_read, H, false, gh_ptr, 3 * H, u.j0, u.j1);  // gh = h̄ W_hhᵀ
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          T* __restrict gr = g + b * 3 * H + u.j0;
          T* __restrict gz = gr + H;
          T* __restrict gn = gr + 2 * H;
          const T* __restrict hr = gh_ptr + b * 3 * H + u.j0;
          const T* __restrict hz = hr + H;
          const T* __restrict hn = hr + 2 * H;
          const T* __restrict hp = h_prev + o;
          T* __restrict hnew = h_new + o;
          T* __restrict ghn = aux_t + o;
          if (run && !run[b]) {
            carry_row(t, o);
            std::memset(ghn, 0, n * sizeof(T));
            next_input(t, o);
            continue;
          }
          if (plain) {
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T r = sigmoid_(gr[j] + bir[j] + hr[j] + bhr[j]);
              T z = sigmoid_(gz[j] + biz[j] + hz[j] + bhz[j]);
              T hn_b = hn[j] + bhn[j];
              T nn = tanh_(gn[j] + bin[j] + r * hn_b);
              gr[j] = r;
              gz[j] = z;
              gn[j] = nn;
              ghn[j] = hn_b;
              hnew[j] = nn + z * (hp[j] - nn);
            }
          } else {
            add3_into(gr, bir, hr, bhr, n);
            add3_into(gz, biz, hz, bhz, n);
            activate(act.gate, gr, gr, n);
            activate(act.gate, gz, gz, n);
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T hn_b = hn[j] + bhn[j];
              ghn[j] = hn_b;
              gn[j] += bin[j] + gr[j] * hn_b;
            }
            activate(act.cand, gn, gn, n);
            gru_update(hnew, gn, gz, hp, n);
          }
          finish_row(t, o);
          next_input(t, o);
        }
      } else {
        W_a.apply_units(B, h_read, H, true, g, 3 * H, u.j0, u.j1);  // G_rz += h̄ W_hrzᵀ
        for (int64_t b = 0; b < B && n > 0; ++b) {
          T* __restrict gr = g + b * 3 * H + u.j0;
          T* __restrict gz = gr + H;
          const T* __restrict hb = h_read + b * H + u.j0;
          T* __restrict rh = aux_t + b * H + u.j0;
          if (plain) {
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T r = sigmoid_(gr[j] + bir[j] + bhr[j]);
              gr[j] = r;
              gz[j] = sigmoid_(gz[j] + biz[j] + bhz[j]);
              rh[j] = r * hb[j];
            }
          } else {
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              gr[j] += bir[j] + bhr[j];
              gz[j] += biz[j] + bhz[j];
            }
            activate(act.gate, gr, gr, n);
            activate(act.gate, gz, gz, n);
            mul_row(rh, gr, hb, n);
          }
        }
        barrier(nt);  // the n rows need all of r∘h̄
        // G_n += (r∘h̄) W_hnᵀ
        W_n->apply_units(B, aux_t, H, true, g + 2 * H, 3 * H, u.j0, u.j1);
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          const T* __restrict gz = g + b * 3 * H + H + u.j0;
          T* __restrict gn = g + b * 3 * H + 2 * H + u.j0;
          const T* __restrict hp = h_prev + o;
          T* __restrict hnew = h_new + o;
          if (run && !run[b]) {  // (r∘h̄ of a padded row meets a zero gradient in the backward)
            carry_row(t, o);
            next_input(t, o);
            continue;
          }
          if (plain) {
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T nn = tanh_(gn[j] + bin[j] + bhn[j]);
              gn[j] = nn;
              hnew[j] = nn + gz[j] * (hp[j] - nn);
            }
          } else {
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) gn[j] += bin[j] + bhn[j];
            activate(act.cand, gn, gn, n);
            gru_update(hnew, gn, gz, hp, n);
          }
          finish_row(t, o);
          next_input(t, o);
        }
      }
      barrier(nt);  // the next step reads all of h_t
    }
  });
  return {y, hs[Tn].clone(), G, hs, aux, hin};
}

template <typename T>
std::vector<Tensor> gru_backward_impl(const Tensor& dy, const Tensor& dh_T, const Tensor& x,
                                      const Tensor& w_ih, const Tensor& w_hh,
                                      const c10::optional<Tensor>& mask,
                                      const c10::optional<Tensor>& rec,
                                      const c10::optional<Tensor>& zone, const Tensor& gates,
                                      const Tensor& hs, const Tensor& aux,
                                      const c10::optional<Tensor>& hin, bool reset_after,
                                      c10::ArrayRef<double> acts, bool need_dx, bool has_bias) {
  const int64_t Tn = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1);
  auto opts = x.options();
  const GRUActs<T> act = gru_acts<T>(acts);
  const T* m_rec = mask_data<T>(rec, x, "rec", B * H);
  const T* z_h = mask_data<T>(zone, x, "zone", Tn * B * H);
  const bool plain = act.gate.code == kSigmoid && act.cand.code == kTanh && !z_h;
  // reset_after: dGX = [da_r, da_z, da_n], dGH = [da_r, da_z, da_n∘r]; original: one dA
  Tensor dGX = scratch(kGradA, {Tn, B, 3 * H}, opts);
  Tensor dGH = reset_after ? scratch(kGradOut, {Tn, B, 3 * H}, opts) : dGX;
  Tensor dh = dh_T.clone();
  Tensor dh_next = at::empty({B, H}, opts);
  // original: d(r∘h̄) = da_n W_hn; reset_after with recurrent dropout: the step's dgh W_hh
  Tensor d_rh = !reset_after || m_rec ? scratch(kRowsScratch, {B, H}, opts) : Tensor();
  Tensor zeros = at::zeros({H}, opts);

  T* dgx_ptr = dGX.data_ptr<T>();
  T* dgh_ptr = dGH.data_ptr<T>();
  T* const buf0 = dh.data_ptr<T>();
  T* const buf1 = dh_next.data_ptr<T>();
  T* drh_ptr = d_rh.defined() ? d_rh.data_ptr<T>() : nullptr;
  const T* dy_ptr = dy.data_ptr<T>();
  const T* g_ptr = gates.data_ptr<T>();
  const T* h_ptr = hs.data_ptr<T>();
  const T* hin_ptr = m_rec ? hin->data_ptr<T>() : nullptr;
  const T* aux_ptr = aux.data_ptr<T>();
  const T* zero_ptr = zeros.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;

  const T* w = w_hh.data_ptr<T>();
  // dh_{t-1} += dgh W_hh (reset_after) or [da_r, da_z] W_hrz; original also d(r∘h̄) = da_n W_hn
  StepWeight<T> W_a(kStepW1, w, H, /*trans=*/false, 1, H, reset_after ? 3 * H : 2 * H);
  std::unique_ptr<StepWeight<T>> W_n;
  if (!reset_after)
    W_n = std::make_unique<StepWeight<T>>(kStepW2, w + 2 * H * H, H, false, 1, H, H);

  team(team_size<T>(B * 3 * H * H, H), [&](int tid, int nt) {
    const Units u = unit_slice<T>(H, tid, nt);
    const int64_t n = u.j1 - u.j0;
    T* dh_ptr = buf0;  // the gradient reaching h_t; the step writes dh_{t-1} into dhn_ptr
    T* dhn_ptr = buf1;
    for (int64_t t = Tn - 1; t >= 0; --t) {
      const T* g = g_ptr + t * B * 3 * H;
      const T* h_prev = h_ptr + t * B * H;
      const T* h_read = m_rec ? hin_ptr + t * B * H : h_prev;  // h̄_{t-1}
      const T* dy_t = dy_ptr + t * B * H;
      const T* aux_t = aux_ptr + t * B * H;
      const T* zone_t = z_h ? z_h + t * B * H : nullptr;
      T* dgx = dgx_ptr + t * B * 3 * H;
      T* dgh = dgh_ptr + t * B * 3 * H;
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      // with g = dy_t + dh reaching h_t and g̃ = g∘(1-d) entering the step (zoneout d):
      // da_n = g̃∘(1-z)∘φ_c'(n), da_z = g̃∘(h_{t-1} - n)∘φ_g'(z), dh_{t-1} = g̃∘z + g∘d + …
      if (reset_after) {
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          T* __restrict dxr = dgx + b * 3 * H + u.j0;
          T* __restrict dhr = dgh + b * 3 * H + u.j0;
          T* __restrict next = dhn_ptr + o;
          const T* __restrict dhb = dh_ptr + o;
          if (run && !run[b]) {  // no gradient enters a padded step; dh passes through
            for (int k = 0; k < 3; ++k) {
              std::memset(dxr + k * H, 0, n * sizeof(T));
              std::memset(dhr + k * H, 0, n * sizeof(T));
            }
            std::memcpy(next, dhb, n * sizeof(T));
            continue;
          }
          const T* __restrict r_ = g + b * 3 * H + u.j0;
          const T* __restrict z_ = r_ + H;
          const T* __restrict n_ = r_ + 2 * H;
          const T* __restrict hp = h_prev + o;
          const T* __restrict ghn = aux_t + o;
          const T* __restrict dyb = dy_t + o;
          if (plain) {
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T r = r_[j], z = z_[j], nn = n_[j];
              T gsum = dyb[j] + dhb[j];
              T da_n = gsum * (T(1) - z) * (T(1) - nn * nn);
              T da_z = gsum * (hp[j] - nn) * z * (T(1) - z);
              T da_r = da_n * ghn[j] * r * (T(1) - r);
              dxr[j] = da_r;
              dxr[H + j] = da_z;
              dxr[2 * H + j] = da_n;
              dhr[j] = da_r;
              dhr[H + j] = da_z;
              dhr[2 * H + j] = da_n * r;
              next[j] = gsum * z;
            }
          } else {
            const T* __restrict d = zone_t ? zone_t + o : zero_ptr;
            // the derivatives into dgx's rows, read back and overwritten below
            activation_grad(act.gate, r_, dxr, n);
            activation_grad(act.gate, z_, dxr + H, n);
            activation_grad(act.cand, n_, dxr + 2 * H, n);
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T r = r_[j], z = z_[j], nn = n_[j];
              T gsum = dyb[j] + dhb[j];
              T gt = gsum * (T(1) - d[j]);
              T da_n = gt * (T(1) - z) * dxr[2 * H + j];
              T da_z = gt * (hp[j] - nn) * dxr[H + j];
              T da_r = da_n * ghn[j] * dxr[j];
              dxr[j] = da_r;
              dxr[H + j] = da_z;
              dxr[2 * H + j] = da_n;
              dhr[j] = da_r;
              dhr[H + j] = da_z;
              dhr[2 * H + j] = da_n * r;
              next[j] = gt * z + gsum * d[j];
            }
          }
        }
        barrier(nt);  // the product needs all of dgh
        if (!m_rec) {
          W_a.apply_units(B, dgh, 3 * H, true, dhn_ptr, H, u.j0, u.j1);  // += dgh W_hh
        } else {  // += (dgh W_hh)∘m
          W_a.apply_units(B, dgh, 3 * H, false, drh_ptr, H, u.j0, u.j1);
          for (int64_t b = 0; b < B && n > 0; ++b) {
            const int64_t o = b * H + u.j0;
            T* __restrict next = dhn_ptr + o;
            const T* __restrict prod = drh_ptr + o;
            const T* __restrict m = m_rec + o;
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) next[j] += prod[j] * m[j];
          }
        }
      } else {
        for (int64_t b = 0; b < B && n > 0; ++b) {
          T* __restrict da = dgx + b * 3 * H + u.j0;
          if (run && !run[b]) {
            for (int k = 0; k < 3; ++k) std::memset(da + k * H, 0, n * sizeof(T));
            continue;
          }
          const int64_t o = b * H + u.j0;
          const T* __restrict z_ = g + b * 3 * H + H + u.j0;
          const T* __restrict n_ = g + b * 3 * H + 2 * H + u.j0;
          const T* __restrict hp = h_prev + o;
          const T* __restrict dyb = dy_t + o;
          const T* __restrict dhb = dh_ptr + o;
          if (plain) {
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T z = z_[j], nn = n_[j];
              T gsum = dyb[j] + dhb[j];
              da[2 * H + j] = gsum * (T(1) - z) * (T(1) - nn * nn);
              da[H + j] = gsum * (hp[j] - nn) * z * (T(1) - z);
            }
          } else {
            const T* __restrict d = zone_t ? zone_t + o : zero_ptr;
            activation_grad(act.gate, z_, da + H, n);
            activation_grad(act.cand, n_, da + 2 * H, n);
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T z = z_[j], nn = n_[j];
              T gt = (dyb[j] + dhb[j]) * (T(1) - d[j]);
              da[2 * H + j] = gt * (T(1) - z) * da[2 * H + j];
              da[H + j] = gt * (hp[j] - nn) * da[H + j];
            }
          }
        }
        barrier(nt);  // d(r∘h̄) needs all of da_n
        W_n->apply_units(B, dgx + 2 * H, 3 * H, false, drh_ptr, H, u.j0, u.j1);
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          T* __restrict da = dgx + b * 3 * H + u.j0;
          T* __restrict next = dhn_ptr + o;
          const T* __restrict dhb = dh_ptr + o;
          if (run && !run[b]) {
            std::memcpy(next, dhb, n * sizeof(T));
            continue;
          }
          const T* __restrict r_ = g + b * 3 * H + u.j0;
          const T* __restrict z_ = r_ + H;
          const T* __restrict hb = h_read + o;
          const T* __restrict dyb = dy_t + o;
          T* __restrict drh = drh_ptr + o;
          if (plain && !m_rec) {
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T r = r_[j];
              T gsum = dyb[j] + dhb[j];
              da[j] = drh[j] * hb[j] * r * (T(1) - r);
              next[j] = gsum * z_[j] + drh[j] * r;
            }
          } else {
            // da_r = d(r∘h̄)∘h̄∘φ_g'(r); the part of dh_{t-1} outside W_hh: g̃∘z + g∘d; with
            // recurrent dropout d(r∘h̄)∘r stays in drh, to be masked with the product below
            const T* __restrict d = zone_t ? zone_t + o : zero_ptr;
            activation_grad(act.gate, r_, da, n);
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) {
              T r = r_[j];
              T gsum = dyb[j] + dhb[j];
              T gt = gsum * (T(1) - d[j]);
              da[j] = drh[j] * hb[j] * da[j];
              next[j] = gt * z_[j] + gsum * d[j];
              drh[j] *= r;
            }
            if (!m_rec) {
              RNNLAB_SIMD
              for (int64_t j = 0; j < n; ++j) next[j] += drh[j];
            }
          }
        }
        barrier(nt);  // the product needs all of da_r
        if (!m_rec) {
          W_a.apply_units(B, dgx, 3 * H, true, dhn_ptr, H, u.j0, u.j1);  // += [da_r, da_z] W_hrz
        } else {  // += (d(r∘h̄)∘r + [da_r, da_z] W_hrz)∘m
          W_a.apply_units(B, dgx, 3 * H, true, drh_ptr, H, u.j0, u.j1);
          for (int64_t b = 0; b < B && n > 0; ++b) {
            const int64_t o = b * H + u.j0;
            if (run && !run[b]) continue;
            T* __restrict next = dhn_ptr + o;
            const T* __restrict prod = drh_ptr + o;
            const T* __restrict m = m_rec + o;
            RNNLAB_SIMD
            for (int64_t j = 0; j < n; ++j) next[j] += prod[j] * m[j];
          }
        }
      }
      std::swap(dh_ptr, dhn_ptr);
    }
  });
  Tensor dh0 = Tn % 2 == 0 ? dh : dh_next;

  Tensor dgx2 = dGX.view({Tn * B, 3 * H});
  Tensor dx = need_dx ? matmul<T>(dgx2, false, w_ih, false).view({Tn, B, I}) : Tensor();
  Tensor h_read2 = flat(m_rec ? *hin : hs.narrow(0, 0, Tn));  // what W_hh multiplied
  Tensor dw_ih, dw_hh;
  if (reset_after) {
    dw_ih = weight_grads<T>(dgx2, {flat(x)})[0];
    dw_hh = weight_grads<T>(dGH.view({Tn * B, 3 * H}), {h_read2})[0];
  } else {  // one pre-activation gradient for both; rows n of W_hh see r∘h̄_{t-1}
    dw_ih = weight_grads<T>(dgx2, {flat(x)})[0];
    dw_hh = at::cat({weight_grads<T>(dgx2.narrow(1, 0, 2 * H), {h_read2})[0],
                     weight_grads<T>(dgx2.narrow(1, 2 * H, H), {flat(aux)})[0]});
  }
  Tensor db_ih = has_bias ? dgx2.sum(0) : Tensor();
  Tensor db_hh = has_bias ? (reset_after ? dGH.view({Tn * B, 3 * H}).sum(0) : db_ih) : Tensor();
  return {dx, dh0, dw_ih, dw_hh, db_ih, db_hh};
}

}  // namespace

std::vector<Tensor> gru_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                const Tensor& w_hh, const c10::optional<Tensor>& b_ih,
                                const c10::optional<Tensor>& b_hh,
                                const c10::optional<Tensor>& mask,
                                const c10::optional<Tensor>& rec,
                                const c10::optional<Tensor>& zone, bool reset_after,
                                c10::ArrayRef<double> acts) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_gru_forward", [&] {
    out = gru_forward_impl<scalar_t>(x, h0, w_ih, w_hh, b_ih, b_hh, mask, rec, zone,
                                     reset_after, acts);
  });
  return out;
}

std::vector<Tensor> gru_backward(const Tensor& dy, const Tensor& dh_T, const Tensor& x,
                                 const Tensor& w_ih, const Tensor& w_hh,
                                 const c10::optional<Tensor>& mask,
                                 const c10::optional<Tensor>& rec,
                                 const c10::optional<Tensor>& zone, const Tensor& gates,
                                 const Tensor& hs, const Tensor& aux,
                                 const c10::optional<Tensor>& hin, bool reset_after,
                                 c10::ArrayRef<double> acts, bool need_dx, bool has_bias) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_gru_backward", [&] {
    out = gru_backward_impl<scalar_t>(dy, dh_T, x, w_ih, w_hh, mask, rec, zone, gates, hs, aux,
                                      hin, reset_after, acts, need_dx, has_bias);
  });
  return out;
}

}  // namespace rnnlab
