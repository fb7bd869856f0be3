// Elman RNN (tanh or ReLU) forward and hand-derived BPTT (the math of rnnlab/bptt/rnn.py), one
// direction of one layer. Forward: a = x W_ihᵀ for all steps (one GEMM), per step
// a_t += h̄_{t-1} W_hhᵀ and h_t = φ(a_t + b) in one pass. Backward: per step
// da_t = (dy_t + dh)∘φ'(h_t), dh_{t-1} = da_t W_hh; weight gradients over all T·B rows.
// Regularisers (regularisers.h): recurrent dropout h̄ = m∘h_{t-1} (kept for dW_hh), zoneout
// h_t = h̃_t + d_t∘(h_{t-1} - h̃_t) (h̃ kept: φ' reads it); then
// da_t = (dy_t + dh)∘(1-d_t)∘φ'(h̃_t) and dh_{t-1} = (da_t W_hh)∘m + (dy_t + dh)∘d_t.
#include "common.h"
#include "regularisers.h"

#include <ATen/ops/sum.h>

namespace rnnlab {

namespace {

template <typename T>
std::vector<Tensor> rnn_forward_impl(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                     const Tensor& w_hh, const c10::optional<Tensor>& bias,
                                     const c10::optional<Tensor>& mask,
                                     const c10::optional<Tensor>& rec,
                                     const c10::optional<Tensor>& zone, bool relu) {
  const int64_t Tn = x.size(0), B = x.size(1), H = w_hh.size(0);
  auto opts = x.options();
  const T* m_rec = mask_data<T>(rec, x, "rec", B * H);
  const T* z_h = mask_data<T>(zone, x, "zone", Tn * B * H);
  Tensor hin = recurrent_inputs(h0, rec, Tn);  // h̄_{t-1} = m∘h_{t-1}
  Tensor htil = z_h ? saved_empty({Tn, B, H}, opts) : Tensor();  // h̃_t, before zoneout
  T* hin_ptr = m_rec ? hin.data_ptr<T>() : nullptr;
  T* ht_ptr = z_h ? htil.data_ptr<T>() : nullptr;
  Tensor A = scratch(kGradA, {Tn * B, H}, opts);  // pre-activations, not kept
  matmul<T>(flat(x), false, w_ih, true, A);
  Tensor b_all = has(bias) ? bias->contiguous() : at::zeros({H}, opts);
  Tensor hs = saved_empty({Tn + 1, B, H}, opts);
  hs[0].copy_(h0);
  Tensor y = at::empty({Tn, B, H}, opts);
  T* a_ptr = A.data_ptr<T>();
  T* h_ptr = hs.data_ptr<T>();
  T* y_ptr = y.data_ptr<T>();
  const T* b_ptr = b_all.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;
  StepWeight<T> W_hh(kStepW1, w_hh.data_ptr<T>(), H, /*trans=*/true, 1, H, H);

  team(team_size<T>(B * H * H, H), [&](int tid, int nt) {
    const Units u = unit_slice<T>(H, tid, nt);
    const int64_t n = u.j1 - u.j0;
    for (int64_t t = 0; t < Tn; ++t) {
      T* a = a_ptr + t * B * H;
      const T* h_prev = h_ptr + t * B * H;
      T* h_new = h_ptr + (t + 1) * B * H;
      T* y_t = y_ptr + t * B * H;
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      const T* h_read = m_rec ? hin_ptr + t * B * H : h_prev;
      W_hh.apply_units(B, h_read, H, true, a, H, u.j0, u.j1);  // a_t += h̄_{t-1} W_hhᵀ
      for (int64_t b = 0; b < B && n > 0; ++b) {
        const int64_t o = b * H + u.j0;
        if (run && !run[b]) {
          std::memcpy(h_new + o, h_prev + o, n * sizeof(T));
          std::memset(y_t + o, 0, n * sizeof(T));
          if (z_h) std::memset(ht_ptr + t * B * H + o, 0, n * sizeof(T));
          if (m_rec && t + 1 < Tn) mul_row(hin_ptr + (t + 1) * B * H + o, h_new + o, m_rec + o, n);
          continue;
        }
        T* __restrict hn = (z_h ? ht_ptr + t * B * H : h_new) + o;  // h̃_t
        const T* __restrict ab = a + o;
        const T* __restrict bb = b_ptr + u.j0;
        if (relu) {
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) {
            T v = ab[j] + bb[j];
            hn[j] = v > T(0) ? v : T(0);
          }
        } else {
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) hn[j] = tanh_(ab[j] + bb[j]);
        }
        if (z_h) zone_row(h_new + o, hn, h_prev + o, z_h + t * B * H + o, n);
        std::memcpy(y_t + o, h_new + o, n * sizeof(T));
        if (m_rec && t + 1 < Tn) mul_row(hin_ptr + (t + 1) * B * H + o, h_new + o, m_rec + o, n);
      }
      barrier(nt);  // the next step reads all of h_t
    }
  });
  return {y, hs[Tn].clone(), hs, hin, htil};
}

template <typename T>
std::vector<Tensor> rnn_backward_impl(const Tensor& dy, const Tensor& dh_T, const Tensor& x,
                                      const Tensor& w_ih, const Tensor& w_hh,
                                      const c10::optional<Tensor>& mask,
                                      const c10::optional<Tensor>& rec,
                                      const c10::optional<Tensor>& zone, const Tensor& hs,
                                      const c10::optional<Tensor>& hin,
                                      const c10::optional<Tensor>& htil, bool relu,
                                      bool need_dx, bool has_bias) {
  const int64_t Tn = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(0);
  auto opts = x.options();
  const T* m_rec = mask_data<T>(rec, x, "rec", B * H);
  const T* z_h = mask_data<T>(zone, x, "zone", Tn * B * H);
  const bool combine = has(mask) || m_rec || z_h;  // dh_{t-1} through a step buffer
  Tensor dA = scratch(kGradA, {Tn, B, H}, opts);
  Tensor dh = dh_T.clone();
  Tensor step = combine ? scratch(kRowsScratch, {B, H}, opts) : Tensor();
  T* da_ptr = dA.data_ptr<T>();
  T* dh_ptr = dh.data_ptr<T>();
  T* step_ptr = combine ? step.data_ptr<T>() : nullptr;
  const T* ht_ptr = z_h ? htil->data_ptr<T>() : nullptr;
  const T* dy_ptr = dy.data_ptr<T>();
  const T* h_ptr = hs.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;
  StepWeight<T> W_hh(kStepW1, w_hh.data_ptr<T>(), H, /*trans=*/false, 1, H, H);

  team(team_size<T>(B * H * H, H), [&](int tid, int nt) {
    const Units u = unit_slice<T>(H, tid, nt);
    const int64_t n = u.j1 - u.j0;
    for (int64_t t = Tn - 1; t >= 0; --t) {
      T* da = da_ptr + t * B * H;
      const T* h_t = z_h ? ht_ptr + t * B * H : h_ptr + (t + 1) * B * H;  // h̃_t
      const T* zone_t = z_h ? z_h + t * B * H : nullptr;
      const T* dy_t = dy_ptr + t * B * H;
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      for (int64_t b = 0; b < B && n > 0; ++b) {
        const int64_t o = b * H + u.j0;
        T* __restrict d = da + o;
        if (run && !run[b]) {
          std::memset(d, 0, n * sizeof(T));
          continue;
        }
        const T* __restrict h = h_t + o;
        const T* __restrict g = dy_t + o;
        const T* __restrict dhb = dh_ptr + o;
        if (relu) {
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) d[j] = h[j] > T(0) ? g[j] + dhb[j] : T(0);
        } else {
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) d[j] = (g[j] + dhb[j]) * (T(1) - h[j] * h[j]);
        }
        if (zone_t) {  // the share 1 - d_t of the gradient enters the step
          const T* __restrict zd = zone_t + o;
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) d[j] *= T(1) - zd[j];
        }
      }
      barrier(nt);  // dh_{t-1} needs all of da_t
      if (!combine) {
        W_hh.apply_units(B, da, H, false, dh_ptr, H, u.j0, u.j1);  // dh_{t-1} = da_t W_hh
      } else {  // running rows: dh = (da_t W_hh)∘m + (dy_t + dh)∘d_t; padded rows keep dh
        W_hh.apply_units(B, da, H, false, step_ptr, H, u.j0, u.j1);
        for (int64_t b = 0; b < B && n > 0; ++b) {
          const int64_t o = b * H + u.j0;
          if (run && !run[b]) continue;
          recurrent_grad_row(dh_ptr + o, step_ptr + o, dy_t + o, m_rec ? m_rec + o : nullptr,
                             zone_t ? zone_t + o : nullptr, n);
        }
      }
    }
  });
  Tensor dA2 = dA.view({Tn * B, H});
  Tensor dx = need_dx ? matmul<T>(dA2, false, w_ih, false).view({Tn, B, I}) : Tensor();
  Tensor h_read = m_rec ? *hin : hs.narrow(0, 0, Tn);  // what W_hh multiplied
  auto dws = weight_grads<T>(dA2, {flat(x), flat(h_read)});
  Tensor dw_ih = dws[0], dw_hh = dws[1];
  Tensor db = has_bias ? dA2.sum(0) : Tensor();
  return {dx, dh, dw_ih, dw_hh, db};
}

}  // namespace

std::vector<Tensor> rnn_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                const Tensor& w_hh, const c10::optional<Tensor>& bias,
                                const c10::optional<Tensor>& mask,
                                const c10::optional<Tensor>& rec,
                                const c10::optional<Tensor>& zone, bool relu) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_rnn_forward", [&] {
    out = rnn_forward_impl<scalar_t>(x, h0, w_ih, w_hh, bias, mask, rec, zone, relu);
  });
  return out;
}

std::vector<Tensor> rnn_backward(const Tensor& dy, const Tensor& dh_T, const Tensor& x,
                                 const Tensor& w_ih, const Tensor& w_hh,
                                 const c10::optional<Tensor>& mask,
                                 const c10::optional<Tensor>& rec,
                                 const c10::optional<Tensor>& zone, const Tensor& hs,
                                 const c10::optional<Tensor>& hin,
                                 const c10::optional<Tensor>& htil, bool relu, bool need_dx,
                                 bool has_bias) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_rnn_backward", [&] {
    out = rnn_backward_impl<scalar_t>(dy, dh_T, x, w_ih, w_hh, mask, rec, zone, hs, hin, htil,
                                      relu, need_dx, has_bias);
  });
  return out;
}

}  // namespace rnnlab
