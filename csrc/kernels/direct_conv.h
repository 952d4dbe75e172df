// Direct convolution vectorised over output channels, CPU forms, torch-free: for groups
// with few output channels (LeNet's 6->16, grouped and small 3-D convolutions), where
// im2col's copy of the input costs more than the GEMM it feeds, and for wider groups whose
// weights stay in cache, where an image's GEMM would be thin (3x3 256ch at 14x14).
//
//   forward      y[n, o, l]  = bias[o] + sum_{c, k} w[o, c, k] * x[n, c, l*stride - pad + k*dil]
//   weight grad  dw[o, c, k] = sum_{n, l} dy[n, o, l] * x[n, c, l*stride - pad + k*dil]
// per group (c, o of that group). A vector holds `lanes` output channels (as wide as this
// copy's registers). The forward keeps the sums of a few channel vectors at a few
// consecutive positions of an output row in registers, and adds tap by tap a vector of
// weights times one broadcast input value; the weight gradient keeps a vector per tap of
// a block of taps, and adds position by position the vector of output gradients times the
// input each tap read. Every product is added by a fused multiply-add (std::fma: one
// rounding in every copy, the FMA instruction where the copy has it) in a fixed order (the
// forward: taps c*K + k in order; the weight gradient: images, then positions), so each
// sum is the same bits in every copy and at any thread count. Small padded images (ResNet's
// 8x8 and smaller stages) run a pass of images at one output position instead, adding only
// the taps that read inside the image (direct_forward_position).
//
// Shapes (spatial dims padded in front to 3; G groups, Cg = C/G input and Og = O/G output
// channels per group, K taps, L output positions, n = lanes):
//   padded          one image's Cg planes zero-padded (kernels::PaddedTaps, im2col.h);
//   packed weight   (G, ceil(Og/n), Cg*K, n): vector j of a group holds its output
//                   channels j*n .. j*n+n-1, zero past Og; packed bias (G, ceil(Og/n)*n);
//   packed dy       (N*G, ceil(Og/n), L, n), for the weight gradient;
//   output          (Og, L) of the group; weight gradient (O, Cg*K).
// pack_lanes (cpu_lanes.h) builds the packed layouts; the forward stores its channel vectors transposed
// in registers (store_transposed).
//
// Compiled once per instruction set, in the inline namespace CONVOPS_CPU_ISA (cpu_isa.h).
#pragma once
#include <algorithm>
#include <vector>

#include "cpu_isa.h"
#include "cpu_lanes.h"
#include "depthwise.h"
#include "im2col.h"

namespace convops {
namespace kernels {
inline namespace CONVOPS_CPU_ISA {

// Register blocking: up to kMaxBlocks channel vectors at once, and as many positions as
// leave a register for each weight vector and one for the broadcast value.
constexpr int kMaxPositions = 8;
constexpr int kMaxBlocks = kVectorRegisters >= 32 ? 4 : 2;
constexpr int positions_for(int blocks) {
  const int fit = (kVectorRegisters - blocks - 2) / blocks;
  return fit < kMaxPositions ? fit : kMaxPositions;
}
// The weight gradient's register tile: kWeightVectors channel vectors times kWeightTaps taps
// of a tap block, a sum vector each. AVX-512: one vector, 16 taps of its 32 registers (8 taps:
// LeNet's weight gradient 0.44 ms, 16: 0.31 ms); its FMAs take their broadcast from memory.
// With 16 registers: two vectors of 6 taps, so that each broadcast input value feeds two
// FMAs (one vector spent a broadcast load on every FMA). On a Zen 3 at 1 thread, in one
// process, the same taps one vector at a time against two: make bench's grouped weight
// gradient 5.1-6.3 -> 3.85-3.96 ms, conv3d 32ch 8.1 -> 5.85-6.0 ms, LeNet's second 0.62 -> 0.46 ms.
constexpr int kWeightVectors = kVectorRegisters >= 32 ? 1 : 2;
constexpr int kWeightTaps = kVectorRegisters >= 32 ? 16 : positions_for(kWeightVectors);

// `planes` consecutive image planes, zero-padded into `padded` (planes * taps.plane values),
// each as the depthwise forms pad theirs.
template <typename T>
inline void pad_planes(const T* image, int64_t planes, const ColumnGeometry& g, const PaddedTaps& taps, T* padded) {
  const UnitStrideLayout layout(g);
  for (int64_t c = 0; c < planes; ++c) pad_plane(image + c * g.image_numel(), g, layout, padded + c * taps.plane);
}

// One channel vector's sums at kP consecutive output positions (sums[p]), stored channel by
// channel as rows of the first `count` (<= kP) values (channel c at out[c * L], for
// c < channels), transposed in registers (interleave_rows): lane by lane, these stores took
// a tenth of LeNet's second convolution. kP: a power of two, at most n. Not inlined:
// inlined, its registers pushed the sums of 2 and 3 channel vectors out to the stack inside
// forward_positions' tap loop (conv3d 3x3x3 32ch: 0.85x -> 0.48x torch).
template <typename T, int kP>
__attribute__((noinline)) void store_transposed(const Lanes<T>* sums, T* out, int64_t L, int64_t channels,
                                                int64_t count) {
  constexpr int n = kLanes<T>, per = n / kP;
  Lanes<T> a[kP];
#pragma GCC unroll 16
  for (int p = 0; p < kP; ++p) a[p] = sums[p];
  interleave_rows<T, kP>(a);
#pragma GCC unroll 16
  for (int r = 0; r < kP; ++r) {
    T lanes[n];
    store_lanes(lanes, a[r]);
    for (int q = 0; q < per && r * per + q < channels; ++q) {
      T* to = out + (r * per + q) * L;
      if (count == kP) {
        std::memcpy(to, lanes + q * kP, kP * sizeof(T));  // one vector move
      } else {
        std::memcpy(to, lanes + q * kP, count * sizeof(T));
      }
    }
  }
}

// The sums of kBlocks channel vectors at kP positions (or images), each starting at its
// vector of packed bias (bias + j * n), or at 0 where bias is null.
template <typename T, int kBlocks, int kP>
inline void start_sums(Lanes<T> (&acc)[kBlocks][kP], const T* bias) {
#pragma GCC unroll 16
  for (int j = 0; j < kBlocks; ++j) {
    const Lanes<T> start = bias != nullptr ? load_lanes(bias + j * kLanes<T>) : Lanes<T>{};
#pragma GCC unroll 16
    for (int p = 0; p < kP; ++p) acc[j][p] = start;
  }
}

// One tap of a pass: acc[j][p] += the tap's weight vector j (w_tap + j * vector_stride) times
// the value x[p][at] that position p reads through it. In the AVX-512 copy the blocks after
// the first read that value through a pointer GCC cannot see is the same one (the empty asm),
// so it need not keep one broadcast register for all of them: GCC 12 then folds some of the
// reads into their FMAs' own broadcast from memory, and the 4-block forward of make bench's
// 256ch 14x14 ran at 1 thread in 17.0-17.3 ms instead of 18.0-18.2 (ResNet's 64ch 8x8 small
// images 1.25 -> 1.23 ms, conv3d 32ch 4.37 -> 4.32 ms; 1-block passes never re-read). Every
// block re-reading (the first too): 18.3 ms; the asm volatile: 18.2-18.5 ms. AVX2 has no such
// broadcast: there the re-reads are separate broadcasts (256ch 14x14 17.2 -> 22.9 ms), so
// that copy keeps the shared one. The products and their order are the same, so are the bits.
template <typename T, int kBlocks, int kP>
inline void add_tap(Lanes<T> (&acc)[kBlocks][kP], const T* w_tap, int64_t vector_stride, const T* const (&x)[kP],
                    int64_t at) {
  Lanes<T> w[kBlocks];
#pragma GCC unroll 16
  for (int j = 0; j < kBlocks; ++j) w[j] = load_lanes(w_tap + j * vector_stride);
#pragma GCC unroll 16
  for (int p = 0; p < kP; ++p) {
#pragma GCC unroll 16
    for (int j = 0; j < kBlocks; ++j) {
      const T* xp = x[p] + at;
      if (kThisCopy == CpuIsa::kAvx512 && j > 0) asm("" : "+r"(xp));
      acc[j][p] = fused_multiply_add(w[j], splat(*xp), acc[j][p]);
    }
  }
}

// The sums of kBlocks channel vectors at kPositions consecutive output positions, position
// p reading tap t at from[p][offset[t]]; the first `count` positions are stored at out
// (channel c at out[c * L]), the others (repeats of the last, at a plane's end) dropped.
// weight: the first vector's packed taps; bias: its packed lanes, or null.
template <typename T, int kBlocks, int kPositions>
inline void forward_positions(const T* const* from, const T* weight, int64_t taps, const int64_t* offset,
                              const T* bias, T* out, int64_t L, int64_t channels, int64_t count) {
  constexpr int n = kLanes<T>;
  Lanes<T> acc[kBlocks][kPositions];
  start_sums<T>(acc, bias);
  const T* x[kPositions];
#pragma GCC unroll 16
  for (int p = 0; p < kPositions; ++p) x[p] = from[p];
  for (int64_t t = 0; t < taps; ++t) add_tap<T>(acc, weight + t * n, taps * n, x, offset[t]);
  if constexpr (interleavable<T>(kPositions)) {
#pragma GCC unroll 4
    for (int j = 0; j < kBlocks; ++j) {
      store_transposed<T, kPositions>(acc[j], out + j * n * L, L, channels - j * n, count);
    }
    return;
  }
  for (int j = 0; j < kBlocks; ++j) {
    for (int v = 0; v < n && j * n + v < channels; ++v) {
      T* to = out + (j * n + v) * L;
      for (int p = 0; p < count; ++p) to[p] = acc[j][p][v];
    }
  }
}

// Calls pass.template operator()<kQ>() for the smallest pass of kQ = kP, kP/2, kP/4, ...
// positions that holds `count` (<= kP) of them (the pass repeats the last past count):
// LeNet's 10x10 outputs end in 4 positions, which a pass of 8 ran twice over (its second
// convolution's forward 0.32 -> 0.305 ms at 1 thread). Passes of 16 positions (AVX-512
// float, one channel vector): 0.37 ms, 16 input pointers and a loop's worth of integers do
// not fit the 16 general registers.
template <int kP, typename Pass>
inline void smallest_pass(int64_t count, Pass&& pass) {
  if constexpr (kP > 1) {
    if (count <= kP / 2) {
      smallest_pass<kP / 2>(count, pass);
      return;
    }
  }
  pass.template operator()<kP>();
}

// Calls pass.template operator()<kQ>() for kQ = count, in [1, kP].
template <int kP, typename Pass>
inline void exact_pass(int64_t count, Pass&& pass) {
  if constexpr (kP > 1) {
    if (count < kP) {
      exact_pass<kP - 1>(count, pass);
      return;
    }
  }
  pass.template operator()<kP>();
}

// Calls body.template operator()<kBlocks>() for kBlocks = blocks, in [1, kMaxBlocks]: the
// register blocking as a constant.
template <typename Body>
inline void with_blocks(int64_t blocks, Body&& body) {
  switch (blocks) {
    case 4: body.template operator()<4>(); break;
    case 3: body.template operator()<3>(); break;
    case 2: body.template operator()<2>(); break;
    default: body.template operator()<1>(); break;
  }
}

// Every output position of kBlocks channel vectors, kP at a time in the order of the flat
// output (a pass may span rows: each position has its own start in `padded`). Each pass
// also prefetches its share of values [0, ahead_count) of `ahead` (if not null).
template <typename T, int kBlocks>
inline void forward_plane(const T* padded, const T* weight, const T* bias, T* out, const ColumnGeometry& g,
                          const PaddedTaps& taps, int64_t channels, const T* ahead, int64_t ahead_count) {
  constexpr int kP = positions_for(kBlocks);
  const int64_t L = g.cols_numel(), K = taps.offset.size();
  const int64_t share = ceil_div(ahead_count, ceil_div(L, int64_t(kP)));
  int64_t l0 = 0, l1 = 0, l2 = 0;  // the next position
  const T* from[kP];
  for (int64_t first = 0; first < L; first += kP) {
    const int64_t count = min64(kP, L - first);
    if (ahead != nullptr) prefetch_span(ahead + first / kP * share, share);
    for (int p = 0; p < kP; ++p) {
      if (p >= count) {
        from[p] = from[count - 1];
        continue;
      }
      from[p] = padded + taps.start(g, l0, l1) + l2 * g.stride[2];
      if (++l2 == g.cols[2]) {
        l2 = 0;
        if (++l1 == g.cols[1]) {
          l1 = 0;
          ++l0;
        }
      }
    }
    smallest_pass<kP>(count, [&]<int kQ>() {
      forward_positions<T, kBlocks, kQ>(from, weight, K, taps.offset.data(), bias, out + first, L, channels, count);
    });
  }
}

// One image's group: its Cg input planes (image) padded into `padded` (taps.numel()
// values; without padding the planes are read where they are), then its Og output planes
// (out), kMaxBlocks channel vectors per pass. The first pass prefetches the Cg planes that
// follow the group's (the launchers' next task: the next group, or the next image's first),
// which the next call pads: that copy waited on their loads, a tenth of the grouped 3x3's
// forward (make bench's shape 2.55 -> 2.43 ms at 1 thread).
template <typename T, typename Acc>
inline void direct_forward_group(const T* image, const T* weight, const T* bias, T* out, T* padded,
                                 const ColumnGeometry& g, const PaddedTaps& taps, int64_t out_channels) {
  const T* planes = image;
  if (!g.unpadded()) {
    pad_planes(image, taps.channels, g, taps, padded);
    planes = padded;
  }
  constexpr int n = kLanes<T>;
  const int64_t blocks = ceil_div(out_channels, n), K = taps.offset.size(), L = g.cols_numel();
  const int64_t group_values = taps.channels * g.image_numel();
  for (int64_t j = 0; j < blocks;) {
    const int64_t now = min64(blocks - j, kMaxBlocks), channels = out_channels - j * n;
    const T* w = weight + j * K * n;
    const T* b = bias != nullptr ? bias + j * n : nullptr;
    T* o = out + j * n * L;
    const T* ahead = j == 0 ? image + group_values : nullptr;
    with_blocks(now, [&]<int kBlocks>() {
      forward_plane<T, kBlocks>(planes, w, b, o, g, taps, channels, ahead, group_values);
    });
    j += now;
  }
}

// ---------------------------------------------------------------- small padded images
// Where images have few output positions and are padded (ResNet's 8x8 and 4x4 stages on
// 32x32 inputs), the per-image passes above multiply the padding too (a 4x4 output's 3x3
// taps read it 44 times in 144) and repeat a pass's last position at each plane's end. This
// form runs one output position of kP images at a time: all of them read the same in-image
// taps (forward_position_taps, im2col.h), the only ones it adds, from the images as they are.
// The input gradient at any stride runs it too, as the forward of the output gradient with
// the flipped kernel whose taps each image position gathers (input_gradient_position_taps). A
// skipped tap's product is a zero added, so each sum is forward_positions' bits (taps in
// c*K + k order) but where a weight the padding meets is inf or NaN (which it leaves out,
// as torch's oneDNN forms do).

// Images per pass of the small-images form: as many as the widest register blocking holds.
constexpr int kImagesPerPass = positions_for(kMaxBlocks);

// The sums of kBlocks channel vectors at one output position of kP images (image[p]: its
// group's Cg input planes of X values), over the position's `live` in-image taps (tap[i],
// read at in-plane offset at[i]) of each plane; the first `count` images' sums are stored at
// out[p] (channel c at out[p][c * L]). weight: the first vector's packed Cg*K taps.
template <typename T, int kBlocks, int kP>
inline void images_at_position(const T* const* image, const T* weight, int64_t planes, int64_t X, int64_t K,
                               const int64_t* tap, const int64_t* at, int64_t live, const T* bias, T* const* out,
                               int64_t L, int64_t channels, int64_t count) {
  constexpr int n = kLanes<T>;
  const int64_t vector_taps = planes * K * n;  // one channel vector's packed weights
  Lanes<T> acc[kBlocks][kP];
  start_sums<T>(acc, bias);
  const T* x[kP];
#pragma GCC unroll 16
  for (int p = 0; p < kP; ++p) x[p] = image[p];
  for (int64_t c = 0; c < planes; ++c, weight += K * n) {
    for (int64_t i = 0; i < live; ++i) add_tap<T>(acc, weight + tap[i] * n, vector_taps, x, at[i]);
#pragma GCC unroll 16
    for (int p = 0; p < kP; ++p) x[p] += X;
  }
  for (int j = 0; j < kBlocks; ++j) {
    for (int p = 0; p < count; ++p) {
      T lanes[n];
      store_lanes(lanes, acc[j][p]);
      for (int v = 0; v < n && j * n + v < channels; ++v) out[p][(j * n + v) * L] = lanes[v];
    }
  }
}

// Output position l of one group in `count` (<= kImagesPerPass) images from `first`: input
// and output the group's first planes of image 0 ((N, C, *X) and (N, O, *L) as they are:
// planes of X and L values, images in_image and out_image values apart), weight and bias the
// group's packed ones (K taps per plane); kMaxBlocks channel vectors at a time, by a pass of
// exactly `count` images. The launcher
// runs a pass's images at every position before the next pass's, so that their planes stay
// in cache for all of them.
template <typename T, typename Acc>
inline void direct_forward_position(const T* input, const T* weight, const T* bias, T* output,
                                    const PositionTaps& taps, int64_t K, int64_t X, int64_t L, int64_t in_image,
                                    int64_t out_image, int64_t planes, int64_t out_channels, int64_t first,
                                    int64_t count, int64_t l) {
  constexpr int n = kLanes<T>, kP = kImagesPerPass;
  const int64_t blocks = ceil_div(out_channels, n);
  const int64_t* tap = taps.tap.data() + taps.begin[l];
  const int64_t* at = taps.at.data() + taps.begin[l];
  const int64_t live = taps.begin[l + 1] - taps.begin[l];
  const T* image[kP];
  T* out[kP];
  for (int64_t j = 0; j < blocks;) {
    const int64_t now = min64(blocks - j, kMaxBlocks), channels = out_channels - j * n;
    for (int p = 0; p < kP; ++p) {
      const int64_t i = first + min64(p, count - 1);  // past count: a repeat, dropped
      image[p] = input + i * in_image;
      out[p] = output + i * out_image + j * n * L + l;
    }
    with_blocks(now, [&]<int kBlocks>() {
      exact_pass<kP>(count, [&]<int kQ>() {
        images_at_position<T, kBlocks, kQ>(image, weight + j * K * planes * n, planes, X, K, tap, at, live,
                                           bias != nullptr ? bias + j * n : nullptr, out, L, channels, count);
      });
    });
    j += now;
  }
}

// ---------------------------------------------------------------- few output channels
// The same correlation for groups with few output channels (at most kMaxFewChannels: the
// input gradient of LeNet's 6->16, whose 6 channels would fill 6 of a vector's 16 lanes),
// vectorised over output positions instead: a vector holds `lanes` consecutive positions of
// an output row, and each tap adds one weight (broadcast) times the vector of the inputs it
// reads. The sums of all Cg channels at kRows output rows stay in registers, so one load
// of inputs serves every channel. Taps are added in the same order as forward_positions
// adds them (c*K + k), so both forms give the same bits. `padded` must hold lanes values
// past its last plane: a row's last vector reads past the row (lanes not stored).
constexpr int64_t kMaxFewChannels = 8;

// Registers for the sums; the others hold the rows' inputs and a weight. AVX2 kept 8 of its
// 16, one row of LeNet's 6 channels: 12, two rows, took its input gradient from 1.18 to 0.94 ms
// at 1 thread on a Zen 3 EPYC (torch 0.86-0.90).
constexpr int kFewChannelsAccumulators = kVectorRegisters == 32 ? 24 : 12;

// Output rows per pass: as many as the sums of kChannels channels leave registers for, 1 to 4.
constexpr int few_channels_rows_per_pass(int channels) {
  return std::clamp(kFewChannelsAccumulators / channels, 1, 4);
}

// The most channels the form takes: those it sums two rows or more of at a time. With one
// row, each tap's load and broadcasts feed too few FMAs, and their chains wait on each other:
// in AVX2, 7 channels ran as fast as by channel vectors (1.35 ms), 8 slower (1.47-1.61 against
// 1.32-1.36).
constexpr int64_t kFewChannelsMost = std::min<int64_t>(kMaxFewChannels, kFewChannelsAccumulators / 2);

template <typename T, int kChannels>
inline void few_channels_rows(const T* padded, const T* weight, T* out, const ColumnGeometry& g,
                              const PaddedTaps& taps, int64_t l0, int64_t l1) {
  constexpr int n = kLanes<T>, kRows = few_channels_rows_per_pass(kChannels);
  const int64_t K = taps.offset.size(), L = g.cols_numel(), L2 = g.cols[2];
  const int64_t rows = min64(kRows, g.cols[1] - l1);
  const T* from[kRows];
  for (int r = 0; r < kRows; ++r) from[r] = padded + taps.start(g, l0, l1 + min64(r, rows - 1));
  for (int64_t l2 = 0; l2 < L2; l2 += n) {
    Lanes<T> acc[kChannels][kRows];  // unrolled, so that they live in registers
#pragma GCC unroll 8
    for (int c = 0; c < kChannels; ++c) {
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) acc[c][r] = splat(T(0));
    }
    for (int64_t t = 0; t < K; ++t) {
      Lanes<T> in[kRows];
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) in[r] = load_lanes(from[r] + l2 + taps.offset[t]);
#pragma GCC unroll 8
      for (int c = 0; c < kChannels; ++c) {
        const Lanes<T> w = splat(weight[c * K + t]);
#pragma GCC unroll 4
        for (int r = 0; r < kRows; ++r) acc[c][r] = fused_multiply_add(w, in[r], acc[c][r]);
      }
    }
    // Out through memory: lane by lane from the registers cost a tenth of the time.
    T sums[kChannels][kRows][n];
#pragma GCC unroll 8
    for (int c = 0; c < kChannels; ++c) {
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) store_lanes(sums[c][r], acc[c][r]);
    }
    const int64_t count = min64(n, L2 - l2);
    for (int c = 0; c < kChannels; ++c) {
      for (int r = 0; r < rows; ++r) {
        std::memcpy(out + c * L + (l0 * g.cols[1] + l1 + r) * L2 + l2, sums[c][r], count * sizeof(T));
      }
    }
  }
}

template <typename T, int kChannels>
inline void few_channels_plane(const T* padded, const T* weight, T* out, const ColumnGeometry& g,
                               const PaddedTaps& taps) {
  constexpr int kRows = few_channels_rows_per_pass(kChannels);
  for (int64_t l0 = 0; l0 < g.cols[0]; ++l0) {
    for (int64_t l1 = 0; l1 < g.cols[1]; l1 += kRows) {
      few_channels_rows<T, kChannels>(padded, weight, out, g, taps, l0, l1);
    }
  }
}

// One image's group with out_channels <= kFewChannelsMost: its Cg input planes (image)
// padded into `padded` (taps.numel() + lanes values), then its output planes (out);
// weight: the group's (out_channels, Cg*K) kernel as it is.
template <typename T, typename Acc>
inline void few_channels_forward_group(const T* image, const T* weight, T* out, T* padded, const ColumnGeometry& g,
                                       const PaddedTaps& taps, int64_t out_channels) {
  pad_planes(image, taps.channels, g, taps, padded);
  for (int v = 0; v < kLanes<T>; ++v) padded[taps.numel() + v] = T(0);
  switch (out_channels) {
    case 1: few_channels_plane<T, 1>(padded, weight, out, g, taps); break;
    case 2: few_channels_plane<T, 2>(padded, weight, out, g, taps); break;
    case 3: few_channels_plane<T, 3>(padded, weight, out, g, taps); break;
    case 4: few_channels_plane<T, 4>(padded, weight, out, g, taps); break;
    case 5: few_channels_plane<T, 5>(padded, weight, out, g, taps); break;
    case 6: few_channels_plane<T, 6>(padded, weight, out, g, taps); break;
    case 7: few_channels_plane<T, 7>(padded, weight, out, g, taps); break;
    default: few_channels_plane<T, 8>(padded, weight, out, g, taps); break;
  }
}

// sums (acc[b], channel vector b) += kP consecutive positions' output gradients (vector b's
// at dy + b * block_stride, a vector per position) times the input each of kT taps reads (at
// + tap_offset[t] + p), at unit stride: each tap's offset (no registers left for them all) is
// read once for the kP positions, each input value broadcast once for the kBlocks vectors;
// each sum still adds position after position. The empty asm hides `at` and the offsets from
// GCC, which would otherwise keep a pointer per tap and position on the stack (a load per
// product instead of one per kP). Four positions per pass instead of two: the grouped bench's
// weight gradient 2.19 -> 1.93 ms (one vector of 8 taps).
template <typename T, int kBlocks, int kT, int kP>
inline void add_positions(const T* at, const int64_t* tap_offset, const T* dy, int64_t block_stride,
                          Lanes<T> (&acc)[kBlocks][kT]) {
  constexpr int n = kLanes<T>;
  Lanes<T> d[kBlocks][kP];
#pragma GCC unroll 4
  for (int b = 0; b < kBlocks; ++b) {
#pragma GCC unroll 4
    for (int p = 0; p < kP; ++p) d[b][p] = load_lanes(dy + b * block_stride + p * n);
  }
  asm("" : "+r"(at), "+r"(tap_offset));
#pragma GCC unroll 16
  for (int t = 0; t < kT; ++t) {
    const T* tap = at + tap_offset[t];
#pragma GCC unroll 4
    for (int p = 0; p < kP; ++p) {
      const Lanes<T> value = splat(tap[p]);
#pragma GCC unroll 4
      for (int b = 0; b < kBlocks; ++b) acc[b][t] = fused_multiply_add(d[b][p], value, acc[b][t]);
    }
  }
}

// One image's share of the weight gradient of tap block `first` (kWeightTaps taps of the
// group's Cg*K from there) for kBlocks consecutive channel vectors: sums (kWeightTaps vectors
// per channel vector) += over the image's positions, dy (its packed output gradient, a vector
// per position, the next channel vector's block_stride on) times the input each tap read in x
// (the image's group of padded planes). sums: plain values, as a container of vector types
// would not be aligned for them. (Passes over ranges of 256 positions, to keep dy in L1 for
// every block, were 10% slower.)
template <typename T, int kBlocks>
inline void add_image_taps(const T* x, const T* dy, int64_t block_stride, T* sums, int64_t first,
                           const ColumnGeometry& g, const PaddedTaps& taps) {
  constexpr int n = kLanes<T>, kT = kWeightTaps;
  constexpr int kP = kBlocks == 1 ? 4 : 1;  // positions per pass: as many as the registers hold
  const int64_t K = taps.offset.size(), s2 = g.stride[2];
  int64_t offset[kT];
  for (int t = 0; t < kT; ++t) offset[t] = taps.offset[min64(first + t, K - 1)];  // past K: a repeat, dropped
  Lanes<T> acc[kBlocks][kT];
#pragma GCC unroll 4
  for (int b = 0; b < kBlocks; ++b) {
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) acc[b][t] = load_lanes(sums + (b * kT + t) * n);
  }
  for (int64_t l0 = 0; l0 < g.cols[0]; ++l0) {
    for (int64_t l1 = 0; l1 < g.cols[1]; ++l1) {
      const T* row = x + taps.start(g, l0, l1);
      int64_t l2 = 0;
      // At unit stride, kP then two positions per pass (add_positions).
      for (; s2 == 1 && l2 + kP <= g.cols[2]; l2 += kP, dy += kP * n) {
        add_positions<T, kBlocks, kT, kP>(row + l2, offset, dy, block_stride, acc);
      }
      for (; kP > 2 && s2 == 1 && l2 + 2 <= g.cols[2]; l2 += 2, dy += 2 * n) {
        add_positions<T, kBlocks, kT, 2>(row + l2, offset, dy, block_stride, acc);
      }
      for (; l2 < g.cols[2]; ++l2, dy += n) {
        add_positions<T, kBlocks, kT, 1>(row + l2 * s2, offset, dy, block_stride, acc);
      }
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < kBlocks; ++b) {
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) store_lanes(sums + (b * kT + t) * n, acc[b][t]);
  }
}

// Weight-gradient task `task`: channel vectors [j, j + kWeightVectors) (those of them the
// group has) of group `group`, tap blocks [first, end) (`per_task` blocks of kWeightTaps taps
// of the group's Cg*K per task), each summed over every image (padded: the whole batch's
// planes) and position. Image by image, so that one image's output gradient serves every tap
// block while in cache; each sum runs the same operations in the same order however the
// blocks and vectors are cut into tasks.
template <typename T, typename Acc>
inline void direct_backward_weight_task(const T* padded, const T* grad_output, T* grad_weight,
                                        const ColumnGeometry& g, const PaddedTaps& taps, int64_t batch,
                                        int64_t groups, int64_t out_channels, int64_t per_task, int64_t task) {
  constexpr int n = kLanes<T>, kT = kWeightTaps;
  const int64_t K = taps.offset.size(), L = g.cols_numel();
  const int64_t tap_blocks = ceil_div(K, kT), chunks = ceil_div(tap_blocks, per_task);
  const int64_t blocks = ceil_div(out_channels, n), tiles = ceil_div(blocks, kWeightVectors);
  const int64_t chunk = task % chunks, tile = (task / chunks) % tiles, group = task / (chunks * tiles);
  const int64_t first = chunk * per_task, end = min64(tap_blocks, first + per_task);
  const int64_t j = tile * kWeightVectors, vectors = min64(kWeightVectors, blocks - j);
  const int64_t tile_values = kWeightVectors * kT * n;  // of sums, per tap block
  std::vector<T> sums((end - first) * tile_values, T(0));
  for (int64_t image = 0; image < batch; ++image) {
    const T* x = padded + (image * groups + group) * taps.channels * taps.plane;
    const T* dy = grad_output + ((image * groups + group) * blocks + j) * L * n;
    for (int64_t b = first; b < end; ++b) {
      T* block_sums = sums.data() + (b - first) * tile_values;
      if (kWeightVectors > 1 && vectors == kWeightVectors) {
        add_image_taps<T, kWeightVectors>(x, dy, L * n, block_sums, b * kT, g, taps);
      } else {
        for (int64_t u = 0; u < vectors; ++u) {
          add_image_taps<T, 1>(x, dy + u * L * n, L * n, block_sums + u * kT * n, b * kT, g, taps);
        }
      }
    }
  }
  for (int64_t b = first; b < end; ++b) {
    for (int64_t u = 0; u < vectors; ++u) {
      for (int t = 0; t < kT && b * kT + t < K; ++t) {
        for (int v = 0; v < n && (j + u) * n + v < out_channels; ++v) {
          grad_weight[(group * out_channels + (j + u) * n + v) * K + b * kT + t] =
              sums[(b - first) * tile_values + (u * kT + t) * n + v];
        }
      }
    }
  }
}

template <typename T, typename Acc>
DirectConvCpuKernels<T, Acc> direct_conv_cpu_kernels() {
  return {kLanes<T>, kWeightTaps, kWeightVectors, kImagesPerPass, kFewChannelsMost, &pad_planes<T>, &pack_lanes<T>,
          &direct_forward_group<T, Acc>, &direct_forward_position<T, Acc>, &direct_backward_weight_task<T, Acc>,
          &few_channels_forward_group<T, Acc>};
}

}  // namespace CONVOPS_CPU_ISA
}  // namespace kernels
}  // namespace convops
