"""Python registrations for the convops:: ops declared in csrc/convops.cpp:
a fake (meta) kernel for every op, so torch.compile and export trace them, and
autograd for every op, backward ops included, so second derivatives work.

The convolution family closes under differentiation:
  conv(x, w)                 -> dx = conv_backward_input(dy, w),  dw = conv_backward_weight(dy, x)
  conv_backward_input(g, w)  -> dg = conv(ddx, w),                dw = conv_backward_weight(g, ddx)
  conv_backward_weight(g, x) -> dg = conv(x, ddw),                dx = conv_backward_input(g, ddw)
  conv_transpose(x, w)       =  conv_backward_input(x, w) (+ bias)
  im2col and col2im are each other's adjoint.
"""
import torch

from ._shape import conv_output_sizes, conv_transpose_output_sizes, prod

ops = torch.ops.convops


def _bias_grad(grad: torch.Tensor) -> torch.Tensor:
    return grad.sum(dim=[0] + list(range(2, grad.dim())))


# ---------------------------------------------------------------- fake kernels

@torch.library.register_fake("convops::im2col")
def _(input, kernel_size, dilation, padding, stride):
    blocks = conv_output_sizes(input.shape[2:], kernel_size, stride, padding, dilation)
    return input.new_empty((input.shape[0], input.shape[1] * prod(kernel_size), prod(blocks)))


@torch.library.register_fake("convops::col2im")
def _(columns, output_size, kernel_size, dilation, padding, stride):
    channels = columns.shape[1] // prod(kernel_size)
    return columns.new_empty((columns.shape[0], channels, *output_size))


@torch.library.register_fake("convops::conv")
def _(input, weight, bias, stride, padding, dilation, groups):
    spatial = conv_output_sizes(input.shape[2:], weight.shape[2:], stride, padding, dilation)
    return input.new_empty((input.shape[0], weight.shape[0], *spatial))


@torch.library.register_fake("convops::conv_backward_input")
def _(grad_output, weight, input_size, stride, padding, dilation, groups):
    return grad_output.new_empty(input_size)


@torch.library.register_fake("convops::conv_backward_weight")
def _(grad_output, input, weight_size, stride, padding, dilation, groups):
    return input.new_empty(weight_size)


@torch.library.register_fake("convops::conv_transpose")
def _(input, weight, bias, stride, padding, output_padding, dilation, groups):
    spatial = conv_transpose_output_sizes(input.shape[2:], weight.shape[2:], stride, padding, output_padding,
                                          dilation)
    return input.new_empty((input.shape[0], weight.shape[1] * groups, *spatial))


# ---------------------------------------------------------------- autograd

def _save_conv_params(ctx, stride, padding, dilation, groups):
    ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups


def _params(ctx):
    return ctx.stride, ctx.padding, ctx.dilation, ctx.groups


def _conv_setup(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(input, weight)
    _save_conv_params(ctx, stride, padding, dilation, groups)


def _conv_backward(ctx, grad):
    input, weight = ctx.saved_tensors
    p = _params(ctx)
    dx = ops.conv_backward_input(grad, weight, list(input.shape), *p) if ctx.needs_input_grad[0] else None
    dw = ops.conv_backward_weight(grad, input, list(weight.shape), *p) if ctx.needs_input_grad[1] else None
    db = _bias_grad(grad) if ctx.needs_input_grad[2] else None
    return dx, dw, db, None, None, None, None


def _conv_backward_input_setup(ctx, inputs, output):
    grad_output, weight, input_size, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(grad_output, weight)
    _save_conv_params(ctx, stride, padding, dilation, groups)


def _conv_backward_input_backward(ctx, grad):
    grad_output, weight = ctx.saved_tensors
    p = _params(ctx)
    dg = ops.conv(grad, weight, None, *p) if ctx.needs_input_grad[0] else None
    dw = ops.conv_backward_weight(grad_output, grad, list(weight.shape), *p) if ctx.needs_input_grad[1] else None
    return dg, dw, None, None, None, None, None


def _conv_backward_weight_setup(ctx, inputs, output):
    grad_output, input, weight_size, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(grad_output, input)
    _save_conv_params(ctx, stride, padding, dilation, groups)


def _conv_backward_weight_backward(ctx, grad):
    grad_output, input = ctx.saved_tensors
    p = _params(ctx)
    dg = ops.conv(input, grad, None, *p) if ctx.needs_input_grad[0] else None
    dx = ops.conv_backward_input(grad_output, grad, list(input.shape), *p) if ctx.needs_input_grad[1] else None
    return dg, dx, None, None, None, None, None


def _conv_transpose_setup(ctx, inputs, output):
    input, weight, bias, stride, padding, output_padding, dilation, groups = inputs
    ctx.save_for_backward(input, weight)
    _save_conv_params(ctx, stride, padding, dilation, groups)


def _conv_transpose_backward(ctx, grad):
    input, weight = ctx.saved_tensors
    p = _params(ctx)
    # conv_transpose(x, w) is conv_backward_input(x, w): x plays the output gradient's role.
    # With output_padding >= stride, a convolution of the output has more positions than x:
    # those extra positions are cropped from dx and stand as zeros beside x for dw.
    dx = dw = None
    if ctx.needs_input_grad[0]:
        dx = ops.conv(grad, weight, None, *p)
        dx = dx[(Ellipsis,) + tuple(slice(0, n) for n in input.shape[2:])]
    if ctx.needs_input_grad[1]:
        natural = conv_output_sizes(grad.shape[2:], weight.shape[2:], *p[:3])
        extra = [e for size, n in zip(reversed(natural), reversed(input.shape[2:])) for e in (0, size - n)]
        x = torch.nn.functional.pad(input, extra) if any(extra) else input
        dw = ops.conv_backward_weight(x, grad, list(weight.shape), *p)
    db = _bias_grad(grad) if ctx.needs_input_grad[2] else None
    return dx, dw, db, None, None, None, None, None


def _im2col_setup(ctx, inputs, output):
    input, kernel_size, dilation, padding, stride = inputs
    ctx.image_size = list(input.shape[2:])
    ctx.args = (kernel_size, dilation, padding, stride)


def _im2col_backward(ctx, grad):
    return ops.col2im(grad, ctx.image_size, *ctx.args), None, None, None, None


def _col2im_setup(ctx, inputs, output):
    columns, output_size, kernel_size, dilation, padding, stride = inputs
    ctx.args = (kernel_size, dilation, padding, stride)


def _col2im_backward(ctx, grad):
    return ops.im2col(grad, *ctx.args), None, None, None, None, None


torch.library.register_autograd("convops::conv", _conv_backward, setup_context=_conv_setup)
torch.library.register_autograd("convops::conv_backward_input", _conv_backward_input_backward,
                                setup_context=_conv_backward_input_setup)
torch.library.register_autograd("convops::conv_backward_weight", _conv_backward_weight_backward,
                                setup_context=_conv_backward_weight_setup)
torch.library.register_autograd("convops::conv_transpose", _conv_transpose_backward,
                                setup_context=_conv_transpose_setup)
torch.library.register_autograd("convops::im2col", _im2col_backward, setup_context=_im2col_setup)
torch.library.register_autograd("convops::col2im", _col2im_backward, setup_context=_col2im_setup)

#: Every op this library registers, for the tests and `python -m convops check`.
OP_NAMES = ("im2col", "col2im", "conv", "conv_backward_input", "conv_backward_weight", "conv_transpose")
