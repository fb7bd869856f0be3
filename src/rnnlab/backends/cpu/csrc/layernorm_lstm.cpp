// Layer-normalised LSTM forward and hand-derived BPTT (the math of
// rnnlab/bptt/layernorm_lstm.py), one direction of one layer, with its options: the gate,
// candidate and output activations (activations.h), recurrent dropout m (B, H) and zoneout
// keep weights d^h, d^c (T, B, H).
//
// Forward: P = x W_ihᵀ for all steps in one GEMM, normalised row by row into p̂ and the gate
// buffer G = p̂∘γ_ih + b. Per step, a team of threads (common.h), each owning some batch rows,
// or -- for a small batch -- some hidden units of every gate of every row, and then meeting at
// the barriers below (layernorm.h's Share):
//   1. q = (m∘h_{t-1}) W_hhᵀ, each thread its columns;                                barrier
//   2. the moments of each row of q (every thread sharing it, the whole row); q̂ into Qhat;
//      the gates i, f, g, o = φ(q̂∘γ_hh + G) into G; c̃ = f∘c_{t-1} + i∘g;             barrier
//   3. the moments of c̃; ĉ into Chat; φ(n) = φ(ĉ∘γ_c + β_c) into PhiN; h̃ = o∘φ(n);
//      c_t = c̃ + d^c∘(c_{t-1} - c̃), h_t = h̃ + d^h∘(h_{t-1} - h̃);                    barrier
// Padded steps carry the state and output 0.
//
// Backward, per step from T-1 down, each thread on its share (dh, dc reach h_t, c_t; the row
// sums of a shared row add up the threads' parts):
//   1. g = dy + dh, kept share k_h = g∘d^h, g -= k_h; da_o = g∘φ(n)∘σ'(o);
//      dn = g∘o∘φ'(n); dĉ = dn∘γ_c and its row sums;                                 barrier
//   2. dc̃ = dc∘(1-d^c) + LN_backward(dĉ); da_i, da_f, da_g; dc_{t-1} = dc̃∘f + dc∘d^c;
//      dû = da∘γ_hh, dp̂ = da∘γ_ih and their row sums; the sums of db, dγ_ih, dγ_hh, dγ_c,
//      dβ_c;                                                                           barrier
//   3. dq = LN_backward(dû) into DQ, dp = LN_backward(dp̂) in place of da;             barrier
//   4. dh_{t-1} = (dq W_hh)∘m + k_h, each thread its columns.
// A missing mask reads ones (m) or zeros (d), so the loops have no branches. After the loop,
// over all T·B rows: dx = dp W_ih, dW_ih = dpᵀ x, dW_hh = dqᵀ (m∘h_{t-1}).
#include "layernorm.h"

#include <vector>

namespace rnnlab {

namespace {

// One gate block of a row: q̂ = (q - mean)·rstd into qh, a = q̂∘γ_hh + G, and into G the
// activation of code K of a (K < 0: a itself, activated later by activate()).
template <int K, typename T>
inline void gate_block(const T* __restrict q, T* __restrict qh, T* __restrict g,
                       const T* __restrict gamma, T mean, T rstd, int64_t n) {
  RNNLAB_SIMD
  for (int64_t j = 0; j < n; ++j) {
    const T v = (q[j] - mean) * rstd;
    qh[j] = v;
    const T a = g[j] + v * gamma[j];
    if constexpr (K >= 0)
      g[j] = act_apply<K>(a, T(0), T(0));
    else
      g[j] = a;
  }
}

template <typename T>
std::vector<Tensor> forward_impl(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_ih, const Tensor& w_hh,
                                 const c10::optional<Tensor>& bias, const Tensor& ln_ih,
                                 const Tensor& ln_hh, const Tensor& ln_c, const Tensor& ln_c_bias,
                                 const c10::optional<Tensor>& mask, c10::ArrayRef<double> acts,
                                 const c10::optional<Tensor>& rec,
                                 const c10::optional<Tensor>& zone_h,
                                 const c10::optional<Tensor>& zone_c) {
  const int64_t Tn = x.size(0), B = x.size(1), H = w_hh.size(1), G4 = 4 * H;
  auto opts = x.options();
  const auto act = activations_of<T>(acts, 3);
  const Act<T> gate = act[0], cand = act[1], out_act = act[2];
  const T* m_ptr = optional_data<T>(rec, x, "recurrent mask", B * H);
  const T* zh_ptr = optional_data<T>(zone_h, x, "zone_h", Tn * B * H);
  const T* zc_ptr = optional_data<T>(zone_c, x, "zone_c", Tn * B * H);

  Tensor Phat = saved_empty({Tn, B, G4}, opts);  // W_ih x, normalised in place
  matmul<T>(flat(x), false, w_ih, true, Phat.view({Tn * B, G4}));
  Tensor s_ih = saved_empty({Tn, B}, opts);
  Tensor G = saved_empty({Tn, B, G4}, opts);  // p̂∘γ_ih + b, then the gates
  Tensor b_all = has(bias) ? bias->contiguous() : Tensor();
  layer_norm_rows<T>(Phat.data_ptr<T>(), Tn * B, G4, ln_ih.data_ptr<T>(),
                     has(bias) ? b_all.data_ptr<T>() : nullptr, s_ih.data_ptr<T>(),
                     G.data_ptr<T>());
  Tensor Qhat = saved_empty({Tn, B, G4}, opts);
  Tensor s_hh = saved_empty({Tn, B}, opts);
  Tensor Chat = saved_empty({Tn, B, H}, opts);
  Tensor s_c = saved_empty({Tn, B}, opts);
  Tensor PhiN = saved_empty({Tn, B, H}, opts);  // φ(LN(c̃)∘γ_c + β_c)
  Tensor cs = saved_empty({Tn + 1, B, H}, opts);
  Tensor hs = saved_empty({Tn + 1, B, H}, opts);
  cs[0].copy_(c0);
  hs[0].copy_(h0);
  Tensor hin = m_ptr ? saved_empty({Tn, B, H}, opts) : Tensor();  // m∘h_{t-1}
  if (m_ptr) hin[0].copy_(h0.mul(*rec));
  Tensor y = at::empty({Tn, B, H}, opts);
  Tensor q_raw = scratch(kRowsScratch, {B, G4}, opts);
  Tensor c_til = scratch(kGradOut, {B, H}, opts);

  T* g_ptr = G.data_ptr<T>();
  T* qh_ptr = Qhat.data_ptr<T>();
  T* ch_ptr = Chat.data_ptr<T>();
  T* phi_ptr = PhiN.data_ptr<T>();
  T* shh_ptr = s_hh.data_ptr<T>();
  T* sc_ptr = s_c.data_ptr<T>();
  T* c_ptr = cs.data_ptr<T>();
  T* h_ptr = hs.data_ptr<T>();
  T* hin_ptr = m_ptr ? hin.data_ptr<T>() : nullptr;
  T* y_ptr = y.data_ptr<T>();
  T* qr_ptr = q_raw.data_ptr<T>();
  T* ct_ptr = c_til.data_ptr<T>();
  const T* g_hh = ln_hh.data_ptr<T>();
  const T* g_c = ln_c.data_ptr<T>();
  const T* b_c = ln_c_bias.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;

  StepWeight<T> W_hh(kStepW1, w_hh.data_ptr<T>(), H, /*trans=*/true, 4, H, H);
  // σ and tanh: each activation in the pass that forms its input (else passes of activate())
  const bool standard = gate.code == kSigmoid && cand.code == kTanh && out_act.code == kTanh;
  with_flag(standard, [&](auto standard_acts) {
  constexpr bool kStandard = decltype(standard_acts)::value;
  team(team_size<T>(B * G4 * H, H), [&](int tid, int nt) {
    const Share u = share_of<T>(B, H, tid, nt);
    const int64_t n = u.j1 - u.j0, rows = u.b1 - u.b0;
    for (int64_t t = 0; t < Tn; ++t) {
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      const T* h_prev = h_ptr + t * B * H;
      const T* c_prev = c_ptr + t * B * H;
      const T* h_in = hin_ptr ? hin_ptr + t * B * H : h_prev;
      W_hh.apply_units(rows, h_in + u.b0 * H, H, false, qr_ptr + u.b0 * G4, G4, u.j0,
                       u.j1);  // q = h̄ W_hhᵀ
      u.sync(nt);
      for (int64_t b = u.b0; b < u.b1; ++b) {
        if (run && !run[b]) continue;
        const T* q = qr_ptr + b * G4;
        T mean, rstd;
        row_moments(q, G4, mean, rstd);
        if (u.rank == 0) shh_ptr[t * B + b] = rstd;
        T* g = g_ptr + (t * B + b) * G4 + u.j0;  // a = q̂∘γ_hh + p̂∘γ_ih + b, then φ(a)
        T* qh = qh_ptr + (t * B + b) * G4 + u.j0;
        const T* gm = g_hh + u.j0;
        T* gi = g;
        T* gf = gi + H;
        T* gg = gi + 2 * H;
        T* go = gi + 3 * H;
        if constexpr (kStandard) {
          gate_block<kSigmoid>(q + u.j0, qh, gi, gm, mean, rstd, n);
          gate_block<kSigmoid>(q + u.j0 + H, qh + H, gf, gm + H, mean, rstd, n);
          gate_block<kTanh>(q + u.j0 + 2 * H, qh + 2 * H, gg, gm + 2 * H, mean, rstd, n);
          gate_block<kSigmoid>(q + u.j0 + 3 * H, qh + 3 * H, go, gm + 3 * H, mean, rstd, n);
        } else {
          for (int k = 0; k < 4; ++k)
            gate_block<-1>(q + u.j0 + k * H, qh + k * H, g + k * H, gm + k * H, mean, rstd, n);
          activate(gate, gi, gi, n);
          activate(gate, gf, gf, n);
          activate(cand, gg, gg, n);
          activate(gate, go, go, n);
        }
        const T* __restrict cp = c_prev + b * H + u.j0;
        T* __restrict ct = ct_ptr + b * H + u.j0;
        RNNLAB_SIMD
        for (int64_t j = 0; j < n; ++j) ct[j] = gf[j] * cp[j] + gi[j] * gg[j];
      }
      u.sync(nt);
      for (int64_t b = u.b0; b < u.b1; ++b) {
        const int64_t o = b * H + u.j0;
        const T* __restrict hp = h_prev + o;
        const T* __restrict cp = c_prev + o;
        T* __restrict hn = h_ptr + (t + 1) * B * H + o;
        T* __restrict cn = c_ptr + (t + 1) * B * H + o;
        T* __restrict yt = y_ptr + t * B * H + o;
        if (run && !run[b]) {  // padded step: carry the state, output 0
          std::memcpy(hn, hp, n * sizeof(T));
          std::memcpy(cn, cp, n * sizeof(T));
          std::memset(yt, 0, n * sizeof(T));
        } else {
          const T* ct_row = ct_ptr + b * H;
          T mean, rstd;
          row_moments(ct_row, H, mean, rstd);
          if (u.rank == 0) sc_ptr[t * B + b] = rstd;
          const T* __restrict ct = ct_row + u.j0;
          T* __restrict ch = ch_ptr + t * B * H + o;
          T* __restrict phi = phi_ptr + t * B * H + o;
          const T* __restrict gcj = g_c + u.j0;
          const T* __restrict bcj = b_c + u.j0;
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) {
            const T v = (ct[j] - mean) * rstd;
            ch[j] = v;
            const T z = v * gcj[j] + bcj[j];
            phi[j] = kStandard ? tanh_(z) : z;
          }
          if constexpr (!kStandard) activate(out_act, phi, phi, n);
          const T* __restrict go = g_ptr + (t * B + b) * G4 + 3 * H + u.j0;
          const T* __restrict dh = zh_ptr ? zh_ptr + t * B * H + o : nullptr;
          const T* __restrict dc = zc_ptr ? zc_ptr + t * B * H + o : nullptr;
          RNNLAB_SIMD
          for (int64_t j = 0; j < n; ++j) {
            T h = go[j] * phi[j], c = ct[j];
            if (dh) h += dh[j] * (hp[j] - h);  // zoneout: h̃ read the un-zoned cell
            if (dc) c += dc[j] * (cp[j] - c);
            hn[j] = h;
            cn[j] = c;
            yt[j] = h;
          }
        }
        if (m_ptr && t + 1 < Tn) masked_input(hin_ptr + (t + 1) * B * H + o, m_ptr + o, hn, n);
      }
      u.sync(nt);  // the next step reads all of h_t
    }
  });
  });
  return {y,    hs[Tn].clone(), cs[Tn].clone(), G,  Phat, s_ih, Qhat,
          s_hh, Chat,           s_c,            PhiN, cs,   hs,   hin};
}

template <typename T>
std::vector<Tensor> backward_impl(
    const Tensor& dy, const Tensor& dh_T, const Tensor& dc_T, const Tensor& x,
    const Tensor& w_ih, const Tensor& w_hh, const Tensor& ln_ih, const Tensor& ln_hh,
    const Tensor& ln_c, const c10::optional<Tensor>& mask, c10::ArrayRef<double> acts,
    const c10::optional<Tensor>& rec, const c10::optional<Tensor>& zone_h,
    const c10::optional<Tensor>& zone_c, const Tensor& G, const Tensor& Phat, const Tensor& s_ih,
    const Tensor& Qhat, const Tensor& s_hh, const Tensor& Chat, const Tensor& s_c,
    const Tensor& PhiN, const Tensor& cs, const Tensor& hs, const c10::optional<Tensor>& hin,
    bool need_dx, bool has_bias) {
  const int64_t Tn = x.size(0), B = x.size(1), H = w_hh.size(1), G4 = 4 * H;
  auto opts = x.options();
  const auto act = activations_of<T>(acts, 3);
  const Act<T> gate = act[0], cand = act[1], out_act = act[2];
  const T* m_ptr = optional_data<T>(rec, x, "recurrent mask", B * H);
  const T* zh_ptr = optional_data<T>(zone_h, x, "zone_h", Tn * B * H);
  const T* zc_ptr = optional_data<T>(zone_c, x, "zone_c", Tn * B * H);

  Tensor dA = scratch(kGradA, {Tn, B, G4}, opts);   // da, then dp (step 3)
  Tensor DQ = scratch(kGradOut, {Tn, B, G4}, opts);  // dq
  Tensor dh = dh_T.clone();
  Tensor dc = dc_T.clone();
  Tensor prod = at::empty({B, H}, opts);  // dq W_hh of a step
  Tensor keep = at::empty({B, H}, opts);  // g∘d^h of a step
  Tensor dch = at::empty({B, H}, opts);   // dĉ of a step
  const int nth = team_size<T>(B * G4 * H, H);
  // per thread and row: (Σ d, Σ d∘ẑ) of the norms of c, q and p
  Tensor sums = at::zeros({3, nth, B, 2}, opts);
  // a missing mask reads ones (recurrent dropout) or zeros (zoneout): loops without branches
  Tensor ones = at::ones({H}, opts), zeros = at::zeros({H}, opts);
  // per thread: the sums over its rows of db, dγ_ih, dγ_hh (4H each), dγ_c, dβ_c (H each)
  Tensor acc = at::zeros({nth, 3 * G4 + 2 * H}, opts);

  T* da_ptr = dA.data_ptr<T>();
  T* dq_ptr = DQ.data_ptr<T>();
  T* dh_ptr = dh.data_ptr<T>();
  T* dc_ptr = dc.data_ptr<T>();
  T* prod_ptr = prod.data_ptr<T>();
  T* keep_ptr = keep.data_ptr<T>();
  T* dch_ptr = dch.data_ptr<T>();
  T* sum_c = sums.data_ptr<T>();
  T* sum_q = sum_c + nth * B * 2;
  T* sum_p = sum_q + nth * B * 2;
  const T* one_ptr = ones.data_ptr<T>();
  const T* zero_ptr = zeros.data_ptr<T>();
  const T* dy_ptr = dy.data_ptr<T>();
  const T* g_ptr = G.data_ptr<T>();
  const T* ph_ptr = Phat.data_ptr<T>();
  const T* sih_ptr = s_ih.data_ptr<T>();
  const T* g_ih = ln_ih.data_ptr<T>();
  const T* qh_ptr = Qhat.data_ptr<T>();
  const T* shh_ptr = s_hh.data_ptr<T>();
  const T* ch_ptr = Chat.data_ptr<T>();
  const T* sc_ptr = s_c.data_ptr<T>();
  const T* phi_ptr = PhiN.data_ptr<T>();
  const T* c_ptr = cs.data_ptr<T>();
  const T* g_hh = ln_hh.data_ptr<T>();
  const T* g_c = ln_c.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;

  StepWeight<T> W_hh(kStepW1, w_hh.data_ptr<T>(), H, /*trans=*/false, 1, H, G4);  // dq W_hh
  // σ and tanh: their derivatives from the outputs inside the loops (else k_buf's passes)
  const bool standard = gate.code == kSigmoid && cand.code == kTanh && out_act.code == kTanh;
  with_flag(standard, [&](auto standard_acts) {
  constexpr bool kStandard = decltype(standard_acts)::value;
  team(nth, [&](int tid, int nt) {
    const Share u = share_of<T>(B, H, tid, nt);
    const int64_t n = u.j1 - u.j0, rows = u.b1 - u.b0;
    T* db_ptr = acc.data_ptr<T>() + tid * (3 * G4 + 2 * H);
    T* dgih_ptr = db_ptr + G4;
    T* dghh_ptr = db_ptr + 2 * G4;
    T* dgc_ptr = db_ptr + 3 * G4;
    T* dbc_ptr = dgc_ptr + H;
    // φ'(i), φ'(f), φ'(g), φ'(o), φ'(n) of this thread's units, for every row of a step
    std::vector<T> k_buf(static_cast<size_t>(std::max<int64_t>(B * 5 * n, 1)));
    for (int64_t t = Tn - 1; t >= 0; --t) {
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      for (int64_t b = u.b0; b < u.b1; ++b) {  // 1. the gradient reaching h̃_t, and dĉ
        const int64_t row = t * B + b, o = b * H + u.j0;
        T* da = da_ptr + row * G4 + u.j0;
        T* s = sum_c + (u.rank * B + b) * 2;
        s[0] = s[1] = T(0);
        if (run && !run[b]) {  // no gradient enters a padded step
          for (int k = 0; k < 4; ++k) {
            std::memset(da + k * H, 0, n * sizeof(T));
            std::memset(dq_ptr + row * G4 + k * H + u.j0, 0, n * sizeof(T));
          }
          continue;
        }
        const T* g = g_ptr + row * G4 + u.j0;
        const T* phi = phi_ptr + row * H + u.j0;
        T* k = k_buf.data() + b * 5 * n;
        if constexpr (!kStandard) {
          activation_grad(gate, g, k, n);
          activation_grad(gate, g + H, k + n, n);
          activation_grad(cand, g + 2 * H, k + 2 * n, n);
          activation_grad(gate, g + 3 * H, k + 3 * n, n);
          activation_grad(out_act, phi, k + 4 * n, n);
        }
        const T* __restrict go = g + 3 * H;
        const T* __restrict ko = k + 3 * n;
        const T* __restrict kn = k + 4 * n;
        const T* __restrict dyt = dy_ptr + row * H + u.j0;
        const T* __restrict dhb = dh_ptr + o;
        const T* __restrict zh = zh_ptr ? zh_ptr + row * H + u.j0 : zero_ptr + u.j0;
        const T* __restrict ch = ch_ptr + row * H + u.j0;
        const T* __restrict gcj = g_c + u.j0;
        T* __restrict kh = keep_ptr + o;
        T* __restrict dao = da + 3 * H;
        T* __restrict dcb = dch_ptr + o;
        T* __restrict dgc = dgc_ptr + u.j0;
        T* __restrict dbc = dbc_ptr + u.j0;
        RNNLAB_SIMD
        for (int64_t j = 0; j < n; ++j) {
          T gh = dyt[j] + dhb[j];
          const T kept = gh * zh[j];
          gh -= kept;
          kh[j] = kept;
          const T k_o = kStandard ? act_grad<kSigmoid>(go[j], T(0), T(0)) : ko[j];
          const T k_n = kStandard ? act_grad<kTanh>(phi[j], T(0), T(0)) : kn[j];
          dao[j] = gh * phi[j] * k_o;
          const T dn = gh * go[j] * k_n;
          dgc[j] += dn * ch[j];
          dbc[j] += dn;
          dcb[j] = dn * gcj[j];
        }
        backward_sums(dcb, ch, n, s[0], s[1]);
      }
      u.sync(nt);
      for (int64_t b = u.b0; b < u.b1; ++b) {  // 2. dc̃, da_i, da_f, da_g, dc_{t-1}; dû, dp̂
        const int64_t row = t * B + b, o = b * H + u.j0;
        T* s = sum_q + (u.rank * B + b) * 2;
        T* sp = sum_p + (u.rank * B + b) * 2;
        s[0] = s[1] = sp[0] = sp[1] = T(0);
        if (run && !run[b]) continue;
        T mc[2];
        row_means(sum_c, u.sharing, B, b, H, mc);
        const T m1 = mc[0], m2 = mc[1];
        const T sc = sc_ptr[row];
        const T* __restrict gi = g_ptr + row * G4 + u.j0;
        const T* __restrict gf = gi + H;
        const T* __restrict gg = gi + 2 * H;
        const T* k = k_buf.data() + b * 5 * n;
        const T* __restrict ki = k;
        const T* __restrict kf = k + n;
        const T* __restrict kg = k + 2 * n;
        const T* __restrict ch = ch_ptr + row * H + u.j0;
        const T* __restrict dcb = dch_ptr + o;
        const T* __restrict cp = c_ptr + t * B * H + o;
        const T* __restrict zc = zc_ptr ? zc_ptr + row * H + u.j0 : zero_ptr + u.j0;
        T* __restrict dcs = dc_ptr + o;
        T* __restrict dai = da_ptr + row * G4 + u.j0;
        T* __restrict daf = dai + H;
        T* __restrict dag = dai + 2 * H;
        RNNLAB_SIMD
        for (int64_t j = 0; j < n; ++j) {
          const T kept = dcs[j] * zc[j];
          const T dct = dcs[j] - kept + (dcb[j] - m1 - ch[j] * m2) * sc;
          const T k_i = kStandard ? act_grad<kSigmoid>(gi[j], T(0), T(0)) : ki[j];
          const T k_f = kStandard ? act_grad<kSigmoid>(gf[j], T(0), T(0)) : kf[j];
          const T k_g = kStandard ? act_grad<kTanh>(gg[j], T(0), T(0)) : kg[j];
          dai[j] = dct * gg[j] * k_i;
          daf[j] = dct * cp[j] * k_f;
          dag[j] = dct * gi[j] * k_g;
          dcs[j] = dct * gf[j] + kept;
        }
        T* da = da_ptr + row * G4;
        const T* ph = ph_ptr + row * G4;
        const T* qh = qh_ptr + row * G4;
        T* dq = dq_ptr + row * G4;
        for (int kb = 0; kb < 4; ++kb) {
          const int64_t c0 = kb * H + u.j0;
          RNNLAB_SIMD
          for (int64_t j = c0; j < c0 + n; ++j) {
            db_ptr[j] += da[j];
            dgih_ptr[j] += da[j] * ph[j];
            dghh_ptr[j] += da[j] * qh[j];
            dq[j] = da[j] * g_hh[j];  // dû and dp̂: normalised back in 3.
            da[j] *= g_ih[j];
          }
        }
        block_backward_sums<4>(dq, qh, H, u.j0, n, s);
        block_backward_sums<4>(da, ph, H, u.j0, n, sp);
      }
      u.sync(nt);
      for (int64_t b = u.b0; b < u.b1; ++b) {  // 3. dq = LN_backward(dû), dp = LN_backward(dp̂)
        if (run && !run[b]) continue;
        const int64_t row = t * B + b;
        T mq[2], mp[2];
        row_means(sum_q, u.sharing, B, b, G4, mq);
        row_means(sum_p, u.sharing, B, b, G4, mp);
        block_backward_apply<4>(dq_ptr + row * G4, qh_ptr + row * G4, H, u.j0, n, mq,
                                shh_ptr[row]);
        block_backward_apply<4>(da_ptr + row * G4, ph_ptr + row * G4, H, u.j0, n, mp,
                                sih_ptr[row]);
      }
      u.sync(nt);  // the product needs every column of dq
      W_hh.apply_units(rows, dq_ptr + (t * B + u.b0) * G4, G4, false, prod_ptr + u.b0 * H, H,
                       u.j0, u.j1);
      for (int64_t b = u.b0; b < u.b1; ++b) {  // 4. dh_{t-1} = (dq W_hh)∘m + g∘d^h
        if (run && !run[b]) continue;  // dh passes through a padded step
        const int64_t o = b * H + u.j0;
        const T* __restrict p = prod_ptr + o;
        const T* __restrict m = m_ptr ? m_ptr + o : one_ptr + u.j0;
        const T* __restrict kh = keep_ptr + o;
        T* __restrict d = dh_ptr + o;
        RNNLAB_SIMD
        for (int64_t j = 0; j < n; ++j) {
          d[j] = p[j] * m[j] + kh[j];
        }
      }
    }
  });
  });

  const InputGrads in = input_grads<T>(dA, DQ, x, w_ih, hs, hin, need_dx);
  Tensor sum = acc.sum(0);
  return {in.dx,
          dh,
          dc,
          in.dw_ih,
          in.dw_hh,
          has_bias ? sum.narrow(0, 0, G4) : Tensor(),
          sum.narrow(0, G4, G4),
          sum.narrow(0, 2 * G4, G4),
          sum.narrow(0, 3 * G4, H),
          sum.narrow(0, 3 * G4 + H, H)};
}

}  // namespace

std::vector<Tensor> layernorm_lstm_forward(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
    const c10::optional<Tensor>& bias, const Tensor& ln_ih, const Tensor& ln_hh,
    const Tensor& ln_c, const Tensor& ln_c_bias, const c10::optional<Tensor>& mask,
    c10::ArrayRef<double> acts, const c10::optional<Tensor>& rec,
    const c10::optional<Tensor>& zone_h, const c10::optional<Tensor>& zone_c) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_layernorm_lstm_forward", [&] {
    out = forward_impl<scalar_t>(x, h0, c0, w_ih, w_hh, bias, ln_ih, ln_hh, ln_c, ln_c_bias,
                                 mask, acts, rec, zone_h, zone_c);
  });
  return out;
}

std::vector<Tensor> layernorm_lstm_backward(
    const Tensor& dy, const Tensor& dh_T, const Tensor& dc_T, const Tensor& x,
    const Tensor& w_ih, const Tensor& w_hh, const Tensor& ln_ih, const Tensor& ln_hh,
    const Tensor& ln_c, const c10::optional<Tensor>& mask, c10::ArrayRef<double> acts,
    const c10::optional<Tensor>& rec, const c10::optional<Tensor>& zone_h,
    const c10::optional<Tensor>& zone_c, const Tensor& G, const Tensor& Phat, const Tensor& s_ih,
    const Tensor& Qhat, const Tensor& s_hh, const Tensor& Chat, const Tensor& s_c,
    const Tensor& PhiN, const Tensor& cs, const Tensor& hs, const c10::optional<Tensor>& hin,
    bool need_dx, bool has_bias) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_layernorm_lstm_backward", [&] {
    out = backward_impl<scalar_t>(dy, dh_T, dc_T, x, w_ih, w_hh, ln_ih, ln_hh, ln_c, mask, acts,
                                  rec, zone_h, zone_c, G, Phat, s_ih, Qhat, s_hh, Chat, s_c,
                                  PhiN, cs, hs, hin, need_dx, has_bias);
  });
  return out;
}

}  // namespace rnnlab
