// The AVX2 copy of the CPU kernel forms (pool_cpu.h, depthwise.h): cpu_copy.h compiled
// for AVX2 (no FMA: -ffp-contract=off keeps its results bitwise those of the baseline).
#define CONVOPS_CPU_ISA avx2
#define CONVOPS_CPU_ISA_ENUM CpuIsa::kAvx2
#define CONVOPS_CPU_ISA_TARGET "avx2"
#include "cpu_copy.h"
