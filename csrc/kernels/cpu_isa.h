// The CPU kernel forms (pool_cpu.h, depthwise.h, direct_conv.h, winograd.h, gemm_cpu.h) are
// compiled three times on x86-64: for the baseline instruction set, as the rest of the
// extension, and as copies for AVX2 (cpu_avx2.cpp) and AVX-512 (cpu_avx512.cpp), one of
// which the launchers pick at run time (ops/cpu_engine.h). Each copy is a table of function
// pointers per (value, accumulator) type; this header defines the tables and names the
// copies, torch-free.
//
// Why inline namespaces: a copy's functions are inline templates; compiled for several
// instruction sets under one name, the linker would keep any one copy for every caller
// (an AVX2 body on a CPU without AVX2). CONVOPS_CPU_ISA names the copy being compiled,
// CONVOPS_CPU_ISA_ENUM its CpuIsa.
#pragma once
#include <cstdint>
#include <type_traits>

#include "im2col.h"
#include "pool.h"

#ifndef CONVOPS_CPU_ISA
#define CONVOPS_CPU_ISA baseline
#define CONVOPS_CPU_ISA_ENUM CpuIsa::kBaseline
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#define CONVOPS_CPU_COPIES 1  // cpu_avx2.cpp and cpu_avx512.cpp build the copies
#endif

namespace convops {
namespace kernels {

// The copies of the CPU forms, in the order of preference.
enum class CpuIsa { kBaseline, kAvx2, kAvx512 };

template <typename T, typename Acc, typename Index>
struct MaxPoolCpuForms {  // for one argmax code, Index (pool.h)
  void (*plane)(const T*, T*, Index*, const PoolGeometry&, const PoolScratch<Acc>&, int64_t);
  void (*backward_plane)(const T*, const Index*, const int64_t*, T*, Acc*, const PoolGeometry&, int64_t, bool);
  void (*cl_positions)(const T*, T*, Index*, Acc*, PlanePos<Acc>*, const MaxSources<Acc>&, int64_t, const PoolGeometry&,
                       int64_t, int64_t, bool);
  void (*backward_cl_image)(const T*, const Index*, const int64_t*, T*, Acc*, int64_t, const PoolGeometry&,
                            const GatherScratch&, int64_t);
};

template <typename T, typename Acc>
struct PoolCpuKernels {
  MaxPoolCpuForms<T, Acc, int64_t> max_positions;
  MaxPoolCpuForms<T, Acc, uint8_t> max_taps;
  void (*max_backward_rows)(const T*, const uint8_t*, T*, Acc*, const PoolGeometry&, const PoolScratch<Acc>&, int64_t);
  void (*avg_plane)(const T*, T*, const PoolGeometry&, const PoolScratch<Acc>&, int64_t);
  void (*avg_backward_plane)(const T*, T*, Acc*, const PoolGeometry&, const PoolScratch<Acc>&, int64_t);
  void (*avg_cl_row)(const T*, T*, const Acc**, Acc*, int64_t, const PoolGeometry&, int64_t, bool);
  void (*avg_backward_cl_image)(const T*, T*, Acc*, Acc*, const Acc**, const GatherScratch&, int64_t,
                                const PoolGeometry&, int64_t, bool);
  void (*plane_means)(const T*, T*, int64_t, int64_t);
  void (*image_channel_means)(const T*, T*, Acc*, int64_t, int64_t);
  void (*plane_fills)(const T*, T*, int64_t, int64_t, bool);
  void (*image_channel_fills)(const T*, T*, T*, int64_t, int64_t, bool);
};

template <typename T, typename Acc>
struct DepthwiseCpuKernels {
  void (*forward_plane)(const T*, const T*, const T*, T*, Acc*, const ColumnGeometry&, const TapRanges&, int64_t,
                        int64_t);
  void (*backward_input_plane)(const T*, const T*, T*, Acc*, const ColumnGeometry&, const TapRanges&, int64_t);
  void (*backward_weight_channel)(const T*, const T*, Acc*, int64_t, Acc*, const ColumnGeometry&, const TapRanges&,
                                  int64_t, int64_t);
};

// Direct convolution vectorised over output channels (direct_conv.h); T float or double.
template <typename T, typename Acc>
struct DirectConvCpuKernels {
  int64_t lanes;          // output channels per vector: the packed layouts' last dim
  int64_t taps_per_block;  // taps of one weight-gradient tap block
  int64_t weight_vectors;  // channel vectors of one weight-gradient task
  int64_t images_per_pass;  // of forward_position
  int64_t few_channels_most;  // output channels, at most, of few_channels_forward_group
  void (*pad_planes)(const T*, int64_t, const ColumnGeometry&, const PaddedTaps&, T*);
  void (*pack_lanes)(const T*, int64_t, int64_t, int64_t, T*);
  void (*forward_group)(const T*, const T*, const T*, T*, T*, const ColumnGeometry&, const PaddedTaps&, int64_t);
  void (*forward_position)(const T*, const T*, const T*, T*, const PositionTaps&, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
  void (*backward_weight_task)(const T*, const T*, T*, const ColumnGeometry&, const PaddedTaps&, int64_t, int64_t,
                               int64_t, int64_t, int64_t);
  void (*few_channels_forward_group)(const T*, const T*, T*, T*, const ColumnGeometry&, const PaddedTaps&, int64_t);
};

// The transforms of Winograd's F(2x2, 3x3) convolution (winograd.h); T float or double.
// How far apart a block's 16 matrices (channels x ld, of V or M) lie, for vectors of `lanes`:
// a vector more than they fill, so that their 16 streams do not share cache sets (at 16 x 256
// floats, 4 KiB apart, the grouped convolution's stores to them stalled).
inline int64_t winograd_point_stride(int64_t channels, int64_t ld, int64_t lanes) { return channels * ld + lanes; }
template <typename T, typename Acc>
struct WinogradCpuKernels {
  int64_t lanes;  // values per vector: the blocks' leading dims hold this many past their tiles
  void (*kernels)(const T*, int64_t, T*);
  void (*input_block)(const T*, int64_t, const ColumnGeometry&, int64_t, int64_t, int64_t, T*);
  void (*products)(const T*, int64_t, int64_t, const T*, int64_t, int64_t, int64_t, T*);
  void (*output_block)(const T*, int64_t, const T*, const ColumnGeometry&, int64_t, int64_t, int64_t, T*);
};
// C = A @ B + beta * C (gemm_cpu.h): m, n, k, A and its row and column strides, B and its
// strides, beta, C and its row stride; T float or double.
template <typename T, typename Acc>
struct GemmCpuKernels {
  int64_t tile_rows, tile_cols;  // the micro-kernel's tile
  void (*gemm)(int64_t, int64_t, int64_t, const T*, int64_t, int64_t, const T*, int64_t, int64_t, T, T*, int64_t);
};

// to (cols, rows) = from (rows, cols)^T (transpose_cpu.h): from, rows, cols, to.
template <typename T, typename Acc>
struct TransposeCpuKernels {
  void (*transpose)(const T*, int64_t, int64_t, T*);
};

// Whether a table has copies: those of float and double (half and bfloat16 stay baseline).
template <typename Table>
struct HasCpuCopies : std::false_type {};
template <template <typename, typename> class Form, typename T>
struct HasCpuCopies<Form<T, T>>
    : std::integral_constant<bool, std::is_same<T, float>::value || std::is_same<T, double>::value> {};

#ifdef CONVOPS_CPU_COPIES
// The copy `isa` (kAvx2, kAvx512) of a table with copies; defined by cpu_<isa>.cpp.
template <CpuIsa isa, typename Table>
const Table& cpu_copy();
#endif

}  // namespace kernels
}  // namespace convops
