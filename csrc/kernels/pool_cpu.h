// The CPU forms of max, average and global average pooling (see pool.h for the geometry,
// the semantics and the element forms they must agree with), torch-free.
//
// NCHW: one plane per call (B*C planes of X0*X1*X2, output planes of O0*O1*O2), separable
// passes: along each input row (phased, so every tap is one unit-stride run), then over
// the rows of each window. channels_last: (N, *spatial, C) memory, one output position,
// row or image per call, vectorised over the C channels of each tap.
//
// Compiled once per instruction set (cpu_isa.h): this code lives in the inline namespace
// CONVOPS_CPU_ISA, so the baseline, AVX2 and AVX-512 copies never merge at link time.
#pragma once
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cpu_isa.h"
#include "cpu_lanes.h"
#include "pool.h"

namespace convops {
namespace kernels {
inline namespace CONVOPS_CPU_ISA {

// ---------------------------------------------------------------- NCHW planes
// An input row, padded, is split into `stride` phases (PhasedRow, pool.h): every tap of all
// the windows of a row is one run of O2 consecutive entries, whatever the stride, so the
// loops over windows run at unit stride and vectorise.

// to[i] = from[i * step] for i < count; at step 2 (the usual stride) two loads and a
// shuffle per vector instead of a scalar loop. A vector reads one value past the last it
// keeps: where from[2 * count - 1] may be read (read_past), the last vector too (3-D
// pooling's rows of 32 split into phases of 16 were all scalar copies).
template <typename T, typename Acc>
inline void gather_step(const T* __restrict__ from, int64_t step, Acc* __restrict__ to, int64_t count,
                        bool read_past) {
  int64_t i = 0;
  if constexpr (std::is_same_v<T, Acc>) {
    constexpr int n = kLanes<T>;
    const int64_t end = read_past ? count : count - 1;
    for (; step == 2 && i + n <= end; i += n) {  // reads from[2i .. 2i + 2n - 1]
      store_lanes(to + i, load_even_lanes(from + 2 * i));
    }
  }
  strided_copy(from + i * step, step, to + i, 1, count - i);
}

// Splits an input row into the phases of `line`, with `fill` for padding and overhang; in a
// block of rows (r.rows), `line` is the row's place in the block, its phases r.rows rows apart.
// read_past: the value after the row may be read (another row, or scratch).
template <typename T, typename Acc>
inline void phase_split(const T* row, const PoolGeometry& g, const PhasedRow& r, Acc* line, Acc fill,
                        bool read_past) {
  const int64_t s = g.stride[2];
  for (int64_t q = 0; q < s; ++q) {
    Acc* __restrict__ phase = line + q * r.rows * r.length;
    const int64_t lo = r.lo[q], hi = r.hi[q];
    const T* __restrict__ from = row + q + lo * s - g.pad[2];
    for (int64_t m = 0; m < lo; ++m) phase[m] = fill;
    // at stride 2, the value past the phase's last is input position q + 2*hi - pad - 1
    gather_step(from, s, phase + lo, hi - lo, read_past || q + hi * s - g.pad[2] <= g.image[2]);
    for (int64_t m = hi; m < r.length; ++m) phase[m] = fill;
  }
}

// The adjoint of phase_split: the input row gets the entries of its own positions.
// At stride 2, input position x lies in phase (x + pad) % 2 at (x + pad) / 2: row[2j] and
// row[2j + 1] come from two runs that advance together, merged by interleaving vectors,
// stored by streaming stores where `stream` (the row then aligned to a vector).
template <typename T, typename Acc>
inline void phase_merge(const Acc* line, const PoolGeometry& g, const PhasedRow& r, T* row, bool stream = false) {
  const int64_t s = g.stride[2];
  if constexpr (std::is_same_v<T, Acc>) {
    if (s == 2) {
      const int64_t pad = g.pad[2], X2 = g.image[2];
      const Acc* __restrict__ even = line + (pad % 2) * r.length + pad / 2;
      const Acc* __restrict__ odd = line + ((pad + 1) % 2) * r.length + (pad + 1) / 2;
      constexpr int n = kLanes<T>;
      int64_t j = 0;
      for (; 2 * (j + n) <= X2; j += n) {
        const Lanes<T> a = load_lanes(even + j), b = load_lanes(odd + j);
        if (stream) {
          stream_lanes(row + 2 * j, interleaved_lanes<0, T>(a, b));
          stream_lanes(row + 2 * j + n, interleaved_lanes<1, T>(a, b));
        } else {
          store_lanes(row + 2 * j, interleaved_lanes<0, T>(a, b));
          store_lanes(row + 2 * j + n, interleaved_lanes<1, T>(a, b));
        }
      }
      for (int64_t x = 2 * j; x < X2; ++x) row[x] = (x % 2 == 0 ? even : odd)[x / 2];
      return;
    }
  }
  for (int64_t q = 0; q < s; ++q) {
    const int64_t lo = r.lo[q], hi = r.hi[q];
    const Acc* __restrict__ phase = line + q * r.length;
    T* __restrict__ to = row + q + lo * s - g.pad[2];
    strided_copy(phase + lo, 1, to, s, hi - lo);
  }
}

// The input rows [x0 in [lo0, hi0)] x [x1 in [lo1, hi1)] of a plane.
template <typename T>
inline void prefetch_rows(const T* plane, const PoolGeometry& g, int64_t lo0, int64_t hi0, int64_t lo1, int64_t hi1) {
  for (int64_t x0 = lo0; x0 < hi0; ++x0) {
    for (int64_t x1 = lo1; x1 < hi1; ++x1) prefetch_span(plane + (x0 * g.image[1] + x1) * g.image[2], g.image[2]);
  }
}

// How far ahead of what they read the forwards ask for input. One output row ahead (2 input
// rows of 448 bytes) was too close to hide DRAM's latency: make bench's 2-D average pooling
// forward, on a Zen 4 EPYC at 1 thread, 3.2 ms one row ahead, 2.6 at 2 KiB, 2.5 at 3-4 KiB,
// 2.7 at 7.
constexpr int64_t kPrefetchBytes = 4096;

// The `rows` input rows that follow row x1 in each slice [lo0, hi0) of a plane, kPrefetchBytes
// further on: at a slice's end, into the next slice (or plane: in NCHW the next one a task pools).
template <typename T>
inline void prefetch_rows_ahead(const T* plane, const PoolGeometry& g, int64_t lo0, int64_t hi0, int64_t x1,
                                int64_t rows) {
  const int64_t ahead = kPrefetchBytes / static_cast<int64_t>(sizeof(T));
  for (int64_t x0 = lo0; x0 < hi0; ++x0) prefetch_span(plane + g.plane_position(x0, x1, 0) + ahead, rows * g.image[2]);
}

// to[i] = from[i] (converted) for i < count; by streaming stores where the output is
// large (PoolScratch::stream; the caller ends with streaming_done()).
template <typename From, typename To>
inline void write_out(const From* __restrict__ from, To* __restrict__ to, int64_t count, bool stream) {
  constexpr bool same_float = std::is_same<From, To>::value && std::is_floating_point<To>::value;
  if (stream) {
    stream_copy(from, to, count);
  } else if constexpr (same_float) {  // by vectors: GCC made the loop a memcpy call, a third of a
    int64_t i = 0;                    // 6-channel channels_last average-pool gradient
    for (; i + kLanes<To> <= count; i += kLanes<To>) store_lanes(to + i, load_lanes(from + i));
    const int rest = static_cast<int>(count - i);
    if (rest > 0) store_first_lanes(to + i, load_first_lanes(from + i, rest), rest);
  } else {
    for (int64_t i = 0; i < count; ++i) to[i] = static_cast<To>(from[i]);
  }
}

// Output rows shorter than this are pooled window by window: the row passes cost more per
// row than per value (LeNet's 10x10 planes: 1.5x faster; at 14 outputs per row, slower).
constexpr int64_t kShortPoolRow = 8;

// One max-pool pass: best[i] for i < count = the first maximum over the sources j < n (src,
// pool.h) of src.from[j][i], in j order (greater, or NaN, takes), from -inf; with kCodes,
// best_at[i] = the winner's code, src.codes[j][i] + src.base[j] (kCodeRows false: base[j]
// alone), or start_base + start[i] where no source takes. Each vector of lanes stays in
// registers across the sources (a pass per source through memory loaded and stored the
// running max and code for every source), and count is rounded up to whole vectors, whose
// lanes past it read and write padding (kLanePad): a scalar tail's branches mispredicted
// on random data, and a partial vector assembled in memory stalled its load.
//
// A source takes where it is greater, an ordered compare (for the values alone, one max
// instruction) instead of the rule's compare, NaN test and mask merge; that misses a NaN, so
// each vector also sums its sources, and one whose sum is not a number (a NaN among them, or
// +inf and -inf) is scanned again by the rule. make bench at 1 thread on a Zen 4 EPYC:
// channels_last 2-D inference 3.1-3.5 -> 2.2-2.3 ms, 3-D 1.1 -> 0.8 ms; with tap codes 3.3 -> 2.8
// and 1.2 -> 0.96 ms, NCHW 1-D 0.92 -> 0.81 ms.
//
// A RowRun of several rows makes that many such passes, each reading its sources and writing
// its output further on (start and the codes' bases stay): output rows whose sources advance
// uniformly, in one call.
//
// kChains > 1 scans that many consecutive runs of the sources side by side, each from -inf,
// and keeps, run by run in order, the later run's winner where it is greater: the same
// winner (the first maximum) as one scan, but the compare-and-select chains overlap
// (channels_last max pooling: 27 taps of 2 vectors a window, bound by one chain's latency).
//
// kStep 2: source j's values are every other one, src.from[j][2 * i] (the even lanes of two
// vectors, read in place: a stride-2 row needs no phased copy, max_row_in_place).
template <bool kCodes, bool kCodeRows, int kChains = 1, int kStep = 1, typename Acc>
inline void max_of_sources(const MaxSources<Acc>& src, int64_t n, PlanePos<Acc> start_base,
                           const PlanePos<Acc>* __restrict__ start, int64_t count, Acc* __restrict__ best,
                           PlanePos<Acc>* __restrict__ best_at, RowRun run = {}) {
  using Pos = PlanePos<Acc>;
  const int64_t chain_length = ceil_div(n, kChains);
  const Acc* const* __restrict__ from = src.from;  // read through src, it was reloaded for every source
  const auto start_code = [&](int64_t i) {
    Lanes<Pos> at = splat(start_base);
    if (kCodes && start != nullptr) at += load_lanes(start + i);
    return at;
  };
  const auto code_of = [&](int64_t j, int64_t i) {
    Lanes<Pos> code = splat(src.base[j]);
    if constexpr (kCodeRows) code += load_lanes(src.codes[j] + i);
    return code;
  };
  // Where `take`, value v and its code (made only with kCodes) replace the best so far.
  const auto keep = [](auto take, Lanes<Acc> v, auto&& code, Lanes<Acc>& b, Lanes<Pos>& at) {
    b = take ? v : b;
    if constexpr (kCodes) at = take ? code() : at;
  };
  const auto load_source = [&](int64_t j, int64_t i) {
    if constexpr (kStep == 1) {
      return load_lanes(from[j] + i);
    } else {
      static_assert(kStep == 2, "max_of_sources reads sources at steps of 1 or 2");
      return load_even_lanes(from[j] + 2 * i);
    }
  };
  const Lanes<Acc> minus_inf = splat(lowest<Acc>());
  for (int64_t row = 0; row < run.rows; ++row) {
    const int64_t source = row * run.source_step, out = row * run.out_step;
    for (int64_t i = 0; i < count; i += kLanes<Acc>) {
      Lanes<Acc> b[kChains], sum[kChains];
      Lanes<Pos> at[kChains];
      for (int r = 0; r < kChains; ++r) {
        b[r] = minus_inf;
        sum[r] = Lanes<Acc>{};
        if constexpr (kCodes) at[r] = start_code(i);
      }
      for (int64_t j0 = 0; j0 < chain_length; ++j0) {
        for (int r = 0; r < kChains; ++r) {
          const int64_t j = r * chain_length + j0;
          if (kChains > 1 && j >= n) continue;
          const Lanes<Acc> v = load_source(j, source + i);
          keep(v > b[r], v, [&] { return code_of(j, source + i); }, b[r], at[r]);
          sum[r] += v;
        }
      }
      for (int r = 1; r < kChains; ++r) {
        keep(b[r] > b[0], b[r], [&] { return at[r]; }, b[0], at[0]);
        sum[0] += sum[r];
      }
      if (any_lane(sum[0] != sum[0])) {  // the rule, one source after another
        b[0] = minus_inf;
        if constexpr (kCodes) at[0] = start_code(i);
        for (int64_t j = 0; j < n; ++j) {
          const Lanes<Acc> v = load_source(j, source + i);
          keep((v > b[0]) | (v != v), v, [&] { return code_of(j, source + i); }, b[0], at[0]);
        }
      }
      store_lanes(best + out + i, b[0]);
      if constexpr (kCodes) store_lanes(best_at + out + i, at[0]);
    }
  }
}

// Tap codes (pool.h): a plane's windows with no tap inside get kNoTap (rare: a dilation
// stepping over a small input; the passes leave them their first tap past the input).
template <typename Index>
inline void mark_windows_outside(const PoolGeometry& g, Index* argmax) {
  if (sizeof(Index) != 1 || !g.any_window_outside()) return;
  for (int64_t o0 = 0, o = 0; o0 < g.out[0]; ++o0) {
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
      for (int64_t o2 = 0; o2 < g.out[2]; ++o2, ++o) {
        if (g.output_outside(o0, o1, o2)) argmax[o] = static_cast<Index>(kNoTap);
      }
    }
  }
}

// Stride-2 rows are read in place (max_row_in_place, average_row_in_place) where the last
// tap's offset is below this (the windows at a row's ends, at most half of it, go one by one)
// and the row has at least kInPlaceMinRow windows. The phased copy cost as much as the max
// itself: 1-D max pooling (rows of 4096, k3 s2 p1) in a C++ model, 0.41 -> 0.21 ms for 512
// rows, and no copy of the output row out of scratch.
constexpr int64_t kInPlaceReach = 64;
constexpr int64_t kInPlaceMinRow = 64;

// Whether 1-D pooling's rows (each its output row, written there) are read in place: at
// stride 2, in T's own precision. The row passes of 2-D and 3-D max pooling, which feed a
// window pass, read theirs in place only whole (whole_rows_in_place): walked as here, the
// windows at the ends one by one, they were 5-10% slower than the phased copy (rows of 224).
template <typename T, typename Acc>
inline bool rows_in_place(const PoolGeometry& g) {
  return std::is_same_v<T, Acc> && g.outer_identity() && g.stride[2] == 2 &&
         (g.kernel[2] - 1) * g.dil[2] < kInPlaceReach && g.out[2] >= kInPlaceMinRow;
}

// Whether max pooling's row passes read their input rows in place, whole (max_row_stride2,
// the left padding as -inf), instead of copying them into phases (phase_split): at stride 2
// and dilation 1, in T's own precision, whole vectors of windows whose taps lie in the row
// or its left padding (X2 = 2 * O2 and no tap more than one past a window's start: k3 p1, k2 p0;
// with those, the padding is at most 1, within with_stride2_taps' reach).
// The phased copy and its pass took 2/3 of the forward: make bench's max pooling with tap
// codes on a Zen 3 EPYC at 1 thread, 3-D 2.46 -> 1.59 ms, 2-D 6.05 -> 5.06 ms (inference 3-D
// 1.9-2.0 -> 1.1-1.2 ms); at 2 threads 3-D 1.93 -> 1.27-1.31 ms.
// whole_stride2_rows: the geometry's part, which average pooling's rows of sums (Acc, whatever
// T is) share.
template <typename Acc>
inline bool whole_stride2_rows(const PoolGeometry& g) {
  const int64_t last = g.kernel[2] - 1 - g.pad[2];  // the last tap's offset from a window's start
  return g.stride[2] == 2 && g.dil[2] == 1 && g.image[2] == 2 * g.out[2] && g.out[2] % kLanes<Acc> == 0 && last <= 1;
}
template <typename T, typename Acc>
inline bool whole_rows_in_place(const PoolGeometry& g) {
  return std::is_same_v<T, Acc> && whole_stride2_rows<Acc>(g);
}

// The windows [lo, hi) of a row read in place whose taps all lie inside it: 2*o - pad >= 0
// and 2*o - pad + reach < X2. A vector's last tap reads one value past its last window's,
// input position X2 at most: where that may not be read (read_past false), the last such
// window is left out.
struct InsideWindows {
  int64_t lo, hi;
};
inline InsideWindows inside_windows(const PoolGeometry& g, bool read_past) {
  const int64_t X2 = g.image[2], O2 = g.out[2], pad = g.pad[2], reach = (g.kernel[2] - 1) * g.dil[2];
  const int64_t lo = min64(ceil_div(pad, 2), O2);
  const int64_t last = X2 - 1 + pad - reach;
  int64_t hi = last < 0 ? lo : max64(lo, min64(O2, last / 2 + 1));
  if (!read_past && hi > lo && 2 * (hi - 1) - pad + reach + 1 >= X2) --hi;
  return {lo, hi};
}

// Walks the O2 windows of a row read in place: those outside inside_windows one by one,
// window(o); the inside ones by vectors, vectors(o, count) for windows [o, o + count), count
// a multiple of kLanes<Acc>: the whole vectors, then the last partial one as a whole vector
// ending at the last inside window (it rewrites some windows of the one before, with the same
// values). Fewer inside windows than a vector go one by one.
template <typename Acc, typename Window, typename Vectors>
inline void walk_row_in_place(const PoolGeometry& g, bool read_past, Window&& window, Vectors&& vectors) {
  constexpr int64_t n = kLanes<Acc>;
  const InsideWindows inside = inside_windows(g, read_past);
  const int64_t count = inside.hi - inside.lo;
  int64_t o = 0;
  for (; o < inside.lo; ++o) window(o);
  if (count >= n) {
    const int64_t whole = count / n * n;
    vectors(inside.lo, whole);
    if (whole < count) vectors(inside.hi - n, n);
    o = inside.hi;
  }
  for (; o < g.out[2]; ++o) window(o);
}

// The windows [o, o + count) of a row at stride 2 and dilation 1 (count a multiple of
// kLanes), a vector of them at a time: window o + i has taps x[2i + t], t in [kFirst, kLast],
// x = the row at 2o. Each pair of vectors is loaded once and split into its even and odd
// lanes, E and O; tap t is E (t even) or O, shifted by floor(t / 2) lanes into the previous
// or the next pair's. That is two loads and three or four shuffles per output vector, where
// reading each tap's even lanes in place took two loads and a permute per tap, and the loads
// split across cache lines bound it (1-D max pooling k3 s2 p1, 512 rows of 4096, in a C++
// model: 0.26 -> 0.16 ms, the rate of a bare read-8-MiB-write-4-MiB add; make bench's
// forward, 1 thread: 0.39 -> 0.27 ms). It reads the windows' taps and the value after the
// last one, as reading taps by pairs does; a row's first and last pairs take their
// neighbours' one lane from scalars: x[-2] and x[-1] from before[0] and before[1] where
// `before` is given (a row's left padding). vector(i, x + 2i, tap): tap(std::integral_constant<int,
// t>{}) is the vector of tap t of windows o + i .. o + i + kLanes - 1.
template <int kFirst, int kLast, typename Acc, typename Vector>
inline void for_each_stride2_vector(const Acc* x, int64_t count, Vector&& vector, const Acc* before = nullptr) {
  static_assert(kFirst >= -2 && kFirst <= kLast && kLast <= 3, "stride-2 taps shift by at most a lane");
  constexpr int n = kLanes<Acc>;
  LaneIndex<Acc> even, odd;
  for (int i = 0; i < n; ++i) {
    even[i] = 2 * i;
    odd[i] = 2 * i + 1;
  }
  const auto split = [&](const Acc* pair, Lanes<Acc>& e, Lanes<Acc>& o) {
    const Lanes<Acc> a = load_lanes(pair), b = load_lanes(pair + n);
    e = __builtin_shuffle(a, b, even);
    o = __builtin_shuffle(a, b, odd);
  };
  Lanes<Acc> E[3] = {}, O[3] = {};  // the even and odd lanes of the previous, this and the next pair
  if (before == nullptr) before = x - 2;
  if constexpr (kFirst <= -2) E[0][n - 1] = before[0];
  if constexpr (kFirst <= -1) O[0][n - 1] = before[1];
  split(x, E[1], O[1]);
  for (int64_t i = 0; i < count; i += n, x += 2 * n) {
    E[2] = O[2] = Lanes<Acc>{};
    if (i + n < count) {
      split(x + 2 * n, E[2], O[2]);
    } else {
      if constexpr (kLast >= 2) E[2][0] = x[2 * n];
      if constexpr (kLast >= 3) O[2][0] = x[2 * n + 1];
    }
    const auto tap = [&](auto t) -> Lanes<Acc> {  // t = 2 * shift + parity
      constexpr int parity = t() & 1, shift = (t() - parity) / 2;
      if constexpr (parity == 0) {
        return shifted_lanes<shift, Acc>(E);
      } else {
        return shifted_lanes<shift, Acc>(O);
      }
    };
    vector(i, x, tap);
    roll_lanes(E);
    roll_lanes(O);
  }
}

// f(std::integral_constant<int, t>{}) for t = kFirst .. kLast in order (kDescending: kLast .. kFirst).
template <int kFirst, int kLast, bool kDescending = false, typename F>
inline void for_each_tap(F&& f) {
  [&]<int... k>(std::integer_sequence<int, k...>) {
    (f(std::integral_constant<int, kDescending ? kLast - k : kFirst + k>{}), ...);
  }(std::make_integer_sequence<int, kLast - kFirst + 1>{});
}

// run(std::integral_constant<int, first>{}, std::integral_constant<int, last>{}) for the
// stride-2 windows' taps [first, last], true; false where they reach further than a lane into
// the pairs before or after (first < -2 or last > 3): for_each_stride2_vector takes kernels up
// to 4 at any padding, 5 at padding 1 or 2, 6 at padding 2.
template <typename Run>
inline bool with_stride2_taps(int64_t first, int64_t last, Run&& run) {
  const auto with_last = [&](auto t0) {
    if (last == 0) return run(t0, std::integral_constant<int, 0>{}), true;
    if (last == 1) return run(t0, std::integral_constant<int, 1>{}), true;
    if (last == 2) return run(t0, std::integral_constant<int, 2>{}), true;
    if (last == 3) return run(t0, std::integral_constant<int, 3>{}), true;
    return false;
  };
  if (first == 0) return with_last(std::integral_constant<int, 0>{});
  if (first == -1) return with_last(std::integral_constant<int, -1>{});
  if (first == -2) return with_last(std::integral_constant<int, -2>{});
  return false;
}

// Max pooling's windows [o, o + count) of a row at stride 2 (for_each_stride2_vector), by the
// rule's order (the first maximum, as max_of_sources gives it); a vector with a NaN among its
// taps goes again by the rule. kCodes: each window's winning tap number, t - kFirst, into codes.
// x is the row itself where `padded` (o = 0): its taps before it are padding, -inf.
template <bool kCodes, int kFirst, int kLast, typename Acc>
inline void max_row_stride2(const Acc* x, int64_t count, Acc* __restrict__ values, PlanePos<Acc>* __restrict__ codes,
                            bool padded = false) {
  using Pos = PlanePos<Acc>;
  const Acc padding[2] = {lowest<Acc>(), lowest<Acc>()};
  for_each_stride2_vector<kFirst, kLast>(x, count, [&](int64_t i, const Acc* at_i, auto&& tap) {
    Lanes<Acc> best = tap(std::integral_constant<int, kFirst>{});
    Lanes<Pos> at{};
    auto not_a_number = best != best;
    for_each_tap<kFirst + 1, kLast>([&](auto t) {
      const Lanes<Acc> v = tap(t);
      const auto take = v > best;
      best = take ? v : best;
      if constexpr (kCodes) at = take ? splat(static_cast<Pos>(t() - kFirst)) : at;
      not_a_number |= v != v;
    });
    if (any_lane(not_a_number)) {  // the rule, window by window
      for (int j = 0; j < kLanes<Acc>; ++j) {
        best[j] = lowest<Acc>();
        for (int t = kFirst; t <= kLast; ++t) {
          if (padded && 2 * (i + j) + t < 0) continue;
          const Acc v = at_i[2 * j + t];
          if (v > best[j] || v != v) {
            best[j] = v;
            at[j] = static_cast<Pos>(t - kFirst);
          }
        }
      }
    }
    store_lanes(values + i, best);
    if constexpr (kCodes) store_lanes(codes + i, at);
  }, padded ? padding : nullptr);
}

// The row pass of one input row at stride 2, as phase_split and max_of_sources over the phased
// taps give it (the same values, codes and NaN), into values and codes [0, O2), by
// walk_row_in_place: the windows whose taps all lie inside the row read it in place, by pairs
// of vectors split into even and odd lanes (max_row_stride2) or, for dilated or wide kernels,
// two vectors and a shuffle per tap (kStep 2); those at the row's ends, whose taps reach into
// the padding, one by one by the rule (a tap in the padding never takes). Staged with -inf
// around them for the vector loop instead, they stalled on loads of what was just stored: 2-D
// pooling of rows of 224, 5.9 -> 7.2 ms against the phased copy. read_past: the value after the
// row may be read.
template <bool kCodes, typename Acc>
inline void max_row_in_place(const Acc* row, const PoolGeometry& g, const MaxSources<Acc>& src, bool read_past,
                             Acc* __restrict__ values, PlanePos<Acc>* __restrict__ codes) {
  using Pos = PlanePos<Acc>;
  const int64_t X2 = g.image[2], pad = g.pad[2], taps = g.kernel[2], dil = g.dil[2];
  const auto window = [&](int64_t o) {
    Acc best = lowest<Acc>();
    Pos best_at = 0;
    for (int64_t k = 0, x = 2 * o - pad; k < taps; ++k, x += dil) {
      if (x < 0 || x >= X2) continue;
      const Acc v = row[x];
      if (v > best || v != v) {
        best = v;
        best_at = static_cast<Pos>(k);
      }
    }
    values[o] = best;
    if constexpr (kCodes) codes[o] = best_at;
  };
  const auto vectors = [&](int64_t o, int64_t count) {
    const auto by_pairs = [&](auto first, auto last) {
      max_row_stride2<kCodes, first(), last()>(row + 2 * o, count, values + o, codes + o);
    };
    if (dil == 1 && with_stride2_taps(-pad, taps - 1 - pad, by_pairs)) return;
    for (int64_t k = 0; k < taps; ++k) {
      src.from[k] = row + 2 * o - pad + k * dil;
      src.base[k] = static_cast<Pos>(k);
    }
    max_of_sources<kCodes, false, 1, 2>(src, taps, Pos(0), nullptr, count, values + o, codes + o);
  };
  walk_row_in_place<Acc>(g, read_past, window, vectors);
}

// Max pooling of plane `plane`: a pass along each input row (the max over the innermost
// taps of every window, tracking the winning tap), then over the rows of each window in
// row-major order, so ties and NaN resolve exactly as the element form scans. Starting
// each window from its first tap instead of -inf changes nothing but the argmax of an
// all -inf window, which is reset to the window's first inside tap, as the element form
// leaves it. The passes track the winner as Pos, an in-plane position or a tap number
// (the Index code's, pool.h), and store it as Index.
template <typename T, typename Acc, typename Index>
inline void max_pool_plane(const T* input, T* output, Index* argmax, const PoolGeometry& g,
                           const PoolScratch<Acc>& s, int64_t plane) {
  using Pos = PlanePos<Acc>;
  constexpr bool kTaps = sizeof(Index) == 1;
  const int64_t O2 = g.out[2], X2 = g.image[2];
  const T* src = input + plane * g.image_numel();
  Index* const plane_at = argmax != nullptr ? argmax + plane * g.out_numel() : nullptr;
  if (O2 < kShortPoolRow) {  // window by window: the row passes cost more per row than per value
    T* dst = output + plane * g.out_numel();
    if (s.windows.position != nullptr) {  // every window at once, tap by tap, through the call's table
      const int64_t n = g.image_numel(), windows = g.out_numel(), taps = g.taps();
      Acc* __restrict__ values = s.window_plane;
      Acc* __restrict__ best = s.window_best;
      Pos* __restrict__ best_at = s.window_at;
      const int32_t* first = kTaps ? s.windows.first_tap : s.windows.first;
      for (int64_t i = 0; i < n; ++i) values[i] = static_cast<Acc>(src[i]);
      values[n] = lowest<Acc>();  // what a tap in the padding reads: it never takes
      for (int64_t o = 0; o < windows; ++o) {
        best[o] = lowest<Acc>();
        best_at[o] = static_cast<Pos>(first[o]);
      }
      for (int64_t k = 0; k < taps; ++k) {  // taps in scan order, as max_pool_window
        const int32_t* __restrict__ at = s.windows.position + k * windows;
#pragma omp simd
        for (int64_t o = 0; o < windows; ++o) {
          const Acc v = values[at[o]], b = best[o];
          const Pos current = best_at[o];
          const bool take = (v > b) | (v != v);
          best[o] = take ? v : b;
          best_at[o] = take ? static_cast<Pos>(kTaps ? k : at[o]) : current;
        }
      }
      for (int64_t o = 0; o < windows; ++o) dst[o] = static_cast<T>(best[o]);
      for (int64_t o = 0; plane_at != nullptr && o < windows; ++o) plane_at[o] = static_cast<Index>(best_at[o]);
      return;
    }
    for (int64_t o0 = 0, o = 0; o0 < g.out[0]; ++o0) {
      for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
        for (int64_t o2 = 0; o2 < O2; ++o2, ++o) {
          max_pool_window<T, Acc, Index>(src, g, o0, o1, o2, dst + o, plane_at != nullptr ? plane_at + o : nullptr);
        }
      }
    }
    return;
  }
  const bool positions = argmax != nullptr;  // inference needs the values only
  // Short rows are passed a block at a time (s.block.phased: its rows side by side, row_length
  // apart, as their passes in s.rows and s.row_at); long ones one by one, padded_row(O2) apart.
  const PhasedRow& phased = max_block_rows(g) > 1 ? s.block.phased : s.phased;
  const int64_t row_stride = max_row_stride(g);
  // Where each innermost window's first inside tap lies: its column in the row, or its tap number.
  Pos* __restrict__ first2 = s.best_at + padded_row(O2);
  if (positions) {  // past the windows that start in the padding, a window's start (vectorises)
    const int64_t lead = min64(O2, ceil_div(g.pad[2], g.stride[2]));
    for (int64_t o2 = 0; o2 < lead; ++o2) {
      first2[o2] = static_cast<Pos>(kTaps ? g.first_tap(2, o2) : g.first_inside(2, o2));
    }
    for (int64_t o2 = lead; o2 < O2; ++o2) first2[o2] = static_cast<Pos>(kTaps ? 0 : o2 * g.stride[2] - g.pad[2]);
  }
  const int64_t rows = g.image[0] * g.image[1];
  // A window's code: its winning tap's, or where no tap took (all -inf) its first inside tap.
  const auto winner_code = [](Acc value, Pos at, Pos first) { return value == lowest<Acc>() ? first : at; };
  // Tap codes the row passes leave as they found them: those of rows that feed a window pass
  // (it reads a row's code only where the row's value takes, above -inf, never an all -inf
  // row window's), and those of 1-D rows written in place, fixed on their way out.
  const bool codes_as_found = kTaps && (!g.outer_identity() || !s.stream);
  // The passes of input rows [r0, r0 + n), n <= phased.rows: one pass over the block's phased
  // lines. Rows of 32 one by one spent 2/3 of make bench's 3-D max pooling in per-row overhead:
  // by blocks of 7, 2.8 -> 2.0 ms with tap codes, 1.7 -> 1.5 without (Zen 4 EPYC, 1 thread).
  // Whole rows read in place (whole_rows_in_place) go one by one, with no such set-up.
  const bool in_place = rows_in_place<T, Acc>(g) && max_block_rows(g) == 1;
  const bool values_out = in_place && !s.stream;  // the row passes' values are the output rows
  T* const plane_out = output + plane * g.out_numel();
  const auto row_values = [&](int64_t r) -> Acc* {
    if constexpr (std::is_same_v<T, Acc>) {
      if (values_out) return plane_out + r * O2;
    }
    return s.rows + r * row_stride;
  };
  const bool whole_rows = whole_rows_in_place<T, Acc>(g);
  const auto block_pass = [&](int64_t r0, int64_t n, Acc* hv, Pos* hat) {
    if constexpr (std::is_same_v<T, Acc>) {
      const auto by_pairs = [&](auto first, auto last) {
        for (int64_t i = 0; i < n; ++i) {
          const Acc* row = src + (r0 + i) * X2;
          Acc* values = hv + i * row_stride;
          Pos* codes = hat + i * row_stride;
          if (positions) {
            max_row_stride2<true, first(), last()>(row, O2, values, codes, true);
          } else {
            max_row_stride2<false, first(), last()>(row, O2, values, codes, true);
          }
        }
      };
      if (whole_rows && with_stride2_taps(-g.pad[2], g.kernel[2] - 1 - g.pad[2], by_pairs)) return;
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = r0 + i;
      phase_split(src + r * X2, g, phased, s.line + i * phased.length, lowest<Acc>(), r + 1 < rows);
    }
    for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {  // its sources: the taps of the phased lines
      s.sources.from[k2] = s.line + phased.tap[k2];
      s.sources.base[k2] = static_cast<Pos>(k2);
    }
    const int64_t count = (n - 1) * row_stride + O2;  // the last row's lanes past O2 might read past the lines
    if (positions) {
      max_of_sources<true, false>(s.sources, g.kernel[2], Pos(0), nullptr, count, hv, hat);
    } else {
      max_of_sources<false, false>(s.sources, g.kernel[2], Pos(0), nullptr, count, hv, hat);
    }
  };
  auto row_pass = [&](int64_t r0, int64_t n) {
    // Rows read in place stream through in order, as the hardware prefetcher follows: their
    // prefetches stalled the loop on full miss buffers (1-D, rows of 4096: 0.40 -> 0.37 ms).
    const int64_t ahead = kPrefetchBytes / static_cast<int64_t>(sizeof(T));
    for (int64_t r = r0; !in_place && r < r0 + n; ++r) prefetch_span(src + r * X2 + ahead, X2);
    Acc* __restrict__ hv = row_values(r0);
    Pos* __restrict__ hat = s.row_at + r0 * row_stride;
    if constexpr (std::is_same_v<T, Acc>) {
      if (in_place && positions) {  // n is 1
        max_row_in_place<true>(src + r0 * X2, g, s.sources, r0 + 1 < rows, hv, hat);
      } else if (in_place) {
        max_row_in_place<false>(src + r0 * X2, g, s.sources, r0 + 1 < rows, hv, hat);
      }
    }
    if (!in_place) block_pass(r0, n, hv, hat);
    if (!positions || codes_as_found) return;
    // the winning tap -> its code's (positions: the column; tap codes: as it is)
    const Pos stride = static_cast<Pos>(g.stride[2]), dil = static_cast<Pos>(g.dil[2]);
    const Pos pad = static_cast<Pos>(g.pad[2]);
    // A local copy: read through the lambda's capture, first2 was reloaded every iteration
    // and the loop ran scalar (1-D max pooling with indices: half its time).
    const Pos* __restrict__ first = first2;
    for (int64_t i = 0; i < n; ++i, hv += row_stride, hat += row_stride) {
#pragma omp simd
      for (int64_t o2 = 0; o2 < O2; ++o2) {
        const Pos at = kTaps ? hat[o2] : static_cast<Pos>(o2) * stride + hat[o2] * dil - pad;
        hat[o2] = winner_code(hv[o2], at, first[o2]);
      }
    }
  };
  int64_t rows_passed = 0;
  auto pass_rows_through = [&](int64_t last) {  // by blocks, until input row `last` is passed
    for (int64_t n; rows_passed <= last; rows_passed += n) {
      n = min64(phased.rows, rows - rows_passed);
      row_pass(rows_passed, n);
    }
  };
  // What a window's row (x0, x1), its tap row (k0, k1), adds to the code of its row pass's winner.
  auto row_base = [&](int64_t x0, int64_t x1, int64_t k0, int64_t k1) -> Pos {
    return static_cast<Pos>(tap_code<Index>(g, x0, x1, 0, k0, k1, 0));
  };

  T* dst = plane_out;
  Index* dst_at = plane_at;
  if (g.outer_identity()) {  // each output row is its input row's pass (1-D pooling)
    pass_rows_through(rows - 1);
    for (int64_t r = 0; r < rows; ++r) {
      Pos* __restrict__ hat = s.row_at + r * row_stride;
      if (!values_out) write_out(s.rows + r * row_stride, dst + r * O2, O2, s.stream);
      if (!positions) continue;
      if (codes_as_found) {  // fixed and narrowed in one pass
        const Acc* __restrict__ hv = row_values(r);
        const Pos* __restrict__ first = first2;
        Index* __restrict__ to = dst_at + r * O2;
#pragma omp simd
        for (int64_t o2 = 0; o2 < O2; ++o2) to[o2] = static_cast<Index>(winner_code(hv[o2], hat[o2], first[o2]));
        continue;
      }
      for (int64_t o2 = 0; !kTaps && o2 < O2; ++o2) hat[o2] += static_cast<Pos>(r * X2);  // tap codes: k0 = k1 = 0
      write_out(hat, dst_at + r * O2, O2, s.stream);
    }
    if (s.stream) streaming_done();
    if (positions) mark_windows_outside(g, plane_at);
    return;
  }
  // Short rows (blocks of row passes) whose windows lie inside along dim 1 go a run at a time:
  // their sources advance by stride[1] row passes per output row, and with tap codes (or
  // none) their codes' bases and first taps are the same. One pass per output row spent most
  // of 3-D max pooling's window pass in per-row set-up. Runs are staged in s.out (the plane
  // where streamed, else one output slice).
  const bool runs = max_row_runs(g) && (kTaps || !positions);
  const auto inside1 = [&](int64_t o1) {
    return runs && g.start(1, o1) >= 0 && g.start(1, o1) + (g.kernel[1] - 1) * g.dil[1] < g.image[1];
  };
  for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
    const int64_t f0 = g.first_inside(0, o0);
    const int64_t e0 = g.inside_end(0, o0);
    const int64_t first_k0 = g.first_tap(0, o0);
    for (int64_t o1 = 0, m; o1 < g.out[1]; o1 += m, dst += m * O2) {
      m = 1;  // the output rows of this pass
      while (inside1(o1) && o1 + m < g.out[1] && inside1(o1 + m)) ++m;
      const int64_t f1 = g.first_inside(1, o1);
      const int64_t e1 = g.inside_end(1, o1);
      const int64_t first_k1 = g.first_tap(1, o1);
      // Each input row's pass runs just before the first window that reads it, so the
      // passes a window reads are still in L1 (all passes first, as before: 1.35x the time
      // at 112x112 with positions).
      pass_rows_through((e0 - 1) * g.image[1] + g.inside_end(1, o1 + m - 1) - 1);
      const int64_t row = o0 * g.out[1] + o1;  // streaming: the plane's output is staged whole
      const int64_t staged = s.stream ? row : o1;
      Acc* __restrict__ best = s.stream || runs ? s.out + staged * O2 : s.best;
      Pos* __restrict__ best_at = s.stream || runs ? s.out_at + staged * O2 : s.best_at;
      int64_t n = 0;  // the window pass's sources: the row passes of the windows' rows, in row-major order
      for (int64_t x0 = f0, k0 = first_k0; x0 < e0; x0 += g.dil[0], ++k0) {
        for (int64_t x1 = f1, k1 = first_k1; x1 < e1; x1 += g.dil[1], ++k1, ++n) {
          const int64_t r = x0 * g.image[1] + x1;
          s.sources.from[n] = s.rows + r * row_stride;
          s.sources.codes[n] = s.row_at + r * row_stride;
          s.sources.base[n] = row_base(x0, x1, k0, k1);
        }
      }
      const RowRun run{m, g.stride[1] * row_stride, O2};
      if (positions) {
        const Pos first_base = row_base(f0, f1, first_k0, first_k1);
        max_of_sources<true, true>(s.sources, n, first_base, first2, O2, best, best_at, run);
      } else {
        max_of_sources<false, true>(s.sources, n, Pos(0), nullptr, O2, best, best_at, run);
      }
      if (!s.stream) {
        write_out(best, dst, m * O2, false);
        if (dst_at != nullptr) write_out(best_at, dst_at, m * O2, false);
      }
      if (dst_at != nullptr) dst_at += m * O2;
    }
  }
  if (s.stream) {
    stream_copy(s.out, output + plane * g.out_numel(), g.out_numel());
    if (positions) stream_copy(s.out_at, plane_at, g.out_numel());
    streaming_done();
  }
  if (positions) mark_windows_outside(g, plane_at);
}

// One output row (O2 windows) over its divisors: the outer dims' factors multiply to
// f01, the innermost ones are in `factor`; divisor_override replaces them all. A window
// with nothing to count has a sum of 0 (forward), and its share reaches no input
// (backward), so dividing it by 1 instead of 0 gives the 0 it must: no NaN, no branch.
template <typename In, typename Out, typename Acc>
inline void divide_by_divisors(const In* __restrict__ values, Out* __restrict__ out, Acc f01,
                               const Acc* __restrict__ factor, const PoolGeometry& g) {
  const int64_t O2 = g.out[2];
  if (g.divisor_override != 0) {
    const Acc divisor = static_cast<Acc>(g.divisor_override);
#pragma omp simd
    for (int64_t o2 = 0; o2 < O2; ++o2) out[o2] = static_cast<Out>(static_cast<Acc>(values[o2]) / divisor);
    return;
  }
#pragma omp simd
  for (int64_t o2 = 0; o2 < O2; ++o2) {
    const Acc divisor = f01 * factor[o2];
    out[o2] = static_cast<Out>(static_cast<Acc>(values[o2]) / (divisor + static_cast<Acc>(divisor == Acc(0))));
  }
}

// The innermost dim's divisor factors, factor[o2] for o2 < O2: the same for every plane,
// so the launchers fill them once per call (per plane: a fifth of 1-D average pooling).
template <typename Acc>
inline void avg_innermost_factors(const PoolGeometry& g, Acc* factor) {
  int64_t lo, hi;
  for (int64_t o2 = 0; o2 < g.out[2]; ++o2) factor[o2] = static_cast<Acc>(g.avg_window(2, o2, &lo, &hi));
}

// Calls visit(row, lo0, hi0, lo1, hi1, f01) for every output row (o0, o1) of a plane, in
// order (row = o0*O1 + o1), with the input rows of its windows, [lo0, hi0) x [lo1, hi1),
// and the product of their divisor factors (the innermost dim's: avg_innermost_factors).
template <typename Acc, typename Visit>
inline void for_each_avg_row(const PoolGeometry& g, Visit&& visit) {
  for (int64_t o0 = 0, row = 0; o0 < g.out[0]; ++o0) {
    int64_t lo0, hi0;
    const Acc f0 = static_cast<Acc>(g.avg_window(0, o0, &lo0, &hi0));
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1, ++row) {
      int64_t lo1, hi1;
      const Acc f01 = f0 * static_cast<Acc>(g.avg_window(1, o1, &lo1, &hi1));
      visit(row, lo0, hi0, lo1, hi1, f01);
    }
  }
}

// column[x] (+)= rows[0][x] + ... + rows[N-1][x], added left to right: N rows in one pass.
template <int N, typename T, typename Acc>
inline void add_rows(const T* const* rows, bool first, int64_t count, Acc* __restrict__ column) {
  const T* __restrict__ r0 = rows[0];
  const T* __restrict__ r1 = rows[N > 1 ? 1 : 0];
  const T* __restrict__ r2 = rows[N > 2 ? 2 : 0];
#pragma omp simd
  for (int64_t x = 0; x < count; ++x) {
    Acc sum = first ? static_cast<Acc>(r0[x]) : column[x] + static_cast<Acc>(r0[x]);
    if (N > 1) sum += static_cast<Acc>(r1[x]);
    if (N > 2) sum += static_cast<Acc>(r2[x]);
    column[x] = sum;
  }
}

// column[x] = the sum over the rows [lo0, hi0) x [lo1, hi1) of a plane of rows1 x X2 rows
// (0 if none), added in row order, up to three rows per pass over the column.
template <typename T, typename Acc>
inline void sum_rows(const T* plane, int64_t rows1, int64_t X2, int64_t lo0, int64_t hi0, int64_t lo1, int64_t hi1,
                     Acc* __restrict__ column) {
  const T* pending[3];
  int n = 0;
  bool first = true;
  auto flush = [&] {
    if (n == 1) add_rows<1>(pending, first, X2, column);
    if (n == 2) add_rows<2>(pending, first, X2, column);
    if (n == 3) add_rows<3>(pending, first, X2, column);
    first = first && n == 0;
    n = 0;
  };
  for (int64_t x0 = lo0; x0 < hi0; ++x0) {
    for (int64_t x1 = lo1; x1 < hi1; ++x1) {
      pending[n++] = plane + (x0 * rows1 + x1) * X2;
      if (n == 3) flush();
    }
  }
  flush();
  if (first) {
    for (int64_t x = 0; x < X2; ++x) column[x] = Acc(0);
  }
}

// A window's divisor by divide_by_divisors' rule (1 where it counts nothing), from its
// innermost factor; lane_divisors: those of a vector of windows, from their factors.
template <typename Acc>
inline Acc divisor_of(Acc factor, const PoolGeometry& g, Acc f01) {
  if (g.divisor_override != 0) return static_cast<Acc>(g.divisor_override);
  const Acc divisor = f01 * factor;
  return divisor + static_cast<Acc>(divisor == Acc(0));
}
template <typename Acc>
inline Lanes<Acc> lane_divisors(const Acc* factor, const PoolGeometry& g, Acc f01) {
  const Lanes<Acc> zero{}, one = splat(Acc(1));
  if (g.divisor_override != 0) return splat(static_cast<Acc>(g.divisor_override));
  const Lanes<Acc> divisor = f01 * load_lanes(factor);
  return divisor + (divisor == zero ? one : zero);
}

// One output row of average pooling from its phased line (its first window's entry 0 at
// `line`, taps at tap[k]): the sums over the innermost taps over the divisors
// (divide_by_divisors' rule, the same operations), into out[0 .. padded_row(O2)): whole
// vectors, each summed in registers across the taps (a pass per tap loaded and stored the
// running sums), their lanes past O2 in padding (kLanePad) or, given a `tail` vector, into
// out[0 .. O2) alone: the last partial vector through the tail (1-D average pooling's rows
// staged and then copied out: 13% of its forward).
template <typename Acc>
inline void average_taps(const Acc* line, const int64_t* tap, const Acc* factor, const PoolGeometry& g, Acc f01,
                         Acc* __restrict__ out, Acc* __restrict__ tail = nullptr) {
  for (int64_t i = 0; i < g.out[2]; i += kLanes<Acc>) {
    Lanes<Acc> sum = load_lanes(line + tap[0] + i);
    for (int64_t k2 = 1; k2 < g.kernel[2]; ++k2) sum += load_lanes(line + tap[k2] + i);
    const Lanes<Acc> average = sum / lane_divisors(factor + i, g, f01);
    if (tail == nullptr || i + kLanes<Acc> <= g.out[2]) {
      store_lanes(out + i, average);
    } else {
      store_lanes(tail, average);
      for (int64_t k = 0; k < g.out[2] - i; ++k) out[i + k] = tail[k];
    }
  }
}

// Average pooling's windows [o, o + count) of a row at stride 2 (for_each_stride2_vector, taps
// [kFirst, kLast]; x the row at 2o, `before` its left padding's zeros or null), as average_taps
// gives them: the taps added in order, over the windows' divisors (factor: the first's).
template <int kFirst, int kLast, typename Acc>
inline void average_row_stride2(const Acc* x, int64_t count, const Acc* factor, const PoolGeometry& g, Acc f01,
                                Acc* __restrict__ out, const Acc* before = nullptr) {
  // locals: read through references, they were reloaded after every store
  const Acc* __restrict__ factors = factor;
  const PoolGeometry geometry = g;
  const Acc f = f01;
  for_each_stride2_vector<kFirst, kLast>(x, count, [&](int64_t i, const Acc*, auto&& tap) {
    Lanes<Acc> sum = tap(std::integral_constant<int, kFirst>{});
    for_each_tap<kFirst + 1, kLast>([&](auto t) { sum += tap(t); });
    store_lanes(out + i, sum / lane_divisors(factors + i, geometry, f));
  }, before);
}

// One output row of 1-D average pooling at stride 2 (rows_in_place), as phase_split and
// average_taps give it (the same operations, the padding's zeros added too), by
// walk_row_in_place: the windows whose taps all lie inside the row read it in place, a tap's
// values the even lanes of two vectors; the windows at the row's ends one by one. read_past:
// the value after the row may be read.
template <typename Acc>
inline void average_row_in_place(const Acc* row, const PoolGeometry& g, const Acc* factor, Acc f01, bool read_past,
                                 Acc* __restrict__ out) {
  const int64_t X2 = g.image[2], pad = g.pad[2], taps = g.kernel[2], dil = g.dil[2];
  const auto window = [&](int64_t o) {
    const auto tap = [&](int64_t x) { return x >= 0 && x < X2 ? row[x] : Acc(0); };
    Acc sum = tap(2 * o - pad);
    for (int64_t k = 1; k < taps; ++k) sum += tap(2 * o - pad + k * dil);
    out[o] = sum / divisor_of(factor[o], g, f01);
  };
  const auto vectors = [&](int64_t first, int64_t count) {
    const auto by_pairs = [&](auto t0, auto t1) {
      average_row_stride2<t0(), t1()>(row + 2 * first, count, factor + first, g, f01, out + first);
    };
    if (dil == 1 && with_stride2_taps(-pad, taps - 1 - pad, by_pairs)) return;
    for (int64_t o = first; o < first + count; o += kLanes<Acc>) {
      const Acc* from = row + 2 * o - pad;
      Lanes<Acc> sum = load_even_lanes(from);
      for (int64_t k = 1; k < taps; ++k) sum += load_even_lanes(from + k * dil);
      store_lanes(out + o, sum / lane_divisors(factor + o, g, f01));
    }
  };
  walk_row_in_place<Acc>(g, read_past, window, vectors);
}

// Average pooling's output rows (o0, o1) of a plane whose windows span the outer dims:
// emit(row, average) for each, average(out, tail) writing its averages as average_taps does
// from the phased sum of its window's input rows. A block of output rows' sums (s.block) is
// split into phases at once, then averaged row by row; whole stride-2 rows of sums
// (whole_stride2_rows) are averaged where they are, their left padding zeros: the copy into
// phases was a third of the averaging. make bench's forwards on a Zen 3 EPYC, in one process,
// fastest of 60-150 runs: 3-D 0.92 -> 0.83 ms at 1 thread, 0.48 -> 0.41 at 2; 2-D 3.06 -> 2.65
// and 2.42 -> 1.92. Where avg_slab, each output slice first sums its input slices whole
// (s.block.slab), and its rows sum rows of that: three long runs for the hardware prefetcher
// instead of nine short rows per output row (make bench, 3-D forward at 1 thread: 0.82-0.96 -> 0.72-0.76
// ms); the next slice's input slices are prefetched a chunk per output row.
template <typename T, typename Acc, typename Emit>
inline void average_row_blocks(const T* src, const PoolGeometry& g, const PoolScratch<Acc>& s, Emit&& emit) {
  const PhasedRow& b = s.block.phased;
  const int64_t X1 = g.image[1], X2 = g.image[2], O1 = g.out[1], slice = X1 * X2, stride = g.stride[2];
  int64_t held = 0, first_row = 0;
  auto average_block = [&] {
    for (int64_t q = 0; q < stride; ++q) {  // the sums' padding is zero, their last + 1 readable
      gather_step(s.block.sums + q, stride, s.line + q * b.rows * b.length, held * b.length, true);
    }
    for (int64_t r = 0; r < held; ++r) {
      emit(first_row + r, [&](Acc* out, Acc* tail) {
        average_taps(s.line + r * b.length, b.tap, s.factor, g, s.block.f01[r], out, tail);
      });
    }
    first_row += held;
    held = 0;
  };
  const int64_t first_tap = -g.pad[2], last_tap = g.kernel[2] - 1 - g.pad[2];
  const bool whole_rows = whole_stride2_rows<Acc>(g);  // its taps within with_stride2_taps' reach
  const Acc zeros[2] = {Acc(0), Acc(0)};
  const bool slabs = avg_slab(g);
  int64_t next_lo = 0, next_hi = 0, chunk = 0;  // the next output slice's input slices, prefetched by chunks
  for_each_avg_row<Acc>(g, [&](int64_t row, int64_t lo0, int64_t hi0, int64_t lo1, int64_t hi1, Acc f01) {
    Acc* sum = s.block.sums + held * stride * b.length + g.pad[2];
    if (!slabs) {
      prefetch_rows_ahead(src, g, lo0, hi0, hi1, g.stride[1]);
      sum_rows(src, X1, X2, lo0, hi0, lo1, hi1, sum);
    } else {
      const int64_t o0 = row / O1, o1 = row - o0 * O1;
      if (o1 == 0) {  // a new output slice: its input slices, as rows of X1*X2
        sum_rows(src, 1, slice, lo0, hi0, 0, 1, s.block.slab);
        next_lo = next_hi = 0;
        if (o0 + 1 < g.out[0]) g.avg_window(0, o0 + 1, &next_lo, &next_hi);
        chunk = ceil_div(max64(next_hi - next_lo, 0) * slice, O1);
      }
      const int64_t done = o1 * chunk, end = max64(next_hi - next_lo, 0) * slice;
      prefetch_span(src + next_lo * slice + done, min64(chunk, end - done));
      sum_rows(s.block.slab, X1, X2, 0, 1, lo1, hi1, sum);
    }
    if (whole_rows) {
      emit(row, [&](Acc* out, Acc*) {
        with_stride2_taps(first_tap, last_tap, [&](auto first, auto last) {
          average_row_stride2<first(), last()>(sum, g.out[2], s.factor, g, f01, out, zeros);
        });
      });
      return;
    }
    s.block.f01[held] = f01;
    if (++held == b.rows) average_block();
  });
  if (held > 0) average_block();
}

// Average pooling of plane `plane`, by output rows (o0, o1): the sum of each window's input
// rows (a column of X2 sums), then the sums over the innermost taps of that row (phased,
// zero-padded), over the divisor (a product of per-dim factors). Summing the rows first
// splits one row into phases per output row, not per input row (average_row_blocks); in
// 1-D pooling, each input row is split as it is.
template <typename T, typename Acc>
inline void avg_pool_plane(const T* input, T* output, const PoolGeometry& g, const PoolScratch<Acc>& s,
                           int64_t plane) {
  const int64_t O2 = g.out[2], X2 = g.image[2];
  const T* src = input + plane * g.image_numel();
  T* dst = output + plane * g.out_numel();
  Acc* __restrict__ averages = s.best;
  // Streaming: the plane's output is staged whole and streamed as one run (row by row,
  // streaming stores were slower than plain ones for 2-D pooling's 56-value rows).
  // Output row `row` by average(out, tail) (average_taps' out and tail): into the staged plane,
  // the output itself, or scratch converted on its way out.
  auto emit = [&](int64_t row, auto&& average) {
    if (s.stream) {
      average(s.out + row * O2, nullptr);
    } else if constexpr (std::is_same_v<T, Acc>) {
      average(dst + row * O2, averages);
    } else {
      average(averages, nullptr);
      write_out(averages, dst + row * O2, O2, false);
    }
  };
  if (g.outer_identity()) {
    const bool in_place = rows_in_place<T, Acc>(g);
    for_each_avg_row<Acc>(g, [&](int64_t row, int64_t lo0, int64_t, int64_t lo1, int64_t, Acc f01) {
      if (!in_place) prefetch_rows(src, g, lo0, lo0 + 1, lo1 + 1, min64(lo1 + 1 + g.stride[1], g.image[1]));
      const int64_t x01 = lo0 * g.image[1] + lo1;
      const bool read_past = x01 + 1 < g.image[0] * g.image[1];
      if constexpr (std::is_same_v<T, Acc>) {
        if (in_place) {
          average_row_in_place(src + x01 * X2, g, s.factor, f01, read_past, (s.stream ? s.out : dst) + row * O2);
          return;
        }
      }
      phase_split(src + x01 * X2, g, s.phased, s.line, Acc(0), read_past);
      emit(row, [&](Acc* out, Acc* tail) { average_taps(s.line, s.phased.tap, s.factor, g, f01, out, tail); });
    });
  } else {
    average_row_blocks(src, g, s, emit);
  }
  if (s.stream) {
    stream_copy(s.out, dst, g.out_numel());
    streaming_done();
  }
}

// Where a gradient accumulates: in the scratch `acc` when there is one (the launchers give
// one where T is not Acc, or where the output is written by streaming stores), else in the
// output itself (no extra pass); store_accumulated writes the scratch out.
template <typename T, typename Acc>
inline Acc* accumulator(T* out, Acc* acc) {
  if constexpr (std::is_same<T, Acc>::value) {
    return acc != nullptr ? acc : out;
  } else {
    return acc;
  }
}

// The same for a position's sums (the channels_last forms): sums_to says where they go,
// straight into the output where T is its own accumulator and the output is not streamed,
// else into `scratch`; write_sums copies them out where they are not there already.
template <typename T, typename Acc>
inline Acc* sums_to(T* out, Acc* scratch, bool stream) {
  return accumulator(out, std::is_same<T, Acc>::value && !stream ? nullptr : scratch);
}

template <typename T, typename Acc>
inline void write_sums(const Acc* sums, T* out, int64_t count, bool stream) {
  if (static_cast<const void*>(sums) != static_cast<const void*>(out)) write_out(sums, out, count, stream);
}

template <typename T, typename Acc>
inline void store_accumulated(const Acc* sum, T* out, int64_t count, bool stream = false) {
  write_sums(sum, out, count, stream);
  if (stream) streaming_done();
}

// Whether output o of a plane (flat in O0*O1*O2) has a max window with no tap inside.
inline bool output_outside(const PoolGeometry& g, int64_t o) {
  int64_t c[kMaxSpatial];
  split_index(o, g.out, c);
  return g.output_outside(c[0], c[1], c[2]);
}

// The in-plane position output o's argmax code names (pool.h), or -1 where it names no
// input of the plane: a window with no tap inside, or a code that is no tap of this
// geometry (indices not from max_pool). origin: window o's PoolGeometry::window_origin;
// tap_offset: its tap_offset for every tap (tap codes only).
template <typename Index>
inline int64_t argmax_position(Index code, const PoolGeometry& g, int64_t origin, const int64_t* tap_offset) {
  const int64_t taps = g.taps();
  int64_t x = static_cast<int64_t>(code);
  if constexpr (sizeof(Index) == 1) {
    if (x >= taps) return -1;  // kNoTap, or garbage
    x = origin + tap_offset[x];
  }
  return x >= 0 && x < g.image_numel() ? x : -1;
}

// body(o, origin) for every output o of a plane (flat in O0*O1*O2), origin its window's
// PoolGeometry::window_origin; before each output row's, rows_to(end): its windows reach
// no input row (x0*X1 + x1) at or past `end`.
template <typename RowsTo, typename Body>
inline void for_each_window(const PoolGeometry& g, RowsTo&& rows_to, Body&& body) {
  for (int64_t o0 = 0, o = 0; o0 < g.out[0]; ++o0) {
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
      rows_to((g.inside_end(0, o0) - 1) * g.image[1] + g.inside_end(1, o1));
      const int64_t row = g.window_origin(o0, o1, 0);
      for (int64_t o2 = 0; o2 < g.out[2]; ++o2, ++o) body(o, row + o2 * g.stride[2]);
    }
  }
}

// Zeroes the input rows of a gradient (rows of `row_values` values) as for_each_window
// reaches them, and the rest at the end. Tap codes name a tap of the window, so a row is
// zeroed just before the first window that adds to it and the adds find it in cache (a
// channels_last image zeroed whole first is out of cache by its adds). Positions (any in
// the plane, as torch's max_unpool indices may be) zero every row first.
template <typename Index, typename Acc>
struct LazyZeroRows {
  Acc* sum;
  int64_t row_values, rows, zeroed = 0;
  LazyZeroRows(Acc* sum_, int64_t row_values_, int64_t rows_) : sum(sum_), row_values(row_values_), rows(rows_) {
    if (sizeof(Index) == 8) to(rows);
  }
  void to(int64_t end) {
    end = min64(end, rows);
    if (end <= zeroed) return;
    for (int64_t i = zeroed * row_values; i < end * row_values; ++i) sum[i] = Acc(0);
    zeroed = end;
  }
};

// Max-pool gradient of plane `plane`. The plane belongs to this call alone, which adds
// each output gradient at its argmax in output order: deterministic, no atomics. Outputs
// whose window has no tap inside the input, and positions off the plane, reach no input.
template <typename T, typename Acc, typename Index>
inline void max_pool_backward_plane(const T* grad_output, const Index* argmax, const int64_t* tap_offset,
                                    T* grad_input, Acc* acc, const PoolGeometry& g, int64_t plane, bool stream) {
  const int64_t X = g.image_numel(), O = g.out_numel();
  T* dst = grad_input + plane * X;
  Acc* sum = accumulator(dst, acc);
  LazyZeroRows<Index, Acc> zero(sum, g.image[2], g.image[0] * g.image[1]);
  const T* go = grad_output + plane * O;
  const Index* at = argmax + plane * O;
  const bool any_outside = sizeof(Index) == 8 && g.any_window_outside();  // tap codes say kNoTap
  for_each_window(g, [&](int64_t end) { zero.to(end); }, [&](int64_t o, int64_t origin) {
    const int64_t x = argmax_position(at[o], g, origin, tap_offset);
    if (x < 0 || (any_outside && output_outside(g, o))) return;
    sum[x] += static_cast<Acc>(go[o]);
  });
  zero.to(zero.rows);
  store_accumulated(sum, dst, X, stream);
}

// The output windows along dim d covering each input position x: [first[x], end[x]) (empty
// where none does). Windows move forward with o, so those covering x are consecutive.
inline void covering_windows(const PoolGeometry& g, int d, int64_t* first, int64_t* end) {
  for (int64_t x = 0; x < g.image[d]; ++x) first[x] = end[x] = 0;
  for (int64_t o = 0; o < g.out[d]; ++o) {
    int64_t lo, hi;
    g.avg_window(d, o, &lo, &hi);
    for (int64_t x = lo; x < hi; ++x) {
      if (end[x] == 0) first[x] = o;
      end[x] = o + 1;
    }
  }
}

// covering_windows along the first `dims` dims, kept in `covering` dim after dim (X_d firsts,
// then X_d ends): the windows [first[d][x], end[d][x]) cover position x along dim d.
struct CoveringRanges {
  const int64_t* first[kMaxSpatial];
  const int64_t* end[kMaxSpatial];
  CoveringRanges(const PoolGeometry& g, int64_t* covering, int dims = kMaxSpatial) {
    for (int d = 0; d < dims; ++d) {
      int64_t* first_d = covering;
      int64_t* end_d = first_d + g.image[d];
      covering_windows(g, d, first_d, end_d);
      first[d] = first_d;
      end[d] = end_d;
      covering = end_d + g.image[d];
    }
  }
};

// The adjoint of average_taps' sums over a phased line (one row): entry m of phase q gets
// the shares of the windows whose taps read it, share[m - off] for each tap at q*length +
// off, in tap order, as a scatter of each tap's shares into a zeroed line adds them, but
// each vector summed in registers (the scatter's passes stored overlapping runs of one
// phase and stalled the loads after them). share[o] is 0 for o < 0 and o >= O2 (s.shares),
// and each phase's last vector runs past it into the next phase, written after, or padding.
// kWinners (max pooling's gradient from tap codes): a share counts for its window's winning
// tap alone, the one code[o] names, and the taps are taken in output order (last tap
// first), the order max_pool_backward_plane's scatter adds them.
//
// A phase's taps are found first, and up to three are summed by a loop of their own (a test
// per tap and vector in the loop over the line: the 1-D gradient 0.93-1.03 ms, 0.74 so).
template <bool kWinners, typename Acc>
inline Lanes<Acc> tap_shares(const Acc* share, const PlanePos<Acc>* code, int64_t at, PlanePos<Acc> tap) {
  const Lanes<Acc> v = load_lanes(share + at);
  if constexpr (kWinners) {
    return load_lanes(code + at) == tap - Lanes<PlanePos<Acc>>{} ? v : Lanes<Acc>{};
  } else {
    return v;
  }
}

template <int kTaps, bool kWinners, typename Acc>
inline void spread_phase(const Acc* share, const PlanePos<Acc>* code, const int64_t* off, const PlanePos<Acc>* tap,
                         int64_t length, Acc* __restrict__ phase) {
  for (int64_t m = 0; m < length; m += kLanes<Acc>) {
    Lanes<Acc> sum{};
#pragma GCC unroll 4
    for (int i = 0; i < kTaps; ++i) sum += tap_shares<kWinners>(share, code, m - off[i], tap[i]);
    store_lanes(phase + m, sum);
  }
}

template <bool kWinners, typename Acc>
inline void spread_shares(const Acc* share, const PlanePos<Acc>* code, const PoolGeometry& g, const PhasedRow& r,
                          Acc* line) {
  using Pos = PlanePos<Acc>;
  constexpr int kFewTaps = 3;
  const int64_t K2 = g.kernel[2];
  const auto tap_at = [&](int64_t i) { return kWinners ? K2 - 1 - i : i; };  // the i-th tap summed
  for (int64_t q = 0; q < g.stride[2]; ++q) {
    Acc* __restrict__ phase = line + q * r.length;
    const auto offset = [&](int64_t k2) {  // tap k2's entry 0 in this phase, or -1: not in it
      const int64_t o = r.tap[k2] - q * r.length;
      return o >= 0 && o < r.length ? o : -1;
    };
    int64_t off[kFewTaps], taps = 0;
    Pos tap[kFewTaps];
    for (int64_t i = 0; i < K2; ++i) {
      const int64_t o = offset(tap_at(i));
      if (o >= 0 && taps++ < kFewTaps) {
        off[taps - 1] = o;
        tap[taps - 1] = static_cast<Pos>(tap_at(i));
      }
    }
    if (taps == 0) spread_phase<0, kWinners>(share, code, off, tap, r.length, phase);
    if (taps == 1) spread_phase<1, kWinners>(share, code, off, tap, r.length, phase);
    if (taps == 2) spread_phase<2, kWinners>(share, code, off, tap, r.length, phase);
    if (taps == 3) spread_phase<3, kWinners>(share, code, off, tap, r.length, phase);
    if (taps <= kFewTaps) continue;
    for (int64_t m = 0; m < r.length; m += kLanes<Acc>) {
      Lanes<Acc> sum{};
      for (int64_t i = 0; i < K2; ++i) {
        const int64_t o = offset(tap_at(i));
        if (o >= 0) sum += tap_shares<kWinners>(share, code, m - o, static_cast<Pos>(tap_at(i)));
      }
      store_lanes(phase + m, sum);
    }
  }
}

// Merges a phased line into `row`, input row x of a gradient's accumulator (accumulator):
// where that is the gradient itself (T is Acc), through s.rows, by streaming stores where
// s.stream (the caller ends with streaming_done()); at stride 2 into an aligned row, straight
// by streaming stores.
template <typename T, typename Acc>
inline void merge_input_row(const Acc* line, const PoolGeometry& g, const PoolScratch<Acc>& s, Acc* row) {
  if constexpr (std::is_same<T, Acc>::value) {
    if (s.stream && g.stride[2] == 2 && vector_aligned(row)) {
      phase_merge(line, g, s.phased, row, true);
      return;
    }
    phase_merge(line, g, s.phased, s.rows);
    write_out(s.rows, row, g.image[2], s.stream);
  } else {
    phase_merge(line, g, s.phased, row);
  }
}

// The gradient of an input row (X2 values) pooled at stride 2 and dilation 1, taps t in
// [kFirst, kLast] (with_stride2_taps), from its windows' shares laid out as spread_shares reads
// them (zeros before window 0 and after the last), in gather form: input 2m + u, u the parity
// of t, takes share[m - (t - u) / 2] for each tap t (max pooling, kWinners: where that
// window's winning tap is t), taps descending: in window order, as torch adds them (where
// three windows cover an input, spread_shares' average adds them in tap order instead); the
// even and odd inputs are then interleaved into the row, by streaming stores where `stream`
// (row aligned to a vector). The line's two passes, spreading the shares and merging it, are
// gone (k3 s2 p1, 1 thread: 1-D gradients of 8 MiB, average 0.62 -> 0.48 ms, max 0.69 -> 0.52;
// make bench's 2-D NCHW average forward+backward 5.9 -> 5.0 ms, at 2 threads 3.4 -> 2.9).
template <bool kWinners, int kFirst, int kLast, typename Acc>
inline void gradient_row_stride2(const Acc* share, const PlanePos<Acc>* code, int64_t X2, bool stream,
                                 Acc* __restrict__ row) {
  using Pos = PlanePos<Acc>;
  constexpr int n = kLanes<Acc>;
  // The shares (and codes) at m - window, window in [-1, 1], from the vectors at m - n, m and
  // m + n, loaded where they were stored: loads a lane off, across two of the stores just made,
  // waited for the stores to retire (a sixth of 2-D and 3-D average pooling's gradients).
  constexpr bool kBefore = (kLast - (kLast & 1)) / 2 > 0;  // a tap reads the vector before m
  Lanes<Acc> values[3] = {};
  Lanes<Pos> codes[3] = {};
  // v: the vectors of `from` at m - n and m; then at m + n; then moved on (roll_lanes).
  const auto start = [&](auto& v, const auto* from) {
    if constexpr (kBefore) v[0] = load_lanes(from - n);
    v[1] = load_lanes(from);
  };
  const auto next = [&](auto& v, const auto* from, int64_t m) { v[2] = load_lanes(from + m + n); };
  start(values, share);
  if constexpr (kWinners) start(codes, code);
  for (int64_t m = 0; 2 * m < X2; m += n) {
    next(values, share, m);
    if constexpr (kWinners) next(codes, code, m);
    Lanes<Acc> sum[2] = {};  // inputs 2m + 2i, 2m + 2i + 1
    for_each_tap<kFirst, kLast, true>([&](auto t) {
      constexpr int parity = t() & 1, window = (t() - parity) / 2;  // t = 2 * window + parity
      Lanes<Acc> v = shifted_lanes<-window, Acc>(values);
      if constexpr (kWinners) {
        v = shifted_lanes<-window, Pos>(codes) == splat(static_cast<Pos>(t() - kFirst)) ? v : Lanes<Acc>{};
      }
      sum[parity] += v;
    });
    roll_lanes(values);
    if constexpr (kWinners) roll_lanes(codes);
    Lanes<Acc> inputs[2] = {interleaved_lanes<0, Acc>(sum[0], sum[1]), interleaved_lanes<1, Acc>(sum[0], sum[1])};
    Acc* to = row + 2 * m;
    if (2 * m + 2 * n > X2) {  // the row's last values
      std::memcpy(to, inputs, (X2 - 2 * m) * sizeof(Acc));
    } else if (stream) {
      stream_lanes(to, inputs[0]);
      stream_lanes(to + n, inputs[1]);
    } else {
      store_lanes(to, inputs[0]);
      store_lanes(to + n, inputs[1]);
    }
  }
}

// gradient_row_stride2 of one output row's shares (and codes, kWinners) into `row`, X2 values,
// where it takes the row's geometry (and a streamed row is aligned); false where it does not.
template <bool kWinners, typename Acc>
inline bool gradient_row_by_pairs(const Acc* share, const PlanePos<Acc>* code, const PoolGeometry& g, bool stream,
                                  Acc* row) {
  const auto by_pairs = [&](auto t0, auto t1) {
    gradient_row_stride2<kWinners, t0(), t1()>(share, code, g.image[2], stream, row);
  };
  const int64_t pad = g.pad[2], taps = g.kernel[2];
  return g.stride[2] == 2 && g.dil[2] == 1 && (!stream || vector_aligned(row)) &&
         with_stride2_taps(-pad, taps - 1 - pad, by_pairs);
}

// The gradient of input row `row` (accumulator's) from one output row's shares (and codes,
// kWinners), spread_shares' layout: by pairs, else spread over the phased line and merged.
template <bool kWinners, typename T, typename Acc>
inline void gradient_row(const Acc* share, const PlanePos<Acc>* code, const PoolGeometry& g,
                         const PoolScratch<Acc>& s, Acc* row) {
  if (gradient_row_by_pairs<kWinners>(share, code, g, std::is_same<T, Acc>::value && s.stream, row)) return;
  spread_shares<kWinners>(share, code, g, s.phased, s.line);
  merge_input_row<T>(s.line, g, s, row);
}

// Max-pool gradient from tap codes of a plane whose rows are pooled one by one (1-D pooling:
// outer_identity), owned by this call (acc as avg_pool_backward_plane's): the adjoint of the
// row pass in gather form. Each output row's gradients and codes, zero-padded (s.shares,
// s.share_codes), are spread over the phased line by winning tap and merged into the input
// row, written once: no zero-fill, no scalar scatter (make bench's 1-D gradient on a Zen 4
// EPYC at 1 thread: 1.5 ms by max_pool_backward_plane).
template <typename T, typename Acc>
inline void max_pool_backward_rows(const T* grad_output, const uint8_t* argmax, T* grad_input, Acc* acc,
                                   const PoolGeometry& g, const PoolScratch<Acc>& s, int64_t plane) {
  using Pos = PlanePos<Acc>;
  const int64_t O2 = g.out[2], X2 = g.image[2];
  T* dst = grad_input + plane * g.image_numel();
  Acc* __restrict__ sum = accumulator(dst, acc);
  const T* __restrict__ go = grad_output + plane * g.out_numel();
  const uint8_t* __restrict__ at = argmax + plane * g.out_numel();
  Acc* __restrict__ share = s.shares;
  Pos* __restrict__ code = s.share_codes;
  for (int64_t row = 0; row < g.image[0] * g.image[1]; ++row, go += O2, at += O2) {
#pragma omp simd
    for (int64_t o2 = 0; o2 < O2; ++o2) {
      share[o2] = static_cast<Acc>(go[o2]);
      code[o2] = static_cast<Pos>(at[o2]);
    }
    gradient_row<true, T>(share, code, g, s, sum + row * X2);
  }
  if (s.stream) streaming_done();
  store_accumulated(sum, dst, g.image_numel());
}

// Input rows x1 of one output slice's columns (rows1 x X2, the adjoint along dim 1): slice[x1]
// = the sum of the columns of the output rows [first1[x1], end1[x1]) covering it, in output
// order, 0 where none does. Whole vectors summed in registers across the rows, then the tail;
// by streaming stores where `stream` (store_run).
template <typename Acc>
inline void sum_covering_rows(const Acc* columns, const int64_t* first1, const int64_t* end1, int64_t rows1,
                              int64_t X2, Acc* __restrict__ slice, bool stream = false) {
  for (int64_t x1 = 0; x1 < rows1; ++x1, slice += X2) {
    const Acc* __restrict__ from = columns + first1[x1] * X2;
    const int64_t rows = end1[x1] - first1[x1];
    store_run(slice, X2, stream, [&](int64_t i) {
      Acc sum = Acc(0);
      for (int64_t r = 0; r < rows; ++r) sum += from[r * X2 + i];
      return sum;
    }, [&](int64_t i) {
      Lanes<Acc> sum{};
      for (int64_t r = 0; r < rows; ++r) sum += load_lanes(from + r * X2 + i);
      return sum;
    });
  }
}

// to[i] = the sum of rows [first, end) of `rows` (count values apart) at i, added in row order,
// by streaming stores (store_run). Summed and
// stored in one pass, not staged in scratch and copied.
template <typename Acc>
inline void stream_sum_rows(const Acc* rows, int64_t count, int64_t first, int64_t end, Acc* __restrict__ to) {
  const Acc* __restrict__ from = rows + first * count;
  const int64_t n = end - first;
  store_run(to, count, true, [&](int64_t i) {
    Acc sum = from[i];
    for (int64_t r = 1; r < n; ++r) sum += from[r * count + i];
    return sum;
  }, [&](int64_t i) {
    Lanes<Acc> sum = load_lanes(from + i);
    for (int64_t r = 1; r < n; ++r) sum += load_lanes(from + r * count + i);
    return sum;
  });
}

// Average-pool gradient of plane `plane`, owned by this call (acc: X values of scratch, or
// the gradient itself, see accumulator): the adjoint of avg_pool_plane. Per output row, its
// gradients over their divisors become one input-row column, gathered by pairs at stride 2
// (gradient_row_by_pairs), else spread over the innermost taps (phased) and merged; 1-D: that
// is the input row. Otherwise every output row's
// column is kept (s.columns); the columns of each output slice o0 are summed into its input
// rows (sum_covering_rows: the slice's share of every input slice), and each input slice is
// written once, as the sum of the covering output slices' shares, in output order (a scatter
// into zeros adds the same terms, but needs its zero-fill and read-modify-write passes).
// Slices, not rows: 3-D pooling's rows of 32 summed one by one spent half the gradient's time
// in per-row overhead (make bench's 3-D gradient on a Zen 4 EPYC at 1 thread: 1.15-1.8 -> 0.88-1.08
// ms). Written by streaming stores (make bench, 2-D step: 3.3x -> 4.0x torch's speed).
template <typename T, typename Acc>
inline void avg_pool_backward_plane(const T* grad_output, T* grad_input, Acc* acc, const PoolGeometry& g,
                                    const PoolScratch<Acc>& s, int64_t plane) {
  const int64_t X = g.image_numel(), O2 = g.out[2], X2 = g.image[2];
  T* dst = grad_input + plane * X;
  Acc* __restrict__ sum = accumulator(dst, acc);
  // With one input row per output row and back (1-D pooling), each row is merged in whole.
  const bool row_per_row = g.outer_identity();
  const T* go = grad_output + plane * g.out_numel();
  // The gradients' loads stalled (a tenth of 2-D pooling's gradient): asked for as the forwards' input is.
  const int64_t ahead = kPrefetchBytes / static_cast<int64_t>(sizeof(T));
  Acc* __restrict__ line = s.line;
  for_each_avg_row<Acc>(g, [&](int64_t row, int64_t lo0, int64_t hi0, int64_t lo1, int64_t hi1, Acc f01) {
    if (lo0 >= hi0 || lo1 >= hi1) return;  // a window of no input row reaches no input (nor is summed)
    prefetch_span(go + row * O2 + ahead, O2);
    divide_by_divisors(go + row * O2, s.shares, f01, s.factor, g);
    if (row_per_row) {
      gradient_row<false, T>(s.shares, static_cast<const PlanePos<Acc>*>(nullptr), g, s, sum + row * X2);
    } else if (!gradient_row_by_pairs<false>(s.shares, static_cast<const PlanePos<Acc>*>(nullptr), g, false,
                                             s.columns + row * X2)) {
      spread_shares<false>(s.shares, static_cast<const PlanePos<Acc>*>(nullptr), g, s.phased, line);
      phase_merge(line, g, s.phased, s.columns + row * X2);
    }
  });
  if (!row_per_row) {
    const CoveringRanges covering(g, s.covering, 2);
    const int64_t* first0 = covering.first[0];
    const int64_t* end0 = covering.end[0];
    const int64_t* first1 = covering.first[1];
    const int64_t* end1 = covering.end[1];
    const int64_t slice = g.image[1] * X2, columns = g.out[1] * X2;
    const bool stream = std::is_same<T, Acc>::value && s.stream;  // sum is the gradient itself
    // An input slice covered by one output slice (all of 2-D pooling's) takes its rows' sums
    // straight, not staged in s.slices and copied out (2-D gradient: 2.4 -> 2.2 ms at 1 thread).
    bool staged = false;
    for (int64_t x0 = 0; x0 < g.image[0]; ++x0) staged = staged || end0[x0] - first0[x0] > 1;
    for (int64_t o0 = 0; staged && o0 < g.out[0]; ++o0) {
      sum_covering_rows(s.columns + o0 * columns, first1, end1, g.image[1], X2, s.slices + o0 * slice);
    }
    for (int64_t x0 = 0; x0 < g.image[0]; ++x0) {
      if (end0[x0] - first0[x0] == 1) {
        sum_covering_rows(s.columns + first0[x0] * columns, first1, end1, g.image[1], X2, sum + x0 * slice, stream);
      } else if (stream && end0[x0] > first0[x0]) {
        stream_sum_rows(s.slices, slice, first0[x0], end0[x0], sum + x0 * slice);
      } else {
        sum_rows(s.slices, 1, slice, first0[x0], end0[x0], 0, 1, sum + x0 * slice);
      }
    }
  }
  if (s.stream) streaming_done();
  store_accumulated(sum, dst, X);
}

// ---------------------------------------------------------------- CPU channels_last engine
// Tensors (N, *spatial, C) in memory: every window tap is a contiguous run of C
// channels, so the loops over channels vectorise. position in [0, N * O).

// Input position (n, x0, x1, x2) of tap offset (x0, x1, x2) as a flat (N, X) index.
inline int64_t cl_image_index(const PoolGeometry& g, int64_t n, int64_t x0, int64_t x1, int64_t x2) {
  return ((n * g.image[0] + x0) * g.image[1] + x1) * g.image[2] + x2;
}

// The `count` values kPrefetchBytes past tap (x0, x1, x2) of image n's window rows [lo0, hi0) x
// [lo1, hi1) (dilation steps apart): what the windows that follow along x2 read (past a row's
// end, the next row's first). At least the next output row's stride of input rows ahead: in
// shorter rows, kPrefetchBytes on is a row the window already reads (3-D k3 s2 p1, 32 channels
// at 32 wide, 1 thread: max 0.62 -> 0.50 ms, average 0.67 -> 0.49).
template <typename T>
inline void prefetch_cl_rows_ahead(const T* input, const PoolGeometry& g, int64_t channels, int64_t n, int64_t lo0,
                                   int64_t hi0, int64_t lo1, int64_t hi1, int64_t x2, int64_t count) {
  const int64_t ahead =
      std::max(kPrefetchBytes / static_cast<int64_t>(sizeof(T)), g.stride[1] * g.image[2] * channels);
  for (int64_t x0 = lo0; x0 < hi0; x0 += g.dil[0]) {
    for (int64_t x1 = lo1; x1 < hi1; x1 += g.dil[1]) {
      prefetch_span(input + cl_image_index(g, n, x0, x1, x2) * channels + ahead, count);
    }
  }
}

inline void cl_output_coords(const PoolGeometry& g, int64_t position, int64_t* n, int64_t* o0, int64_t* o1,
                             int64_t* o2) {
  int64_t o[kMaxSpatial];
  *n = split_index(position, g.out, o);
  *o0 = o[0];
  *o1 = o[1];
  *o2 = o[2];
}

// Runs of a channels_last window's taps scanned side by side (max_of_sources' kChains): 3-D
// windows of 27 taps, 1.6 -> 0.73 ms warm.
constexpr int kChannelsLastChains = 4;

// The windows from o2 on along dim 2, at most `limit`, whose taps there all lie inside the
// input (at least 1: o2's): their taps are the same, a stride further on from one to the next.
inline int64_t cl_run_length(const PoolGeometry& g, int64_t o2, int64_t limit) {
  if (g.start(2, o2) < 0) return 1;
  const int64_t reach = (g.kernel[2] - 1) * g.dil[2];
  int64_t run = 1;
  while (run < limit && o2 + run < g.out[2] && g.start(2, o2 + run) + reach < g.image[2]) ++run;
  return run;
}

// The `count` channels from `from` on (fewer than a vector's lanes: those past the whole
// vectors) of a channels_last window, in one masked vector: the taps in scan order, the first
// maximum or the first NaN and its code, as max_of_sources. Value by value, a (64, 6, 28, 28)
// max_pool2d took 1.4 ms at 1 thread, 6x the NCHW forms and 1.7x torch. (Folded into
// max_of_sources as a masked last pass, the passes with tap codes ran 2x slower: channels_last
// 64-channel max_pool2d with indices 0.39 -> 0.83 ms.)
template <typename Acc>
inline void max_of_channel_tail(const MaxSources<Acc>& src, int64_t taps, PlanePos<Acc> first, int64_t from,
                                int64_t count, Acc* best, PlanePos<Acc>* best_at) {
  const int lanes = static_cast<int>(count);
  Lanes<Acc> b = splat(lowest<Acc>());
  Lanes<PlanePos<Acc>> at = splat(first);
  for (int64_t j = 0; j < taps; ++j) {
    const Lanes<Acc> v = load_first_lanes(src.from[j] + from, lanes);
    const auto take = (v > b) | (v != v);
    b = take ? v : b;
    at = take ? splat(src.base[j]) : at;
  }
  store_first_lanes(best + from, b, lanes);
  store_first_lanes(best_at + from, at, lanes);
}

// Output positions [begin, end) of max pooling, every channel. Where T is its own
// accumulator (float, double), whole vectors of channels go through max_of_sources, each
// kept in registers across the window's taps (its sources: the taps' runs of channels, in
// scan order, with their codes); the other channels (and half types) scan in memory. The
// sources are set up for the first window of each run (cl_run_length) and moved a stride on
// for the others: set up window by window, they cost as much as the maxima (3-D k3 s2 p1,
// 32 channels: the forward 0.78 -> 0.48 ms at 1 thread). With `stream`, the output and
// argmax are written by streaming stores (the caller ends with streaming_done()); so is
// average pooling's below.
template <typename T, typename Acc, typename Index>
inline void max_pool_cl_positions(const T* input, T* output, Index* argmax, Acc* best, PlanePos<Acc>* best_at,
                                  const MaxSources<Acc>& src, int64_t channels, const PoolGeometry& g,
                                  int64_t begin, int64_t end, bool stream) {
  using Pos = PlanePos<Acc>;
  // Moving a window a stride on along dim 2 moves its positions (not its tap codes) as far.
  const Pos code_step = sizeof(Index) == 1 ? 0 : static_cast<Pos>(g.stride[2]);
  const int64_t vectors = std::is_same<T, Acc>::value ? channels - channels % kLanes<Acc> : 0;
  const int64_t step = g.stride[2] * channels;
  for (int64_t position = begin; position < end;) {
    int64_t n, o0, o1, o2;
    cl_output_coords(g, position, &n, &o0, &o1, &o2);
    const int64_t run = cl_run_length(g, o2, end - position);
    const int64_t f0 = g.first_inside(0, o0), f1 = g.first_inside(1, o1), f2 = g.first_inside(2, o2);
    const int64_t e0 = g.inside_end(0, o0), e1 = g.inside_end(1, o1), e2 = g.inside_end(2, o2);
    Pos first = static_cast<Pos>(first_argmax_code<Index>(g, o0, o1, o2));
    const int64_t first_k0 = g.first_tap(0, o0), first_k1 = g.first_tap(1, o1), first_k2 = g.first_tap(2, o2);
    int64_t taps = 0;  // src.from[j]: tap j's channels (for half types their T values, read back as T below)
    for (int64_t x0 = f0, k0 = first_k0; x0 < e0; x0 += g.dil[0], ++k0) {
      for (int64_t x1 = f1, k1 = first_k1; x1 < e1; x1 += g.dil[1], ++k1) {
        for (int64_t x2 = f2, k2 = first_k2; x2 < e2; x2 += g.dil[2], ++k2, ++taps) {
          src.from[taps] = reinterpret_cast<const Acc*>(input + cl_image_index(g, n, x0, x1, x2) * channels);
          if (argmax != nullptr) src.base[taps] = static_cast<Pos>(tap_code<Index>(g, x0, x1, x2, k0, k1, k2));
        }
      }
    }
    for (int64_t w = 0; w < run; ++w) {
      if (w > 0) {  // the next window along dim 2
        for (int64_t j = 0; j < taps; ++j) {
          src.from[j] = reinterpret_cast<const Acc*>(reinterpret_cast<const T*>(src.from[j]) + step);
          src.base[j] += code_step;
        }
        first += code_step;
      }
      if (e2 > f2) prefetch_cl_rows_ahead(input, g, channels, n, f0, e0, f1, e1, e2 - 1 + w * g.stride[2], step);
      if (argmax != nullptr) {
        max_of_sources<true, false, kChannelsLastChains>(src, taps, first, nullptr, vectors, best, best_at);
      } else {
        max_of_sources<false, false, kChannelsLastChains>(src, taps, first, nullptr, vectors, best, best_at);
      }
      if constexpr (std::is_same<T, Acc>::value) {
        if (vectors < channels) max_of_channel_tail(src, taps, first, vectors, channels - vectors, best, best_at);
      } else {
        for (int64_t c = 0; c < channels; ++c) {
          best[c] = lowest<Acc>();
          best_at[c] = first;
        }
        for (int64_t j = 0; j < taps; ++j) {
          const T* __restrict__ tap = reinterpret_cast<const T*>(src.from[j]);
          const Pos here = src.base[j];
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
      const int64_t at = (position + w) * channels;
      write_out(best, output + at, channels, stream);
      if (argmax != nullptr) write_out(best_at, argmax + at, channels, stream);
    }
    position += run;
  }
}

// sum[c] = finish(from[0][c] + from[1][c] + ... + from[n - 1][c]), added in that order from
// zero, for c < count: kSumBlock whole vectors of channels side by side, then vector by
// vector, then the last channels in one masked vector. finish maps each vector of sums as
// it is stored (average pooling's division: a pass of its own over the sums, and one more
// to copy them out, made make bench's channels_last 2-D forward 3-6% slower).
constexpr int kSumBlock = 4;

// sum_of_sources' default finish: the sums as they are.
struct KeepSums {
  template <typename V>
  V operator()(V sums) const { return sums; }
};

template <typename Acc, typename Finish = KeepSums>
inline void sum_of_sources(const Acc* const* __restrict__ from, int64_t n, int64_t count, Acc* __restrict__ sum,
                           Finish&& finish = {}) {
  constexpr int64_t lanes = kLanes<Acc>;
  // width.value vectors from c on; with `partial`, one vector of its first `rest` lanes.
  const auto vectors = [&](int64_t c, auto width, auto partial, int rest = static_cast<int>(kLanes<Acc>)) {
    constexpr bool kPartial = decltype(partial)::value;
    Lanes<Acc> acc[width.value];
    for (int b = 0; b < width.value; ++b) acc[b] = Lanes<Acc>{};
    for (int64_t j = 0; j < n; ++j) {
      for (int b = 0; b < width.value; ++b) acc[b] += load_some_lanes<kPartial>(from[j] + c + b * lanes, rest);
    }
    for (int b = 0; b < width.value; ++b) store_some_lanes<kPartial>(sum + c + b * lanes, finish(acc[b]), rest);
  };
  using One = std::integral_constant<int, 1>;
  int64_t c = 0;
  for (; c + kSumBlock * lanes <= count; c += kSumBlock * lanes) {
    vectors(c, std::integral_constant<int, kSumBlock>{}, std::false_type{});
  }
  for (; c + lanes <= count; c += lanes) vectors(c, One{}, std::false_type{});
  // value by value, a (64, 6, 28, 28) channels_last gradient took 3x the NCHW form's time
  if (c < count) vectors(c, One{}, std::true_type{}, static_cast<int>(count - c));
}

// One output row (n, o0, o1) of average pooling: the outer window bounds and divisor
// factors are found once per row, the innermost per column. Where T is its own accumulator,
// each window's taps are summed and divided by sum_of_sources, whole vectors of channels side
// by side over the taps (a vector at a time over all the taps, their addresses found again
// for each, took twice the instructions: channels_last 2-D make bench forward 0.92x torch on
// AVX2); half types are summed in memory, the same sums in the same order. from: room for
// g.taps() sources; sum: for C values.
template <typename T, typename Acc>
inline void avg_pool_cl_row(const T* input, T* output, const Acc** from, Acc* sum, int64_t channels,
                            const PoolGeometry& g, int64_t row, bool stream) {
  const int64_t o1 = row % g.out[1], o0 = (row / g.out[1]) % g.out[0], n = row / (g.out[1] * g.out[0]);
  int64_t lo0, hi0, lo1, hi1;
  const int64_t f01 = g.avg_window(0, o0, &lo0, &hi0) * g.avg_window(1, o1, &lo1, &hi1);
  T* dst = output + row * g.out[2] * channels;
  for (int64_t o2 = 0; o2 < g.out[2]; ++o2, dst += channels) {
    int64_t lo2, hi2;
    const int64_t f2 = g.avg_window(2, o2, &lo2, &hi2);
    const int64_t d = g.divisor_override != 0 ? g.divisor_override : f01 * f2;
    const Acc divisor = static_cast<Acc>(d);
    if (hi2 > lo2) {
      prefetch_cl_rows_ahead(input, g, channels, n, lo0, hi0, lo1, hi1, hi2 - 1, g.stride[2] * channels);
    }
    const auto window = [&](auto&& visit) {
      for (int64_t x0 = lo0; x0 < hi0; ++x0) {
        for (int64_t x1 = lo1; x1 < hi1; ++x1) {
          const T* tap = input + cl_image_index(g, n, x0, x1, lo2) * channels;
          for (int64_t x2 = lo2; x2 < hi2; ++x2, tap += channels) visit(tap);
        }
      }
    };
    Acc* __restrict__ acc = sums_to(dst, sum, stream);
    if constexpr (std::is_same<T, Acc>::value) {
      int64_t taps = 0;
      window([&](const T* tap) { from[taps++] = tap; });
      const Lanes<Acc> by = splat(divisor);
      sum_of_sources(from, taps, channels, acc, [&](Lanes<Acc> s) { return d != 0 ? s / by : Lanes<Acc>{}; });
    } else {
      for (int64_t c = 0; c < channels; ++c) acc[c] = Acc(0);
      window([&](const T* __restrict__ tap) {
#pragma omp simd
        for (int64_t c = 0; c < channels; ++c) acc[c] += static_cast<Acc>(tap[c]);
      });
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) acc[c] = d != 0 ? acc[c] / divisor : Acc(0);
    }
    write_sums(acc, dst, channels, stream);
  }
}

// The gradient of image n from tap codes, gathered, where T is its own accumulator and no
// window is dilated: each input position's channels are the sum, over the windows covering
// it in output order, of each window's output gradient where its code names this position's
// tap, from zero; the scatter below adds the same values in the same order, so its bits (a
// window that does not pick the position adds +0, which changes no sum that starts at +0).
// Each position is written once, a vector of channels at a time, with no zero-fill first:
// make bench's channels_last 2-D max pooling gradient, 5.3 ms by the scatter's one channel
// at a time, 4.1-4.4 ms so at 1 thread on a Zen 3 EPYC (AVX2; torch 5.3-6.0). Finding each
// position's windows costs more than their vectors of channels save where a position has few:
// channels_last 3-D max pooling's gradient (32 channels, 4 AVX2 vectors) went from 3.2 to 3.7-3.9
// ms; there, and below kGatherMinVectors vectors of channels, the scatter stays.
constexpr int64_t kGatherMinVectors = 8;

template <typename T>
inline void max_pool_backward_cl_gather(const T* grad_output, const uint8_t* codes, T* grad_input, int64_t channels,
                                        const PoolGeometry& g, const GatherScratch& s, int64_t n) {
  using Code = PlanePos<T>;  // LaneIndex<T>'s lanes
  const int64_t O = g.out_numel(), vectors = channels - channels % kLanes<T>;
  const T* go = grad_output + n * O * channels;
  const uint8_t* at = codes + n * O * channels;
  const CoveringRanges covering(g, s.covering);
  const int64_t* const* first = covering.first;
  const int64_t* const* end = covering.end;
  T* dst = grad_input + n * g.image_numel() * channels;
  for (int64_t x0 = 0; x0 < g.image[0]; ++x0) {
    for (int64_t x1 = 0; x1 < g.image[1]; ++x1) {
      // The windows covering row (x0, x1) along dims 0 and 1: their output rows and taps there.
      int64_t rows = 0;
      for (int64_t o0 = first[0][x0]; o0 < end[0][x0]; ++o0) {
        for (int64_t o1 = first[1][x1]; o1 < end[1][x1]; ++o1, ++rows) {
          s.row_offset[rows] = (o0 * g.out[1] + o1) * g.out[2] * channels;
          s.row_tap[rows] = ((x0 - g.start(0, o0)) * g.kernel[1] + x1 - g.start(1, o1)) * g.kernel[2];
        }
      }
      for (int64_t x2 = 0; x2 < g.image[2]; ++x2, dst += channels) {
        int64_t windows = 0;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t o2 = first[2][x2]; o2 < end[2][x2]; ++o2, ++windows) {
            s.offset[windows] = s.row_offset[r] + o2 * channels;  // of both its gradient and its codes
            s.tap[windows] = s.row_tap[r] + x2 - g.start(2, o2);
          }
        }
        for (int64_t c = 0; c < vectors; c += kLanes<T>) {
          Lanes<T> sum{};
          for (int64_t j = 0; j < windows; ++j) {
            const int64_t off = s.offset[j] + c;
            const auto picked = load_byte_lanes<T>(at + off) == static_cast<Code>(s.tap[j]) - LaneIndex<T>{};
            sum += picked ? load_lanes(go + off) : Lanes<T>{};
          }
          store_lanes(dst + c, sum);
        }
        for (int64_t c = vectors; c < channels; ++c) {
          T sum = T(0);
          for (int64_t j = 0; j < windows; ++j) {
            const int64_t off = s.offset[j] + c;
            sum += at[off] == s.tap[j] ? go[off] : T(0);
          }
          dst[c] = sum;
        }
      }
    }
  }
}

// Gradients of image n, owned by this call: each output gradient is added where it came from,
// as max_pool_backward_plane does with one channel. One helper for both (channels a
// compile-time 1 for the planes, the checks in either order) made the NCHW scatter 1.5-1.9x
// slower, even forced inline, so the two loops stay apart.
template <typename T, typename Acc, typename Index>
inline void max_pool_backward_cl_image(const T* grad_output, const Index* argmax, const int64_t* tap_offset,
                                       T* grad_input, Acc* acc, int64_t channels, const PoolGeometry& g,
                                       const GatherScratch& gather, int64_t n) {
  if constexpr (sizeof(Index) == 1 && std::is_same<T, Acc>::value) {
    if (g.dil[0] == 1 && g.dil[1] == 1 && g.dil[2] == 1 && channels >= kGatherMinVectors * kLanes<T>) {
      max_pool_backward_cl_gather(grad_output, argmax, grad_input, channels, g, gather, n);
      return;
    }
  }
  const int64_t X = g.image_numel(), O = g.out_numel();
  T* dst = grad_input + n * X * channels;
  Acc* sum = accumulator(dst, acc);
  LazyZeroRows<Index, Acc> zero(sum, g.image[2] * channels, g.image[0] * g.image[1]);
  const T* go = grad_output + n * O * channels;
  const Index* at = argmax + n * O * channels;
  if constexpr (sizeof(Index) == 1) {
    // Each code's offset from the window's origin, times the channels; codes that name no tap
    // land far off the image. One table lookup and one range check per channel, where
    // argmax_position's checks and multiply took twice the instructions (channels_last 3-D
    // max pooling's gradient, make bench's shape, at 2 threads: 0.46 ms, torch's 0.3).
    int64_t scaled[256];
    const int64_t taps = g.taps();
    constexpr int64_t kOffImage = std::numeric_limits<int64_t>::min() / 2;
    for (int64_t k = 0; k < 256; ++k) scaled[k] = k < taps ? tap_offset[k] * channels : kOffImage;
    const uint64_t end = static_cast<uint64_t>(X * channels);
    for_each_window(g, [&](int64_t rows) { zero.to(rows); }, [&](int64_t o, int64_t origin) {
      const Index* code = at + o * channels;
      const T* grad = go + o * channels;
      const int64_t base = origin * channels;
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t x = base + scaled[code[c]] + c;
        if (static_cast<uint64_t>(x) < end) sum[x] += static_cast<Acc>(grad[c]);
      }
    });
  } else {
    const bool any_outside = g.any_window_outside();  // see max_pool_backward_plane
    for_each_window(g, [&](int64_t end) { zero.to(end); }, [&](int64_t o, int64_t origin) {
      if (any_outside && output_outside(g, o)) return;
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t x = argmax_position(at[o * channels + c], g, origin, tap_offset);
        if (x >= 0) sum[x * channels + c] += static_cast<Acc>(go[o * channels + c]);
      }
    });
  }
  zero.to(zero.rows);
  store_accumulated(sum, dst, X * channels);
}

// The gradient of image n, gathered (the adjoint of avg_pool_cl_row): first every output
// gradient over its divisor, share (O * C values: the shares torch's scatter adds), then
// each input position's channels, the sum of the shares of the windows covering it, in
// output order (torch's order of adds, so its bits) and written once, by streaming stores
// where `stream` (the caller ends with streaming_done()). The scatter it replaced (zero the
// image, then add each window's share to its taps) took as long on make bench's shapes,
// whose images stay in L3, both bound by writing the gradient; this needs no image-sized
// accumulator for half types. from: room for g.taps() sources; sum: for C values; gather:
// its covering.
template <typename T, typename Acc>
inline void avg_pool_backward_cl_image(const T* grad_output, T* grad_input, Acc* share, Acc* sum, const Acc** from,
                                       const GatherScratch& gather, int64_t channels, const PoolGeometry& g, int64_t n,
                                       bool stream) {
  const int64_t O = g.out_numel();
  const T* go = grad_output + n * O * channels;
  for (int64_t o0 = 0, o = 0; o0 < g.out[0]; ++o0) {
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
      for (int64_t o2 = 0; o2 < g.out[2]; ++o2, ++o) {
        const int64_t d = g.avg_divisor(o0, o1, o2);
        const Acc divisor = static_cast<Acc>(d);
        Acc* __restrict__ to = share + o * channels;
        const T* __restrict__ g_o = go + o * channels;
#pragma omp simd
        for (int64_t c = 0; c < channels; ++c) to[c] = d != 0 ? static_cast<Acc>(g_o[c]) / divisor : Acc(0);
      }
    }
  }
  const CoveringRanges covering(g, gather.covering);
  const int64_t* const* first = covering.first;
  const int64_t* const* end = covering.end;
  T* dst = grad_input + n * g.image_numel() * channels;
  for (int64_t x0 = 0; x0 < g.image[0]; ++x0) {
    for (int64_t x1 = 0; x1 < g.image[1]; ++x1) {
      for (int64_t x2 = 0; x2 < g.image[2]; ++x2, dst += channels) {
        int64_t sources = 0;
        for (int64_t o0 = first[0][x0]; o0 < end[0][x0]; ++o0) {
          for (int64_t o1 = first[1][x1]; o1 < end[1][x1]; ++o1) {
            const Acc* row = share + (o0 * g.out[1] + o1) * g.out[2] * channels;
            for (int64_t o2 = first[2][x2]; o2 < end[2][x2]; ++o2) from[sources++] = row + o2 * channels;
          }
        }
        Acc* to = sums_to(dst, sum, stream);
        sum_of_sources(from, sources, channels, to);
        write_sums(to, dst, channels, stream);
      }
    }
  }
}

// ---------------------------------------------------------------- global average pooling
// The sum of values [begin, begin + count), lane by lane: read as the vector-aligned runs
// holding them, the lanes outside the range zeroed. A plane of a few dozen values (7x7)
// seldom starts on a vector, and loads of it that split cache lines made the mean 30% slower
// in AVX-512; aligned, each line is read whole once. The runs never cross a page, so the
// lanes read past either end of the tensor are readable (and never added).
template <typename Acc>
inline Lanes<Acc> aligned_run_sum(const Acc* begin, int64_t count) {
  constexpr int64_t n = kLanes<Acc>;
  using Index = typename LaneIndexOf<Acc>::Index;
  LaneIndex<Acc> lane;
  for (int i = 0; i < n; ++i) lane[i] = i;
  const Acc* end = begin + count;
  const Acc* run = reinterpret_cast<const Acc*>(reinterpret_cast<uintptr_t>(begin) & ~uintptr_t(kVectorBytes - 1));
  const Lanes<Acc> zero{};
  const auto keep = (lane >= static_cast<Index>(begin - run)) & (lane < static_cast<Index>(min64(end - run, n)));
  Lanes<Acc> sum = keep ? load_lanes(run) : zero;
  for (run += n; run + n <= end; run += n) sum += load_lanes(run);
  if (run < end) sum += lane < static_cast<Index>(end - run) ? load_lanes(run) : zero;
  return sum;
}

// CPU: out[p] = the mean of contiguous plane p, for `planes` planes (one call for many:
// with a call per 7x7 plane, make bench had 0.99x torch's speed; 1.1x so). Where T is its own
// accumulator, n planes at a time: each plane's aligned_run_sum, the n sums across lanes by
// fold_row_sums; a plane's bits do not depend on which planes share its block (so neither on
// the thread count). Each block asks for the values kPrefetchBytes past it: the loads stalled
// on memory, make bench's (64, 2048, 7, 7) forward went 2.04 -> 1.37 ms at 1 thread and
// 1.38 -> 0.93 at 2 (torch's 2.16 and 1.44 in the same runs, in shuffled order).
template <typename T, typename Acc>
inline void plane_means(const T* planes_in, T* out, int64_t planes, int64_t positions) {
  constexpr int n = kLanes<Acc>;
  const int64_t ahead = kPrefetchBytes / static_cast<int64_t>(sizeof(T));
  if constexpr (std::is_same_v<T, Acc>) {
    for (int64_t first = 0; first < planes; first += n) {
      const int64_t rows = min64(n, planes - first);
      prefetch_span(planes_in + first * positions + ahead, rows * positions);
      Lanes<Acc> sums[n];
      for (int r = 0; r < n; ++r) {
        sums[r] = r < rows ? aligned_run_sum(planes_in + (first + r) * positions, positions) : Lanes<Acc>{};
      }
      fold_row_sums<Acc>(sums);
      for (int r = 0; r < rows; ++r) out[first + r] = sums[0][r] / static_cast<Acc>(positions);
    }
    return;
  }
  for (int64_t p = 0; p < planes; ++p) {
    const T* plane = planes_in + p * positions;
    prefetch_span(plane + ahead, positions);
    Acc sum = Acc(0);
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < positions; ++i) sum += static_cast<Acc>(plane[i]);
    out[p] = static_cast<T>(sum / static_cast<Acc>(positions));
  }
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

// CPU, the gradient of plane_means: planes of `positions` values, plane p all
// grad[p] / positions, built in an L1 buffer and written by write_out (streaming where
// `stream`: the fresh gradient is the op's whole cost).
template <typename T, typename Acc>
inline void plane_fills(const T* grad, T* out, int64_t planes, int64_t positions, bool stream) {
  constexpr int64_t kChunk = 2048;
  T buffer[kChunk];
  int64_t filled = 0;
  for (int64_t p = 0; p < planes; ++p) {
    const T value = static_cast<T>(static_cast<Acc>(grad[p]) / static_cast<Acc>(positions));
    for (int64_t s = 0; s < positions;) {
      const int64_t run = min64(positions - s, kChunk - filled);
      for (int64_t i = 0; i < run; ++i) buffer[filled + i] = value;
      filled += run;
      s += run;
      if (filled == kChunk) {
        write_out(buffer, out, kChunk, stream);
        out += kChunk;
        filled = 0;
      }
    }
  }
  write_out(buffer, out, filled, stream);
  if (stream) streaming_done();
}

// CPU, channels_last, the gradient of image_channel_means for one image: each of its
// `positions` rows of C channels is grad[c] / positions (row: C values of scratch).
template <typename T, typename Acc>
inline void image_channel_fills(const T* grad, T* out, T* row, int64_t channels, int64_t positions, bool stream) {
  const Acc count = static_cast<Acc>(positions);
  for (int64_t c = 0; c < channels; ++c) row[c] = static_cast<T>(static_cast<Acc>(grad[c]) / count);
  for (int64_t s = 0; s < positions; ++s) write_out(row, out + s * channels, channels, stream);
  if (stream) streaming_done();
}

template <typename T, typename Acc, typename Index>
MaxPoolCpuForms<T, Acc, Index> max_pool_cpu_forms() {
  return {&max_pool_plane<T, Acc, Index>, &max_pool_backward_plane<T, Acc, Index>,
          &max_pool_cl_positions<T, Acc, Index>, &max_pool_backward_cl_image<T, Acc, Index>};
}

// Every CPU form of this instruction set, for the launchers.
template <typename T, typename Acc>
PoolCpuKernels<T, Acc> pool_cpu_kernels() {
  return {max_pool_cpu_forms<T, Acc, int64_t>(), max_pool_cpu_forms<T, Acc, uint8_t>(), &max_pool_backward_rows<T, Acc>,
          &avg_pool_plane<T, Acc>, &avg_pool_backward_plane<T, Acc>, &avg_pool_cl_row<T, Acc>,
          &avg_pool_backward_cl_image<T, Acc>,
          &plane_means<T, Acc>, &image_channel_means<T, Acc>, &plane_fills<T, Acc>, &image_channel_fills<T, Acc>};
}

}  // namespace CONVOPS_CPU_ISA
}  // namespace kernels
}  // namespace convops
