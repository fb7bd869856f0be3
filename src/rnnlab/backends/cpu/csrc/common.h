// Shared pieces of rnnlab's CPU engine: vectorisable activations (vecmath.h), the packed
// products (gemm.h) of each step and over all steps, and small helpers for the time loops.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "gemm.h"
#include "vecmath.h"


namespace rnnlab {

using at::Tensor;

// ---- scratch memory ---------------------------------------------------------------------------
// Buffers that live only within one call (packed weights, the backward's da, …) are taken from
// a per-thread cache that keeps its largest size, instead of fresh allocations: large fresh
// allocations are fresh pages from the OS at every call (page faults, zeroing), which cost as
// much as the arithmetic at small sizes. `release_workspace()` frees the cache.
enum Slot { kPackA = 0, kPackW, kStepW1, kStepW2, kGradA, kGradOut, kRowsScratch, kSlots };

inline std::vector<Tensor>& workspace_slots() {
  thread_local std::vector<Tensor> slots(kSlots);
  return slots;
}

// A contiguous tensor of `sizes` in cache slot `slot`, valid until the slot is asked again.
inline Tensor scratch(Slot slot, at::IntArrayRef sizes, const at::TensorOptions& opts) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  const int64_t bytes = n * static_cast<int64_t>(c10::elementSize(c10::typeMetaToScalarType(opts.dtype()))) + 64;
  Tensor& buf = workspace_slots()[slot];
  if (!buf.defined() || buf.numel() < bytes)
    buf = at::empty({bytes + bytes / 4}, at::TensorOptions().dtype(at::kByte));
  auto base = reinterpret_cast<uintptr_t>(buf.data_ptr<uint8_t>());
  const int64_t offset = static_cast<int64_t>(((base + 63) & ~uintptr_t(63)) - base);
  return buf.narrow(0, offset, bytes - 64).view(opts.dtype().toScalarType()).view(sizes);
}

inline void release_workspace() {
  for (Tensor& t : workspace_slots()) t = Tensor();
}

// ---- products ------------------------------------------------------------------------------
template <typename T>
inline T* align64(const Tensor& buffer) {  // the micro-kernel loads whole vectors from panels
  auto p = reinterpret_cast<uintptr_t>(buffer.data_ptr<T>());
  return reinterpret_cast<T*>((p + 63) & ~uintptr_t(63));
}

template <typename T>
inline Tensor panel_buffer(Slot slot, int64_t N, int64_t K) {
  return scratch(slot, {packed_size<T>(N, K) + 64 / static_cast<int64_t>(sizeof(T))},
                 at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

// C (M×N) (+)= op(A) · packed op(W), split over threads when the product is large enough:
// by panels when M fits one row block (a step's product), else by row blocks, each packing
// its block of op(A) (GotoBLAS order: K chunks, then panels, then 6-row groups).
template <typename T>
void run_packed(int64_t M, int64_t N, int64_t K, const T* A, int64_t ars, int64_t acs,
                const T* packed, bool accumulate, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate)
      for (int64_t m = 0; m < M; ++m) std::memset(C + m * ldc, 0, N * sizeof(T));
    return;
  }
  constexpr int64_t kMinParallelMacs = 1 << 17;
  constexpr int64_t NB = panel_width<T>();
  const Tiling tl = tiling<T>(M, N);
  const bool parallel = M * N * K >= kMinParallelMacs && at::get_num_threads() > 1 &&
                        !at::in_parallel_region();
  if (tl.row_blocks == 1) {
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      const int64_t kc = std::min(kKC, K - k0);
      const T* a = A + k0 * acs;
      const T* pk = packed + k0 * NB;  // chunk k0.. of every panel (panels stay K·NB apart)
      const bool acc = accumulate || k0 > 0;
      auto panels = [&](int64_t p0, int64_t p1) {
        gemm_block<T>(0, M, N, kc, K, a, ars, acs, 6 * ars, pk, acc, C, ldc, p0, p1);
      };
      if (parallel && tl.panels > 1) {
        const int64_t grain =
            std::max<int64_t>(1, kMinParallelMacs / 4 / std::max<int64_t>(M * NB * kc, 1));
        at::parallel_for(0, tl.panels, grain, panels);
      } else {
        panels(0, tl.panels);
      }
    }
    return;
  }
  // op(A) is packed only when its rows are not contiguous (Aᵀ of a row-major A, the weight
  // gradients); row-major A is read in place.
  const bool pack_a = acs != 1;
  auto row_blocks = [&](int64_t b0, int64_t b1) {
    Tensor a_buf = pack_a ? scratch(kPackA, {tl.rows * kKC},
                                    at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value))
                          : Tensor();
    T* a_pack = pack_a ? a_buf.data_ptr<T>() : nullptr;
    for (int64_t rb = b0; rb < b1; ++rb) {
      const int64_t m0 = rb * tl.rows, m1 = std::min(M, m0 + tl.rows);
      for (int64_t k0 = 0; k0 < K; k0 += kKC) {
        const int64_t kc = std::min(kKC, K - k0);
        const T* a = A + m0 * ars + k0 * acs;
        if (pack_a) {
          pack_rows<T>(a, ars, acs, m1 - m0, kc, a_pack);
          gemm_block<T>(m0, m1, N, kc, K, a_pack, 1, 6, 6 * kc, packed + k0 * NB,
                        accumulate || k0 > 0, C, ldc, 0, tl.panels);
        } else {
          gemm_block<T>(m0, m1, N, kc, K, a, ars, acs, 6 * ars, packed + k0 * NB,
                        accumulate || k0 > 0, C, ldc, 0, tl.panels);
        }
      }
    }
  };
  if (parallel)
    at::parallel_for(0, tl.row_blocks, 1, row_blocks);
  else
    row_blocks(0, tl.row_blocks);
}

inline bool aten_gemm() {  // RNNLAB_CPU_GEMM=aten: the all-steps products through ATen (BLAS)
  static const bool on = [] {
    const char* v = std::getenv("RNNLAB_CPU_GEMM");
    return v != nullptr && std::string(v) == "aten";
  }();
  return on;
}

// op(a) · op(w) for 2-D a, w with unit column stride (row slices of a buffer are fine): the
// products over all T·B rows (input projection, weight gradients, input gradient). `out`
// (contiguous rows, unit column stride), if given, is overwritten or accumulated into.
template <typename T>
Tensor matmul(const Tensor& a, bool trans_a, const Tensor& w, bool trans_w,
              Tensor out = Tensor(), bool accumulate = false) {
  TORCH_CHECK(a.dim() == 2 && w.dim() == 2 && a.stride(1) == 1 && w.stride(1) == 1,
              "rnnlab matmul: 2-D operands with unit column stride expected");
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_w ? w.size(0) : w.size(1);
  if (!out.defined()) {
    out = at::empty({M, N}, a.options());
    accumulate = false;
  }
  TORCH_CHECK(out.stride(1) == 1 && out.size(0) == M && out.size(1) == N, "rnnlab matmul: out");
  if (aten_gemm()) {
    Tensor lhs = trans_a ? a.t() : a, rhs = trans_w ? w.t() : w;
    if (accumulate) out.addmm_(lhs, rhs); else at::mm_out(out, lhs, rhs);
    return out;
  }
  Tensor buffer = panel_buffer<T>(kPackW, N, K);
  T* packed = align64<T>(buffer);
  pack_panels<T>(w.data_ptr<T>(), w.stride(0), trans_w, N, K, packed);
  const int64_t ars = trans_a ? 1 : a.stride(0), acs = trans_a ? a.stride(0) : 1;
  run_packed<T>(M, N, K, a.data_ptr<T>(), ars, acs, packed, accumulate, out.data_ptr<T>(),
                out.stride(0));
  return out;
}

// The right operand of every step's product, A (M×K) · op(W) (K×N): a weight reused T times,
// packed once per sequence.
template <typename T>
class StepWeight {
 public:
  // op(W) = Wᵀ (W: N×K, leading dimension ld) when trans, else W (K×N)
  StepWeight(Slot slot, const T* w, int64_t ld, bool trans, int64_t N, int64_t K)
      : N_(N), K_(K), buffer_(panel_buffer<T>(slot, N, K)) {
    pack_panels<T>(w, ld, trans, N, K, align64<T>(buffer_));
  }

  // C = A op(W) (+ C when accumulate), A of shape (M, K) with leading dimension lda
  void apply(int64_t M, const T* A, int64_t lda, bool accumulate, T* C, int64_t ldc) const {
    run_packed<T>(M, N_, K_, A, lda, 1, align64<T>(buffer_), accumulate, C, ldc);
  }

 private:
  int64_t N_, K_;
  Tensor buffer_;
};

// ---- loops over the batch rows of one step ---------------------------------------------------
// Work of one step is split over threads only when it is large enough to pay for the fork.
template <typename F>
inline void for_rows(int64_t rows, int64_t work_per_row, const F& f) {
  constexpr int64_t kMinParallelWork = 32768;
  if (rows > 1 && rows * work_per_row >= kMinParallelWork && at::get_num_threads() > 1) {
    int64_t grain = std::max<int64_t>(1, kMinParallelWork / 2 / std::max<int64_t>(work_per_row, 1));
    at::parallel_for(0, rows, grain, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) f(b);
    });
  } else {
    for (int64_t b = 0; b < rows; ++b) f(b);
  }
}

template <typename T>
inline const T* ptr_or_null(const c10::optional<Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr<T>() : nullptr;
}

inline bool has(const c10::optional<Tensor>& t) { return t.has_value() && t->defined(); }

// x (T, B, F) as (T·B, F)
inline Tensor flat(const Tensor& t) { return t.reshape({-1, t.size(-1)}); }

}  // namespace rnnlab
