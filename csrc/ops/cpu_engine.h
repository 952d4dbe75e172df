// Which CPU engine runs the kernels. "row" (default): the fast CPU forms (rows,
// planes, vectorisable loops). "element": one output element per iteration, exactly
// the functions each CUDA thread runs. CONVOPS_CPU_ENGINE=element selects it; the
// tests run both, so every CI run exercises the GPU's kernel bodies on the CPU.
// The row engine's forms come in two copies, baseline x86-64 and AVX2 (use_avx2).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace convops {
namespace ops {

inline bool use_element_engine() {
  const char* engine = std::getenv("CONVOPS_CPU_ENGINE");
  return engine != nullptr && std::strcmp(engine, "element") == 0;
}

// Whether the row engine runs the AVX2 copy of the CPU forms (kernels/cpu_isa.h), as
// CONVOPS_CPU_ISA says: "auto" or unset (AVX2 where the CPU has it), "baseline", or
// "avx2" (an error on a CPU without it). Read per call, like the engine; the tests run both.
bool use_avx2();

// Enough elements per task that waking another thread pays off.
constexpr int64_t kElementGrain = 32768;

inline int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(work_per_item, 1));
}

}  // namespace ops
}  // namespace convops
