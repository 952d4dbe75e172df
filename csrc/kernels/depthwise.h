// Depthwise convolution (groups == in_channels == out_channels), CPU forms, torch-free.
//
// Shapes (spatial dims padded in front to 3): input (N*C planes, X), weight (C, K),
// output (N*C planes, L), with the ColumnGeometry of im2col.h. Each call owns one plane
// (forward, input gradient) or one channel (weight gradient), so sums run in a fixed
// order: deterministic, no atomics. `taps` (im2col.h) is found once per call by the
// launcher. These are a fast CPU engine only: the GPU, and the
// CPU's element engine, compute depthwise convolutions through im2col and a GEMM, the
// same sums in another form.
//
// Compiled once per instruction set, in the inline namespace CONVOPS_CPU_ISA (cpu_isa.h).
#pragma once

#include "cpu_isa.h"
#include "im2col.h"

namespace convops {
namespace kernels {
inline namespace CONVOPS_CPU_ISA {

// Calls visit(out_row, in_row, tap) for every output row (l0, l1) and every outer tap
// (k0, k1) whose input row lies inside the image: out_row = l0*L1 + l1,
// in_row = x0*X1 + x1, tap = (k0*K1 + k1)*K2, the first weight of that tap row.
template <typename Visit>
inline void for_each_tap_row(const ColumnGeometry& g, Visit&& visit) {
  for (int64_t l0 = 0; l0 < g.cols[0]; ++l0) {
    for (int64_t l1 = 0; l1 < g.cols[1]; ++l1) {
      for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
        const int64_t x0 = g.source(0, l0, k0);
        if (x0 < 0 || x0 >= g.image[0]) continue;
        for (int64_t k1 = 0; k1 < g.kernel[1]; ++k1) {
          const int64_t x1 = g.source(1, l1, k1);
          if (x1 < 0 || x1 >= g.image[1]) continue;
          visit(l0 * g.cols[1] + l1, x0 * g.image[1] + x1, (k0 * g.kernel[1] + k1) * g.kernel[2]);
        }
      }
    }
  }
}

// Output plane: acc (L values) starts at the bias and gathers every tap's row products.
template <typename T, typename Acc>
inline void depthwise_forward_plane(const T* input, const T* weight, const T* bias, T* output, Acc* acc,
                                    const ColumnGeometry& g, const TapRanges& taps, int64_t plane) {
  const int64_t c = plane % g.channels, L = g.cols_numel(), L2 = g.cols[2], X2 = g.image[2], s2 = g.stride[2];
  const T* w = weight + c * g.kernel_numel();
  const T* src = input + plane * g.image_numel();
  const Acc start = bias != nullptr ? static_cast<Acc>(bias[c]) : Acc(0);
  for (int64_t l = 0; l < L; ++l) acc[l] = start;
  for_each_tap_row(g, [&](int64_t out_row, int64_t in_row, int64_t tap) {
    const T* row = src + in_row * X2;
    Acc* to = acc + out_row * L2;
    for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
      const int64_t first = taps.first[2][k2], last = taps.last[2][k2], offset = k2 * g.dil[2] - g.pad[2];
      strided_scaled_add(static_cast<Acc>(w[tap + k2]), row + first * s2 + offset, s2, to + first, 1, last - first);
    }
  });
  T* dst = output + plane * L;
  for (int64_t l = 0; l < L; ++l) dst[l] = static_cast<T>(acc[l]);
}

// Input gradient of one plane (acc: X values): each output gradient, times each tap, added
// where it was read.
template <typename T, typename Acc>
inline void depthwise_backward_input_plane(const T* grad_output, const T* weight, T* grad_input, Acc* acc,
                                           const ColumnGeometry& g, const TapRanges& taps, int64_t plane) {
  const int64_t c = plane % g.channels, X = g.image_numel(), L2 = g.cols[2], X2 = g.image[2], s2 = g.stride[2];
  const T* w = weight + c * g.kernel_numel();
  const T* dy_plane = grad_output + plane * g.cols_numel();
  for (int64_t x = 0; x < X; ++x) acc[x] = Acc(0);
  for_each_tap_row(g, [&](int64_t out_row, int64_t in_row, int64_t tap) {
    const T* dy = dy_plane + out_row * L2;
    Acc* row = acc + in_row * X2;
    for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
      const int64_t first = taps.first[2][k2], last = taps.last[2][k2], offset = k2 * g.dil[2] - g.pad[2];
      strided_scaled_add(static_cast<Acc>(w[tap + k2]), dy + first, 1, row + first * s2 + offset, s2, last - first);
    }
  });
  T* dst = grad_input + plane * X;
  for (int64_t x = 0; x < X; ++x) dst[x] = static_cast<T>(acc[x]);
}

// Weight gradient of channel c over the whole batch (dw: K values): dw[c, k] = the sum over
// images and positions of grad_output times the input that tap k read.
template <typename T, typename Acc>
inline void depthwise_backward_weight_channel(const T* grad_output, const T* input, Acc* dw, int64_t batch,
                                              const ColumnGeometry& g, const TapRanges& taps, int64_t c) {
  const int64_t L2 = g.cols[2], X2 = g.image[2], s2 = g.stride[2];
  for (int64_t k = 0; k < g.kernel_numel(); ++k) dw[k] = Acc(0);
  for (int64_t n = 0; n < batch; ++n) {
    const int64_t plane = n * g.channels + c;
    const T* src = input + plane * g.image_numel();
    const T* dy_plane = grad_output + plane * g.cols_numel();
    for_each_tap_row(g, [&](int64_t out_row, int64_t in_row, int64_t tap) {
      const T* row = src + in_row * X2;
      const T* dy = dy_plane + out_row * L2;
      for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
        const int64_t first = taps.first[2][k2], last = taps.last[2][k2], offset = k2 * g.dil[2] - g.pad[2];
        Acc sum = Acc(0);
        if (s2 == 1) {
          const T* from = row + first + offset;
#pragma omp simd reduction(+ : sum)
          for (int64_t i = 0; i < last - first; ++i) sum += static_cast<Acc>(dy[first + i]) * static_cast<Acc>(from[i]);
        } else {
          for (int64_t l2 = first; l2 < last; ++l2) sum += static_cast<Acc>(dy[l2]) * static_cast<Acc>(row[l2 * s2 + offset]);
        }
        dw[tap + k2] += sum;
      }
    });
  }
}

template <typename T, typename Acc>
DepthwiseCpuKernels<T, Acc> depthwise_cpu_kernels() {
  return {&depthwise_forward_plane<T, Acc>, &depthwise_backward_input_plane<T, Acc>,
          &depthwise_backward_weight_channel<T, Acc>};
}

}  // namespace CONVOPS_CPU_ISA
}  // namespace kernels
}  // namespace convops
