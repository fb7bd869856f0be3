// GRU forward and hand-derived BPTT (the math of rnnlab/bptt/gru.py), one direction of one
// layer, in torch's reset_after form and in the original one.
//
// reset_after: gx = x W_ihᵀ (all steps, one GEMM), per step gh = h_{t-1} W_hhᵀ, then one
//   fused pass: r, z = σ(gx + b_ih + gh + b_hh), n = tanh(gx_n + b_in + r∘(gh_n + b_hn)),
//   h_t = n + z∘(h_{t-1} - n). Saved: r, z, n, gh_n + b_hn, every h.
// original:    gx = x W_ihᵀ; per step a_rz = gx_rz + h_{t-1} W_hrzᵀ -> r, z; rh = r∘h_{t-1};
//   a_n = gx_n + rh W_hnᵀ -> n (two products per step). Saved: r, z, n, rh, every h.
// Backward: one fused pass per step writes the pre-activation gradients, the recurrent
// product(s) then give dh_{t-1}; weight gradients are GEMMs over all T·B rows.
#include "common.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/sum.h>

#include <memory>

namespace rnnlab {

namespace {

template <typename T>
std::vector<Tensor> gru_forward_impl(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                     const Tensor& w_hh, const c10::optional<Tensor>& b_ih,
                                     const c10::optional<Tensor>& b_hh,
                                     const c10::optional<Tensor>& mask, bool reset_after) {
  const int64_t Tn = x.size(0), B = x.size(1), H = w_hh.size(1);
  auto opts = x.options();
  Tensor G = saved_empty({Tn, B, 3 * H}, opts);  // gx, then r, z, n
  matmul<T>(flat(x), false, w_ih, true, G.view({Tn * B, 3 * H}));
  Tensor zeros = at::zeros({3 * H}, opts);
  Tensor bi = has(b_ih) ? b_ih->contiguous() : zeros;
  Tensor bh = has(b_hh) ? b_hh->contiguous() : zeros;
  Tensor hs = saved_empty({Tn + 1, B, H}, opts);
  hs[0].copy_(h0);
  Tensor y = at::empty({Tn, B, H}, opts);
  Tensor aux = saved_empty({Tn, B, H}, opts);  // gh_n + b_hn (reset_after) or r∘h_{t-1}
  Tensor gh = scratch(kRowsScratch, {B, 3 * H}, opts);

  T* g_ptr = G.data_ptr<T>();
  T* h_ptr = hs.data_ptr<T>();
  T* y_ptr = y.data_ptr<T>();
  T* aux_ptr = aux.data_ptr<T>();
  T* gh_ptr = gh.data_ptr<T>();
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
    for (int64_t t = 0; t < Tn; ++t) {
      T* g = g_ptr + t * B * 3 * H;
      const T* h_prev = h_ptr + t * B * H;
      T* h_new = h_ptr + (t + 1) * B * H;
      T* y_t = y_ptr + t * B * H;
      T* aux_t = aux_ptr + t * B * H;
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      if (reset_after) {
        W_a.apply_units(B, h_prev, H, false, gh_ptr, 3 * H, u.j0, u.j1);  // gh = h W_hhᵀ
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
          if (run && !run[b]) {  // padded step: carry the state, output 0
            std::memcpy(hnew, hp, n * sizeof(T));
            std::memset(y_t + o, 0, n * sizeof(T));
            std::memset(ghn, 0, n * sizeof(T));
            continue;
          }
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
          std::memcpy(y_t + o, hnew, n * sizeof(T));
        }
      } else {
        W_a.apply_units(B, h_prev, H, true, g, 3 * H, u.j0, u.j1);  // G_rz += h W_hrzᵀ
        for (int64_t b = 0; b < B && n > 0; ++b) {
          T* __restrict gr = g + b * 3 * H + u.j0;
          T* __restrict gz = gr + H;
          const T* __restrict hp = h_prev + b * H + u.j0;
          T* __restrict rh = aux_t + b * H + u.j0;
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) {
            T r = sigmoid_(gr[j] + bir[j] + bhr[j]);
            gr[j] = r;
            gz[j] = sigmoid_(gz[j] + biz[j] + bhz[j]);
            rh[j] = r * hp[j];
          }
        }
        barrier(nt);  // the n rows need all of r∘h
        // G_n += (r∘h) W_hnᵀ
        W_n->apply_units(B, aux_t, H, true, g + 2 * H, 3 * H, u.j0, u.j1);
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          const T* __restrict gz = g + b * 3 * H + H + u.j0;
          T* __restrict gn = g + b * 3 * H + 2 * H + u.j0;
          const T* __restrict hp = h_prev + o;
          T* __restrict hnew = h_new + o;
          if (run && !run[b]) {
            std::memcpy(hnew, hp, n * sizeof(T));
            std::memset(y_t + o, 0, n * sizeof(T));
            continue;  // (r∘h of a padded row meets a zero gradient in the backward)
          }
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) {
            T nn = tanh_(gn[j] + bin[j] + bhn[j]);
            gn[j] = nn;
            hnew[j] = nn + gz[j] * (hp[j] - nn);
          }
          std::memcpy(y_t + o, hnew, n * sizeof(T));
        }
      }
      barrier(nt);  // the next step reads all of h_t
    }
  });
  return {y, hs[Tn].clone(), G, hs, aux};
}

template <typename T>
std::vector<Tensor> gru_backward_impl(const Tensor& dy, const Tensor& dh_T, const Tensor& x,
                                      const Tensor& w_ih, const Tensor& w_hh,
                                      const c10::optional<Tensor>& mask, const Tensor& gates,
                                      const Tensor& hs, const Tensor& aux, bool reset_after,
                                      bool need_dx, bool has_bias) {
  const int64_t Tn = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1);
  auto opts = x.options();
  // reset_after: dGX = [da_r, da_z, da_n], dGH = [da_r, da_z, da_n∘r]; original: one dA
  Tensor dGX = scratch(kGradA, {Tn, B, 3 * H}, opts);
  Tensor dGH = reset_after ? scratch(kGradOut, {Tn, B, 3 * H}, opts) : dGX;
  Tensor dh = dh_T.clone();
  Tensor dh_next = at::empty({B, H}, opts);
  Tensor d_rh = reset_after ? Tensor() : scratch(kRowsScratch, {B, H}, opts);

  T* dgx_ptr = dGX.data_ptr<T>();
  T* dgh_ptr = dGH.data_ptr<T>();
  T* const buf0 = dh.data_ptr<T>();
  T* const buf1 = dh_next.data_ptr<T>();
  T* drh_ptr = reset_after ? nullptr : d_rh.data_ptr<T>();
  const T* dy_ptr = dy.data_ptr<T>();
  const T* g_ptr = gates.data_ptr<T>();
  const T* h_ptr = hs.data_ptr<T>();
  const T* aux_ptr = aux.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;

  const T* w = w_hh.data_ptr<T>();
  // dh_{t-1} += dgh W_hh (reset_after) or [da_r, da_z] W_hrz; original also d(r∘h) = da_n W_hn
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
      const T* dy_t = dy_ptr + t * B * H;
      const T* aux_t = aux_ptr + t * B * H;
      T* dgx = dgx_ptr + t * B * 3 * H;
      T* dgh = dgh_ptr + t * B * 3 * H;
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
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
        }
        barrier(nt);  // the product needs all of dgh
        W_a.apply_units(B, dgh, 3 * H, true, dhn_ptr, H, u.j0, u.j1);  // += dgh W_hh
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
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) {
            T z = z_[j], nn = n_[j];
            T gsum = dyb[j] + dhb[j];
            da[2 * H + j] = gsum * (T(1) - z) * (T(1) - nn * nn);
            da[H + j] = gsum * (hp[j] - nn) * z * (T(1) - z);
          }
        }
        barrier(nt);  // d(r∘h) needs all of da_n
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
          const T* __restrict hp = h_prev + o;
          const T* __restrict dyb = dy_t + o;
          const T* __restrict drh = drh_ptr + o;
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) {
            T r = r_[j];
            T gsum = dyb[j] + dhb[j];
            da[j] = drh[j] * hp[j] * r * (T(1) - r);
            next[j] = gsum * z_[j] + drh[j] * r;
          }
        }
        barrier(nt);  // the product needs all of da_r
        W_a.apply_units(B, dgx, 3 * H, true, dhn_ptr, H, u.j0, u.j1);  // += [da_r, da_z] W_hrz
      }
      std::swap(dh_ptr, dhn_ptr);
    }
  });
  Tensor dh0 = Tn % 2 == 0 ? dh : dh_next;

  Tensor dgx2 = dGX.view({Tn * B, 3 * H});
  Tensor dx = need_dx ? matmul<T>(dgx2, false, w_ih, false).view({Tn, B, I}) : Tensor();
  Tensor h_prev2 = flat(hs.narrow(0, 0, Tn));
  Tensor dw_ih, dw_hh;
  if (reset_after) {
    dw_ih = weight_grads<T>(dgx2, {flat(x)})[0];
    dw_hh = weight_grads<T>(dGH.view({Tn * B, 3 * H}), {h_prev2})[0];
  } else {  // one pre-activation gradient for both; rows n of W_hh see r∘h_{t-1}
    dw_ih = weight_grads<T>(dgx2, {flat(x)})[0];
    dw_hh = at::cat({weight_grads<T>(dgx2.narrow(1, 0, 2 * H), {h_prev2})[0],
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
                                const c10::optional<Tensor>& mask, bool reset_after) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_gru_forward", [&] {
    out = gru_forward_impl<scalar_t>(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reset_after);
  });
  return out;
}

std::vector<Tensor> gru_backward(const Tensor& dy, const Tensor& dh_T, const Tensor& x,
                                 const Tensor& w_ih, const Tensor& w_hh,
                                 const c10::optional<Tensor>& mask, const Tensor& gates,
                                 const Tensor& hs, const Tensor& aux, bool reset_after,
                                 bool need_dx, bool has_bias) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_gru_backward", [&] {
    out = gru_backward_impl<scalar_t>(dy, dh_T, x, w_ih, w_hh, mask, gates, hs, aux,
                                      reset_after, need_dx, has_bias);
  });
  return out;
}

}  // namespace rnnlab
