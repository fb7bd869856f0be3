// The activations of activations.h as torch operators over whole tensors, so that tests check
// each formula against rnnlab/activations.py (the Python definitions) directly.
#include "activations.h"

#include "common.h"

namespace rnnlab {

namespace {

template <typename T, bool kGrad>
Tensor map_rows(const Tensor& v, int64_t code, double alpha, double beta) {
  TORCH_CHECK(valid_act_code(static_cast<int>(code)), "rnnlab activation: code ", code,
              " is not an index of rnnlab.activations.NAMES");
  Tensor src = v.contiguous();
  Tensor out = at::empty(src.sizes(), src.options());
  const Act<T> act{static_cast<int>(code), static_cast<T>(alpha), static_cast<T>(beta)};
  if (kGrad)
    activation_grad(act, src.data_ptr<T>(), out.data_ptr<T>(), src.numel());
  else
    activate(act, src.data_ptr<T>(), out.data_ptr<T>(), src.numel());
  return out;
}

}  // namespace

Tensor activation_forward(const Tensor& a, int64_t code, double alpha, double beta) {
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "rnnlab_activation_forward", [&] {
    out = map_rows<scalar_t, false>(a, code, alpha, beta);
  });
  return out;
}

Tensor activation_backward(const Tensor& y, int64_t code, double alpha, double beta) {
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "rnnlab_activation_backward", [&] {
    out = map_rows<scalar_t, true>(y, code, alpha, beta);
  });
  return out;
}

}  // namespace rnnlab
