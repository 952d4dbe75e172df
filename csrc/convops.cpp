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
  // are flat positions inside each input plane (int64), as torch's.
  // with_indices=False (inference) skips the argmax and returns an empty indices tensor;
  // tap_indices=True returns it as each window's winning tap instead (uint8, row-major over
  // the kernel, 255 for a window with no tap inside; kernels of at most 255 taps): what
  // autograd saves when the indices are not asked for. max_pool_backward reads either.
  m.def("max_pool(Tensor input, int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode, "
        "bool with_indices=True, bool tap_indices=False) -> (Tensor, Tensor)");
  m.def("max_pool_backward(Tensor grad_output, Tensor indices, int[] input_size, int[] kernel_size, int[] stride, "
        "int[] padding, int[] dilation, bool ceil_mode) -> Tensor");
  m.def("avg_pool(Tensor input, int[] kernel_size, int[] stride, int[] padding, bool ceil_mode, "
        "bool count_include_pad, int? divisor_override) -> Tensor");
  m.def("avg_pool_backward(Tensor grad_output, int[] input_size, int[] kernel_size, int[] stride, int[] padding, "
        "bool ceil_mode, bool count_include_pad, int? divisor_override) -> Tensor");
  m.def("global_avg_pool(Tensor input) -> Tensor");
  // channels_last: the gradient in channels_last(_3d), as the input was (4-D, 5-D input_size)
  m.def("global_avg_pool_backward(Tensor grad_output, int[] input_size, bool channels_last) -> Tensor");
}

// convops._C is imported as a Python module to load this library, which registers the
// ops; it exposes two functions of its own: cpu_isa(), which copy of the CPU forms
// (kernels/cpu_isa.h) the row engine runs now: "avx512", "avx2" or "baseline"; and
// cpu_gemm(), whose GEMM the convolutions of float and double run on the CPU now: "own"
// (kernels/gemm_cpu.h) or "aten" (ops/gemm.h).
#include <Python.h>

#include "ops/cpu_engine.h"
#include "ops/gemm.h"

namespace {

PyObject* cpu_isa(PyObject*, PyObject*) {
  try {
    return PyUnicode_FromString(convops::ops::cpu_isa_name(convops::ops::cpu_isa()));
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

PyObject* cpu_gemm(PyObject*, PyObject*) {
  try {
    return PyUnicode_FromString(convops::ops::own_cpu_gemm() ? "own" : "aten");
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

PyMethodDef methods[] = {
    {"cpu_isa", cpu_isa, METH_NOARGS, "The instruction set of the CPU forms in use: 'avx512', 'avx2' or 'baseline'."},
    {"cpu_gemm", cpu_gemm, METH_NOARGS, "Whose GEMM the CPU convolutions run: 'own' (convops') or 'aten' (MKL)."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  return PyModule_Create(&module);
}
