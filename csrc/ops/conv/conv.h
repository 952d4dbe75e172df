// The convolution family, device-agnostic: shape checks, batch chunking, GEMMs
// through ATen (MKL on CPU, cuBLAS on GPU) and the column kernels of the
// tensor's device. Every tensor is (N, C, *spatial) with 1 to 3 spatial dims;
// unbatched inputs are handled in Python.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/util/Optional.h>
#include <torch/library.h>

#include "../../kernels/im2col.h"
#include "../common.h"

namespace convops {
namespace ops {

using kernels::ColumnGeometry;

// The device-specific part of the family: fill columns from a contiguous image
// chunk (B, C, *X) -> (B, C*K, L), and the adjoint.
struct ColumnKernels {
  void (*im2col)(const at::Tensor& image, at::Tensor& columns, const ColumnGeometry& g);
  void (*col2im)(const at::Tensor& columns, at::Tensor& image, const ColumnGeometry& g);
  // Optional: the columns of output positions [lo, hi) only, (B, C*K, hi - lo); returns
  // false to decline, and whole images' columns are used instead.
  bool (*im2col_tile)(const at::Tensor& image, at::Tensor& columns, const ColumnGeometry& g, int64_t lo, int64_t hi);
  // Optional: the columns of a chunk's B images side by side, (C*K, B, L), as one GEMM per
  // group multiplies them; returns false to decline, and the columns are folded by a copy.
  bool (*im2col_folded)(const at::Tensor& image, at::Tensor& columns, const ColumnGeometry& g);
  // Optional direct forms for depthwise convolutions (groups == in_channels, out_channels a
  // multiple of it: torch's channel multiplier) on contiguous tensors; each returns false to
  // decline, and im2col + GEMM runs instead.
  bool (*depthwise_forward)(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor& output, const ColumnGeometry& g);
  bool (*depthwise_backward_input)(const at::Tensor& grad_output, const at::Tensor& weight, at::Tensor& grad_input,
                                   const ColumnGeometry& g);
  // grad_weight: (O, K) in the accumulation dtype. Each form may decline a channel multiplier (O > C).
  bool (*depthwise_backward_weight)(const at::Tensor& grad_output, const at::Tensor& input, at::Tensor& grad_weight,
                                    const ColumnGeometry& g);
  // Optional direct forms for groups with few output channels (no columns): the forward,
  // the input gradient (a correlation of grad_output with the kernel transposed and flipped)
  // and the weight gradient, grad_weight (O, C/groups * K) in the accumulation dtype; on the
  // CPU the first two also take Winograd's F(2x2, 3x3) where it suits. Each returns false to
  // decline, and im2col + GEMM runs instead.
  bool (*direct_forward)(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                         at::Tensor& output, const ColumnGeometry& g, int64_t groups);
  bool (*direct_backward_input)(const at::Tensor& grad_output, const at::Tensor& weight, at::Tensor& grad_input,
                                const ColumnGeometry& g, int64_t groups);
  bool (*direct_backward_weight)(const at::Tensor& grad_output, const at::Tensor& input, at::Tensor& grad_weight,
                                 const ColumnGeometry& g, int64_t groups);
  // Optional: `to` = `from` for dense tensors of the same (N, C, *S) sizes, one contiguous and
  // the other channels_last (an image's (C, S) matrix transposed, either way); returns false
  // to decline, and ATen's copy runs instead.
  bool (*relayout)(const at::Tensor& from, at::Tensor& to);
};


at::Tensor im2col(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef dilation,
                  at::IntArrayRef padding, at::IntArrayRef stride);
at::Tensor col2im(const at::Tensor& columns, at::IntArrayRef output_size, at::IntArrayRef kernel_size,
                  at::IntArrayRef dilation, at::IntArrayRef padding, at::IntArrayRef stride);
at::Tensor conv(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);
at::Tensor conv_backward_input(const at::Tensor& grad_output, const at::Tensor& weight,
                               at::IntArrayRef input_size, at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation, int64_t groups);
at::Tensor conv_backward_weight(const at::Tensor& grad_output, const at::Tensor& input,
                                at::IntArrayRef weight_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, int64_t groups);
at::Tensor conv_transpose(const at::Tensor& input, const at::Tensor& weight,
                          const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation,
                          int64_t groups);

// Registers every op above for one dispatch key; called by each launcher file.
void register_conv_impls(torch::Library& m);

}  // namespace ops
}  // namespace convops
