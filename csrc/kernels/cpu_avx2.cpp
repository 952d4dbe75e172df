// The AVX2 copy of the CPU kernel forms (pool_cpu.h, depthwise.h, direct_conv.h):
// cpu_copy.h compiled for AVX2 and FMA. -ffp-contract=off keeps its results bitwise those
// of the baseline: FMA runs only where the source asks for std::fma (direct_conv.h).
#define CONVOPS_CPU_ISA avx2
#define CONVOPS_CPU_ISA_ENUM CpuIsa::kAvx2
#define CONVOPS_CPU_ISA_TARGET "avx2,fma"
#include "cpu_copy.h"
