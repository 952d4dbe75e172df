// Launch shape shared by every CUDA launcher: 256-thread blocks over a 64-bit
// grid-stride loop, so any element count fits a bounded grid; launch() runs a kernel of n
// elements that way on the current stream and checks the launch.
#pragma once
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <utility>

namespace convops {
namespace ops {

constexpr int kThreads = 256;

inline int64_t blocks_for(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 16));
}

#define CONVOPS_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), int64_t n, Args&&... args) {
  kernel<<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace ops
}  // namespace convops
