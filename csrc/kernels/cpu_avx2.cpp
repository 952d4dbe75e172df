// The AVX2 copy of the CPU kernel forms (pool_cpu.h, depthwise.h): the same source as
// the baseline copy, compiled under `#pragma GCC target("avx2")` (no FMA, so results
// are bitwise those of the baseline copy, up to the order of vectorised reductions).
// Only torch-free headers come after the pragma, and everything they define lives in
// the inline namespace `avx2` (cpu_isa.h says why); templates of the headers included
// before it (the standard library's) keep their baseline code.
#define CONVOPS_CPU_ISA avx2
#include "cpu_isa.h"

#ifdef CONVOPS_CPU_AVX2
#include <type_traits>
#include <vector>

#pragma GCC push_options
#pragma GCC target("avx2")

#include "depthwise.h"
#include "pool_cpu.h"

namespace convops {
namespace kernels {

template <typename T>
const PoolCpuKernels<T, T>& avx2_pool_kernels() {
  static const PoolCpuKernels<T, T> table = avx2::pool_cpu_kernels<T, T>();
  return table;
}

template <typename T>
const DepthwiseCpuKernels<T, T>& avx2_depthwise_kernels() {
  static const DepthwiseCpuKernels<T, T> table = avx2::depthwise_cpu_kernels<T, T>();
  return table;
}

template const PoolCpuKernels<float, float>& avx2_pool_kernels<float>();
template const PoolCpuKernels<double, double>& avx2_pool_kernels<double>();
template const DepthwiseCpuKernels<float, float>& avx2_depthwise_kernels<float>();
template const DepthwiseCpuKernels<double, double>& avx2_depthwise_kernels<double>();

}  // namespace kernels
}  // namespace convops

#pragma GCC pop_options
#endif  // CONVOPS_CPU_AVX2
