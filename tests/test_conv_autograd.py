"""gradcheck and gradgradcheck in float64 with tolerances 100x tighter than the
defaults, and torch.library.opcheck, for every op of the convolution family
(the backward ops included), on both CPU engines."""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import convops.functional as F

ops = torch.ops.convops
TIGHT = dict(atol=1e-7, rtol=1e-5, eps=1e-6)

# (spatial sizes, kernel, stride, padding, dilation, groups)
CONFIGS = [
    ((7,), (3,), (1,), (1,), (1,), 1),
    ((8,), (2,), (2,), (0,), (2,), 2),
    ((5, 6), (3, 2), (2, 1), (1, 0), (1, 2), 1),
    ((6, 5), (3, 3), (1, 2), (2, 1), (1, 1), 3),
    ((4, 5, 4), (2, 3, 2), (1, 2, 1), (1, 1, 0), (2, 1, 1), 1),
    ((3, 4, 3), (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1), 3),  # 1x1 path
]
IDS = [f"{len(c[0])}d-{i}" for i, c in enumerate(CONFIGS)]


def rand(*shape, requires_grad=True):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=requires_grad)


def problem(config, batch=2, out_per_group=2, in_per_group=2):
    sizes, kernel, stride, padding, dilation, groups = config
    x = rand(batch, in_per_group * groups, *sizes)
    w = rand(out_per_group * groups, in_per_group, *kernel)
    b = rand(out_per_group * groups)
    return x, w, b, (list(stride), list(padding), list(dilation), groups)


def output_padding_for(config):
    stride, dilation = config[2], config[4]
    return [max(s, d) - 1 for s, d in zip(stride, dilation)]


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_conv_gradcheck_and_gradgradcheck(config, conv_engine):
    x, w, b, p = problem(config)
    fn = lambda x, w, b: ops.conv(x, w, b, *p)  # noqa: E731
    assert gradcheck(fn, (x, w, b), **TIGHT)
    assert gradgradcheck(fn, (x, w, b), **TIGHT)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_conv_backward_ops_gradcheck_and_gradgradcheck(config, conv_engine):
    x, w, _, p = problem(config)
    dy = rand(*ops.conv(x, w, None, *p).shape)
    bwd_input = lambda dy, w: ops.conv_backward_input(dy, w, list(x.shape), *p)  # noqa: E731
    bwd_weight = lambda dy, x: ops.conv_backward_weight(dy, x, list(w.shape), *p)  # noqa: E731
    assert gradcheck(bwd_input, (dy, w), **TIGHT)
    assert gradgradcheck(bwd_input, (dy, w), **TIGHT)
    assert gradcheck(bwd_weight, (dy, x), **TIGHT)
    assert gradgradcheck(bwd_weight, (dy, x), **TIGHT)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_conv_transpose_gradcheck_and_gradgradcheck(config, conv_engine):
    sizes, kernel, stride, padding, dilation, groups = config
    x = rand(2, 2 * groups, *[max(1, s // 2) for s in sizes])
    w = rand(2 * groups, 3, *kernel)
    b = rand(3 * groups)
    fn = lambda x, w, b: ops.conv_transpose(x, w, b, list(stride), list(padding), output_padding_for(config),  # noqa
                                            list(dilation), groups)
    assert gradcheck(fn, (x, w, b), **TIGHT)
    assert gradgradcheck(fn, (x, w, b), **TIGHT)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_im2col_col2im_gradcheck_and_gradgradcheck(config, engine):
    sizes, kernel, stride, padding, dilation, _ = config
    args = (list(kernel), list(dilation), list(padding), list(stride))
    x = rand(2, 3, *sizes)
    cols = rand(*ops.im2col(x, *args).shape)
    assert gradcheck(lambda x: ops.im2col(x, *args), (x,), **TIGHT)
    assert gradgradcheck(lambda x: ops.im2col(x, *args), (x,), **TIGHT)
    assert gradcheck(lambda c: ops.col2im(c, list(sizes), *args), (cols,), **TIGHT)
    assert gradgradcheck(lambda c: ops.col2im(c, list(sizes), *args), (cols,), **TIGHT)


def test_true_convolution_mode_gradcheck():
    x, w, b, (stride, padding, dilation, groups) = problem(CONFIGS[3])
    fn = lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups, mode="convolution")  # noqa: E731
    assert gradcheck(fn, (x, w, b), **TIGHT)
    assert gradgradcheck(fn, (x, w, b), **TIGHT)
    # the conv weight (6, 2, 3, 3) read as a transposed-conv weight: 6 input channels, 2 outputs per group
    fn = lambda x, w, b: F.conv_transpose2d(x, w, b, stride, padding, 0, groups, dilation, mode=0)  # noqa: E731
    assert gradcheck(fn, (x, w, b), **TIGHT)


def test_empty_batch_gradients_are_zeros_not_none():
    x = rand(0, 4, 5, 5)
    w = rand(6, 2, 3, 3)
    b = rand(6)
    out = F.conv2d(x, w, b, padding=1, groups=2)
    assert out.shape == (0, 6, 5, 5)
    out.sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(b.grad, torch.zeros_like(b))
    assert x.grad.shape == x.shape


def test_tight_gradcheck_catches_a_small_weight_gradient_error():
    """The tolerances above are tight enough to see a 0.1% error in a weight gradient."""
    x, w, b, p = problem(CONFIGS[2])

    class Skewed(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return ops.conv(x, w, None, *p)

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return (ops.conv_backward_input(g, w, list(x.shape), *p),
                    1.001 * ops.conv_backward_weight(g, x, list(w.shape), *p))

    assert not gradcheck(Skewed.apply, (x, w), raise_exception=False, **TIGHT)


def _opcheck_cases():
    x, w, b, p = problem(CONFIGS[3])
    dy = torch.randn(ops.conv(x, w, b, *p).shape, dtype=torch.float64, requires_grad=True)
    xt = rand(2, 6, 3, 3)
    wt = rand(6, 2, 3, 3)
    kernel, dilation, padding, stride = [2, 3], [1, 2], [1, 0], [2, 1]
    cols = rand(*ops.im2col(x, kernel, dilation, padding, stride).shape)
    # channels_last arguments: the fake kernels give channels_last results too (conv_memory_format)
    x_cl, w_cl, dy_cl, wt_cl = (t.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
                                for t in (x, w, dy, wt))
    return {
        "conv": (ops.conv.default, (x, w, b, *p)),
        "conv_nobias": (ops.conv.default, (x, w, None, *p)),
        "conv_backward_input": (ops.conv_backward_input.default, (dy, w, list(x.shape), *p)),
        "conv_backward_weight": (ops.conv_backward_weight.default, (dy, x, list(w.shape), *p)),
        "conv_transpose": (ops.conv_transpose.default, (xt, wt, rand(6), [2, 1], [1, 1], [1, 0], [1, 1], 3)),
        "conv_channels_last_input": (ops.conv.default, (x_cl, w, b, *p)),
        "conv_channels_last_weight": (ops.conv.default, (x, w_cl, None, *p)),
        "conv_backward_input_channels_last": (ops.conv_backward_input.default, (dy_cl, w, list(x.shape), *p)),
        "conv_backward_weight_channels_last": (ops.conv_backward_weight.default, (dy, x_cl, list(w.shape), *p)),
        "conv_1x1_channels_last": (ops.conv.default, (rand(2, 4, 5, 6).detach().contiguous(
            memory_format=torch.channels_last).requires_grad_(), rand(3, 4, 1, 1), rand(3), [1, 1], [0, 0], [1, 1], 1)),
        "conv_transpose_channels_last": (ops.conv_transpose.default,
                                         (xt, wt_cl, rand(6), [2, 1], [1, 1], [1, 0], [1, 1], 3)),
        "im2col": (ops.im2col.default, (x, kernel, dilation, padding, stride)),
        "col2im": (ops.col2im.default, (cols, list(x.shape[2:]), kernel, dilation, padding, stride)),
    }


@pytest.mark.parametrize("name", list(_opcheck_cases()))
def test_opcheck(name):
    op, args = _opcheck_cases()[name]
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_depthwise_gradcheck_and_gradgradcheck(config, isa_engine):
    """groups == in == out channels: the CPU row engine's direct depthwise kernels (AVX2 and baseline)."""
    x, w, b, p = problem(config, out_per_group=1, in_per_group=1)
    fn = lambda x, w, b: ops.conv(x, w, b, *p)  # noqa: E731
    assert gradcheck(fn, (x, w, b), **TIGHT)
    assert gradgradcheck(fn, (x, w, b), **TIGHT)


def _exactly_as_torch(ours, theirs, x_shape, w_shape, seed, dtype=torch.float64):
    """ours(x, w, b) and theirs(x, w, b) on integer-valued data: the same output and the same
    gradients of x, w and b, bit for bit."""
    gen = torch.Generator().manual_seed(seed)
    tensors = [torch.randint(-4, 5, shape, generator=gen).to(dtype) for shape in (x_shape, w_shape, w_shape[:1])]
    leaves = [t.clone().requires_grad_() for t in tensors]
    refs = [t.clone().requires_grad_() for t in tensors]
    out, ref = ours(*leaves), theirs(*refs)
    assert torch.equal(out, ref)
    g = torch.randint(-4, 5, ref.shape, generator=gen).to(dtype)
    out.backward(g)
    ref.backward(g)
    for mine, expected in zip(leaves, refs):
        assert torch.equal(mine.grad, expected.grad)


def test_direct_forms_beyond_the_kept_scratch():
    """The direct weight gradient pads the whole batch into this thread's scratch
    (ops/common.h cpu_scratch), kept between calls up to 32 MiB; this batch's padded copy
    (16 x 16 planes of 130 x 130 doubles, 33 MiB) is allocated for the call instead. Twice,
    so a kept buffer from the first call would be visible in the second."""
    for seed in (3, 4):
        _exactly_as_torch(lambda *t: F.conv2d(*t, padding=1), lambda *t: torch.nn.functional.conv2d(*t, padding=1),
                          (16, 16, 128, 128), (4, 16, 3, 3), seed=seed)


@pytest.mark.parametrize("sizes,kernel,padding,dilation", [
    ((17,), (3,), (1,), (1,)),              # fused taps of width 3
    ((9, 12), (3, 5), (1, 2), (1, 1)),      # width 5
    ((9, 12), (2, 7), (0, 4), (1, 2)),      # width 7 (tap by tap), dilated, padding > dil * (K - 1) / 2
    ((6, 7), (3, 3), (3, 0), (1, 1)),       # padding > dil * (K - 1): the input gradient takes the row form
    ((5, 6, 7), (3, 3, 3), (1, 2, 1), (1, 2, 1)),
    ((4, 5, 6), (1, 2, 3), (0, 1, 1), (1, 1, 2)),
    # Rows of at least a vector (8 doubles in the AVX-512 copy, 4 in AVX2, 2 in the baseline)
    # go by pairs of rows held in registers, the last vector of a row ending at its end, and
    # the weight gradient sums every tap in one pass (3, 3x3, 5x5, 3x3x3) or a pass per tap:
    ((5, 21), (3, 3), (1, 1), (1, 1)),      # 3x3: pairs of rows and one left over, a partial vector
    ((6, 20), (5, 5), (2, 2), (1, 1)),      # 5x5
    ((7, 18), (3, 3), (1, 1), (2, 1)),      # dilated rows: one row at a time
    ((3, 4, 19), (3, 3, 3), (1, 1, 1), (1, 1, 1)),
    ((4, 16), (2, 3), (1, 1), (1, 2)),      # 6 taps: a pass per tap; rows of exactly 2 vectors
])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_unit_stride_forms_match_torch(sizes, kernel, padding, dilation, multiplier, isa_engine):
    """At unit stride the depthwise forms work on a zero-padded plane with one run per tap
    (kernels/depthwise.h), and the input gradient is the forward with the kernel flipped;
    with a channel multiplier, output channel o reads input channel o // multiplier."""
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[len(sizes)]
    _exactly_as_torch(lambda *t: ops.conv(*t, [1] * len(sizes), list(padding), list(dilation), 3),
                      lambda *t: conv(*t, padding=padding, dilation=dilation, groups=3),
                      (2, 3, *sizes), (3 * multiplier, 1, *kernel), seed=3)


@pytest.mark.parametrize("sizes,kernel,padding", [((37,), (3,), (1,)), ((7, 37), (3, 3), (1, 1)),
                                                  ((5, 40), (5, 5), (2, 2)), ((4, 5, 33), (3, 3, 3), (1, 1, 1))])
def test_depthwise_unit_stride_rows_in_float32(sizes, kernel, padding, isa_engine):
    """The same in float32 (16 lanes in the AVX-512 copy): rows of 37, 40 and 33 end in a
    partial vector; integer-valued data keeps every sum exact."""
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[len(sizes)]
    _exactly_as_torch(lambda *t: ops.conv(*t, [1] * len(sizes), list(padding), [1] * len(sizes), 4),
                      lambda *t: conv(*t, padding=padding, groups=4),
                      (3, 4, *sizes), (4, 1, *kernel), seed=7, dtype=torch.float32)


@pytest.mark.parametrize("in_channels,out_channels,groups,stride,padding", [
    (1, 6, 1, 1, 2),   # LeNet's first layer: one input channel, groups == 1
    (3, 9, 3, 2, 1),   # multiplier 3, strided: the row forms
])
def test_depthwise_channel_multiplier_matches_torch(in_channels, out_channels, groups, stride, padding, isa_engine):
    _exactly_as_torch(lambda *t: F.conv2d(*t, stride=stride, padding=padding, groups=groups),
                      lambda *t: torch.nn.functional.conv2d(*t, stride=stride, padding=padding, groups=groups),
                      (3, in_channels, 11, 13), (out_channels, 1, 5, 3), seed=5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_depthwise_matches_torch(dtype, isa_engine):
    x = torch.randn(3, 8, 13, 11).to(dtype)
    w = torch.randn(8, 1, 3, 5).to(dtype)
    b = torch.randn(8).to(dtype)
    for kwargs in (dict(padding=1), dict(stride=2, padding=(1, 2), dilation=(2, 1))):
        xa, wa, ba = (t.clone().requires_grad_() for t in (x, w, b))
        xb, wb, bb = (t.float().clone().requires_grad_() for t in (x, w, b))
        out = F.conv2d(xa, wa, ba, groups=8, **kwargs)
        ref = torch.nn.functional.conv2d(xb, wb, bb, groups=8, **kwargs)
        tol = 1e-5 if dtype == torch.float32 else 5e-2
        torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)
        g = torch.randn_like(ref)
        out.backward(g.to(dtype))
        ref.backward(g)
        for ours, theirs in ((xa, xb), (wa, wb), (ba, bb)):
            torch.testing.assert_close(ours.grad.float(), theirs.grad, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation,groups", [
    ((3, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1, 1),            # LeNet's second layer, blocks across rows
    ((2, 24, 9, 11), (24, 12, 3, 3), 1, 1, 1, 2),           # grouped, 12 input channels per group
    ((2, 16, 9, 11), (16, 2, 3, 3), 1, 1, 1, 8),            # 2 input channels per group: dx by positions
    ((2, 2, 37), (3, 2, 5), 1, 2, 1, 1),                    # dx by positions: rows of several vectors
    ((2, 4, 11, 19), (6, 2, 3, 3), 1, 2, 2, 2),             # dx by positions, dilated, a partial block of rows
    ((2, 3, 5, 6, 7), (4, 3, 3, 3, 3), 1, 1, 1, 1),         # dx by positions in 3-D
    ((2, 5, 6, 7, 5), (40, 5, 3, 3, 3), 1, 1, 1, 1),        # several channel vectors, the last partial
    ((2, 4, 9, 10), (72, 2, 3, 2), 1, (1, 0), (2, 1), 2),   # dilated; 36 channels per group
    ((3, 5, 17), (7, 5, 4), 2, 3, 2, 1),                    # strided: the input gradient takes the columns
    ((2, 6, 13, 12), (20, 3, 3, 2), (2, 3), 1, 1, 2),
    ((2, 3, 7, 8), (5, 3, 3, 3), 1, (3, 1), 1, 1),          # padding > dil * (K - 1): columns for the input gradient
    ((1, 2, 3), (3, 2, 3), 1, 2, 1, 1),                     # fewer positions than a block
    ((2, 40, 9, 10), (80, 40, 3, 3), 1, 1, 1, 1),           # wider than 64 channels, 90 positions
    ((4, 72, 4, 4), (80, 72, 3, 3), 1, 1, 1, 1),            # wider, 16 positions, weights in L2 (ResNet's 4x4)
    # Small padded images, a pass of images at each output position (direct_forward_position):
    ((7, 40, 4, 4), (80, 40, 3, 3), 1, 1, 1, 1),            # 6 images and 1, several runs of channel vectors
    ((13, 12, 5, 6), (21, 4, 3, 3), (2, 1), 1, 1, 3),       # grouped, strided, a partial vector; 6 + 6 + 1
    ((8, 6, 3, 3, 3), (10, 6, 3, 3, 3), 1, 1, 1, 1),        # 3-D (27 positions); input gradient too
    ((10, 8, 9), (12, 8, 5), 1, 2, 2, 1),                   # 1-D, dilated: 6 images and 4
    ((6, 16, 8, 8), (32, 16, 3, 3), 1, (1, 2), 1, 1),       # one pass, 8 x 10 outputs: per image instead
    ((6, 160, 2, 2), (160, 160, 3, 3), 1, 1, 1, 1),         # weights beyond L2, 4 positions (ResNet's 256ch 2x2)
    # ... and the input gradient at a stride, each image position gathering the taps that read it:
    ((7, 5, 17), (7, 5, 4), 2, 3, 2, 1),                    # 1-D, dilated, padding beyond the kernel
    ((8, 6, 5, 4, 3), (10, 6, 3, 2, 3), (2, 1, 2), 1, 1, 1),  # 3-D
    ((9, 64, 8, 8), (40, 64, 3, 3), 2, 1, 1, 1),            # ResNet's 8x8 -> 4x4 entry, narrower
])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_direct_forms_match_torch(x_shape, w_shape, stride, padding, dilation, groups, dtype, isa_engine):
    """Groups with few output channels (and wider ones with enough positions per image) run
    the direct forms (kernels/direct_conv.h): output channels in vectors, blocks of positions
    in registers, stored transposed in registers where the block allows (float and double
    vectors hold different numbers of channels per store), the input gradient at unit stride
    as the forward with each group's kernel transposed and flipped (vectorised over positions
    where the convolution has few input channels per group)."""
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
            3: torch.nn.functional.conv3d}[len(x_shape) - 2]
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    ours = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(x_shape) - 2]
    _exactly_as_torch(lambda *t: ours(*t, **args), lambda *t: conv(*t, **args), x_shape, w_shape, seed=11,
                      dtype=dtype)
