// Argument checks shared by every op family.
#include "common.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

#include "../kernels/cpu_isa.h"
#include "cpu_engine.h"

namespace convops {
namespace ops {

void check_floating(const char* op, const char* name, const at::Tensor& t) {
  const auto s = t.scalar_type();
  TORCH_CHECK(s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16, op, ": expected ",
              name, " to be float32, float64, float16 or bfloat16, got ", s);
}

void check_same(const char* op, const char* name, const at::Tensor& t, const char* ref_name, const at::Tensor& ref) {
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), op, ": expected ", name, " to have the dtype of ", ref_name,
              " (", ref.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == ref.device(), op, ": expected ", name, " on the device of ", ref_name, " (",
              ref.device(), "), got ", t.device());
}

void check_batched(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.dim() >= 3 && t.dim() <= 5, op, ": expected ", name,
              " of shape (N, C, *spatial) with 1 to 3 spatial dims (3-D to 5-D), got ", t.dim(),
              "-D tensor of shape ", t.sizes());
}

void check_batched_floating(const char* op, const char* name, const at::Tensor& t) {
  check_batched(op, name, t);
  check_floating(op, name, t);
}

void check_param(const char* op, const char* name, at::IntArrayRef v, size_t spatial, int64_t min_value) {
  TORCH_CHECK(v.size() == spatial, op, ": expected ", name, " with ", spatial, " values (one per spatial dim), got ",
              v);
  for (auto x : v) {
    TORCH_CHECK(x >= min_value, op, ": expected ", name, min_value == 0 ? " >= 0" : " > 0",
                " in every dimension, got ", v);
  }
}

void pad_front(at::IntArrayRef v, int64_t fill, int64_t out[kernels::kMaxSpatial]) {
  const size_t front = kernels::kMaxSpatial - v.size();
  for (size_t i = 0; i < static_cast<size_t>(kernels::kMaxSpatial); ++i) out[i] = i >= front ? v[i - front] : fill;
}

at::Tensor cpu_scratch(CpuScratch slot, int64_t numel, at::ScalarType dtype) {
  thread_local std::array<at::Tensor, static_cast<size_t>(CpuScratch::kCount)> buffers;
  at::Tensor& buffer = buffers[static_cast<size_t>(slot)];
  const int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(dtype));
  if (bytes > kKeptScratchBytes) return at::empty({numel}, dtype);
  if (!buffer.defined() || buffer.numel() < bytes) buffer = at::empty({std::max<int64_t>(bytes, 1)}, at::kByte);
  return buffer.narrow(0, 0, bytes).view(dtype);
}

at::MemoryFormat output_format(const at::Tensor& t) {
  if (t.is_contiguous()) return at::MemoryFormat::Contiguous;
  if (t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast)) return at::MemoryFormat::ChannelsLast;
  if (t.dim() == 5 && t.is_contiguous(at::MemoryFormat::ChannelsLast3d)) return at::MemoryFormat::ChannelsLast3d;
  return at::MemoryFormat::Contiguous;
}

namespace {

// The best copy this CPU (and this build) can run.
kernels::CpuIsa best_cpu_isa() {
#ifdef CONVOPS_CPU_COPIES
  // Both copies use FMA (kernels/direct_conv.h); every CPU with AVX2 that we know of has it.
  if (!__builtin_cpu_supports("fma")) return kernels::CpuIsa::kBaseline;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq")) {
    return kernels::CpuIsa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2")) return kernels::CpuIsa::kAvx2;
#endif
  return kernels::CpuIsa::kBaseline;
}

}  // namespace

const char* cpu_isa_name(kernels::CpuIsa isa) {
  switch (isa) {
    case kernels::CpuIsa::kAvx512:
      return "avx512";
    case kernels::CpuIsa::kAvx2:
      return "avx2";
    case kernels::CpuIsa::kBaseline:
      break;
  }
  return "baseline";
}

kernels::CpuIsa cpu_isa() {
  static const kernels::CpuIsa best = best_cpu_isa();
  const char* asked = std::getenv("CONVOPS_CPU_ISA");
  if (asked == nullptr || *asked == '\0' || std::strcmp(asked, "auto") == 0) return best;
  for (auto isa : {kernels::CpuIsa::kBaseline, kernels::CpuIsa::kAvx2, kernels::CpuIsa::kAvx512}) {
    if (std::strcmp(asked, cpu_isa_name(isa)) != 0) continue;
    TORCH_CHECK(isa <= best, "convops: CONVOPS_CPU_ISA=", asked, " but this CPU (or this build) runs at most '",
                cpu_isa_name(best), "'");
    return isa;
  }
  TORCH_CHECK(false, "convops: expected CONVOPS_CPU_ISA to be auto, baseline, avx2 or avx512, got '", asked, "'");
}

}  // namespace ops
}  // namespace convops
