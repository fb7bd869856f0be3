// Registration of rnnlab's CPU engine as torch operators (torch.ops.rnnlab_cpu.*), called by
// rnnlab/backends/cpu/{lstm,gru,rnn,sru}.py. Optional tensors come as None; outputs that a
// configuration does not produce are returned as empty tensors. Regulariser masks: rec (B, H_out),
// zone_h / zone / zone_c (T, B, ·), contiguous, in x's dtype; activations: `acts`, the
// (code, alpha, beta) of each (activations.h), as rnnlab.activations.Activation.kernel_args.
#include <torch/library.h>

#include <vector>

namespace rnnlab {
using at::Tensor;
using OptT = c10::optional<Tensor>;

std::vector<Tensor> lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_ih, const Tensor& w_hh, const OptT& bias,
                                 const OptT& peephole, const OptT& w_hr, const OptT& mask,
                                 const OptT& rec, const OptT& zone_h, const OptT& zone_c,
                                 double cell_clip, bool coupled, c10::ArrayRef<double> acts);
std::vector<Tensor> lstm_backward(const Tensor& dy, const Tensor& dh_T, const Tensor& dc_T,
                                  const Tensor& x, const Tensor& w_ih, const Tensor& w_hh,
                                  const OptT& peephole, const OptT& w_hr, const OptT& mask,
                                  const OptT& rec, const OptT& zone_h, const OptT& zone_c,
                                  const Tensor& gates, const Tensor& cs, const Tensor& hs,
                                  const OptT& ms, const OptT& clipped, const OptT& hin,
                                  const OptT& ctil, double cell_clip, bool coupled,
                                  c10::ArrayRef<double> acts, bool need_dx, bool has_bias);
std::vector<Tensor> gru_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                const Tensor& w_hh, const OptT& b_ih, const OptT& b_hh,
                                const OptT& mask, const OptT& rec, const OptT& zone,
                                bool reset_after, c10::ArrayRef<double> acts);
std::vector<Tensor> gru_backward(const Tensor& dy, const Tensor& dh_T, const Tensor& x,
                                 const Tensor& w_ih, const Tensor& w_hh, const OptT& mask,
                                 const OptT& rec, const OptT& zone, const Tensor& gates,
                                 const Tensor& hs, const Tensor& aux, const OptT& hin,
                                 bool reset_after, c10::ArrayRef<double> acts, bool need_dx,
                                 bool has_bias);
std::vector<Tensor> rnn_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                const Tensor& w_hh, const OptT& bias, const OptT& mask,
                                const OptT& rec, const OptT& zone, bool relu);
std::vector<Tensor> rnn_backward(const Tensor& dy, const Tensor& dh_T, const Tensor& x,
                                 const Tensor& w_ih, const Tensor& w_hh, const OptT& mask,
                                 const OptT& rec, const OptT& zone, const Tensor& hs,
                                 const OptT& hin, const OptT& htil, bool relu, bool need_dx,
                                 bool has_bias);
std::vector<Tensor> sru_forward(const Tensor& x, const Tensor& c0, const Tensor& w_ih,
                                const Tensor& w_c, const OptT& bias, const OptT& mask,
                                const OptT& zone);
std::vector<Tensor> sru_backward(const Tensor& dy, const Tensor& dc_T, const Tensor& x,
                                 const Tensor& w_ih, const Tensor& w_c, const OptT& mask,
                                 const OptT& zone, const Tensor& U, const Tensor& cs,
                                 bool need_dx, bool has_bias);
Tensor activation_forward(const Tensor& a, int64_t code, double alpha, double beta);
Tensor activation_backward(const Tensor& y, int64_t code, double alpha, double beta);
std::vector<Tensor> layernorm_lstm_forward(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
    const OptT& bias, const Tensor& ln_ih, const Tensor& ln_hh, const Tensor& ln_c,
    const Tensor& ln_c_bias, const OptT& mask, c10::ArrayRef<double> acts, const OptT& rec,
    const OptT& zone_h, const OptT& zone_c);
std::vector<Tensor> layernorm_lstm_backward(
    const Tensor& dy, const Tensor& dh_T, const Tensor& dc_T, const Tensor& x,
    const Tensor& w_ih, const Tensor& w_hh, const Tensor& ln_ih, const Tensor& ln_hh,
    const Tensor& ln_c, const OptT& mask, c10::ArrayRef<double> acts, const OptT& rec,
    const OptT& zone_h, const OptT& zone_c, const Tensor& G, const Tensor& Phat,
    const Tensor& s_ih, const Tensor& Qhat, const Tensor& s_hh, const Tensor& Chat,
    const Tensor& s_c, const Tensor& PhiN, const Tensor& cs, const Tensor& hs, const OptT& hin,
    bool need_dx, bool has_bias);
std::vector<Tensor> layernorm_gru_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                          const Tensor& w_hh, const OptT& b_ih,
                                          const OptT& b_hh, const Tensor& ln_ih,
                                          const Tensor& ln_hh, const OptT& mask,
                                          c10::ArrayRef<double> acts, const OptT& rec,
                                          const OptT& zone);
std::vector<Tensor> layernorm_gru_backward(
    const Tensor& dy, const Tensor& dh_T, const Tensor& x, const Tensor& w_ih,
    const Tensor& w_hh, const Tensor& ln_ih, const Tensor& ln_hh, const OptT& mask,
    c10::ArrayRef<double> acts, const OptT& rec, const OptT& zone, const Tensor& G,
    const Tensor& Vhat, const Tensor& s_ih, const Tensor& Uhat, const Tensor& s_hh,
    const Tensor& ghn, const Tensor& hs, const OptT& hin, bool need_dx, bool has_bias);
void release_workspace_op();
void set_aten_gemm(bool on);
}  // namespace rnnlab

TORCH_LIBRARY(rnnlab_cpu, m) {
  m.def("lstm_forward", &rnnlab::lstm_forward);
  m.def("lstm_backward", &rnnlab::lstm_backward);
  m.def("gru_forward", &rnnlab::gru_forward);
  m.def("gru_backward", &rnnlab::gru_backward);
  m.def("rnn_forward", &rnnlab::rnn_forward);
  m.def("rnn_backward", &rnnlab::rnn_backward);
  m.def("sru_forward", &rnnlab::sru_forward);
  m.def("sru_backward", &rnnlab::sru_backward);
  m.def("layernorm_lstm_forward", &rnnlab::layernorm_lstm_forward);
  m.def("layernorm_lstm_backward", &rnnlab::layernorm_lstm_backward);
  m.def("layernorm_gru_forward", &rnnlab::layernorm_gru_forward);
  m.def("layernorm_gru_backward", &rnnlab::layernorm_gru_backward);
  m.def("activation_forward", &rnnlab::activation_forward);
  m.def("activation_backward", &rnnlab::activation_backward);
  m.def("release_workspace", &rnnlab::release_workspace_op);
  m.def("set_aten_gemm", &rnnlab::set_aten_gemm);
}
