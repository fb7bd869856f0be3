// SRU (Lei et al. 2018) forward and hand-derived BPTT (the math of rnnlab/bptt/sru.py), one
// direction of one layer. Every matrix product is the one input GEMM u = x W_ihᵀ (3H or 4H
// columns: x̃, the f and r pre-activations, and the highway input x' when I ≠ H); the time
// loop is element-wise only: per step and unit, f, r = σ(u + v∘c_{t-1} + b),
// c_t = x̃ + f∘(c_{t-1} - x̃) and h_t = x' + r∘(c_t - x'), all in one pass. The backward
// loop carries dc and writes du once; then dx = du W_ih and dW_ih = duᵀ x.
//
// Zoneout of c (regularisers.h): the update above gives c̃_t and the state is
// c_t = c̃_t + d_t∘(c_{t-1} - c̃_t), which h_t reads; in the backward the gradient reaching c_t
// sends dc∘d_t to c_{t-1} and dc∘(1-d_t) into the update.
#include "common.h"
#include "regularisers.h"

#include <ATen/ops/sum.h>

namespace rnnlab {

namespace {

// f(std::true_type{}) with zoneout, f(std::false_type{}) without: one loop, compiled twice.
template <typename F>
inline void with_zone(const void* zone, F&& f) {
  if (zone)
    f(std::true_type{});
  else
    f(std::false_type{});
}

template <typename T>
std::vector<Tensor> sru_forward_impl(const Tensor& x, const Tensor& c0, const Tensor& w_ih,
                                     const Tensor& w_c, const c10::optional<Tensor>& bias,
                                     const c10::optional<Tensor>& mask,
                                     const c10::optional<Tensor>& zone) {
  const int64_t Tn = x.size(0), B = x.size(1), I = x.size(2), H = w_c.size(1);
  const int64_t R = w_ih.size(0);  // 3H, or 4H with a highway projection
  const bool proj = R == 4 * H;
  auto opts = x.options();
  Tensor U = saved_empty({Tn, B, R}, opts);  // f, r replace a_f, a_r in place
  matmul<T>(flat(x), false, w_ih, true, U.view({Tn * B, R}));
  Tensor b_all = has(bias) ? bias->contiguous() : at::zeros({2 * H}, opts);
  Tensor cs = saved_empty({Tn + 1, B, H}, opts);
  cs[0].copy_(c0);
  Tensor y = at::empty({Tn, B, H}, opts);
  T* u_ptr = U.data_ptr<T>();
  T* c_ptr = cs.data_ptr<T>();
  T* y_ptr = y.data_ptr<T>();
  const T* x_ptr = x.data_ptr<T>();
  const T* v_ptr = w_c.data_ptr<T>();
  const T* b_ptr = b_all.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;
  const T* z_c = mask_data<T>(zone, x, "zone", Tn * B * H);
  (void)I;

  // rows are independent: split the batch over threads once for the whole loop
  auto rows = [&](int64_t b0, int64_t b1, auto zoned) {
    for (int64_t t = 0; t < Tn; ++t) {
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      for (int64_t b = b0; b < b1; ++b) {
        const T* __restrict cp = c_ptr + (t * B + b) * H;
        T* __restrict cn = c_ptr + ((t + 1) * B + b) * H;
        T* __restrict yb = y_ptr + (t * B + b) * H;
        if (run && !run[b]) {
          std::memcpy(cn, cp, H * sizeof(T));
          std::memset(yb, 0, H * sizeof(T));
          continue;
        }
        T* __restrict u = u_ptr + (t * B + b) * R;
        const T* __restrict xt = u;  // x̃
        T* __restrict uf = u + H;
        T* __restrict ur = u + 2 * H;
        const T* __restrict xh = proj ? u + 3 * H : x_ptr + (t * B + b) * H;  // x'
        const T* __restrict zd = zoned ? z_c + (t * B + b) * H : nullptr;
        RNNLAB_SIMD
        for (int64_t j = 0; j < H; ++j) {
          T c_old = cp[j];
          T f = sigmoid_(uf[j] + v_ptr[j] * c_old + b_ptr[j]);
          T r = sigmoid_(ur[j] + v_ptr[H + j] * c_old + b_ptr[H + j]);
          T c = xt[j] + f * (c_old - xt[j]);
          if constexpr (decltype(zoned)::value) c += zd[j] * (c_old - c);
          uf[j] = f;
          ur[j] = r;
          cn[j] = c;
          yb[j] = xh[j] + r * (c - xh[j]);
        }
      }
    }
  };
  const bool parallel = B > 1 && B * H * Tn >= (1 << 16) && at::get_num_threads() > 1;
  with_zone(z_c, [&](auto zoned) {
    if (parallel)
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) { rows(b0, b1, zoned); });
    else
      rows(0, B, zoned);
  });
  return {y, cs[Tn].clone(), U, cs};
}

template <typename T>
std::vector<Tensor> sru_backward_impl(const Tensor& dy, const Tensor& dc_T, const Tensor& x,
                                      const Tensor& w_ih, const Tensor& w_c,
                                      const c10::optional<Tensor>& mask,
                                      const c10::optional<Tensor>& zone, const Tensor& U,
                                      const Tensor& cs, bool need_dx, bool has_bias) {
  const int64_t Tn = x.size(0), B = x.size(1), I = x.size(2), H = w_c.size(1);
  const int64_t R = w_ih.size(0);
  const bool proj = R == 4 * H;
  auto opts = x.options();
  Tensor dU = scratch(kGradA, {Tn, B, R}, opts);
  // without the projection x' = x: its gradient dy∘(1-r) goes straight into dx
  Tensor dx = need_dx ? at::empty({Tn, B, I}, opts) : Tensor();
  Tensor dc = dc_T.clone();
  Tensor sums = at::zeros({4, B, H}, opts);  // per row: Σ da_f c, Σ da_r c, Σ da_f, Σ da_r
  T* du_ptr = dU.data_ptr<T>();
  T* dx_ptr = need_dx ? dx.data_ptr<T>() : nullptr;
  T* dc_ptr = dc.data_ptr<T>();
  T* s_ptr = sums.data_ptr<T>();
  const T* dy_ptr = dy.data_ptr<T>();
  const T* u_ptr = U.data_ptr<T>();
  const T* c_ptr = cs.data_ptr<T>();
  const T* x_ptr = x.data_ptr<T>();
  const T* v_ptr = w_c.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;
  const T* z_c = mask_data<T>(zone, x, "zone", Tn * B * H);

  auto rows = [&](int64_t b0, int64_t b1, auto zoned) {
    for (int64_t t = Tn - 1; t >= 0; --t) {
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      for (int64_t b = b0; b < b1; ++b) {
        T* __restrict du = du_ptr + (t * B + b) * R;
        T* __restrict dxh = proj ? du + 3 * H : (dx_ptr ? dx_ptr + (t * B + b) * I : nullptr);
        if (run && !run[b]) {  // a padded step's output is the constant 0; dc passes through
          std::memset(du, 0, R * sizeof(T));
          if (dxh) std::memset(dxh, 0, H * sizeof(T));
          continue;
        }
        const T* __restrict u = u_ptr + (t * B + b) * R;
        const T* __restrict xt = u;
        const T* __restrict f_ = u + H;
        const T* __restrict r_ = u + 2 * H;
        const T* __restrict xh = proj ? u + 3 * H : x_ptr + (t * B + b) * H;
        const T* __restrict cp = c_ptr + (t * B + b) * H;
        const T* __restrict cn = c_ptr + ((t + 1) * B + b) * H;
        const T* __restrict g = dy_ptr + (t * B + b) * H;
        T* __restrict dcb = dc_ptr + b * H;
        T* __restrict s_vf = s_ptr + b * H;
        T* __restrict s_vr = s_ptr + (B + b) * H;
        T* __restrict s_bf = s_ptr + (2 * B + b) * H;
        T* __restrict s_br = s_ptr + (3 * B + b) * H;
        const T* __restrict zd = zoned ? z_c + (t * B + b) * H : nullptr;
        RNNLAB_SIMD
        for (int64_t j = 0; j < H; ++j) {
          T f = f_[j], r = r_[j], c_old = cp[j], c = cn[j];
          T da_r = g[j] * (c - xh[j]) * r * (T(1) - r);
          T dc_new = dcb[j] + g[j] * r;  // reaching c_t
          T keep = T(0);  // zoneout: the share d of it goes to c_{t-1} directly
          if constexpr (decltype(zoned)::value) {
            keep = dc_new * zd[j];
            dc_new -= keep;
          }
          T k_f = (c_old - xt[j]) * f * (T(1) - f);
          T da_f = dc_new * k_f;
          du[j] = dc_new * (T(1) - f);
          du[H + j] = da_f;
          du[2 * H + j] = da_r;
          dcb[j] = dc_new * (f + k_f * v_ptr[j]) + da_r * v_ptr[H + j] + keep;
          s_vf[j] += da_f * c_old;
          s_vr[j] += da_r * c_old;
          s_bf[j] += da_f;
          s_br[j] += da_r;
        }
        if (dxh) {
          RNNLAB_SIMD
          for (int64_t j = 0; j < H; ++j) dxh[j] = g[j] * (T(1) - r_[j]);
        }
      }
    }
  };
  const bool parallel = B > 1 && B * H * Tn >= (1 << 16) && at::get_num_threads() > 1;
  with_zone(z_c, [&](auto zoned) {
    if (parallel)
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) { rows(b0, b1, zoned); });
    else
      rows(0, B, zoned);
  });

  Tensor du2 = dU.view({Tn * B, R});
  if (need_dx) {
    if (proj)
      matmul<T>(du2, false, w_ih, false, dx.view({Tn * B, I}));
    else
      matmul<T>(du2, false, w_ih, false, dx.view({Tn * B, I}), /*accumulate=*/true);
  }
  Tensor dw_ih = weight_grads<T>(du2, {flat(x)})[0];
  Tensor s = sums.sum(1);  // (4, H)
  Tensor dw_c = s.narrow(0, 0, 2).contiguous();
  Tensor db = has_bias ? s.narrow(0, 2, 2).reshape({2 * H}) : Tensor();
  return {dx, dc, dw_ih, dw_c, db};
}

}  // namespace

std::vector<Tensor> sru_forward(const Tensor& x, const Tensor& c0, const Tensor& w_ih,
                                const Tensor& w_c, const c10::optional<Tensor>& bias,
                                const c10::optional<Tensor>& mask,
                                const c10::optional<Tensor>& zone) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_sru_forward", [&] {
    out = sru_forward_impl<scalar_t>(x, c0, w_ih, w_c, bias, mask, zone);
  });
  return out;
}

std::vector<Tensor> sru_backward(const Tensor& dy, const Tensor& dc_T, const Tensor& x,
                                 const Tensor& w_ih, const Tensor& w_c,
                                 const c10::optional<Tensor>& mask,
                                 const c10::optional<Tensor>& zone, const Tensor& U,
                                 const Tensor& cs, bool need_dx, bool has_bias) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_sru_backward", [&] {
    out = sru_backward_impl<scalar_t>(dy, dc_T, x, w_ih, w_c, mask, zone, U, cs, need_dx,
                                      has_bias);
  });
  return out;
}

}  // namespace rnnlab
