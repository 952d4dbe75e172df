// CPU launchers for the pooling kernels and the CPU registration of the pooling
// family. Both engines of cpu_engine.h run the math of kernels/pool.h: the element
// functions (as on the GPU) or the per-plane separable forms.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "../cpu_engine.h"
#include "../../kernels/pool_cpu.h"
#include "pool.h"

namespace convops {
namespace ops {
namespace {

// Per-task scratch for the plane engine.
template <typename Acc>
struct PlaneBuffers {
  std::vector<int64_t> taps, bounds, block_taps, block_bounds;
  kernels::PhasedRow phased, block_phased;
  std::vector<Acc> block_sums, block_f01, slab;  // kernels::AvgRowBlock (zeros: the sums' padding)
  std::vector<Acc> rows, best, factor, line, columns, slices;
  std::vector<kernels::PlanePos<Acc>> row_at, best_at;
  std::vector<int64_t> covering;
  int64_t share_lead;
  std::vector<Acc> shares;
  std::vector<kernels::PlanePos<Acc>> share_codes;
  bool stream;
  std::vector<Acc> out;
  std::vector<kernels::PlanePos<Acc>> out_at;
  std::vector<int32_t> window_position, window_first;
  kernels::WindowTable windows;
  std::vector<Acc> window_values;  // the plane (and -inf: plane_values in all), then the windows' best values
  std::vector<kernels::PlanePos<Acc>> window_at;
  std::vector<const Acc*> source_from;
  std::vector<const kernels::PlanePos<Acc>*> source_codes;
  std::vector<kernels::PlanePos<Acc>> source_base;
  int64_t plane_values = 0;
  // with_positions: max pooling's (its blocks of input rows, and the winners' positions);
  // with_columns: the average-pool gradient's columns and covering rows; with_block: the
  // average-pool forward's block of rows; stream: write the output (output_bytes in all)
  // by streaming stores.
  PlaneBuffers(const PoolGeometry& g, int64_t output_bytes, bool with_positions, bool with_columns = false,
               bool with_block = false)
      : phased(kernels::PhasedRow::build(g, taps, bounds)),
        block_phased(kernels::PhasedRow::build(
            g, block_taps, block_bounds,
            with_block ? kernels::avg_block_rows(g) : (with_positions ? kernels::max_block_rows(g) : 0))),
        block_sums(with_block ? block_phased.size + kernels::kLanePad : 0), block_f01(block_phased.rows),
        slab(with_block && kernels::avg_slab(g) ? g.image[1] * g.image[2] : 0),
        rows(std::max(g.image[0] * g.image[1] * std::max(kernels::padded_row(g.out[2]), kernels::max_row_stride(g)) +
                          kernels::kLanePad,
                      g.image[2] + 1)),
        best(kernels::padded_row(g.out[2])), factor(best.size()),
        line(std::max(phased.size, block_phased.size) + kernels::kLanePad),
        columns(with_columns ? g.out[0] * g.out[1] * g.image[2] : 0),
        slices(with_columns && !g.outer_identity() ? g.out[0] * g.image[1] * g.image[2] : 0),
        row_at(with_positions ? rows.size() : 0),
        best_at(with_positions ? 2 * kernels::padded_row(g.out[2]) : 0),
        covering(with_columns ? 2 * (g.image[0] + g.image[1]) : 0),
        share_lead(kernels::avg_share_lead(g)),
        shares(with_columns ? share_lead + kernels::padded_row(phased.length) + kernels::kLanePad : 0),
        share_codes(shares.size()),
        stream(kernels::streamed(output_bytes)),
        windows{nullptr, nullptr, nullptr},
        source_from(with_positions ? std::max(g.kernel[2], g.kernel[0] * g.kernel[1]) : 0),
        source_codes(source_from.size()), source_base(source_from.size()) {
    kernels::avg_innermost_factors(g, factor.data());
    if (with_positions && g.out[2] < kernels::kShortPoolRow) {  // max pooling's short rows
      windows = kernels::WindowTable::build(g, window_position, window_first);
      if (windows.position != nullptr) {
        plane_values = g.image_numel() + 1;
        window_values.resize(plane_values + g.out_numel());
        window_at.resize(g.out_numel());
      }
    }
    // What the passes stage: the plane where streamed, else max pooling's runs of short rows
    // (kernels::max_pool_plane) one output slice; whole vectors past the last row (kLanePad).
    const bool max_runs = with_positions && kernels::max_row_runs(g);
    if (stream || max_runs) {
      out.resize((stream ? g.out_numel() : g.out[1] * g.out[2]) + kernels::kLanePad);
      if (with_positions) out_at.resize(out.size());
    }
  }
  kernels::PoolScratch<Acc> view() {
    return {rows.data(), row_at.data(), best.data(), best_at.data(), factor.data(), line.data(), phased,
            {block_sums.data(), block_f01.data(), block_phased, slab.data()}, columns.data(), slices.data(),
            covering.data(),
            shares.empty() ? nullptr : shares.data() + share_lead,
            share_codes.empty() ? nullptr : share_codes.data() + share_lead, stream, out.data(), out_at.data(), windows,
            window_values.data(), window_values.data() + plane_values, window_at.data(),
            {source_from.data(), source_codes.data(), source_base.data()}};
  }
};

// The CPU forms for this call (the copy for this CPU: cpu_engine.h).
template <typename T, typename Acc>
const kernels::PoolCpuKernels<T, Acc>& cpu_forms() {
  return cpu_forms_for_call<&kernels::pool_cpu_kernels<T, Acc>>();
}

// The scratch a kernel accumulates in, or nullptr for none (kernels::accumulator).
template <typename Acc>
Acc* scratch_or_null(std::vector<Acc>& scratch) { return scratch.empty() ? nullptr : scratch.data(); }

int64_t planes_of(const at::Tensor& t, int64_t plane_numel) { return t.numel() / plane_numel; }

// The gradients spread over phased rows (the average-pool gradient, the max-pool gradient of
// rows pooled one by one): plane(acc, scratch, p) for every plane p of grad_input, in parallel
// chunks, each with its scratch and accumulator (kernels::accumulator: none where T is Acc).
template <typename T, typename Acc, typename Plane>
void for_each_gradient_plane(const at::Tensor& grad_input, const PoolGeometry& g, Plane&& plane) {
  at::parallel_for(0, planes_of(grad_input, g.image_numel()), grain_for(g.image_numel()), [&](int64_t b, int64_t e) {
    PlaneBuffers<Acc> buffers(g, grad_input.nbytes(), false, true);
    std::vector<Acc> acc(std::is_same_v<T, Acc> ? 0 : g.image_numel());
    for (int64_t p = b; p < e; ++p) plane(scratch_or_null(acc), buffers.view(), p);
  });
}

// The element forms (what the GPU runs), over the tensors' memory order: (B*C, *plane), or
// channels_last where g.cl_channels says so. body(i) for every element i < count, in
// parallel chunks sized by the window's taps.
template <typename Body>
void for_each_element(int64_t count, const PoolGeometry& g, Body&& body) {
  at::parallel_for(0, count, grain_for(g.taps()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) body(i);
  });
}

// Tap codes: where each tap of a window lies from its origin (PoolGeometry::tap_offset).
std::vector<int64_t> tap_offsets(const PoolGeometry& g, const at::Tensor& indices) {
  std::vector<int64_t> offsets(indices.scalar_type() == at::kByte ? g.taps() : 0);
  for (int64_t k = 0; k < static_cast<int64_t>(offsets.size()); ++k) offsets[k] = g.tap_offset(k);
  return offsets;
}

template <typename Index, typename T, typename Acc>
const kernels::MaxPoolCpuForms<T, Acc, Index>& max_forms(const kernels::PoolCpuKernels<T, Acc>& forms) {
  if constexpr (sizeof(Index) == 1) {
    return forms.max_taps;
  } else {
    return forms.max_positions;
  }
}

void max_pool_elements(const at::Tensor& input, at::Tensor& output, at::Tensor& indices, const PoolGeometry& g) {
  dispatch_max_pool<false>(input, indices, [&](auto code, auto value) {
    using Index = decltype(code);
    using scalar_t = decltype(value);
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    Index* at_ = argmax_or_null<Index>(indices);
    for_each_element(output.numel(), g, [&](int64_t i) {
      kernels::max_pool_element<scalar_t, acc_t, Index>(in, g, i, out + i, at_ != nullptr ? at_ + i : nullptr);
    });
  });
}

void max_pool_backward_elements(const at::Tensor& grad_output, const at::Tensor& indices, at::Tensor& grad_input,
                                const PoolGeometry& g) {
  dispatch_max_pool<true>(grad_output, indices, [&](auto code, auto value) {
    using Index = decltype(code);
    using scalar_t = decltype(value);
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* go = grad_output.const_data_ptr<scalar_t>();
    const Index* at_ = argmax_codes<Index>(indices);
    scalar_t* gi = grad_input.mutable_data_ptr<scalar_t>();
    for_each_element(grad_input.numel(), g, [&](int64_t i) {
      gi[i] = static_cast<scalar_t>(kernels::max_pool_backward_element<scalar_t, acc_t, Index>(go, at_, g, i));
    });
  });
}

void avg_pool_elements(const at::Tensor& input, at::Tensor& output, const PoolGeometry& g) {
  CONVOPS_DISPATCH_FLOATS(input.scalar_type(), "convops::avg_pool", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    for_each_element(output.numel(), g, [&](int64_t i) {
      out[i] = static_cast<scalar_t>(kernels::avg_pool_element<scalar_t, acc_t>(in, g, i));
    });
  });
}

void avg_pool_backward_elements(const at::Tensor& grad_output, at::Tensor& grad_input, const PoolGeometry& g) {
  CONVOPS_DISPATCH_FLOATS(grad_output.scalar_type(), "convops::avg_pool_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* go = grad_output.const_data_ptr<scalar_t>();
    scalar_t* gi = grad_input.mutable_data_ptr<scalar_t>();
    for_each_element(grad_input.numel(), g, [&](int64_t i) {
      gi[i] = static_cast<scalar_t>(kernels::avg_pool_backward_element<scalar_t, acc_t>(go, g, i));
    });
  });
}

void max_pool_cpu(const at::Tensor& input, at::Tensor& output, at::Tensor& indices, const PoolGeometry& g) {
  if (use_element_engine()) {
    max_pool_elements(input, output, indices, g);
    return;
  }
  dispatch_max_pool<false>(input, indices, [&](auto code, auto value) {
    using Index = decltype(code);
    using scalar_t = decltype(value);
    using acc_t = at::opmath_type<scalar_t>;
    if (g.image_numel() >= std::numeric_limits<kernels::PlanePos<acc_t>>::max()) {  // planes the forms cannot track
      max_pool_elements(input, output, indices, g);
      return;
    }
    const auto& forms = max_forms<Index>(cpu_forms<scalar_t, acc_t>());
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    Index* at_ = argmax_or_null<Index>(indices);
    at::parallel_for(0, planes_of(output, g.out_numel()), grain_for(g.image_numel()), [&](int64_t b, int64_t e) {
      PlaneBuffers<acc_t> buffers(g, output.nbytes() + indices.nbytes(), true);
      for (int64_t p = b; p < e; ++p) forms.plane(in, out, at_, g, buffers.view(), p);
    });
  });
}

void max_pool_backward_cpu(const at::Tensor& grad_output, const at::Tensor& indices, at::Tensor& grad_input,
                           const PoolGeometry& g) {
  if (use_element_engine()) {
    max_pool_backward_elements(grad_output, indices, grad_input, g);
    return;
  }
  const auto offsets = tap_offsets(g, indices);
  dispatch_max_pool<true>(grad_output, indices, [&](auto code, auto value) {
    using Index = decltype(code);
    using scalar_t = decltype(value);
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = max_forms<Index>(cpu_forms<scalar_t, acc_t>());
    const scalar_t* go = grad_output.const_data_ptr<scalar_t>();
    const Index* at_ = argmax_codes<Index>(indices);
    scalar_t* gi = grad_input.mutable_data_ptr<scalar_t>();
    if constexpr (sizeof(Index) == 1) {
      if (g.outer_identity()) {  // rows pooled one by one, tap codes: the gather form
        const auto& rows = cpu_forms<scalar_t, acc_t>().max_backward_rows;
        for_each_gradient_plane<scalar_t, acc_t>(grad_input, g, [&](acc_t* acc, const auto& scratch, int64_t p) {
          rows(go, at_, gi, acc, g, scratch, p);
        });
        return;
      }
    }
    at::parallel_for(0, planes_of(grad_input, g.image_numel()), grain_for(g.image_numel()), [&](int64_t b, int64_t e) {
      // A plane summed in cache and streamed out: no read of the fresh gradient, no zero-fill of it in memory.
      const bool stream = kernels::streamed(grad_input.nbytes());
      std::vector<acc_t> acc(std::is_same_v<scalar_t, acc_t> && !stream ? 0 : g.image_numel());  // kernels::accumulator
      for (int64_t p = b; p < e; ++p) {
        forms.backward_plane(go, at_, offsets.data(), gi, scratch_or_null(acc), g, p, stream);
      }
    });
  });
}

void avg_pool_cpu(const at::Tensor& input, at::Tensor& output, const PoolGeometry& g) {
  if (use_element_engine()) {
    avg_pool_elements(input, output, g);
    return;
  }
  CONVOPS_DISPATCH_FLOATS(input.scalar_type(), "convops::avg_pool", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = cpu_forms<scalar_t, acc_t>();
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, planes_of(output, g.out_numel()), grain_for(g.image_numel()), [&](int64_t b, int64_t e) {
      PlaneBuffers<acc_t> buffers(g, output.nbytes(), false, false, true);
      for (int64_t p = b; p < e; ++p) forms.avg_plane(in, out, g, buffers.view(), p);
    });
  });
}

void avg_pool_backward_cpu(const at::Tensor& grad_output, at::Tensor& grad_input, const PoolGeometry& g) {
  if (use_element_engine()) {
    avg_pool_backward_elements(grad_output, grad_input, g);
    return;
  }
  CONVOPS_DISPATCH_FLOATS(grad_output.scalar_type(), "convops::avg_pool_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = cpu_forms<scalar_t, acc_t>();
    const scalar_t* go = grad_output.const_data_ptr<scalar_t>();
    scalar_t* gi = grad_input.mutable_data_ptr<scalar_t>();
    for_each_gradient_plane<scalar_t, acc_t>(grad_input, g, [&](acc_t* acc, const auto& scratch, int64_t p) {
      forms.avg_backward_plane(go, gi, acc, g, scratch, p);
    });
  });
}

void global_avg_pool_cpu(const at::Tensor& input, at::Tensor& output) {
  CONVOPS_DISPATCH_FLOATS(input.scalar_type(), "convops::global_avg_pool", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = cpu_forms<scalar_t, acc_t>();
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    const int64_t N = input.size(0), C = input.size(1), S = input.size(2);
    const int64_t sn = input.stride(0), sc = input.stride(1), ss = input.stride(2);
    const bool row_engine = !use_element_engine();
    if (row_engine && ss == 1 && sc == S && sn == C * S) {  // dense NCHW: plane i starts at i * S
      at::parallel_for(0, N * C, grain_for(S), [&](int64_t b, int64_t e) {
        forms.plane_means(in + b * S, out + b, e - b, S);
      });
    } else if (row_engine && sc == 1 && ss == C) {  // channels_last: rows of C channels
      at::parallel_for(0, N, grain_for(S * C), [&](int64_t b, int64_t e) {
        std::vector<acc_t> acc(C);
        for (int64_t n = b; n < e; ++n) forms.image_channel_means(in + n * sn, out + n * C, acc.data(), C, S);
      });
    } else {  // the element engine, or any other strides: the element form reads through them
      at::parallel_for(0, N * C, grain_for(S), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          out[i] = static_cast<scalar_t>(kernels::global_avg_element<scalar_t, acc_t>(in, C, S, sn, sc, ss, i));
        }
      });
    }
  });
}

void global_avg_pool_backward_cpu(const at::Tensor& grad_output, at::Tensor& grad_input) {
  CONVOPS_DISPATCH_FLOATS(grad_output.scalar_type(), "convops::global_avg_pool_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = cpu_forms<scalar_t, acc_t>();
    const scalar_t* go = grad_output.const_data_ptr<scalar_t>();
    scalar_t* gi = grad_input.mutable_data_ptr<scalar_t>();
    const int64_t N = grad_input.size(0), C = grad_input.size(1), S = grad_input.size(2);
    const int64_t sn = grad_input.stride(0), sc = grad_input.stride(1), ss = grad_input.stride(2);
    const bool stream = kernels::streamed(grad_input.nbytes());
    const bool row_engine = !use_element_engine();
    if (row_engine && ss == 1) {  // dense NCHW: plane i starts at i * S
      at::parallel_for(0, N * C, grain_for(S), [&](int64_t b, int64_t e) {
        forms.plane_fills(go + b, gi + b * S, e - b, S, stream);
      });
    } else if (row_engine && sc == 1) {  // channels_last: rows of C channels
      at::parallel_for(0, N, grain_for(S * C), [&](int64_t b, int64_t e) {
        std::vector<scalar_t> row(C);
        for (int64_t n = b; n < e; ++n) forms.image_channel_fills(go + n * C, gi + n * sn, row.data(), C, S, stream);
      });
    } else {
      at::parallel_for(0, N * C * S, grain_for(1), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t p = i / S, n = p / C, c = p % C;
          gi[n * sn + c * sc + (i % S) * ss] =
              static_cast<scalar_t>(kernels::global_avg_backward_element<scalar_t, acc_t>(go, S, i));
        }
      });
    }
  });
}

// ---------------------------------------------------------------- channels_last
// With the element engine selected, channels_last tensors take the element forms in place,
// as the GPU does, so that engine is what the tests exercise for every layout.
int64_t channels_of(const at::Tensor& t) { return t.size(1); }

void max_pool_cl_cpu(const at::Tensor& input, at::Tensor& output, at::Tensor& indices, const PoolGeometry& g) {
  if (use_element_engine() || g.image_numel() >= std::numeric_limits<int32_t>::max()) {
    max_pool_elements(input, output, indices, in_channels_last(g, input));
    return;
  }
  dispatch_max_pool<false>(input, indices, [&](auto code, auto value) {
    using Index = decltype(code);
    using scalar_t = decltype(value);
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = max_forms<Index>(cpu_forms<scalar_t, acc_t>());
    const int64_t C = channels_of(input);
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    Index* at_ = argmax_or_null<Index>(indices);
    const bool stream = kernels::streamed(output.nbytes());
    at::parallel_for(0, output.numel() / C, grain_for(C * g.taps()), [&](int64_t b, int64_t e) {
      std::vector<acc_t> best(C);
      std::vector<kernels::PlanePos<acc_t>> best_at(C), tap_codes(g.taps());
      std::vector<const acc_t*> taps(g.taps());
      const kernels::MaxSources<acc_t> sources{taps.data(), nullptr, tap_codes.data()};
      forms.cl_positions(in, out, at_, best.data(), best_at.data(), sources, C, g, b, e, stream);
      if (stream) kernels::streaming_done();
    });
  });
}

void max_pool_backward_cl_cpu(const at::Tensor& grad_output, const at::Tensor& indices, at::Tensor& grad_input,
                              const PoolGeometry& g) {
  if (use_element_engine()) {
    max_pool_backward_elements(grad_output, indices, grad_input, in_channels_last(g, grad_input));
    return;
  }
  const auto offsets = tap_offsets(g, indices);
  dispatch_max_pool<true>(grad_output, indices, [&](auto code, auto value) {
    using Index = decltype(code);
    using scalar_t = decltype(value);
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = max_forms<Index>(cpu_forms<scalar_t, acc_t>());
    const int64_t C = channels_of(grad_output);
    const scalar_t* go = grad_output.const_data_ptr<scalar_t>();
    const Index* at_ = argmax_codes<Index>(indices);
    scalar_t* gi = grad_input.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, grad_input.size(0), 1, [&](int64_t b, int64_t e) {
      std::vector<acc_t> acc(std::is_same_v<scalar_t, acc_t> ? 0 : g.image_numel() * C);  // kernels::accumulator
      std::vector<int64_t> gather(kernels::GatherScratch::size(g));
      const kernels::GatherScratch gather_scratch(g, gather.data());
      for (int64_t n = b; n < e; ++n) {
        forms.backward_cl_image(go, at_, offsets.data(), gi, scratch_or_null(acc), C, g, gather_scratch, n);
      }
    });
  });
}

void avg_pool_cl_cpu(const at::Tensor& input, at::Tensor& output, const PoolGeometry& g) {
  if (use_element_engine()) {
    avg_pool_elements(input, output, in_channels_last(g, input));
    return;
  }
  CONVOPS_DISPATCH_FLOATS(input.scalar_type(), "convops::avg_pool", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = cpu_forms<scalar_t, acc_t>();
    const int64_t C = channels_of(input);
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    const int64_t rows = output.numel() / (C * g.out[2]);
    const bool stream = kernels::streamed(output.nbytes());
    at::parallel_for(0, rows, grain_for(C * g.out[2] * g.taps()), [&](int64_t b, int64_t e) {
      std::vector<acc_t> sum(C);
      std::vector<const acc_t*> sources(g.taps());
      for (int64_t r = b; r < e; ++r) forms.avg_cl_row(in, out, sources.data(), sum.data(), C, g, r, stream);
      if (stream) kernels::streaming_done();
    });
  });
}

void avg_pool_backward_cl_cpu(const at::Tensor& grad_output, at::Tensor& grad_input, const PoolGeometry& g) {
  if (use_element_engine()) {
    avg_pool_backward_elements(grad_output, grad_input, in_channels_last(g, grad_input));
    return;
  }
  CONVOPS_DISPATCH_FLOATS(grad_output.scalar_type(), "convops::avg_pool_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto& forms = cpu_forms<scalar_t, acc_t>();
    const int64_t C = channels_of(grad_output);
    const scalar_t* go = grad_output.const_data_ptr<scalar_t>();
    scalar_t* gi = grad_input.mutable_data_ptr<scalar_t>();
    const bool stream = kernels::streamed(grad_input.nbytes());
    at::parallel_for(0, grad_input.size(0), 1, [&](int64_t b, int64_t e) {
      std::vector<acc_t> share(g.out_numel() * C), sum(C);
      std::vector<const acc_t*> sources(g.taps());
      std::vector<int64_t> gather(kernels::GatherScratch::size(g));
      const kernels::GatherScratch gather_scratch(g, gather.data());
      for (int64_t n = b; n < e; ++n) {
        forms.avg_backward_cl_image(go, gi, share.data(), sum.data(), sources.data(), gather_scratch, C, g, n, stream);
      }
      if (stream) kernels::streaming_done();
    });
  });
}

const bool registered = DeviceTable<PoolKernels>::set(
    c10::kCPU, PoolKernels{&max_pool_cpu, &max_pool_backward_cpu, &avg_pool_cpu, &avg_pool_backward_cpu,
                           &global_avg_pool_cpu, &global_avg_pool_backward_cpu, &max_pool_cl_cpu,
                           &max_pool_backward_cl_cpu, &avg_pool_cl_cpu, &avg_pool_backward_cl_cpu});

}  // namespace

TORCH_LIBRARY_IMPL(convops, CPU, m) { register_pool_impls(m); }

}  // namespace ops
}  // namespace convops
