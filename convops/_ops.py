"""Python registrations for the convops:: ops declared in csrc/convops.cpp:
a fake (meta) kernel for every op, so torch.compile and export trace them, and
autograd for every op, backward ops included, so second derivatives work.

The convolution family closes under differentiation:
  conv(x, w)                 -> dx = conv_backward_input(dy, w),  dw = conv_backward_weight(dy, x)
  conv_backward_input(g, w)  -> dg = conv(ddx, w),                dw = conv_backward_weight(g, ddx)
  conv_backward_weight(g, x) -> dg = conv(x, ddw),                dx = conv_backward_input(g, ddw)
  conv_transpose(x, w)       =  conv_backward_input(x, w) (+ bias)
  im2col and col2im are each other's adjoint.
Pooling: max_pool -> max_pool_backward (routes gradients to the argmax; its adjoint
gathers at the argmax), avg_pool <-> avg_pool_backward (adjoints), and
global_avg_pool <-> global_avg_pool_backward (adjoints: the mean of each plane, and each
plane filled with its gradient over the number of positions).
"""
import torch

from ._shape import (conv_memory_format, conv_output_sizes, conv_transpose_output_sizes, memory_format_of,
                     pool_output_sizes, prod)

ops = torch.ops.convops
_lib = torch.library.Library("convops", "IMPL")  # the Python kernels below: Autograd, Autocast*


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
    return _conv_result(input, (input.shape[0], weight.shape[0], *spatial), input, weight)


@torch.library.register_fake("convops::conv_backward_input")
def _(grad_output, weight, input_size, stride, padding, dilation, groups):
    return _conv_result(grad_output, input_size, grad_output, weight)


@torch.library.register_fake("convops::conv_backward_weight")
def _(grad_output, input, weight_size, stride, padding, dilation, groups):
    return _conv_result(input, weight_size, grad_output, input)


@torch.library.register_fake("convops::conv_transpose")
def _(input, weight, bias, stride, padding, output_padding, dilation, groups):
    spatial = conv_transpose_output_sizes(input.shape[2:], weight.shape[2:], stride, padding, output_padding,
                                          dilation)
    return _conv_result(input, (input.shape[0], weight.shape[1] * groups, *spatial), input, weight)


def _conv_result(like, sizes, a, b):
    """A convolution op's result: in the layout conv_memory_format gives for its tensor arguments a, b."""
    return like.new_empty(sizes).contiguous(memory_format=conv_memory_format(a, b))


@torch.library.register_fake("convops::max_pool")
def _(input, kernel_size, stride, padding, dilation, ceil_mode, with_indices=True, tap_indices=False):
    sizes = (*input.shape[:2], *pool_output_sizes(input.shape[2:], kernel_size, stride, padding, dilation, ceil_mode))
    fmt = memory_format_of(input)
    code = torch.uint8 if tap_indices else torch.int64
    indices = (input.new_empty(sizes, dtype=code).contiguous(memory_format=fmt) if with_indices
               else input.new_empty((0,), dtype=torch.int64))
    return input.new_empty(sizes).contiguous(memory_format=fmt), indices


@torch.library.register_fake("convops::max_pool_backward")
def _(grad_output, indices, input_size, kernel_size, stride, padding, dilation, ceil_mode):
    return grad_output.new_empty(input_size).contiguous(memory_format=memory_format_of(grad_output))


@torch.library.register_fake("convops::avg_pool")
def _(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    ones = [1] * len(kernel_size)
    sizes = (*input.shape[:2], *pool_output_sizes(input.shape[2:], kernel_size, stride, padding, ones, ceil_mode))
    return input.new_empty(sizes).contiguous(memory_format=memory_format_of(input))


@torch.library.register_fake("convops::avg_pool_backward")
def _(grad_output, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return grad_output.new_empty(input_size).contiguous(memory_format=memory_format_of(grad_output))


@torch.library.register_fake("convops::global_avg_pool")
def _(input):
    return input.new_empty(input.shape[:2])


@torch.library.register_fake("convops::global_avg_pool_backward")
def _(grad_output, input_size, channels_last):
    grad = grad_output.new_empty(input_size)
    if channels_last and len(input_size) in (4, 5):
        grad = grad.contiguous(memory_format=torch.channels_last if len(input_size) == 4 else torch.channels_last_3d)
    return grad


# ---------------------------------------------------------------- autograd

# Every op's Autograd kernel is an autograd.Function whose forward runs the op below autograd
# and hands (ctx, inputs, output) to the op's setup_context: torch.library.register_autograd's
# contract, without its per-call cost. Its forward rebuilt the schema's argument list once per
# argument to put back the defaults the dispatcher dropped (torch._library.utils.fill_defaults,
# 12.5 us per call here); these read the defaults once, at registration. A conv call on a
# small input with grad: 66 -> 24-29 us (torch's conv2d: 7-12 us).
def _register_autograd(name: str, backward, setup_context=None) -> None:
    op = getattr(ops, name).default
    defaults = tuple(argument.default_value for argument in op._schema.arguments)
    below_autograd = torch._C._after_autograd_keyset

    def run_below_autograd(keyset, args):
        with torch._C._AutoDispatchBelowAutograd():
            return op.redispatch(keyset & below_autograd, *args)

    # apply's inputs: the op's arguments the dispatcher passed, then the keyset
    def forward(ctx, *args_and_keyset):
        *args, keyset = args_and_keyset
        output = run_below_autograd(keyset, args)
        if setup_context is not None:
            setup_context(ctx, (*args, *defaults[len(args):]), output)
        return output

    def backward_with_keyset(ctx, *grads):
        # one gradient per argument passed (the defaulted ones are flags), None for the keyset
        grad_inputs = backward(ctx, *grads)
        grad_inputs = grad_inputs if isinstance(grad_inputs, tuple) else (grad_inputs,)
        return (*grad_inputs[:len(ctx.needs_input_grad) - 1], None)

    # its graph nodes show as convops_<name>Backward
    Function = type(f"convops_{name}", (torch.autograd.Function,),
                    {"forward": staticmethod(forward), "backward": staticmethod(backward_with_keyset)})

    def kernel(keyset, *args):
        if torch.is_grad_enabled() and torch._C._any_requires_grad(*args):
            return Function.apply(*args, keyset)
        return run_below_autograd(keyset, args)

    _lib.impl(name, kernel, "Autograd", with_keyset=True)


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


def _max_pool_setup(ctx, inputs, output):
    input, kernel_size, stride, padding, dilation, ceil_mode, with_indices, _tap_indices = inputs
    ctx.mark_non_differentiable(output[1])
    # The indices never get a gradient: left unmaterialised, autograd does not fill a zero
    # tensor of their size for every backward.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(output[1])
    ctx.with_indices = with_indices
    ctx.input_size = list(input.shape)
    ctx.args = (kernel_size, stride, padding, dilation, ceil_mode)


def _max_pool_backward(ctx, grad, _grad_indices):
    if not ctx.with_indices:
        raise RuntimeError("convops::max_pool: called with with_indices=False, so it has no gradient; "
                           "call it with with_indices=True to differentiate it")
    nones = (None,) * 7
    if grad is None:  # no gradient reached the output (gradcheck tries that case)
        return (None, *nones)
    (indices,) = ctx.saved_tensors
    return (ops.max_pool_backward(grad, indices, ctx.input_size, *ctx.args), *nones)


def _max_pool_backward_setup(ctx, inputs, output):
    grad_output, indices, input_size, kernel_size, stride, padding, dilation, ceil_mode = inputs
    ctx.save_for_backward(indices)
    ctx.window = (input_size, kernel_size, stride, padding, dilation)


def _tap_positions(taps, input_size, kernel_size, stride, padding, dilation):
    """In-plane positions of tap_indices codes (csrc/kernels/pool.h): window o's tap k lies at
    o*stride - padding + k*dilation along each dim, k row-major over the kernel. Windows with no
    tap inside (255) come back as position 0, and a mask that is False for them."""
    spatial, d = input_size[2:], len(input_size) - 2
    code = taps.long()
    inside = code < prod(kernel_size)
    position = torch.zeros_like(code)
    plane_stride = 1
    for i in reversed(range(d)):  # innermost dim first: k = (k0 * K1 + k1) * K2 + k2
        tap = code % kernel_size[i]
        code = code // kernel_size[i]
        shape = [1] * taps.dim()
        shape[2 + i] = taps.shape[2 + i]
        origin = (torch.arange(taps.shape[2 + i], device=taps.device) * stride[i] - padding[i]).view(shape)
        position += (origin + tap * dilation[i]) * plane_stride
        plane_stride *= spatial[i]
    return torch.where(inside, position, 0), inside


def _max_pool_backward_backward(ctx, grad):
    # max_pool_backward routes each output gradient to its argmax: its adjoint reads them back.
    (indices,) = ctx.saved_tensors
    if indices.dtype == torch.uint8:
        positions, inside = _tap_positions(indices, *ctx.window)
        picked = grad.flatten(2).gather(2, positions.flatten(2)).view(indices.shape) * inside
    else:
        picked = grad.flatten(2).gather(2, indices.flatten(2)).view(indices.shape)
    return picked, None, None, None, None, None, None, None


def _avg_pool_setup(ctx, inputs, output):
    input, *args = inputs
    ctx.input_size = list(input.shape)
    ctx.args = args


def _avg_pool_backward(ctx, grad):
    return (ops.avg_pool_backward(grad, ctx.input_size, *ctx.args),) + (None,) * 6


def _avg_pool_backward_setup(ctx, inputs, output):
    grad_output, input_size, *args = inputs
    ctx.args = args


def _avg_pool_backward_backward(ctx, grad):
    # average pooling is linear: its backward's adjoint is the pooling itself
    return (ops.avg_pool(grad, *ctx.args),) + (None,) * 7


def _global_avg_pool_setup(ctx, inputs, output):
    ctx.input_size = list(inputs[0].shape)
    # the gradient comes back in the input's layout, so autograd keeps it without a copy
    ctx.channels_last = memory_format_of(inputs[0]) != torch.contiguous_format


def _global_avg_pool_backward(ctx, grad):
    return ops.global_avg_pool_backward(grad, ctx.input_size, ctx.channels_last)


def _global_avg_pool_backward_backward(ctx, grad):
    # each plane filled with g / positions: its adjoint is the mean of each plane
    return ops.global_avg_pool(grad), None, None


_register_autograd("conv", _conv_backward, _conv_setup)
_register_autograd("conv_backward_input", _conv_backward_input_backward, _conv_backward_input_setup)
_register_autograd("conv_backward_weight", _conv_backward_weight_backward, _conv_backward_weight_setup)
_register_autograd("conv_transpose", _conv_transpose_backward, _conv_transpose_setup)
_register_autograd("im2col", _im2col_backward, _im2col_setup)
_register_autograd("col2im", _col2im_backward, _col2im_setup)

_register_autograd("max_pool", _max_pool_backward, _max_pool_setup)
_register_autograd("max_pool_backward", _max_pool_backward_backward, _max_pool_backward_setup)
_register_autograd("avg_pool", _avg_pool_backward, _avg_pool_setup)
_register_autograd("avg_pool_backward", _avg_pool_backward_backward, _avg_pool_backward_setup)
_register_autograd("global_avg_pool", _global_avg_pool_backward, _global_avg_pool_setup)
_register_autograd("global_avg_pool_backward", _global_avg_pool_backward_backward)

#: Every op this library registers, for the tests and `python -m convops check`.
OP_NAMES = ("im2col", "col2im", "conv", "conv_backward_input", "conv_backward_weight", "conv_transpose",
            "max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward", "global_avg_pool",
            "global_avg_pool_backward")


# ---------------------------------------------------------------- autocast
# Under torch.autocast the convolutions run in the autocast dtype, as torch's do
# (torch's "lower precision" list); pooling, im2col/col2im and the backward ops follow
# their inputs (the autocast keys fall through to the kernels).

def _register_autocast(name: str, device_type: str) -> None:
    key = "Autocast" + torch._C._dispatch_key_for_device(device_type)
    excluded = torch._C.DispatchKeySet(getattr(torch._C.DispatchKey, key))
    op = getattr(ops, name).default

    def cast(value, dtype):
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.device.type == device_type:
            return value.to(dtype)
        return value

    def kernel(_keyset, *args):
        dtype = torch.get_autocast_dtype(device_type)
        with torch._C._ExcludeDispatchKeyGuard(excluded):
            return op(*[cast(a, dtype) for a in args])

    _lib.impl(name, kernel, key, with_keyset=True)


for _name in ("conv", "conv_transpose"):
    for _device in ("cpu", "cuda"):
        _register_autocast(_name, _device)
