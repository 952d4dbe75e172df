// The CPU form of a transposing copy, torch-free: to (cols, rows) = from (rows, cols)^T for one
// row-major matrix. It moves a dense (N, C, *spatial) image between its two layouts: NCHW ->
// channels_last with rows = C and cols = prod(spatial), back with rows and cols swapped (also a
// (O, C, *K) weight, each output channel an image).
//
// Tiles of n x n values (n = a vector's lanes) are transposed in registers (interleave_rows);
// the rows and columns past the last whole tile go value by value. ATen's strided copy of a
// channels_last (8, 256, 56, 56) batch to NCHW took 15 ms at 1 thread on Zen 4, this form 3.3
// (a clone: 2.0).
//
// Compiled once per instruction set, in the inline namespace CONVOPS_CPU_ISA (cpu_isa.h).
#pragma once
#include <cstdint>

#include "cpu_isa.h"
#include "cpu_lanes.h"

namespace convops {
namespace kernels {
inline namespace CONVOPS_CPU_ISA {

// Tile by tile along each band of n rows: the band's n input rows are read once, front to back,
// and each tile's n output rows are written a vector further on. (Sweeping columns outermost
// was as fast or 15% slower on the bench's layouts.)
template <typename T>
void transpose_matrix(const T* from, int64_t rows, int64_t cols, T* to) {
  constexpr int n = kLanes<T>;
  const int64_t banded_rows = rows - rows % n;
  const int64_t tiled_cols = cols - cols % n;
  for (int64_t r0 = 0; r0 < banded_rows; r0 += n) {
    for (int64_t c0 = 0; c0 < tiled_cols; c0 += n) {
      Lanes<T> tile[n];
#pragma GCC unroll 16
      for (int m = 0; m < n; ++m) tile[m] = load_lanes(from + (r0 + m) * cols + c0);
      interleave_rows<T, n>(tile);
#pragma GCC unroll 16
      for (int i = 0; i < n; ++i) store_lanes(to + (c0 + i) * rows + r0, tile[i]);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = r < banded_rows ? tiled_cols : 0; c < cols; ++c) to[c * rows + r] = from[r * cols + c];
  }
}

template <typename T, typename Acc>
TransposeCpuKernels<T, Acc> transpose_cpu_kernels() {
  return {&transpose_matrix<T>};
}

}  // namespace CONVOPS_CPU_ISA
}  // namespace kernels
}  // namespace convops
