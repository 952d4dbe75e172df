// CPU launchers for the column kernels and the CPU registration of the
// convolution family. Both engines of cpu_engine.h run the math of kernels/im2col.h.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include "../cpu_engine.h"
#include "../../kernels/depthwise.h"
#include "../../kernels/direct_conv.h"
#include "../../kernels/transpose_cpu.h"
#include "../../kernels/winograd.h"
#include "conv.h"

namespace convops {
namespace ops {
namespace {

// The table (kernels::GatherTable, ReaderTable) of geometry g, kept per thread for the last
// geometry it served: the chunks of one call, and the steps of a training loop, share it
// (building it costs integer divisions per entry; per chunk it cost more than the copy).
template <typename Table>
const Table& table_for(const ColumnGeometry& g) {
  thread_local ColumnGeometry geometry{};
  thread_local std::unique_ptr<Table> table;
  if (table == nullptr || std::memcmp(&geometry, &g, sizeof(g)) != 0) {
    table = std::make_unique<Table>(g);
    geometry = g;
  }
  return *table;
}

// The row engine: every (plane, tap) row of `columns` over the output positions [lo, hi),
// in parallel; whole images' columns of short output rows gathered (kernels::GatherTable).
// fold: kernels::im2col_rows.
void im2col_rows_cpu(const at::Tensor& image, at::Tensor& columns, const ColumnGeometry& g, int64_t lo, int64_t hi,
                     int64_t fold) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "convops::im2col", [&] {
    const scalar_t* in = image.const_data_ptr<scalar_t>();
    scalar_t* out = columns.mutable_data_ptr<scalar_t>();
    const int64_t rows = columns.numel() / (hi - lo);
    if (lo == 0 && hi == g.cols_numel() && kernels::GatherTable::suits(g)) {
      const auto& table = table_for<kernels::GatherTable>(g);
      at::parallel_for(0, rows, grain_for(hi - lo), [&](int64_t begin, int64_t end) {
        kernels::im2col_rows_gathered(in, out, g, table, begin, end, fold);
      });
      return;
    }
    const kernels::TapRanges taps(g);
    at::parallel_for(0, rows, grain_for(hi - lo), [&](int64_t begin, int64_t end) {
      kernels::im2col_rows(in, out, g, taps, begin, end, lo, hi, fold);
    });
  });
}

void im2col_cpu(const at::Tensor& image, at::Tensor& columns, const ColumnGeometry& g) {
  if (!use_element_engine()) {
    im2col_rows_cpu(image, columns, g, 0, g.cols_numel(), 0);
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "convops::im2col", [&] {
    const scalar_t* in = image.const_data_ptr<scalar_t>();
    scalar_t* out = columns.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, columns.numel() / g.kernel_numel(), kElementGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) kernels::im2col_position(in, g, i, out);
    });
  });
}

// Side-by-side chunks and tiles run the row engine only: the element engine's tests use
// images small enough for whole-image columns, folded by a copy.
bool im2col_folded_cpu(const at::Tensor& image, at::Tensor& columns, const ColumnGeometry& g) {
  if (use_element_engine()) return false;
  im2col_rows_cpu(image, columns, g, 0, g.cols_numel(), image.size(0));
  return true;
}

bool im2col_tile_cpu(const at::Tensor& image, at::Tensor& columns, const ColumnGeometry& g, int64_t lo, int64_t hi) {
  if (use_element_engine()) return false;
  im2col_rows_cpu(image, columns, g, lo, hi, 0);
  return true;
}

void col2im_cpu(const at::Tensor& columns, at::Tensor& image, const ColumnGeometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, columns.scalar_type(), "convops::col2im", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* in = columns.const_data_ptr<scalar_t>();
    scalar_t* out = image.mutable_data_ptr<scalar_t>();
    if (use_element_engine()) {
      at::parallel_for(0, image.numel(), kElementGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          out[i] = static_cast<scalar_t>(kernels::col2im_element<scalar_t, acc_t>(in, g, i));
        }
      });
      return;
    }
    const int64_t planes = image.numel() / g.image_numel();
    if (kernels::ReaderTable::suits(g)) {
      const auto& table = table_for<kernels::ReaderTable>(g);
      at::parallel_for(0, planes, grain_for(g.image_numel() * g.kernel_numel()), [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(g.image_numel());
        for (int64_t p = begin; p < end; ++p) kernels::col2im_plane_gathered(in, out, acc.data(), g, table, p);
      });
      return;
    }
    const kernels::TapRanges taps(g);
    at::parallel_for(0, planes, grain_for(g.image_numel() * g.kernel_numel()), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(kernels::col2im_plane_scratch(g));
      for (int64_t p = begin; p < end; ++p) kernels::col2im_plane(in, out, acc.data(), g, taps, p);
    });
  });
}

// At unit stride the input gradient is itself a correlation: of grad_output with the kernel
// flipped in every dim (and, per group, transposed: in and out channels swapped), padded
// by dil*(K-1) - pad (when that is >= 0), which the depthwise, direct and Winograd forward
// forms run. The geometry of that correlation, or nothing where it does not apply.
c10::optional<ColumnGeometry> input_gradient_as_forward(const ColumnGeometry& g) {
  if (!g.unit_stride()) return c10::nullopt;
  ColumnGeometry t = g;
  for (int d = 0; d < kernels::kMaxSpatial; ++d) {
    t.image[d] = g.cols[d];
    t.cols[d] = g.image[d];
    t.pad[d] = g.dil[d] * (g.kernel[d] - 1) - g.pad[d];
    if (t.pad[d] < 0) return c10::nullopt;
  }
  return t;
}

// The kernel of that correlation: each group's (O/G, C/G, *K) kernel transposed to
// (C/G, O/G, *K) and flipped in every spatial dim, as (C, O/G, *K).
at::Tensor input_gradient_kernel(const at::Tensor& weight, int64_t groups) {
  std::vector<int64_t> spatial_dims(weight.dim() - 2), sizes = weight.sizes().vec();
  std::iota(spatial_dims.begin(), spatial_dims.end(), 3);
  sizes[0] = weight.size(1) * groups;
  sizes[1] = weight.size(0) / groups;
  return weight.unflatten(0, {groups, weight.size(0) / groups})
      .transpose(1, 2)
      .flip(spatial_dims)
      .reshape(sizes)
      .contiguous();
}

// The depthwise forms for this call (the copy for this CPU, cpu_engine.h).
template <typename T, typename Acc>
const kernels::DepthwiseCpuKernels<T, Acc>& depthwise_forms() {
  return cpu_forms_for_call<&kernels::depthwise_cpu_kernels<T, Acc>>();
}

// Scratch of the depthwise forward plane and weight-gradient channel: the output plane, or
// at unit stride the padded input plane and as many "wide" positions (kernels/depthwise.h).
int64_t depthwise_scratch(const ColumnGeometry& g) {
  return g.unit_stride() ? 2 * g.padded_numel() : g.cols_numel();
}

// Depthwise: one plane (or, for the weight gradient, one channel) per task. The element
// engine declines, so the tests also run depthwise problems through im2col + GEMM, the
// path the GPU takes.
void run_depthwise_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                           at::Tensor& output, const ColumnGeometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "convops::conv", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = depthwise_forms<scalar_t, acc_t>();
    const kernels::TapRanges taps(g);
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    const scalar_t* b = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    const int64_t planes = output.numel() / g.cols_numel(), multiplier = output.size(1) / input.size(1);
    at::parallel_for(0, planes, grain_for(g.cols_numel() * g.kernel_numel()), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(depthwise_scratch(g));
      for (int64_t p = begin; p < end; ++p) forms.forward_plane(in, w, b, out, acc.data(), g, taps, multiplier, p);
    });
  });
}

bool depthwise_forward_cpu(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                           at::Tensor& output, const ColumnGeometry& g) {
  if (use_element_engine()) return false;
  run_depthwise_forward(input, weight, bias, output, g);
  return true;
}

bool depthwise_backward_input_cpu(const at::Tensor& grad_output, const at::Tensor& weight, at::Tensor& grad_input,
                                  const ColumnGeometry& g) {
  // A channel multiplier sums several output channels into each input channel: im2col + GEMM.
  if (use_element_engine() || grad_output.size(1) != grad_input.size(1)) return false;
  if (const auto as_forward = input_gradient_as_forward(g)) {
    run_depthwise_forward(grad_output, input_gradient_kernel(weight, grad_input.size(1)), at::Tensor(), grad_input,
                          *as_forward);
    return true;
  }
  const auto type = grad_output.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, type, "convops::conv_backward_input", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = depthwise_forms<scalar_t, acc_t>();
    const kernels::TapRanges taps(g);
    const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    scalar_t* dx = grad_input.mutable_data_ptr<scalar_t>();
    const int64_t planes = grad_input.numel() / g.image_numel();
    at::parallel_for(0, planes, grain_for(g.cols_numel() * g.kernel_numel()), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(g.image_numel());
      for (int64_t p = begin; p < end; ++p) forms.backward_input_plane(dy, w, dx, acc.data(), g, taps, p);
    });
  });
  return true;
}

bool depthwise_backward_weight_cpu(const at::Tensor& grad_output, const at::Tensor& input, at::Tensor& grad_weight,
                                   const ColumnGeometry& g) {
  if (use_element_engine()) return false;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "convops::conv_backward_weight", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = depthwise_forms<scalar_t, acc_t>();
    const kernels::TapRanges taps(g);
    const scalar_t* dy = grad_output.const_data_ptr<scalar_t>();
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    acc_t* dw = grad_weight.mutable_data_ptr<acc_t>();
    const int64_t batch = input.size(0), K = g.kernel_numel(), out_channels = grad_output.size(1);
    const int64_t multiplier = out_channels / input.size(1);
    at::parallel_for(0, out_channels, grain_for(batch * g.cols_numel() * K), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> scratch(depthwise_scratch(g));
      for (int64_t o = begin; o < end; ++o) {
        forms.backward_weight_channel(dy, x, dw + o * K, batch, scratch.data(), g, taps, multiplier, o);
      }
    });
  });
  return true;
}

// ---------------------------------------------------------------- direct forms
// Groups with at most this many output channels run the direct forms (kernels/direct_conv.h)
// instead of im2col + GEMM: their columns cost more than the products they feed. The weight
// gradient's tasks (8 taps each over the whole batch) lost to the GEMM at 64 channels and more,
// but for small images (at most kSideBySideMaxPositions positions), whose columns cost a third
// of im2col + GEMM: ResNet-18's 64ch at 8x8, batch 32, 2.4 -> 1.53 ms at 1 thread (torch 1.5),
// 1.23-1.4 -> 0.85-0.92 ms at 2.
constexpr int64_t kDirectMaxChannels = 64;
constexpr int64_t kDirectWeightGradientMaxChannels = 32;
// Wider groups run the direct forward too where their weights stay in L2 and each image has
// enough positions to reuse them (256ch at 14x14, whose 2304 x 196 GEMMs MKL runs at 150
// GFLOP/s: 0.74x -> 0.88x torch at 1 thread; 128ch at 28x28: 0.88x -> 1.0x). Not with larger
// weights (384ch at 13x13, 5 MiB: 0.77x -> 0.66x), which each image streams again, nor with few
// positions (512ch at 7x7: 0.82x -> 0.62x). Weights that fit in L2 need fewer positions:
// ResNet's 128ch at 4x4 (576 KiB of weights, 16 positions), whose im2col of short rows cost
// half its GEMM: 2.4 -> 1.75 ms at 1 thread, 1.9 -> 0.9 ms at 2.
constexpr int64_t kDirectMinPositions = 64;
constexpr int64_t kDirectWeightBytes = int64_t(3) << 20;
constexpr int64_t kDirectL2WeightBytes = int64_t(768) << 10;
constexpr int64_t kDirectMinL2Positions = 16;

template <typename T>
const kernels::DirectConvCpuKernels<T, T>& direct_forms() {
  return cpu_forms_for_call<&kernels::direct_conv_cpu_kernels<T, T>>();
}

// Whether the direct and Winograd forms may take t's convolution: float and double on the row
// engine (the element and columns engines decline: the tests then run these problems
// through im2col + GEMM, the path the GPU takes).
bool direct_engine_takes(const at::Tensor& t) {
  return use_direct_conv() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

// Not 1x1 kernels: their columns are the input itself (or a subsample), and the GEMM wins
// (256->64 at 56x56: 5.6 against 13.5 ms).
bool suits_direct(const at::Tensor& t, const ColumnGeometry& g, int64_t out_per_group,
                  int64_t max_channels = kDirectMaxChannels) {
  return direct_engine_takes(t) && g.kernel_numel() > 1 && out_per_group <= max_channels;
}

// A constant of the direct forms this call runs (float or double), as get reads it.
template <typename Get>
int64_t direct_form_constant(const at::Tensor& t, Get get) {
  return t.scalar_type() == at::kFloat ? get(direct_forms<float>()) : get(direct_forms<double>());
}

// Images per pass of the small-images forward, and the most output channels of the
// few-channels forward.
int64_t direct_images_per_pass(const at::Tensor& t) {
  return direct_form_constant(t, [](const auto& forms) { return forms.images_per_pass; });
}
int64_t direct_few_channels_most(const at::Tensor& t) {
  return direct_form_constant(t, [](const auto& forms) { return forms.few_channels_most; });
}

// Small padded images run one output position of a pass of images at a time
// (kernels::direct_forward_position): only the taps that read inside the image. ResNet-18's
// stages on 32x32 inputs at 1 thread, batch 32: 128ch at 4x4 1.77 -> 1.05 ms forward (a third
// of its products read padding; torch 1.0-1.27), 64ch at 8x8 1.6 -> 1.3 ms (torch 1.23-1.4):
// both now at this core's FMA peak. Also for wide groups whose weights exceed L2 (each pass
// reads only its position's live taps): 256ch at 2x2 (2.3 MiB of weights, 4 positions) 1.2 ->
// 0.84 ms at 1 thread against im2col + GEMM (torch 1.19). Not for larger images, whose padding
// is a small share, nor for batches smaller than a pass.
constexpr int64_t kSideBySideMaxPositions = 64;
bool images_side_by_side(const ColumnGeometry& g, int64_t batch, int64_t images_per_pass) {
  return !g.unpadded() && g.cols_numel() <= kSideBySideMaxPositions && batch >= images_per_pass;
}

// The direct forward (also the input gradient as one) of a group of out_per_group output
// channels and weight_numel weights, over g's output positions.
bool suits_direct_forward(const at::Tensor& t, const ColumnGeometry& g, int64_t out_per_group, int64_t weight_numel) {
  if (!suits_direct(t, g, out_per_group, out_per_group)) return false;  // the engine, dtype and kernel
  if (out_per_group <= kDirectMaxChannels) return true;
  const int64_t weight_bytes = weight_numel * static_cast<int64_t>(t.element_size());
  if (weight_bytes <= kDirectL2WeightBytes) return g.cols_numel() >= kDirectMinL2Positions;
  return weight_bytes <= kDirectWeightBytes &&
         (g.cols_numel() >= kDirectMinPositions || images_side_by_side(g, t.size(0), direct_images_per_pass(t)));
}

// (G, M, R) -> (G, ceil(M / lanes), R, lanes), zero past M: the entries of M side by side,
// a vector of `lanes` per (block, r), by the direct forms' pack_lanes; into this thread's
// scratch `slot` when given (large ones), else a fresh tensor. For LeNet's weights and bias,
// ATen's pad, transpose and copy cost a tenth of the convolution.
template <typename T>
at::Tensor pack_lanes(const kernels::DirectConvCpuKernels<T, T>& forms, const T* from, int64_t G, int64_t M,
                      int64_t R, std::optional<CpuScratch> slot = std::nullopt) {
  const int64_t lanes = forms.lanes, blocks = kernels::ceil_div(M, lanes), numel = G * blocks * R * lanes;
  constexpr auto dtype = c10::CppTypeToScalarType<T>::value;
  const auto packed = slot ? cpu_scratch(*slot, numel, dtype) : at::empty({numel}, dtype);
  T* to = packed.template mutable_data_ptr<T>();
  at::parallel_for(0, G * blocks, grain_for(lanes * R), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / blocks, first = task % blocks * lanes;
      forms.pack_lanes(from + (g * M + first) * R, R, std::min(lanes, M - first), R, to + task * R * lanes);
    }
  });
  return packed;
}

// output (N, G*Og, *L) from input (N, G*Cg, *X) by the small-images form over `taps` (its
// positions: output positions), weight and bias packed (pack_lanes; bias may be undefined),
// K taps per plane: tasks (group, pass of images, position) in that order, so that each
// thread runs a pass's images at consecutive positions.
template <typename T>
void run_side_by_side(const kernels::DirectConvCpuKernels<T, T>& forms, const at::Tensor& input, const at::Tensor& w,
                      const at::Tensor& b, at::Tensor& output, const kernels::PositionTaps& taps, int64_t K,
                      int64_t groups) {
  const int64_t N = input.size(0), C = input.size(1), O = output.size(1), Cg = C / groups, Og = O / groups;
  const int64_t X = input.numel() / (N * C), L = output.numel() / (N * O);
  // Passes of nearly equal sizes (each run by a pass of exactly that many images), as many per
  // thread: passes of 6 and a last of 2 gave one thread of 2 a third more work (ResNet's 64ch
  // 8x8, batch 32, at 2 threads 0.89 -> 0.70-0.76 ms; 128ch 4x4 0.75 -> 0.56-0.61 ms, and
  // 1.30 -> 1.05 ms at 1 thread, where passes of 5 and 6 beat six of 6 and one of 3).
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), kernels::ceil_div(N, forms.images_per_pass));
  const int64_t passes = threads * kernels::ceil_div(kernels::ceil_div(N, threads), forms.images_per_pass);
  const int64_t w_group = w.numel() / groups, b_group = b.defined() ? b.numel() / groups : 0;
  const T* x = input.const_data_ptr<T>();
  const T* wp = w.const_data_ptr<T>();
  const T* bp = b.defined() ? b.const_data_ptr<T>() : nullptr;
  T* out = output.mutable_data_ptr<T>();
  at::parallel_for(0, groups * passes * L, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t group = task / (passes * L), pass = task / L % passes;
      const int64_t first = pass * N / passes, count = (pass + 1) * N / passes - first;
      forms.forward_position(x + group * Cg * X, wp + group * w_group, bp != nullptr ? bp + group * b_group : nullptr,
                             out + group * Og * L, taps, K, X, L, C * X, O * L, Cg, Og, first, count, task % L);
    }
  });
}

// output (N, O, *L) = conv(input (N, C, *X), weight (O, C/groups, *K)) + bias, one task per
// (image, group), or per (group, pass of images, output position) for small padded images
// (run_side_by_side); every tensor contiguous.
void run_direct_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                        at::Tensor& output, const ColumnGeometry& g, int64_t groups) {
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "convops::conv", [&] {
    const auto& forms = direct_forms<scalar_t>();
    const int64_t C = input.size(1), O = output.size(1), Cg = C / groups, Og = O / groups;
    const auto w = pack_lanes(forms, weight.const_data_ptr<scalar_t>(), groups, Og, Cg * g.kernel_numel());
    const auto b = bias.defined() ? pack_lanes(forms, bias.const_data_ptr<scalar_t>(), groups, Og, 1) : at::Tensor();
    if (images_side_by_side(g, input.size(0), forms.images_per_pass)) {
      run_side_by_side(forms, input, w, b, output, kernels::forward_position_taps(g), g.kernel_numel(), groups);
      return;
    }
    const kernels::PaddedTaps taps(g, Cg);
    const int64_t X = g.image_numel(), L = g.cols_numel();
    const scalar_t* wp = w.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    const int64_t w_group = w.numel() / groups, b_group = b.defined() ? b.numel() / groups : 0;
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, input.size(0) * groups, 1, [&](int64_t begin, int64_t end) {
      const auto scratch = cpu_scratch(CpuScratch::kPaddedImage, taps.numel(), input.scalar_type());
      scalar_t* padded = scratch.mutable_data_ptr<scalar_t>();  // forward_group fills it
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / groups, group = task % groups;
        forms.forward_group(x + (n * C + group * Cg) * X, wp + group * w_group,
                            bp != nullptr ? bp + group * b_group : nullptr, out + (n * O + group * Og) * L, padded,
                            g, taps, Og);
      }
    });
  });
}

// output (N, O, *L) = conv(input, weight) without bias, for O/groups <= the forms' few_channels_most:
// vectorised over output positions (kernels::few_channels_forward_group), one task per
// (image, group); every tensor contiguous.
void run_few_channels_forward(const at::Tensor& input, const at::Tensor& weight, at::Tensor& output,
                              const ColumnGeometry& g, int64_t groups) {
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "convops::conv", [&] {
    const auto& forms = direct_forms<scalar_t>();
    const int64_t C = input.size(1), O = output.size(1), Cg = C / groups, Og = O / groups;
    const kernels::PaddedTaps taps(g, Cg);
    const int64_t X = g.image_numel(), L = g.cols_numel(), K = taps.offset.size();
    const auto w = weight.contiguous();
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const scalar_t* wp = w.const_data_ptr<scalar_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, input.size(0) * groups, 1, [&](int64_t begin, int64_t end) {
      const auto scratch = cpu_scratch(CpuScratch::kPaddedImage, taps.numel() + forms.lanes, input.scalar_type());
      scalar_t* padded = scratch.mutable_data_ptr<scalar_t>();  // filled per task
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / groups, group = task % groups;
        forms.few_channels_forward_group(x + (n * C + group * Cg) * X, wp + group * Og * K,
                                         out + (n * O + group * Og) * L, padded, g, taps, Og);
      }
    });
  });
}

// ---------------------------------------------------------------- Winograd F(2x2, 3x3)
// 2-D 3x3 convolutions at unit stride and dilation run Winograd's F(2x2, 3x3)
// (kernels/winograd.h): 16 products per tile of 2x2 outputs and channel pair instead of 36,
// as 16 GEMMs per block of tiles, the transforms around them. Where its groups have at least
// kWinogradMinChannels input and output channels and each image at least kWinogradMinTiles
// tiles, or kWinogradMinWholeTiles where the outputs fill whole tiles (even sides); measured
// forward at 1 thread on a Zen 4 EPYC against the direct forms (N8: 64ch at 56x56 18.7 ->
// 11.5 ms, 128ch at 28x28 18.1 -> 13.7; N32: 64ch at 32x32 24.2 -> 15.0, 128ch at 16x16 23.9
// -> 18.2). Fewer channels leave its products too thin to pay for the transforms (groups of
// 16 at 28x28: 2.6 -> 2.6-3.1 ms). Small images fill a block together (run_winograd_forward),
// which on a Zen 3 EPYC at 1 thread (AVX2) took, against the direct forms or im2col + GEMM,
// 256ch at 14x14 N8 from 25-30 to 21-29 ms (torch 24-32), at 8x8 N8 12.5-16.6 -> 8.2-12.2;
// 128ch at 8x8 N32 10-14 -> 5.3-7.2; 64ch at 8x8 N32 2.7-3.6 -> 1.7-2.5. Odd sides still
// lose to the half-empty tiles: 512ch at 7x7 N8 20-28 -> 22-41 ms, 256ch there no faster.
constexpr int64_t kWinogradMinChannels = 32;
constexpr int64_t kWinogradMinTiles = 64;
constexpr int64_t kWinogradMinWholeTiles = 16;
// A block's transformed patches and products, 16 x (Cg + Og) x tiles values, stay in L2.
constexpr int64_t kWinogradBlockBytes = int64_t(768) << 10;
constexpr int64_t kWinogradMinBlock = 16;

template <typename T>
const kernels::WinogradCpuKernels<T, T>& winograd_forms() {
  return cpu_forms_for_call<&kernels::winograd_cpu_kernels<T, T>>();
}

// A 2-D geometry (dim 0 of one position, unpadded), on the direct forms' engine and types.
bool suits_winograd(const at::Tensor& t, const ColumnGeometry& g, int64_t in_per_group, int64_t out_per_group) {
  const bool whole_tiles = g.cols[1] % kernels::kWinogradTile == 0 && g.cols[2] % kernels::kWinogradTile == 0;
  return direct_engine_takes(t) && g.image[0] == 1 && g.kernel[0] == 1 && g.pad[0] == 0 &&
         g.kernel[1] == 3 && g.kernel[2] == 3 && g.unit_stride() && g.dil[1] == 1 && g.dil[2] == 1 &&
         in_per_group >= kWinogradMinChannels && out_per_group >= kWinogradMinChannels &&
         kernels::winograd_tiles(g) >= (whole_tiles ? kWinogradMinWholeTiles : kWinogradMinTiles);
}

// output (N, O, H', W') = conv(input (N, C, H, W), weight (O, C/groups, 3, 3)) + bias: the
// kernels transformed once, then one task per (group, block of tiles): a block is a run of
// the batch's tiles, image after image, so that small images fill it too; its patches are
// transformed (V) image by image, then its 16 GEMMs (M = U @ V), then M transformed into the
// outputs image by image. Every tensor contiguous.
void run_winograd_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                          at::Tensor& output, const ColumnGeometry& g, int64_t groups) {
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "convops::conv", [&] {
    const auto& forms = winograd_forms<scalar_t>();
    constexpr int64_t P = kernels::kWinogradPoints;
    const int64_t N = input.size(0), C = input.size(1), O = output.size(1), Cg = C / groups, Og = O / groups;
    const int64_t tiles = kernels::winograd_tiles(g), batch_tiles = N * tiles, X = g.image_numel(), L = g.cols_numel();
    const int64_t fit = kWinogradBlockBytes / (P * (Cg + Og) * static_cast<int64_t>(sizeof(scalar_t)));
    const int64_t block = std::min(batch_tiles, std::max(kWinogradMinBlock, fit));
    const int64_t blocks = kernels::ceil_div(batch_tiles, block);
    const auto options = input.options();
    const auto u = at::empty({P, O, Cg}, options);
    forms.kernels(weight.const_data_ptr<scalar_t>(), O * Cg, u.mutable_data_ptr<scalar_t>());
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const scalar_t* b = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    const int64_t pair = 2 * forms.lanes;  // the products go by pairs of vectors of tiles
    const int64_t ld = kernels::ceil_div(block, pair) * pair + pair;
    // Calls run(n, first, count, at) for the tiles [first, first + count) of image n that the
    // block's tiles [begin, begin + size) of the batch hold, the first of them at column at.
    const auto for_each_image = [&](int64_t begin, int64_t size, auto&& run) {
      for (int64_t t = begin, end = begin + size; t < end;) {
        const int64_t n = t / tiles, first = t - n * tiles, count = std::min(tiles - first, end - t);
        run(n, first, count, t - begin);
        t += count;
      }
    };
    at::parallel_for(0, groups * blocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> v(P * kernels::winograd_point_stride(Cg, ld, forms.lanes)),
          m(P * kernels::winograd_point_stride(Og, ld, forms.lanes));
      for (int64_t task = begin; task < end; ++task) {
        const int64_t group = task / blocks, first = task % blocks * block;
        const int64_t count = std::min(block, batch_tiles - first);
        // Image by image in column order: what one image's run writes past its last tile, the
        // next one's overwrites (kernels::winograd_input_block).
        for_each_image(first, count, [&](int64_t n, int64_t from, int64_t size, int64_t at) {
          forms.input_block(x + (n * C + group * Cg) * X, Cg, g, from, size, ld, v.data() + at);
        });
        forms.products(u.const_data_ptr<scalar_t>() + group * Og * Cg, O * Cg, Og, v.data(), Cg, count, ld, m.data());
        for_each_image(first, count, [&](int64_t n, int64_t from, int64_t size, int64_t at) {
          forms.output_block(m.data() + at, Og, b != nullptr ? b + group * Og : nullptr, g, from, size, ld,
                             out + (n * O + group * Og) * L);
        });
      }
    });
  });
}

// ---------------------------------------------------------------- dilation by phases
// A correlation at unit stride whose image and padding along each dilated dim are multiples
// of its dilation d is d undilated ones along that dim: output phase a (positions a, a + d,
// ...) reads only input phase a, through the kernel undilated, padded by pad / d
// (kernels::move_phases). The phases go side by side as more images, where Winograd takes
// them and not the dilated problem: make bench's dilated 3x3 (d2 64ch 56x56 N8) at 1 thread
// on a Zen 3 EPYC (AVX2, noisy), forward 29-39 -> 19-26 ms (torch 26-30), input gradient
// 29-43 -> 19-27 (torch 26-30); the two copies take about 3 ms of it (13 MB each way).
struct WinogradPlan {
  ColumnGeometry g;                      // the correlation Winograd runs
  int64_t phases[kernels::kMaxSpatial];  // along each dim; all 1: the problem itself
  int64_t count() const { return phases[0] * phases[1] * phases[2]; }
};

c10::optional<WinogradPlan> winograd_plan(const at::Tensor& t, const ColumnGeometry& g, int64_t in_per_group,
                                          int64_t out_per_group) {
  if (!g.unit_stride()) return c10::nullopt;
  WinogradPlan plan{g, {1, 1, 1}};
  for (int d = 0; d < kernels::kMaxSpatial; ++d) {
    const int64_t f = g.kernel[d] > 1 ? g.dil[d] : 1;
    if (g.image[d] % f != 0 || g.pad[d] % f != 0) return c10::nullopt;
    plan.phases[d] = f;
    plan.g.image[d] = g.image[d] / f;
    plan.g.cols[d] = g.cols[d] / f;
    plan.g.pad[d] = g.pad[d] / f;
    plan.g.dil[d] = g.dil[d] / f;
  }
  if (!suits_winograd(t, plan.g, in_per_group, out_per_group)) return c10::nullopt;
  return plan;
}

// Each (channels, *sides) plane of a batch of N images to its plan.count() phases, laid out
// as N * plan.count() images of `channels` planes (kSplit), or those phases back.
template <bool kSplit, typename T>
void move_batch_phases(std::conditional_t<kSplit, const T*, T*> batch, int64_t N, int64_t channels,
                       const int64_t (&sides)[kernels::kMaxSpatial], const WinogradPlan& plan,
                       std::conditional_t<kSplit, T*, const T*> phases) {
  const int64_t count = plan.count(), plane = sides[0] * sides[1] * sides[2], phase_plane = plane / count;
  at::parallel_for(0, N * channels, grain_for(plane), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t n = p / channels, c = p % channels;
      kernels::move_phases<kSplit, T>(batch + p * plane, sides, plan.phases,
                                      phases + (n * count * channels + c) * phase_plane, channels * phase_plane);
    }
  });
}

// output = Winograd's correlation of input with weight (+ bias) as `plan` runs it: by phases,
// the batch's phases copied out, run as plan.count() times the images and copied back.
void run_winograd(const WinogradPlan& plan, const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                  at::Tensor& output, const ColumnGeometry& g, int64_t groups) {
  const int64_t phases = plan.count();
  if (phases == 1) {
    run_winograd_forward(input, weight, bias, output, plan.g, groups);
    return;
  }
  const int64_t N = input.size(0), C = input.size(1), O = output.size(1);
  const int64_t X = plan.g.image_numel(), L = plan.g.cols_numel();
  // Kept between calls: fresh, their page faults took as long as the copies.
  const auto type = input.scalar_type();
  const auto input_phases = cpu_scratch(CpuScratch::kPhases, N * phases * C * X, type).view({N * phases, C, X});
  auto output_phases = cpu_scratch(CpuScratch::kPhaseOutputs, N * phases * O * L, type).view({N * phases, O, L});
  AT_DISPATCH_FLOATING_TYPES(type, "convops::conv", [&] {
    move_batch_phases<true, scalar_t>(input.const_data_ptr<scalar_t>(), N, C, g.image, plan,
                                      input_phases.mutable_data_ptr<scalar_t>());
    run_winograd_forward(input_phases, weight, bias, output_phases, plan.g, groups);
    move_batch_phases<false, scalar_t>(output.mutable_data_ptr<scalar_t>(), N, O, g.cols, plan,
                                       output_phases.const_data_ptr<scalar_t>());
  });
}

bool direct_forward_cpu(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                        at::Tensor& output, const ColumnGeometry& g, int64_t groups) {
  if (const auto plan = winograd_plan(input, g, weight.size(1), output.size(1) / groups)) {
    run_winograd(*plan, input, weight, bias, output, g, groups);
    return true;
  }
  if (!suits_direct_forward(input, g, output.size(1) / groups, weight.numel() / groups)) return false;
  run_direct_forward(input, weight, bias, output, g, groups);
  return true;
}

// The input gradient of small images at a stride (at unit stride it is a forward, below):
// each image position gathers the output positions that read it, by the small-images form
// with each group's kernel transposed and flipped. ResNet-18's stride-2 3x3 of 8x8 images,
// 64 -> 128 channels, batch 32: 2.25 -> 1.03 ms at 1 thread against W^T @ dy and col2im (torch
// 0.81-0.84); 128 -> 256 at 4x4: 1.23 -> 1.1 ms (torch 0.95-0.98).
bool strided_gradient_side_by_side(const at::Tensor& grad_output, const ColumnGeometry& g, int64_t weight_numel) {
  const int64_t weight_bytes = weight_numel * static_cast<int64_t>(grad_output.element_size());
  return direct_engine_takes(grad_output) && !g.unit_stride() && g.kernel_numel() > 1 &&
         g.image_numel() <= kSideBySideMaxPositions && grad_output.size(0) >= direct_images_per_pass(grad_output) &&
         weight_bytes <= kDirectWeightBytes;
}

// The input gradient at unit stride: the direct forward of grad_output with each group's
// kernel transposed (C/groups outputs, O/groups inputs) and flipped.
bool direct_backward_input_cpu(const at::Tensor& grad_output, const at::Tensor& weight, at::Tensor& grad_input,
                               const ColumnGeometry& g, int64_t groups) {
  if (strided_gradient_side_by_side(grad_output, g, weight.numel() / groups)) {
    AT_DISPATCH_FLOATING_TYPES(grad_output.scalar_type(), "convops::conv_backward_input", [&] {
      const auto& forms = direct_forms<scalar_t>();
      const int64_t K = g.kernel_numel(), Og = weight.size(0) / groups;
      const auto flipped = input_gradient_kernel(weight, groups);
      const auto w = pack_lanes(forms, flipped.const_data_ptr<scalar_t>(), groups, weight.size(1), Og * K);
      run_side_by_side(forms, grad_output, w, at::Tensor(), grad_input, kernels::input_gradient_position_taps(g), K,
                       groups);
    });
    return true;
  }
  const auto as_forward = input_gradient_as_forward(g);
  const int64_t in_per_group = weight.size(1);
  if (const auto plan = as_forward ? winograd_plan(grad_output, *as_forward, weight.size(0) / groups, in_per_group)
                                   : c10::nullopt) {
    run_winograd(*plan, grad_output, input_gradient_kernel(weight, groups), at::Tensor(), grad_input, *as_forward,
                 groups);
    return true;
  }
  if (!as_forward || !suits_direct_forward(grad_output, *as_forward, in_per_group, weight.numel() / groups)) {
    return false;
  }
  // Its output channels per group are the convolution's input channels per group, C/G. A
  // few of them (LeNet's 6, in AVX-512's 16 lanes or AVX2's 8) would leave the channel vectors
  // partly empty (AVX-512: 1.2 ms against W^T @ dy + col2im's 0.86; AVX2: 1.24 ms, the
  // few-channels form 0.94): those vectorise over positions instead.
  if (in_per_group <= direct_few_channels_most(grad_output)) {
    run_few_channels_forward(grad_output, input_gradient_kernel(weight, groups), grad_input, *as_forward, groups);
  } else {
    run_direct_forward(grad_output, input_gradient_kernel(weight, groups), at::Tensor(), grad_input, *as_forward,
                       groups);
  }
  return true;
}

// grad_weight (O, C/groups * K): the batch padded once, grad_output packed in channel
// vectors, then one task per (group, tile of channel vectors, block of taps), each over the batch.
bool direct_backward_weight_cpu(const at::Tensor& grad_output, const at::Tensor& input, at::Tensor& grad_weight,
                                const ColumnGeometry& g, int64_t groups) {
  const int64_t N = input.size(0), C = input.size(1), O = grad_output.size(1), Og = O / groups;
  // Small images' columns cost as much as their GEMM: there the direct form takes 64 channels.
  const bool small = g.cols_numel() <= kSideBySideMaxPositions;
  if (!suits_direct(input, g, Og, small ? kDirectMaxChannels : kDirectWeightGradientMaxChannels)) return false;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "convops::conv_backward_weight", [&] {
    const auto& forms = direct_forms<scalar_t>();
    const kernels::PaddedTaps taps(g, C / groups);
    const auto dy = pack_lanes(forms, grad_output.const_data_ptr<scalar_t>(), N * groups, Og, g.cols_numel(),
                               CpuScratch::kPackedGradient);
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const scalar_t* planes = x;  // without padding, the input is its own padded copy
    at::Tensor scratch;          // holds the padded batch (a fresh tensor above the kept size)
    if (!g.unpadded()) {
      scratch = cpu_scratch(CpuScratch::kPaddedBatch, N * C * taps.plane, input.scalar_type());
      scalar_t* padded = scratch.mutable_data_ptr<scalar_t>();  // pad_planes fills it
      at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          forms.pad_planes(x + n * C * g.image_numel(), C, g, taps, padded + n * C * taps.plane);
        }
      });
      planes = padded;
    }
    // Tap blocks are cut into tasks only as far as the threads need: each task reads every
    // image's output gradient once.
    const int64_t tiles = groups * kernels::ceil_div(kernels::ceil_div(Og, forms.lanes), forms.weight_vectors);
    const int64_t tap_blocks = kernels::ceil_div(taps.offset.size(), forms.taps_per_block);
    const int64_t chunks = std::min(tap_blocks, kernels::ceil_div(2 * at::get_num_threads(), tiles));
    const int64_t per_task = kernels::ceil_div(tap_blocks, chunks);
    scalar_t* dw = grad_weight.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, tiles * kernels::ceil_div(tap_blocks, per_task), 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        forms.backward_weight_task(planes, dy.const_data_ptr<scalar_t>(), dw, g, taps, N, groups, Og, per_task, task);
      }
    });
  });
  return true;
}

// The transposing copy between a dense (N, C, *S) tensor's two layouts, image by image
// (kernels/transpose_cpu.h): NCHW images are (C, S) matrices, channels_last ones (S, C).
// Float and double on the row engine; the element engine declines, as the GPU, whose
// launchers have no such form, takes ATen's copy.
bool relayout_cpu(const at::Tensor& from, at::Tensor& to) {
  const auto type = from.scalar_type();
  if (use_element_engine() || (type != at::kFloat && type != at::kDouble) || from.dim() < 4) return false;
  const int64_t N = from.size(0), C = from.size(1), S = from.numel() / std::max<int64_t>(N * C, 1);
  const bool to_channels_last = from.is_contiguous();
  AT_DISPATCH_FLOATING_TYPES(type, "convops::relayout", [&] {
    const auto& forms = cpu_forms_for_call<&kernels::transpose_cpu_kernels<scalar_t, scalar_t>>();
    const scalar_t* in = from.const_data_ptr<scalar_t>();
    scalar_t* out = to.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, N, grain_for(C * S), [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        forms.transpose(in + n * C * S, to_channels_last ? C : S, to_channels_last ? S : C, out + n * C * S);
      }
    });
  });
  return true;
}

const bool registered = DeviceTable<ColumnKernels>::set(
    c10::kCPU, ColumnKernels{&im2col_cpu, &col2im_cpu, &im2col_tile_cpu, &im2col_folded_cpu, &depthwise_forward_cpu,
                             &depthwise_backward_input_cpu, &depthwise_backward_weight_cpu, &direct_forward_cpu,
                             &direct_backward_input_cpu, &direct_backward_weight_cpu, &relayout_cpu});

}  // namespace

TORCH_LIBRARY_IMPL(convops, CPU, m) { register_conv_impls(m); }

}  // namespace ops
}  // namespace convops
