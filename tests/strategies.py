"""Hypothesis strategies for convolution-family problems, and tensor layout helpers."""
import torch
from hypothesis import assume
from hypothesis import strategies as st

LAYOUTS = ("contiguous", "channels_last", "strided")


def integer_tensor(shape, dtype, low=-3, high=3, generator=None):
    """Small integers: every sum in these tests is exact in float32 and float64."""
    return torch.randint(low, high + 1, shape, generator=generator).to(dtype)


def with_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values in another memory layout (differentiable, so gradients reach t)."""
    if layout == "channels_last" and t.dim() in (4, 5):
        return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
    if layout == "strided":
        wide = torch.stack([t, torch.zeros_like(t)], dim=-1).flatten(-2)
        return wide[..., ::2]
    return t


@st.composite
def window(draw, spatial, max_kernel=4, max_stride=3, max_dilation=3, max_padding=2):
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(spatial))
    stride = tuple(draw(st.integers(1, max_stride)) for _ in range(spatial))
    dilation = tuple(draw(st.integers(1, max_dilation)) for _ in range(spatial))
    padding = tuple(draw(st.integers(0, max_padding)) for _ in range(spatial))
    return kernel, stride, dilation, padding


def _max_size(spatial):
    return {1: 12, 2: 7, 3: 5}[spatial]


@st.composite
def conv_problems(draw):
    """A convolution: shapes, window, padding form, groups, bias, mode, layout, dtype."""
    spatial = draw(st.integers(1, 3))
    kernel, stride, dilation, padding = draw(window(spatial))
    padding_form = draw(st.sampled_from(["ints", "int", "same", "valid"]))
    if padding_form == "same":
        stride = (1,) * spatial
        padding = "same"
    elif padding_form == "valid":
        padding = "valid"
    elif padding_form == "int":
        padding = padding[0]
    pads = (0,) * spatial if isinstance(padding, str) else ((padding,) * spatial if isinstance(padding, int)
                                                              else padding)
    sizes = []
    for i in range(spatial):
        span = dilation[i] * (kernel[i] - 1) + 1
        low = max(1, span - 2 * pads[i])
        sizes.append(draw(st.integers(low, low + _max_size(spatial))))
    groups = draw(st.integers(1, 3))
    return dict(
        spatial=spatial, batch=draw(st.integers(0, 3)), unbatched=draw(st.booleans()),
        in_channels=groups * draw(st.integers(1, 3)), out_channels=groups * draw(st.integers(1, 3)),
        groups=groups, sizes=tuple(sizes), kernel=kernel, stride=stride, dilation=dilation, padding=padding,
        bias=draw(st.booleans()), mode=draw(st.sampled_from(["cross_correlation", "convolution", 0, 1])),
        layout=draw(st.sampled_from(LAYOUTS)), grad_layout=draw(st.sampled_from(LAYOUTS)),
        dtype=draw(st.sampled_from([torch.float32, torch.float64])),
    )


@st.composite
def conv_transpose_problems(draw):
    spatial = draw(st.integers(1, 3))
    kernel, stride, dilation, padding = draw(window(spatial))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    sizes = tuple(draw(st.integers(1, _max_size(spatial) - 1)) for _ in range(spatial))
    for i in range(spatial):
        out = (sizes[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel[i] - 1) + output_padding[i] + 1
        assume(out > 0)
    groups = draw(st.integers(1, 3))
    return dict(
        spatial=spatial, batch=draw(st.integers(0, 3)), unbatched=draw(st.booleans()),
        in_channels=groups * draw(st.integers(1, 3)), out_channels=groups * draw(st.integers(1, 3)),
        groups=groups, sizes=sizes, kernel=kernel, stride=stride, dilation=dilation, padding=padding,
        output_padding=output_padding, bias=draw(st.booleans()),
        mode=draw(st.sampled_from(["cross_correlation", "convolution", 0, 1])),
        layout=draw(st.sampled_from(LAYOUTS)), grad_layout=draw(st.sampled_from(LAYOUTS)),
        dtype=draw(st.sampled_from([torch.float32, torch.float64])),
    )


@st.composite
def unfold_problems(draw):
    spatial = draw(st.integers(1, 3))
    kernel, stride, dilation, padding = draw(window(spatial))
    sizes = []
    for i in range(spatial):
        span = dilation[i] * (kernel[i] - 1) + 1
        low = max(1, span - 2 * padding[i])
        sizes.append(draw(st.integers(low, low + _max_size(spatial))))
    return dict(spatial=spatial, batch=draw(st.integers(0, 3)), channels=draw(st.integers(1, 3)),
                sizes=tuple(sizes), kernel=kernel, stride=stride, dilation=dilation, padding=padding,
                layout=draw(st.sampled_from(LAYOUTS)), dtype=draw(st.sampled_from([torch.float32, torch.float64])))


@st.composite
def pool_problems(draw, is_max: bool):
    """A pooling problem as torch accepts it: padding at most half the (effective) kernel,
    and a non-empty output."""
    spatial = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(spatial))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(spatial)) if is_max else (1,) * spatial
    stride = tuple(draw(st.integers(1, 4)) for _ in range(spatial))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    sizes = []
    for k, d, p in zip(kernel, dilation, padding):
        span = (k - 1) * d + 1
        low = max(1, span - 2 * p)
        sizes.append(draw(st.integers(low, low + _max_size(spatial) + 2)))
    return dict(
        spatial=spatial, batch=draw(st.integers(0, 3)), channels=draw(st.integers(1, 3)),
        unbatched=draw(st.booleans()), sizes=tuple(sizes), kernel=kernel, stride=stride, padding=padding,
        dilation=dilation, ceil_mode=ceil_mode, stride_none=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
        divisor_override=draw(st.sampled_from([None, None, 1, 3, -2])),
        layout=draw(st.sampled_from(LAYOUTS)), grad_layout=draw(st.sampled_from(LAYOUTS)),
        dtype=draw(st.sampled_from([torch.float32, torch.float64])),
        specials=draw(st.sampled_from([None, None, "nan", "inf", "ties"])),
    )
