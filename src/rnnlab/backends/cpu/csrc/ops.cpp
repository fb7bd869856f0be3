// Registration of rnnlab's CPU engine as torch operators (torch.ops.rnnlab_cpu.*), called by
// rnnlab/backends/cpu/functions.py. Optional tensors come as None; outputs that a
// configuration does not produce are returned as empty tensors.
#include <torch/library.h>

#include <vector>

namespace rnnlab {
using at::Tensor;
using OptT = c10::optional<Tensor>;

std::vector<Tensor> lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_ih, const Tensor& w_hh, const OptT& bias,
                                 const OptT& peephole, const OptT& w_hr, const OptT& mask,
                                 double cell_clip, bool coupled);
std::vector<Tensor> lstm_backward(const Tensor& dy, const Tensor& dh_T, const Tensor& dc_T,
                                  const Tensor& x, const Tensor& w_ih, const Tensor& w_hh,
                                  const OptT& peephole, const OptT& w_hr, const OptT& mask,
                                  const Tensor& gates, const Tensor& cs, const Tensor& hs,
                                  const OptT& ms, const OptT& clipped, bool coupled,
                                  bool need_dx, bool has_bias);
void release_workspace_op();
}  // namespace rnnlab

TORCH_LIBRARY(rnnlab_cpu, m) {
  m.def("lstm_forward", &rnnlab::lstm_forward);
  m.def("lstm_backward", &rnnlab::lstm_backward);
  m.def("release_workspace", &rnnlab::release_workspace_op);
}
