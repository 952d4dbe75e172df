// Depthwise convolution (groups == in_channels == out_channels), CPU forms, torch-free.
//
// Shapes (spatial dims padded in front to 3): input (N*C planes, X), weight (C, K),
// output (N*C planes, L), with the ColumnGeometry of im2col.h. Each call owns one plane
// (forward, input gradient) or one channel (weight gradient), so sums run in a fixed
// order: deterministic, no atomics. `taps` (im2col.h) is found once per call by the
// launcher. At unit stride the forward and the weight gradient work on a zero-padded copy
// of the plane, where every tap is one long run (UnitStrideLayout); the launcher computes
// the input gradient there as the forward with the kernel flipped. Otherwise they go row
// by row. These are a fast CPU engine only: the GPU, and the
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

// acc[i] += sum over k < K2 of w[k] * from[i + k * dil], for i < count: the taps of one
// tap row summed in registers, one load and store of acc per position (K2 a constant for
// the common widths, so the loop over taps unrolls; 0: K2 = width, tap by tap).
template <int K2, typename T, typename Acc>
inline void add_tap_row(const Acc* __restrict__ from, const T* w, int64_t width, int64_t dil, Acc* __restrict__ acc,
                        int64_t count) {
  if constexpr (K2 == 0) {
    for (int64_t k = 0; k < width; ++k) {
      const Acc weight = static_cast<Acc>(w[k]);
      const Acc* __restrict__ tap = from + k * dil;
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) acc[i] += weight * tap[i];
    }
  } else {
    Acc weights[K2];
    for (int k = 0; k < K2; ++k) weights[k] = static_cast<Acc>(w[k]);
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) {
      Acc sum = acc[i];
      for (int k = 0; k < K2; ++k) sum += weights[k] * from[i + k * dil];
      acc[i] = sum;
    }
  }
}

// Unit stride in every dim: the plane is copied, zero-padded, into `padded` (Xp0*Xp1*Xp2,
// Xp = X + 2*pad); output (l0, l1, l2) reads padded[i + offset(k)] with the "wide" index
// i = (l0*Xp1 + l1)*Xp2 + l2 and offset(k) = (k0*d0*Xp1 + k1*d1)*Xp2 + k2*d2. So every tap
// is one run over i, no bounds to check and no short rows: `wide` (Acc, as long as
// padded) gathers them, and its first L2 of every Xp2 are the outputs. Same sums, in the
// same tap order, as the row form (whose skipped taps read zeros here).
// The unit-stride forms' layout (padded_numel values each):
//   padded: the image plane zero-padded on both sides of every dim (Xp = X + 2*pad);
//   wide:   output (l0, l1, l2) at i = (l0*Xp1 + l1)*Xp2 + l2, the positions between outputs unused.
// Output i reads padded[i + offset(k)], offset(k) = (k0*d0*Xp1 + k1*d1)*Xp2 + k2*d2: every
// tap is one run over i, with no bounds to check and no short rows.
struct UnitStrideLayout {
  int64_t Xp[kMaxSpatial];
  int64_t count;  // wide positions up to the last output
  explicit UnitStrideLayout(const ColumnGeometry& g) {
    for (int d = 0; d < kMaxSpatial; ++d) Xp[d] = g.image[d] + 2 * g.pad[d];
    count = ((g.cols[0] - 1) * Xp[1] + (g.cols[1] - 1)) * Xp[2] + g.cols[2];
  }
  int64_t numel() const { return Xp[0] * Xp[1] * Xp[2]; }
  int64_t wide(int64_t l0, int64_t l1) const { return (l0 * Xp[1] + l1) * Xp[2]; }
  int64_t tap_row(const ColumnGeometry& g, int64_t k0, int64_t k1) const {
    return (k0 * g.dil[0] * Xp[1] + k1 * g.dil[1]) * Xp[2];
  }
};

template <typename T, typename Acc>
inline void pad_plane(const T* plane, const ColumnGeometry& g, const UnitStrideLayout& u, Acc* padded) {
  for (int64_t i = 0; i < u.numel(); ++i) padded[i] = Acc(0);
  for (int64_t x0 = 0; x0 < g.image[0]; ++x0) {
    for (int64_t x1 = 0; x1 < g.image[1]; ++x1) {
      strided_copy(plane + (x0 * g.image[1] + x1) * g.image[2], 1,
                   padded + ((x0 + g.pad[0]) * u.Xp[1] + x1 + g.pad[1]) * u.Xp[2] + g.pad[2], 1, g.image[2]);
    }
  }
}

// Forward at unit stride: `scratch` holds padded (the input plane) and wide (the sums),
// which start at the bias and gather one run per tap row; the same sums in the same tap
// order as the row form (whose skipped taps read zeros here).
template <typename T, typename Acc>
inline void depthwise_forward_plane_unit_stride(const T* src, const T* w, Acc start, T* dst, Acc* scratch,
                                                const ColumnGeometry& g) {
  const UnitStrideLayout u(g);
  Acc* __restrict__ padded = scratch;
  Acc* __restrict__ wide = scratch + u.numel();
  pad_plane(src, g, u, padded);
  for (int64_t i = 0; i < u.count; ++i) wide[i] = start;
  const int64_t K2 = g.kernel[2], d2 = g.dil[2];
  for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
    for (int64_t k1 = 0; k1 < g.kernel[1]; ++k1) {
      const Acc* from = padded + u.tap_row(g, k0, k1);
      const T* w_row = w + (k0 * g.kernel[1] + k1) * K2;
      if (K2 == 3) {
        add_tap_row<3>(from, w_row, K2, d2, wide, u.count);
      } else if (K2 == 5) {
        add_tap_row<5>(from, w_row, K2, d2, wide, u.count);
      } else {
        add_tap_row<0>(from, w_row, K2, d2, wide, u.count);
      }
    }
  }
  for (int64_t l0 = 0; l0 < g.cols[0]; ++l0) {
    for (int64_t l1 = 0; l1 < g.cols[1]; ++l1) {
      strided_copy(wide + u.wide(l0, l1), 1, dst + (l0 * g.cols[1] + l1) * g.cols[2], 1, g.cols[2]);
    }
  }
}

// Output plane `plane` (of N * C*multiplier): acc (depthwise_scratch values) starts at the
// bias and gathers every tap's row products; unit-stride problems take the padded form
// above. Output channel o reads input channel o / multiplier (torch's channel multiplier).
template <typename T, typename Acc>
inline void depthwise_forward_plane(const T* input, const T* weight, const T* bias, T* output, Acc* acc,
                                    const ColumnGeometry& g, const TapRanges& taps, int64_t multiplier,
                                    int64_t plane) {
  const int64_t out_channels = g.channels * multiplier, o = plane % out_channels;
  const int64_t L = g.cols_numel(), L2 = g.cols[2], X2 = g.image[2], s2 = g.stride[2];
  const T* w = weight + o * g.kernel_numel();
  const T* src = input + ((plane / out_channels) * g.channels + o / multiplier) * g.image_numel();
  T* dst = output + plane * L;
  const Acc start = bias != nullptr ? static_cast<Acc>(bias[o]) : Acc(0);
  if (g.unit_stride()) {
    depthwise_forward_plane_unit_stride(src, w, start, dst, acc, g);
    return;
  }
  for (int64_t l = 0; l < L; ++l) acc[l] = start;
  for_each_tap_row(g, [&](int64_t out_row, int64_t in_row, int64_t tap) {
    const T* row = src + in_row * X2;
    Acc* to = acc + out_row * L2;
    for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
      const int64_t first = taps.first[2][k2], last = taps.last[2][k2], offset = k2 * g.dil[2] - g.pad[2];
      strided_scaled_add(static_cast<Acc>(w[tap + k2]), row + first * s2 + offset, s2, to + first, 1, last - first);
    }
  });
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

// Weight gradient of channel c at unit stride: per image, the input plane padded and the
// output gradient laid out wide (zeros between its rows), so that each tap's sum is one
// dot product over the wide positions.
template <typename T, typename Acc>
inline void depthwise_backward_weight_unit_stride(const T* grad_output, const T* input, Acc* dw, int64_t batch,
                                                  Acc* scratch, const ColumnGeometry& g, int64_t multiplier,
                                                  int64_t o) {
  const UnitStrideLayout u(g);
  const int64_t out_channels = g.channels * multiplier;
  Acc* __restrict__ padded = scratch;
  Acc* __restrict__ wide = scratch + u.numel();
  for (int64_t i = 0; i < u.count; ++i) wide[i] = Acc(0);  // the places between rows stay 0
  for (int64_t n = 0; n < batch; ++n) {
    pad_plane(input + (n * g.channels + o / multiplier) * g.image_numel(), g, u, padded);
    const T* dy = grad_output + (n * out_channels + o) * g.cols_numel();
    for (int64_t l0 = 0; l0 < g.cols[0]; ++l0) {
      for (int64_t l1 = 0; l1 < g.cols[1]; ++l1) {
        strided_copy(dy + (l0 * g.cols[1] + l1) * g.cols[2], 1, wide + u.wide(l0, l1), 1, g.cols[2]);
      }
    }
    for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
      for (int64_t k1 = 0; k1 < g.kernel[1]; ++k1) {
        for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
          const Acc* __restrict__ from = padded + u.tap_row(g, k0, k1) + k2 * g.dil[2];
          Acc sum = Acc(0);
#pragma omp simd reduction(+ : sum)
          for (int64_t i = 0; i < u.count; ++i) sum += wide[i] * from[i];
          dw[(k0 * g.kernel[1] + k1) * g.kernel[2] + k2] += sum;
        }
      }
    }
  }
}

// Weight gradient of output channel o over the whole batch (dw: K values): dw[o, k] = the
// sum over images and positions of grad_output times the input that tap k read (input
// channel o / multiplier). scratch: as the forward's.
template <typename T, typename Acc>
inline void depthwise_backward_weight_channel(const T* grad_output, const T* input, Acc* dw, int64_t batch,
                                              Acc* scratch, const ColumnGeometry& g, const TapRanges& taps,
                                              int64_t multiplier, int64_t o) {
  const int64_t L2 = g.cols[2], X2 = g.image[2], s2 = g.stride[2], out_channels = g.channels * multiplier;
  for (int64_t k = 0; k < g.kernel_numel(); ++k) dw[k] = Acc(0);
  if (g.unit_stride()) {
    depthwise_backward_weight_unit_stride(grad_output, input, dw, batch, scratch, g, multiplier, o);
    return;
  }
  for (int64_t n = 0; n < batch; ++n) {
    const T* src = input + (n * g.channels + o / multiplier) * g.image_numel();
    const T* dy_plane = grad_output + (n * out_channels + o) * g.cols_numel();
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
