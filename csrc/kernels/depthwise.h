// Depthwise convolution (groups == in_channels == out_channels), CPU forms, torch-free.
//
// Shapes (spatial dims padded in front to 3): input (N*C planes, X), weight (C, K),
// output (N*C planes, L), with the ColumnGeometry of im2col.h. Each call owns one plane
// (forward, input gradient) or one channel (weight gradient), so sums run in a fixed
// order: deterministic, no atomics. `taps` (im2col.h) is found once per call by the
// launcher. At unit stride the forward and the weight gradient work on a zero-padded copy
// of the plane, where every tap is one run (UnitStrideLayout), a vector of outputs at a time
// held in registers across the taps; the launcher computes the input gradient there as the
// forward with the kernel flipped. Otherwise they go row by row, a tap's run at a time
// through memory. These are a fast CPU engine only: the GPU, and the
// CPU's element engine, compute depthwise convolutions through im2col and a GEMM, the
// same sums in another form.
//
// Compiled once per instruction set, in the inline namespace CONVOPS_CPU_ISA (cpu_isa.h).
#pragma once

#include <type_traits>

#include "cpu_isa.h"
#include "cpu_lanes.h"
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
// is one run over i, with no bounds to check: each output row's taps are runs of L2 from
// its wide position, and the forms for rows narrower than a vector run over all of i at
// once, in `wide` (Acc, as long as padded, the positions between outputs unused). Same
// sums, in the same tap order, as the row form (whose skipped taps read zeros here).
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

// Asks the cache for output rows [row, row + rows)'s share of `plane` (numel values; the
// output has L0*L1 rows): a plane read next arrives in step with this plane's rows, where
// asked for all at once its prefetches stalled on a core's full miss buffers.
template <typename T>
inline void prefetch_rows_share(const T* plane, int64_t numel, const ColumnGeometry& g, int64_t row, int64_t rows) {
  const int64_t share = (numel + g.cols[0] * g.cols[1] - 1) / (g.cols[0] * g.cols[1]);
  prefetch_span(plane + row * share, rows * share);
}

// to[i] = from[i] (converted) for i < count: rows of at least a vector by vectors, the last
// one ending at count. GCC turns a copy loop into a call to memmove, which per row of 56 took
// a fifth of the depthwise forward's time; the empty asm in the loop keeps the loop.
template <typename T, typename Acc>
inline void copy_row(const T* __restrict__ from, Acc* __restrict__ to, int64_t count) {
  constexpr int64_t lanes = kLanes<Acc>;
  if (!std::is_same_v<T, Acc> || count < lanes) {
    for (int64_t i = 0; i < count; ++i) to[i] = static_cast<Acc>(from[i]);
    return;
  }
  const auto* source = reinterpret_cast<const Acc*>(from);
  for (int64_t i = 0; i + lanes < count; i += lanes) {
    store_lanes(to + i, load_lanes(source + i));
    __asm__ volatile("" ::: "memory");
  }
  store_lanes(to + count - lanes, load_lanes(source + count - lanes));
}

template <typename T, typename Acc>
inline void pad_plane(const T* plane, const ColumnGeometry& g, const UnitStrideLayout& u, Acc* padded) {
  for (int64_t i = 0; i < u.numel(); ++i) padded[i] = Acc(0);
  for (int64_t x0 = 0; x0 < g.image[0]; ++x0) {
    for (int64_t x1 = 0; x1 < g.image[1]; ++x1) {
      copy_row(plane + (x0 * g.image[1] + x1) * g.image[2],
               padded + ((x0 + g.pad[0]) * u.Xp[1] + x1 + g.pad[1]) * u.Xp[2] + g.pad[2], g.image[2]);
    }
  }
}

// kRows output rows (l0, l1 + r) of the forward at unit stride, from the first's wide position
// in `padded` (from) into dst (rows L2 apart): dst[l2] = start + w[k] * from[l2 + offset(k)]
// added over the taps k in row-major order, the same sums in the same order as add_tap_row's
// passes, kDepthwiseBlock vectors of each row at a time, held in registers across all the taps
// and stored once. The passes loaded and stored the wide sums once per tap row, and copied them
// out: make bench's depthwise 3x3, 64 channels at 56x56, spent as long in those copies as in the
// sums. Two rows (kRows 2, at d1 = 1) share their input rows' loads: row 1's tap row k1 is row
// 0's k1 + 1. Where L2 is not a multiple of a vector, the last vector ends at L2: it recomputes
// outputs of the one before, to the same bits, and reads nothing past the row's last tap. K2:
// the width, a constant for the common ones (0: g's).
constexpr int kDepthwiseBlock = 4;  // independent sums: one vector's chain of adds waited on each add

template <int K2, int kRows, typename T, typename Acc>
inline void depthwise_rows_unit_stride(const Acc* from, const Acc* w, Acc start, T* dst, const ColumnGeometry& g,
                                       const UnitStrideLayout& u) {
  constexpr int64_t lanes = kLanes<Acc>;
  const int64_t width = K2 != 0 ? K2 : g.kernel[2], d2 = g.dil[2], L2 = g.cols[2], K1 = g.kernel[1];
  const int64_t vectors = (L2 + lanes - 1) / lanes;
  const auto block = [&](int64_t first, auto count) {  // vectors [first, first + count)
    int64_t at[count.value];
    Lanes<Acc> sum[kRows][count.value];
    for (int b = 0; b < count.value; ++b) {
      at[b] = min64((first + b) * lanes, L2 - lanes);
      for (int r = 0; r < kRows; ++r) sum[r][b] = splat(start);
    }
    for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
      const Acc* w0 = w + k0 * K1 * width;
      for (int64_t j = 0; j < K1 + kRows - 1; ++j) {  // input row j: row r's tap row j - r
        const Acc* tap = from + u.tap_row(g, k0, j);
        for (int64_t k2 = 0; k2 < width; ++k2, tap += d2) {
          for (int r = 0; r < kRows; ++r) {
            if (j - r < 0 || j - r >= K1) continue;
            const Lanes<Acc> wk = splat(w0[(j - r) * width + k2]);
            for (int b = 0; b < count.value; ++b) sum[r][b] += wk * load_lanes(tap + at[b]);
          }
        }
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int b = 0; b < count.value; ++b) {
        if constexpr (std::is_same_v<T, Acc>) {
          store_lanes(dst + r * L2 + at[b], sum[r][b]);
        } else {
          for (int64_t i = 0; i < lanes; ++i) dst[r * L2 + at[b] + i] = static_cast<T>(sum[r][b][i]);
        }
      }
    }
  };
  int64_t v = 0;
  for (; v + kDepthwiseBlock <= vectors; v += kDepthwiseBlock) block(v, std::integral_constant<int, kDepthwiseBlock>{});
  switch (vectors - v) {
    case 3: block(v, std::integral_constant<int, 3>{}); break;
    case 2: block(v, std::integral_constant<int, 2>{}); break;
    case 1: block(v, std::integral_constant<int, 1>{}); break;
    default: break;
  }
}

// Output rows [l1, l1 + rows) at l0 (depthwise_rows_unit_stride), rows 1 or 2.
template <int kRows, typename T, typename Acc>
inline void depthwise_rows_by_width(const Acc* from, const Acc* w, Acc start, T* dst, const ColumnGeometry& g,
                                    const UnitStrideLayout& u) {
  if (g.kernel[2] == 3) {
    depthwise_rows_unit_stride<3, kRows>(from, w, start, dst, g, u);
  } else if (g.kernel[2] == 5) {
    depthwise_rows_unit_stride<5, kRows>(from, w, start, dst, g, u);
  } else {
    depthwise_rows_unit_stride<0, kRows>(from, w, start, dst, g, u);
  }
}

// Forward at unit stride: `scratch` holds padded (the input plane) and room for as many
// values more. Rows of at least a vector go by pairs of rows (depthwise_rows_unit_stride, the
// weights in Acc after padded); narrower ones as one run per tap row over the wide
// positions, `wide` in that room, which starts at the bias and gathers every tap row's
// products, then is copied out.
template <typename T, typename Acc>
inline void depthwise_forward_plane_unit_stride(const T* src, const T* w, Acc start, T* dst, Acc* scratch,
                                                const ColumnGeometry& g) {
  const UnitStrideLayout u(g);
  Acc* __restrict__ padded = scratch;
  pad_plane(src, g, u, padded);
  const int64_t K2 = g.kernel[2], d2 = g.dil[2];
  if (g.cols[2] >= kLanes<Acc>) {
    Acc* weights = scratch + u.numel();  // K values: the padded plane holds at least the kernel
    for (int64_t k = 0; k < g.kernel_numel(); ++k) weights[k] = static_cast<Acc>(w[k]);
    const int64_t pair = g.dil[1] == 1 ? 2 : 1;
    for (int64_t l0 = 0; l0 < g.cols[0]; ++l0) {
      for (int64_t l1 = 0; l1 < g.cols[1]; l1 += pair) {
        const int64_t row = l0 * g.cols[1] + l1;
        const bool two = pair == 2 && l1 + 1 < g.cols[1];
        // the next plane (a task's planes are consecutive): its copy into `padded` waited on the loads
        prefetch_rows_share(src + g.image_numel(), g.image_numel(), g, row, two ? 2 : 1);
        if (two) {
          depthwise_rows_by_width<2>(padded + u.wide(l0, l1), weights, start, dst + row * g.cols[2], g, u);
        } else {
          depthwise_rows_by_width<1>(padded + u.wide(l0, l1), weights, start, dst + row * g.cols[2], g, u);
        }
      }
    }
    return;
  }
  Acc* __restrict__ wide = scratch + u.numel();
  for (int64_t i = 0; i < u.count; ++i) wide[i] = start;
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

// One image's share of the weight gradient at unit stride, for kTaps taps (offsets: where
// each reads in `padded`, from an output's wide position): dw[t] += the sum over outputs of
// dy times what tap t read. Each tap's sums stay in a vector register across the plane, every
// output gradient vector loaded once for all the taps (the form it replaced laid dy out wide,
// by a call to memmove per row, and made a pass over it per tap); the last vector of a row
// ends at L2, as the forward's, its lanes that the vector before summed set to 0. The next
// image's planes (next_input, next_dy; nullptr for none) are asked for a share at each row
// (prefetch_rows_share): the copy of the input into `padded` and the first loads of dy waited
// on memory. In profiles of make bench's forward+backward, this form's samples against the
// forward's: 0.94-0.97 -> 0.61-0.71.
template <int kTaps, typename T, typename Acc>
inline void depthwise_weight_taps(const T* dy, const Acc* padded, const int64_t* offsets, Acc* dw,
                                  const ColumnGeometry& g, const UnitStrideLayout& u, const T* next_input,
                                  const T* next_dy) {
  constexpr int64_t lanes = kLanes<Acc>;
  const int64_t L2 = g.cols[2], tail = L2 - lanes, repeated = (L2 / lanes) * lanes - tail;
  LaneIndex<Acc> lane;
  for (int i = 0; i < lanes; ++i) lane[i] = i;
  Lanes<Acc> sum[kTaps];
  for (int t = 0; t < kTaps; ++t) sum[t] = Lanes<Acc>{};
  const auto vector = [&](const T* dy_row, const Acc* from, int64_t at, bool masked) {
    Lanes<Acc> grad;
    if constexpr (std::is_same_v<T, Acc>) {
      grad = load_lanes(dy_row + at);
    } else {
      for (int i = 0; i < lanes; ++i) grad[i] = static_cast<Acc>(dy_row[at + i]);
    }
    if (masked) grad = lane >= static_cast<typename LaneIndexOf<Acc>::Index>(repeated) ? grad : Lanes<Acc>{};
    for (int t = 0; t < kTaps; ++t) sum[t] += grad * load_lanes(from + offsets[t] + at);
  };
  for (int64_t l0 = 0; l0 < g.cols[0]; ++l0) {
    for (int64_t l1 = 0; l1 < g.cols[1]; ++l1) {
      const T* dy_row = dy + (l0 * g.cols[1] + l1) * L2;
      const Acc* from = padded + u.wide(l0, l1);
      if (next_input != nullptr) {
        prefetch_rows_share(next_input, g.image_numel(), g, l0 * g.cols[1] + l1, 1);
        prefetch_rows_share(next_dy, g.cols_numel(), g, l0 * g.cols[1] + l1, 1);
      }
      int64_t c = 0;
      for (; c + lanes <= L2; c += lanes) vector(dy_row, from, c, false);
      if (c < L2) vector(dy_row, from, tail, true);
    }
  }
  for (int t = 0; t < kTaps; ++t) {
    Acc total = Acc(0);
    for (int i = 0; i < lanes; ++i) total += sum[t][i];
    dw[t] += total;
  }
}

// Weight gradient of channel c at unit stride: per image, the input plane padded. Rows of at
// least a vector: depthwise_weight_taps, all the taps in one pass for the common kernels (3,
// 3x3, 5x5, 3x3x3), a pass per tap for others. Narrower rows: the output gradient laid out
// wide (zeros between its rows), so that each tap's sum is one dot product over the wide
// positions. scratch: padded, then the wide gradient.
template <typename T, typename Acc>
inline void depthwise_backward_weight_unit_stride(const T* grad_output, const T* input, Acc* dw, int64_t batch,
                                                  Acc* scratch, const ColumnGeometry& g, int64_t multiplier,
                                                  int64_t o) {
  const UnitStrideLayout u(g);
  const int64_t out_channels = g.channels * multiplier, K = g.kernel_numel();
  Acc* __restrict__ padded = scratch;
  const auto image_plane = [&](int64_t n) { return input + (n * g.channels + o / multiplier) * g.image_numel(); };
  if (g.cols[2] >= kLanes<Acc>) {
    const auto tap_offset = [&](int64_t k) {
      const int64_t k01 = k / g.kernel[2];
      return u.tap_row(g, k01 / g.kernel[1], k01 % g.kernel[1]) + k % g.kernel[2] * g.dil[2];
    };
    int64_t offsets[27];  // the one-pass kernels' taps
    for (int64_t k = 0; k < min64(K, 27); ++k) offsets[k] = tap_offset(k);
    for (int64_t n = 0; n < batch; ++n) {
      pad_plane(image_plane(n), g, u, padded);
      const T* dy = grad_output + (n * out_channels + o) * g.cols_numel();
      const bool last = n + 1 == batch;
      const T* next_input = last ? nullptr : image_plane(n + 1);
      const T* next_dy = last ? nullptr : dy + out_channels * g.cols_numel();
      if (K == 3) {
        depthwise_weight_taps<3>(dy, padded, offsets, dw, g, u, next_input, next_dy);
      } else if (K == 9) {
        depthwise_weight_taps<9>(dy, padded, offsets, dw, g, u, next_input, next_dy);
      } else if (K == 25) {
        depthwise_weight_taps<25>(dy, padded, offsets, dw, g, u, next_input, next_dy);
      } else if (K == 27) {
        depthwise_weight_taps<27>(dy, padded, offsets, dw, g, u, next_input, next_dy);
      } else {  // a pass per tap, the first asking for the next image
        for (int64_t k = 0; k < K; ++k) {
          const int64_t offset = tap_offset(k);
          depthwise_weight_taps<1>(dy, padded, &offset, dw + k, g, u, k == 0 ? next_input : nullptr, next_dy);
        }
      }
    }
    return;
  }
  Acc* __restrict__ wide = scratch + u.numel();
  for (int64_t i = 0; i < u.count; ++i) wide[i] = Acc(0);  // the places between rows stay 0
  for (int64_t n = 0; n < batch; ++n) {
    pad_plane(image_plane(n), g, u, padded);
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
          for (int64_t l2 = first; l2 < last; ++l2) {
            sum += static_cast<Acc>(dy[l2]) * static_cast<Acc>(row[l2 * s2 + offset]);
          }
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
