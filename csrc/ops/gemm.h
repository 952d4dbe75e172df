// The matrix products of the convolutions: out = a @ b + beta * out, for (m, k) @ (k, n)
// matrices or (B, m, k) @ (B, k, n) batches (any strides; out with unit column stride for
// the CPU forms). On the CPU, for float and double, the GEMM forms (kernels/gemm_cpu.h)
// where own_gemm() says so, else ATen (MKL on the CPU, cuBLAS on the GPU).
#pragma once
#include <ATen/core/Tensor.h>

namespace convops {
namespace ops {

// Whether this call's CPU GEMMs run the GEMM forms: CONVOPS_GEMM = "own" (always), "aten"
// (never) or "auto"/unset: on AMD CPUs whose AVX-512 runs at full width (Zen 5 and later),
// where MKL runs its AVX2 code at half their peak (a Zen 5 EPYC, one core: 85-98 GFLOP/s
// against the forms' 115-177); elsewhere ATen (MKL's AVX-512 code on Intel's; on Zen 4, whose
// AVX-512 is two AVX2 halves, MKL's AVX2 code was as fast or faster).
bool own_gemm(const at::Tensor& like);
bool own_cpu_gemm();  // the same choice for float and double CPU tensors

// position_rows: a is a channels_last tensor's position rows (N * S, C), many contiguous rows;
// "auto" then gives the product to the GEMM forms on every CPU where B packs whole (gemm.cpp,
// rows_read_in_place).
void gemm_into(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, double beta = 0,
               bool position_rows = false);

// a @ b as a new tensor.
at::Tensor gemm(const at::Tensor& a, const at::Tensor& b);

}  // namespace ops
}  // namespace convops
