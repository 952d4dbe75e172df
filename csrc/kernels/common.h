// Shared definitions for the torch-free kernel math in csrc/kernels/.
// Everything here compiles for the host (g++) and for the device (nvcc), so the
// CPU launchers and the CUDA launchers run the very same arithmetic.
#pragma once
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define CONVOPS_HOST_DEVICE __host__ __device__
#else
#define CONVOPS_HOST_DEVICE
#endif

namespace convops {
namespace kernels {

// Every op works on 3 spatial dims: 1-D and 2-D problems are padded in front
// with size-1 dims (kernel 1, stride 1, padding 0, dilation 1), so one code
// path serves all ranks.
constexpr int kMaxSpatial = 3;

CONVOPS_HOST_DEVICE inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
CONVOPS_HOST_DEVICE inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// a / b and a % b, as C++ defines them, for the index math of the element functions. On the
// GPU a 64-bit division is a software routine of dozens of instructions and a 32-bit one a
// few: operands that are non-negative and fit in 32 bits, as every index of a tensor under
// 2^32 elements does, take the short one. (The kernels measured with it, pooling's
// backwards, did not get faster: ncu shows them bound by latency at low occupancy.) The
// host divides in 64 bits.
CONVOPS_HOST_DEVICE inline int64_t divide(int64_t a, int64_t b) {
#ifdef __CUDA_ARCH__
  if (((static_cast<uint64_t>(a) | static_cast<uint64_t>(b)) >> 32) == 0) {
    return static_cast<uint32_t>(a) / static_cast<uint32_t>(b);
  }
#endif
  return a / b;
}
CONVOPS_HOST_DEVICE inline int64_t modulo(int64_t a, int64_t b) { return a - divide(a, b) * b; }

// Ceil division for a numerator of any sign and a positive denominator.
CONVOPS_HOST_DEVICE inline int64_t ceil_div(int64_t num, int64_t den) {
  return num >= 0 ? divide(num + den - 1, den) : -divide(-num, den);
}

// Splits a row-major flat index over (outer, d0, d1, d2) into the three inner
// coordinates c[0..2]; returns the outer index (a plane, or the flat index of what lies
// outside these three dims).
CONVOPS_HOST_DEVICE inline int64_t split_index(int64_t index, const int64_t dims[kMaxSpatial],
                                               int64_t c[kMaxSpatial]) {
  for (int d = kMaxSpatial - 1; d >= 0; --d) {
    const int64_t outer = dims[d] == 1 ? index : divide(index, dims[d]);  // 1-D and 2-D pad with size-1 dims
    c[d] = index - outer * dims[d];
    index = outer;
  }
  return index;
}

// The window o (of `count`) whose tap k reads position x, for windows starting at
// o*stride - pad with taps k*dil apart; -1 if no window does.
CONVOPS_HOST_DEVICE inline int64_t tap_reader(int64_t x, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                                              int64_t count) {
  const int64_t num = x + pad - k * dil;
  if (num < 0) return -1;
  const int64_t o = divide(num, stride);
  if (o * stride != num) return -1;
  return o < count ? o : -1;
}

// CPU loops over strided runs (the CUDA code has no use for them): op(to[i * to_step],
// from[i * from_step]) for i < count. Steps of 1 and 2 (the common strides) get loops of
// their own: with a constant step the compiler vectorises the loop with shuffles, with a
// variable one it cannot.
template <typename From, typename To, typename Op>
inline void strided_apply(const From* __restrict__ from, int64_t from_step, To* __restrict__ to, int64_t to_step,
                          int64_t count, Op op) {
  if (from_step == 1 && to_step == 1) {
    for (int64_t i = 0; i < count; ++i) op(to[i], from[i]);
  } else if (from_step == 2 && to_step == 1) {
    for (int64_t i = 0; i < count; ++i) op(to[i], from[2 * i]);
  } else if (from_step == 1 && to_step == 2) {
    for (int64_t i = 0; i < count; ++i) op(to[2 * i], from[i]);
  } else {
    for (int64_t i = 0; i < count; ++i) op(to[i * to_step], from[i * from_step]);
  }
}

template <typename From, typename To>
inline void strided_copy(const From* from, int64_t from_step, To* to, int64_t to_step, int64_t count) {
  strided_apply(from, from_step, to, to_step, count, [](To& dst, From value) { dst = static_cast<To>(value); });
}

template <typename From, typename To>
inline void strided_add(const From* from, int64_t from_step, To* to, int64_t to_step, int64_t count) {
  strided_apply(from, from_step, to, to_step, count, [](To& dst, From value) { dst += static_cast<To>(value); });
}

// to[i * to_step] += scale * from[i * from_step]
template <typename From, typename To>
inline void strided_scaled_add(To scale, const From* from, int64_t from_step, To* to, int64_t to_step,
                               int64_t count) {
  strided_apply(from, from_step, to, to_step, count,
                [scale](To& dst, From value) { dst += scale * static_cast<To>(value); });
}

}  // namespace kernels
}  // namespace convops
