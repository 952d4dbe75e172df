// CPU launchers for the column kernels and the CPU registration of the
// convolution family. Both engines of cpu_engine.h run the math of kernels/im2col.h.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "../cpu_engine.h"
#include "conv.h"

namespace convops {
namespace ops {
namespace {

void im2col_cpu(const at::Tensor& image, at::Tensor& columns, const ColumnGeometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, image.scalar_type(), "convops::im2col", [&] {
    const scalar_t* in = image.const_data_ptr<scalar_t>();
    scalar_t* out = columns.mutable_data_ptr<scalar_t>();
    if (use_element_engine()) {
      at::parallel_for(0, columns.numel(), kElementGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) out[i] = kernels::im2col_element(in, g, i);
      });
      return;
    }
    const int64_t rows = columns.numel() / g.cols_numel();
    at::parallel_for(0, rows, grain_for(g.cols_numel()), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) kernels::im2col_row(in, out, g, r);
    });
  });
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
    at::parallel_for(0, planes, grain_for(g.image_numel() * g.kernel_numel()), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(g.image_numel());
      for (int64_t p = begin; p < end; ++p) kernels::col2im_plane(in, out, acc.data(), g, p);
    });
  });
}

const bool registered = DeviceTable<ColumnKernels>::set(c10::kCPU, ColumnKernels{&im2col_cpu, &col2im_cpu});

}  // namespace

TORCH_LIBRARY_IMPL(convops, CPU, m) { register_conv_impls(m); }

}  // namespace ops
}  // namespace convops
