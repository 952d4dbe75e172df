// The one place where every convops schema is declared. Kernels are registered
// per dispatch key by the launcher files (ops/*/*_cpu.cpp, ops/*/*_cuda.cu);
// fake kernels and autograd are registered in Python (convops/_ops.py).
#include <torch/library.h>

TORCH_LIBRARY(convops, m) {
  // Convolution family. Tensors are (N, C, *spatial), 1 to 3 spatial dims.
  m.def("im2col(Tensor input, int[] kernel_size, int[] dilation, int[] padding, int[] stride) -> Tensor");
  m.def("col2im(Tensor columns, int[] output_size, int[] kernel_size, int[] dilation, int[] padding, "
        "int[] stride) -> Tensor");
  m.def("conv(Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, int[] dilation, "
        "int groups) -> Tensor");
  m.def("conv_backward_input(Tensor grad_output, Tensor weight, int[] input_size, int[] stride, "
        "int[] padding, int[] dilation, int groups) -> Tensor");
  m.def("conv_backward_weight(Tensor grad_output, Tensor input, int[] weight_size, int[] stride, "
        "int[] padding, int[] dilation, int groups) -> Tensor");
  m.def("conv_transpose(Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
        "int[] output_padding, int[] dilation, int groups) -> Tensor");

  // Pooling family. Tensors are (N, C, *spatial), 1 to 3 spatial dims; max-pool indices
  // are flat positions inside each input plane, as torch's.
  // with_indices=False (inference) skips the argmax and returns an empty indices tensor.
  m.def("max_pool(Tensor input, int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode, "
        "bool with_indices=True) -> (Tensor, Tensor)");
  m.def("max_pool_backward(Tensor grad_output, Tensor indices, int[] input_size, int[] kernel_size, int[] stride, "
        "int[] padding, int[] dilation, bool ceil_mode) -> Tensor");
  m.def("avg_pool(Tensor input, int[] kernel_size, int[] stride, int[] padding, bool ceil_mode, "
        "bool count_include_pad, int? divisor_override) -> Tensor");
  m.def("avg_pool_backward(Tensor grad_output, int[] input_size, int[] kernel_size, int[] stride, int[] padding, "
        "bool ceil_mode, bool count_include_pad, int? divisor_override) -> Tensor");
  m.def("global_avg_pool(Tensor input) -> Tensor");
}

// convops._C is imported as a Python module only to load this library, which
// registers the ops; it exposes nothing itself.
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
