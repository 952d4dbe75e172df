// Launch shape shared by every CUDA launcher: 256-thread blocks over a 64-bit
// grid-stride loop, so any element count fits a bounded grid.
#pragma once
#include <algorithm>
#include <cstdint>

namespace convops {
namespace ops {

constexpr int kThreads = 256;

inline int64_t blocks_for(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 16));
}

#define CONVOPS_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

}  // namespace ops
}  // namespace convops
