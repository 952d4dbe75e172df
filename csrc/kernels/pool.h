// Max and average pooling for 1 to 3 spatial dims, torch-free.
//
// Shapes (spatial dims padded in front to 3): input plane (X0, X1, X2), output plane
// (O0, O1, O2); tensors are (B*C planes, *plane) contiguous, or (the element forms, with
// PoolGeometry::cl_channels = C) dense channels_last: (B, *plane, C). Max-pool indices are
// flat positions inside the input plane ((x0*X1 + x1)*X2 + x2), as torch returns them, or
// (for autograd alone) each window's winning tap: see argmax_code, in either layout.
//
// Semantics, as torch: a max window scans its taps in row-major order and takes a
// value if it is greater than the best so far or NaN (so ties keep the first maximum
// and NaN propagates); starting from -inf at the first in-bounds tap. An average window
// [o*s - p, o*s - p + k) is clipped to the padded input for count_include_pad and to
// the input for the count that excludes padding; divisor_override replaces both.
//
// Two forms of the same math:
//   *_element: one output (forward) or one input (backward, a gather) element per call:
//              what a CUDA thread runs;
//   CPU forms (pool_cpu.h): one whole plane, row or image per call, separable passes
//              with vectorisable inner loops: the fast CPU engine.
#pragma once
#include <type_traits>

#ifndef __CUDACC__
#include <vector>
#endif

#include "common.h"

namespace convops {
namespace kernels {

struct PoolGeometry {
  int64_t image[kMaxSpatial];
  int64_t out[kMaxSpatial];
  int64_t kernel[kMaxSpatial];
  int64_t stride[kMaxSpatial];
  int64_t pad[kMaxSpatial];
  int64_t dil[kMaxSpatial];
  bool count_include_pad;
  int64_t divisor_override;  // 0: none
  int64_t cl_channels;       // the element forms' layout: 0, (B*C, *plane); C, channels_last (B, *plane, C)

  // The plane (b*C + c) of the element at memory index `index` of a tensor of planes
  // `dims`, its in-plane coordinates into c.
  CONVOPS_HOST_DEVICE int64_t split_plane(int64_t index, const int64_t dims[kMaxSpatial],
                                          int64_t c[kMaxSpatial]) const {
    if (cl_channels == 0) return split_index(index, dims, c);
    const int64_t position = divide(index, cl_channels);
    return split_index(position, dims, c) * cl_channels + (index - position * cl_channels);
  }
  // Where a plane of `numel` positions starts, and how far apart its positions lie.
  CONVOPS_HOST_DEVICE int64_t plane_start(int64_t plane, int64_t numel) const {
    if (cl_channels == 0) return plane * numel;
    const int64_t b = divide(plane, cl_channels);
    return b * numel * cl_channels + (plane - b * cl_channels);
  }
  CONVOPS_HOST_DEVICE int64_t position_step() const { return cl_channels == 0 ? 1 : cl_channels; }

  CONVOPS_HOST_DEVICE int64_t image_numel() const { return image[0] * image[1] * image[2]; }
  CONVOPS_HOST_DEVICE int64_t out_numel() const { return out[0] * out[1] * out[2]; }
  CONVOPS_HOST_DEVICE int64_t start(int d, int64_t o) const { return o * stride[d] - pad[d]; }
  // First in-bounds tap position of window o along d (max pooling, with dilation).
  CONVOPS_HOST_DEVICE int64_t first_inside(int d, int64_t o) const {
    const int64_t s = start(d, o);
    return s >= 0 ? s : s + ceil_div(-s, dil[d]) * dil[d];
  }
  // One past the last input position window o's span reaches along d, clipped to the input.
  CONVOPS_HOST_DEVICE int64_t inside_end(int d, int64_t o) const {
    return min64(start(d, o) + (kernel[d] - 1) * dil[d] + 1, image[d]);
  }
  // Whether output index o along d reads input index o alone.
  CONVOPS_HOST_DEVICE bool identity(int d) const { return kernel[d] == 1 && stride[d] == 1 && pad[d] == 0; }
  // Whether windows span one position of the outer dims (0 and 1), output row i then being
  // a pass over input row i alone: always so in 1-D.
  CONVOPS_HOST_DEVICE bool outer_identity() const { return identity(0) && identity(1); }
  // Whether max window o along d has no tap inside the input (a dilation can step over a
  // small input): its value is -inf, its position (as torch's) lies past the window, and
  // its gradient reaches no input.
  CONVOPS_HOST_DEVICE bool window_outside(int d, int64_t o) const { return first_inside(d, o) >= image[d]; }
  // Only windows that start in the padding can miss the input: every window starts before
  // the input's end (torch's ceil_mode rule), and one starting inside has its first tap there.
  CONVOPS_HOST_DEVICE bool any_window_outside() const {
    for (int d = 0; d < kMaxSpatial; ++d) {
      for (int64_t o = 0; o < out[d] && start(d, o) < 0; ++o) {
        if (window_outside(d, o)) return true;
      }
    }
    return false;
  }
  CONVOPS_HOST_DEVICE bool output_outside(int64_t o0, int64_t o1, int64_t o2) const {
    return window_outside(0, o0) || window_outside(1, o1) || window_outside(2, o2);
  }
  // The average window along d, clipped to the input: [lo, hi); returns its divisor factor.
  CONVOPS_HOST_DEVICE int64_t avg_window(int d, int64_t o, int64_t* lo, int64_t* hi) const {
    const int64_t s = start(d, o);
    const int64_t padded_end = min64(s + kernel[d], image[d] + pad[d]);
    *lo = max64(s, 0);
    *hi = min64(padded_end, image[d]);
    return count_include_pad ? padded_end - s : *hi - *lo;
  }
  CONVOPS_HOST_DEVICE int64_t avg_divisor(int64_t o0, int64_t o1, int64_t o2) const {
    if (divisor_override != 0) return divisor_override;
    int64_t lo, hi;
    return avg_window(0, o0, &lo, &hi) * avg_window(1, o1, &lo, &hi) * avg_window(2, o2, &lo, &hi);
  }
  // Output windows along d whose span (first to last tap) holds input position x: [first, last).
  CONVOPS_HOST_DEVICE void spanning(int d, int64_t x, int64_t* first, int64_t* last) const {
    *first = max64(0, ceil_div(x + pad[d] - (kernel[d] - 1) * dil[d], stride[d]));
    *last = min64(out[d], divide(x + pad[d], stride[d]) + 1);
  }
  // Whether x, inside the span of window o along d, is one of its taps (the dilation can step over it).
  CONVOPS_HOST_DEVICE bool is_tap(int d, int64_t o, int64_t x) const {
    return dil[d] == 1 || modulo(x - start(d, o), dil[d]) == 0;
  }
  CONVOPS_HOST_DEVICE int64_t taps() const { return kernel[0] * kernel[1] * kernel[2]; }
  // The tap (along d) of window o's first_inside.
  CONVOPS_HOST_DEVICE int64_t first_tap(int d, int64_t o) const { return tap_along(d, o, first_inside(d, o)); }
  // The tap (along d) of window o at x, one of its taps: no division without a dilation.
  CONVOPS_HOST_DEVICE int64_t tap_along(int d, int64_t o, int64_t x) const {
    return dil[d] == 1 ? x - start(d, o) : divide(x - start(d, o), dil[d]);
  }
  // Tap (k0, k1, k2) of a window as one number, row-major over the kernel.
  CONVOPS_HOST_DEVICE int64_t tap_index(int64_t k0, int64_t k1, int64_t k2) const {
    return (k0 * kernel[1] + k1) * kernel[2] + k2;
  }
  // Input (x0, x1, x2) as a flat in-plane position.
  CONVOPS_HOST_DEVICE int64_t plane_position(int64_t x0, int64_t x1, int64_t x2) const {
    return (x0 * image[1] + x1) * image[2] + x2;
  }
  // In-plane positions: window (o0, o1, o2)'s origin (its tap 0, padding included), and how
  // far its tap k lies from it.
  CONVOPS_HOST_DEVICE int64_t window_origin(int64_t o0, int64_t o1, int64_t o2) const {
    return plane_position(start(0, o0), start(1, o1), start(2, o2));
  }
  CONVOPS_HOST_DEVICE int64_t tap_offset(int64_t k) const {
    const int64_t k2 = modulo(k, kernel[2]), k01 = divide(k, kernel[2]);
    const int64_t k1 = modulo(k01, kernel[1]), k0 = divide(k01, kernel[1]);
    return (k0 * dil[0] * image[1] + k1 * dil[1]) * image[2] + k2 * dil[2];
  }
};

// Max pooling's argmax, in one of two codes (the Index type of the max-pool functions):
//   int64_t: the winner's in-plane position ((x0*X1 + x1)*X2 + x2): torch's indices, what
//            max_unpool reads (a window with no tap inside: its first tap inside along every dim,
//            past the window);
//   uint8_t: the winner's tap number in its window (PoolGeometry::tap_index), kNoTap for a
//            window with no tap inside: what autograd saves when only the gradient needs the
//            argmax (windows of at most kMaxCodedTaps taps), an eighth of the bytes the
//            forward writes and the backward reads.
constexpr int64_t kNoTap = 255;
constexpr int64_t kMaxCodedTaps = 255;

// The code of input (x0, x1, x2) as tap (k0, k1, k2) of a window: the one rule for the
// forms that count the taps as they scan, and for argmax_code.
template <typename Index>
CONVOPS_HOST_DEVICE inline int64_t tap_code(const PoolGeometry& g, int64_t x0, int64_t x1, int64_t x2, int64_t k0,
                                            int64_t k1, int64_t k2) {
  return sizeof(Index) == 1 ? g.tap_index(k0, k1, k2) : g.plane_position(x0, x1, x2);
}

// The code of window (o0, o1, o2)'s winner at input (x0, x1, x2), one of its taps (positions
// need no tap numbers: no divisions).
template <typename Index>
CONVOPS_HOST_DEVICE inline Index argmax_code(const PoolGeometry& g, int64_t o0, int64_t o1, int64_t o2, int64_t x0,
                                             int64_t x1, int64_t x2) {
  if constexpr (sizeof(Index) == 1) {
    return static_cast<Index>(tap_code<Index>(g, x0, x1, x2, g.tap_along(0, o0, x0), g.tap_along(1, o1, x1),
                                              g.tap_along(2, o2, x2)));
  } else {
    return static_cast<Index>(tap_code<Index>(g, x0, x1, x2, 0, 0, 0));
  }
}

// The code a window starts from: its first tap inside the input along every dim, or (tap
// codes) kNoTap for a window with no tap inside. (Positions: that first tap either way, as torch's.)
template <typename Index>
CONVOPS_HOST_DEVICE inline Index first_argmax_code(const PoolGeometry& g, int64_t o0, int64_t o1, int64_t o2) {
  if (sizeof(Index) == 1 && g.output_outside(o0, o1, o2)) return static_cast<Index>(kNoTap);
  return argmax_code<Index>(g, o0, o1, o2, g.first_inside(0, o0), g.first_inside(1, o1), g.first_inside(2, o2));
}

template <typename Acc>
CONVOPS_HOST_DEVICE inline bool takes(Acc value, Acc best) {
  return value > best || value != value;  // greater, or NaN
}

template <typename Acc>
CONVOPS_HOST_DEVICE inline Acc lowest() {
  return -static_cast<Acc>(__builtin_huge_valf());
}

// Window (o0, o1, o2) of one plane -> its max and (unless argmax is null) its argmax's code.
template <typename T, typename Acc, typename Index>
CONVOPS_HOST_DEVICE inline void max_pool_window(const T* plane, const PoolGeometry& g, int64_t o0, int64_t o1,
                                                int64_t o2, T* out, Index* argmax) {
  const int64_t f0 = g.first_inside(0, o0), f1 = g.first_inside(1, o1), f2 = g.first_inside(2, o2);
  const int64_t e0 = g.inside_end(0, o0), e1 = g.inside_end(1, o1), e2 = g.inside_end(2, o2);
  Acc best = lowest<Acc>();
  int64_t b0 = -1, b1 = -1, b2 = -1;  // the winner, if a tap takes
  for (int64_t x0 = f0; x0 < e0; x0 += g.dil[0]) {
    for (int64_t x1 = f1; x1 < e1; x1 += g.dil[1]) {
      for (int64_t x2 = f2; x2 < e2; x2 += g.dil[2]) {
        const Acc v = static_cast<Acc>(plane[g.plane_position(x0, x1, x2) * g.position_step()]);
        if (takes(v, best)) {
          best = v;
          b0 = x0;
          b1 = x1;
          b2 = x2;
        }
      }
    }
  }
  *out = static_cast<T>(best);
  if (argmax != nullptr) {
    *argmax = b0 >= 0 ? argmax_code<Index>(g, o0, o1, o2, b0, b1, b2) : first_argmax_code<Index>(g, o0, o1, o2);
  }
}

// Output element at memory index `index` -> its max and (unless argmax is null) its argmax's code.
template <typename T, typename Acc, typename Index>
CONVOPS_HOST_DEVICE inline void max_pool_element(const T* input, const PoolGeometry& g, int64_t index, T* out,
                                                 Index* argmax) {
  int64_t o[kMaxSpatial];
  const T* plane = input + g.plane_start(g.split_plane(index, g.out, o), g.image_numel());
  max_pool_window<T, Acc, Index>(plane, g, o[0], o[1], o[2], out, argmax);
}

// Input element at memory index `index`: the sum of the output gradients whose argmax it is, over
// the windows that hold it as a tap (found per dim as a range of windows: two divisions, not
// two per tap).
template <typename T, typename Acc, typename Index>
CONVOPS_HOST_DEVICE inline Acc max_pool_backward_element(const T* grad_output, const Index* argmax,
                                                         const PoolGeometry& g, int64_t index) {
  int64_t x[kMaxSpatial];
  const int64_t plane = g.split_plane(index, g.image, x);
  const int64_t x0 = x[0], x1 = x[1], x2 = x[2];
  const int64_t base = g.plane_start(plane, g.out_numel()), step = g.position_step();
  int64_t a0, b0, a1, b1, a2, b2;
  g.spanning(0, x0, &a0, &b0);
  g.spanning(1, x1, &a1, &b1);
  g.spanning(2, x2, &a2, &b2);
  Acc sum = Acc(0);
  for (int64_t o0 = a0; o0 < b0; ++o0) {
    if (!g.is_tap(0, o0, x0)) continue;
    for (int64_t o1 = a1; o1 < b1; ++o1) {
      if (!g.is_tap(1, o1, x1)) continue;
      for (int64_t o2 = a2; o2 < b2; ++o2) {
        if (!g.is_tap(2, o2, x2)) continue;
        const int64_t o = base + ((o0 * g.out[1] + o1) * g.out[2] + o2) * step;
        if (argmax[o] == argmax_code<Index>(g, o0, o1, o2, x0, x1, x2)) sum += static_cast<Acc>(grad_output[o]);
      }
    }
  }
  return sum;
}

// Output element at memory index `index`: the window average.
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline Acc avg_pool_element(const T* input, const PoolGeometry& g, int64_t index) {
  int64_t o[kMaxSpatial];
  const T* plane = input + g.plane_start(g.split_plane(index, g.out, o), g.image_numel());
  const int64_t step = g.position_step();
  const int64_t o0 = o[0], o1 = o[1], o2 = o[2];
  int64_t lo0, hi0, lo1, hi1, lo2, hi2;
  g.avg_window(0, o0, &lo0, &hi0);
  g.avg_window(1, o1, &lo1, &hi1);
  g.avg_window(2, o2, &lo2, &hi2);
  Acc sum = Acc(0);
  for (int64_t x0 = lo0; x0 < hi0; ++x0) {
    for (int64_t x1 = lo1; x1 < hi1; ++x1) {
      for (int64_t x2 = lo2; x2 < hi2; ++x2) {
        sum += static_cast<Acc>(plane[((x0 * g.image[1] + x1) * g.image[2] + x2) * step]);
      }
    }
  }
  const int64_t divisor = g.avg_divisor(o0, o1, o2);
  return divisor != 0 ? sum / static_cast<Acc>(divisor) : Acc(0);
}

// Input element at memory index `index`: the sum of grad / divisor over the windows holding it.
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline Acc avg_pool_backward_element(const T* grad_output, const PoolGeometry& g, int64_t index) {
  int64_t x[kMaxSpatial];
  const int64_t x_plane = g.split_plane(index, g.image, x);
  const int64_t x0 = x[0], x1 = x[1], x2 = x[2];
  const T* plane = grad_output + g.plane_start(x_plane, g.out_numel());
  const int64_t step = g.position_step();
  int64_t a0, b0, a1, b1, a2, b2;
  g.spanning(0, x0, &a0, &b0);  // average pooling has no dilation: every window spanning x reads it
  g.spanning(1, x1, &a1, &b1);
  g.spanning(2, x2, &a2, &b2);
  Acc sum = Acc(0);
  for (int64_t o0 = a0; o0 < b0; ++o0) {
    for (int64_t o1 = a1; o1 < b1; ++o1) {
      for (int64_t o2 = a2; o2 < b2; ++o2) {
        const int64_t divisor = g.avg_divisor(o0, o1, o2);
        if (divisor != 0) {
          sum += static_cast<Acc>(plane[((o0 * g.out[1] + o1) * g.out[2] + o2) * step]) / static_cast<Acc>(divisor);
        }
      }
    }
  }
  return sum;
}

// ---------------------------------------------------------------- CPU engine data
// The CPU forms of this math are in pool_cpu.h; what they share with their callers is here.
// In-plane positions as the CPU plane engine tracks them: as wide as the values, so a
// compare-and-select vectorises on any x86-64 (float with int32, double with int64).
// Planes of 2^31 or more elements go to the element engine.
template <typename Acc>
using PlanePos = typename std::conditional<sizeof(Acc) == 8, int64_t, int32_t>::type;

// The phased layout of an input row (pool_cpu.h): the row, padded, split into `stride`
// phases of `length` entries, phase q holding the padded positions q, q + stride, ...
// Window o's tap k reads padded position o*stride + k*dil: entry o + tap[k] of the line.
// A block of `rows` padded rows (stride * length values each, side by side) splits the
// same way, each phase holding its entries of every row in turn: row r's window o reads
// entry r*length + o + tap[k] (average pooling's forward: one split per block of rows).
// Found once per call by the launcher (PhasedRow::build): it costs integer divisions.
struct PhasedRow {
  int64_t length;      // entries per phase and row
  int64_t rows;        // padded rows side by side (phase_split and phase_merge: one)
  int64_t size;        // stride * rows * length, the whole line
  const int64_t* tap;  // kernel[2] entries: where tap k of window 0 lies in the line
  const int64_t* lo;   // stride entries each: phase q's entries [lo[q], hi[q]) hold input
  const int64_t* hi;   // positions, the others padding or overhang
#ifndef __CUDACC__
  // Fills taps (kernel[2]) and bounds (2 * stride) and returns the layout over them.
  static PhasedRow build(const PoolGeometry& g, std::vector<int64_t>& taps, std::vector<int64_t>& bounds,
                         int64_t rows = 1) {
    const int64_t s = g.stride[2], length = row_length(g);
    taps.resize(g.kernel[2]);
    for (int64_t k = 0; k < g.kernel[2]; ++k) {
      const int64_t offset = k * g.dil[2];
      taps[k] = (offset % s) * rows * length + offset / s;
    }
    bounds.resize(2 * s);
    for (int64_t q = 0; q < s; ++q) {
      bounds[q] = min64(max64(0, ceil_div(g.pad[2] - q, s)), length);
      bounds[s + q] = max64(min64(length, ceil_div(g.pad[2] + g.image[2] - q, s)), bounds[q]);
    }
    return {length, rows, s * rows * length, taps.data(), bounds.data(), bounds.data() + s};
  }
  // Entries per phase of one row: its windows' reach and the padded input, whichever ends later.
  static int64_t row_length(const PoolGeometry& g) {
    const int64_t windows_end = (g.out[2] - 1) * g.stride[2] + (g.kernel[2] - 1) * g.dil[2] + 1;
    return ceil_div(max64(windows_end, g.pad[2] + g.image[2]), g.stride[2]);
  }
#endif
};

// The windows of a small plane with short output rows (pool_cpu.h: kShortPoolRow), found
// once per call: tap k of window o as the in-plane input position it reads, tap-major so a
// pass over one tap of every window vectorises (a gather); a tap in the padding reads
// position image_numel(), where the plane's copy holds -inf. With each window's taps
// compared one by one, LeNet's 10x10 -> 5x5 max pooling was bound by mispredicted branches
// (25 ns a window, 0.7x torch's speed).
constexpr int64_t kWindowTableEntries = int64_t(1) << 12;  // windows * taps, and the plane's size

struct WindowTable {
  // taps = kernel[0] * kernel[1] * kernel[2] per window, windows = out_numel():
  const int32_t* position;   // taps * windows, [k * windows + o]; null: no table
  const int32_t* first;      // windows: first_argmax_code's position
  const int32_t* first_tap;  // windows: first_argmax_code's tap number (kNoTap: no tap inside)
#ifndef __CUDACC__
  // The table of g's windows in position and first, or none if the windows' taps or the
  // plane exceed kWindowTableEntries.
  static WindowTable build(const PoolGeometry& g, std::vector<int32_t>& position, std::vector<int32_t>& first) {
    const int64_t taps = g.taps(), windows = g.out_numel();
    if (windows * taps > kWindowTableEntries || g.image_numel() > kWindowTableEntries) {
      return {nullptr, nullptr, nullptr};
    }
    position.resize(windows * taps);
    first.resize(2 * windows);
    for (int64_t o = 0; o < windows; ++o) {
      int64_t c[kMaxSpatial];
      split_index(o, g.out, c);
      first[o] = static_cast<int32_t>(first_argmax_code<int64_t>(g, c[0], c[1], c[2]));
      first[windows + o] = first_argmax_code<uint8_t>(g, c[0], c[1], c[2]);
      int64_t k = 0;
      for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
        const int64_t x0 = g.start(0, c[0]) + k0 * g.dil[0];
        for (int64_t k1 = 0; k1 < g.kernel[1]; ++k1) {
          const int64_t x1 = g.start(1, c[1]) + k1 * g.dil[1];
          for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2, ++k) {
            const int64_t x2 = g.start(2, c[2]) + k2 * g.dil[2];
            const bool inside = x0 >= 0 && x0 < g.image[0] && x1 >= 0 && x1 < g.image[1] && x2 >= 0 &&
                                x2 < g.image[2];
            position[k * windows + o] =
                static_cast<int32_t>(inside ? (x0 * g.image[1] + x1) * g.image[2] + x2 : g.image_numel());
          }
        }
      }
    }
    return {position.data(), first.data(), first.data() + windows};
  }
#endif
};

// Outputs of at least this many bytes are written by streaming stores (cpu_lanes.h:
// stream_copy): they outgrow the caches before anyone reads them, and a streaming store
// skips reading each fresh cache line in first (writing fresh outputs bounds pooling).
// 8 MiB, not 4: on a Zen 4 EPYC (32 MiB L3), make bench's 2-D NCHW forwards (6.4 MB outputs)
// ran 11-25% faster written to the cache (torch's op run in between, as make bench does);
// channels_last's the same either way, the gradients of 8 MiB and more still gained by streaming.
constexpr int64_t kStreamBytes = int64_t(1) << 23;
inline bool streamed(int64_t bytes) { return bytes >= kStreamBytes; }

// Max pooling's passes (pool_cpu.h, max_of_sources) run whole vectors: its scratch rows are
// kLanePad-aligned (padded_row), and what they read or write past a row's end, kLanePad
// entries at most (the widest copy's float lanes), is scratch too.
constexpr int64_t kLanePad = 16;
inline int64_t padded_row(int64_t count) { return ceil_div(count, kLanePad) * kLanePad; }

// Output rows that one max-pool pass covers (pool_cpu.h, max_of_sources): `rows` of them, each
// reading its sources source_step values past the previous row's, written out_step past it.
struct RowRun {
  int64_t rows = 1, source_step = 0, out_step = 0;
};

// The sources of one max-pool pass (pool_cpu.h, max_of_sources): source j's values
// from[j][i], and its winner's code codes[j][i] + base[j] (codes[j] unused: base[j]).
template <typename Acc>
struct MaxSources {
  const Acc** from;
  const PlanePos<Acc>** codes;
  PlanePos<Acc>* base;
};

// Scratch of a channels_last gradient gathered by input position (pool_cpu.h,
// avg_pool_backward_cl_image and max_pool_backward_cl_gather), one per task, carved from
// size(g) values owned by the caller: the windows covering each input position along each
// dim (covering_windows: 2 * (X0 + X1 + X2)); for max pooling's, each window covering one
// position, its offset into the image's output and its tap there (g.taps() of each: the
// most that cover a position without dilation), and the same for the rows of windows
// covering one row of positions (kernel0 * kernel1 of each).
struct GatherScratch {
  int64_t* covering;
  int64_t* offset;
  int64_t* tap;
  int64_t* row_offset;
  int64_t* row_tap;
  static int64_t covering_size(const PoolGeometry& g) { return 2 * (g.image[0] + g.image[1] + g.image[2]); }
  static int64_t size(const PoolGeometry& g) {
    return covering_size(g) + 2 * g.taps() + 2 * g.kernel[0] * g.kernel[1];
  }
  GatherScratch(const PoolGeometry& g, int64_t* room)
      : covering(room),
        offset(covering + covering_size(g)),
        tap(offset + g.taps()),
        row_offset(tap + g.taps()),
        row_tap(row_offset + g.kernel[0] * g.kernel[1]) {}
};

// Average pooling's forward over blocks of output rows (pool_cpu.h, average_row_blocks): each
// row's window sum padded (phased.rows rows of stride * length values, zero outside the
// input, kLanePad more readable), each row's outer divisor factor, and the block's layout.
// Where avg_slab, also the sum of each output slice's input slices.
template <typename Acc>
struct AvgRowBlock {
  Acc* sums;
  Acc* f01;
  PhasedRow phased;
  Acc* slab;  // X1*X2 values
};
// Values of a block's sums (and as many of its phased line): both stay in L1. Larger blocks
// (4096 values) made 2-D pooling slower: summing a block's rows while nothing is computed,
// then computing while no input is read, overlapped memory and work less than row by row.
// Max pooling's blocks of input rows (max_block_rows) are as large.
constexpr int64_t kRowBlockValues = int64_t(1) << 8;
// Input slices of at most this many values are summed whole into a slab (AvgRowBlock::slab),
// which stays in L1 beside the block: a 32x128 slice (16 KiB) ran 1.2x slower than by rows.
constexpr int64_t kAvgSlabValues = int64_t(1) << 11;
#ifndef __CUDACC__
// The padded rows of kRowBlockValues values at most (at least one), and at most `rows`.
inline int64_t rows_per_block(const PoolGeometry& g, int64_t rows) {
  const int64_t padded = g.stride[2] * PhasedRow::row_length(g);
  return min64(max64(kRowBlockValues / padded, 1), rows);
}
// The rows of a block (none without outer window dims, where the input rows are split as they are).
inline int64_t avg_block_rows(const PoolGeometry& g) {
  return g.outer_identity() ? 0 : rows_per_block(g, g.out[0] * g.out[1]);
}
// Max pooling's row passes (pool_cpu.h, max_pool_plane) split this many input rows of a
// plane at once, their phases side by side, where at least kMinMaxBlockRows fit a block;
// longer rows go one by one (2-D pooling's rows of 112 by twos: 3% slower).
constexpr int64_t kMinMaxBlockRows = 4;
inline int64_t max_block_rows(const PoolGeometry& g) {
  const int64_t rows = rows_per_block(g, g.image[0] * g.image[1]);
  return rows >= kMinMaxBlockRows ? rows : 1;
}
// How far apart the row passes lie in max pooling's scratch: a block's phased rows' length,
// or whole vectors (padded_row) for rows passed one by one.
inline int64_t max_row_stride(const PoolGeometry& g) {
  return max_block_rows(g) > 1 ? PhasedRow::row_length(g) : padded_row(g.out[2]);
}
// Whether max pooling's window pass takes runs of output rows (pool_cpu.h, max_pool_plane):
// where its rows are passed by blocks; the runs are staged in PoolScratch::out.
inline bool max_row_runs(const PoolGeometry& g) { return max_block_rows(g) > 1; }
// Whether the output slices sum their input slices first (a window along dim 0, small slices).
inline bool avg_slab(const PoolGeometry& g) {
  return !g.identity(0) && g.image[1] * g.image[2] <= kAvgSlabValues;
}
#endif

// The average-pool gradient's shares of one output row (pool_cpu.h, spread_shares) lie this
// far into their scratch, after zeros for the windows before the row's first.
inline int64_t avg_share_lead(const PoolGeometry& g) {
  return padded_row((g.kernel[2] - 1) * g.dil[2] / g.stride[2]);
}

// Scratch for one plane: rows (X0*X1*O2, and more than X2; max pooling's rows max_row_stride
// apart) of values and positions, three O2 rows (best_at holds two; padded_row(O2) each),
// the O2 innermost divisor factors, one phased row (line) and its layout; for the
// average-pool gradient, a column per output row
// (O0*O1*X2) and the output rows covering each input row (2*(X0 + X1)).
template <typename Acc>
struct PoolScratch {
  Acc* rows;
  PlanePos<Acc>* row_at;
  Acc* best;
  PlanePos<Acc>* best_at;
  Acc* factor;  // avg_innermost_factors (the launchers fill them once per call), then zeros to padded_row(O2)
  Acc* line;  // phased.size entries (block.phased.size if more), kLanePad more
  PhasedRow phased;
  AvgRowBlock<Acc> block;  // average pooling's forward, planes with outer window dims; max pooling: block.phased
                           // (max_block_rows rows; one: none)
  Acc* columns;
  Acc* slices;  // average-pool gradient: O0 slices of X1*X2 (each output slice's shares)
  int64_t* covering;
  Acc* shares;  // average-pool gradient: avg_share_lead zeros, O2 shares, zeros to phased.length + kLanePad
  PlanePos<Acc>* share_codes;  // max-pool gradient from tap codes (1-D): the shares' winning taps, laid out alike
  bool stream;  // write the output by streaming stores (it is at least kStreamBytes)
  Acc* out;     // with stream: the plane's output (O0*O1*O2), staged to be streamed whole; else
                // with max_row_runs: one output slice (O1*O2)
  PlanePos<Acc>* out_at;  // with positions, alike: its argmax
  WindowTable windows;    // max pooling of planes with short output rows, and with it:
  Acc* window_plane;      // the plane's values, then -inf (image_numel() + 1)
  Acc* window_best;       // out_numel() values
  PlanePos<Acc>* window_at;  // and positions
  MaxSources<Acc> sources;   // max pooling's passes: max(kernel[2], kernel[0] * kernel[1]) entries
};

// ---------------------------------------------------------------- global average pooling
// Input (N, C, S spatial positions) addressed through strides, so one form serves NCHW
// (spatial stride 1) and channels_last (spatial stride C). index in [0, N*C).
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline Acc global_avg_element(const T* input, int64_t channels, int64_t positions,
                                                  int64_t stride_n, int64_t stride_c, int64_t stride_s,
                                                  int64_t index) {
  const int64_t n = divide(index, channels), c = index - n * channels;
  const T* p = input + n * stride_n + c * stride_c;
  Acc sum = Acc(0);
  for (int64_t i = 0; i < positions; ++i) sum += static_cast<Acc>(p[i * stride_s]);
  return sum / static_cast<Acc>(positions);
}

// Its gradient: every position of plane p = index / positions (flat over N*C) gets
// grad[p] / positions. index in [0, N*C*S), in (n, c, s) order.
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline Acc global_avg_backward_element(const T* grad, int64_t positions, int64_t index) {
  return static_cast<Acc>(grad[divide(index, positions)]) / static_cast<Acc>(positions);
}

}  // namespace kernels
}  // namespace convops
