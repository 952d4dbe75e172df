// The pooling family, device-agnostic: shape checks (torch's rules and messages),
// memory formats, and the pooling kernels of the tensor's device. Tensors are
// (N, C, *spatial) with 1 to 3 spatial dims; unbatched inputs are handled in Python.
#pragma once
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "../../kernels/pool.h"
#include "../common.h"

namespace convops {
namespace ops {

using kernels::PoolGeometry;

// g for the element forms reading dense channels_last tensors of t.size(1) channels in place.
inline PoolGeometry in_channels_last(PoolGeometry g, const at::Tensor& t) {
  g.cl_channels = t.size(1);
  return g;
}

#define CONVOPS_DISPATCH_FLOATS(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

// The max-pool launchers' two dispatches in one: body(code, value), tags whose types are the
// argmax code of `indices` (kernels/pool.h: uint8_t for tap numbers, int64_t for positions
// and for the empty tensor of a call without an argmax) and the scalar type of `values`.
template <bool kBackward, typename Body>
void dispatch_max_pool(const at::Tensor& values, const at::Tensor& indices, Body&& body) {
  constexpr const char* op = kBackward ? "convops::max_pool_backward" : "convops::max_pool";
  auto with_code = [&](auto code) {
    CONVOPS_DISPATCH_FLOATS(values.scalar_type(), op, [&] { body(code, scalar_t{}); });
  };
  if (indices.scalar_type() == at::kByte) {
    with_code(uint8_t{});
  } else {
    with_code(int64_t{});
  }
}

// The argmax of an indices tensor in its code (kernels/pool.h), or null where the call
// computes none (an empty tensor); read-only for the gradients.
template <typename Index>
Index* argmax_or_null(at::Tensor& indices) {
  return indices.numel() > 0 ? static_cast<Index*>(indices.mutable_data_ptr()) : nullptr;
}
template <typename Index>
const Index* argmax_codes(const at::Tensor& indices) {
  return static_cast<const Index*>(indices.const_data_ptr());
}

// Device kernels over contiguous (B*C planes, *plane) tensors; global_avg_pool reads
// (N, C, S) through the input's strides.
struct PoolKernels {
  void (*max_pool)(const at::Tensor& input, at::Tensor& output, at::Tensor& indices, const PoolGeometry& g);
  void (*max_pool_backward)(const at::Tensor& grad_output, const at::Tensor& indices, at::Tensor& grad_input,
                            const PoolGeometry& g);
  void (*avg_pool)(const at::Tensor& input, at::Tensor& output, const PoolGeometry& g);
  void (*avg_pool_backward)(const at::Tensor& grad_output, at::Tensor& grad_input, const PoolGeometry& g);
  void (*global_avg_pool)(const at::Tensor& input, at::Tensor& output);  // input (N, C, S), output (N, C)
  // grad_output (N, C) contiguous; grad_input (N, C, S), dense NCHW or channels_last
  void (*global_avg_pool_backward)(const at::Tensor& grad_output, at::Tensor& grad_input);
  // Optional channels_last forms: every tensor dense in channels_last(_3d). Where a device
  // has none, channels_last tensors go through the forms above.
  void (*max_pool_cl)(const at::Tensor& input, at::Tensor& output, at::Tensor& indices, const PoolGeometry& g);
  void (*max_pool_backward_cl)(const at::Tensor& grad_output, const at::Tensor& indices, at::Tensor& grad_input,
                               const PoolGeometry& g);
  void (*avg_pool_cl)(const at::Tensor& input, at::Tensor& output, const PoolGeometry& g);
  void (*avg_pool_backward_cl)(const at::Tensor& grad_output, at::Tensor& grad_input, const PoolGeometry& g);
};

std::tuple<at::Tensor, at::Tensor> max_pool(const at::Tensor& input, at::IntArrayRef kernel_size,
                                            at::IntArrayRef stride, at::IntArrayRef padding,
                                            at::IntArrayRef dilation, bool ceil_mode, bool with_indices,
                                            bool tap_indices);
at::Tensor max_pool_backward(const at::Tensor& grad_output, const at::Tensor& indices, at::IntArrayRef input_size,
                             at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, bool ceil_mode);
at::Tensor avg_pool(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                    at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
                    std::optional<int64_t> divisor_override);
at::Tensor avg_pool_backward(const at::Tensor& grad_output, at::IntArrayRef input_size, at::IntArrayRef kernel_size,
                             at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                             bool count_include_pad, std::optional<int64_t> divisor_override);
at::Tensor global_avg_pool(const at::Tensor& input);
at::Tensor global_avg_pool_backward(const at::Tensor& grad_output, at::IntArrayRef input_size, bool channels_last);

void register_pool_impls(torch::Library& m);

}  // namespace ops
}  // namespace convops
