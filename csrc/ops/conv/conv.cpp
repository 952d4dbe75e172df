// Convolution family orchestration, written once for every device.
//
//   conv                 y[n, o, l]  = sum_{c,k} w[o, c, k] * x[n, c, l*stride - pad + k*dil] (+ bias[o])
//   conv_backward_input  dx = col2im(W^T @ dy)            (also the transposed convolution)
//   conv_backward_weight dw = sum_n dy[n] @ im2col(x[n])^T
// per group, over chunks of the batch so the column buffer stays bounded. The GEMM plan
// follows the problem's size (chunk_plan, tile_width): images with few output positions
// side by side in one GEMM (their columns filled so by the device where it can); small
// per-image GEMMs as one batched call, large ones one call each; an image whose columns
// would not stay in cache by tiles of output positions (and of groups). With several CPU
// threads, images are split among them (over_images), each thread's GEMMs single-threaded.
// Shapes: x (N, C, *X), w (O, C/groups, *K), y (N, O, *L). The forms compute in NCHW; channels_last
// arguments are copied to it, and the results back where torch's would be channels_last (conv_format).
#include "conv.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <vector>

#include "../gemm.h"

namespace convops {
namespace ops {
namespace {

// Upper bound on the column buffer of one batch chunk, in elements (256 KiB of float, in L2),
// unless one image needs more: it keeps the peak memory of a convolution near torch's (make bench
// measures it) and the columns in cache between im2col and the GEMM.
constexpr int64_t kColumnBufferElements = int64_t(1) << 16;
// On a GPU the bound is launches, not cache: a chunk of one image per im2col and GEMM ran
// LeNet's 64-image convolutions at a sixteenth of cuDNN's speed (make bench --device cuda).
// 16 MiB of float columns per chunk: whole batches of small images in one im2col and one
// batched GEMM, a few chunks for large ones.
constexpr int64_t kGpuColumnElements = int64_t(1) << 22;

const ColumnKernels& column_kernels(const char* op, const at::Tensor& t) {
  return DeviceTable<ColumnKernels>::get(op, t);
}

// `from`'s values in a new dense tensor of layout `format`: by the device's transposing copy
// between NCHW and channels_last where it has one (ATen's strided copy took 15 ms where the
// CPU's takes 3.3, for a (8, 256, 56, 56) batch), else by ATen's.
at::Tensor relaid(const char* op, const at::Tensor& from, at::MemoryFormat format) {
  auto to = at::empty(from.sizes(), from.options().memory_format(format));
  const auto relayout = column_kernels(op, from).relayout;
  if (relayout == nullptr || !relayout(from, to)) to.copy_(from);
  return to;
}

// t as a contiguous (NCHW) tensor, the layout the forms read.
at::Tensor dense(const char* op, const at::Tensor& t) {
  if (t.is_contiguous()) return t;
  const bool channels_last = t.dim() >= 4 && t.is_contiguous(t.suggest_memory_format());
  return channels_last ? relaid(op, t, at::MemoryFormat::Contiguous) : t.contiguous();
}

// The layout torch's convolutions return, and so convops': channels_last where either tensor
// argument is laid out so (Tensor::suggest_memory_format), else contiguous. The forms compute
// in NCHW; a channels_last result is their output transposed.
at::MemoryFormat conv_format(const at::Tensor& a, const at::Tensor& b) {
  const auto format = a.suggest_memory_format();
  return format != at::MemoryFormat::Contiguous ? format : b.suggest_memory_format();
}

at::Tensor in_format(const char* op, const at::Tensor& t, at::MemoryFormat format) {
  return format == at::MemoryFormat::Contiguous ? t : relaid(op, t, format);
}

// Validates the sliding-window parameters and builds the 3-D geometry.
ColumnGeometry geometry(const char* op, int64_t channels, at::IntArrayRef image, at::IntArrayRef kernel,
                        at::IntArrayRef dilation, at::IntArrayRef padding, at::IntArrayRef stride) {
  const size_t d = image.size();
  check_param(op, "kernel_size", kernel, d, 1);
  check_param(op, "stride", stride, d, 1);
  check_param(op, "dilation", dilation, d, 1);
  check_param(op, "padding", padding, d, 0);
  ColumnGeometry g{};
  g.channels = channels;
  pad_front(image, 1, g.image);
  pad_front(kernel, 1, g.kernel);
  pad_front(stride, 1, g.stride);
  pad_front(padding, 0, g.pad);
  pad_front(dilation, 1, g.dil);
  for (size_t i = 0; i < static_cast<size_t>(kernels::kMaxSpatial); ++i) {
    const int64_t span = g.dil[i] * (g.kernel[i] - 1) + 1;
    TORCH_CHECK(g.image[i] + 2 * g.pad[i] >= span, op, ": kernel (size ", kernel, " with dilation ", dilation,
                ") is larger than the padded input (size ", image, " with padding ", padding, ")");
    g.cols[i] = (g.image[i] + 2 * g.pad[i] - span) / g.stride[i] + 1;
  }
  return g;
}

std::vector<int64_t> spatial_of(const ColumnGeometry& g, size_t d, bool cols) {
  std::vector<int64_t> out;
  for (size_t i = kernels::kMaxSpatial - d; i < static_cast<size_t>(kernels::kMaxSpatial); ++i) {
    out.push_back(cols ? g.cols[i] : g.image[i]);
  }
  return out;
}

bool is_pointwise(const ColumnGeometry& g) {
  for (int i = 0; i < kernels::kMaxSpatial; ++i) {
    if (g.kernel[i] != 1 || g.stride[i] != 1 || g.pad[i] != 0) return false;
  }
  return true;
}

int64_t chunk_size(int64_t batch, int64_t per_image, bool on_cpu) {
  const int64_t bound = on_cpu ? kColumnBufferElements : kGpuColumnElements;
  return std::max<int64_t>(1, std::min<int64_t>(batch, bound / std::max<int64_t>(per_image, 1)));
}

// Everything a convolution-family op needs to know about its problem.
struct ConvProblem {
  ColumnGeometry g;
  int64_t batch, in_channels, out_channels, groups;
  size_t spatial;
  int64_t in_per_group() const { return in_channels / groups; }
  int64_t out_per_group() const { return out_channels / groups; }
  int64_t rows_per_group() const { return in_per_group() * g.kernel_numel(); }  // C/G * K
  int64_t column_rows() const { return in_channels * g.kernel_numel(); }         // C * K, one image
  int64_t multiply_adds_per_image() const { return out_per_group() * rows_per_group() * g.cols_numel(); }  // per group
  std::vector<int64_t> output_sizes() const {
    auto s = spatial_of(g, spatial, true);
    s.insert(s.begin(), {batch, out_channels});
    return s;
  }
};

// One input channel per group (groups == in_channels), any number of output channels per
// group (torch's channel multiplier; also a single-channel input with groups == 1).
bool is_depthwise(const ConvProblem& p) { return p.groups == p.in_channels; }

// Shared by every conv op: x_sizes (N, C, *X), w_sizes (O, C/groups, *K).
ConvProblem conv_problem(const char* op, at::IntArrayRef x_sizes, at::IntArrayRef w_sizes, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(w_sizes.size() == x_sizes.size(), op, ": expected weight of ", x_sizes.size(),
              " dims (out_channels, in_channels/groups, *kernel) to match the input, got weight of shape ", w_sizes);
  TORCH_CHECK(groups > 0, op, ": expected groups > 0, got ", groups);
  const int64_t C = x_sizes[1], O = w_sizes[0];
  TORCH_CHECK(C % groups == 0, op, ": expected in_channels (", C, ") to be divisible by groups (", groups, ")");
  TORCH_CHECK(O % groups == 0, op, ": expected out_channels (", O, ") to be divisible by groups (", groups, ")");
  TORCH_CHECK(w_sizes[1] * groups == C, op, ": expected weight of shape (out_channels, in_channels/groups = ",
              C / groups, ", *kernel) for input with ", C, " channels and groups=", groups, ", got weight of shape ",
              w_sizes);
  const size_t d = x_sizes.size() - 2;
  ConvProblem p;
  p.g = geometry(op, C, x_sizes.slice(2), w_sizes.slice(2), dilation, padding, stride);
  p.batch = x_sizes[0];
  p.in_channels = C;
  p.out_channels = O;
  p.groups = groups;
  p.spatial = d;
  return p;
}

void check_grad_output(const char* op, const at::Tensor& grad_output, const ConvProblem& p,
                       at::IntArrayRef input_size, at::IntArrayRef weight_size) {
  const auto expected = p.output_sizes();
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(expected), op, ": expected grad_output of shape ",
              at::IntArrayRef(expected), " for input of shape ", input_size, " and weight of shape ", weight_size,
              ", got ", grad_output.sizes());
}

void check_bias(const char* op, const c10::optional<at::Tensor>& bias, int64_t channels, const at::Tensor& ref) {
  if (!bias.has_value() || !bias->defined()) return;
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == channels, op, ": expected bias of shape (", channels,
              "), got ", bias->sizes());
  check_same(op, "bias", *bias, "input", ref);
}

// View of a contiguous (B, G*rows, L) tensor as a (B*G, rows, L) batch of matrices.
at::Tensor by_group(const at::Tensor& t, int64_t b, int64_t groups, int64_t l) {
  return t.view({b * groups, -1, l});
}

// Per-group matrices (G, M, K) repeated for each of b images as a (b*G, M, K) batch, so one
// batched GEMM covers a whole chunk: a stride-0 view when G == 1, else a copy that is
// small next to the columns.
at::Tensor per_image(const at::Tensor& w, int64_t b) {
  if (w.size(0) == 1) return w.expand({b, w.size(1), w.size(2)});
  return w.unsqueeze(0).expand({b, w.size(0), w.size(1), w.size(2)}).reshape({b * w.size(0), w.size(1), w.size(2)});
}

// Below this many multiply-adds per image and group, a chunk's GEMMs run as one batched
// GEMM (call overhead dominates small ones); above it, one GEMM call per image, which MKL
// runs faster than its batched path.
constexpr int64_t kSmallGemm = int64_t(1) << 21;

bool small_gemms(const ConvProblem& p) {
  return p.multiply_adds_per_image() < kSmallGemm;
}

// Half and bfloat16 on the CPU are computed in float, the whole tensors converted once and
// the result rounded once (the products of two such values are exact in float, and the sums
// accumulate in float as the reduced-precision GEMMs' do): float16 always (the CPU's float16
// GEMM ran make bench's 64ch 56x56 forward in 640 ms, float 14 ms), bfloat16 up to this many
// multiply-adds per image and group, where the float forms (direct, small images) beat the
// bfloat16 GEMM path's im2col and conversions per chunk. LeNet's 6->16 at batch 64: forward
// 1.02 -> 0.34 ms, weight gradient 1.17 -> 0.37 ms; ResNet's 64ch 8x8 at batch 32: weight
// gradient 2.42 -> 1.60 ms. Above it the bfloat16 GEMMs (over twice float's rate here) win:
// forward of 256ch 14x14 at batch 8 11.0 ms against 18.5 in float, of the 1x1 256->64 at
// 56x56 5.3 against 12.6.
constexpr int64_t kReducedInFloatMultiplyAdds = int64_t(1) << 23;

bool computes_in_float(const at::Tensor& t, const ConvProblem& p) {
  if (!t.is_cpu()) return false;
  if (t.scalar_type() == at::kHalf) return true;
  return t.scalar_type() == at::kBFloat16 && p.multiply_adds_per_image() <= kReducedInFloatMultiplyAdds;
}

at::Tensor in_float(const at::Tensor& t) { return t.to(at::kFloat); }

// out[i] = a[i] @ b[i] over a (B*G) batch, as one call or one call per image of G groups.
void batched_mm(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, int64_t groups, bool one_call) {
  if (one_call) {
    gemm_into(out, a, b);
    return;
  }
  for (int64_t i = 0; i < out.size(0); i += groups) {
    auto o = out.narrow(0, i, groups);
    gemm_into(o, a.narrow(0, i, groups), b.narrow(0, i, groups));
  }
}

// Below this many output positions per image, per-image GEMMs are too thin to run well:
// the images of a chunk then sit side by side in one GEMM per group, at least
// kFoldWidth columns wide (the chunk grows past the column bound for that, which stays small).
constexpr int64_t kFoldBelow = 100;
constexpr int64_t kFoldWidth = 512;

// How a problem's batch is cut into chunks and multiplied.
struct ChunkPlan {
  int64_t size;   // images per chunk
  bool fold;      // one GEMM per group over the chunk's images side by side
  bool one_call;  // else: per-image GEMMs as one batched call (small ones) or one call each
};

// On a GPU a chunk's GEMMs are always one batched call.
ChunkPlan chunk_plan(const ConvProblem& p, const at::Tensor& like) {
  const int64_t L = p.g.cols_numel();
  const bool on_cpu = like.is_cpu();
  ChunkPlan plan{chunk_size(p.batch, p.column_rows() * L, on_cpu), L < kFoldBelow, !on_cpu || small_gemms(p)};
  if (plan.fold) plan.size = std::max(plan.size, std::min(p.batch, kernels::ceil_div(kFoldWidth, L)));
  return plan;
}

// (b, G*R, L) per image -> (G, R, b*L) contiguous: the images side by side, so that one GEMM
// per group covers the chunk. A copy, small next to that GEMM when L is small.
at::Tensor fold_batch(const at::Tensor& t, int64_t b, int64_t groups, int64_t L) {
  return t.reshape({b, groups, -1, L}).permute({1, 2, 0, 3}).reshape({groups, -1, b * L});
}

// (G, R, b*L) -> a (b, G, R, L) view, to copy back image by image.
at::Tensor unfold_batch(const at::Tensor& t, int64_t b, int64_t L) {
  return t.view({t.size(0), t.size(1), b, L}).permute({2, 0, 1, 3});
}

// Columns of a contiguous image chunk; a 1x1, stride-1, unpadded kernel needs no copy.
at::Tensor columns_of(const ConvProblem& p, const ColumnKernels& k, const at::Tensor& x, at::Tensor& buffer) {
  const int64_t b = x.size(0), L = p.g.cols_numel();
  if (is_pointwise(p.g)) return x.view({b, p.in_channels, L});
  auto cols = buffer.narrow(0, 0, b);
  k.im2col(x, cols, p.g);
  return cols;
}

// The columns of a chunk's images side by side, (G, C/G*K, b*L): filled so by the device
// where it can (no copy), else image by image and folded by a copy.
at::Tensor folded_columns_of(const ConvProblem& p, const ColumnKernels& k, const at::Tensor& x, at::Tensor& buffer) {
  const int64_t b = x.size(0), L = p.g.cols_numel();
  if (k.im2col_folded != nullptr && !is_pointwise(p.g)) {
    auto cols = buffer.view(-1).narrow(0, 0, p.column_rows() * b * L).view({p.column_rows(), b, L});
    if (k.im2col_folded(x, cols, p.g)) return cols.view({p.groups, -1, b * L});
  }
  return fold_batch(columns_of(p, k, x, buffer), b, p.groups, L);
}

// The column buffer of a batch chunk: on the CPU, this thread's scratch (cpu_scratch); CUDA's
// caching allocator already reuses.
at::Tensor column_buffer(const ConvProblem& p, int64_t chunk, const at::Tensor& like, int64_t positions) {
  if (is_pointwise(p.g)) return at::Tensor();
  const std::vector<int64_t> sizes{chunk, p.column_rows(), positions};
  if (!like.is_cpu()) return at::empty(sizes, like.options());
  return cpu_scratch(CpuScratch::kColumns, chunk * p.column_rows() * positions, like.scalar_type()).view(sizes);
}

// Threads that share this call's GEMMs: 1 inside a parallel region (see over_images).
int64_t gemm_threads() { return at::in_parallel_region() ? 1 : at::get_num_threads(); }

// How many threads over_images splits the batch among, and how: body(problem, first,
// count) over the batch. On a CPU with several threads and at
// least as many images, each with at least as many output positions as output channels
// per group, each thread takes whole images (its own columns, its GEMMs single-threaded
// inside the parallel region): such images scale better across cores than MKL's threads
// on their GEMMs (make bench, 2 threads). Images with fewer positions than channels (deep
// layers: ResNet's 4x4 x 512) stay one call: each thread would read the whole weight, and
// hold a weight-sized gradient sum, for little work.
int64_t image_threads(const ConvProblem& p, const at::Tensor& like) {
  const int64_t threads = at::get_num_threads();
  const bool split = like.is_cpu() && threads > 1 && p.batch >= threads && p.g.cols_numel() >= p.out_per_group();
  return split ? threads : 1;
}

template <typename Body>
void over_images(const ConvProblem& p, const at::Tensor& like, Body&& body) {
  if (image_threads(p, like) == 1) {
    body(p, int64_t(0), p.batch);
    return;
  }
  const at::ThreadLocalState caller;  // the dispatch state ATen ops inside the body must see
  at::parallel_for(0, p.batch, 1, [&](int64_t first, int64_t end) {
    at::ThreadLocalStateGuard same_state(caller);
    ConvProblem part = p;
    part.batch = end - first;
    body(part, first, end - first);
  });
}

// The sum over the batch of per-image terms of the given sizes: body(sum, part, first, count)
// writes the images [first, first + count)'s into `sum` (overwriting it). Each thread of
// over_images sums its images into its own slot, added in slot order: the same result for the
// same thread count. A slot no thread wrote (fewer threads ran) is 0.
template <typename Body>
at::Tensor summed_over_images(const ConvProblem& p, const at::Tensor& like, at::IntArrayRef sizes,
                              const at::TensorOptions& options, Body&& body) {
  std::vector<int64_t> slot_sizes{image_threads(p, like)};
  slot_sizes.insert(slot_sizes.end(), sizes.begin(), sizes.end());
  auto slots = at::empty(slot_sizes, options);
  std::vector<char> written(slots.size(0), 0);
  over_images(p, like, [&](const ConvProblem& part, int64_t first, int64_t count) {
    const int64_t slot = at::get_thread_num();
    auto sum = slots.select(0, slot);
    body(sum, part, first, count);
    written[slot] = 1;
  });
  for (int64_t slot = 0; slot < slots.size(0); ++slot) {
    if (!written[slot]) slots.select(0, slot).zero_();
  }
  return slots.size(0) == 1 ? slots.select(0, 0) : slots.sum(0);
}

// Output positions per tile when one image's columns would not stay in cache: tiles of
// the columns, each filled and multiplied while in cache, group by group (a group's
// columns are those of its channels). 0: whole images (also where the device has no tile
// kernel). Grouped convolutions tile whenever their whole columns exceed the bound, with
// tiles as wide as a group's columns allow (up to whole images: fewer, larger GEMMs).
constexpr int64_t kMinTileWidth = 512;  // narrower GEMMs lose more than the cache gains
constexpr int64_t kGroupTileElements = int64_t(1) << 18;  // 1 MiB of float, half this L2

int64_t tile_width(const ConvProblem& p, const ColumnKernels& k) {
  const int64_t L = p.g.cols_numel();
  if (k.im2col_tile == nullptr || is_pointwise(p.g) || p.column_rows() * L <= kColumnBufferElements) return 0;
  if (p.groups > 1) {
    return std::min(L, std::max<int64_t>(kMinTileWidth, kGroupTileElements / p.rows_per_group()));
  }
  // Each thread works on its share of a tile's GEMM: a tile per thread stays in that core's cache.
  const int64_t width = std::max<int64_t>(kMinTileWidth, kColumnBufferElements / p.column_rows()) * gemm_threads();
  return width < L ? width : 0;
}

// Calls visit(cols, image, group, lo, hi) with the (C/G*K, hi - lo) columns of each tile of
// each group of each image, in order. Returns false, having visited nothing, if the
// device's tile kernel declines.
template <typename Visit>
bool for_each_tile(const ConvProblem& p, const ColumnKernels& k, const at::Tensor& x, int64_t width, Visit&& visit) {
  const int64_t rows = p.rows_per_group(), L = p.g.cols_numel(), channels = p.in_per_group();
  auto buffer = column_buffer(p, 1, x, width).view(-1);
  ColumnGeometry g = p.g;
  g.channels = channels;
  for (int64_t i = 0; i < p.batch; ++i) {
    for (int64_t group = 0; group < p.groups; ++group) {
      const auto image = x.select(0, i).narrow(0, group * channels, channels).unsqueeze(0);  // contiguous
      for (int64_t lo = 0; lo < L; lo += width) {
        const int64_t hi = std::min(L, lo + width);
        auto cols = buffer.narrow(0, 0, rows * (hi - lo)).view({1, rows, hi - lo});
        if (!k.im2col_tile(image, cols, g, lo, hi)) return false;
        visit(cols.select(0, 0), i, group, lo, hi);
      }
    }
  }
  return true;
}

// The (O/G, hi - lo) slice of image i, group `group`, positions [lo, hi) of an (N, O, *L)
// tensor: where a tile's GEMM writes (output) or reads (output gradient).
at::Tensor group_tile(const at::Tensor& t, const ConvProblem& p, int64_t i, int64_t group, int64_t lo, int64_t hi) {
  const int64_t Og = p.out_per_group();
  return t.select(0, i).view({p.out_channels, p.g.cols_numel()}).narrow(0, group * Og, Og).narrow(1, lo, hi - lo);
}

// Calls visit(start, b) for the chunks of `size` images of a batch, in order.
template <typename Visit>
void for_each_chunk(int64_t batch, int64_t size, Visit&& visit) {
  for (int64_t start = 0; start < batch; start += size) visit(start, std::min(size, batch - start));
}

}  // namespace

at::Tensor im2col(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef dilation,
                  at::IntArrayRef padding, at::IntArrayRef stride) {
  const char* op = "convops::im2col";
  check_batched_floating(op, "input", input);
  const auto g = geometry(op, input.size(1), input.sizes().slice(2), kernel_size, dilation, padding, stride);
  auto out = at::empty({input.size(0), input.size(1) * g.kernel_numel(), g.cols_numel()}, input.options());
  if (out.numel() == 0) return out;
  c10::DeviceGuard guard(input.device());
  column_kernels(op, input).im2col(dense(op, input), out, g);
  return out;
}

at::Tensor col2im(const at::Tensor& columns, at::IntArrayRef output_size, at::IntArrayRef kernel_size,
                  at::IntArrayRef dilation, at::IntArrayRef padding, at::IntArrayRef stride) {
  const char* op = "convops::col2im";
  check_floating(op, "columns", columns);
  TORCH_CHECK(columns.dim() == 3, op, ": expected columns of shape (N, C * prod(kernel_size), L), got ",
              columns.dim(), "-D tensor of shape ", columns.sizes());
  TORCH_CHECK(output_size.size() >= 1 && output_size.size() <= 3, op,
              ": expected output_size with 1 to 3 spatial sizes, got ", output_size);
  int64_t K = 1;
  for (auto k : kernel_size) K *= k;
  TORCH_CHECK(kernel_size.size() == output_size.size(), op, ": expected kernel_size with ", output_size.size(),
              " values, got ", kernel_size);
  TORCH_CHECK(K > 0 && columns.size(1) % K == 0, op, ": expected columns.size(1) (", columns.size(1),
              ") to be divisible by prod(kernel_size) (", K, " for kernel_size ", kernel_size, ")");
  const int64_t C = columns.size(1) / K;
  const auto g = geometry(op, C, output_size, kernel_size, dilation, padding, stride);
  TORCH_CHECK(columns.size(2) == g.cols_numel(), op, ": expected columns.size(2) to be ", g.cols_numel(),
              " (the number of sliding blocks for output_size ", output_size, ", kernel_size ", kernel_size,
              ", dilation ", dilation, ", padding ", padding, ", stride ", stride, "), got ", columns.size(2));
  std::vector<int64_t> sizes{columns.size(0), C};
  sizes.insert(sizes.end(), output_size.begin(), output_size.end());
  auto out = at::empty(sizes, columns.options());
  if (out.numel() == 0) return out;
  c10::DeviceGuard guard(columns.device());
  column_kernels(op, columns).col2im(columns.contiguous(), out, g);
  return out;
}

namespace {

// y = conv(x, w) + bias for the images of x (p.batch of them), columns by tiles or chunks.
void conv_images(const ConvProblem& p, const ColumnKernels& k, const at::Tensor& x, const at::Tensor& w,
                 const at::Tensor& bias, at::Tensor out) {
  const int64_t L = p.g.cols_numel(), G = p.groups, O = p.out_channels;
  if (const int64_t width = tile_width(p, k); width > 0) {
    const int64_t Og = p.out_per_group();
    const bool tiled =
        for_each_tile(p, k, x, width, [&](const at::Tensor& cols, int64_t i, int64_t group, int64_t lo, int64_t hi) {
          auto y = group_tile(out, p, i, group, lo, hi);
          gemm_into(y, w.select(0, group), cols);
          if (bias.defined()) y.add_(bias.narrow(0, group * Og, Og).view({Og, 1}));
        });
    if (tiled) return;
  }
  const auto plan = chunk_plan(p, x);
  auto buffer = column_buffer(p, plan.size, x, L);
  for_each_chunk(p.batch, plan.size, [&](int64_t start, int64_t b) {
    const auto x_chunk = x.narrow(0, start, b);
    auto y = out.narrow(0, start, b).view({b, O, L});
    if (plan.fold) {
      const auto cols = folded_columns_of(p, k, x_chunk, buffer);
      y.view({b, G, p.out_per_group(), L}).copy_(unfold_batch(gemm(w, cols), b, L));
    } else {
      auto y_g = by_group(y, b, G, L);
      batched_mm(y_g, per_image(w, b), by_group(columns_of(p, k, x_chunk, buffer), b, G, L), G, plan.one_call);
    }
    if (bias.defined()) y.add_(bias.view({1, O, 1}));
  });
}

// dx = col2im(W^T @ dy) for the images of dy.
void conv_backward_input_images(const ConvProblem& p, const ColumnKernels& k, const at::Tensor& dy,
                                const at::Tensor& wt, at::Tensor dx) {
  const int64_t L = p.g.cols_numel(), G = p.groups;
  const bool pointwise = is_pointwise(p.g);
  const auto plan = chunk_plan(p, dy);
  auto buffer = column_buffer(p, plan.size, dy, L);
  for_each_chunk(p.batch, plan.size, [&](int64_t start, int64_t b) {
    auto dx_chunk = dx.narrow(0, start, b);
    auto cols = pointwise ? dx_chunk.view({b, p.in_channels, L}) : buffer.narrow(0, 0, b);
    const auto dy_chunk = dy.narrow(0, start, b).view({b, p.out_channels, L});
    if (plan.fold) {
      cols.view({b, G, p.rows_per_group(), L}).copy_(unfold_batch(gemm(wt, fold_batch(dy_chunk, b, G, L)), b, L));
    } else {
      auto cols_g = by_group(cols, b, G, L);
      batched_mm(cols_g, per_image(wt, b), by_group(dy_chunk, b, G, L), G, plan.one_call);
    }
    if (!pointwise) k.col2im(cols, dx_chunk, p.g);
  });
}

// dw = sum over the images of x of dy @ im2col(x)^T, dw (G, O/G, C/G * K) in acc_type. Its
// first GEMM overwrites dw (beta 0: what dw held is never read), so it need not be zeroed.
void conv_backward_weight_images(const ConvProblem& p, const ColumnKernels& k, const at::Tensor& dy,
                                 const at::Tensor& x, at::Tensor dw) {
  const int64_t L = p.g.cols_numel(), G = p.groups;
  const auto acc_type = dw.scalar_type();
  if (const int64_t width = tile_width(p, k); width > 0) {
    const bool tiled =
        for_each_tile(p, k, x, width, [&](const at::Tensor& cols, int64_t i, int64_t group, int64_t lo, int64_t hi) {
          const double beta = i == 0 && lo == 0 ? 0 : 1;  // a group's first tile overwrites its slice
          auto dw_group = dw.select(0, group);
          gemm_into(dw_group, group_tile(dy, p, i, group, lo, hi).to(acc_type), cols.to(acc_type).t(), beta);
        });
    if (tiled) return;
  }
  const auto plan = chunk_plan(p, x);
  auto buffer = column_buffer(p, plan.size, x, L);
  for_each_chunk(p.batch, plan.size, [&](int64_t start, int64_t b) {
    const double beta = start == 0 ? 0 : 1;  // the first chunk overwrites dw
    const auto x_chunk = x.narrow(0, start, b);
    const auto dy_chunk = dy.narrow(0, start, b).view({b, p.out_channels, L}).to(acc_type);
    if (plan.fold) {
      const auto cols = folded_columns_of(p, k, x_chunk, buffer).to(acc_type);
      gemm_into(dw, fold_batch(dy_chunk, b, G, L), cols.transpose(1, 2), beta);
      return;
    }
    const auto cols = by_group(columns_of(p, k, x_chunk, buffer).to(acc_type), b, G, L);
    const auto dy_g = by_group(dy_chunk, b, G, L);
    if (plan.one_call) {
      const auto sum = gemm(dy_g, cols.transpose(1, 2)).view({b, G, p.out_per_group(), p.rows_per_group()}).sum(0);
      beta == 0 ? dw.copy_(sum) : dw.add_(sum);
    } else {
      for (int64_t i = 0; i < b; ++i) {
        gemm_into(dw, dy_g.narrow(0, i * G, G), cols.narrow(0, i * G, G).transpose(1, 2), i == 0 ? beta : 1);
      }
    }
  });
}

// ---------------------------------------------------------------- live taps
// A kernel tap that reads padding at every output position adds nothing to the output, and
// its weight gradient is 0: ResNet's 3x3 convolutions of 1x1 images (the last stage on 32x32
// inputs) use only the centre tap, the stride-2 one of 2x2 images four of the nine. Where the
// live taps of a dim, [first, first + count), with padding pad - first * dil give the same
// output size, the problem restricted to them is the same convolution (less the products of
// padding: a NaN or inf weight of a dead tap no longer reaches the output, as in torch's
// oneDNN forms), on a kernel 9x (1x1 images) or 2.25x (2x2, stride 2) smaller.
struct LiveTaps {
  std::vector<int64_t> first, count, padding;  // per spatial dim
};

// Whether tap k of a dim reads the image at some output position.
bool tap_is_live(int64_t k, int64_t image, int64_t cols, int64_t stride, int64_t pad, int64_t dil) {
  const int64_t offset = k * dil - pad;  // where output position 0 reads
  const int64_t l = offset >= 0 ? 0 : kernels::ceil_div(-offset, stride);  // the first that reads >= 0
  return l < cols && l * stride + offset < image;
}

// The live taps of p, or nothing where every tap is live (or no crop keeps the output size).
c10::optional<LiveTaps> live_taps(const ConvProblem& p) {
  LiveTaps live;
  bool cropped = false;
  const ColumnGeometry& g = p.g;
  for (int i = kernels::kMaxSpatial - static_cast<int>(p.spatial); i < kernels::kMaxSpatial; ++i) {
    int64_t first = g.kernel[i], last = -1;
    for (int64_t k = 0; k < g.kernel[i]; ++k) {
      if (tap_is_live(k, g.image[i], g.cols[i], g.stride[i], g.pad[i], g.dil[i])) {
        first = std::min(first, k);
        last = k;
      }
    }
    int64_t count = last - first + 1, pad = g.pad[i] - first * g.dil[i];
    const int64_t span = g.dil[i] * (count - 1) + 1, padded = g.image[i] + 2 * pad;
    if (last < 0 || pad < 0 || padded < span || (padded - span) / g.stride[i] + 1 != g.cols[i]) {
      first = 0;  // this dim as it is
      count = g.kernel[i];
      pad = g.pad[i];
    }
    cropped = cropped || count < g.kernel[i];
    live.first.push_back(first);
    live.count.push_back(count);
    live.padding.push_back(pad);
  }
  if (!cropped) return c10::nullopt;
  return live;
}

// The weight gradient leaves the dead taps out only where at most a third of the taps live:
// putting the live taps' gradient back into the full kernel is a pass over all of it, which
// costs more than the dead taps' products where fewer are dead (ResNet's stride-2 3x3 of 2x2
// images, 4 of 9 live: 1.2-1.8 -> 1.7-1.8 ms; its 1x1 images, 1 of 9: 3.0-4.3 -> 1.8-2.5 ms).
// With the strided put-back (full_weight_gradient) 4 of 9 cropped or not: the same 2.3-2.7 ms
// for that convolution's forward+backward at 1 and at 2 threads.
bool live_enough_to_crop(const LiveTaps& live, const ConvProblem& p) {
  int64_t live_numel = 1;
  for (const int64_t c : live.count) live_numel *= c;
  return 3 * live_numel <= p.g.kernel_numel();
}

// Each tap of the kernel, flattened, as its index among the live taps, or -1 where dead.
std::vector<int64_t> live_tap_numbers(const LiveTaps& live, at::IntArrayRef kernel) {
  std::vector<int64_t> number(1, 0);  // over the dims so far, row-major
  for (size_t i = 0; i < kernel.size(); ++i) {
    std::vector<int64_t> next;
    for (const int64_t outer : number) {
      for (int64_t k = 0; k < kernel[i]; ++k) {
        const int64_t j = k - live.first[i];
        next.push_back(outer < 0 || j < 0 || j >= live.count[i] ? -1 : outer * live.count[i] + j);
      }
    }
    number = std::move(next);
  }
  return number;
}

// The (O, C/groups, *count) sizes of the live taps' kernel, of a full one of (O, C/groups, *K).
std::vector<int64_t> live_sizes(at::IntArrayRef full, const LiveTaps& live) {
  std::vector<int64_t> sizes{full[0], full[1]};
  sizes.insert(sizes.end(), live.count.begin(), live.count.end());
  return sizes;
}

// Each live tap's column of (O * C/groups) values copied between the full kernel, as a (rows,
// K) matrix, and the live taps' one, (rows, count): one strided pass per live tap (number:
// live_tap_numbers). A gather over the taps (index_select) ran these rows of a few values
// slower: 1.6x in float and 8x in bfloat16 for the crop, 8x in float for the gradient.
void copy_live_columns(const at::Tensor& full, const at::Tensor& live, const std::vector<int64_t>& number,
                       bool into_live) {
  for (size_t t = 0; t < number.size(); ++t) {
    if (number[t] < 0) continue;
    const auto full_column = full.select(1, static_cast<int64_t>(t)), live_column = live.select(1, number[t]);
    into_live ? live_column.copy_(full_column) : full_column.copy_(live_column);
  }
}

// The live taps of a (O, C/groups, *K) weight, as a contiguous (O, C/groups, *count) kernel
// (ResNet-18's 512-channel 3x3 of 1x1 images, one live tap: 0.22 -> 0.14 ms in float, 0.65 ->
// 0.08 ms in bfloat16; its 2x2 -> 1x1 stride-2 entry, 4 live taps of 256 channels: 1.14 -> 0.18
// ms in bfloat16).
at::Tensor live_weight(const at::Tensor& weight, const LiveTaps& live) {
  const auto number = live_tap_numbers(live, weight.sizes().slice(2));
  const auto sizes = live_sizes(weight.sizes(), live);
  const int64_t rows = weight.size(0) * weight.size(1);
  auto live_kernel = at::empty({rows, c10::multiply_integers(live.count)}, weight.options());
  copy_live_columns(weight.reshape({rows, static_cast<int64_t>(number.size())}), live_kernel, number, true);
  return live_kernel.view(sizes);
}

// The full (O, C/groups, *K) weight gradient of the live taps' one: 0 at the dead taps
// (ResNet-18's 512-channel 3x3 of 1x1 images: 2.5 -> 0.3 ms against a gather from the live
// gradient with a zero column after it).
at::Tensor full_weight_gradient(const at::Tensor& live_grad, const LiveTaps& live, at::IntArrayRef weight_size) {
  const auto number = live_tap_numbers(live, weight_size.slice(2));
  const int64_t rows = weight_size[0] * weight_size[1];
  auto full = at::zeros({rows, static_cast<int64_t>(number.size())}, live_grad.options());
  copy_live_columns(full, live_grad.reshape({rows, live_grad.numel() / rows}), number, false);
  return full.view(weight_size);
}

// Each op's argument checks; its problem.
ConvProblem checked_conv(const char* op, const at::Tensor& input, const at::Tensor& weight,
                         const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                         at::IntArrayRef dilation, int64_t groups) {
  check_batched_floating(op, "input", input);
  check_same(op, "weight", weight, "input", input);
  const auto p = conv_problem(op, input.sizes(), weight.sizes(), stride, padding, dilation, groups);
  check_bias(op, bias, p.out_channels, input);
  return p;
}

ConvProblem checked_backward_input(const char* op, const at::Tensor& grad_output, const at::Tensor& weight,
                                   at::IntArrayRef input_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                   at::IntArrayRef dilation, int64_t groups) {
  check_batched_floating(op, "grad_output", grad_output);
  check_same(op, "weight", weight, "grad_output", grad_output);
  TORCH_CHECK(input_size.size() == static_cast<size_t>(grad_output.dim()), op, ": expected input_size with ",
              grad_output.dim(), " values, got ", input_size);
  const auto p = conv_problem(op, input_size, weight.sizes(), stride, padding, dilation, groups);
  check_grad_output(op, grad_output, p, input_size, weight.sizes());
  return p;
}

ConvProblem checked_backward_weight(const char* op, const at::Tensor& grad_output, const at::Tensor& input,
                                    at::IntArrayRef weight_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                    at::IntArrayRef dilation, int64_t groups) {
  check_batched_floating(op, "input", input);
  check_same(op, "grad_output", grad_output, "input", input);
  const auto p = conv_problem(op, input.sizes(), weight_size, stride, padding, dilation, groups);
  check_grad_output(op, grad_output, p, input.sizes(), weight_size);
  return p;
}

// A 1x1 convolution at unit stride without padding, in one group, of tensors laid out in
// `format` (channels_last) is one GEMM over every position, in that layout itself: an
// (N, C, *S) tensor's channels_last values are the rows (N * S, C) (position_rows). No copies:
// 256->64 channels at 56x56, batch 8, forward at 1 thread: 15.0-16.4 ms through NCHW and back,
// 12.0-13.5 so (torch's channels_last: 11.7-12.7; MKL runs this orientation 15-20% slower than
// the NCHW forms' per-image products, and "auto" gives it to the GEMM forms: ops/gemm.h).
bool by_position_rows(const ConvProblem& p, at::MemoryFormat format, std::initializer_list<at::Tensor> tensors) {
  if (format == at::MemoryFormat::Contiguous || p.groups != 1 || !is_pointwise(p.g)) return false;
  return std::all_of(tensors.begin(), tensors.end(), [&](const at::Tensor& t) {
    const bool float_or_double = t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
    return float_or_double && t.numel() > 0 && t.is_contiguous(format);
  });
}

at::Tensor position_rows(const at::Tensor& t) { return t.movedim(1, -1).view({-1, t.size(1)}); }

// The rows of images [first, first + count) of position rows.
at::Tensor image_rows(const ConvProblem& p, const at::Tensor& rows, int64_t first, int64_t count) {
  const int64_t positions = p.g.cols_numel();
  return rows.narrow(0, first * positions, count * positions);
}

// out_rows = a_rows @ b (+ bias, if defined), the images split among the threads
// (over_images), as the NCHW forms split them: the 256->64 bench case's forward at 2 threads,
// 6.4-6.6 ms as one call over its 25088 rows, 6.1-6.2 so (torch's oneDNN: 4.3-4.5). With a
// bias, image by image, each image's bias added while its rows are in cache.
void gemm_by_images(const ConvProblem& p, at::Tensor out_rows, const at::Tensor& a_rows, const at::Tensor& b,
                    const at::Tensor& bias = at::Tensor()) {
  over_images(p, a_rows, [&](const ConvProblem&, int64_t first, int64_t count) {
    const int64_t step = bias.defined() ? 1 : count;
    for (int64_t n = first; n < first + count; n += step) {
      auto part = image_rows(p, out_rows, n, step);
      gemm_into(part, image_rows(p, a_rows, n, step), b, 0, /*position_rows=*/true);
      if (bias.defined()) part.add_(bias);
    }
  });
}

// The three ops on contiguous (NCHW) tensors, returning contiguous ones.
at::Tensor conv_nchw(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                     at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const char* op = "convops::conv";
  const auto p = checked_conv(op, input, weight, bias, stride, padding, dilation, groups);
  if (const auto live = live_taps(p)) {
    return conv_nchw(input, live_weight(weight, *live), bias, stride, live->padding, dilation, groups);
  }
  if (computes_in_float(input, p)) {
    const auto b = bias.has_value() && bias->defined() ? c10::optional<at::Tensor>(in_float(*bias)) : c10::nullopt;
    return conv_nchw(in_float(input), in_float(weight), b, stride, padding, dilation, groups).to(input.scalar_type());
  }
  auto out = at::empty(p.output_sizes(), input.options());
  if (out.numel() == 0) return out;
  c10::DeviceGuard guard(input.device());
  const auto& k = column_kernels(op, input);
  const auto& x = input;
  const auto b = bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
  if (is_depthwise(p) && k.depthwise_forward != nullptr && k.depthwise_forward(x, weight, b, out, p.g)) {
    return out;
  }
  if (k.direct_forward != nullptr && k.direct_forward(x, weight, b, out, p.g, groups)) return out;
  const auto w = weight.view({groups, p.out_per_group(), p.rows_per_group()});
  over_images(p, x, [&](const ConvProblem& part, int64_t first, int64_t count) {
    conv_images(part, k, x.narrow(0, first, count), w, b, out.narrow(0, first, count));
  });
  return out;
}

at::Tensor conv_backward_input_nchw(const at::Tensor& grad_output, const at::Tensor& weight,
                                    at::IntArrayRef input_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                    at::IntArrayRef dilation, int64_t groups) {
  const char* op = "convops::conv_backward_input";
  const auto p = checked_backward_input(op, grad_output, weight, input_size, stride, padding, dilation, groups);
  if (const auto live = live_taps(p)) {
    return conv_backward_input_nchw(grad_output, live_weight(weight, *live), input_size, stride, live->padding,
                                    dilation, groups);
  }
  if (computes_in_float(grad_output, p)) {
    return conv_backward_input_nchw(in_float(grad_output), in_float(weight), input_size, stride, padding, dilation,
                                    groups)
        .to(grad_output.scalar_type());
  }
  auto dx = at::empty(input_size, grad_output.options());
  if (dx.numel() == 0) return dx;
  if (grad_output.numel() == 0) return dx.zero_();
  c10::DeviceGuard guard(grad_output.device());
  const auto& k = column_kernels(op, grad_output);
  const auto& dy = grad_output;
  if (is_depthwise(p) && k.depthwise_backward_input != nullptr &&
      k.depthwise_backward_input(dy, weight, dx, p.g)) {
    return dx;
  }
  if (k.direct_backward_input != nullptr && k.direct_backward_input(dy, weight, dx, p.g, groups)) {
    return dx;
  }
  const auto wt = weight.view({groups, p.out_per_group(), p.rows_per_group()}).transpose(1, 2);
  over_images(p, dy, [&](const ConvProblem& part, int64_t first, int64_t count) {
    conv_backward_input_images(part, k, dy.narrow(0, first, count), wt, dx.narrow(0, first, count));
  });
  return dx;
}

at::Tensor conv_backward_weight_nchw(const at::Tensor& grad_output, const at::Tensor& input,
                                     at::IntArrayRef weight_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                     at::IntArrayRef dilation, int64_t groups) {
  const char* op = "convops::conv_backward_weight";
  const auto p = checked_backward_weight(op, grad_output, input, weight_size, stride, padding, dilation, groups);
  // The weight gradient sums over the whole batch: accumulate in float for half/bfloat16.
  const auto acc_type = at::toOpMathType(input.scalar_type());
  const auto acc_options = input.options().dtype(acc_type);
  if (grad_output.numel() == 0 || p.out_channels * p.rows_per_group() == 0) {
    return at::zeros(weight_size, input.options());
  }
  if (const auto live = live_taps(p); live && live_enough_to_crop(*live, p)) {  // the dead taps' gradient is 0
    const auto live_dw = conv_backward_weight_nchw(grad_output, input, live_sizes(weight_size, *live), stride,
                                                   live->padding, dilation, groups);
    return full_weight_gradient(live_dw, *live, weight_size);
  }
  if (computes_in_float(input, p)) {
    return conv_backward_weight_nchw(in_float(grad_output), in_float(input), weight_size, stride, padding, dilation,
                                     groups)
        .to(input.scalar_type());
  }
  c10::DeviceGuard guard(input.device());
  const auto& k = column_kernels(op, input);
  const auto& x = input;
  const auto& dy = grad_output;
  if (is_depthwise(p) && k.depthwise_backward_weight != nullptr) {
    auto dw = at::zeros({p.out_channels, p.g.kernel_numel()}, acc_options);
    if (k.depthwise_backward_weight(dy, x, dw, p.g)) return dw.to(input.scalar_type()).view(weight_size);
  }
  if (k.direct_backward_weight != nullptr) {
    auto dw = at::empty({p.out_channels, p.rows_per_group()}, acc_options);
    if (k.direct_backward_weight(dy, x, dw, p.g, groups)) return dw.to(input.scalar_type()).view(weight_size);
  }
  const auto dw = summed_over_images(p, x, {groups, p.out_per_group(), p.rows_per_group()}, acc_options,
                                     [&](at::Tensor& sum, const ConvProblem& part, int64_t first, int64_t count) {
    conv_backward_weight_images(part, k, dy.narrow(0, first, count), x.narrow(0, first, count), sum);
  });
  return dw.to(input.scalar_type()).view(weight_size);
}

}  // namespace

at::Tensor conv(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const char* op = "convops::conv";
  const auto p = checked_conv(op, input, weight, bias, stride, padding, dilation, groups);
  const auto format = conv_format(input, weight);
  if (by_position_rows(p, format, {input})) {
    auto out = at::empty(p.output_sizes(), input.options().memory_format(format));
    auto rows = position_rows(out);
    gemm_by_images(p, rows, position_rows(input), weight.reshape({p.out_channels, p.in_channels}).t(),
                   bias.has_value() ? *bias : at::Tensor());
    return out;
  }
  const auto out = conv_nchw(dense(op, input), dense(op, weight), bias, stride, padding, dilation, groups);
  return in_format(op, out, format);
}

at::Tensor conv_backward_input(const at::Tensor& grad_output, const at::Tensor& weight,
                               at::IntArrayRef input_size, at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation, int64_t groups) {
  const char* op = "convops::conv_backward_input";
  const auto p = checked_backward_input(op, grad_output, weight, input_size, stride, padding, dilation, groups);
  const auto format = conv_format(grad_output, weight);
  if (by_position_rows(p, format, {grad_output})) {
    auto dx = at::empty(input_size, grad_output.options().memory_format(format));
    gemm_by_images(p, position_rows(dx), position_rows(grad_output), weight.reshape({p.out_channels, p.in_channels}));
    return dx;
  }
  const auto dx = conv_backward_input_nchw(dense(op, grad_output), dense(op, weight), input_size, stride, padding,
                                           dilation, groups);
  return in_format(op, dx, format);
}

at::Tensor conv_backward_weight(const at::Tensor& grad_output, const at::Tensor& input,
                                at::IntArrayRef weight_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, int64_t groups) {
  const char* op = "convops::conv_backward_weight";
  const auto p = checked_backward_weight(op, grad_output, input, weight_size, stride, padding, dilation, groups);
  const auto format = conv_format(grad_output, input);
  if (by_position_rows(p, format, {grad_output, input})) {
    const auto dy_rows = position_rows(grad_output), x_rows = position_rows(input);
    const auto dw = summed_over_images(p, input, {p.out_channels, p.in_channels}, input.options(),
                                       [&](at::Tensor& sum, const ConvProblem&, int64_t first, int64_t count) {
      gemm_into(sum, image_rows(p, dy_rows, first, count).t(), image_rows(p, x_rows, first, count));
    });
    return in_format(op, dw.view(weight_size), format);
  }
  const auto dw = conv_backward_weight_nchw(dense(op, grad_output), dense(op, input), weight_size, stride, padding,
                                            dilation, groups);
  return in_format(op, dw, format);
}

at::Tensor conv_transpose(const at::Tensor& input, const at::Tensor& weight,
                          const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation,
                          int64_t groups) {
  const char* op = "convops::conv_transpose";
  check_batched_floating(op, "input", input);
  check_same(op, "weight", weight, "input", input);
  const size_t d = input.dim() - 2;
  TORCH_CHECK(weight.dim() == input.dim(), op, ": expected weight of ", input.dim(),
              " dims (in_channels, out_channels/groups, *kernel), got weight of shape ", weight.sizes());
  TORCH_CHECK(groups > 0, op, ": expected groups > 0, got ", groups);
  TORCH_CHECK(weight.size(0) == input.size(1), op, ": expected weight.size(0) to equal the input channels (",
              input.size(1), "), got weight of shape ", weight.sizes());
  check_param(op, "stride", stride, d, 1);
  check_param(op, "dilation", dilation, d, 1);
  check_param(op, "padding", padding, d, 0);
  check_param(op, "output_padding", output_padding, d, 0);
  std::vector<int64_t> out_size{input.size(0), weight.size(1) * groups};
  for (size_t i = 0; i < d; ++i) {
    TORCH_CHECK(output_padding[i] < stride[i] || output_padding[i] < dilation[i], op,
                ": expected output_padding smaller than stride or dilation in every dimension, got output_padding ",
                output_padding, ", stride ", stride, ", dilation ", dilation);
    const int64_t size = (input.size(2 + i) - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight.size(2 + i) - 1) +
                         output_padding[i] + 1;
    TORCH_CHECK(size > 0, op, ": the output would be empty (computed spatial size ", size, " in dim ", i,
                ") for input of shape ", input.sizes(), ", weight of shape ", weight.sizes(), " and padding ",
                padding);
    out_size.push_back(size);
  }
  check_bias(op, bias, out_size[1], input);
  // With output_padding >= stride (allowed when < dilation) a convolution of the output
  // has more positions than the input; the extra ones contribute zeros.
  const auto natural = conv_problem(op, out_size, weight.sizes(), stride, padding, dilation, groups).output_sizes();
  std::vector<int64_t> extra;
  for (size_t i = d; i-- > 0;) extra.insert(extra.end(), {0, natural[2 + i] - input.size(2 + i)});
  const bool pad = std::any_of(extra.begin(), extra.end(), [](int64_t e) { return e != 0; });
  const auto x = pad ? at::constant_pad_nd(input, extra) : input;
  auto out = conv_backward_input(x, weight, out_size, stride, padding, dilation, groups);
  if (bias.has_value() && bias->defined() && out.numel() > 0) {
    std::vector<int64_t> shape(out.dim(), 1);
    shape[1] = out.size(1);
    out.add_(bias->view(shape));
  }
  return out;
}

void register_conv_impls(torch::Library& m) {
  m.impl("im2col", &im2col);
  m.impl("col2im", &col2im);
  m.impl("conv", &conv);
  m.impl("conv_backward_input", &conv_backward_input);
  m.impl("conv_backward_weight", &conv_backward_weight);
  m.impl("conv_transpose", &conv_transpose);
}

}  // namespace ops
}  // namespace convops
