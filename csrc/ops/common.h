// Shared by every op family: argument checks (one message style for all ops) and the
// per-device table through which launcher files hand their kernels to the
// device-agnostic orchestration.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>

#include <array>
#include <optional>
#include <vector>

#include "../kernels/common.h"

namespace convops {
namespace ops {

void check_floating(const char* op, const char* name, const at::Tensor& t);
void check_same(const char* op, const char* name, const at::Tensor& t, const char* ref_name, const at::Tensor& ref);
// (N, C, *spatial) with 1 to 3 spatial dims.
void check_batched(const char* op, const char* name, const at::Tensor& t);
// Both: the main tensor argument of every convolution and pooling op.
void check_batched_floating(const char* op, const char* name, const at::Tensor& t);
// One value per spatial dim, each >= min_value.
void check_param(const char* op, const char* name, at::IntArrayRef v, size_t spatial, int64_t min_value);

// Copies the last `spatial` values of v into out[3], padding in front with `fill`.
void pad_front(at::IntArrayRef v, int64_t fill, int64_t out[kernels::kMaxSpatial]);

// This thread's CPU scratch buffer `slot`: `numel` values of `dtype`, kept by the thread
// between calls (and grown as needed) up to kKeptScratchBytes; larger ones are allocated
// per call, so that one huge call does not hold its memory for the thread's lifetime. A
// fresh multi-megabyte allocation pays a page fault per 4 KiB on first touch, which cost
// as much as an im2col, and more than doubled the direct weight gradient inside a training
// step. Contents undefined; one slot per buffer a call holds at once.
enum class CpuScratch { kColumns, kPackedGradient, kPaddedBatch, kPaddedImage, kPhases, kPhaseOutputs, kCount };
constexpr int64_t kKeptScratchBytes = int64_t(32) << 20;
at::Tensor cpu_scratch(CpuScratch slot, int64_t numel, at::ScalarType dtype);

// The memory format an op returns for a (N, C, *spatial) input: channels_last when the
// input is laid out that way and not also contiguous, as torch's pooling does.
at::MemoryFormat output_format(const at::Tensor& t);

// Kernels of one op family per device type, filled at load time by the launcher files.
template <typename Kernels>
class DeviceTable {
 public:
  static bool set(c10::DeviceType device, Kernels kernels) {
    table()[index(device)] = kernels;
    return true;
  }
  static const Kernels& get(const char* op, const at::Tensor& t) {
    const auto& k = table()[index(t.device().type())];
    TORCH_CHECK(k.has_value(), op, ": no kernels for device ", t.device(), " in this build of convops (built for CPU",
                table()[index(c10::kCUDA)].has_value() ? " and CUDA)" : " only)");
    return *k;
  }

 private:
  static constexpr size_t kDevices = static_cast<size_t>(c10::DeviceType::COMPILE_TIME_MAX_DEVICE_TYPES);
  static size_t index(c10::DeviceType d) { return static_cast<size_t>(d); }
  static std::array<std::optional<Kernels>, kDevices>& table() {
    static std::array<std::optional<Kernels>, kDevices> t{};
    return t;
  }
};

}  // namespace ops
}  // namespace convops
