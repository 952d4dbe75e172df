// CPU launchers for the column kernels and the CPU registration of the
// convolution family. Both engines of cpu_engine.h run the math of kernels/im2col.h.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <numeric>
#include <vector>

#include "../cpu_engine.h"
#include "../../kernels/depthwise.h"
#include "conv.h"

namespace convops {
namespace ops {
namespace {

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
      const kernels::GatherTable table(g);
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
    at::parallel_for(0, columns.numel(), kElementGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = kernels::im2col_element(in, g, i);
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
        for (int64_t i = begin; i < end; ++i) out[i] = static_cast<scalar_t>(kernels::col2im_element<scalar_t, acc_t>(in, g, i));
      });
      return;
    }
    const int64_t planes = image.numel() / g.image_numel();
    if (kernels::ReaderTable::suits(g)) {
      const kernels::ReaderTable table(g);
      at::parallel_for(0, planes, grain_for(g.image_numel() * g.kernel_numel()), [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(g.image_numel());
        for (int64_t p = begin; p < end; ++p) kernels::col2im_plane_gathered(in, out, acc.data(), g, table, p);
      });
      return;
    }
    const kernels::TapRanges taps(g);
    at::parallel_for(0, planes, grain_for(g.image_numel() * g.kernel_numel()), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(g.image_numel());
      for (int64_t p = begin; p < end; ++p) kernels::col2im_plane(in, out, acc.data(), g, taps, p);
    });
  });
}

// The depthwise forms for this call (the copy for this CPU, cpu_engine.h).
template <typename T, typename Acc>
const kernels::DepthwiseCpuKernels<T, Acc>& depthwise_forms() {
  static const auto baseline = kernels::depthwise_cpu_kernels<T, Acc>();
  return cpu_forms_for_call(baseline);
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

// At unit stride the input gradient is itself a depthwise correlation: of grad_output with
// the kernel flipped in every dim, padded by dil*(K-1) - pad (when that is >= 0), the
// forward's fast form. The geometry of that correlation, or nothing where it does not apply.
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

bool depthwise_backward_input_cpu(const at::Tensor& grad_output, const at::Tensor& weight, at::Tensor& grad_input,
                                  const ColumnGeometry& g) {
  // A channel multiplier sums several output channels into each input channel: im2col + GEMM.
  if (use_element_engine() || grad_output.size(1) != grad_input.size(1)) return false;
  if (const auto as_forward = input_gradient_as_forward(g)) {
    std::vector<int64_t> spatial_dims(weight.dim() - 2);
    std::iota(spatial_dims.begin(), spatial_dims.end(), 2);
    run_depthwise_forward(grad_output, weight.flip(spatial_dims).contiguous(), at::Tensor(), grad_input, *as_forward);
    return true;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "convops::conv_backward_input", [&] {
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

const bool registered = DeviceTable<ColumnKernels>::set(
    c10::kCPU, ColumnKernels{&im2col_cpu, &col2im_cpu, &im2col_tile_cpu, &im2col_folded_cpu, &depthwise_forward_cpu,
                             &depthwise_backward_input_cpu, &depthwise_backward_weight_cpu});

}  // namespace

TORCH_LIBRARY_IMPL(convops, CPU, m) { register_conv_impls(m); }

}  // namespace ops
}  // namespace convops
