// im2col and col2im for 1 to 3 spatial dims, torch-free.
//
// Shapes (per batch chunk of B images, C channels, spatial dims padded to 3):
//   image    (B, C, X0, X1, X2)            contiguous
//   columns  (B, C * K0*K1*K2, L0*L1*L2)   contiguous; row = c*K + kernel offset,
//                                          column = output position (torch's unfold layout)
// with L = (X + 2*pad - dil*(K-1) - 1) / stride + 1 per dim.
//
// Two forms of the same math:
//   im2col_position, col2im_element: one output position's K column entries, or one
//              image element, per call (what a CUDA thread computes);
//   im2col_rows / col2im_plane: (plane, tap) rows or one image plane per call,
//              index arithmetic hoisted, vectorisable inner loops (the fast CPU engine);
//              for images with short output rows, *_gathered through a table of
//              positions built once per call (GatherTable, ReaderTable).
// Also, host-only, move_phases: an image's planes split by phase along dilated dims and
// back, for the CPU's dilated convolutions run undilated (ops/conv/conv_cpu.cpp).
// col2im is written as a gather: each image element is owned by exactly one
// call, which sums every column entry that came from it. No atomics, so the
// result is deterministic on every device.
#pragma once
#ifndef __CUDACC__
#include <type_traits>
#include <vector>
#endif

#include "common.h"

namespace convops {
namespace kernels {

struct ColumnGeometry {
  int64_t channels;
  int64_t image[kMaxSpatial];   // X
  int64_t cols[kMaxSpatial];    // L, the output positions
  int64_t kernel[kMaxSpatial];  // K
  int64_t stride[kMaxSpatial];
  int64_t pad[kMaxSpatial];
  int64_t dil[kMaxSpatial];

  CONVOPS_HOST_DEVICE int64_t kernel_numel() const { return kernel[0] * kernel[1] * kernel[2]; }
  CONVOPS_HOST_DEVICE int64_t cols_numel() const { return cols[0] * cols[1] * cols[2]; }
  CONVOPS_HOST_DEVICE int64_t image_numel() const { return image[0] * image[1] * image[2]; }
  // Image coordinate read by output position l through kernel tap k along dim d.
  CONVOPS_HOST_DEVICE int64_t source(int d, int64_t l, int64_t k) const {
    return l * stride[d] - pad[d] + k * dil[d];
  }
  // Output positions l whose tap k lands inside the image along dim d: [first, last).
  CONVOPS_HOST_DEVICE int64_t first_valid(int d, int64_t k) const {
    return max64(0, ceil_div(pad[d] - k * dil[d], stride[d]));
  }
  CONVOPS_HOST_DEVICE int64_t last_valid(int d, int64_t k) const {
    return min64(cols[d], ceil_div(image[d] + pad[d] - k * dil[d], stride[d]));
  }
  CONVOPS_HOST_DEVICE bool unit_stride() const { return stride[0] == 1 && stride[1] == 1 && stride[2] == 1; }
  CONVOPS_HOST_DEVICE bool unpadded() const { return pad[0] == 0 && pad[1] == 0 && pad[2] == 0; }
  // The image zero-padded on both sides of every dim, as the CPU's unit-stride depthwise form holds it.
  CONVOPS_HOST_DEVICE int64_t padded_numel() const {
    return (image[0] + 2 * pad[0]) * (image[1] + 2 * pad[1]) * (image[2] + 2 * pad[2]);
  }
  // Output position that reads image coordinate x through tap k, or -1 if none.
  CONVOPS_HOST_DEVICE int64_t reader(int d, int64_t x, int64_t k) const {
    return tap_reader(x, k, stride[d], pad[d], dil[d], cols[d]);
  }
  // The in-plane offset that output position l reads through tap k, or -1 for padding.
  CONVOPS_HOST_DEVICE int64_t read_at(const int64_t l[kMaxSpatial], const int64_t k[kMaxSpatial]) const {
    const int64_t x0 = source(0, l[0], k[0]), x1 = source(1, l[1], k[1]), x2 = source(2, l[2], k[2]);
    if (x0 < 0 || x0 >= image[0] || x1 < 0 || x1 >= image[1] || x2 < 0 || x2 >= image[2]) return -1;
    return (x0 * image[1] + x1) * image[2] + x2;
  }
  // The flat output position that reads image position x through tap k, or -1 if none.
  CONVOPS_HOST_DEVICE int64_t read_by(const int64_t x[kMaxSpatial], const int64_t k[kMaxSpatial]) const {
    const int64_t l0 = reader(0, x[0], k[0]), l1 = reader(1, x[1], k[1]), l2 = reader(2, x[2], k[2]);
    return l0 >= 0 && l1 >= 0 && l2 >= 0 ? (l0 * cols[1] + l1) * cols[2] + l2 : -1;
  }
};

// The K column entries of one image plane (b * C + c) at one output position l, for a chunk:
// index in [0, B * C * L). The position's coordinates are found once for its K taps (one
// column entry per call spent most of the GPU's im2col time on that index math); consecutive
// indices write consecutive columns of each row.
template <typename T>
CONVOPS_HOST_DEVICE inline void im2col_position(const T* image, const ColumnGeometry& g, int64_t index, T* columns) {
  int64_t l[kMaxSpatial];
  const int64_t plane = split_index(index, g.cols, l);
  const int64_t L = g.cols_numel();
  const T* src = image + plane * g.image_numel();
  T* dst = columns + plane * g.kernel_numel() * L + (l[0] * g.cols[1] + l[1]) * g.cols[2] + l[2];
  for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
    const int64_t x0 = g.source(0, l[0], k0);
    const bool in0 = x0 >= 0 && x0 < g.image[0];
    for (int64_t k1 = 0; k1 < g.kernel[1]; ++k1) {
      const int64_t x1 = g.source(1, l[1], k1);
      const bool in01 = in0 && x1 >= 0 && x1 < g.image[1];
      for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2, dst += L) {
        const int64_t x2 = g.source(2, l[2], k2);
        *dst = in01 && x2 >= 0 && x2 < g.image[2] ? src[(x0 * g.image[1] + x1) * g.image[2] + x2] : T(0);
      }
    }
  }
}

// image[index] for a chunk, index in [0, B * C * X), accumulated in Acc.
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline Acc col2im_element(const T* columns, const ColumnGeometry& g, int64_t index) {
  int64_t x[kMaxSpatial];
  const int64_t plane = split_index(index, g.image, x);
  const int64_t x0 = x[0], x1 = x[1], x2 = x[2];
  const int64_t K = g.kernel_numel(), L = g.cols_numel();
  Acc sum = Acc(0);
  for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
    const int64_t l0 = g.reader(0, x0, k0);
    if (l0 < 0) continue;
    for (int64_t k1 = 0; k1 < g.kernel[1]; ++k1) {
      const int64_t l1 = g.reader(1, x1, k1);
      if (l1 < 0) continue;
      for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
        const int64_t l2 = g.reader(2, x2, k2);
        if (l2 < 0) continue;
        const int64_t row = plane * K + (k0 * g.kernel[1] + k1) * g.kernel[2] + k2;
        sum += static_cast<Acc>(columns[row * L + (l0 * g.cols[1] + l1) * g.cols[2] + l2]);
      }
    }
  }
  return sum;
}

#ifndef __CUDACC__
// ---------------------------------------------------------------- CPU forms
// For every kernel tap k along each dim d, the output positions whose read lands inside
// the image: [first[d][k], last[d][k]) (first == last when none). Found once per call,
// not once per row: they cost integer divisions, which dominate small images.
struct TapRanges {
  std::vector<int64_t> first[kMaxSpatial], last[kMaxSpatial];
  explicit TapRanges(const ColumnGeometry& g) {
    for (int d = 0; d < kMaxSpatial; ++d) {
      first[d].resize(g.kernel[d]);
      last[d].resize(g.kernel[d]);
      for (int64_t k = 0; k < g.kernel[d]; ++k) {
        first[d][k] = min64(g.first_valid(d, k), g.cols[d]);
        last[d][k] = max64(g.last_valid(d, k), first[d][k]);
      }
    }
  }
};

// table[k * P + p] = entry(k, p) for every kernel tap k and position p of `extent` (P of
// them), both row-major: the tables below, built once per call.
template <typename Entry>
inline std::vector<int64_t> tap_table(const ColumnGeometry& g, const int64_t extent[kMaxSpatial], Entry entry) {
  std::vector<int64_t> table(g.kernel_numel() * extent[0] * extent[1] * extent[2]);
  for (int64_t t = 0; t < static_cast<int64_t>(table.size()); ++t) {
    int64_t k[kMaxSpatial], p[kMaxSpatial];
    split_index(split_index(t, extent, p), g.kernel, k);
    table[t] = entry(k, p);
  }
  return table;
}

// The CPU's direct forms (direct_conv.h) hold a group of `channels` image planes zero-padded
// on both sides of every dim (Xp = X + 2*pad, plane = Xp0*Xp1*Xp2 values each): output
// position (l0, l1, l2) reads tap t = c*K + k at padded[start(l0, l1) + l2*stride2 + offset[t]],
// with no bounds to check.
struct PaddedTaps {
  int64_t Xp[kMaxSpatial];
  int64_t plane, channels;
  std::vector<int64_t> offset;  // channels * K
  PaddedTaps(const ColumnGeometry& g, int64_t channels_) : channels(channels_) {
    for (int d = 0; d < kMaxSpatial; ++d) Xp[d] = g.image[d] + 2 * g.pad[d];
    plane = g.padded_numel();
    offset.resize(channels * g.kernel_numel());
    for (int64_t t = 0; t < static_cast<int64_t>(offset.size()); ++t) {
      int64_t k[kMaxSpatial];
      const int64_t c = split_index(t, g.kernel, k);
      offset[t] = c * plane + (k[0] * g.dil[0] * Xp[1] + k[1] * g.dil[1]) * Xp[2] + k[2] * g.dil[2];
    }
  }
  int64_t start(const ColumnGeometry& g, int64_t l0, int64_t l1) const {
    return (l0 * g.stride[0] * Xp[1] + l1 * g.stride[1]) * Xp[2];
  }
  int64_t numel() const { return channels * plane; }
};

// For images whose output rows are short (ResNet's 8x8 and smaller stages on 32x32 inputs:
// per layer 1.3-1.6x faster), copying row segments costs more per segment than per value:
// instead, each tap's whole column row is gathered through a table built once per call,
// source[k * L + l] = the plane offset output position l reads through tap k, or -1 where
// that is padding (K * L entries).
struct GatherTable {
  std::vector<int64_t> source;
  explicit GatherTable(const ColumnGeometry& g)
      : source(tap_table(g, g.cols, [&](const int64_t* k, const int64_t* l) { return g.read_at(l, k); })) {}
  // Worth it where output rows are this short and the table this small.
  static bool suits(const ColumnGeometry& g) {
    return g.cols[2] < 16 && g.kernel_numel() * g.cols_numel() <= (int64_t(1) << 16);
  }
};

// Rows [begin, end) of whole-image columns (as im2col_rows with lo = 0, hi = L and the same
// `fold`), gathered.
template <typename T>
inline void im2col_rows_gathered(const T* image, T* columns, const ColumnGeometry& g, const GatherTable& table,
                                 int64_t begin, int64_t end, int64_t fold = 0) {
  const int64_t K = g.kernel_numel(), L = g.cols_numel(), X = g.image_numel(), image_rows = g.channels * K;
  for (int64_t row = begin; row < end; ++row) {
    const T* __restrict__ plane = image + (row / K) * X;
    const int64_t* __restrict__ source = table.source.data() + (row % K) * L;
    T* __restrict__ dst = columns + (fold > 0 ? (row % image_rows) * fold + row / image_rows : row) * L;
    for (int64_t l = 0; l < L; ++l) dst[l] = source[l] >= 0 ? plane[source[l]] : T(0);
  }
}

// col2im's table: reader[k * X + x] = the output position whose tap k reads image position
// x, or -1 (K * X entries). Only for the shortest rows: at LeNet's 10-wide rows adding row
// segments was faster, at ResNet's 4x4 and smaller stages this (make bench, training step).
struct ReaderTable {
  std::vector<int64_t> reader;
  explicit ReaderTable(const ColumnGeometry& g)
      : reader(tap_table(g, g.image, [&](const int64_t* k, const int64_t* x) { return g.read_by(x, k); })) {}
  static bool suits(const ColumnGeometry& g) {
    return g.cols[2] < 8 && g.kernel_numel() * g.image_numel() <= (int64_t(1) << 16);
  }
};

// The direct forms' small-images tables (direct_conv.h): for each position q of what they
// compute, the (tap, offset) pairs that add to it, tap[i] and at[i] for i in [begin[q],
// begin[q + 1]), taps in increasing order; from a tap_table (offset or -1 for each tap and
// position, tap-major), its taps numbered from the end where `flipped`.
struct PositionTaps {
  std::vector<int64_t> begin{0}, tap, at;
  PositionTaps(const std::vector<int64_t>& table, int64_t positions, bool flipped) {
    const int64_t taps = static_cast<int64_t>(table.size()) / positions;
    for (int64_t q = 0; q < positions; ++q) {
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t offset = table[(flipped ? taps - 1 - t : t) * positions + q];
        if (offset < 0) continue;
        tap.push_back(t);
        at.push_back(offset);
      }
      begin.push_back(static_cast<int64_t>(tap.size()));
    }
  }
};

// The forward's: output position l reads in-plane offset `at` through tap k, where inside
// the image (GatherTable's entries).
inline PositionTaps forward_position_taps(const ColumnGeometry& g) {
  return PositionTaps(GatherTable(g).source, g.cols_numel(), false);
}

// The input gradient's, as a forward of the output gradient with the kernel flipped (tap
// K-1-k): image position x gathers the output position that reads it through tap k
// (ReaderTable's entries).
inline PositionTaps input_gradient_position_taps(const ColumnGeometry& g) {
  return PositionTaps(ReaderTable(g).reader, g.image_numel(), true);
}

// One image plane of col2im (as col2im_plane: acc is X values of scratch), gathered: the
// same additions, in the same tap order.
template <typename T, typename Acc>
inline void col2im_plane_gathered(const T* columns, T* image, Acc* __restrict__ acc, const ColumnGeometry& g,
                                  const ReaderTable& table, int64_t plane) {
  const int64_t X = g.image_numel(), L = g.cols_numel(), K = g.kernel_numel();
  for (int64_t x = 0; x < X; ++x) acc[x] = Acc(0);
  for (int64_t k = 0; k < K; ++k) {
    const T* __restrict__ src = columns + (plane * K + k) * L;
    const int64_t* __restrict__ reader = table.reader.data() + k * X;
    for (int64_t x = 0; x < X; ++x) {
      if (reader[x] >= 0) acc[x] += static_cast<Acc>(src[reader[x]]);
    }
  }
  T* dst = image + plane * X;
  for (int64_t x = 0; x < X; ++x) dst[x] = static_cast<T>(acc[x]);
}

// Rows [begin, end) of the columns, row in [0, B * C*K) one (plane, kernel tap), over the
// output positions [lo, hi) of the flat L: all of them (0, L), or a tile when the columns
// of a whole image would not stay in cache. Row r = b*C*K + q (image b, row q of its
// columns) starts at columns + r * (hi - lo), or with `fold` images side by side (the
// (C*K, fold, L) layout one GEMM per group multiplies) at columns + (q * fold + b) * L. The
// first row's tap is decoded once, then counted on; the innermost loop is a copy.
template <typename T>
inline void im2col_rows(const T* image, T* columns, const ColumnGeometry& g, const TapRanges& taps, int64_t begin,
                        int64_t end, int64_t lo, int64_t hi, int64_t fold = 0) {
  int64_t rest = begin;
  int64_t k2 = rest % g.kernel[2]; rest /= g.kernel[2];
  int64_t k1 = rest % g.kernel[1]; rest /= g.kernel[1];
  int64_t k0 = rest % g.kernel[0];
  int64_t plane = rest / g.kernel[0];
  const int64_t s2 = g.stride[2], L1 = g.cols[1], L2 = g.cols[2], image_rows = g.channels * g.kernel_numel();
  T* dst = columns + begin * (hi - lo);
  for (int64_t row = begin; row < end; ++row) {
    if (fold > 0) dst = columns + ((row % image_rows) * fold + row / image_rows) * (hi - lo);
    const T* src_plane = image + plane * g.image_numel();
    const int64_t first0 = taps.first[0][k0], last0 = taps.last[0][k0];
    const int64_t first1 = taps.first[1][k1], last1 = taps.last[1][k1];
    const int64_t first2 = taps.first[2][k2], last2 = taps.last[2][k2], offset2 = k2 * g.dil[2] - g.pad[2];
    // Walk [lo, hi) one output row (l0, l1) at a time: a segment [a, b) of its L2 positions.
    int64_t l01 = lo / L2, a = lo % L2;
    int64_t l0 = l01 / L1, l1 = l01 % L1;
    for (int64_t l = lo; l < hi;) {
      const int64_t b = min64(L2, a + (hi - l));
      if (l0 < first0 || l0 >= last0 || l1 < first1 || l1 >= last1) {
        for (int64_t l2 = a; l2 < b; ++l2) *dst++ = T(0);
      } else {
        const T* src = src_plane + (g.source(0, l0, k0) * g.image[1] + g.source(1, l1, k1)) * g.image[2];
        const int64_t c0 = min64(max64(first2, a), b), c1 = max64(min64(last2, b), c0);  // copied: [c0, c1)
        for (int64_t l2 = a; l2 < c0; ++l2) *dst++ = T(0);
        strided_copy(src + c0 * s2 + offset2, s2, dst, 1, c1 - c0);
        dst += c1 - c0;
        for (int64_t l2 = c1; l2 < b; ++l2) *dst++ = T(0);
      }
      l += b - a;
      a = 0;
      if (++l1 == L1) {
        l1 = 0;
        ++l0;
      }
    }
    if (++k2 == g.kernel[2]) {
      k2 = 0;
      if (++k1 == g.kernel[1]) {
        k1 = 0;
        if (++k0 == g.kernel[0]) {
          k0 = 0;
          ++plane;
        }
      }
    }
  }
}

// Scratch values col2im_plane needs: each image row split into stride[2] phases (phase q
// holding positions q, q + stride, ...) of ceil(X2 / stride) values each.
inline int64_t col2im_plane_scratch(const ColumnGeometry& g) {
  return g.image[0] * g.image[1] * g.stride[2] * ceil_div(g.image[2], g.stride[2]);
}

// One whole image plane (X values): plane in [0, B * C). acc is caller scratch of
// col2im_plane_scratch values, zeroed here. The plane is owned by one call, which adds every
// column entry read from it in a fixed order: deterministic, and no two calls write the same
// place. Its rows are summed split into phases, where the columns of one tap add up as one
// unit-stride run (at stride 2, adding each tap's run two values apart was a third of
// conv_transpose2d's forward), then merged back.
template <typename T, typename Acc>
inline void col2im_plane(const T* columns, T* image, Acc* acc, const ColumnGeometry& g, const TapRanges& taps,
                         int64_t plane) {
  const int64_t L = g.cols_numel(), K = g.kernel_numel(), s2 = g.stride[2];
  const int64_t phase = ceil_div(g.image[2], s2), row = s2 * phase, rows = g.image[0] * g.image[1];
  for (int64_t x = 0; x < rows * row; ++x) acc[x] = Acc(0);
  const T* src = columns + plane * K * L;
  for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
    for (int64_t k1 = 0; k1 < g.kernel[1]; ++k1) {
      for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2, src += L) {
        const int64_t first2 = taps.first[2][k2], last2 = taps.last[2][k2];
        const int64_t x2 = g.source(2, first2, k2);  // the run's first position: phase x2 % s2
        const int64_t into = (x2 % s2) * phase + x2 / s2;
        for (int64_t l0 = taps.first[0][k0]; l0 < taps.last[0][k0]; ++l0) {
          const int64_t x0 = g.source(0, l0, k0);
          for (int64_t l1 = taps.first[1][k1]; l1 < taps.last[1][k1]; ++l1) {
            const int64_t x1 = g.source(1, l1, k1);
            const T* from = src + (l0 * g.cols[1] + l1) * g.cols[2];
            strided_add(from + first2, 1, acc + (x0 * g.image[1] + x1) * row + into, 1, last2 - first2);
          }
        }
      }
    }
  }
  T* dst = image + plane * g.image_numel();
  for (int64_t r = 0; r < rows; ++r, dst += g.image[2]) {
    const Acc* sums = acc + r * row;
    for (int64_t q = 0; q < s2 && q < g.image[2]; ++q) {
      strided_apply(sums + q * phase, 1, dst + q, s2, ceil_div(g.image[2] - q, s2),
                    [](T& to, Acc sum) { to = static_cast<T>(sum); });
    }
  }
}

// One row of dilation by phases (move_phases): row[j * f + a] <-> phase a's [j], j < count,
// phase a at phases[a * phase_stride]. kF: f as a constant (0: at run time), so that the
// common f = 2 compiles to vector loads and shuffles.
template <bool kSplit, int kF, typename T>
inline void move_phase_row(std::conditional_t<kSplit, const T*, T*> row, int64_t runtime_f, int64_t count,
                           std::conditional_t<kSplit, T*, const T*> phases, int64_t phase_stride) {
  const int64_t f = kF > 0 ? kF : runtime_f;
  for (int64_t j = 0; j < count; ++j) {
    for (int64_t a = 0; a < f; ++a) {
      if constexpr (kSplit) {
        phases[a * phase_stride + j] = row[j * f + a];
      } else {
        row[j * f + a] = phases[a * phase_stride + j];
      }
    }
  }
}

// Dilation by phases (ops/conv/conv_cpu.cpp, winograd_plan): along dim d, an extent that is
// a multiple of f[d] splits into f[d] phases, phase a holding positions a, a + f[d], a +
// 2 f[d], ... One plane of `sides` values to its f0*f1*f2 phase planes (sides[d] / f[d] along
// each dim), phase (a0, a1, a2) at phases + ((a0 * f1 + a1) * f2 + a2) * phase_stride (kSplit),
// or those phases back into the plane.
template <bool kSplit, typename T>
inline void move_phases(std::conditional_t<kSplit, const T*, T*> plane, const int64_t (&sides)[kMaxSpatial],
                        const int64_t (&f)[kMaxSpatial], std::conditional_t<kSplit, T*, const T*> phases,
                        int64_t phase_stride) {
  const int64_t h1 = sides[1] / f[1], h2 = sides[2] / f[2];
  for (int64_t x0 = 0; x0 < sides[0]; ++x0) {
    for (int64_t x1 = 0; x1 < sides[1]; ++x1) {
      auto* row = plane + (x0 * sides[1] + x1) * sides[2];
      const int64_t phase_row = (x0 % f[0] * f[1] + x1 % f[1]) * f[2];
      auto* first_phase = phases + phase_row * phase_stride + (x0 / f[0] * h1 + x1 / f[1]) * h2;
      if (f[2] == 2) {
        move_phase_row<kSplit, 2, T>(row, 2, h2, first_phase, phase_stride);
      } else {
        move_phase_row<kSplit, 0, T>(row, f[2], h2, first_phase, phase_stride);
      }
    }
  }
}

#endif  // __CUDACC__

}  // namespace kernels
}  // namespace convops
