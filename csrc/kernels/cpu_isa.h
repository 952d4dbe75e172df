// The CPU kernel forms (pool_cpu.h, depthwise.h) are compiled twice on x86-64: for the
// baseline instruction set, as the rest of the extension, and for AVX2 (cpu_avx2.cpp),
// which the launchers pick at run time when the CPU has it. Each copy is a table of
// function pointers per (value, accumulator) type; this header defines the tables and
// names the copies, torch-free.
//
// Why inline namespaces: a copy's functions are inline templates; compiled for two
// instruction sets under one name, the linker would keep either copy for every caller
// (an AVX2 body on a CPU without AVX2). CONVOPS_CPU_ISA names the copy being compiled.
#pragma once
#include <cstdint>

#include "im2col.h"
#include "pool.h"

#ifndef CONVOPS_CPU_ISA
#define CONVOPS_CPU_ISA baseline
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#define CONVOPS_CPU_AVX2 1  // cpu_avx2.cpp builds the AVX2 copy
#endif

namespace convops {
namespace kernels {

template <typename T, typename Acc>
struct PoolCpuKernels {
  void (*max_plane)(const T*, T*, int64_t*, const PoolGeometry&, const PoolScratch<Acc>&, int64_t);
  void (*avg_plane)(const T*, T*, const PoolGeometry&, const PoolScratch<Acc>&, int64_t);
  void (*max_backward_plane)(const T*, const int64_t*, T*, Acc*, const PoolGeometry&, int64_t);
  void (*avg_backward_plane)(const T*, T*, Acc*, const PoolGeometry&, const PoolScratch<Acc>&, int64_t);
  void (*max_cl_position)(const T*, T*, int64_t*, Acc*, PlanePos<Acc>*, int64_t, const PoolGeometry&, int64_t);
  void (*avg_cl_row)(const T*, T*, Acc*, int64_t, const PoolGeometry&, int64_t);
  void (*max_backward_cl_image)(const T*, const int64_t*, T*, Acc*, int64_t, const PoolGeometry&, int64_t);
  void (*avg_backward_cl_image)(const T*, T*, Acc*, Acc*, int64_t, const PoolGeometry&, int64_t);
  Acc (*plane_mean)(const T*, int64_t);
  void (*image_channel_means)(const T*, T*, Acc*, int64_t, int64_t);
};

template <typename T, typename Acc>
struct DepthwiseCpuKernels {
  void (*forward_plane)(const T*, const T*, const T*, T*, Acc*, const ColumnGeometry&, const TapRanges&, int64_t);
  void (*backward_input_plane)(const T*, const T*, T*, Acc*, const ColumnGeometry&, const TapRanges&, int64_t);
  void (*backward_weight_channel)(const T*, const T*, Acc*, int64_t, const ColumnGeometry&, const TapRanges&,
                                  int64_t);
};

#ifdef CONVOPS_CPU_AVX2
// The AVX2 copies, for float and double (cpu_avx2.cpp); half and bfloat16 stay baseline.
template <typename T>
const PoolCpuKernels<T, T>& avx2_pool_kernels();
template <typename T>
const DepthwiseCpuKernels<T, T>& avx2_depthwise_kernels();
#endif

}  // namespace kernels
}  // namespace convops
