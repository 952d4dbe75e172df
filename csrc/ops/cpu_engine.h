// Which CPU engine runs the kernels. "row" (default): the fast CPU forms (rows,
// planes, vectorisable loops). "element": one output element per iteration, exactly
// the functions each CUDA thread runs. CONVOPS_CPU_ENGINE=element selects it; the
// tests run both, so every CI run exercises the GPU's kernel bodies on the CPU.
// ("columns": the row engine with convolutions through im2col + GEMM only, below.)
// The row engine's forms come in copies per instruction set (kernels/cpu_isa.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "../kernels/cpu_isa.h"

namespace convops {
namespace ops {

inline bool cpu_engine_is(const char* name) {
  const char* engine = std::getenv("CONVOPS_CPU_ENGINE");
  return engine != nullptr && std::strcmp(engine, name) == 0;
}

inline bool use_element_engine() { return cpu_engine_is("element"); }

// CONVOPS_CPU_ENGINE=columns: the row engine without the direct convolution forms
// (kernels/direct_conv.h), every convolution through im2col + GEMM as on the GPU, so that
// the tests reach the column forms with the small channel counts the direct forms take.
inline bool use_direct_conv() { return !use_element_engine() && !cpu_engine_is("columns"); }

// Which copy of the CPU forms (kernels/cpu_isa.h) the row engine runs, as CONVOPS_CPU_ISA
// says: "auto" or unset (the best the CPU has), "baseline", "avx2" or "avx512" (an error
// on a CPU without it). Read per call, like the engine; the tests run every copy.
kernels::CpuIsa cpu_isa();
const char* cpu_isa_name(kernels::CpuIsa isa);

// The copy of the table of CPU forms that kMake builds (kernels::*_cpu_kernels<T, Acc>) this
// call runs; kMake's baseline table, built once, where the table has no copies.
template <auto kMake>
const auto& cpu_forms_for_call() {
  static const auto baseline = kMake();
#ifdef CONVOPS_CPU_COPIES
  using Table = std::remove_const_t<decltype(baseline)>;
  if constexpr (kernels::HasCpuCopies<Table>::value) {
    switch (cpu_isa()) {
      case kernels::CpuIsa::kAvx512:
        return kernels::cpu_copy<kernels::CpuIsa::kAvx512, Table>();
      case kernels::CpuIsa::kAvx2:
        return kernels::cpu_copy<kernels::CpuIsa::kAvx2, Table>();
      case kernels::CpuIsa::kBaseline:
        break;
    }
  }
#endif
  return baseline;
}

// Enough elements per task that waking another thread pays off.
constexpr int64_t kElementGrain = 32768;

inline int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(work_per_item, 1));
}

}  // namespace ops
}  // namespace convops
