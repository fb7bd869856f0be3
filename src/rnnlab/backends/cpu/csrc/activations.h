// The activations of rnnlab/activations.py for rnnlab's CPU engine: an activation is a code
// (its index in rnnlab.activations.NAMES) and two parameters alpha, beta -- what
// `Activation.kernel_args` gives -- applied to a pre-activation a, and differentiated from
// its output y = φ(a) (so a backward needs only what the forward stored):
//
//   code  name              y = φ(a)                         φ' from the output y
//   0     sigmoid           1 / (1 + e^{-a})                 y (1 - y)
//   1     tanh              tanh(a)                          1 - y²
//   2     relu              max(a, 0)                        [y > 0]
//   3     hard_sigmoid      clamp(α a + β, 0, 1)             α [0 < y < 1]
//   4     leaky_relu        a if a ≥ 0 else α a              1 if y > 0 else α
//   5     thresholded_relu  a if a > α else 0                [y ≠ 0]
//   6     scaled_tanh       α tanh(β a)                      β (α - y²/α)
//   7     affine            α a + β                          α
//   8     elu               a if a > 0 else α (e^a - 1)      1 if y > 0 else y + α
//   9     softsign          a / (1 + |a|)                    (1 - |y|)²
//   10    softplus          log(1 + e^a)                     1 - e^{-y}
//
// `act_apply<K>` / `act_grad<K>` are the branch-free scalar formulas of code K, for loops that
// know their activation at compile time (`with_code` turns a run-time code into one); the row
// functions `activate` and `activation_grad` pick the formula once per row and run one `omp
// simd` loop of it. Every formula is built from vecmath.h's exp_ and tanh_ and a log1p on
// [0, 1] below, so each loop vectorises.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "vecmath.h"

namespace rnnlab {

enum ActCode : int {
  kSigmoid = 0,
  kTanh,
  kRelu,
  kHardSigmoid,
  kLeakyRelu,
  kThresholdedRelu,
  kScaledTanh,
  kAffine,
  kElu,
  kSoftsign,
  kSoftplus,
  kActCount
};

// One activation: code and parameters (absent parameters are 0, as in kernel_args).
template <typename T>
struct Act {
  int code = kSigmoid;
  T alpha = T(0), beta = T(0);
};

// The activation stored at args[0..2] = (code, alpha, beta), as the ops receive it.
template <typename T>
inline Act<T> act_at(const double* args) {
  return {static_cast<int>(args[0]), static_cast<T>(args[1]), static_cast<T>(args[2])};
}

// log(1 + u) for 0 ≤ u ≤ 1: m = 1 + u scaled into [√½, √2] (m/2 and + log 2 above √2), then
// log m = 2 atanh(s) = 2 (s + s³/3 + s⁵/5 + …) with s = (m - 1)/(m + 1), |s| ≤ 0.1716; the
// series to s²³ (double) or s¹³ (float) is below the type's rounding. Absolute error ~1 ulp of 1.
template <typename T>
RNNLAB_INLINE T log1p_unit_(T u) {
  T m = T(1) + u;
  const bool high = m > T(1.41421356237309504880);
  m = high ? m * T(0.5) : m;
  const T s = (m - T(1)) / (m + T(1));
  const T s2 = s * s;
  T p;
  if constexpr (std::is_same_v<T, double>) {
    p = 1.0 / 23;
    p = p * s2 + 1.0 / 21;
    p = p * s2 + 1.0 / 19;
    p = p * s2 + 1.0 / 17;
    p = p * s2 + 1.0 / 15;
    p = p * s2 + 1.0 / 13;
    p = p * s2 + 1.0 / 11;
    p = p * s2 + 1.0 / 9;
  } else {
    p = T(1) / T(13);
    p = p * s2 + T(1) / T(11);
    p = p * s2 + T(1) / T(9);
  }
  p = p * s2 + T(1) / T(7);
  p = p * s2 + T(1) / T(5);
  p = p * s2 + T(1) / T(3);
  p = p * s2 + T(1);
  return T(2) * s * p + (high ? T(0.693147180559945309417) : T(0));
}

// y = φ(a) for the activation of code K, parameters al, be.
template <int K, typename T>
RNNLAB_INLINE T act_apply(T a, T al, T be) {
  if constexpr (K == kSigmoid) {
    return sigmoid_(a);
  } else if constexpr (K == kTanh) {
    return tanh_(a);
  } else if constexpr (K == kRelu) {
    return a > T(0) ? a : T(0);
  } else if constexpr (K == kHardSigmoid) {
    T v = a * al + be;
    v = v < T(0) ? T(0) : v;
    return v > T(1) ? T(1) : v;
  } else if constexpr (K == kLeakyRelu) {
    return a > T(0) ? a : a * al;
  } else if constexpr (K == kThresholdedRelu) {
    return a > al ? a : T(0);
  } else if constexpr (K == kScaledTanh) {
    return al * tanh_(be * a);
  } else if constexpr (K == kAffine) {
    return a * al + be;
  } else if constexpr (K == kElu) {
    return a > T(0) ? a : al * (exp_(a) - T(1));
  } else if constexpr (K == kSoftsign) {
    return a / (T(1) + (a < T(0) ? -a : a));
  } else {
    static_assert(K == kSoftplus, "unknown activation code");
    // log(1 + e^a) = max(a, 0) + log(1 + e^{-|a|})
    const T abs_a = a < T(0) ? -a : a;
    return (a > T(0) ? a : T(0)) + log1p_unit_(exp_(-abs_a));
  }
}

// φ'(a) written from the output y = φ(a), for the activation of code K.
template <int K, typename T>
RNNLAB_INLINE T act_grad(T y, T al, T be) {
  if constexpr (K == kSigmoid) {
    return y * (T(1) - y);
  } else if constexpr (K == kTanh) {
    return T(1) - y * y;
  } else if constexpr (K == kRelu) {
    return y > T(0) ? T(1) : T(0);
  } else if constexpr (K == kHardSigmoid) {
    return (y > T(0) && y < T(1)) ? al : T(0);
  } else if constexpr (K == kLeakyRelu) {
    return y > T(0) ? T(1) : al;
  } else if constexpr (K == kThresholdedRelu) {
    return y != T(0) ? T(1) : T(0);
  } else if constexpr (K == kScaledTanh) {
    return (al - y * y / al) * be;
  } else if constexpr (K == kAffine) {
    return al;
  } else if constexpr (K == kElu) {
    return y > T(0) ? T(1) : y + al;
  } else if constexpr (K == kSoftsign) {
    const T r = T(1) - (y < T(0) ? -y : y);
    return r * r;
  } else {
    static_assert(K == kSoftplus, "unknown activation code");
    return T(1) - exp_(-y);
  }
}

// f(std::integral_constant<int, code>{}): a run-time code as a compile-time one.
template <typename F>
inline void with_code(int code, F&& f) {
  switch (code) {
    case kSigmoid: f(std::integral_constant<int, kSigmoid>{}); break;
    case kTanh: f(std::integral_constant<int, kTanh>{}); break;
    case kRelu: f(std::integral_constant<int, kRelu>{}); break;
    case kHardSigmoid: f(std::integral_constant<int, kHardSigmoid>{}); break;
    case kLeakyRelu: f(std::integral_constant<int, kLeakyRelu>{}); break;
    case kThresholdedRelu: f(std::integral_constant<int, kThresholdedRelu>{}); break;
    case kScaledTanh: f(std::integral_constant<int, kScaledTanh>{}); break;
    case kAffine: f(std::integral_constant<int, kAffine>{}); break;
    case kElu: f(std::integral_constant<int, kElu>{}); break;
    case kSoftsign: f(std::integral_constant<int, kSoftsign>{}); break;
    default: f(std::integral_constant<int, kSoftplus>{}); break;
  }
}

inline bool valid_act_code(int code) { return code >= 0 && code < kActCount; }

// y[j] = φ(a[j]) for j < n (y may be a: in place).
template <typename T>
inline void activate(const Act<T>& act, const T* a, T* y, int64_t n) {
  const T al = act.alpha, be = act.beta;
  with_code(act.code, [&](auto K) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) y[j] = act_apply<decltype(K)::value>(a[j], al, be);
  });
}

// d[j] = φ'(a[j]) from the outputs y[j] = φ(a[j]), j < n (d may be y: in place).
template <typename T>
inline void activation_grad(const Act<T>& act, const T* y, T* d, int64_t n) {
  const T al = act.alpha, be = act.beta;
  with_code(act.code, [&](auto K) {
    RNNLAB_SIMD
    for (int64_t j = 0; j < n; ++j) d[j] = act_grad<decltype(K)::value>(y[j], al, be);
  });
}

}  // namespace rnnlab
