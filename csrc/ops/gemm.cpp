// ops/gemm.h: the choice between the CPU GEMM forms and ATen, and the split of a product
// among threads (by batch entries, else by blocks of output columns or rows: each part is a
// product of its own, the same sums in the same order, so the result is the same at any
// thread count).
#include "gemm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#include "../kernels/cpu_isa.h"
#include "../kernels/gemm_cpu.h"
#include "cpu_engine.h"

namespace convops {
namespace ops {
namespace {

// AMD's CPUs that run a 512-bit fused multiply-add in one pass: Zen 5 (family 26) and later.
// On Zen 4 (family 25) each is two 256-bit halves, and MKL's AVX2 code ran the bench's
// convolutions as fast as the AVX-512 GEMM forms or faster (conv 1x1 256->64 forward at one
// thread: 10.5-11.0 ms against 12.7-13.1; the 3x3 convolutions within the noise).
bool amd_full_width_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__builtin_cpu_is("amd") || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const unsigned base = (eax >> 8) & 0xf, family = base == 0xf ? base + ((eax >> 20) & 0xff) : base;
  return family >= 26;
#else
  return false;
#endif
}

template <typename T>
const kernels::GemmCpuKernels<T, T>& gemm_forms() {
  return cpu_forms_for_call<&kernels::gemm_cpu_kernels<T, T>>();
}

// out (m, n) = a (m, k) @ b (k, n) + beta * out, 2-D, on this thread.
template <typename T>
void gemm_matrix(const kernels::GemmCpuKernels<T, T>& forms, at::Tensor& out, const at::Tensor& a,
                 const at::Tensor& b, T beta) {
  forms.gemm(out.size(0), out.size(1), a.size(1), a.const_data_ptr<T>(), a.stride(0), a.stride(1),
             b.const_data_ptr<T>(), b.stride(0), b.stride(1), beta, out.mutable_data_ptr<T>(), out.stride(0));
}

// Splits one product into parts along out's longer side, in whole tiles.
template <typename T>
void gemm_split(const kernels::GemmCpuKernels<T, T>& forms, at::Tensor& out, const at::Tensor& a,
                const at::Tensor& b, T beta, int64_t threads) {
  const bool by_columns = out.size(1) >= out.size(0);
  const int dim = by_columns ? 1 : 0;
  const int64_t tile = by_columns ? forms.tile_cols : forms.tile_rows;
  const int64_t tiles = kernels::ceil_div(out.size(dim), tile);
  if (threads <= 1 || tiles < 2) {
    gemm_matrix(forms, out, a, b, beta);
    return;
  }
  const int64_t per_part = kernels::ceil_div(tiles, std::min(threads, tiles)) * tile;
  at::parallel_for(0, kernels::ceil_div(out.size(dim), per_part), 1, [&](int64_t first, int64_t end) {
    for (int64_t part = first; part < end; ++part) {
      const int64_t lo = part * per_part, width = std::min(per_part, out.size(dim) - lo);
      auto o = out.narrow(dim, lo, width);
      gemm_matrix(forms, o, by_columns ? a : a.narrow(0, lo, width), by_columns ? b.narrow(1, lo, width) : b, beta);
    }
  });
}

enum class GemmChoice { kAuto, kOwn, kAten };

GemmChoice gemm_choice() {
  const char* asked = std::getenv("CONVOPS_GEMM");
  if (asked == nullptr || *asked == '\0' || std::strcmp(asked, "auto") == 0) return GemmChoice::kAuto;
  if (std::strcmp(asked, "own") == 0) return GemmChoice::kOwn;
  TORCH_CHECK(std::strcmp(asked, "aten") == 0, "convops: expected CONVOPS_GEMM to be auto, own or aten, got '",
              asked, "'");
  return GemmChoice::kAten;
}

// Whether the GEMM forms can compute a product into `like`: float or double, on the CPU.
bool forms_can_take(const at::Tensor& like) {
  const bool float_or_double = like.scalar_type() == at::kFloat || like.scalar_type() == at::kDouble;
  return like.is_cpu() && float_or_double && !use_element_engine();
}

// Position rows (gemm.h) against a B that the forms pack whole: they read those rows in place
// (kernels/gemm_cpu.h), where MKL copies them value by value into its panels. make bench's
// 256->64 channels_last twin on a Zen 3 EPYC, in one process (README, GEMM): forward 17.8 ->
// 14.1 ms at 1 thread, 10.9 -> 8.0 ms at 2. Other products with as many contiguous rows of A
// (ResNet-50's 2048 output channels as W) ran level with MKL, so they keep ATen. kManyRows: a
// bound on where the copy matters, not measured below it.
constexpr int64_t kManyRows = 1024;
bool rows_read_in_place(const at::Tensor& a, const at::Tensor& b) {
  return a.stride(-1) == 1 && a.size(-2) >= kManyRows &&
         b.size(-2) * b.size(-1) * static_cast<int64_t>(b.element_size()) <= kernels::kGemmWholeBBytes;
}

}  // namespace

bool own_gemm(const at::Tensor& like) { return forms_can_take(like) && own_cpu_gemm(); }

bool own_cpu_gemm() {
  if (use_element_engine()) return false;
  const GemmChoice choice = gemm_choice();
  if (choice == GemmChoice::kAuto) {
    static const bool full_width = amd_full_width_avx512();
    return full_width && cpu_isa() == kernels::CpuIsa::kAvx512;
  }
  return choice == GemmChoice::kOwn;
}

void gemm_into(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, double beta, bool position_rows) {
  const bool batched = out.dim() == 3;
  const bool forms = own_gemm(out) || (position_rows && forms_can_take(out) && gemm_choice() == GemmChoice::kAuto &&
                                       rows_read_in_place(a, b));
  if (!forms || out.stride(-1) != 1 || out.numel() == 0) {
    if (batched) {
      beta == 0 ? (void)at::bmm_out(out, a, b) : (void)out.baddbmm_(a, b, beta);
    } else {
      beta == 0 ? (void)at::mm_out(out, a, b) : (void)out.addmm_(a, b, beta);
    }
    return;
  }
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "convops::gemm", [&] {
    const auto& forms = gemm_forms<scalar_t>();
    const auto beta_t = static_cast<scalar_t>(beta);
    const int64_t threads = at::in_parallel_region() ? 1 : at::get_num_threads();
    if (!batched) {
      gemm_split(forms, out, a, b, beta_t, threads);
      return;
    }
    const int64_t entries = out.size(0);
    if (threads > 1 && entries >= threads) {
      at::parallel_for(0, entries, 1, [&](int64_t first, int64_t end) {
        for (int64_t i = first; i < end; ++i) {
          auto o = out.select(0, i);
          gemm_matrix(forms, o, a.select(0, i), b.select(0, i), beta_t);
        }
      });
      return;
    }
    for (int64_t i = 0; i < entries; ++i) {
      auto o = out.select(0, i);
      gemm_split(forms, o, a.select(0, i), b.select(0, i), beta_t, threads);
    }
  });
}

at::Tensor gemm(const at::Tensor& a, const at::Tensor& b) {
  std::vector<int64_t> sizes(a.sizes().begin(), a.sizes().end());
  sizes.back() = b.size(-1);
  auto out = at::empty(sizes, a.options());
  gemm_into(out, a, b);
  return out;
}

}  // namespace ops
}  // namespace convops
