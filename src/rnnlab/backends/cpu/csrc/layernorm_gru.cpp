// Layer-normalised GRU forward and hand-derived BPTT (the math of
// rnnlab/bptt/layernorm_gru.py, torch's reset_after form), one direction of one layer, with its
// options: the gate and candidate activations (activations.h), recurrent dropout m (B, H) and
// zoneout keep weights d (T, B, H).
//
// Forward: V = x W_ihᵀ for all steps in one GEMM, normalised row by row into v̂ and the gate
// buffer G = gx = v̂∘γ_ih + b_ih. Per step, a team of threads (common.h), each owning some
// batch rows, or -- for a small batch -- some hidden units of every gate of every row, and
// then meeting at the barriers below (layernorm.h's Share):
//   1. u = (m∘h_{t-1}) W_hhᵀ, each thread its columns;                                barrier
//   2. the moments of each row of u (every thread sharing it, the whole row); û into Uhat;
//      gh = û∘γ_hh + b_hh (gh_n kept); r, z = σ(gx + gh); n = φ(gx_n + r∘gh_n);
//      h̃ = n + z∘(h_{t-1} - n); h_t = h̃ + d∘(h_{t-1} - h̃);                           barrier
// Padded steps carry the state and output 0.
//
// Backward, per step from T-1 down, each thread on its share (dh reaches h_t; the row sums of
// a shared row add up the threads' parts):
//   1. g = dy + dh, g̃ = g∘(1-d); da_n = g̃∘(1-z)∘φ'(n); da_z = g̃∘(h_{t-1} - n)∘σ'(z);
//      da_r = da_n∘gh_n∘σ'(r); dgx = [da_r, da_z, da_n]; dgh = [da_r, da_z, da_n∘r];
//      dû = dgh∘γ_hh, dv̂ = dgx∘γ_ih and their row sums; the sums of the bias and gain
//      gradients;                                                                      barrier
//   2. du = LN_backward(dû) into DU, dv = LN_backward(dv̂) in place of dgx;            barrier
//   3. dh_{t-1} = g̃∘z + g∘d + (du W_hh)∘m, each thread its columns.
// A missing mask reads ones (m) or zeros (d), so the loops have no branches. After the loop,
// over all T·B rows: dx = dv W_ih, dW_ih = dvᵀ x, dW_hh = duᵀ (m∘h_{t-1}).
#include "layernorm.h"

#include <vector>

namespace rnnlab {

namespace {

template <typename T>
std::vector<Tensor> forward_impl(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                 const Tensor& w_hh, const c10::optional<Tensor>& b_ih,
                                 const c10::optional<Tensor>& b_hh, const Tensor& ln_ih,
                                 const Tensor& ln_hh, const c10::optional<Tensor>& mask,
                                 c10::ArrayRef<double> acts, const c10::optional<Tensor>& rec,
                                 const c10::optional<Tensor>& zone) {
  const int64_t Tn = x.size(0), B = x.size(1), H = w_hh.size(1), G3 = 3 * H;
  auto opts = x.options();
  const auto act = activations_of<T>(acts, 2);
  const Act<T> gate = act[0], cand = act[1];
  const T* m_ptr = optional_data<T>(rec, x, "recurrent mask", B * H);
  const T* z_ptr = optional_data<T>(zone, x, "zone", Tn * B * H);

  Tensor Vhat = saved_empty({Tn, B, G3}, opts);  // W_ih x, normalised in place
  matmul<T>(flat(x), false, w_ih, true, Vhat.view({Tn * B, G3}));
  Tensor s_ih = saved_empty({Tn, B}, opts);
  Tensor G = saved_empty({Tn, B, G3}, opts);  // gx = v̂∘γ_ih + b_ih, then r, z, n
  Tensor bi = has(b_ih) ? b_ih->contiguous() : Tensor();
  layer_norm_rows<T>(Vhat.data_ptr<T>(), Tn * B, G3, ln_ih.data_ptr<T>(),
                     has(b_ih) ? bi.data_ptr<T>() : nullptr, s_ih.data_ptr<T>(),
                     G.data_ptr<T>());
  Tensor bh = has(b_hh) ? b_hh->contiguous() : at::zeros({G3}, opts);
  Tensor Uhat = saved_empty({Tn, B, G3}, opts);
  Tensor s_hh = saved_empty({Tn, B}, opts);
  Tensor ghn = saved_empty({Tn, B, H}, opts);  // gh_n = û_n∘γ_hh,n + b_hh,n
  Tensor hs = saved_empty({Tn + 1, B, H}, opts);
  hs[0].copy_(h0);
  Tensor hin = m_ptr ? saved_empty({Tn, B, H}, opts) : Tensor();  // m∘h_{t-1}
  if (m_ptr) hin[0].copy_(h0.mul(*rec));
  Tensor y = at::empty({Tn, B, H}, opts);
  Tensor u_raw = scratch(kRowsScratch, {B, G3}, opts);

  T* g_ptr = G.data_ptr<T>();
  T* uh_ptr = Uhat.data_ptr<T>();
  T* shh_ptr = s_hh.data_ptr<T>();
  T* ghn_ptr = ghn.data_ptr<T>();
  T* h_ptr = hs.data_ptr<T>();
  T* hin_ptr = m_ptr ? hin.data_ptr<T>() : nullptr;
  T* y_ptr = y.data_ptr<T>();
  T* ur_ptr = u_raw.data_ptr<T>();
  const T* g_hh = ln_hh.data_ptr<T>();
  const T* bh_ptr = bh.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;

  StepWeight<T> W_hh(kStepW1, w_hh.data_ptr<T>(), H, /*trans=*/true, 3, H, H);
  team(team_size<T>(B * G3 * H, H), [&](int tid, int nt) {
    const Share u = share_of<T>(B, H, tid, nt);
    const int64_t n = u.j1 - u.j0, rows = u.b1 - u.b0;
    for (int64_t t = 0; t < Tn; ++t) {
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      const T* h_prev = h_ptr + t * B * H;
      const T* h_in = hin_ptr ? hin_ptr + t * B * H : h_prev;
      W_hh.apply_units(rows, h_in + u.b0 * H, H, false, ur_ptr + u.b0 * G3, G3, u.j0,
                       u.j1);  // u = h̄ W_hhᵀ
      u.sync(nt);
      for (int64_t b = u.b0; b < u.b1; ++b) {
        const int64_t row = t * B + b, o = b * H + u.j0;
        const T* __restrict hp = h_prev + o;
        T* __restrict hn = h_ptr + (t + 1) * B * H + o;
        T* __restrict yt = y_ptr + row * H + u.j0;
        if (run && !run[b]) {  // padded step: carry the state, output 0
          std::memcpy(hn, hp, n * sizeof(T));
          std::memset(yt, 0, n * sizeof(T));
        } else {
          const T* ur = ur_ptr + b * G3;
          T mean, rstd;
          row_moments(ur, G3, mean, rstd);
          if (u.rank == 0) shh_ptr[row] = rstd;
          T* g = g_ptr + row * G3;
          T* uh = uh_ptr + row * G3;
          for (int k = 0; k < 2; ++k) {  // r, z: a = gx + û∘γ_hh + b_hh
            const int64_t c0 = k * H + u.j0;
            RNNLAB_SIMD
            for (int64_t j = c0; j < c0 + n; ++j) {
              const T v = (ur[j] - mean) * rstd;
              uh[j] = v;
              g[j] += v * g_hh[j] + bh_ptr[j];
            }
          }
          T* __restrict gr = g + u.j0;
          T* __restrict gz = gr + H;
          T* __restrict gn = gr + 2 * H;
          activate(gate, gr, gr, n);
          activate(gate, gz, gz, n);
          T* __restrict ghn_t = ghn_ptr + row * H + u.j0;
          const int64_t c0 = 2 * H + u.j0;
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) {  // n: gx_n + r∘gh_n
            const T v = (ur[c0 + j] - mean) * rstd;
            uh[c0 + j] = v;
            const T gh = v * g_hh[c0 + j] + bh_ptr[c0 + j];
            ghn_t[j] = gh;
            gn[j] += gr[j] * gh;
          }
          activate(cand, gn, gn, n);
          const T* __restrict d = z_ptr ? z_ptr + row * H + u.j0 : nullptr;
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) {
            T h = gn[j] + gz[j] * (hp[j] - gn[j]);
            if (d) h += d[j] * (hp[j] - h);
            hn[j] = h;
            yt[j] = h;
          }
        }
        if (m_ptr && t + 1 < Tn) masked_input(hin_ptr + (t + 1) * B * H + o, m_ptr + o, hn, n);
      }
      u.sync(nt);  // the next step reads all of h_t
    }
  });
  return {y, hs[Tn].clone(), G, Vhat, s_ih, Uhat, s_hh, ghn, hs, hin};
}

template <typename T>
std::vector<Tensor> backward_impl(const Tensor& dy, const Tensor& dh_T, const Tensor& x,
                                  const Tensor& w_ih, const Tensor& w_hh, const Tensor& ln_ih,
                                  const Tensor& ln_hh, const c10::optional<Tensor>& mask,
                                  c10::ArrayRef<double> acts, const c10::optional<Tensor>& rec,
                                  const c10::optional<Tensor>& zone, const Tensor& G,
                                  const Tensor& Vhat, const Tensor& s_ih, const Tensor& Uhat,
                                  const Tensor& s_hh, const Tensor& ghn, const Tensor& hs,
                                  const c10::optional<Tensor>& hin, bool need_dx,
                                  bool has_bias) {
  const int64_t Tn = x.size(0), B = x.size(1), H = w_hh.size(1), G3 = 3 * H;
  auto opts = x.options();
  const auto act = activations_of<T>(acts, 2);
  const Act<T> gate = act[0], cand = act[1];
  const T* m_ptr = optional_data<T>(rec, x, "recurrent mask", B * H);
  const T* z_ptr = optional_data<T>(zone, x, "zone", Tn * B * H);

  Tensor DGX = scratch(kGradA, {Tn, B, G3}, opts);  // dgx, then dv (step 2)
  Tensor DU = scratch(kGradOut, {Tn, B, G3}, opts);  // du
  Tensor dh = dh_T.clone();
  Tensor prod = at::empty({B, H}, opts);    // du W_hh of a step
  Tensor direct = at::empty({B, H}, opts);  // g̃∘z + g∘d of a step
  const int nth = team_size<T>(B * G3 * H, H);
  // per thread and row: (Σ d, Σ d∘ẑ) of the norms of u and v
  Tensor sums = at::zeros({2, nth, B, 2}, opts);
  // a missing mask reads ones (recurrent dropout) or zeros (zoneout): loops without branches
  Tensor ones = at::ones({H}, opts), zeros = at::zeros({H}, opts);
  // per thread: the sums over its rows of db_ih, db_hh, dγ_ih, dγ_hh (3H each)
  Tensor acc = at::zeros({nth, 4 * G3}, opts);

  T* dgx_ptr = DGX.data_ptr<T>();
  T* du_ptr = DU.data_ptr<T>();
  T* dh_ptr = dh.data_ptr<T>();
  T* prod_ptr = prod.data_ptr<T>();
  T* dir_ptr = direct.data_ptr<T>();
  T* sum_ptr = sums.data_ptr<T>();
  T* sum_v = sum_ptr + nth * B * 2;
  const T* one_ptr = ones.data_ptr<T>();
  const T* zero_ptr = zeros.data_ptr<T>();
  const T* sih_ptr = s_ih.data_ptr<T>();
  const T* g_ih = ln_ih.data_ptr<T>();
  const T* dy_ptr = dy.data_ptr<T>();
  const T* g_ptr = G.data_ptr<T>();
  const T* vh_ptr = Vhat.data_ptr<T>();
  const T* uh_ptr = Uhat.data_ptr<T>();
  const T* shh_ptr = s_hh.data_ptr<T>();
  const T* ghn_ptr = ghn.data_ptr<T>();
  const T* h_ptr = hs.data_ptr<T>();
  const T* g_hh = ln_hh.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;

  StepWeight<T> W_hh(kStepW1, w_hh.data_ptr<T>(), H, /*trans=*/false, 1, H, G3);  // du W_hh
  team(nth, [&](int tid, int nt) {
    const Share u = share_of<T>(B, H, tid, nt);
    const int64_t n = u.j1 - u.j0, rows = u.b1 - u.b0;
    T* dbih_ptr = acc.data_ptr<T>() + tid * 4 * G3;
    T* dbhh_ptr = dbih_ptr + G3;
    T* dgih_ptr = dbih_ptr + 2 * G3;
    T* dghh_ptr = dbih_ptr + 3 * G3;
    std::vector<T> k_buf(static_cast<size_t>(std::max<int64_t>(3 * n, 1)));  // σ'(r), σ'(z), φ'(n)
    for (int64_t t = Tn - 1; t >= 0; --t) {
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      for (int64_t b = u.b0; b < u.b1; ++b) {  // 1. the gate gradients, dû
        const int64_t row = t * B + b, o = b * H + u.j0;
        T* s = sum_ptr + (u.rank * B + b) * 2;
        T* sv = sum_v + (u.rank * B + b) * 2;
        s[0] = s[1] = sv[0] = sv[1] = T(0);
        T* dgx = dgx_ptr + row * G3;
        T* du = du_ptr + row * G3;
        if (run && !run[b]) {  // no gradient enters a padded step
          for (int k = 0; k < 3; ++k) {
            std::memset(dgx + k * H + u.j0, 0, n * sizeof(T));
            std::memset(du + k * H + u.j0, 0, n * sizeof(T));
          }
          continue;
        }
        const T* g = g_ptr + row * G3 + u.j0;
        T* k = k_buf.data();
        activation_grad(gate, g, k, n);
        activation_grad(gate, g + H, k + n, n);
        activation_grad(cand, g + 2 * H, k + 2 * n, n);
        const T* __restrict r_ = g;
        const T* __restrict z_ = g + H;
        const T* __restrict n_ = g + 2 * H;
        const T* __restrict kr = k;
        const T* __restrict kz = k + n;
        const T* __restrict kn = k + 2 * n;
        const T* __restrict hp = h_ptr + t * B * H + o;
        const T* __restrict dyt = dy_ptr + row * H + u.j0;
        const T* __restrict dhb = dh_ptr + o;
        const T* __restrict d = z_ptr ? z_ptr + row * H + u.j0 : zero_ptr + u.j0;
        const T* __restrict gh_n = ghn_ptr + row * H + u.j0;
        T* __restrict dir = dir_ptr + o;
        T* __restrict dxr = dgx + u.j0;
        T* __restrict dur = du + u.j0;
        RNNLAB_SIMD
        for (int64_t j = 0; j < n; ++j) {
          const T gs = dyt[j] + dhb[j];
          const T gt = gs * (T(1) - d[j]);
          const T da_n = gt * (T(1) - z_[j]) * kn[j];
          const T da_z = gt * (hp[j] - n_[j]) * kz[j];
          const T da_r = da_n * gh_n[j] * kr[j];
          dxr[j] = da_r;
          dxr[H + j] = da_z;
          dxr[2 * H + j] = da_n;
          dur[j] = da_r;  // dgh, turned into dû below
          dur[H + j] = da_z;
          dur[2 * H + j] = da_n * r_[j];
          dir[j] = gt * z_[j] + gs * d[j];
        }
        const T* vh = vh_ptr + row * G3;
        const T* uh = uh_ptr + row * G3;
        for (int kb = 0; kb < 3; ++kb) {
          const int64_t c0 = kb * H + u.j0;
          RNNLAB_SIMD
          for (int64_t j = c0; j < c0 + n; ++j) {
            dbih_ptr[j] += dgx[j];
            dgih_ptr[j] += dgx[j] * vh[j];
            dbhh_ptr[j] += du[j];
            dghh_ptr[j] += du[j] * uh[j];
            du[j] *= g_hh[j];  // dû and dv̂: normalised back in 2.
            dgx[j] *= g_ih[j];
          }
        }
        block_backward_sums<3>(du, uh, H, u.j0, n, s);
        block_backward_sums<3>(dgx, vh, H, u.j0, n, sv);
      }
      u.sync(nt);
      for (int64_t b = u.b0; b < u.b1; ++b) {  // 2. du = LN_backward(dû), dv = LN_backward(dv̂)
        if (run && !run[b]) continue;
        const int64_t row = t * B + b;
        T mu[2], mv[2];
        row_means(sum_ptr, u.sharing, B, b, G3, mu);
        row_means(sum_v, u.sharing, B, b, G3, mv);
        block_backward_apply<3>(du_ptr + row * G3, uh_ptr + row * G3, H, u.j0, n, mu,
                                shh_ptr[row]);
        block_backward_apply<3>(dgx_ptr + row * G3, vh_ptr + row * G3, H, u.j0, n, mv,
                                sih_ptr[row]);
      }
      u.sync(nt);  // the product needs every column of du
      W_hh.apply_units(rows, du_ptr + (t * B + u.b0) * G3, G3, false, prod_ptr + u.b0 * H, H,
                       u.j0, u.j1);
      for (int64_t b = u.b0; b < u.b1; ++b) {  // 3. dh_{t-1} = g̃∘z + g∘d + (du W_hh)∘m
        if (run && !run[b]) continue;  // dh passes through a padded step
        const int64_t o = b * H + u.j0;
        const T* __restrict p = prod_ptr + o;
        const T* __restrict m = m_ptr ? m_ptr + o : one_ptr + u.j0;
        const T* __restrict dir = dir_ptr + o;
        T* __restrict dhb = dh_ptr + o;
        RNNLAB_SIMD
        for (int64_t j = 0; j < n; ++j) dhb[j] = dir[j] + p[j] * m[j];
      }
    }
  });

  const InputGrads in = input_grads<T>(DGX, DU, x, w_ih, hs, hin, need_dx);
  Tensor sum = acc.sum(0);
  return {in.dx,
          dh,
          in.dw_ih,
          in.dw_hh,
          has_bias ? sum.narrow(0, 0, G3) : Tensor(),
          has_bias ? sum.narrow(0, G3, G3) : Tensor(),
          sum.narrow(0, 2 * G3, G3),
          sum.narrow(0, 3 * G3, G3)};
}

}  // namespace

std::vector<Tensor> layernorm_gru_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                          const Tensor& w_hh, const c10::optional<Tensor>& b_ih,
                                          const c10::optional<Tensor>& b_hh, const Tensor& ln_ih,
                                          const Tensor& ln_hh, const c10::optional<Tensor>& mask,
                                          c10::ArrayRef<double> acts,
                                          const c10::optional<Tensor>& rec,
                                          const c10::optional<Tensor>& zone) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_layernorm_gru_forward", [&] {
    out = forward_impl<scalar_t>(x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, mask, acts, rec,
                                 zone);
  });
  return out;
}

std::vector<Tensor> layernorm_gru_backward(
    const Tensor& dy, const Tensor& dh_T, const Tensor& x, const Tensor& w_ih,
    const Tensor& w_hh, const Tensor& ln_ih, const Tensor& ln_hh,
    const c10::optional<Tensor>& mask, c10::ArrayRef<double> acts,
    const c10::optional<Tensor>& rec, const c10::optional<Tensor>& zone, const Tensor& G,
    const Tensor& Vhat, const Tensor& s_ih, const Tensor& Uhat, const Tensor& s_hh,
    const Tensor& ghn, const Tensor& hs, const c10::optional<Tensor>& hin, bool need_dx,
    bool has_bias) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_layernorm_gru_backward", [&] {
    out = backward_impl<scalar_t>(dy, dh_T, x, w_ih, w_hh, ln_ih, ln_hh, mask, acts, rec, zone,
                                  G, Vhat, s_ih, Uhat, s_hh, ghn, hs, hin, need_dx, has_bias);
  });
  return out;
}

}  // namespace rnnlab
