// Max and average pooling for 1 to 3 spatial dims, torch-free.
//
// Shapes (spatial dims padded in front to 3): input plane (X0, X1, X2), output plane
// (O0, O1, O2); tensors are (B*C planes, *plane) contiguous. Max-pool indices are
// flat positions inside the input plane ((x0*X1 + x1)*X2 + x2), as torch returns them.
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
//   *_plane:   one whole plane per call, separable passes (innermost dim, then the
//              outer dims) with vectorisable inner loops: the fast CPU engine.
#pragma once
#include <type_traits>

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

  CONVOPS_HOST_DEVICE int64_t image_numel() const { return image[0] * image[1] * image[2]; }
  CONVOPS_HOST_DEVICE int64_t out_numel() const { return out[0] * out[1] * out[2]; }
  CONVOPS_HOST_DEVICE int64_t start(int d, int64_t o) const { return o * stride[d] - pad[d]; }
  // First in-bounds tap position of window o along d (max pooling, with dilation).
  CONVOPS_HOST_DEVICE int64_t first_inside(int d, int64_t o) const {
    const int64_t s = start(d, o);
    return s >= 0 ? s : s + ceil_div(-s, dil[d]) * dil[d];
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
  // Output window along d that reads position x through tap k (max pooling), or -1.
  CONVOPS_HOST_DEVICE int64_t reader(int d, int64_t x, int64_t k) const {
    return tap_reader(x, k, stride[d], pad[d], dil[d], out[d]);
  }
};

template <typename Acc>
CONVOPS_HOST_DEVICE inline bool takes(Acc value, Acc best) {
  return value > best || value != value;  // greater, or NaN
}

template <typename Acc>
CONVOPS_HOST_DEVICE inline Acc lowest() {
  return -static_cast<Acc>(__builtin_huge_valf());
}

// Output element index of (B*C, O) -> its max and (unless argmax is null) its argmax.
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline void max_pool_element(const T* input, const PoolGeometry& g, int64_t index, T* out,
                                                 int64_t* argmax) {
  int64_t o[kMaxSpatial];
  const T* plane = input + split_index(index, g.out, o) * g.image_numel();
  const int64_t o0 = o[0], o1 = o[1], o2 = o[2];
  const int64_t f0 = g.first_inside(0, o0), f1 = g.first_inside(1, o1), f2 = g.first_inside(2, o2);
  const int64_t e0 = min64(g.start(0, o0) + (g.kernel[0] - 1) * g.dil[0] + 1, g.image[0]);
  const int64_t e1 = min64(g.start(1, o1) + (g.kernel[1] - 1) * g.dil[1] + 1, g.image[1]);
  const int64_t e2 = min64(g.start(2, o2) + (g.kernel[2] - 1) * g.dil[2] + 1, g.image[2]);
  Acc best = lowest<Acc>();
  int64_t best_at = (f0 * g.image[1] + f1) * g.image[2] + f2;
  for (int64_t x0 = f0; x0 < e0; x0 += g.dil[0]) {
    for (int64_t x1 = f1; x1 < e1; x1 += g.dil[1]) {
      for (int64_t x2 = f2; x2 < e2; x2 += g.dil[2]) {
        const int64_t at = (x0 * g.image[1] + x1) * g.image[2] + x2;
        const Acc v = static_cast<Acc>(plane[at]);
        if (takes(v, best)) {
          best = v;
          best_at = at;
        }
      }
    }
  }
  *out = static_cast<T>(best);
  if (argmax != nullptr) *argmax = best_at;
}

// Input element index of (B*C, X): the sum of the output gradients whose argmax it is.
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline Acc max_pool_backward_element(const T* grad_output, const int64_t* argmax,
                                                         const PoolGeometry& g, int64_t index) {
  int64_t x[kMaxSpatial];
  index = split_index(index, g.image, x);
  const int64_t x0 = x[0], x1 = x[1], x2 = x[2];
  const int64_t at = (x0 * g.image[1] + x1) * g.image[2] + x2;
  const int64_t base = index * g.out_numel();
  Acc sum = Acc(0);
  for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
    const int64_t o0 = g.reader(0, x0, k0);
    if (o0 < 0) continue;
    for (int64_t k1 = 0; k1 < g.kernel[1]; ++k1) {
      const int64_t o1 = g.reader(1, x1, k1);
      if (o1 < 0) continue;
      for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
        const int64_t o2 = g.reader(2, x2, k2);
        if (o2 < 0) continue;
        const int64_t o = base + (o0 * g.out[1] + o1) * g.out[2] + o2;
        if (argmax[o] == at) sum += static_cast<Acc>(grad_output[o]);
      }
    }
  }
  return sum;
}

// Output element index of (B*C, O): the window average.
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline Acc avg_pool_element(const T* input, const PoolGeometry& g, int64_t index) {
  int64_t o[kMaxSpatial];
  const T* plane = input + split_index(index, g.out, o) * g.image_numel();
  const int64_t o0 = o[0], o1 = o[1], o2 = o[2];
  int64_t lo0, hi0, lo1, hi1, lo2, hi2;
  g.avg_window(0, o0, &lo0, &hi0);
  g.avg_window(1, o1, &lo1, &hi1);
  g.avg_window(2, o2, &lo2, &hi2);
  Acc sum = Acc(0);
  for (int64_t x0 = lo0; x0 < hi0; ++x0) {
    for (int64_t x1 = lo1; x1 < hi1; ++x1) {
      for (int64_t x2 = lo2; x2 < hi2; ++x2) sum += static_cast<Acc>(plane[(x0 * g.image[1] + x1) * g.image[2] + x2]);
    }
  }
  const int64_t divisor = g.avg_divisor(o0, o1, o2);
  return divisor != 0 ? sum / static_cast<Acc>(divisor) : Acc(0);
}

// Output windows along d that contain input position x (average pooling): [first, last).
CONVOPS_HOST_DEVICE inline void avg_readers(const PoolGeometry& g, int d, int64_t x, int64_t* first, int64_t* last) {
  *first = max64(0, ceil_div(x + g.pad[d] - g.kernel[d] + 1, g.stride[d]));
  *last = min64(g.out[d], (x + g.pad[d]) / g.stride[d] + 1);
}

// Input element index of (B*C, X): the sum of grad / divisor over the windows holding it.
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline Acc avg_pool_backward_element(const T* grad_output, const PoolGeometry& g, int64_t index) {
  int64_t x[kMaxSpatial];
  index = split_index(index, g.image, x);
  const int64_t x0 = x[0], x1 = x[1], x2 = x[2];
  const T* plane = grad_output + index * g.out_numel();
  int64_t a0, b0, a1, b1, a2, b2;
  avg_readers(g, 0, x0, &a0, &b0);
  avg_readers(g, 1, x1, &a1, &b1);
  avg_readers(g, 2, x2, &a2, &b2);
  Acc sum = Acc(0);
  for (int64_t o0 = a0; o0 < b0; ++o0) {
    for (int64_t o1 = a1; o1 < b1; ++o1) {
      for (int64_t o2 = a2; o2 < b2; ++o2) {
        const int64_t divisor = g.avg_divisor(o0, o1, o2);
        if (divisor != 0) {
          sum += static_cast<Acc>(plane[(o0 * g.out[1] + o1) * g.out[2] + o2]) / static_cast<Acc>(divisor);
        }
      }
    }
  }
  return sum;
}

// ---------------------------------------------------------------- CPU plane engine
// Output windows o along the innermost dim whose tap at offset `offset` (= k*dil - pad)
// lands inside the row: [first, last).
inline void inner_range(const PoolGeometry& g, int64_t offset, int64_t* first, int64_t* last) {
  *first = min64(max64(0, ceil_div(-offset, g.stride[2])), g.out[2]);
  *last = max64(min64(g.out[2], ceil_div(g.image[2] - offset, g.stride[2])), *first);
}

// Window starts along the innermost dim in padded coordinates, and the padded row
// width that every window of the row fits in.
inline int64_t inner_starts(const PoolGeometry& g) { return (g.out[2] - 1) * g.stride[2] + 1; }
inline int64_t inner_width(const PoolGeometry& g) {
  return max64(inner_starts(g) + (g.kernel[2] - 1) * g.dil[2], g.pad[2] + g.image[2]);
}

// In-plane positions as the CPU plane engine tracks them: as wide as the values, so a
// compare-and-select vectorises on any x86-64 (float with int32, double with int64).
// Planes of 2^31 or more elements go to the element engine.
template <typename Acc>
using PlanePos = typename std::conditional<sizeof(Acc) == 8, int64_t, int32_t>::type;

// Scratch for one plane: rows (X0*X1*O2) of values and positions, three O2 rows (best_at
// holds two), and three rows of the padded width.
template <typename Acc>
struct PoolScratch {
  Acc* rows;
  PlanePos<Acc>* row_at;
  Acc* best;
  PlanePos<Acc>* best_at;
  Acc* factor;
  Acc* line;       // one input row with its padding filled in
  Acc* line_best;  // per window start: the running max (or sum) over the taps
  PlanePos<Acc>* line_at;
};

// Copies an input row into s.line between `fill` values: padding and the ceil-mode overhang.
template <typename T, typename Acc>
inline void padded_line(const T* row, const PoolGeometry& g, const PoolScratch<Acc>& s, Acc fill) {
  const int64_t width = inner_width(g), p = g.pad[2], X2 = g.image[2];
  for (int64_t j = 0; j < p; ++j) s.line[j] = fill;
  for (int64_t x = 0; x < X2; ++x) s.line[p + x] = static_cast<Acc>(row[x]);
  for (int64_t j = p + X2; j < width; ++j) s.line[j] = fill;
}

// Max pooling of plane `plane`: a pass along each input row (max over the innermost
// taps for every window start, at unit stride so the loops vectorise, then one pick per
// output column), then over the rows of each window in row-major order, so ties and NaN
// resolve exactly as the element form scans. Starting each window from its first tap
// instead of -inf changes nothing but the position of an all -inf window, which is
// reset to the window's first inside position, as the element form leaves it.
template <typename T, typename Acc>
inline void max_pool_plane(const T* input, T* output, int64_t* argmax, const PoolGeometry& g,
                           const PoolScratch<Acc>& s, int64_t plane) {
  using Pos = PlanePos<Acc>;
  const int64_t O2 = g.out[2], X2 = g.image[2], starts = inner_starts(g);
  const T* src = input + plane * g.image_numel();
  const bool positions = argmax != nullptr;  // inference needs the values only
  Acc* __restrict__ line_best = s.line_best;
  Pos* __restrict__ line_at = s.line_at;
  Pos* __restrict__ first2 = s.best_at + O2;  // first inside position of each innermost window
  for (int64_t o2 = 0; o2 < O2; ++o2) first2[o2] = static_cast<Pos>(g.first_inside(2, o2));
  for (int64_t r = 0; r < g.image[0] * g.image[1]; ++r) {
    padded_line(src + r * X2, g, s, lowest<Acc>());
    for (int64_t j = 0; j < starts; ++j) line_best[j] = s.line[j];
    if (positions) {
      for (int64_t j = 0; j < starts; ++j) line_at[j] = static_cast<Pos>(j);
    }
    for (int64_t k2 = 1; k2 < g.kernel[2]; ++k2) {
      const Pos offset = static_cast<Pos>(k2 * g.dil[2]);
      const Acc* __restrict__ tap = s.line + offset;
      if (positions) {
#pragma omp simd
        for (int64_t j = 0; j < starts; ++j) {
          const Acc v = tap[j], b = line_best[j];
          const Pos candidate = static_cast<Pos>(j) + offset, current = line_at[j];
          const bool take = (v > b) | (v != v);
          line_best[j] = take ? v : b;
          line_at[j] = take ? candidate : current;
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < starts; ++j) {
          const Acc v = tap[j], b = line_best[j];
          line_best[j] = (v > b) | (v != v) ? v : b;
        }
      }
    }
    Acc* hv = s.rows + r * O2;
    for (int64_t o2 = 0; o2 < O2; ++o2) hv[o2] = line_best[o2 * g.stride[2]];
    if (positions) {
      Pos* hat = s.row_at + r * O2;
      const Pos pad2 = static_cast<Pos>(g.pad[2]);
      for (int64_t o2 = 0; o2 < O2; ++o2) {
        const int64_t j = o2 * g.stride[2];
        const Pos at = line_at[j] - pad2, first = first2[o2];
        hat[o2] = line_best[j] == lowest<Acc>() ? first : at;
      }
    }
  }
  T* dst = output + plane * g.out_numel();
  int64_t* dst_at = argmax != nullptr ? argmax + plane * g.out_numel() : nullptr;
  for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
    const int64_t f0 = g.first_inside(0, o0);
    const int64_t e0 = min64(g.start(0, o0) + (g.kernel[0] - 1) * g.dil[0] + 1, g.image[0]);
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1, dst += O2) {
      const int64_t f1 = g.first_inside(1, o1);
      const int64_t e1 = min64(g.start(1, o1) + (g.kernel[1] - 1) * g.dil[1] + 1, g.image[1]);
      const int64_t first_base = (f0 * g.image[1] + f1) * X2;
      Acc* __restrict__ best = s.best;
      Pos* __restrict__ best_at = s.best_at;
      for (int64_t o2 = 0; o2 < O2; ++o2) {
        best[o2] = lowest<Acc>();
        best_at[o2] = static_cast<Pos>(first_base) + first2[o2];
      }
      for (int64_t x0 = f0; x0 < e0; x0 += g.dil[0]) {
        for (int64_t x1 = f1; x1 < e1; x1 += g.dil[1]) {
          const int64_t r = x0 * g.image[1] + x1;
          const Acc* __restrict__ hv = s.rows + r * O2;
          if (!positions) {
#pragma omp simd
            for (int64_t o2 = 0; o2 < O2; ++o2) {
              const Acc v = hv[o2], b = best[o2];
              best[o2] = (v > b) | (v != v) ? v : b;
            }
            continue;
          }
          const Pos* __restrict__ hat = s.row_at + r * O2;
          const Pos base = static_cast<Pos>(r * X2);
#pragma omp simd
          for (int64_t o2 = 0; o2 < O2; ++o2) {  // loads first, then selects: if-convertible
            const Acc v = hv[o2], b = best[o2];
            const Pos candidate = base + hat[o2], current = best_at[o2];
            const bool take = (v > b) | (v != v);
            best[o2] = take ? v : b;
            best_at[o2] = take ? candidate : current;
          }
        }
      }
      for (int64_t o2 = 0; o2 < O2; ++o2) dst[o2] = static_cast<T>(s.best[o2]);
      if (dst_at != nullptr) {
        for (int64_t o2 = 0; o2 < O2; ++o2) dst_at[o2] = s.best_at[o2];
        dst_at += O2;
      }
    }
  }
}

// Average pooling of plane `plane`: row sums over the innermost window (at unit stride
// over the zero-padded row, then one pick per output column), then sums over the rows
// of each window, times the reciprocal divisor (a product of per-dim factors).
template <typename T, typename Acc>
inline void avg_pool_plane(const T* input, T* output, const PoolGeometry& g, const PoolScratch<Acc>& s,
                           int64_t plane) {
  const int64_t O2 = g.out[2], X2 = g.image[2], starts = inner_starts(g);
  const T* src = input + plane * g.image_numel();
  for (int64_t r = 0; r < g.image[0] * g.image[1]; ++r) {
    padded_line(src + r * X2, g, s, Acc(0));
    for (int64_t j = 0; j < starts; ++j) s.line_best[j] = s.line[j];
    for (int64_t k2 = 1; k2 < g.kernel[2]; ++k2) {
      const Acc* tap = s.line + k2;
#pragma omp simd
      for (int64_t j = 0; j < starts; ++j) s.line_best[j] += tap[j];
    }
    Acc* hs = s.rows + r * O2;
    for (int64_t o2 = 0; o2 < O2; ++o2) hs[o2] = s.line_best[o2 * g.stride[2]];
  }
  int64_t lo, hi;
  for (int64_t o2 = 0; o2 < O2; ++o2) s.factor[o2] = static_cast<Acc>(g.avg_window(2, o2, &lo, &hi));
  T* dst = output + plane * g.out_numel();
  for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
    int64_t lo0, hi0;
    const Acc f0 = static_cast<Acc>(g.avg_window(0, o0, &lo0, &hi0));
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1, dst += O2) {
      int64_t lo1, hi1;
      const Acc f01 = f0 * static_cast<Acc>(g.avg_window(1, o1, &lo1, &hi1));
      for (int64_t o2 = 0; o2 < O2; ++o2) s.best[o2] = Acc(0);
      for (int64_t x0 = lo0; x0 < hi0; ++x0) {
        for (int64_t x1 = lo1; x1 < hi1; ++x1) {
          const Acc* hs = s.rows + (x0 * g.image[1] + x1) * O2;
#pragma omp simd
          for (int64_t o2 = 0; o2 < O2; ++o2) s.best[o2] += hs[o2];
        }
      }
      for (int64_t o2 = 0; o2 < O2; ++o2) {
        const Acc divisor = g.divisor_override != 0 ? static_cast<Acc>(g.divisor_override) : f01 * s.factor[o2];
        dst[o2] = static_cast<T>(divisor != Acc(0) ? s.best[o2] / divisor : Acc(0));
      }
    }
  }
}

// Max-pool gradient of plane `plane`. The plane belongs to this call alone, which adds
// each output gradient at its argmax in output order: deterministic, no atomics.
template <typename T, typename Acc>
inline void max_pool_backward_plane(const T* grad_output, const int64_t* argmax, T* grad_input, Acc* acc,
                                    const PoolGeometry& g, int64_t plane) {
  const int64_t X = g.image_numel(), O = g.out_numel();
  for (int64_t x = 0; x < X; ++x) acc[x] = Acc(0);
  const T* go = grad_output + plane * O;
  const int64_t* at = argmax + plane * O;
  for (int64_t o = 0; o < O; ++o) acc[at[o]] += static_cast<Acc>(go[o]);
  T* dst = grad_input + plane * X;
  for (int64_t x = 0; x < X; ++x) dst[x] = static_cast<T>(acc[x]);
}

// Average-pool gradient of plane `plane`, owned by this call: each output gradient,
// divided by its divisor, is added over its window, rows first.
template <typename T, typename Acc>
inline void avg_pool_backward_plane(const T* grad_output, T* grad_input, Acc* acc, const PoolGeometry& g,
                                    const PoolScratch<Acc>& s, int64_t plane) {
  const int64_t X = g.image_numel(), O2 = g.out[2], X2 = g.image[2];
  for (int64_t x = 0; x < X; ++x) acc[x] = Acc(0);
  int64_t lo, hi;
  for (int64_t o2 = 0; o2 < O2; ++o2) s.factor[o2] = static_cast<Acc>(g.avg_window(2, o2, &lo, &hi));
  const T* go = grad_output + plane * g.out_numel();
  for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
    int64_t lo0, hi0;
    const Acc f0 = static_cast<Acc>(g.avg_window(0, o0, &lo0, &hi0));
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1, go += O2) {
      int64_t lo1, hi1;
      const Acc f01 = f0 * static_cast<Acc>(g.avg_window(1, o1, &lo1, &hi1));
      for (int64_t o2 = 0; o2 < O2; ++o2) {
        const Acc divisor = g.divisor_override != 0 ? static_cast<Acc>(g.divisor_override) : f01 * s.factor[o2];
        s.best[o2] = divisor != Acc(0) ? static_cast<Acc>(go[o2]) / divisor : Acc(0);
      }
      for (int64_t x0 = lo0; x0 < hi0; ++x0) {
        for (int64_t x1 = lo1; x1 < hi1; ++x1) {
          Acc* row = acc + (x0 * g.image[1] + x1) * X2;
          for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
            int64_t first, last;
            inner_range(g, k2 - g.pad[2], &first, &last);
            for (int64_t o2 = first; o2 < last; ++o2) row[o2 * g.stride[2] + k2 - g.pad[2]] += s.best[o2];
          }
        }
      }
    }
  }
  T* dst = grad_input + plane * X;
  for (int64_t x = 0; x < X; ++x) dst[x] = static_cast<T>(acc[x]);
}

// ---------------------------------------------------------------- CPU channels_last engine
// Tensors (N, *spatial, C) in memory: every window tap is a contiguous run of C
// channels, so the loops over channels vectorise. position in [0, N * O).

// Input position (n, x0, x1, x2) of tap offset (x0, x1, x2) as a flat (N, X) index.
inline int64_t cl_image_index(const PoolGeometry& g, int64_t n, int64_t x0, int64_t x1, int64_t x2) {
  return ((n * g.image[0] + x0) * g.image[1] + x1) * g.image[2] + x2;
}

inline void cl_output_coords(const PoolGeometry& g, int64_t position, int64_t* n, int64_t* o0, int64_t* o1,
                             int64_t* o2) {
  int64_t o[kMaxSpatial];
  *n = split_index(position, g.out, o);
  *o0 = o[0];
  *o1 = o[1];
  *o2 = o[2];
}

template <typename T, typename Acc>
inline void max_pool_cl_position(const T* input, T* output, int64_t* argmax, Acc* best, PlanePos<Acc>* best_at,
                                 int64_t channels, const PoolGeometry& g, int64_t position) {
  using Pos = PlanePos<Acc>;
  int64_t n, o0, o1, o2;
  cl_output_coords(g, position, &n, &o0, &o1, &o2);
  const int64_t f0 = g.first_inside(0, o0), f1 = g.first_inside(1, o1), f2 = g.first_inside(2, o2);
  const int64_t e0 = min64(g.start(0, o0) + (g.kernel[0] - 1) * g.dil[0] + 1, g.image[0]);
  const int64_t e1 = min64(g.start(1, o1) + (g.kernel[1] - 1) * g.dil[1] + 1, g.image[1]);
  const int64_t e2 = min64(g.start(2, o2) + (g.kernel[2] - 1) * g.dil[2] + 1, g.image[2]);
  const Pos first = static_cast<Pos>((f0 * g.image[1] + f1) * g.image[2] + f2);
  for (int64_t c = 0; c < channels; ++c) {
    best[c] = lowest<Acc>();
    best_at[c] = first;
  }
  for (int64_t x0 = f0; x0 < e0; x0 += g.dil[0]) {
    for (int64_t x1 = f1; x1 < e1; x1 += g.dil[1]) {
      for (int64_t x2 = f2; x2 < e2; x2 += g.dil[2]) {
        const T* __restrict__ tap = input + cl_image_index(g, n, x0, x1, x2) * channels;
        const Pos here = static_cast<Pos>((x0 * g.image[1] + x1) * g.image[2] + x2);
        Acc* __restrict__ b_ = best;
        Pos* __restrict__ a_ = best_at;
#pragma omp simd
        for (int64_t c = 0; c < channels; ++c) {
          const Acc v = static_cast<Acc>(tap[c]), b = b_[c];
          const Pos current = a_[c];
          const bool take = (v > b) | (v != v);
          b_[c] = take ? v : b;
          a_[c] = take ? here : current;
        }
      }
    }
  }
  T* dst = output + position * channels;
  for (int64_t c = 0; c < channels; ++c) dst[c] = static_cast<T>(best[c]);
  if (argmax != nullptr) {
    int64_t* at = argmax + position * channels;
    for (int64_t c = 0; c < channels; ++c) at[c] = best_at[c];
  }
}

// One output row (n, o0, o1) of average pooling: the outer window bounds and divisor
// factors are found once per row, the innermost per column.
template <typename T, typename Acc>
inline void avg_pool_cl_row(const T* input, T* output, Acc* sum, int64_t channels, const PoolGeometry& g,
                            int64_t row) {
  const int64_t o1 = row % g.out[1], o0 = (row / g.out[1]) % g.out[0], n = row / (g.out[1] * g.out[0]);
  int64_t lo0, hi0, lo1, hi1;
  const int64_t f01 = g.avg_window(0, o0, &lo0, &hi0) * g.avg_window(1, o1, &lo1, &hi1);
  T* dst = output + row * g.out[2] * channels;
  for (int64_t o2 = 0; o2 < g.out[2]; ++o2, dst += channels) {
    int64_t lo2, hi2;
    const int64_t f2 = g.avg_window(2, o2, &lo2, &hi2);
    Acc* __restrict__ acc = sum;
    for (int64_t c = 0; c < channels; ++c) acc[c] = Acc(0);
    for (int64_t x0 = lo0; x0 < hi0; ++x0) {
      for (int64_t x1 = lo1; x1 < hi1; ++x1) {
        const T* __restrict__ tap = input + cl_image_index(g, n, x0, x1, lo2) * channels;
        for (int64_t x2 = lo2; x2 < hi2; ++x2, tap += channels) {
#pragma omp simd
          for (int64_t c = 0; c < channels; ++c) acc[c] += static_cast<Acc>(tap[c]);
        }
      }
    }
    const int64_t d = g.divisor_override != 0 ? g.divisor_override : f01 * f2;
    const Acc divisor = static_cast<Acc>(d);
#pragma omp simd
    for (int64_t c = 0; c < channels; ++c) dst[c] = static_cast<T>(d != 0 ? acc[c] / divisor : Acc(0));
  }
}

// Gradients of image n, owned by this call: each output gradient is added where it came from.
template <typename T, typename Acc>
inline void max_pool_backward_cl_image(const T* grad_output, const int64_t* argmax, T* grad_input, Acc* acc,
                                       int64_t channels, const PoolGeometry& g, int64_t n) {
  const int64_t X = g.image_numel(), O = g.out_numel();
  for (int64_t i = 0; i < X * channels; ++i) acc[i] = Acc(0);
  const T* go = grad_output + n * O * channels;
  const int64_t* at = argmax + n * O * channels;
  for (int64_t o = 0; o < O; ++o) {
    for (int64_t c = 0; c < channels; ++c) acc[at[o * channels + c] * channels + c] += static_cast<Acc>(go[o * channels + c]);
  }
  T* dst = grad_input + n * X * channels;
  for (int64_t i = 0; i < X * channels; ++i) dst[i] = static_cast<T>(acc[i]);
}

template <typename T, typename Acc>
inline void avg_pool_backward_cl_image(const T* grad_output, T* grad_input, Acc* acc, Acc* share, int64_t channels,
                                       const PoolGeometry& g, int64_t n) {
  const int64_t X = g.image_numel();
  for (int64_t i = 0; i < X * channels; ++i) acc[i] = Acc(0);
  for (int64_t o = 0; o < g.out_numel(); ++o) {
    int64_t nn, o0, o1, o2, lo0, hi0, lo1, hi1, lo2, hi2;
    cl_output_coords(g, n * g.out_numel() + o, &nn, &o0, &o1, &o2);
    g.avg_window(0, o0, &lo0, &hi0);
    g.avg_window(1, o1, &lo1, &hi1);
    g.avg_window(2, o2, &lo2, &hi2);
    const int64_t d = g.avg_divisor(o0, o1, o2);
    const Acc divisor = static_cast<Acc>(d);
    const T* go = grad_output + (n * g.out_numel() + o) * channels;
    for (int64_t c = 0; c < channels; ++c) share[c] = d != 0 ? static_cast<Acc>(go[c]) / divisor : Acc(0);
    for (int64_t x0 = lo0; x0 < hi0; ++x0) {
      for (int64_t x1 = lo1; x1 < hi1; ++x1) {
        for (int64_t x2 = lo2; x2 < hi2; ++x2) {
          Acc* __restrict__ row = acc + ((x0 * g.image[1] + x1) * g.image[2] + x2) * channels;
#pragma omp simd
          for (int64_t c = 0; c < channels; ++c) row[c] += share[c];
        }
      }
    }
  }
  T* dst = grad_input + n * X * channels;
  for (int64_t i = 0; i < X * channels; ++i) dst[i] = static_cast<T>(acc[i]);
}

// ---------------------------------------------------------------- global average pooling
// Input (N, C, S spatial positions) addressed through strides, so one form serves NCHW
// (spatial stride 1) and channels_last (spatial stride C). index in [0, N*C).
template <typename T, typename Acc>
CONVOPS_HOST_DEVICE inline Acc global_avg_element(const T* input, int64_t channels, int64_t positions,
                                                  int64_t stride_n, int64_t stride_c, int64_t stride_s,
                                                  int64_t index) {
  const int64_t n = index / channels, c = index % channels;
  const T* p = input + n * stride_n + c * stride_c;
  Acc sum = Acc(0);
  for (int64_t i = 0; i < positions; ++i) sum += static_cast<Acc>(p[i * stride_s]);
  return sum / static_cast<Acc>(positions);
}

// CPU: the mean of one contiguous plane.
template <typename T, typename Acc>
inline Acc plane_mean(const T* plane, int64_t positions) {
  Acc sum = Acc(0);
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < positions; ++i) sum += static_cast<Acc>(plane[i]);
  return sum / static_cast<Acc>(positions);
}

// CPU, channels_last: the means of all channels of one image, (S, C) rows summed.
template <typename T, typename Acc>
inline void image_channel_means(const T* image, T* out, Acc* acc, int64_t channels, int64_t positions) {
  for (int64_t c = 0; c < channels; ++c) acc[c] = Acc(0);
  for (int64_t i = 0; i < positions; ++i) {
    const T* row = image + i * channels;
#pragma omp simd
    for (int64_t c = 0; c < channels; ++c) acc[c] += static_cast<Acc>(row[c]);
  }
  for (int64_t c = 0; c < channels; ++c) out[c] = static_cast<T>(acc[c] / static_cast<Acc>(positions));
}

}  // namespace kernels
}  // namespace convops
