// CUDA launchers for the column kernels and the CUDA registration of the
// convolution family. Each kernel is only a 64-bit grid-stride loop around the
// element functions of kernels/im2col.h, which the CPU tests also run.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "../cuda_launch.cuh"
#include "conv.h"

namespace convops {
namespace ops {
namespace {


template <typename T>
__global__ void im2col_kernel(const T* image, T* columns, ColumnGeometry g, int64_t n) {
  CONVOPS_GRID_STRIDE(i, n) { kernels::im2col_position(image, g, i, columns); }
}

template <typename T, typename Acc>
__global__ void col2im_kernel(const T* columns, T* image, ColumnGeometry g, int64_t n) {
  CONVOPS_GRID_STRIDE(i, n) { image[i] = static_cast<T>(kernels::col2im_element<T, Acc>(columns, g, i)); }
}

void im2col_cuda(const at::Tensor& image, at::Tensor& columns, const ColumnGeometry& g) {
  const int64_t n = columns.numel() / g.kernel_numel();  // output positions of every plane
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "convops::im2col", [&] {
    launch(im2col_kernel<scalar_t>, n,
        image.const_data_ptr<scalar_t>(), columns.mutable_data_ptr<scalar_t>(), g, n);
  });
}

void col2im_cuda(const at::Tensor& columns, at::Tensor& image, const ColumnGeometry& g) {
  const int64_t n = image.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, columns.scalar_type(), "convops::col2im", [&] {
    launch(col2im_kernel<scalar_t, at::opmath_type<scalar_t>>, n,
        columns.const_data_ptr<scalar_t>(), image.mutable_data_ptr<scalar_t>(), g, n);
  });
}

const bool registered = DeviceTable<ColumnKernels>::set(
    c10::kCUDA, ColumnKernels{&im2col_cuda, &col2im_cuda, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, nullptr});

}  // namespace

TORCH_LIBRARY_IMPL(convops, CUDA, m) { register_conv_impls(m); }

}  // namespace ops
}  // namespace convops
