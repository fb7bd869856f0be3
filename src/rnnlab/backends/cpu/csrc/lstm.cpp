// LSTM forward and hand-derived BPTT (the math of rnnlab/bptt/lstm.py), one direction of one
// layer. Forward: the input projection of all steps in one GEMM into the gate buffer G, then
// per step G[t] += h̄_{t-1} W_hhᵀ and one point-wise pass over G[t] that turns the
// pre-activations into the gates (kept in G for the backward) and writes c_t and h_t once.
// Backward: per step one point-wise pass writing da_t, then dh_{t-1} = da_t W_hh; the weight
// gradients are GEMMs over all T·B rows after the loop.
//
// Variants are options of the one loop: peepholes, cell clipping, coupled gates, a projection
// W_hr, any activations of activations.h (gates φ_g, candidate φ_c, output φ_o), recurrent
// dropout (h̄ = m∘h_{t-1}, kept for dW_hh) and zoneout of h and c (regularisers.h; h̃ reads the
// un-zoned c̃_t, kept for the backward). The point-wise cell is lstm_cell.h's.
#include "common.h"
#include "lstm_cell.h"
#include "regularisers.h"

#include <ATen/ops/sum.h>

#include <memory>
#include <vector>

namespace rnnlab {

namespace {

struct LSTMShapes {
  int64_t T, B, I, H, P;  // P: size of h (proj_size, or H)
};

LSTMShapes lstm_shapes(const Tensor& x, const Tensor& w_hh) {
  return {x.size(0), x.size(1), x.size(2), w_hh.size(0) / 4, w_hh.size(1)};
}

template <typename T>
std::vector<Tensor> lstm_forward_impl(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                      const Tensor& w_ih, const Tensor& w_hh,
                                      const c10::optional<Tensor>& bias,
                                      const c10::optional<Tensor>& peephole,
                                      const c10::optional<Tensor>& w_hr,
                                      const c10::optional<Tensor>& mask,
                                      const c10::optional<Tensor>& rec,
                                      const c10::optional<Tensor>& zone_h,
                                      const c10::optional<Tensor>& zone_c, double cell_clip,
                                      bool coupled, c10::ArrayRef<double> acts) {
  auto [Tn, B, I, H, P] = lstm_shapes(x, w_hh);
  const bool proj = has(w_hr);
  const bool clip_on = cell_clip > 0;
  auto opts = x.options();
  const T* m_rec = mask_data<T>(rec, x, "rec", B * P);
  const T* z_h = mask_data<T>(zone_h, x, "zone_h", Tn * B * P);
  const T* z_c = mask_data<T>(zone_c, x, "zone_c", Tn * B * H);
  Tensor peep = has(peephole) ? peephole->contiguous() : at::zeros({3, H}, opts);
  const LSTMCell<T> cell = lstm_cell<T>(peep.data_ptr<T>(), cell_clip, coupled, acts);
  const bool plain = !has(peephole) && !clip_on && !coupled && default_acts(cell) && !z_h && !z_c;

  Tensor x2 = flat(x);
  Tensor G = saved_empty({Tn * B, 4 * H}, opts);  // gates; the bias joins in the cell
  matmul<T>(x2, false, w_ih, true, G);
  Tensor b_all = has(bias) ? bias->contiguous() : at::zeros({4 * H}, opts);
  const T* bias_ptr = b_all.data_ptr<T>();
  Tensor cs = saved_empty({Tn + 1, B, H}, opts);
  Tensor hs = saved_empty({Tn + 1, B, P}, opts);
  cs[0].copy_(c0);
  hs[0].copy_(h0);
  Tensor y = at::empty({Tn, B, P}, opts);
  Tensor ms = proj ? saved_empty({Tn, B, H}, opts) : Tensor();
  Tensor clipped = clip_on ? saved_empty({Tn, B, H}, opts) : Tensor();  // 1 where c was clamped
  Tensor hin = recurrent_inputs(h0, rec, Tn);  // h̄_{t-1} = m∘h_{t-1}
  Tensor ctil = z_c ? saved_empty({Tn, B, H}, opts) : Tensor();  // c̃_t, before zoneout

  T* g_ptr = G.data_ptr<T>();
  T* c_ptr = cs.data_ptr<T>();
  T* h_ptr = hs.data_ptr<T>();
  T* y_ptr = y.data_ptr<T>();
  T* m_ptr = proj ? ms.data_ptr<T>() : nullptr;
  T* cl_ptr = clip_on ? clipped.data_ptr<T>() : nullptr;
  T* hin_ptr = m_rec ? hin.data_ptr<T>() : nullptr;
  T* ct_ptr = z_c ? ctil.data_ptr<T>() : nullptr;
  Tensor cl_dummy = clip_on ? Tensor() : at::empty({B, H}, opts);
  T* cl_dummy_ptr = clip_on ? nullptr : cl_dummy.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;

  StepWeight<T> W_hh(kStepW1, w_hh.data_ptr<T>(), P, /*trans=*/true, 4, H, P);
  std::unique_ptr<StepWeight<T>> W_hr;
  if (proj) W_hr = std::make_unique<StepWeight<T>>(kStepW2, w_hr->data_ptr<T>(), H, true, 1, P, H);

  const int nth = team_size<T>(B * 4 * H * P, H);
  team(nth, [&](int tid, int nt) {
    const Units u = unit_slice<T>(H, tid, nt);  // this thread's hidden units, every step
    const Units q = unit_slice<T>(P, tid, nt);  // and its columns of h with a projection
    const int64_t n = u.j1 - u.j0, nq = q.j1 - q.j0;
    std::vector<T> phi(plain ? 0 : n);
    // what the step's product reads next, on this thread's columns of a row: m∘h_t
    auto recurrent_input = [&](int64_t t, int64_t o, int64_t width) {
      if (m_rec && t + 1 < Tn)
        mul_row(hin_ptr + (t + 1) * B * P + o, h_ptr + (t + 1) * B * P + o, m_rec + o, width);
    };
    for (int64_t t = 0; t < Tn; ++t) {
      T* g = g_ptr + t * B * 4 * H;
      const T* h_prev = h_ptr + t * B * P;
      T* h_new = h_ptr + (t + 1) * B * P;
      const T* c_prev = c_ptr + t * B * H;
      T* c_new = c_ptr + (t + 1) * B * H;
      T* c_tilde = z_c ? ct_ptr + t * B * H : c_new;  // where the cell writes c̃_t
      T* y_t = y_ptr + t * B * P;
      T* m_t = proj ? m_ptr + t * B * H : nullptr;
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      const T* h_read = m_rec ? hin_ptr + t * B * P : h_prev;

      W_hh.apply_units(B, h_read, P, true, g, 4 * H, u.j0, u.j1);  // G[t] += h̄_{t-1} W_hhᵀ
      for (int64_t b = 0; b < B && n > 0; ++b) {
        const int64_t o = b * H + u.j0;  // this row's first unit in (B, H) buffers
        if (run && !run[b]) {  // padded step: carry the state, output 0
          std::memcpy(c_new + o, c_prev + o, n * sizeof(T));
          if (z_c) std::memcpy(c_tilde + o, c_prev + o, n * sizeof(T));
          if (proj) {
            std::memset(m_t + o, 0, n * sizeof(T));
          } else {
            std::memcpy(h_new + o, h_prev + o, n * sizeof(T));
            std::memset(y_t + o, 0, n * sizeof(T));
            recurrent_input(t, o, n);
          }
          continue;
        }
        T* out = proj ? m_t + o : h_new + o;
        T* gb = g + b * 4 * H + u.j0;
        if (plain) {
          lstm_cell_row<T>(gb, bias_ptr + u.j0, c_prev + o, c_new + o, out, n, H);
        } else {
          LSTMCell<T> at_units = cell;
          at_units.peep += u.j0;
          T* cl = clip_on ? cl_ptr + t * B * H + o : cl_dummy_ptr + o;
          lstm_cell_row_general<T>(gb, bias_ptr + u.j0, c_prev + o, c_tilde + o, out, n, H,
                                   at_units, cl, phi.data());
          if (z_c) zone_row(c_new + o, c_tilde + o, c_prev + o, z_c + t * B * H + o, n);
        }
        if (!proj) {
          if (z_h) zone_row(h_new + o, h_new + o, h_prev + o, z_h + t * B * P + o, n);
          std::memcpy(y_t + o, h_new + o, n * sizeof(T));
          recurrent_input(t, o, n);
        }
      }
      if (proj) {
        barrier(nt);  // y_t needs every unit's m_t
        W_hr->apply_units(B, m_t, H, false, y_t, P, q.j0, q.j1);  // y_t = m_t W_hrᵀ
        for (int64_t b = 0; b < B && nq > 0; ++b) {
          const int64_t o = b * P + q.j0;
          if (!run || run[b]) {
            if (z_h) zone_row(y_t + o, y_t + o, h_prev + o, z_h + t * B * P + o, nq);
            std::memcpy(h_new + o, y_t + o, nq * sizeof(T));
          } else {  // m = 0 gave y = 0; the state carries
            std::memcpy(h_new + o, h_prev + o, nq * sizeof(T));
          }
          recurrent_input(t, o, nq);
        }
      }
      barrier(nt);  // the next step reads all of h_t
    }
  });
  Tensor gates = G.view({Tn, B, 4 * H});
  return {y, hs[Tn].clone(), cs[Tn].clone(), gates, cs, hs, ms, clipped, hin, ctil};
}

template <typename T>
std::vector<Tensor> lstm_backward_impl(
    const Tensor& dy, const Tensor& dh_T, const Tensor& dc_T, const Tensor& x,
    const Tensor& w_ih, const Tensor& w_hh, const c10::optional<Tensor>& peephole,
    const c10::optional<Tensor>& w_hr, const c10::optional<Tensor>& mask,
    const c10::optional<Tensor>& rec, const c10::optional<Tensor>& zone_h,
    const c10::optional<Tensor>& zone_c, const Tensor& gates, const Tensor& cs,
    const Tensor& hs, const c10::optional<Tensor>& ms, const c10::optional<Tensor>& clipped,
    const c10::optional<Tensor>& hin, const c10::optional<Tensor>& ctil, double cell_clip,
    bool coupled, c10::ArrayRef<double> acts, bool need_dx, bool has_bias) {
  auto [Tn, B, I, H, P] = lstm_shapes(x, w_hh);
  const bool proj = has(w_hr);
  const bool clip_on = has(clipped);
  auto opts = x.options();
  const T* m_rec = mask_data<T>(rec, x, "rec", B * P);
  const T* z_h = mask_data<T>(zone_h, x, "zone_h", Tn * B * P);
  const T* z_c = mask_data<T>(zone_c, x, "zone_c", Tn * B * H);
  Tensor peep = has(peephole) ? peephole->contiguous() : at::zeros({3, H}, opts);
  const LSTMCell<T> cell = lstm_cell<T>(peep.data_ptr<T>(), cell_clip, coupled, acts);
  const bool plain = !has(peephole) && !clip_on && !coupled && default_acts(cell) && !z_h && !z_c;
  // dh_{t-1} goes through a step buffer when a row needs more than the product
  const bool combine = has(mask) || m_rec || z_h;

  Tensor dA = scratch(kGradA, {Tn, B, 4 * H}, opts);  // per-call scratch, not returned
  Tensor dh = dh_T.clone();
  Tensor dc = dc_T.clone();
  Tensor dh_out = proj ? scratch(kGradOut, {Tn, B, P}, opts) : Tensor();
  Tensor dm = proj ? at::empty({B, H}, opts) : Tensor();
  Tensor zeros = at::zeros({std::max(H, P)}, opts);
  Tensor step = combine ? at::empty({B, P}, opts) : Tensor();
  Tensor no_clip = clip_on ? Tensor() : at::zeros({H}, opts);

  T* da_ptr = dA.data_ptr<T>();
  T* dh_ptr = dh.data_ptr<T>();
  T* dc_ptr = dc.data_ptr<T>();
  const T* dy_ptr = dy.data_ptr<T>();
  const T* g_ptr = gates.data_ptr<T>();
  const T* c_ptr = cs.data_ptr<T>();
  const T* ct_ptr = z_c ? ctil->data_ptr<T>() : nullptr;
  T* dho_ptr = proj ? dh_out.data_ptr<T>() : nullptr;
  T* dm_ptr = proj ? dm.data_ptr<T>() : nullptr;
  const T* zero_ptr = zeros.data_ptr<T>();
  const T* cl_ptr = clip_on ? clipped->data_ptr<T>() : nullptr;
  const T* no_clip_ptr = clip_on ? nullptr : no_clip.data_ptr<T>();
  const bool* mask_ptr = has(mask) ? mask->data_ptr<bool>() : nullptr;
  T* step_ptr = combine ? step.data_ptr<T>() : nullptr;

  StepWeight<T> W_hh(kStepW1, w_hh.data_ptr<T>(), P, /*trans=*/false, 1, P, 4 * H);  // da W_hh
  std::unique_ptr<StepWeight<T>> W_hr;
  if (proj) W_hr = std::make_unique<StepWeight<T>>(kStepW2, w_hr->data_ptr<T>(), H, false, 1, H, P);

  const int nth = team_size<T>(B * 4 * H * P, std::min(H, P));
  team(nth, [&](int tid, int nt) {
    const Units u = unit_slice<T>(H, tid, nt);  // hidden units of this thread
    const Units q = unit_slice<T>(P, tid, nt);  // its columns of h (== u without projection)
    const int64_t n = u.j1 - u.j0, nq = q.j1 - q.j0;
    std::vector<T> cell_scratch(plain ? 0 : 2 * n);
    for (int64_t t = Tn - 1; t >= 0; --t) {
      const bool* run = mask_ptr ? mask_ptr + t * B : nullptr;
      const T* dy_t = dy_ptr + t * B * P;
      const T* zh_t = z_h ? z_h + t * B * P : nullptr;
      T* da_t = da_ptr + t * B * 4 * H;
      if (proj) {  // dh_out_t = (dy_t + dh)∘(1 - d^h) (0 on padded rows), then dm = dh_out_t W_hr
        T* dho = dho_ptr + t * B * P;
        for (int64_t b = 0; b < B && nq > 0; ++b) {
          const int64_t o = b * P + q.j0;
          if (run && !run[b]) {
            std::memset(dho + o, 0, nq * sizeof(T));
            continue;
          }
          if (zh_t) {
            RNNLAB_SIMD
            for (int64_t j = 0; j < nq; ++j)
              dho[o + j] = (dy_t[o + j] + dh_ptr[o + j]) * (T(1) - zh_t[o + j]);
          } else {
            RNNLAB_SIMD
            for (int64_t j = 0; j < nq; ++j) dho[o + j] = dy_t[o + j] + dh_ptr[o + j];
          }
        }
        barrier(nt);  // dm needs every column of dh_out_t
        W_hr->apply_units(B, dho, P, false, dm_ptr, H, u.j0, u.j1);
      }
      for (int64_t b = 0; b < B && n > 0; ++b) {
        T* da = da_t + b * 4 * H + u.j0;
        if (run && !run[b]) {
          for (int k = 0; k < 4; ++k) std::memset(da + k * H, 0, n * sizeof(T));
          continue;
        }
        const int64_t o = b * H + u.j0;
        const T* dh_a = proj ? dm_ptr + o : dy_t + b * P + u.j0;
        const T* dh_b = proj ? zero_ptr + u.j0 : dh_ptr + b * P + u.j0;
        const T* g = g_ptr + (t * B + b) * 4 * H + u.j0;
        const T* c_prev = c_ptr + t * B * H + o;
        if (plain) {
          lstm_cell_backward_row<T>(g, c_prev, c_ptr + (t + 1) * B * H + o, dh_a, dh_b,
                                    dc_ptr + o, da, n, H);
        } else {
          LSTMCell<T> at_units = cell;
          at_units.peep += u.j0;
          const T* c_cur = (z_c ? ct_ptr : c_ptr + B * H) + t * B * H + o;  // c̃_t
          const T* zh = zh_t && !proj ? zh_t + o : zero_ptr;  // (with W_hr: in dh_out)
          const T* zc = z_c ? z_c + t * B * H + o : zero_ptr;
          const T* cl = clip_on ? cl_ptr + t * B * H + o : no_clip_ptr + u.j0;
          lstm_cell_backward_row_general<T>(g, c_prev, c_cur, dh_a, dh_b, zh, dc_ptr + o, zc,
                                            da, n, H, at_units, cl, cell_scratch.data());
        }
      }
      barrier(nt);  // dh_{t-1} needs every unit's da_t
      if (!combine) {
        W_hh.apply_units(B, da_t, 4 * H, false, dh_ptr, P, q.j0, q.j1);  // dh = da_t W_hh
      } else {  // running rows: dh = (da_t W_hh)∘m + (dy_t + dh)∘d^h; padded rows keep dh
        W_hh.apply_units(B, da_t, 4 * H, false, step_ptr, P, q.j0, q.j1);
        for (int64_t b = 0; b < B && nq > 0; ++b) {
          const int64_t o = b * P + q.j0;
          if (run && !run[b]) continue;
          recurrent_grad_row(dh_ptr + o, step_ptr + o, dy_t + o, m_rec ? m_rec + o : nullptr,
                             zh_t ? zh_t + o : nullptr, nq);
        }
      }
    }
  });

  Tensor dA2 = dA.view({Tn * B, 4 * H});
  Tensor dx = need_dx ? matmul<T>(dA2, false, w_ih, false).view({Tn, B, I}) : Tensor();
  Tensor h_read = m_rec ? *hin : hs.narrow(0, 0, Tn);  // what W_hh multiplied
  auto dws = weight_grads<T>(dA2, {flat(x), flat(h_read)});
  Tensor dw_ih = dws[0], dw_hh = dws[1];
  Tensor db = has_bias ? dA2.sum(0) : Tensor();
  Tensor dpeep;
  if (has(peephole)) {
    Tensor c_prev = cs.narrow(0, 0, Tn), c_cur = z_c ? *ctil : cs.narrow(0, 1, Tn);
    // explicit dims: a braced list is ambiguous between sum's overloads on some torch versions
    const std::vector<int64_t> steps_and_batch{0, 1};
    const at::IntArrayRef dims(steps_and_batch);
    dpeep = at::stack({dA.narrow(2, 0, H).mul(c_prev).sum(dims),
                       dA.narrow(2, H, H).mul(c_prev).sum(dims),
                       dA.narrow(2, 3 * H, H).mul(c_cur).sum(dims)});
  }
  Tensor dw_hr = proj ? weight_grads<T>(flat(dh_out), {flat(*ms)})[0] : Tensor();
  return {dx, dh, dc, dw_ih, dw_hh, db, dpeep, dw_hr};
}

}  // namespace

std::vector<Tensor> lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_ih, const Tensor& w_hh,
                                 const c10::optional<Tensor>& bias,
                                 const c10::optional<Tensor>& peephole,
                                 const c10::optional<Tensor>& w_hr,
                                 const c10::optional<Tensor>& mask,
                                 const c10::optional<Tensor>& rec,
                                 const c10::optional<Tensor>& zone_h,
                                 const c10::optional<Tensor>& zone_c, double cell_clip,
                                 bool coupled, c10::ArrayRef<double> acts) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_lstm_forward", [&] {
    out = lstm_forward_impl<scalar_t>(x, h0, c0, w_ih, w_hh, bias, peephole, w_hr, mask, rec,
                                      zone_h, zone_c, cell_clip, coupled, acts);
  });
  return out;
}

std::vector<Tensor> lstm_backward(
    const Tensor& dy, const Tensor& dh_T, const Tensor& dc_T, const Tensor& x,
    const Tensor& w_ih, const Tensor& w_hh, const c10::optional<Tensor>& peephole,
    const c10::optional<Tensor>& w_hr, const c10::optional<Tensor>& mask,
    const c10::optional<Tensor>& rec, const c10::optional<Tensor>& zone_h,
    const c10::optional<Tensor>& zone_c, const Tensor& gates, const Tensor& cs,
    const Tensor& hs, const c10::optional<Tensor>& ms, const c10::optional<Tensor>& clipped,
    const c10::optional<Tensor>& hin, const c10::optional<Tensor>& ctil, double cell_clip,
    bool coupled, c10::ArrayRef<double> acts, bool need_dx, bool has_bias) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_lstm_backward", [&] {
    out = lstm_backward_impl<scalar_t>(dy, dh_T, dc_T, x, w_ih, w_hh, peephole, w_hr, mask,
                                       rec, zone_h, zone_c, gates, cs, hs, ms, clipped, hin,
                                       ctil, cell_clip, coupled, acts, need_dx, has_bias);
  });
  return out;
}

void release_workspace_op() { release_workspace(); }

void set_aten_gemm(bool on) { aten_gemm_flag() = on; }

}  // namespace rnnlab
