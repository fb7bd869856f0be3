// Shared pieces of rnnlab's CPU engine: vectorisable activations (vecmath.h), the packed
// products (gemm.h) of each step and over all steps, and small helpers for the time loops.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "gemm.h"
#include "vecmath.h"

#if defined(_OPENMP)
#include <omp.h>
#endif


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
  const auto dtype = c10::typeMetaToScalarType(opts.dtype());
  const int64_t bytes = n * static_cast<int64_t>(c10::elementSize(dtype)) + 64;
  Tensor& buf = workspace_slots()[slot];
  if (!buf.defined() || buf.numel() < bytes)
    buf = at::empty({bytes + bytes / 4}, at::TensorOptions().dtype(at::kByte));
  auto base = reinterpret_cast<uintptr_t>(buf.data_ptr<uint8_t>());
  const int64_t offset = static_cast<int64_t>(((base + 63) & ~uintptr_t(63)) - base);
  return buf.narrow(0, offset, bytes - 64).view(opts.dtype().toScalarType()).view(sizes);
}

inline void release_workspace();

// ---- a pool for the buffers kept between forward and backward ---------------------------------
// The gates and states a forward saves for its backward are large and short-lived; fresh from
// the OS each call they cost page faults and zeroing comparable to the arithmetic. Buffers from
// `saved_empty` return to this pool when their tensor dies and are reused by later calls (up to
// kMaxPooled bytes kept). Only internal tensors come from it, never a tensor handed to the user.
class BufferPool {
 public:
  static BufferPool& get() {
    static BufferPool* pool = new BufferPool();  // never destroyed: deleters may run at exit
    return *pool;
  }

  void* take(size_t bytes, size_t* got) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(bytes);
      if (it != free_.end() && it->first <= bytes + bytes / 2) {
        void* p = it->second;
        *got = it->first;
        cached_ -= it->first;
        free_.erase(it);
        return p;
      }
    }
    *got = bytes;
    void* p = std::aligned_alloc(64, bytes);
    TORCH_CHECK(p != nullptr, "rnnlab cpu engine: out of memory (", bytes, " bytes)");
    return p;
  }

  void give(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + bytes > kMaxPooled) {
      std::free(p);
      return;
    }
    free_.emplace(bytes, p);
    cached_ += bytes;
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& kv : free_) std::free(kv.second);
    free_.clear();
    cached_ = 0;
  }

 private:
  static constexpr size_t kMaxPooled = size_t(512) << 20;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  size_t cached_ = 0;
};

// An uninitialised contiguous tensor whose memory comes from (and returns to) the pool.
inline Tensor saved_empty(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  const size_t item = c10::elementSize(c10::typeMetaToScalarType(opts.dtype()));
  const size_t bytes = ((std::max<int64_t>(n, 1) * item + 4095) / 4096) * 4096;
  size_t got = 0;
  void* p = BufferPool::get().take(bytes, &got);
  return at::from_blob(p, sizes, [got](void* q) { BufferPool::get().give(q, got); },
                       opts.device(at::kCPU));
}

inline void release_workspace() {
  for (Tensor& t : workspace_slots()) t = Tensor();
  BufferPool::get().clear();
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
  constexpr int64_t kMinParallelMacs = 1 << 18;
  constexpr int64_t NB = panel_width<T>();
  const bool parallel = M * N * K >= kMinParallelMacs && at::get_num_threads() > 1 &&
                        !at::in_parallel_region();
  const Tiling tl = tiling<T>(M, N, parallel ? at::get_num_threads() : 1);
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

// The all-steps products (input projection, weight and input gradients) through ATen (torch's
// BLAS) instead of the packed kernel: RNNLAB_CPU_GEMM=aten, or set_aten_gemm(true), for
// comparisons. The products of each step always use the packed kernel.
inline std::atomic<bool>& aten_gemm_flag() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("RNNLAB_CPU_GEMM");
    return v != nullptr && std::string(v) == "aten";
  }()};
  return on;
}

inline bool aten_gemm() { return aten_gemm_flag().load(std::memory_order_relaxed); }

// The weight gradients (long sums over all T·B rows) measured faster through ATen's BLAS than
// through the packed kernel; RNNLAB_CPU_GEMM=packed sends them to the packed kernel.
inline bool packed_weight_grads() {
  static const bool on = [] {
    const char* v = std::getenv("RNNLAB_CPU_GEMM");
    return v != nullptr && std::string(v) == "packed";
  }();
  return on && !aten_gemm();
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

// Weight gradients dᵀ·src over all T·B rows, for each src: d (rows × G, unit column stride),
// src (rows × F_i). Through ATen's BLAS by default; with the packed kernel, computed as
// (srcᵀ·d)ᵀ so that d -- the wide gradient of the gates -- is packed once with contiguous
// copies and shared, and only the narrow srcᵀ is gathered.
template <typename T>
std::vector<Tensor> weight_grads(const Tensor& d, std::initializer_list<Tensor> srcs) {
  std::vector<Tensor> out;
  if (!packed_weight_grads()) {
    for (const Tensor& src : srcs) out.push_back(at::mm(d.t(), src));
    return out;
  }
  TORCH_CHECK(d.dim() == 2 && d.stride(1) == 1, "rnnlab weight_grads: d");
  const int64_t K = d.size(0), G = d.size(1);
  Tensor buffer = panel_buffer<T>(kPackW, G, K);
  T* packed = align64<T>(buffer);
  pack_panels<T>(d.data_ptr<T>(), d.stride(0), /*trans=*/false, G, K, packed);
  for (const Tensor& src : srcs) {
    TORCH_CHECK(src.dim() == 2 && src.stride(1) == 1 && src.size(0) == K, "rnnlab weight_grads");
    const int64_t F = src.size(1);
    Tensor c = at::empty({F, G}, d.options());  // srcᵀ·d
    run_packed<T>(F, G, K, src.data_ptr<T>(), 1, src.stride(0), packed, false, c.data_ptr<T>(), G);
    out.push_back(c.t().contiguous());
  }
  return out;
}

// The right operand of every step's product, A (M×K) · op(W) (K×N): a weight reused T times,
// packed once per sequence. op(W)'s N columns are `blocks` gate blocks of `width` columns (4 for
// an LSTM's i, f, g, o), each packed into its own panels, so that a thread can compute the
// columns [j0, j1) of every gate -- all the gates of its hidden units -- and run the cell on
// them without waiting for the other threads (see `team`).
template <typename T>
class StepWeight {
 public:
  // op(W) = Wᵀ (W: N×K, leading dimension ld) when trans, else W (K×N); N = blocks·width
  StepWeight(Slot slot, const T* w, int64_t ld, bool trans, int64_t blocks, int64_t width,
             int64_t K)
      : blocks_(blocks), width_(width), K_(K), block_size_(packed_size<T>(width, K)),
        buffer_(scratch(slot, {blocks * block_size_ + 64 / static_cast<int64_t>(sizeof(T))},
                        at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value))) {
    T* dst = align64<T>(buffer_);
    for (int64_t b = 0; b < blocks; ++b) {
      const T* src = trans ? w + b * width * ld : w + b * width;
      pack_panels<T>(src, ld, trans, width, K, dst + b * block_size_);
    }
  }

  // C[:, every block's columns j0..j1) = A op(W) (+ C when accumulate); A (M, K), leading
  // dimension lda; j0 a multiple of the panel width. Serial: the caller splits the work.
  void apply_units(int64_t M, const T* A, int64_t lda, bool accumulate, T* C, int64_t ldc,
                   int64_t j0, int64_t j1) const {
    if (j1 <= j0 || M == 0) return;
    constexpr int64_t NB = panel_width<T>();
    const int64_t p0 = j0 / NB, p1 = (j1 + NB - 1) / NB;
    const T* packed = align64<T>(buffer_);
    for (int64_t k0 = 0; k0 < K_; k0 += kKC) {
      const int64_t kc = std::min(kKC, K_ - k0);
      for (int64_t b = 0; b < blocks_; ++b)
        gemm_block<T>(0, M, width_, kc, K_, A + k0, lda, 1, 6 * lda,
                      packed + b * block_size_ + k0 * NB, accumulate || k0 > 0,
                      C + b * width_, ldc, p0, p1);
    }
  }

  // All columns, split over threads by panels when worth it (outside a `team`).
  void apply(int64_t M, const T* A, int64_t lda, bool accumulate, T* C, int64_t ldc) const {
    constexpr int64_t NB = panel_width<T>();
    const int64_t panels = panel_count<T>(width_);
    constexpr int64_t kMinParallelMacs = 1 << 17;
    if (M * blocks_ * width_ * K_ >= kMinParallelMacs && panels > 1 &&
        at::get_num_threads() > 1 && !at::in_parallel_region()) {
      at::parallel_for(0, panels, 1, [&](int64_t q0, int64_t q1) {
        apply_units(M, A, lda, accumulate, C, ldc, q0 * NB, std::min(width_, q1 * NB));
      });
    } else {
      apply_units(M, A, lda, accumulate, C, ldc, 0, width_);
    }
  }

 private:
  int64_t blocks_, width_, K_, block_size_;
  Tensor buffer_;
};

// ---- a team of threads over the whole time loop ------------------------------------------------
// Each thread owns a slice of the hidden units for the whole sequence: it computes their columns
// of every gate and runs their cells, so a step needs one barrier (the next step reads all of
// h_t), not the fork and join of every parallel op. Small steps run on one thread.
struct Units {
  int64_t j0, j1;
};

// The slice of `width` units (panel-aligned) of thread `tid` among `nth`.
template <typename T>
inline Units unit_slice(int64_t width, int tid, int nth) {
  constexpr int64_t NB = panel_width<T>();
  const int64_t panels = panel_count<T>(width);
  const int64_t per = (panels + nth - 1) / nth;
  const int64_t p0 = std::min(panels, tid * per), p1 = std::min(panels, p0 + per);
  return {std::min(width, p0 * NB), std::min(width, p1 * NB)};
}

// Threads for a loop whose steps cost `macs` multiply-adds on `width` units.
template <typename T>
inline int team_size(int64_t macs, int64_t width) {
  constexpr int64_t kMinTeamMacs = 1 << 16;
  if (macs < kMinTeamMacs || at::in_parallel_region()) return 1;
  const int64_t panels = panel_count<T>(width);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), panels)));
}

// body(tid, nth) on nth threads; `barrier()` inside it synchronises the team.
template <typename F>
inline void team(int nth, const F& body) {
#if defined(_OPENMP)
  if (nth > 1) {
#pragma omp parallel num_threads(nth)
    body(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  body(0, 1);
}

inline void barrier(int nth) {
#if defined(_OPENMP)
  if (nth > 1) {
#pragma omp barrier
  }
#else
  (void)nth;
#endif
}

inline bool has(const c10::optional<Tensor>& t) { return t.has_value() && t->defined(); }

// f(std::true_type{}) or f(std::false_type{}): a run-time switch as a compile-time one, so that
// one loop body compiles with and without an option (`if constexpr` inside).
template <typename F>
inline void with_flag(bool on, F&& f) {
  if (on)
    f(std::true_type{});
  else
    f(std::false_type{});
}

// x (T, B, F) as (T·B, F)
inline Tensor flat(const Tensor& t) { return t.reshape({-1, t.size(-1)}); }

}  // namespace rnnlab
