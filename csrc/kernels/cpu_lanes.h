// This copy's vectors (cpu_isa.h), torch-free: GCC vector types as wide as the copy's
// registers (Lanes<T>, kLanes<T> values of T), their loads and stores at any alignment,
// and the lane shuffles (transposes, sums across lanes) and fused multiply-add the CPU forms
// build on.
//
// Compiled once per instruction set, in the inline namespace CONVOPS_CPU_ISA.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__)
#include <immintrin.h>  // cpu_copy.h includes it first, before its target pragma
#endif

#include "cpu_isa.h"

namespace convops {
namespace kernels {
inline namespace CONVOPS_CPU_ISA {

// This copy's vector registers: how wide, and how many. (Named by the copy: in C++, GCC's
// target pragma does not define the ISA macros such as __AVX512F__.)
constexpr CpuIsa kThisCopy = CONVOPS_CPU_ISA_ENUM;
constexpr int kVectorBytes = kThisCopy == CpuIsa::kAvx512 ? 64 : kThisCopy == CpuIsa::kAvx2 ? 32 : 16;
constexpr int kVectorRegisters = kThisCopy == CpuIsa::kAvx512 ? 32 : 16;

template <typename T>
struct LanesOf {
  typedef T type __attribute__((vector_size(kVectorBytes)));
};
template <typename T>
using Lanes = typename LanesOf<T>::type;
template <typename T>
constexpr int kLanes = kVectorBytes / sizeof(T);

template <typename T>
inline Lanes<T> load_lanes(const T* from) {
  Lanes<T> v;
  std::memcpy(&v, from, sizeof(v));
  return v;
}

// Stored as a T vector at T's alignment, not by memcpy: a memcpy may write any object, so
// GCC reloaded every pointer a loop keeps in memory after each store (a lambda's captures,
// twice per vector of the stride-2 max-pool rows).
template <typename T>
struct UnalignedLanesOf {
  typedef T type __attribute__((vector_size(kVectorBytes), aligned(sizeof(T))));
};

template <typename T>
inline void store_lanes(T* to, Lanes<T> v) {
  *reinterpret_cast<typename UnalignedLanesOf<T>::type*>(to) = v;
}

// Every lane `value`: one broadcast (x - 0 is x, -0 and NaN included). Set lane by lane, GCC
// built the vector by masked broadcasts, one per lane, where the splat was not hoisted.
template <typename T>
inline Lanes<T> splat(T value) {
  return value - Lanes<T>{};
}

// Integer lanes as wide as T's, to pick lanes with.
template <typename T>
struct LaneIndexOf {
  using Index = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
  typedef Index type __attribute__((vector_size(kVectorBytes)));
};
template <typename T>
using LaneIndex = typename LaneIndexOf<T>::type;

// Whether any lane of a comparison's result (all ones: true, 0: false) is true.
template <typename Mask>
inline bool any_lane(Mask mask) {
#if defined(__x86_64__)
  if constexpr (sizeof(Mask) == 64) {
    return _mm512_test_epi32_mask((__m512i)mask, (__m512i)mask) != 0;
  } else if constexpr (sizeof(Mask) == 32) {
    return !_mm256_testz_si256((__m256i)mask, (__m256i)mask);
  } else {
    return _mm_movemask_epi8((__m128i)mask) != 0;
  }
#else
  for (int i = 0; i < static_cast<int>(sizeof(Mask) / sizeof(mask[0])); ++i) {
    if (mask[i] != 0) return true;
  }
  return false;
#endif
}

// Lanes 0, 2, 4, ... of the 2 * kLanes values a, b (one permute in the AVX-512 copy).
template <typename T>
inline Lanes<T> even_lanes(Lanes<T> a, Lanes<T> b) {
  LaneIndex<T> pick;
  for (int i = 0; i < kLanes<T>; ++i) pick[i] = 2 * i;
  return __builtin_shuffle(a, b, pick);
}

// from[0], from[2], ..., from[2 * kLanes - 2]: every other value of 2 * kLanes, read in place
// (it reads from[2 * kLanes - 1] too).
template <typename T>
inline Lanes<T> load_even_lanes(const T* from) {
  return even_lanes<T>(load_lanes(from), load_lanes(from + kLanes<T>));
}

// The sequence a[0], b[0], a[1], b[1], ...: its first kLanes values (Half 0) or its last (Half 1).
template <int Half, typename T>
inline Lanes<T> interleaved_lanes(Lanes<T> a, Lanes<T> b) {
  LaneIndex<T> pick;
  for (int i = 0; i < kLanes<T>; ++i) pick[i] = (i % 2) * kLanes<T> + Half * kLanes<T> / 2 + i / 2;
  return __builtin_shuffle(a, b, pick);
}

// The lanes kShift in [-1, 1] on from those of v[1], in the run v[0], v[1], v[2]: lane i is
// lane i + kShift of v[1], past its ends v[0]'s last or v[2]'s first.
template <int kShift, typename T>
inline Lanes<T> shifted_lanes(const Lanes<T> (&v)[3]) {
  static_assert(kShift >= -1 && kShift <= 1, "shifted_lanes: by at most one lane");
  if constexpr (kShift == 0) {
    return v[1];
  } else {
    constexpr int n = kLanes<T>;
    LaneIndex<T> pick;
    for (int i = 0; i < n; ++i) pick[i] = kShift > 0 ? i + 1 : n - 1 + i;
    return kShift > 0 ? __builtin_shuffle(v[1], v[2], pick) : __builtin_shuffle(v[0], v[1], pick);
  }
}

// The run v[0], v[1], v[2] moved on a vector: the current one becomes the previous, the next
// the current (v[2] is the caller's to load).
template <typename V>
inline void roll_lanes(V (&v)[3]) {
  v[0] = v[1];
  v[1] = v[2];
}

// Stores v at `to`, aligned to a vector, by a streaming store (a plain one off x86-64).
template <typename T>
inline void stream_lanes(T* to, Lanes<T> v) {
#if defined(__x86_64__)
  if constexpr (kVectorBytes == 64) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(to), (__m512i)v);
  } else if constexpr (kVectorBytes == 32) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(to), (__m256i)v);
  } else {
    _mm_stream_si128(reinterpret_cast<__m128i*>(to), (__m128i)v);
  }
#else
  store_lanes(to, v);
#endif
}

// The kLanes<T> bytes at `from`, each zero-extended to a lane of LaneIndex<T> (one widening
// load; GCC built __builtin_convertvector's from a byte at a time).
template <typename T>
inline LaneIndex<T> load_byte_lanes(const uint8_t* from) {
#if defined(__x86_64__)
  const auto bytes = [&](auto count) {  // the first count.value bytes of a 16-byte vector
    int64_t low = 0;
    std::memcpy(&low, from, count.value);
    return _mm_cvtsi64_si128(low);
  };
  if constexpr (kVectorBytes == 64 && sizeof(T) == 4) {
    return (LaneIndex<T>)_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(from)));
  } else if constexpr (kVectorBytes == 64) {
    return (LaneIndex<T>)_mm512_cvtepu8_epi64(bytes(std::integral_constant<int, 8>{}));
  } else if constexpr (kVectorBytes == 32 && sizeof(T) == 4) {
    return (LaneIndex<T>)_mm256_cvtepu8_epi32(bytes(std::integral_constant<int, 8>{}));
  } else if constexpr (kVectorBytes == 32) {
    return (LaneIndex<T>)_mm256_cvtepu8_epi64(bytes(std::integral_constant<int, 4>{}));
  }
#endif
  LaneIndex<T> v;
  for (int i = 0; i < kLanes<T>; ++i) v[i] = from[i];
  return v;
}

// Lanes i < count (0 <= count <= kLanes) all ones, the others 0: a masked load's or store's mask.
template <typename T>
inline LaneIndex<T> first_lanes_mask(int count) {
  LaneIndex<T> lane;
  for (int i = 0; i < kLanes<T>; ++i) lane[i] = i;
  return lane < count;
}

// The `count` values at `from` in the first lanes, the others 0, reading nothing past them
// (masked loads on x86-64, which do not fault on the lanes left out).
template <typename T>
inline Lanes<T> load_first_lanes(const T* from, int count) {
#if defined(__x86_64__)
  if constexpr (kVectorBytes == 64) {
    const auto mask = static_cast<uint16_t>((1u << count) - 1);
    if constexpr (sizeof(T) == 4) return (Lanes<T>)_mm512_maskz_loadu_ps(mask, from);
    if constexpr (sizeof(T) == 8) return (Lanes<T>)_mm512_maskz_loadu_pd(static_cast<uint8_t>(mask), from);
  } else if constexpr (kVectorBytes == 32) {
    const auto mask = (__m256i)first_lanes_mask<T>(count);
    if constexpr (sizeof(T) == 4) return (Lanes<T>)_mm256_maskload_ps(reinterpret_cast<const float*>(from), mask);
    if constexpr (sizeof(T) == 8) return (Lanes<T>)_mm256_maskload_pd(reinterpret_cast<const double*>(from), mask);
  }
#endif
  Lanes<T> v{};
  for (int i = 0; i < count; ++i) v[i] = from[i];
  return v;
}

// Stores the first `count` lanes of v at `to`, writing nothing past them.
template <typename T>
inline void store_first_lanes(T* to, Lanes<T> v, int count) {
#if defined(__x86_64__)
  if constexpr (kVectorBytes == 64) {
    const auto mask = static_cast<uint16_t>((1u << count) - 1);
    if constexpr (sizeof(T) == 4) return _mm512_mask_storeu_ps(to, mask, (__m512)v);
    if constexpr (sizeof(T) == 8) return _mm512_mask_storeu_pd(to, static_cast<uint8_t>(mask), (__m512d)v);
  } else if constexpr (kVectorBytes == 32) {
    const auto mask = (__m256i)first_lanes_mask<T>(count);
    if constexpr (sizeof(T) == 4) return _mm256_maskstore_ps(reinterpret_cast<float*>(to), mask, (__m256)v);
    if constexpr (sizeof(T) == 8) return _mm256_maskstore_pd(reinterpret_cast<double*>(to), mask, (__m256d)v);
  }
#endif
  for (int i = 0; i < count; ++i) to[i] = v[i];
}

// load_lanes, or with kPartial load_first_lanes(from, count): one loop body for the whole
// vectors of a run and its last, partial one.
template <bool kPartial, typename T>
inline Lanes<T> load_some_lanes(const T* from, int count) {
  if constexpr (kPartial) return load_first_lanes(from, count);
  return load_lanes(from);
}

template <bool kPartial, typename T>
inline void store_some_lanes(T* to, Lanes<T> v, int count) {
  if constexpr (kPartial) return store_first_lanes(to, v, count);
  store_lanes(to, v);
}

// Whether `to` is aligned to a vector, as a streaming store needs.
template <typename T>
inline bool vector_aligned(const T* to) {
  return reinterpret_cast<uintptr_t>(to) % kVectorBytes == 0;
}

// to[i] = value(i) for i < count; where whole vectors fit, lanes i .. i + kLanes - 1 at once,
// vector(i). With `stream`, by streaming stores from where `to` is aligned to a vector (the
// values before it one by one, as the last ones); callers end with streaming_done() before
// anyone reads what they wrote.
template <typename T, typename Value, typename Vector>
inline void store_run(T* __restrict__ to, int64_t count, bool stream, Value&& value, Vector&& vector) {
  constexpr int n = kLanes<T>;
  int64_t i = 0;
  for (; stream && i < count && !vector_aligned(to + i); ++i) to[i] = value(i);
  for (; i + n <= count; i += n) {
    if (stream) {
      stream_lanes(to + i, vector(i));
    } else {
      store_lanes(to + i, vector(i));
    }
  }
  for (; i < count; ++i) to[i] = value(i);
}

// to[i] = from[i] (converted) for i < count, by streaming stores where `to` is aligned to
// a vector (store_run).
template <typename From, typename To>
inline void stream_copy(const From* __restrict__ from, To* __restrict__ to, int64_t count) {
  if constexpr (std::is_arithmetic_v<From> && std::is_arithmetic_v<To>) {
    store_run(to, count, true, [&](int64_t i) { return static_cast<To>(from[i]); }, [&](int64_t i) {
      Lanes<To> v;
      for (int k = 0; k < kLanes<To>; ++k) v[k] = static_cast<To>(from[i + k]);
      return v;
    });
  } else {
    for (int64_t i = 0; i < count; ++i) to[i] = static_cast<To>(from[i]);
  }
}

// Asks the cache for values [0, count) of `from`, which the loops read soon: where they
// read several input rows at once, or split one while storing to others, the hardware
// prefetcher falls behind (measured: average pooling 15%, max pooling with indices 10% faster).
template <typename T>
inline void prefetch_span(const T* from, int64_t count) {
  constexpr int64_t kLine = 64 / sizeof(T);
  for (int64_t x = 0; x < count; x += kLine) __builtin_prefetch(from + x);
}

// Streaming stores are weakly ordered: this orders them before the stores that follow
// (the end of a parallel region's task, which another thread's reads wait on).
inline void streaming_done() {
#if defined(__x86_64__)
  __builtin_ia32_sfence();
#endif
}

// a * b + c rounded once, lane by lane: the loop vectorises into the FMA instruction in the
// AVX2 and AVX-512 copies; the baseline calls libm's fma, which rounds the same.
template <typename Vector>
inline Vector fused_multiply_add(Vector a, Vector b, Vector c) {
  Vector r;
  for (int i = 0; i < static_cast<int>(sizeof(Vector) / sizeof(a[0])); ++i) r[i] = std::fma(a[i], b[i], c[i]);
  return r;
}

// Lane r of v[0] := the sum of the lanes of v[r], for the n = kLanes<Acc> vectors v: pairs of
// vectors, each holding kRows rows' partial sums in blocks, fold into one holding 2 * kRows
// rows' (halves of each block added), log2(n) times; n - 1 folds of two shuffles and an add,
// where summing each vector across its lanes alone takes log2(n) shuffles and adds per row.
// Each lane adds only its own row's partial sums: rows of zeros leave the others' bits as they are.
template <typename Acc, int kRows = 1>
inline void fold_row_sums(Lanes<Acc>* v) {
  constexpr int n = kLanes<Acc>;
  if constexpr (kRows < n) {
    constexpr int block = n / kRows, half = block / 2;
    LaneIndex<Acc> low, high;
    for (int i = 0; i < n; ++i) {
      const int from = i / half;  // the new block: rows of the first vector, then of the second
      const int base = (from < kRows ? 0 : n) + from % kRows * block;
      low[i] = base + i % half;
      high[i] = base + half + i % half;
    }
#pragma GCC unroll 16
    for (int j = 0; j < n / kRows / 2; ++j) {
      v[j] = __builtin_shuffle(v[2 * j], v[2 * j + 1], low) + __builtin_shuffle(v[2 * j], v[2 * j + 1], high);
    }
    fold_row_sums<Acc, 2 * kRows>(v);
  }
}

// Whether interleave_rows takes R rows of T: R a power of two, at most a vector's lanes.
template <typename T>
constexpr bool interleavable(int R) { return (R & (R - 1)) == 0 && R <= kLanes<T>; }

// R rows of n lanes (interleavable) after log2(R) rounds of interleaving: a[r]
// then holds lanes r * n/R, r * n/R + 1, ... of every row in turn (lane q * R + p of a[r] is
// lane r * n/R + q of row p). With R == n, a transpose.
template <typename T, int R>
inline void interleave_rows(Lanes<T> (&a)[R]) {
  static_assert(interleavable<T>(R), "interleave_rows: R must be a power of two, at most n");
#pragma GCC unroll 4
  for (int round = 1; round < R; round *= 2) {
    Lanes<T> b[R];
#pragma GCC unroll 16
    for (int p = 0; p < R / 2; ++p) {
      b[2 * p] = interleaved_lanes<0, T>(a[p], a[p + R / 2]);
      b[2 * p + 1] = interleaved_lanes<1, T>(a[p], a[p + R / 2]);
    }
#pragma GCC unroll 16
    for (int p = 0; p < R; ++p) a[p] = b[p];
  }
}

// Rows [0, rows) (rows <= n) of a matrix with R columns (row m at from + m * stride) as R
// vectors of n lanes, vector r at to + r * to_stride: lane m of vector r is
// from[m * stride + r], lanes past `rows` 0. The packed layout of the direct forms' weights
// and output gradient (to_stride n), and of the GEMM forms' transposed B panels; n x n
// tiles transposed in registers (element by element, packing took a sixth of the grouped
// bench's weight gradient).
template <typename T>
inline void pack_lanes_strided(const T* from, int64_t stride, int64_t rows, int64_t R, T* to, int64_t to_stride) {
  constexpr int n = kLanes<T>;
  int64_t r = 0;
  for (; r + n <= R; r += n) {
    Lanes<T> a[n];
#pragma GCC unroll 16
    for (int m = 0; m < n; ++m) a[m] = m < rows ? load_lanes(from + m * stride + r) : Lanes<T>{};
    interleave_rows<T, n>(a);
#pragma GCC unroll 16
    for (int i = 0; i < n; ++i) store_lanes(to + (r + i) * to_stride, a[i]);
  }
  for (; r < R; ++r) {
    for (int m = 0; m < n; ++m) to[r * to_stride + m] = m < rows ? from[m * stride + r] : T(0);
  }
}

template <typename T>
inline void pack_lanes(const T* from, int64_t stride, int64_t rows, int64_t R, T* to) {
  pack_lanes_strided(from, stride, rows, R, to, kLanes<T>);
}


}  // namespace CONVOPS_CPU_ISA
}  // namespace kernels
}  // namespace convops
