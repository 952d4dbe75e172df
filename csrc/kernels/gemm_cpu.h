// A packed GEMM, CPU forms, torch-free:
//
//   C (m, n) = A (m, k) @ B (k, n) + beta * C     (beta 0: C is only written, never read)
//
// A and B are addressed through (row, column) strides, so transposed views need no copy;
// C has unit column stride and row stride ldc. The convolutions' GEMMs run here where ATen's
// BLAS (MKL) would not use the CPU's widest vectors (ops/gemm.h says where).
//
// Blocking as in the BLIS papers (Goto and van de Geijn): for each kGemmKC-deep slice of k,
// B's columns are packed kGemmNR at a time into k-major micro-panels (a panel stays in L1 while
// every row block of A passes over it), A's rows kGemmMR at a time into a block of up to kGemmMC
// rows (in L2); the micro-kernel keeps a kGemmMR x kGemmNR tile of C in registers (two vectors per
// row) and adds, for each p of the slice, a broadcast A value times two vectors of B by a
// fused multiply-add. Packing pads the last panels with zeros, so every micro-kernel call
// is a full tile; a tile that overhangs C is stored through a small buffer. Where A's rows are
// contiguous, whole tiles read them in place instead (only a block's last partial tile is
// packed), and where all of B packs into L2 each block of A runs every k slice in turn.
//
// Every sum runs in the same order in every copy (p in order within a slice, slices added
// to C in order, std::fma rounding once: cpu_lanes.h), so the copies agree bitwise and the
// result does not depend on how the caller splits C's columns or rows among threads.
//
// Compiled once per instruction set, in the inline namespace CONVOPS_CPU_ISA (cpu_isa.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu_lanes.h"

namespace convops {
namespace kernels {
inline namespace CONVOPS_CPU_ISA {

// Tile rows: two vectors of accumulators per row, plus B's two vectors and a broadcast,
// fill the registers (AVX-512: 24 of 32; AVX2 and SSE: 12 of 16).
constexpr int kGemmMR = kVectorRegisters == 32 ? 12 : 6;
template <typename T>
constexpr int kGemmNR = 2 * kLanes<T>;
constexpr int64_t kGemmKC = 192;  // a B micro-panel: 192 x 32 floats = 24 KiB, in L1
constexpr int64_t kGemmMC = 144;  // an A block: 144 x 192 floats = 108 KiB, in L2 (a multiple of kGemmMR)
constexpr int64_t kGemmNC = 3072;  // B's packed slice: 192 x 3072 floats = 2.25 MiB, in L3
constexpr int64_t kGemmWholeBBytes = int64_t(256) << 10;  // all of B's slices packed at once: in L2

// The ((kc, kGemmNR) micro-panels of) B's columns [0, nc), rows [0, kc), zero past nc. Read
// along B's contiguous dim: a 1x1 convolution's image (B) row by row, each run long enough
// for the hardware prefetcher (panel by panel, 32 values of each of kc rows per panel,
// the reads of a 64-row product waited on memory: 85 against 113 GFLOP/s).
template <typename T>
inline void pack_b(const T* b, int64_t b_rs, int64_t b_cs, int64_t kc, int64_t nc, T* __restrict__ packed) {
  constexpr int NR = kGemmNR<T>;
  const int64_t whole = nc - nc % NR;
  if (b_cs == 1) {
    for (int64_t p = 0; p < kc; ++p) {
      const T* __restrict__ row = b + p * b_rs;
      T* __restrict__ to = packed + p * NR;
      for (int64_t j0 = 0; j0 < whole; j0 += NR, to += kc * NR) {
        for (int j = 0; j < NR; ++j) to[j] = row[j0 + j];
      }
      if (whole < nc) {  // the last, partial panel
        for (int j = 0; j < NR; ++j) to[j] = whole + j < nc ? row[whole + j] : T(0);
      }
    }
    return;
  }
  for (int64_t j0 = 0; j0 < nc; j0 += NR, packed += kc * NR) {
    if (b_rs == 1) {  // B transposed (a weight gradient's columns): each half panel, tiles transposed in registers
      for (int64_t h = 0; h < NR; h += kLanes<T>) {
        const int64_t rows = std::max<int64_t>(0, std::min<int64_t>(kLanes<T>, nc - j0 - h));
        pack_lanes_strided(b + (j0 + h) * b_cs, b_cs, rows, kc, packed + h, NR);
      }
      continue;
    }
    for (int64_t j = 0; j < NR; ++j) {
      const T* __restrict__ from = b + (j0 + j) * b_cs;
      for (int64_t p = 0; p < kc; ++p) packed[p * NR + j] = j0 + j < nc ? from[p * b_rs] : T(0);
    }
  }
}

// The ((kc, kGemmMR) micro-panels of) A's rows [0, mc), columns [0, kc), zero past mc, read
// along A's contiguous dim (A transposed, the input gradient's W^T: a_rs 1).
template <typename T>
inline void pack_a(const T* a, int64_t a_rs, int64_t a_cs, int64_t mc, int64_t kc, T* __restrict__ packed) {
  constexpr int MR = kGemmMR;
  for (int64_t i0 = 0; i0 < mc; i0 += MR, packed += kc * MR) {
    const int64_t height = std::min<int64_t>(MR, mc - i0);
    const T* panel = a + i0 * a_rs;
    if (a_rs == 1 && height == MR) {
      for (int64_t p = 0; p < kc; ++p) {
        for (int i = 0; i < MR; ++i) packed[p * MR + i] = panel[p * a_cs + i];
      }
      continue;
    }
    for (int64_t i = 0; i < MR; ++i) {
      const T* __restrict__ from = panel + i * a_rs;
      for (int64_t p = 0; p < kc; ++p) packed[p * MR + i] = i < height ? from[p * a_cs] : T(0);
    }
  }
}

// A kGemmMR x kGemmNR tile: sum over p < kc of a_panel[p] (kGemmMR values) times b_panel[p] (kGemmNR), then
// c = sum + beta * c for the rows < rows and columns < cols of c (beta 0: c = sum). a_rs 0: the
// panel is packed (row i of step p at a_panel[p * kGemmMR + i]); else A's own rows, a_rs apart,
// read in place (row i of step p at a_panel[i * a_rs + p]).
template <typename T>
inline void gemm_tile(int64_t kc, const T* __restrict__ a_panel, int64_t a_rs, const T* __restrict__ b_panel, T beta,
                      T* __restrict__ c, int64_t ldc, int64_t rows, int64_t cols) {
  constexpr int MR = kGemmMR, L = kLanes<T>;
  Lanes<T> sum[MR][2];
  for (int i = 0; i < MR; ++i) sum[i][0] = sum[i][1] = Lanes<T>{};
  const int64_t row_step = a_rs == 0 ? 1 : a_rs, step = a_rs == 0 ? MR : 1;
  for (int64_t p = 0; p < kc; ++p, a_panel += step, b_panel += 2 * L) {
    const Lanes<T> b0 = load_lanes(b_panel), b1 = load_lanes(b_panel + L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const Lanes<T> a = splat(a_panel[i * row_step]);
      sum[i][0] = fused_multiply_add(a, b0, sum[i][0]);
      sum[i][1] = fused_multiply_add(a, b1, sum[i][1]);
    }
  }
  if (rows == MR && cols == 2 * L) {
    for (int i = 0; i < MR; ++i) {
      for (int h = 0; h < 2; ++h) {
        T* to = c + i * ldc + h * L;
        store_lanes(to, beta == T(0) ? sum[i][h] : sum[i][h] + beta * load_lanes(to));
      }
    }
    return;
  }
  T tile[MR][2 * L];
  for (int i = 0; i < MR; ++i) {
    store_lanes(tile[i], sum[i][0]);
    store_lanes(tile[i] + L, sum[i][1]);
  }
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      T& to = c[i * ldc + j];
      to = beta == T(0) ? tile[i][j] : tile[i][j] + beta * to;
    }
  }
}

// C = A @ B + beta * C, as above; the packed blocks live in this thread's buffers.
template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t b_rs,
          int64_t b_cs, T beta, T* c, int64_t ldc) {
  constexpr int MR = kGemmMR, NR = kGemmNR<T>;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum: C = beta * C
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    }
    return;
  }
  // A's rows read in place where each is contiguous (a_cs 1): packing them, value by value into
  // the micro-panels, took as long as the products for a 1x1 convolution's position rows.
  const bool in_place = a_cs == 1 && a_rs > 0;
  thread_local std::vector<T> packed_a, packed_b;  // grown to the largest blocks this thread has packed
  const int64_t panels = ceil_div(std::min(n, kGemmNC), NR) * NR;  // a k-slice's packed columns
  // Where all of B's slices fit kGemmWholeBBytes packed, they are packed first, and each block
  // of A's rows runs every slice while it and its C rows are in cache (the same sums in the
  // same order): slice by slice, a 1x1 convolution's position rows and outputs went through
  // memory once per slice.
  const bool whole_b = k * panels * static_cast<int64_t>(sizeof(T)) <= kGemmWholeBBytes;
  const int64_t a_size = ceil_div(std::min(m, kGemmMC), MR) * MR * std::min(k, kGemmKC);
  const int64_t b_size = (whole_b ? k : std::min(k, kGemmKC)) * panels;
  if (static_cast<int64_t>(packed_a.size()) < a_size) packed_a.resize(a_size);
  if (static_cast<int64_t>(packed_b.size()) < b_size) packed_b.resize(b_size);
  // The products of A's rows [ic, ic + kGemmMC) and the slice [pc, pc + kc) of B, packed at
  // b_slice, into C's columns [jc, jc + nc).
  const auto block_slice = [&](int64_t jc, int64_t nc, int64_t ic, int64_t pc, int64_t kc, const T* b_slice) {
    const T slice_beta = pc == 0 ? beta : T(1);
    const int64_t mc = std::min(kGemmMC, m - ic);
    const T* block = a + ic * a_rs + pc * a_cs;
    const int64_t whole = in_place ? mc - mc % MR : 0;  // rows whose tiles read A in place
    if (whole < mc) pack_a(block + whole * a_rs, a_rs, a_cs, mc - whole, kc, packed_a.data());
    for (int64_t jr = 0; jr < nc; jr += NR) {
      const T* b_panel = b_slice + jr * kc;
      for (int64_t ir = 0; ir < mc; ir += MR) {
        const bool own_rows = ir < whole;
        const T* a_panel = own_rows ? block + ir * a_rs : packed_a.data() + (ir - whole) * kc;
        if (jr == 0 && ir + MR < whole) {  // the next tile's rows, on their first pass
          for (int i = 0; i < MR; ++i) prefetch_span(a_panel + (MR + i) * a_rs, kc);
        }
        gemm_tile(kc, a_panel, own_rows ? a_rs : 0, b_panel, slice_beta, c + (ic + ir) * ldc + jc + jr, ldc,
                  std::min<int64_t>(MR, mc - ir), std::min<int64_t>(NR, nc - jr));
      }
    }
  };
  for (int64_t jc = 0; jc < n; jc += kGemmNC) {
    const int64_t nc = std::min(kGemmNC, n - jc);
    if (whole_b) {
      for (int64_t pc = 0; pc < k; pc += kGemmKC) {
        pack_b(b + pc * b_rs + jc * b_cs, b_rs, b_cs, std::min(kGemmKC, k - pc), nc, packed_b.data() + pc * panels);
      }
      for (int64_t ic = 0; ic < m; ic += kGemmMC) {
        for (int64_t pc = 0; pc < k; pc += kGemmKC) {
          block_slice(jc, nc, ic, pc, std::min(kGemmKC, k - pc), packed_b.data() + pc * panels);
        }
      }
      continue;
    }
    for (int64_t pc = 0; pc < k; pc += kGemmKC) {
      const int64_t kc = std::min(kGemmKC, k - pc);
      pack_b(b + pc * b_rs + jc * b_cs, b_rs, b_cs, kc, nc, packed_b.data());
      for (int64_t ic = 0; ic < m; ic += kGemmMC) block_slice(jc, nc, ic, pc, kc, packed_b.data());
    }
  }
}

template <typename T, typename Acc>
GemmCpuKernels<T, Acc> gemm_cpu_kernels() {
  static_assert(std::is_same<T, Acc>::value, "the GEMM forms accumulate in the value type");
  return {kGemmMR, kGemmNR<T>, &gemm<T>};
}

}  // namespace CONVOPS_CPU_ISA
}  // namespace kernels
}  // namespace convops
