// Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2015), CPU forms, torch-free: the
// transforms of a 2-D convolution with a 3x3 kernel at unit stride and dilation, any zero
// padding. Each 2x2 block of outputs (a tile) comes from the 4x4 input patch d it reads:
//
//   y = A^T [ (G g G^T) . (B^T d B) ] A      (. the entrywise product)
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
//
// 16 products per tile and channel pair instead of 36. Transformed, the sum over a group's
// input channels is 16 GEMMs, one per entry xi of the 4x4 domain (winograd_products):
//
//   M[xi] (Og, tiles) = U[xi] (Og, Cg) @ V[xi] (Cg, tiles)
//
// U the transformed kernels (winograd_kernels), V the transformed patches
// (winograd_input_block), M transformed back into outputs by winograd_output_block; the
// launcher (ops/conv/conv_cpu.cpp) runs them block by block. Every factor is 0, +-1 or
// +-1/2: integer-valued data stays exact, and every copy adds in the same order (the
// products by std::fma in channel order), so the copies agree bitwise.
//
// Shapes (ColumnGeometry of a 2-D convolution: dim 0 is 1): a plane (H, W) = (image[1],
// image[2]) padded by (pad[1], pad[2]) has (Ho, Wo) = (cols[1], cols[2]) outputs in
// ceil(Ho/2) x ceil(Wo/2) tiles; tile t = ty * tiles_w + tx reads input rows 2ty - pad[1] ..
// +3 and columns 2tx - pad[2] .. +3 (zero outside) and writes outputs 2ty..2ty+1 x 2tx..2tx+1
// (those inside). A block is a run of tiles [first, first + count) of one image; its V and
// its M are 16 matrices (channels, ld), ld >= count, winograd_point_stride (cpu_isa.h) apart.
//
// Compiled once per instruction set, in the inline namespace CONVOPS_CPU_ISA (cpu_isa.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu_isa.h"
#include "cpu_lanes.h"
#include "im2col.h"

namespace convops {
namespace kernels {

inline namespace CONVOPS_CPU_ISA {

constexpr int kWinogradTile = 2;     // outputs per tile side
constexpr int kWinogradPoints = 16;  // entries of the transformed 4x4 domain

inline int64_t winograd_tiles_w(const ColumnGeometry& g) { return ceil_div(g.cols[2], int64_t(kWinogradTile)); }
inline int64_t winograd_tiles(const ColumnGeometry& g) {
  return ceil_div(g.cols[1], int64_t(kWinogradTile)) * winograd_tiles_w(g);
}
// u[xi * count + k] = (G g_k G^T)[xi] for the `count` 3x3 kernels g_k of `weight`: by chunks
// of kernels, their taps gathered tap by tap, then transformed kernel by kernel in vectors
// (one at a time, its 16 strided stores took 9% of a 256-channel convolution).
template <typename T>
inline void winograd_kernels(const T* weight, int64_t count, T* u) {
  constexpr int64_t kChunk = 64;
  const T half = T(0.5);
  T tap[9][kChunk];
  for (int64_t k0 = 0; k0 < count; k0 += kChunk) {
    const int64_t chunk = min64(kChunk, count - k0);
    for (int64_t k = 0; k < chunk; ++k) {
      for (int j = 0; j < 9; ++j) tap[j][k] = weight[9 * (k0 + k) + j];
    }
    T* to = u + k0;
#pragma omp simd
    for (int64_t k = 0; k < chunk; ++k) {
      T gg[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        gg[0][j] = tap[j][k];
        gg[1][j] = (tap[j][k] + tap[3 + j][k] + tap[6 + j][k]) * half;
        gg[2][j] = (tap[j][k] - tap[3 + j][k] + tap[6 + j][k]) * half;
        gg[3][j] = tap[6 + j][k];
      }
      for (int i = 0; i < 4; ++i) {  // (G g) G^T
        to[(4 * i + 0) * count + k] = gg[i][0];
        to[(4 * i + 1) * count + k] = (gg[i][0] + gg[i][1] + gg[i][2]) * half;
        to[(4 * i + 2) * count + k] = (gg[i][0] - gg[i][1] + gg[i][2]) * half;
        to[(4 * i + 3) * count + k] = gg[i][2];
      }
    }
  }
}

// to[j] = from[j] (or 0, without from) for j < count, a row of a small plane: by whole
// vectors, the last one ending at count (GCC made the per-row loops calls to memmove and
// memset, 14% of the grouped convolution).
template <typename T>
inline void copy_row(const T* __restrict__ from, T* __restrict__ to, int64_t count) {
  constexpr int64_t n = kLanes<T>;
  if (count < n) {
    for (int64_t j = 0; j < count; ++j) to[j] = from != nullptr ? from[j] : T(0);
    return;
  }
  const auto at = [&](int64_t j) { return from != nullptr ? load_lanes(from + j) : Lanes<T>{}; };
  for (int64_t j = 0; j + n < count; j += n) store_lanes(to + j, at(j));
  store_lanes(to + count - n, at(count - n));
}

// Calls run(ty, tx0, tx1, at) for the tiles [first, first + count) of a grid tiles_w wide,
// as runs along tile rows: tiles tx0..tx1-1 of tile row ty, the first of them at column `at`
// of the block.
template <typename Run>
inline void for_each_tile_run(int64_t first, int64_t count, int64_t tiles_w, Run&& run) {
  for (int64_t t = first, end = first + count; t < end;) {
    const int64_t ty = t / tiles_w, tx0 = t - ty * tiles_w, tx1 = min64(tiles_w, tx0 + (end - t));
    run(ty, tx0, tx1, t - first);
    t += tx1 - tx0;
  }
}

// v[xi * winograd_point_stride(channels, ld, kLanes) + c * ld + i] = (B^T d B)[xi] for tile
// first + i of channel c's patch d, i < count; image: the group's `channels` planes of one
// image. Each plane's rows that the block reads are copied into a zero-padded scratch first,
// where every patch column is read by even lanes in place. Tile runs go by whole vectors, so
// ld >= count + kLanes (what a run writes past its last tile, the next run overwrites).
template <typename T>
inline void winograd_input_block(const T* image, int64_t channels, const ColumnGeometry& g, int64_t first,
                                 int64_t count, int64_t ld, T* v) {
  constexpr int64_t n = kLanes<T>;
  const int64_t tiles_w = winograd_tiles_w(g), H = g.image[1], W = g.image[2];
  const int64_t ty0 = first / tiles_w, ty1 = (first + count - 1) / tiles_w;
  const int64_t rows = 2 * (ty1 - ty0) + 4;  // the padded rows 2 * ty0 .. 2 * ty1 + 3
  const int64_t stride = ceil_div(2 * tiles_w + 2, n) * n;
  std::vector<T> scratch(rows * stride + 4 * n + 4, T(0));  // its columns outside the plane stay zero
  T* padded = scratch.data();
  const int64_t xi_stride = winograd_point_stride(channels, ld, kLanes<T>);
  for (int64_t c = 0; c < channels; ++c) {
    const T* plane = image + c * g.image_numel();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t x = 2 * ty0 + r - g.pad[1];
      copy_row(x >= 0 && x < H ? plane + x * W : nullptr, padded + r * stride + g.pad[2], W);
    }
    for_each_tile_run(first, count, tiles_w, [&](int64_t ty, int64_t tx0, int64_t tx1, int64_t at) {
      const T* rows_of_tile = padded + 2 * (ty - ty0) * stride;
      T* to = v + c * ld + at;
      for (int64_t k = 0; k < tx1 - tx0; k += n) {
        Lanes<T> r[4][4];  // each patch row d times B: [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
        for (int i = 0; i < 4; ++i) {
          const T* d = rows_of_tile + i * stride + 2 * (tx0 + k);
          const Lanes<T> d0 = load_even_lanes(d), d1 = load_even_lanes(d + 1);
          const Lanes<T> d2 = load_even_lanes(d + 2), d3 = load_even_lanes(d + 3);
          r[i][0] = d0 - d2;
          r[i][1] = d1 + d2;
          r[i][2] = d2 - d1;
          r[i][3] = d1 - d3;
        }
        for (int j = 0; j < 4; ++j) {  // then B^T down the columns: [r0 - r2, r1 + r2, r2 - r1, r1 - r3]
          store_lanes(to + (0 + j) * xi_stride + k, r[0][j] - r[2][j]);
          store_lanes(to + (4 + j) * xi_stride + k, r[1][j] + r[2][j]);
          store_lanes(to + (8 + j) * xi_stride + k, r[2][j] - r[1][j]);
          store_lanes(to + (12 + j) * xi_stride + k, r[1][j] - r[3][j]);
        }
      }
    });
  }
}

// Rows kRows of M[xi] over two vectors of tiles: m[r * ld + t] = sum over c < channels of
// u[r * channels + c] * v[c * ld + t], t < 2 * kLanes, by fused multiply-adds in c order,
// kRows x 2 sums in registers.
template <int kRows, typename T>
inline void winograd_product_tile(const T* u, int64_t channels, const T* v, int64_t ld, T* m) {
  constexpr int64_t n = kLanes<T>;
  Lanes<T> sum[kRows][2];
  for (int r = 0; r < kRows; ++r) sum[r][0] = sum[r][1] = Lanes<T>{};
  for (int64_t c = 0; c < channels; ++c) {
    const Lanes<T> b0 = load_lanes(v + c * ld), b1 = load_lanes(v + c * ld + n);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const Lanes<T> a = splat(u[r * channels + c]);
      sum[r][0] = fused_multiply_add(a, b0, sum[r][0]);
      sum[r][1] = fused_multiply_add(a, b1, sum[r][1]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    store_lanes(m + r * ld, sum[r][0]);
    store_lanes(m + r * ld + n, sum[r][1]);
  }
}

// The 16 products of a block, M[xi] = U[xi] @ V[xi]: m[xi * winograd_point_stride(out_channels,
// ld, kLanes) + o * ld + t] = sum over c of u[xi * u_stride + o * channels + c] * V[xi][c][t],
// for t < count rounded up to two vectors (ld at least that). Each pair of tile vectors stays
// in L1 while every row block of U passes over it.
template <typename T>
inline void winograd_products(const T* u, int64_t u_stride, int64_t out_channels, const T* v, int64_t channels,
                              int64_t count, int64_t ld, T* m) {
  constexpr int64_t n = kLanes<T>;
  constexpr int kRows = kVectorRegisters == 32 ? 8 : 4;  // 2 * kRows sums, two tile vectors and a broadcast
  for (int xi = 0; xi < kWinogradPoints; ++xi) {
    const T* ux = u + xi * u_stride;
    const T* vx = v + xi * winograd_point_stride(channels, ld, kLanes<T>);
    T* mx = m + xi * winograd_point_stride(out_channels, ld, kLanes<T>);
    for (int64_t t = 0; t < count; t += 2 * n) {
      int64_t o = 0;
      for (; o + kRows <= out_channels; o += kRows) {
        winograd_product_tile<kRows>(ux + o * channels, channels, vx + t, ld, mx + o * ld + t);
      }
      for (; o < out_channels; ++o) winograd_product_tile<1>(ux + o * channels, channels, vx + t, ld, mx + o * ld + t);
    }
  }
}

// The outputs of tiles [first, first + count) of `channels` output planes (Ho x Wo, out):
// A^T m A for each tile's m[xi] = m[xi * winograd_point_stride(channels, ld, kLanes) + o * ld
// + i], plus bias[o] (if given). ld >= count + kLanes: tile runs are read by whole vectors. A
// plane's rows are staged whole, then copied out (copied run by run, each copy's loads
// waited on the stores just before them).
template <typename T>
inline void winograd_output_block(const T* m, int64_t channels, const T* bias, const ColumnGeometry& g,
                                  int64_t first, int64_t count, int64_t ld, T* out) {
  constexpr int64_t n = kLanes<T>;
  const int64_t tiles_w = winograd_tiles_w(g), Ho = g.cols[1], Wo = g.cols[2], plane = Ho * Wo;
  const int64_t ty0 = first / tiles_w, ty1 = (first + count - 1) / tiles_w;
  const int64_t length = 2 * (ceil_div(tiles_w, n) + 1) * n;  // a staged output row
  std::vector<T> stage(2 * (ty1 - ty0 + 1) * length);
  const int64_t xi_stride = winograd_point_stride(channels, ld, kLanes<T>);
  for (int64_t o = 0; o < channels; ++o) {
    const Lanes<T> b = splat(bias != nullptr ? bias[o] : T(0));
    for_each_tile_run(first, count, tiles_w, [&](int64_t ty, int64_t tx0, int64_t tx1, int64_t at) {
      const T* from = m + o * ld + at;
      T* top = stage.data() + 2 * (ty - ty0) * length + 2 * tx0;
      for (int64_t k = 0; k < tx1 - tx0; k += n) {
        Lanes<T> s[2][4];  // A^T m: [m0 + m1 + m2, m1 - m2 - m3] down the columns
        for (int j = 0; j < 4; ++j) {
          const auto point = [&](int i) { return load_lanes(from + (4 * i + j) * xi_stride + k); };
          const Lanes<T> m0 = point(0), m1 = point(1), m2 = point(2), m3 = point(3);
          s[0][j] = m0 + m1 + m2;
          s[1][j] = m1 - m2 - m3;
        }
        for (int i = 0; i < 2; ++i) {  // then A along the rows, each tile's two outputs side by side
          const Lanes<T> left = s[i][0] + s[i][1] + s[i][2] + b, right = s[i][1] - s[i][2] - s[i][3] + b;
          T* to = top + i * length + 2 * k;
          store_lanes(to, interleaved_lanes<0, T>(left, right));
          store_lanes(to + n, interleaved_lanes<1, T>(left, right));
        }
      }
    });
    for_each_tile_run(first, count, tiles_w, [&](int64_t ty, int64_t tx0, int64_t tx1, int64_t) {
      const T* top = stage.data() + 2 * (ty - ty0) * length + 2 * tx0;
      T* to = out + o * plane + 2 * ty * Wo + 2 * tx0;
      const int64_t width = min64(2 * tx1, Wo) - 2 * tx0;
      copy_row(top, to, width);
      if (2 * ty + 1 < Ho) copy_row(top + length, to + Wo, width);
    });
  }
}

template <typename T, typename Acc>
WinogradCpuKernels<T, Acc> winograd_cpu_kernels() {
  return {kLanes<T>, &winograd_kernels<T>, &winograd_input_block<T>, &winograd_products<T>,
          &winograd_output_block<T>};
}

}  // namespace CONVOPS_CPU_ISA
}  // namespace kernels
}  // namespace convops
