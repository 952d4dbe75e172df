// The AVX-512 copy of the CPU kernel forms (pool_cpu.h, depthwise.h, direct_conv.h): cpu_copy.h compiled
// for AVX-512 F/BW/VL/DQ with 512-bit vectors preferred (GCC's default for AVX-512 is
// 256-bit). Run where the CPU has all four (ops/common.cpp).
#define CONVOPS_CPU_ISA avx512
#define CONVOPS_CPU_ISA_ENUM CpuIsa::kAvx512
#define CONVOPS_CPU_ISA_TARGET "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,prefer-vector-width=512"
#include "cpu_copy.h"
