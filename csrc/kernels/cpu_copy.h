// The body of one copy of the CPU forms (cpu_isa.h), included once by each copy's unit
// (cpu_avx2.cpp, cpu_avx512.cpp) after it defines
//   CONVOPS_CPU_ISA          the copy's inline namespace (avx2, avx512)
//   CONVOPS_CPU_ISA_ENUM     its CpuIsa value
//   CONVOPS_CPU_ISA_TARGET   the GCC target string its code is compiled for.
// Only torch-free headers come after the target pragma, and everything they define lives
// in the copy's inline namespace; templates of the headers included before it (the
// standard library's) keep their baseline code. setup.py compiles with -ffp-contract=off,
// so no copy fuses a multiply and an add the baseline rounds twice: the copies agree bitwise.
#pragma once
#include "cpu_isa.h"

#ifdef CONVOPS_CPU_COPIES
#include <type_traits>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>  // first included here, with the baseline target (cpu_lanes.h streams stores)
#endif

#define CONVOPS_PRAGMA(text) _Pragma(#text)
#define CONVOPS_TARGET_PRAGMA(isa_target) CONVOPS_PRAGMA(GCC target(isa_target))

#pragma GCC push_options
CONVOPS_TARGET_PRAGMA(CONVOPS_CPU_ISA_TARGET)

#include "depthwise.h"
#include "direct_conv.h"
#include "gemm_cpu.h"
#include "pool_cpu.h"
#include "transpose_cpu.h"
#include "winograd.h"

namespace convops {
namespace kernels {

// cpu_copy<this isa, Form<T, T>>: the table of this copy's forms for T.
#define CONVOPS_CPU_COPY(Form, make_table, T)                                   \
  template <>                                                                  \
  const Form<T, T>& cpu_copy<CONVOPS_CPU_ISA_ENUM, Form<T, T>>() {             \
    static const auto table = CONVOPS_CPU_ISA::make_table<T, T>();             \
    return table;                                                              \
  }

CONVOPS_CPU_COPY(PoolCpuKernels, pool_cpu_kernels, float)
CONVOPS_CPU_COPY(PoolCpuKernels, pool_cpu_kernels, double)
CONVOPS_CPU_COPY(DepthwiseCpuKernels, depthwise_cpu_kernels, float)
CONVOPS_CPU_COPY(DepthwiseCpuKernels, depthwise_cpu_kernels, double)
CONVOPS_CPU_COPY(DirectConvCpuKernels, direct_conv_cpu_kernels, float)
CONVOPS_CPU_COPY(DirectConvCpuKernels, direct_conv_cpu_kernels, double)
CONVOPS_CPU_COPY(WinogradCpuKernels, winograd_cpu_kernels, float)
CONVOPS_CPU_COPY(WinogradCpuKernels, winograd_cpu_kernels, double)
CONVOPS_CPU_COPY(GemmCpuKernels, gemm_cpu_kernels, float)
CONVOPS_CPU_COPY(GemmCpuKernels, gemm_cpu_kernels, double)
CONVOPS_CPU_COPY(TransposeCpuKernels, transpose_cpu_kernels, float)
CONVOPS_CPU_COPY(TransposeCpuKernels, transpose_cpu_kernels, double)
#undef CONVOPS_CPU_COPY

}  // namespace kernels
}  // namespace convops

#pragma GCC pop_options
#endif  // CONVOPS_CPU_COPIES
