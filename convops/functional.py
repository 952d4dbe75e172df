"""The public functional API (see API.md): torch.nn.functional-compatible
signatures over the convops:: ops. This layer normalises arguments (ints vs
tuples, "same"/"valid", mode, unbatched inputs) and raises ValueError for bad
ones; shapes are (N, C, *spatial) with 1 to 3 spatial dims, or (C, *spatial)
unbatched.

mode="cross_correlation" (or 1) is what torch calls convolution; mode="convolution"
(or 0) flips the kernel along every spatial dim first, as Knet's conv4 mode 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as _torch_F

from . import _ops  # noqa: F401  (registrations)
from ._shape import MAX_CODED_TAPS, check_at_least, ntuple, pool_output_sizes, prod

__all__ = ["conv", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "unfold", "fold", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "pool", "global_avg_pool"]

_ops_ns = torch.ops.convops

_MODES = {"cross_correlation": False, 1: False, "convolution": True, 0: True}


def _flips_kernel(mode, op: str) -> bool:
    if isinstance(mode, bool) or mode not in _MODES:
        raise ValueError(f"{op}: expected mode to be 'cross_correlation' (or 1) or 'convolution' (or 0), "
                         f"got {mode!r}")
    return _MODES[mode]


def _check_tensor(t, name: str, op: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")


def _batched(input: torch.Tensor, spatial: int, op: str) -> tuple[torch.Tensor, bool]:
    """(input with a batch dim, whether one was added)."""
    _check_tensor(input, "input", op)
    if input.dim() == spatial + 2:
        return input, False
    if input.dim() == spatial + 1:
        return input.unsqueeze(0), True
    raise ValueError(f"{op}: expected {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input, "
                     f"got {input.dim()}-D input of shape {tuple(input.shape)}")


def _check_weight(weight, spatial: int, op: str, layout: str) -> None:
    _check_tensor(weight, "weight", op)
    if weight.dim() != spatial + 2:
        raise ValueError(f"{op}: expected {spatial + 2}-D weight {layout}, got {weight.dim()}-D weight of shape "
                         f"{tuple(weight.shape)}")


def _check_groups(groups, op: str) -> int:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: expected groups to be a positive int, got {groups!r}")
    return groups


def _int_tuples(op: str, spatial: int, **params) -> list[tuple[int, ...]]:
    """Each keyword is name=(value, minimum): the values as checked tuples of `spatial` ints, in order."""
    out = []
    for name, (value, minimum) in params.items():
        value = ntuple(value, spatial, name, op)
        check_at_least(value, minimum, name, op)
        out.append(value)
    return out


def _flip(weight: torch.Tensor) -> torch.Tensor:
    return weight.flip(list(range(2, weight.dim())))


def _conv_padding(padding, input: torch.Tensor, kernel, stride, dilation, op: str):
    """(input, symmetric padding). "same" pads the odd remainder on the right, as torch does."""
    spatial = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return input, (0,) * spatial
        if padding != "same":
            raise ValueError(f"{op}: expected padding to be an int, a tuple of {spatial} ints, 'same' or 'valid', "
                             f"got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' needs stride 1 in every dimension, got stride {stride}")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        extra = [t % 2 for t in total]
        if any(extra):
            pad_spec = []
            for e in reversed(extra):  # F.pad lists the last dim first
                pad_spec += [0, e]
            input = _torch_F.pad(input, pad_spec)
        return input, tuple(t // 2 for t in total)
    padding = ntuple(padding, spatial, "padding", op)
    check_at_least(padding, 0, "padding", op)
    return input, padding


def _convnd(op: str, spatial: int, input, weight, bias, stride, padding, dilation, groups, mode):
    flip = _flips_kernel(mode, op)
    input, unbatched = _batched(input, spatial, op)
    _check_weight(weight, spatial, op, "(out_channels, in_channels/groups, *kernel_size)")
    if bias is not None:
        _check_tensor(bias, "bias", op)
    stride, dilation = _int_tuples(op, spatial, stride=(stride, 1), dilation=(dilation, 1))
    groups = _check_groups(groups, op)
    input, padding = _conv_padding(padding, input, tuple(weight.shape[2:]), stride, dilation, op)
    out = _ops_ns.conv(input, _flip(weight) if flip else weight, bias, stride, padding, dilation, groups)
    return out.squeeze(0) if unbatched else out


def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, mode="cross_correlation"):
    """N-d convolution; the number of spatial dims is input.dim() - 2."""
    _check_tensor(input, "input", "conv")
    spatial = input.dim() - 2
    if spatial not in (1, 2, 3):
        raise ValueError(f"conv: expected a 3-D, 4-D or 5-D input (N, C, *spatial), got {input.dim()}-D input "
                         f"of shape {tuple(input.shape)}")
    return _convnd("conv", spatial, input, weight, bias, stride, padding, dilation, groups, mode)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, mode="cross_correlation"):
    return _convnd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups, mode)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, mode="cross_correlation"):
    return _convnd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups, mode)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, mode="cross_correlation"):
    return _convnd("conv3d", 3, input, weight, bias, stride, padding, dilation, groups, mode)


def _conv_transposend(op: str, spatial: int, input, weight, bias, stride, padding, output_padding, groups, dilation,
                      mode):
    flip = _flips_kernel(mode, op)
    input, unbatched = _batched(input, spatial, op)
    _check_weight(weight, spatial, op, "(in_channels, out_channels/groups, *kernel_size)")
    if bias is not None:
        _check_tensor(bias, "bias", op)
    stride, dilation, padding, output_padding = _int_tuples(
        op, spatial, stride=(stride, 1), dilation=(dilation, 1), padding=(padding, 0),
        output_padding=(output_padding, 0))
    if any(op_ >= s and op_ >= d for op_, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{op}: expected output_padding smaller than stride or dilation in every dimension, got "
                         f"output_padding {output_padding}, stride {stride}, dilation {dilation}")
    groups = _check_groups(groups, op)
    out = _ops_ns.conv_transpose(input, _flip(weight) if flip else weight, bias, stride, padding, output_padding,
                                 dilation, groups)
    return out.squeeze(0) if unbatched else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     mode="cross_correlation"):
    return _conv_transposend("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                             dilation, mode)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     mode="cross_correlation"):
    return _conv_transposend("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                             dilation, mode)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     mode="cross_correlation"):
    return _conv_transposend("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding, groups,
                             dilation, mode)


def _window_args(op: str, spatial: int, kernel_size, dilation, padding, stride):
    return _int_tuples(op, spatial, kernel_size=(kernel_size, 1), dilation=(dilation, 1), padding=(padding, 0),
                       stride=(stride, 1))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col: (N, C, *spatial) -> (N, C * prod(kernel_size), L) for 1 to 3 spatial dims.
    The number of spatial dims is len(kernel_size) for a tuple, else input.dim() - 2."""
    op = "unfold"
    _check_tensor(input, "input", op)
    spatial = len(kernel_size) if isinstance(kernel_size, (tuple, list)) else input.dim() - 2
    if spatial not in (1, 2, 3) or input.dim() != spatial + 2:
        raise ValueError(f"{op}: expected input of shape (N, C, *spatial) with 1 to 3 spatial dims matching "
                         f"kernel_size {kernel_size!r}, got {input.dim()}-D input of shape {tuple(input.shape)}")
    args = _window_args(op, spatial, kernel_size, dilation, padding, stride)
    return _ops_ns.im2col(input, *args)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, the adjoint of unfold: (N, C * prod(kernel_size), L) -> (N, C, *output_size).
    Also accepts unbatched (C * prod(kernel_size), L) input. An int output_size means 2-D, as in torch."""
    op = "fold"
    _check_tensor(input, "input", op)
    if isinstance(output_size, (tuple, list)):
        spatial = len(output_size)
    elif isinstance(kernel_size, (tuple, list)):
        spatial = len(kernel_size)
    else:
        spatial = 2
    if spatial not in (1, 2, 3):
        raise ValueError(f"{op}: expected output_size with 1 to 3 spatial sizes, got {output_size!r}")
    output_size = ntuple(output_size, spatial, "output_size", op)
    check_at_least(output_size, 1, "output_size", op)
    if input.dim() not in (2, 3):
        raise ValueError(f"{op}: expected 2-D (unbatched) or 3-D (batched) input (N, C * prod(kernel_size), L), "
                         f"got {input.dim()}-D input of shape {tuple(input.shape)}")
    unbatched = input.dim() == 2
    args = _window_args(op, spatial, kernel_size, dilation, padding, stride)
    out = _ops_ns.col2im(input.unsqueeze(0) if unbatched else input, output_size, *args)
    return out.squeeze(0) if unbatched else out


# ---------------------------------------------------------------- pooling

_POOL_MODES = {"max": "max", 0: "max", "avg_include_padding": "avg_include", 1: "avg_include",
               "avg_exclude_padding": "avg_exclude", 2: "avg_exclude"}


def _pool_window(op: str, spatial: int, kernel_size, stride, padding, dilation):
    """Checked (kernel, stride, padding, dilation) tuples, as torch checks them."""
    kernel_size, padding, dilation = _int_tuples(op, spatial, kernel_size=(kernel_size, 1), padding=(padding, 0),
                                                 dilation=(dilation, 1))
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel_size
    (stride,) = _int_tuples(op, spatial, stride=(stride, 1))
    if any(p > k // 2 for k, p in zip(kernel_size, padding)):  # torch's rule, whatever the dilation
        raise ValueError(f"{op}: pad should be at most half of kernel size, but got padding={padding} and "
                         f"kernel_size={kernel_size}")
    return kernel_size, stride, padding, dilation


def _check_pool_input(input, spatial: int, op: str):
    batched, unbatched = _batched(input, spatial, op)
    if any(s == 0 for s in batched.shape[1:]):
        raise ValueError(f"{op}: expected input with non-zero channel and spatial sizes (only the batch may be "
                         f"empty), got input of shape {tuple(input.shape)}")
    return batched, unbatched


def _check_pool_output(op: str, input, window, ceil_mode):
    kernel, stride, padding, dilation = window
    out = pool_output_sizes(input.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: given input of shape {tuple(input.shape)}, the calculated output size is "
                         f"{tuple(out)}: output size is too small")


def _max_poolnd(op, spatial, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    input, unbatched = _check_pool_input(input, spatial, op)
    window = _pool_window(op, spatial, kernel_size, stride, padding, dilation)
    _check_pool_output(op, input, window, ceil_mode)
    # The argmax is only needed for the gradient or when asked for; for the gradient alone,
    # as each window's winning tap (uint8, an eighth of torch's int64 positions' bytes).
    for_gradient = torch.is_grad_enabled() and input.requires_grad and not return_indices
    with_indices = bool(return_indices) or for_gradient
    tap_indices = for_gradient and prod(window[0]) <= MAX_CODED_TAPS
    out, indices = _ops_ns.max_pool(input, *window, bool(ceil_mode), with_indices, tap_indices)
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_poolnd("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_poolnd("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_poolnd("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_poolnd(op, spatial, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    input, unbatched = _check_pool_input(input, spatial, op)
    window = _pool_window(op, spatial, kernel_size, stride, padding, 1)
    _check_pool_output(op, input, window, ceil_mode)
    if divisor_override is not None and (isinstance(divisor_override, bool) or not isinstance(divisor_override, int)
                                         or divisor_override == 0):
        raise ValueError(f"{op}: expected divisor_override to be a non-zero int or None, got {divisor_override!r}")
    out = _ops_ns.avg_pool(input, *window[:3], bool(ceil_mode), bool(count_include_pad), divisor_override)
    return out.squeeze(0) if unbatched else out


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_poolnd("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_poolnd("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_poolnd("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override)


def pool(input, window=2, stride=None, padding=0, *, mode="max", ceil_mode=False):
    """Knet-style pooling over the input.dim() - 2 spatial dims (1 to 3); stride defaults to window.
    mode: "max" (0), "avg_include_padding" (1) or "avg_exclude_padding" (2)."""
    op = "pool"
    _check_tensor(input, "input", op)
    if isinstance(mode, bool) or mode not in _POOL_MODES:
        raise ValueError(f"{op}: expected mode to be 'max' (or 0), 'avg_include_padding' (or 1) or "
                         f"'avg_exclude_padding' (or 2), got {mode!r}")
    spatial = input.dim() - 2
    if spatial not in (1, 2, 3):
        raise ValueError(f"{op}: expected a 3-D, 4-D or 5-D input (N, C, *spatial), got {input.dim()}-D input of "
                         f"shape {tuple(input.shape)}")
    kind = _POOL_MODES[mode]
    if kind == "max":
        return _max_poolnd(op, spatial, input, window, stride, padding, 1, ceil_mode, False)
    return _avg_poolnd(op, spatial, input, window, stride, padding, ceil_mode, kind == "avg_include", None)


def global_avg_pool(input, keepdim=False):
    """Mean over every spatial dim of (N, C, *spatial): (N, C), or (N, C, 1, ...) with keepdim."""
    op = "global_avg_pool"
    _check_tensor(input, "input", op)
    if input.dim() not in (3, 4, 5):
        raise ValueError(f"{op}: expected a 3-D, 4-D or 5-D input (N, C, *spatial), got {input.dim()}-D input of "
                         f"shape {tuple(input.shape)}")
    if any(s == 0 for s in input.shape[2:]):
        raise ValueError(f"{op}: expected non-empty spatial dims, got input of shape {tuple(input.shape)}")
    out = _ops_ns.global_avg_pool(input)
    return out.view(*out.shape, *([1] * (input.dim() - 2))) if keepdim else out
