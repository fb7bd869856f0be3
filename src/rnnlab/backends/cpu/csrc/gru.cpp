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
// h_t = h̃_t + d_t∘(h_{t-1} - h̃_t) (regularisers.h). The point-wise cell is gru_cell.h's.
#include "common.h"
#include "gru_cell.h"
#include "regularisers.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/sum.h>

#include <memory>

namespace rnnlab {

namespace {

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
  const bool plain = default_acts(act) && !z_h;
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
    const T* __restrict bi = bi_ptr + u.j0;  // the biases of this thread's units
    const T* __restrict bh = bh_ptr + u.j0;
    // a running row's end of step: zoneout, the output, the next product's input m∘h_t
    auto finish_row = [&](int64_t t, int64_t o) {
      T* h_new = h_ptr + (t + 1) * B * H + o;
      if (z_h) zone_row(h_new, h_new, h_new - B * H, z_h + t * B * H + o, n);
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
          if (run && !run[b]) {
            carry_row(t, o);
            std::memset(aux_t + o, 0, n * sizeof(T));
            next_input(t, o);
            continue;
          }
          gru_row_reset_after(g + b * 3 * H + u.j0, gh_ptr + b * 3 * H + u.j0, bi, bh,
                              h_prev + o, aux_t + o, h_new + o, n, H, act, plain);
          finish_row(t, o);
          next_input(t, o);
        }
      } else {
        W_a.apply_units(B, h_read, H, true, g, 3 * H, u.j0, u.j1);  // G_rz += h̄ W_hrzᵀ
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          gru_row_gates(g + b * 3 * H + u.j0, bi, bh, h_read + o, aux_t + o, n, H, act, plain);
        }
        barrier(nt);  // the n rows need all of r∘h̄
        // G_n += (r∘h̄) W_hnᵀ
        W_n->apply_units(B, aux_t, H, true, g + 2 * H, 3 * H, u.j0, u.j1);
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          if (run && !run[b]) {  // (r∘h̄ of a padded row meets a zero gradient in the backward)
            carry_row(t, o);
            next_input(t, o);
            continue;
          }
          gru_row_candidate(g + b * 3 * H + u.j0, bi, bh, h_prev + o, h_new + o, n, H, act,
                            plain);
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
  const bool plain = default_acts(act) && !z_h;
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
    // recurrent dropout: dh_{t-1} += (the step's product, in d_rh)∘m on this thread's units
    auto add_masked_product = [&] {
      for (int64_t b = 0; b < B && n > 0; ++b) {
        const int64_t o = b * H + u.j0;
        T* __restrict next = dhn_ptr + o;
        const T* __restrict prod = drh_ptr + o;
        const T* __restrict m = m_rec + o;
        RNNLAB_SIMD
        for (int64_t j = 0; j < n; ++j) next[j] += prod[j] * m[j];
      }
    };
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
      if (reset_after) {
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          T* dxr = dgx + b * 3 * H + u.j0;
          T* dhr = dgh + b * 3 * H + u.j0;
          if (run && !run[b]) {  // no gradient enters a padded step; dh passes through
            for (int k = 0; k < 3; ++k) {
              std::memset(dxr + k * H, 0, n * sizeof(T));
              std::memset(dhr + k * H, 0, n * sizeof(T));
            }
            std::memcpy(dhn_ptr + o, dh_ptr + o, n * sizeof(T));
            continue;
          }
          gru_backward_row_reset_after(g + b * 3 * H + u.j0, h_prev + o, aux_t + o, dy_t + o,
                                       dh_ptr + o, zone_t ? zone_t + o : zero_ptr, dxr, dhr,
                                       dhn_ptr + o, n, H, act, plain);
        }
        barrier(nt);  // the product needs all of dgh
        if (!m_rec) {
          W_a.apply_units(B, dgh, 3 * H, true, dhn_ptr, H, u.j0, u.j1);  // += dgh W_hh
        } else {  // += (dgh W_hh)∘m
          W_a.apply_units(B, dgh, 3 * H, false, drh_ptr, H, u.j0, u.j1);
          add_masked_product();
        }
      } else {
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          T* da = dgx + b * 3 * H + u.j0;
          if (run && !run[b]) {
            for (int k = 0; k < 3; ++k) std::memset(da + k * H, 0, n * sizeof(T));
            continue;
          }
          gru_backward_row_zn(g + b * 3 * H + u.j0, h_prev + o, dy_t + o, dh_ptr + o,
                              zone_t ? zone_t + o : zero_ptr, da, n, H, act, plain);
        }
        barrier(nt);  // d(r∘h̄) needs all of da_n
        W_n->apply_units(B, dgx + 2 * H, 3 * H, false, drh_ptr, H, u.j0, u.j1);
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          if (run && !run[b]) {
            std::memcpy(dhn_ptr + o, dh_ptr + o, n * sizeof(T));
            continue;
          }
          gru_backward_row_r(g + b * 3 * H + u.j0, h_read + o, dy_t + o, dh_ptr + o,
                             zone_t ? zone_t + o : zero_ptr, drh_ptr + o, dgx + b * 3 * H + u.j0,
                             dhn_ptr + o, n, H, act, plain, m_rec != nullptr);
        }
        barrier(nt);  // the product needs all of da_r
        if (!m_rec) {
          W_a.apply_units(B, dgx, 3 * H, true, dhn_ptr, H, u.j0, u.j1);  // += [da_r, da_z] W_hrz
        } else {  // += (d(r∘h̄)∘r + [da_r, da_z] W_hrz)∘m
          W_a.apply_units(B, dgx, 3 * H, true, drh_ptr, H, u.j0, u.j1);
          add_masked_product();
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
