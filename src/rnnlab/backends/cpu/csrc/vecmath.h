// Vectorisable activations of rnnlab's CPU engine: branch-free exp (Cody-Waite reduction and a
// polynomial) that the compiler turns into SIMD code inside `omp simd` loops.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(_OPENMP)
#define RNNLAB_SIMD _Pragma("omp simd")
#else
#define RNNLAB_SIMD
#endif

#if defined(__GNUC__)
#define RNNLAB_INLINE inline __attribute__((always_inline))
#else
#define RNNLAB_INLINE inline
#endif

namespace rnnlab {

// float: ~1 ulp; double: ~2 ulp; NaN propagates.
RNNLAB_INLINE float exp_(float x) {
  x = x < -87.0f ? -87.0f : x;  // comparisons, not fmin/fmax: NaN stays NaN
  x = x > 88.0f ? 88.0f : x;
  const float shift = 12582912.0f;  // 1.5 * 2^23: rounds to the nearest integer on addition
  float t = x * 1.44269504088896341f + shift;
  float n = t - shift;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // t = shift + n exactly, so n sits in the low bits of t's representation
  int32_t t_bits, shift_bits;
  std::memcpy(&t_bits, &t, sizeof t);
  std::memcpy(&shift_bits, &shift, sizeof shift);
  int32_t bits = (t_bits - shift_bits + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

RNNLAB_INLINE double exp_(double x) {
  x = x < -708.0 ? -708.0 : x;
  x = x > 709.0 ? 709.0 : x;
  const double shift = 6755399441055744.0;  // 1.5 * 2^52
  double t = x * 1.4426950408889634074 + shift;
  double n = t - shift;
  double r = x - n * 6.93145751953125e-1;
  r = r - n * 1.42860682030941723212e-6;
  // Taylor to degree 13 on |r| <= ln2/2: truncation below 2e-17 relative
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t t_bits, shift_bits;
  std::memcpy(&t_bits, &t, sizeof t);
  std::memcpy(&shift_bits, &shift, sizeof shift);
  int64_t bits = (t_bits - shift_bits + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

template <typename T>
RNNLAB_INLINE T sigmoid_(T x) {
  return T(1) / (T(1) + exp_(-x));
}

template <typename T>
RNNLAB_INLINE T tanh_(T x) {
  // 1 - 2/(1 + e^{2x}): exact limits ±1, absolute error ~ machine epsilon
  return T(1) - T(2) / (T(1) + exp_(T(2) * x));
}

}  // namespace rnnlab
