// Pooling family orchestration, written once for every device: torch's argument rules,
// output sizes (ceil_mode included), memory formats, then the device's kernels.
#include "pool.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <vector>

namespace convops {
namespace ops {
namespace {

const PoolKernels& pool_kernels(const char* op, const at::Tensor& t) { return DeviceTable<PoolKernels>::get(op, t); }

// torch's pooling_output_shape: floor or ceil, and a ceil window must start inside the
// input or its left padding.
int64_t pooled_size(int64_t size, int64_t kernel, int64_t stride, int64_t pad, int64_t dil, bool ceil_mode) {
  const int64_t span = size + 2 * pad - dil * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= size + pad) --out;
  return out;
}

struct PoolArgs {
  at::IntArrayRef kernel, stride, padding, dilation;
  bool ceil_mode = false;
  bool count_include_pad = true;
  std::optional<int64_t> divisor_override;
};

PoolGeometry pool_geometry(const char* op, at::IntArrayRef sizes, const PoolArgs& a) {
  const size_t d = sizes.size() - 2;
  check_param(op, "kernel_size", a.kernel, d, 1);
  check_param(op, "stride", a.stride, d, 1);
  check_param(op, "padding", a.padding, d, 0);
  check_param(op, "dilation", a.dilation, d, 1);
  for (size_t i = 1; i < sizes.size(); ++i) {
    TORCH_CHECK(sizes[i] > 0, op, ": expected input with non-zero channel and spatial sizes (only the batch may be "
                "empty), got input of shape ", sizes);
  }
  TORCH_CHECK(!a.divisor_override.has_value() || *a.divisor_override != 0, op, ": divisor must be not zero");
  PoolGeometry g{};
  pad_front(sizes.slice(2), 1, g.image);
  pad_front(a.kernel, 1, g.kernel);
  pad_front(a.stride, 1, g.stride);
  pad_front(a.padding, 0, g.pad);
  pad_front(a.dilation, 1, g.dil);
  g.count_include_pad = a.count_include_pad;
  g.divisor_override = a.divisor_override.value_or(0);
  std::vector<int64_t> out;
  for (int i = 0; i < kernels::kMaxSpatial; ++i) {
    TORCH_CHECK(g.pad[i] <= g.kernel[i] / 2, op, ": pad should be at most half of kernel size, but got padding ",
                a.padding, " and kernel_size ", a.kernel);
    g.out[i] = pooled_size(g.image[i], g.kernel[i], g.stride[i], g.pad[i], g.dil[i], a.ceil_mode);
  }
  for (int i = kernels::kMaxSpatial - static_cast<int>(d); i < kernels::kMaxSpatial; ++i) out.push_back(g.out[i]);
  for (int i = 0; i < kernels::kMaxSpatial; ++i) {
    TORCH_CHECK(g.out[i] >= 1, op, ": given input of shape ", sizes, ", the calculated output size is ",
                at::IntArrayRef(out), ": output size is too small");
  }
  return g;
}

std::vector<int64_t> pooled_sizes(at::IntArrayRef sizes, const PoolGeometry& g) {
  std::vector<int64_t> out{sizes[0], sizes[1]};
  const size_t d = sizes.size() - 2;
  for (size_t i = kernels::kMaxSpatial - d; i < static_cast<size_t>(kernels::kMaxSpatial); ++i) out.push_back(g.out[i]);
  return out;
}

// A result computed in NCHW, returned in the memory format the op promises.
at::Tensor in_format(const at::Tensor& t, at::MemoryFormat format) {
  return format == at::MemoryFormat::Contiguous ? t : t.contiguous(format);
}

void check_shape(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef expected) {
  TORCH_CHECK(t.sizes() == expected, op, ": expected ", name, " of shape ", expected, ", got ", t.sizes());
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> max_pool(const at::Tensor& input, at::IntArrayRef kernel_size,
                                            at::IntArrayRef stride, at::IntArrayRef padding,
                                            at::IntArrayRef dilation, bool ceil_mode, bool with_indices,
                                            bool tap_indices) {
  const char* op = "convops::max_pool";
  check_batched_floating(op, "input", input);
  const auto g = pool_geometry(op, input.sizes(), PoolArgs{kernel_size, stride, padding, dilation, ceil_mode});
  TORCH_CHECK(!(with_indices && tap_indices) || g.taps() <= kernels::kMaxCodedTaps, op,
              ": tap_indices needs a kernel of at most ", kernels::kMaxCodedTaps, " taps, got kernel_size ",
              kernel_size, " (", g.taps(), " taps)");
  const auto sizes = pooled_sizes(input.sizes(), g);
  const auto& k = pool_kernels(op, input);
  const auto format = output_format(input);
  const bool cl = format != at::MemoryFormat::Contiguous && k.max_pool_cl != nullptr;
  const auto layout = cl ? format : at::MemoryFormat::Contiguous;
  auto out = at::empty(sizes, input.options().memory_format(layout));
  const auto code = tap_indices ? at::kByte : at::kLong;
  auto indices = with_indices ? at::empty(sizes, input.options().dtype(code).memory_format(layout))
                              : at::empty({0}, input.options().dtype(at::kLong));
  if (out.numel() > 0) {
    c10::DeviceGuard guard(input.device());
    if (cl) {
      k.max_pool_cl(input, out, indices, g);
    } else {
      k.max_pool(input.contiguous(), out, indices, g);
    }
  }
  return {in_format(out, format), with_indices ? in_format(indices, format) : indices};
}

at::Tensor max_pool_backward(const at::Tensor& grad_output, const at::Tensor& indices, at::IntArrayRef input_size,
                             at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, bool ceil_mode) {
  const char* op = "convops::max_pool_backward";
  check_batched_floating(op, "grad_output", grad_output);
  TORCH_CHECK((indices.scalar_type() == at::kLong || indices.scalar_type() == at::kByte) &&
                  indices.device() == grad_output.device(),
              op, ": expected int64 (positions) or uint8 (tap_indices) indices on ", grad_output.device(), ", got ",
              indices.scalar_type(), " on ", indices.device());
  TORCH_CHECK(input_size.size() == static_cast<size_t>(grad_output.dim()), op, ": expected input_size with ",
              grad_output.dim(), " values, got ", input_size);
  const auto g = pool_geometry(op, input_size, PoolArgs{kernel_size, stride, padding, dilation, ceil_mode});
  const auto sizes = pooled_sizes(input_size, g);
  check_shape(op, "grad_output", grad_output, sizes);
  check_shape(op, "indices", indices, sizes);
  const auto& k = pool_kernels(op, grad_output);
  const auto format = output_format(grad_output);
  const bool cl = format != at::MemoryFormat::Contiguous && k.max_pool_backward_cl != nullptr;
  const auto layout = cl ? format : at::MemoryFormat::Contiguous;
  auto grad_input = at::empty(input_size, grad_output.options().memory_format(layout));
  if (grad_input.numel() > 0) {
    c10::DeviceGuard guard(grad_output.device());
    if (cl) {
      k.max_pool_backward_cl(grad_output, indices.contiguous(format), grad_input, g);
    } else {
      k.max_pool_backward(grad_output.contiguous(), indices.contiguous(), grad_input, g);
    }
  }
  return in_format(grad_input, format);
}

at::Tensor avg_pool(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                    at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
                    std::optional<int64_t> divisor_override) {
  const char* op = "convops::avg_pool";
  check_batched_floating(op, "input", input);
  const std::vector<int64_t> ones(kernel_size.size(), 1);
  const auto g = pool_geometry(
      op, input.sizes(), PoolArgs{kernel_size, stride, padding, ones, ceil_mode, count_include_pad, divisor_override});
  const auto& k = pool_kernels(op, input);
  const auto format = output_format(input);
  const bool cl = format != at::MemoryFormat::Contiguous && k.avg_pool_cl != nullptr;
  const auto layout = cl ? format : at::MemoryFormat::Contiguous;
  auto out = at::empty(pooled_sizes(input.sizes(), g), input.options().memory_format(layout));
  if (out.numel() > 0) {
    c10::DeviceGuard guard(input.device());
    if (cl) {
      k.avg_pool_cl(input, out, g);
    } else {
      k.avg_pool(input.contiguous(), out, g);
    }
  }
  return in_format(out, format);
}

at::Tensor avg_pool_backward(const at::Tensor& grad_output, at::IntArrayRef input_size, at::IntArrayRef kernel_size,
                             at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                             bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "convops::avg_pool_backward";
  check_batched_floating(op, "grad_output", grad_output);
  TORCH_CHECK(input_size.size() == static_cast<size_t>(grad_output.dim()), op, ": expected input_size with ",
              grad_output.dim(), " values, got ", input_size);
  const std::vector<int64_t> ones(kernel_size.size(), 1);
  const auto g = pool_geometry(
      op, input_size, PoolArgs{kernel_size, stride, padding, ones, ceil_mode, count_include_pad, divisor_override});
  check_shape(op, "grad_output", grad_output, pooled_sizes(input_size, g));
  const auto& k = pool_kernels(op, grad_output);
  const auto format = output_format(grad_output);
  const bool cl = format != at::MemoryFormat::Contiguous && k.avg_pool_backward_cl != nullptr;
  const auto layout = cl ? format : at::MemoryFormat::Contiguous;
  auto grad_input = at::empty(input_size, grad_output.options().memory_format(layout));
  if (grad_input.numel() > 0) {
    c10::DeviceGuard guard(grad_output.device());
    if (cl) {
      k.avg_pool_backward_cl(grad_output, grad_input, g);
    } else {
      k.avg_pool_backward(grad_output.contiguous(), grad_input, g);
    }
  }
  return in_format(grad_input, format);
}

at::Tensor global_avg_pool(const at::Tensor& input) {
  const char* op = "convops::global_avg_pool";
  check_batched_floating(op, "input", input);
  for (int64_t i = 2; i < input.dim(); ++i) {
    TORCH_CHECK(input.size(i) > 0, op, ": expected non-empty spatial dims, got input of shape ", input.sizes());
  }
  auto out = at::empty({input.size(0), input.size(1)}, input.options());
  if (out.numel() == 0) return out;
  c10::DeviceGuard guard(input.device());
  // (N, C, S) as a view when the spatial dims are dense (NCHW or channels_last), else a copy
  const auto flat = output_format(input) == at::MemoryFormat::Contiguous ? input.contiguous().flatten(2)
                                                                         : input.flatten(2);
  pool_kernels(op, input).global_avg_pool(flat, out);
  return out;
}

at::Tensor global_avg_pool_backward(const at::Tensor& grad_output, at::IntArrayRef input_size, bool channels_last) {
  const char* op = "convops::global_avg_pool_backward";
  TORCH_CHECK(input_size.size() >= 3 && input_size.size() <= 5, op,
              ": expected input_size of 3 to 5 dims (N, C, *spatial), got ", input_size);
  check_floating(op, "grad_output", grad_output);
  check_shape(op, "grad_output", grad_output, input_size.slice(0, 2));
  for (size_t i = 2; i < input_size.size(); ++i) {
    TORCH_CHECK(input_size[i] > 0, op, ": expected non-empty spatial dims, got input_size ", input_size);
  }
  const auto format = !channels_last || input_size.size() == 3 ? at::MemoryFormat::Contiguous
                      : input_size.size() == 4               ? at::MemoryFormat::ChannelsLast
                                                             : at::MemoryFormat::ChannelsLast3d;
  auto grad_input = at::empty(input_size, grad_output.options().memory_format(format));
  if (grad_input.numel() == 0) return grad_input;
  c10::DeviceGuard guard(grad_output.device());
  auto flat = grad_input.flatten(2);  // a view: the spatial dims are dense in either format
  pool_kernels(op, grad_output).global_avg_pool_backward(grad_output.contiguous(), flat);
  return grad_input;
}

void register_pool_impls(torch::Library& m) {
  m.impl("max_pool", &max_pool);
  m.impl("max_pool_backward", &max_pool_backward);
  m.impl("avg_pool", &avg_pool);
  m.impl("avg_pool_backward", &avg_pool_backward);
  m.impl("global_avg_pool", &global_avg_pool);
  m.impl("global_avg_pool_backward", &global_avg_pool_backward);
}

}  // namespace ops
}  // namespace convops
