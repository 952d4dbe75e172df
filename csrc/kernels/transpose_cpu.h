// The CPU form of a transposing copy, torch-free: to (cols, rows) = from (rows, cols)^T for one
// row-major matrix. It moves a dense (N, C, *spatial) image between its two layouts: NCHW ->
// channels_last with rows = C and cols = prod(spatial), back with rows and cols swapped (also a
// (O, C, *K) weight, each output channel an image).
//
// Tiles of n x n values (n = a vector's lanes) are transposed in registers (interleave_rows),
// the partial ones past the last whole rows and columns too. ATen's strided copy of a
// channels_last (8, 256, 56, 56) batch to NCHW took 15 ms at 1 thread on Zen 4, this form 3.3
// (a clone: 2.0).
//
// Compiled once per instruction set, in the inline namespace CONVOPS_CPU_ISA (cpu_isa.h).
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu_isa.h"
#include "cpu_lanes.h"

namespace convops {
namespace kernels {
inline namespace CONVOPS_CPU_ISA {

// The tile of `band` rows from r0 by `width` columns from c0 (each at most n); a partial one
// through masked loads and stores (one value at a time, a 512x512x3x3 weight's 9 taps by
// 512 channels took 1.5 ms, twice ATen's copy).
template <typename T, bool kWhole>
inline void transpose_tile(const T* from, int64_t rows, int64_t cols, T* to, int64_t r0, int64_t c0, int band,
                           int width) {
  constexpr int n = kLanes<T>;
  Lanes<T> tile[n];
#pragma GCC unroll 16
  for (int m = 0; m < n; ++m) {
    const T* row = from + (r0 + m) * cols + c0;
    tile[m] = kWhole ? load_lanes(row) : m >= band ? Lanes<T>{} : width == n ? load_lanes(row)
                                                                               : load_first_lanes(row, width);
  }
  interleave_rows<T, n>(tile);
#pragma GCC unroll 16
  for (int i = 0; i < n; ++i) {
    T* column = to + (c0 + i) * rows + r0;
    if (kWhole || band == n) {
      if (kWhole || i < width) store_lanes(column, tile[i]);
    } else if (i < width) {
      store_first_lanes(column, tile[i], band);
    }
  }
}

// Tile by tile along each band of n rows: the band's n input rows are read once, front to back,
// and each tile's n output rows are written a vector further on. (Sweeping columns outermost
// was as fast or 15% slower on the bench's layouts.)
template <typename T>
void transpose_matrix(const T* from, int64_t rows, int64_t cols, T* to) {
  constexpr int n = kLanes<T>;
  for (int64_t r0 = 0; r0 < rows; r0 += n) {
    const int band = static_cast<int>(std::min<int64_t>(n, rows - r0));
    int64_t c0 = 0;
    if (band == n) {
      for (; c0 + n <= cols; c0 += n) transpose_tile<T, true>(from, rows, cols, to, r0, c0, n, n);
    }
    for (; c0 < cols; c0 += n) {
      transpose_tile<T, false>(from, rows, cols, to, r0, c0, band, static_cast<int>(std::min<int64_t>(n, cols - c0)));
    }
  }
}

template <typename T, typename Acc>
TransposeCpuKernels<T, Acc> transpose_cpu_kernels() {
  return {&transpose_matrix<T>};
}

}  // namespace CONVOPS_CPU_ISA
}  // namespace kernels
}  // namespace convops
