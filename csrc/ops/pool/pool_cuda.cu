// CUDA launchers for the pooling kernels and the CUDA registration of the pooling
// family: 64-bit grid-stride loops around the element functions of kernels/pool.h,
// which the CPU tests also run, over NCHW or (in place) channels_last tensors.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include "../cuda_launch.cuh"
#include "pool.h"

namespace convops {
namespace ops {
namespace {


template <typename T, typename Acc, typename Index>
__global__ void max_pool_kernel(const T* in, T* out, Index* argmax, PoolGeometry g, int64_t n) {
  CONVOPS_GRID_STRIDE(i, n) { kernels::max_pool_element<T, Acc, Index>(in, g, i, out + i, argmax ? argmax + i : nullptr); }
}

template <typename T, typename Acc, typename Index>
__global__ void max_pool_backward_kernel(const T* grad_out, const Index* argmax, T* grad_in, PoolGeometry g,
                                         int64_t n) {
  CONVOPS_GRID_STRIDE(i, n) {
    grad_in[i] = static_cast<T>(kernels::max_pool_backward_element<T, Acc, Index>(grad_out, argmax, g, i));
  }
}

template <typename T, typename Acc>
__global__ void avg_pool_kernel(const T* in, T* out, PoolGeometry g, int64_t n) {
  CONVOPS_GRID_STRIDE(i, n) { out[i] = static_cast<T>(kernels::avg_pool_element<T, Acc>(in, g, i)); }
}

template <typename T, typename Acc>
__global__ void avg_pool_backward_kernel(const T* grad_out, T* grad_in, PoolGeometry g, int64_t n) {
  CONVOPS_GRID_STRIDE(i, n) { grad_in[i] = static_cast<T>(kernels::avg_pool_backward_element<T, Acc>(grad_out, g, i)); }
}

template <typename T, typename Acc>
__global__ void global_avg_pool_kernel(const T* in, T* out, int64_t C, int64_t S, int64_t sn, int64_t sc, int64_t ss,
                                       int64_t n) {
  CONVOPS_GRID_STRIDE(i, n) { out[i] = static_cast<T>(kernels::global_avg_element<T, Acc>(in, C, S, sn, sc, ss, i)); }
}

// grad_input (N, C, S) through its strides (NCHW or channels_last); i in (n, c, s) order.
template <typename T, typename Acc>
__global__ void global_avg_pool_backward_kernel(const T* grad_out, T* grad_in, int64_t C, int64_t S, int64_t sn,
                                                int64_t sc, int64_t ss, int64_t n) {
  CONVOPS_GRID_STRIDE(i, n) {
    const int64_t p = kernels::divide(i, S), image = kernels::divide(p, C);
    grad_in[image * sn + (p - image * C) * sc + (i - p * S) * ss] =
        static_cast<T>(kernels::global_avg_backward_element<T, Acc>(grad_out, S, i));
  }
}

void max_pool_cuda(const at::Tensor& input, at::Tensor& output, at::Tensor& indices, const PoolGeometry& g) {
  const int64_t n = output.numel();
  dispatch_max_pool<false>(input, indices, [&](auto code, auto value) {
    using Index = decltype(code);
    using scalar_t = decltype(value);
    launch(max_pool_kernel<scalar_t, at::opmath_type<scalar_t>, Index>, n,
        input.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(),
        argmax_or_null<Index>(indices), g, n);
  });
}

void max_pool_backward_cuda(const at::Tensor& grad_output, const at::Tensor& indices, at::Tensor& grad_input,
                            const PoolGeometry& g) {
  const int64_t n = grad_input.numel();
  dispatch_max_pool<true>(grad_output, indices, [&](auto code, auto value) {
    using Index = decltype(code);
    using scalar_t = decltype(value);
    launch(max_pool_backward_kernel<scalar_t, at::opmath_type<scalar_t>, Index>, n,
        grad_output.const_data_ptr<scalar_t>(), argmax_codes<Index>(indices),
        grad_input.mutable_data_ptr<scalar_t>(), g, n);
  });
}

void avg_pool_cuda(const at::Tensor& input, at::Tensor& output, const PoolGeometry& g) {
  const int64_t n = output.numel();
  CONVOPS_DISPATCH_FLOATS(input.scalar_type(), "convops::avg_pool", [&] {
    launch(avg_pool_kernel<scalar_t, at::opmath_type<scalar_t>>, n,
        input.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(), g, n);
  });
}

void avg_pool_backward_cuda(const at::Tensor& grad_output, at::Tensor& grad_input, const PoolGeometry& g) {
  const int64_t n = grad_input.numel();
  CONVOPS_DISPATCH_FLOATS(grad_output.scalar_type(), "convops::avg_pool_backward", [&] {
    launch(avg_pool_backward_kernel<scalar_t, at::opmath_type<scalar_t>>, n,
        grad_output.const_data_ptr<scalar_t>(), grad_input.mutable_data_ptr<scalar_t>(), g, n);
  });
}

void global_avg_pool_cuda(const at::Tensor& input, at::Tensor& output) {
  const int64_t n = output.numel();
  CONVOPS_DISPATCH_FLOATS(input.scalar_type(), "convops::global_avg_pool", [&] {
    launch(global_avg_pool_kernel<scalar_t, at::opmath_type<scalar_t>>, n,
        input.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(), input.size(1), input.size(2),
        input.stride(0), input.stride(1), input.stride(2), n);
  });
}

void global_avg_pool_backward_cuda(const at::Tensor& grad_output, at::Tensor& grad_input) {
  const int64_t n = grad_input.numel();
  CONVOPS_DISPATCH_FLOATS(grad_output.scalar_type(), "convops::global_avg_pool_backward", [&] {
    launch(global_avg_pool_backward_kernel<scalar_t, at::opmath_type<scalar_t>>, n,
        grad_output.const_data_ptr<scalar_t>(), grad_input.mutable_data_ptr<scalar_t>(), grad_input.size(1),
        grad_input.size(2), grad_input.stride(0), grad_input.stride(1), grad_input.stride(2), n);
  });
}

// channels_last: the same kernels, the element forms reading and writing that layout in
// place (the copies to NCHW and back cost more than the pooling: 0.31-0.49x torch's speed).
void max_pool_cl_cuda(const at::Tensor& input, at::Tensor& output, at::Tensor& indices, const PoolGeometry& g) {
  max_pool_cuda(input, output, indices, in_channels_last(g, input));
}

void max_pool_backward_cl_cuda(const at::Tensor& grad_output, const at::Tensor& indices, at::Tensor& grad_input,
                               const PoolGeometry& g) {
  max_pool_backward_cuda(grad_output, indices, grad_input, in_channels_last(g, grad_input));
}

void avg_pool_cl_cuda(const at::Tensor& input, at::Tensor& output, const PoolGeometry& g) {
  avg_pool_cuda(input, output, in_channels_last(g, input));
}

void avg_pool_backward_cl_cuda(const at::Tensor& grad_output, at::Tensor& grad_input, const PoolGeometry& g) {
  avg_pool_backward_cuda(grad_output, grad_input, in_channels_last(g, grad_input));
}

const bool registered = DeviceTable<PoolKernels>::set(
    c10::kCUDA, PoolKernels{&max_pool_cuda, &max_pool_backward_cuda, &avg_pool_cuda, &avg_pool_backward_cuda,
                            &global_avg_pool_cuda, &global_avg_pool_backward_cuda, &max_pool_cl_cuda,
                            &max_pool_backward_cl_cuda, &avg_pool_cl_cuda, &avg_pool_backward_cl_cuda});

}  // namespace

TORCH_LIBRARY_IMPL(convops, CUDA, m) { register_pool_impls(m); }

}  // namespace ops
}  // namespace convops
