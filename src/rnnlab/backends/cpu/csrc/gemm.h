// GEMM of rnnlab's CPU engine, C (M×N) (+)= op(A) (M×K) · op(W) (K×N). op(W) is packed into
// column panels of NB values (panel p holds op(W)[k][p·NB …] for every k, contiguous) -- once
// per sequence for a recurrent weight reused at every step -- and a register-blocked
// micro-kernel runs over the panels: 6 rows of A broadcast against NB/L vector accumulators
// per row. Written with GCC/Clang vector extensions, so it compiles to the widest vectors the
// target flags allow (AVX-512 or AVX2 + FMA, as torch dispatches) and to plain SSE/NEON elsewhere. No ATen dependency.
//
// Why not BLAS: torch's CPU wheels call MKL, whose small-M products (one time step: M = batch)
// pay a call and repacking overhead per step and, on non-Intel CPUs, run MKL's generic code
// path; this kernel measured 1.2-3x faster for every step shape of the benchmark
// (benchmarks/results/cpu_engine.md). op(A) is read through strides (row, column).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace rnnlab {

// The vector width: 512-bit where the build targets AVX-512 (twice the values per FMA and per
// load; measured 1.3x faster LSTM training and 1.7x faster inference at B = 16, H = 128 on an
// AVX-512 EPYC, benchmarks/results/cpu_engine_avx512.md), else 256-bit.
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#else
constexpr int kVecBytes = 32;
#endif

template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef float V __attribute__((vector_size(kVecBytes)));
  static constexpr int L = kVecBytes / 4;
};
template <>
struct Vec<double> {
  typedef double V __attribute__((vector_size(kVecBytes)));
  static constexpr int L = kVecBytes / 8;
};

constexpr int kPanelVecs = 2;  // vectors per panel row: 16 floats / 8 doubles on AVX2

template <typename T>
constexpr int64_t panel_width() {
  return kPanelVecs * Vec<T>::L;
}

template <typename T>
inline int64_t panel_count(int64_t N) {
  return (N + panel_width<T>() - 1) / panel_width<T>();
}

template <typename T>
inline int64_t packed_size(int64_t N, int64_t K) {
  return panel_count<T>(N) * K * panel_width<T>();
}

// dst[p][k][i] = op(W)[k][p·NB + i] (0 past N); op(W) = W (K×N, trans=false) or Wᵀ (W: N×K).
template <typename T>
void pack_panels(const T* w, int64_t ld, bool trans, int64_t N, int64_t K, T* dst) {
  constexpr int64_t NB = panel_width<T>();
  const int64_t P = panel_count<T>(N);
  for (int64_t p = 0; p < P; ++p) {
    T* panel = dst + p * K * NB;
    const int64_t n0 = p * NB, nn = std::min(NB, N - n0);
    if (nn < NB) std::memset(panel, 0, K * NB * sizeof(T));
    if (trans) {  // column n of op(W) is row n of W
      for (int64_t i = 0; i < nn; ++i) {
        const T* src = w + (n0 + i) * ld;
        for (int64_t k = 0; k < K; ++k) panel[k * NB + i] = src[k];
      }
    } else {
      for (int64_t k = 0; k < K; ++k) std::memcpy(panel + k * NB, w + k * ld + n0, nn * sizeof(T));
    }
  }
}

// C[0:MB, cols of one panel] (+)= A[0:MB, :] · panel. KU: independent partial sums over k
// (latency hiding when MB is small).
template <typename T, int MB, int KU>
inline __attribute__((always_inline)) void micro_kernel(int64_t K, const T* __restrict A,
                                                        int64_t ars, int64_t acs,
                                                        const T* __restrict panel,
                                                        T* __restrict C, int64_t ldc,
                                                        int64_t nvalid, bool accumulate) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  constexpr int NV = kPanelVecs;
  constexpr int64_t NB = NV * L;
  V acc[KU][MB][NV];
  for (int u = 0; u < KU; ++u)
    for (int m = 0; m < MB; ++m)
      for (int v = 0; v < NV; ++v) acc[u][m][v] = V{};
  int64_t k = 0;
  for (; k + KU <= K; k += KU) {
#pragma GCC unroll 4
    for (int u = 0; u < KU; ++u) {
      const V* w = reinterpret_cast<const V*>(panel + (k + u) * NB);
      V wv[NV];
      for (int v = 0; v < NV; ++v) wv[v] = w[v];
#pragma GCC unroll 8
      for (int m = 0; m < MB; ++m) {
        const T a = A[m * ars + (k + u) * acs];
        for (int v = 0; v < NV; ++v) acc[u][m][v] += a * wv[v];
      }
    }
  }
  for (; k < K; ++k) {
    const V* w = reinterpret_cast<const V*>(panel + k * NB);
    for (int m = 0; m < MB; ++m) {
      const T a = A[m * ars + k * acs];
      for (int v = 0; v < NV; ++v) acc[0][m][v] += a * w[v];
    }
  }
  for (int u = 1; u < KU; ++u)
    for (int m = 0; m < MB; ++m)
      for (int v = 0; v < NV; ++v) acc[0][m][v] += acc[u][m][v];
  for (int m = 0; m < MB; ++m) {
    T* c = C + m * ldc;
    if (nvalid == NB) {
      for (int v = 0; v < NV; ++v) {
        V old;
        if (accumulate) {
          std::memcpy(&old, c + v * L, sizeof(V));
          old += acc[0][m][v];
        } else {
          old = acc[0][m][v];
        }
        std::memcpy(c + v * L, &old, sizeof(V));
      }
    } else {
      T tmp[NB];
      std::memcpy(tmp, acc[0][m], sizeof(tmp));
      for (int64_t i = 0; i < nvalid; ++i) c[i] = accumulate ? c[i] + tmp[i] : tmp[i];
    }
  }
}

// C[rows m0..m1) (M×N) (+)= op(A) · packed op(W), panels [p0, p1);
// op(A)[m][k] = A[m·ars + k·acs] with A pointing at row m0.
// K: the depth of this call (a chunk); K_total: the depth packed (panels are K_total·NB apart).
// Rows m0..m1 of C; op(A)'s rows in groups of 6, group g at A + g·a_group (6·ars unpacked).
template <typename T>
void gemm_block(int64_t m0, int64_t m1, int64_t N, int64_t K, int64_t K_total, const T* A,
                int64_t ars, int64_t acs, int64_t a_group, const T* packed, bool accumulate,
                T* C, int64_t ldc, int64_t p0, int64_t p1) {
  constexpr int64_t NB = panel_width<T>();
  for (int64_t p = p0; p < p1; ++p) {
    const T* panel = packed + p * K_total * NB;
    const int64_t n0 = p * NB, nvalid = std::min(NB, N - n0);
    int64_t m = m0;
#define RNNLAB_KERNEL(MB, KU)                                                              \
  micro_kernel<T, MB, KU>(K, A + (m - m0) / 6 * a_group, ars, acs, panel, C + m * ldc + n0, \
                          ldc, nvalid, accumulate)
    for (; m + 6 <= m1; m += 6) RNNLAB_KERNEL(6, 1);
    switch (m1 - m) {
      case 5: RNNLAB_KERNEL(5, 1); break;
      case 4: RNNLAB_KERNEL(4, 1); break;
      case 3: RNNLAB_KERNEL(3, 2); break;
      case 2: RNNLAB_KERNEL(2, 2); break;
      case 1: RNNLAB_KERNEL(1, 4); break;
      default: break;
    }
#undef RNNLAB_KERNEL
  }
}

// Blocking of an M×N×K product (GotoBLAS order): K in chunks of kKC, so that a panel's chunk
// (kKC × NB values) stays in L1 across a row block, and a row block of op(A) (rows × kKC) stays
// in L2 across the panels.
#ifndef RNNLAB_KC
#define RNNLAB_KC 256
#endif
#ifndef RNNLAB_MC
#define RNNLAB_MC 96
#endif
constexpr int64_t kKC = RNNLAB_KC;
constexpr int64_t kMC = RNNLAB_MC;  // a multiple of the micro-kernel's 6 rows

// op(A)[m0.., k0..] (rows × kc) into groups of 6 rows, k-major within a group (zero-padded):
// the micro-kernel then reads 6 contiguous values per k, whatever op(A)'s layout.
template <typename T>
void pack_rows(const T* A, int64_t ars, int64_t acs, int64_t rows, int64_t kc, T* dst) {
  const int64_t groups = (rows + 5) / 6;
  if (rows % 6) std::memset(dst + (groups - 1) * 6 * kc, 0, 6 * kc * sizeof(T));
  if (ars == 1) {  // op(A) = Aᵀ of a row-major A: read A's rows (k) contiguously
    const int64_t full = rows / 6;
    for (int64_t k = 0; k < kc; ++k) {
      const T* in = A + k * acs;
      T* out = dst + k * 6;
      if (k + 8 < kc)  // rows are far apart: help the prefetcher
        for (int64_t m = 0; m < rows; m += 64 / static_cast<int64_t>(sizeof(T)))
          __builtin_prefetch(in + 8 * acs + m);
      for (int64_t g = 0; g < full; ++g)
        for (int64_t r = 0; r < 6; ++r) out[g * 6 * kc + r] = in[g * 6 + r];
      for (int64_t m = full * 6; m < rows; ++m) out[full * 6 * kc + m - full * 6] = in[m];
    }
  } else {
    for (int64_t m = 0; m < rows; ++m) {
      T* out = dst + (m / 6) * 6 * kc + m % 6;
      const T* in = A + m * ars;
      for (int64_t k = 0; k < kc; ++k) out[k * 6] = in[k * acs];
    }
  }
}

struct Tiling {
  int64_t rows, row_blocks, panels;
};

// `threads` > 1: row blocks small enough that every thread gets about two.
template <typename T>
inline Tiling tiling(int64_t M, int64_t N, int threads = 1) {
  int64_t rows = std::min<int64_t>(kMC, ((M + 5) / 6) * 6);
  if (threads > 1) {
    const int64_t share = (M + 2 * threads - 1) / (2 * threads);
    rows = std::min<int64_t>(rows, std::max<int64_t>(6, ((share + 5) / 6) * 6));
  }
  return {rows, (M + rows - 1) / rows, panel_count<T>(N)};
}

}  // namespace rnnlab
