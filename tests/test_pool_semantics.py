"""Pooling: the seed's worked examples, torch's edge-case semantics (each one a
test), gradcheck/gradgradcheck with tight tolerances, opcheck, and argument errors."""
import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import convops.functional as F
from conftest import CUDA, ISA_ENGINES, cpu_engine, engine_device

ops = torch.ops.convops
TIGHT = dict(atol=1e-7, rtol=1e-5, eps=1e-6)


def seq(*values):
    return torch.tensor(values, dtype=torch.float64).view(1, 1, -1)


def flat(t):
    return t.flatten().tolist()


# ---------------------------------------------------------------- worked examples (seed 004)

def test_seed_pool_modes_with_padding():
    x = seq(1, 2, 3, 4, 5, 6)
    assert flat(F.pool(x, 2, padding=1, mode=0)) == [1, 3, 5, 6]
    assert flat(F.pool(x, 2, padding=1, mode="max")) == [1, 3, 5, 6]
    assert flat(F.pool(x, 2, padding=1, mode=1)) == [0.5, 2.5, 4.5, 3.0]
    assert flat(F.pool(x, 2, padding=1, mode="avg_include_padding")) == [0.5, 2.5, 4.5, 3.0]
    assert flat(F.pool(x, 2, padding=1, mode=2)) == [1.0, 2.5, 4.5, 6.0]
    assert flat(F.pool(x, 2, padding=1, mode="avg_exclude_padding")) == [1.0, 2.5, 4.5, 6.0]


def test_seed_pool_defaults_window_and_stride():
    assert flat(F.pool(seq(1, 2, 3, 4, 5, 6))) == [2, 4, 6]
    assert flat(F.pool(seq(1, 2, 3, 4, 5, 6), window=3)) == [3, 6]
    assert flat(F.pool(seq(*range(1, 11)), stride=4)) == [2, 6, 10]


def test_seed_pool_2d_default():
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    assert F.pool(x).view(-1).tolist() == [6, 8, 14, 16]


# ---------------------------------------------------------------- semantics

def test_ceil_mode_divisor_never_counts_the_overhang():
    assert torch.allclose(F.avg_pool1d(torch.ones(1, 1, 4), 3, 2, 1, ceil_mode=True),
                          torch.tensor([[[2 / 3, 1.0, 0.5]]]))
    assert flat(F.avg_pool1d(torch.arange(7.0).view(1, 1, 7), 2, 3, ceil_mode=True)) == [0.5, 3.5, 6.0]


def test_ceil_mode_keeps_a_last_window_only_if_it_starts_inside():
    # 5 + 2*1 padding, kernel 2, stride 2: ceil would give 4 windows but the 4th starts in the right padding
    x = torch.arange(5.0).view(1, 1, 5)
    assert F.max_pool1d(x, 2, 2, 1, ceil_mode=True).shape[-1] == 3
    assert F.max_pool1d(torch.arange(6.0).view(1, 1, 6), 2, 2, 0, ceil_mode=True).shape[-1] == 3
    assert F.max_pool1d(torch.arange(7.0).view(1, 1, 7), 2, 2, 0, ceil_mode=True).shape[-1] == 4


def test_no_nan_from_an_empty_count():
    x = torch.ones(1, 1, 3, 3)
    out = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    assert not torch.isnan(out).any()


def test_max_pool_padding_is_minus_infinity():
    x = -torch.ones(1, 1, 4) * 5
    out, idx = F.max_pool1d(x, 2, 2, 1, return_indices=True)
    assert flat(out) == [-5, -5, -5] and flat(idx) == [0, 1, 3]  # the padding never wins


def test_max_pool_nan_propagates_as_in_torch():
    x = torch.tensor([[[1.0, float("nan"), 3.0, 2.0, float("nan"), float("nan")]]])
    out, idx = F.max_pool1d(x, 3, 3, return_indices=True)
    ref, ref_idx = torch.nn.functional.max_pool1d(x, 3, 3, return_indices=True)
    assert torch.isnan(out).all() and torch.equal(idx, ref_idx)


def test_max_pool_ties_pick_the_first_maximum():
    x = torch.tensor([[[[0.0, 5.0], [5.0, 0.0]]]])
    _, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.item() == 1  # row-major first: (0, 1), not (1, 0)


def test_overlapping_windows_add_their_gradients():
    x = torch.tensor([[[1.0, 9.0, 2.0, 3.0]]], requires_grad=True)
    F.max_pool1d(x, 3, 1).sum().backward()   # windows [1,9,2] and [9,2,3] both pick 9
    assert flat(x.grad) == [0, 2, 0, 0]


# Inputs that win up to five windows, and gradients that are not integers: the order the
# winners' gradients add in shows in the bits. Torch's scatter adds them in output order.
@pytest.mark.parametrize("kernel,stride", [(3, 1), (5, 1), (5, 2)])
@pytest.mark.parametrize("spatial", [1, 2])
def test_overlapping_windows_add_their_gradients_in_output_order(spatial, kernel, stride, isa_engine):
    gen = torch.Generator().manual_seed(kernel * 10 + stride)
    shape = (2, 3, 300) if spatial == 1 else (2, 3, 23, 29)
    x = torch.randn(shape, generator=gen) * 0.01
    x.view(-1)[::7] += 10.0  # spikes that win every window reaching them
    theirs = getattr(torch.nn.functional, f"max_pool{spatial}d")
    grad = torch.randn(theirs(x, kernel, stride, 1).shape, generator=gen)
    for return_indices in (False, True):  # tap codes, then positions
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_a = getattr(F, f"max_pool{spatial}d")(a, kernel, stride, 1, return_indices=return_indices)
        out_b = theirs(b, kernel, stride, 1, return_indices=return_indices)
        (out_a[0] if return_indices else out_a).backward(grad)
        (out_b[0] if return_indices else out_b).backward(grad)
        assert torch.equal(a.grad, b.grad)


def test_all_minus_infinity_window_points_at_its_first_position():
    x = torch.full((1, 1, 5), float("-inf"))
    _, idx = F.max_pool1d(x, 2, 2, 1, return_indices=True)
    assert flat(idx) == flat(torch.nn.functional.max_pool1d(x, 2, 2, 1, return_indices=True)[1])


@pytest.mark.parametrize("shape", [(2, 3, 40), (2, 3, 12, 20), (2, 2, 9, 10, 20)])
def test_all_minus_infinity_windows_send_their_gradient_to_their_first_inside_tap(shape, isa_engine):
    """Windows whose inside is all -inf take nothing: torch's argmax, and so the gradient, is
    their first inside tap. Rows of 20 are passed by blocks and their inside windows by runs
    (kernels::max_pool_plane); with tap codes and with positions, checked bitwise."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=gen)
    x[:, 1] = float("-inf")  # whole planes
    x[0, 0, ..., : shape[-1] // 2] = float("-inf")  # the first half of every row of a plane
    spatial = len(shape) - 2
    ours, theirs = getattr(F, f"max_pool{spatial}d"), getattr(torch.nn.functional, f"max_pool{spatial}d")
    grad = torch.randn(theirs(x, 3, 2, 1).shape, generator=gen)
    for return_indices in (False, True):  # tap codes, then positions
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_a = ours(a, 3, 2, 1, return_indices=return_indices)
        out_b = theirs(b, 3, 2, 1, return_indices=return_indices)
        (out_a[0] if return_indices else out_a).backward(grad)
        (out_b[0] if return_indices else out_b).backward(grad)
        assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("engine", [*ISA_ENGINES, CUDA])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("kernel", [(1, 2), (2, 2)])
def test_window_with_no_tap_inside_gets_minus_infinity_and_passes_no_gradient(engine, layout, kernel):
    """Kernel width 2, dilation 3, padding 1 over a width of 2: the first window's taps (-1 and 2)
    both miss the input. Value -inf and index as torch's (2, past the row); torch's backward then
    adds that gradient to whatever lies at flat index 2, the next row's first input: convops'
    reaches no input, even where (kernel height 2) that input lies inside the window's span."""
    x = torch.arange(1.0, 1.0 + 3 * 2 * 2 * 2).view(3, 2, 2, 2).contiguous(memory_format=layout)
    leaf = x.to(engine_device(engine)).requires_grad_()
    with cpu_engine(engine):
        out, idx = F.max_pool2d(leaf, kernel, 1, (0, 1), dilation=(1, 3), return_indices=True)
        ref, ref_idx = torch.nn.functional.max_pool2d(x, kernel, 1, (0, 1), dilation=(1, 3), return_indices=True)
        assert torch.equal(out.cpu(), ref) and torch.equal(idx.cpu(), ref_idx)
        assert torch.isinf(out).all()
        out.backward(torch.ones_like(out))
        assert torch.equal(leaf.grad.cpu(), torch.zeros_like(x))
        leaf.grad = None
        F.max_pool2d(leaf, kernel, 1, (0, 1), dilation=(1, 3)).sum().backward()  # the tap code's kNoTap
        assert torch.equal(leaf.grad.cpu(), torch.zeros_like(x))

        # Rows of 20 windows (the CPU's row passes) that miss the input along the height: their
        # first taps (row -1, and row 2 past a height of 2) would name the next depth's first
        # row, which is inside the plane.
        layout_3d = torch.channels_last_3d if layout == torch.channels_last else layout
        deep = torch.randn(3, 2, 2, 2, 20).contiguous(memory_format=layout_3d).to(engine_device(engine))
        deep.requires_grad_()
        for return_indices in (True, False):
            out = F.max_pool3d(deep, (1, 2, kernel[0]), 1, (0, 1, 0), dilation=(1, 3, 1), return_indices=return_indices)
            out = out[0] if return_indices else out
            assert out.shape == (3, 2, 2, 1, 21 - kernel[0]) and torch.isinf(out).all()
            out.backward(torch.ones_like(out))  # in out's layout: channels_last takes its own gradient form
            assert torch.equal(deep.grad, torch.zeros_like(deep))
        one_d = torch.randn(4, 3, 2, device=engine_device(engine), requires_grad=True)
        F.max_pool1d(one_d, 2, 1, 1, dilation=3).sum().backward()  # index 2 past a plane of 2
        assert torch.equal(one_d.grad, torch.zeros_like(one_d))


def test_empty_batch_has_zero_gradients():
    x = torch.randn(0, 3, 6, 6, requires_grad=True)
    out = F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)
    out.sum().backward()
    assert out.shape == (0, 3, 3, 3) and x.grad.shape == x.shape
    assert F.global_avg_pool(torch.randn(0, 4, 2, 2)).shape == (0, 4)


def test_unbatched_inputs():
    x = torch.randn(3, 8, 8)
    assert F.max_pool2d(x, 2).shape == (3, 4, 4)
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.shape == (3, 4, 4)
    torch.testing.assert_close(F.avg_pool2d(x, 2), torch.nn.functional.avg_pool2d(x, 2))


def test_channels_last_output_format():
    x = torch.randn(2, 8, 9, 9).to(memory_format=torch.channels_last)
    for out in (F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1)):
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert out.is_contiguous(memory_format=torch.channels_last) == \
            torch.nn.functional.max_pool2d(x, 3, 2, 1).is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------- gradients

POOL_CONFIGS = [  # sizes, kernel, stride, padding, dilation, ceil_mode
    ((9,), (3,), (2,), (1,), (1,), False),
    ((8,), (2,), (3,), (1,), (2,), True),
    ((6, 7), (3, 2), (2, 1), (1, 1), (1, 2), True),
    ((5, 6), (2, 3), (2, 2), (0, 1), (1, 1), False),
    ((4, 5, 4), (2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 1, 2), True),
]


def distinct(*shape):
    """Values far apart, so no max-pool tie sits within gradcheck's finite-difference step."""
    n = math.prod(shape)
    return (torch.randperm(n, dtype=torch.float64) / 7).view(*shape).requires_grad_()


@pytest.mark.parametrize("tap_indices", [False, True])
@pytest.mark.parametrize("config", POOL_CONFIGS)
def test_max_pool_gradcheck_and_gradgradcheck(config, tap_indices, isa_engine):
    sizes, kernel, stride, padding, dilation, ceil_mode = config
    x = distinct(2, 3, *sizes)
    window = (kernel, stride, padding, dilation, ceil_mode)
    fn = lambda x: ops.max_pool(x, *window, True, tap_indices)[0]  # noqa: E731
    assert gradcheck(fn, (x,), **TIGHT)
    assert gradgradcheck(fn, (x,), **TIGHT)
    out, idx = ops.max_pool(x, *window, True, tap_indices)
    assert idx.dtype == (torch.uint8 if tap_indices else torch.int64)
    g = torch.randn(out.shape, dtype=torch.float64, requires_grad=True)
    bwd = lambda g: ops.max_pool_backward(g, idx, list(x.shape), *window)  # noqa: E731
    assert gradcheck(bwd, (g,), **TIGHT)
    assert gradgradcheck(bwd, (g,), **TIGHT)


def test_max_pool_saves_tap_codes_for_the_gradient_alone():
    """Without return_indices, autograd saves each window's winning tap (uint8) for the
    gradient; with it, or past 255 taps a window, torch's int64 positions. Gradients are torch's."""
    x = distinct(2, 3, 20, 20).detach()
    for kernel, return_indices, saved in ((3, False, torch.uint8), (3, True, torch.int64), (16, False, torch.int64)):
        ours, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
        dtypes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: dtypes.append(t.dtype) or t, lambda t: t):
            out = F.max_pool2d(ours, kernel, 2, return_indices=return_indices)
        (out[0] if return_indices else out).sum().backward()
        torch.nn.functional.max_pool2d(ref, kernel, 2).sum().backward()
        assert dtypes == [saved] and torch.equal(ours.grad, ref.grad)


@pytest.mark.parametrize("count_include_pad,divisor", [(True, None), (False, None), (True, 5)])
@pytest.mark.parametrize("config", POOL_CONFIGS)
def test_avg_pool_gradcheck_and_gradgradcheck(config, count_include_pad, divisor, isa_engine):
    sizes, kernel, stride, padding, _, ceil_mode = config
    x = torch.randn(2, 3, *sizes, dtype=torch.float64, requires_grad=True)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    assert gradcheck(lambda x: ops.avg_pool(x, *args), (x,), **TIGHT)
    assert gradgradcheck(lambda x: ops.avg_pool(x, *args), (x,), **TIGHT)
    g = torch.randn(ops.avg_pool(x, *args).shape, dtype=torch.float64, requires_grad=True)
    bwd = lambda g: ops.avg_pool_backward(g, list(x.shape), *args)  # noqa: E731
    assert gradcheck(bwd, (g,), **TIGHT)
    assert gradgradcheck(bwd, (g,), **TIGHT)


@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_global_avg_pool_gradcheck_and_gradgradcheck(spatial, engine):
    x = torch.randn(2, 3, *[4, 3, 2][:spatial], dtype=torch.float64, requires_grad=True)
    assert gradcheck(ops.global_avg_pool, (x,), **TIGHT)
    assert gradgradcheck(ops.global_avg_pool, (x,), **TIGHT)


def _pool_opcheck_cases():
    x = distinct(2, 3, 7, 6)
    win = ([3, 2], [2, 1], [1, 1], [1, 2], True)
    out, idx = ops.max_pool(x, *win)
    taps = ops.max_pool(x, *win, True, True)[1]
    g = torch.randn(out.shape, dtype=torch.float64, requires_grad=True)
    avg = ([3, 2], [2, 1], [1, 1], True, False, None)
    avg_out = ops.avg_pool(x, *avg)
    xcl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    g2 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    return {
        "max_pool": (ops.max_pool.default, (x, *win)),
        "max_pool_channels_last": (ops.max_pool.default, (xcl, *win)),
        "max_pool_without_indices": (ops.max_pool.default, (x.detach(), *win, False)),  # inference
        "max_pool_tap_indices": (ops.max_pool.default, (x, *win, True, True)),
        "max_pool_tap_indices_channels_last": (ops.max_pool.default, (xcl, *win, True, True)),
        "max_pool_backward": (ops.max_pool_backward.default, (g, idx, list(x.shape), *win)),
        "max_pool_backward_tap_indices": (ops.max_pool_backward.default, (g, taps, list(x.shape), *win)),
        "avg_pool": (ops.avg_pool.default, (x, *avg)),
        "avg_pool_divisor": (ops.avg_pool.default, (xcl, [2, 2], [2, 2], [0, 1], False, True, 3)),
        "avg_pool_backward": (ops.avg_pool_backward.default,
                              (torch.randn(avg_out.shape, dtype=torch.float64, requires_grad=True), list(x.shape),
                               *avg)),
        "global_avg_pool": (ops.global_avg_pool.default, (x,)),
        "global_avg_pool_channels_last": (ops.global_avg_pool.default, (xcl,)),
        "global_avg_pool_backward": (ops.global_avg_pool_backward.default, (g2, list(x.shape), False)),
        "global_avg_pool_backward_channels_last": (ops.global_avg_pool_backward.default, (g2, list(x.shape), True)),
        "global_avg_pool_backward_3d": (ops.global_avg_pool_backward.default, (g2, [2, 3, 2, 1, 3], True)),
    }


@pytest.mark.parametrize("name", list(_pool_opcheck_cases()))
def test_pool_opcheck(name):
    op, args = _pool_opcheck_cases()[name]
    torch.library.opcheck(op, args)


# ---------------------------------------------------------------- errors

x4 = torch.randn(2, 3, 8, 8)
ERRORS = [
    (lambda: F.max_pool2d(x4, 0), ValueError, r"max_pool2d: expected kernel_size to be positive"),
    (lambda: F.max_pool2d(x4, 2, stride=0), ValueError, r"max_pool2d: expected stride to be positive"),
    (lambda: F.max_pool2d(x4, 2, padding=-1), ValueError, r"max_pool2d: expected padding to be >= 0"),
    (lambda: F.max_pool2d(x4, 2, dilation=0), ValueError, r"max_pool2d: expected dilation to be positive"),
    (lambda: F.max_pool2d(x4, 3, padding=2), ValueError, r"max_pool2d: pad should be at most half of kernel size"),
    (lambda: F.avg_pool1d(torch.randn(1, 1, 5), 2, padding=2), ValueError, r"avg_pool1d: pad should be at most half"),
    (lambda: F.max_pool2d(torch.randn(1, 1, 2, 2), 3), ValueError,
     r"max_pool2d: given input of shape \(1, 1, 2, 2\), the calculated output size is \(0, 0\): output size is too small"),
    (lambda: F.avg_pool2d(x4, 2, divisor_override=0), ValueError, r"avg_pool2d: expected divisor_override to be a non-zero int"),
    (lambda: F.max_pool2d(torch.randn(8, 8), 2), ValueError, r"max_pool2d: expected 3-D \(unbatched\) or 4-D"),
    (lambda: F.avg_pool3d(torch.randn(3, 8, 8), 2), ValueError, r"avg_pool3d: expected 4-D \(unbatched\) or 5-D"),
    (lambda: F.max_pool2d(torch.randn(2, 0, 4, 4), 2), ValueError, r"non-zero channel and spatial sizes"),
    (lambda: F.pool(x4, mode="median"), ValueError, r"pool: expected mode to be 'max' \(or 0\).*got 'median'"),
    (lambda: F.pool(x4, mode=3), ValueError, r"pool: expected mode .* got 3"),
    (lambda: F.pool(torch.randn(4, 4)), ValueError, r"pool: expected a 3-D, 4-D or 5-D input"),
    (lambda: F.max_pool2d(x4.int(), 2), RuntimeError, r"convops::max_pool: expected input to be float32"),
    (lambda: F.global_avg_pool(torch.randn(4, 4)), ValueError, r"global_avg_pool: expected a 3-D, 4-D or 5-D input"),
    (lambda: F.global_avg_pool(torch.randn(2, 3, 0)), ValueError, r"global_avg_pool: expected non-empty spatial dims"),
    (lambda: ops.max_pool(x4, [2, 2], [0, 1], [0, 0], [1, 1], False), RuntimeError,
     r"convops::max_pool: expected stride > 0 in every dimension, got \[0, 1\]"),
    (lambda: ops.avg_pool(x4, [3, 3], [1, 1], [2, 2], False, True, None), RuntimeError,
     r"convops::avg_pool: pad should be at most half of kernel size"),
    (lambda: ops.avg_pool(x4, [2, 2], [1, 1], [0, 0], False, True, 0), RuntimeError,
     r"convops::avg_pool: divisor must be not zero"),
    (lambda: ops.max_pool(torch.randn(1, 1, 2, 2), [3, 3], [1, 1], [0, 0], [1, 1], False), RuntimeError,
     r"convops::max_pool: given input of shape \[1, 1, 2, 2\].*output size is too small"),
    (lambda: ops.max_pool_backward(torch.randn(2, 3, 3, 3), torch.zeros(2, 3, 4, 4, dtype=torch.long), [2, 3, 8, 8],
                                   [2, 2], [2, 2], [0, 0], [1, 1], False), RuntimeError,
     r"convops::max_pool_backward: expected grad_output of shape \[2, 3, 4, 4\], got \[2, 3, 3, 3\]"),
    (lambda: ops.max_pool_backward(torch.randn(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), [2, 3, 8, 8],
                                   [2, 2], [2, 2], [0, 0], [1, 1], False), RuntimeError,
     r"convops::max_pool_backward: expected int64 \(positions\) or uint8 \(tap_indices\) indices on cpu, got Float"),
    (lambda: ops.max_pool(torch.randn(1, 1, 16, 16), [16, 16], [1, 1], [0, 0], [1, 1], False, True, True), RuntimeError,
     r"convops::max_pool: tap_indices needs a kernel of at most 255 taps, got kernel_size \[16, 16\] \(256 taps\)"),
]


@pytest.mark.parametrize("call,exc,pattern", ERRORS, ids=[f"case{i}" for i in range(len(ERRORS))])
def test_pool_bad_input_raises_a_clear_error(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_inference_max_pool_skips_indices_but_not_values():
    x = torch.randn(2, 3, 9, 9)
    out, idx = ops.max_pool(x, [3, 3], [2, 2], [1, 1], [1, 1], False, False)
    assert idx.numel() == 0
    assert torch.equal(out, torch.nn.functional.max_pool2d(x, 3, 2, 1))
    with torch.no_grad():
        assert torch.equal(F.max_pool2d(x.requires_grad_(), 3, 2, 1), out)
    with pytest.raises(RuntimeError, match="with_indices=False, so it has no gradient"):
        ops.max_pool(x.requires_grad_(), [3, 3], [2, 2], [1, 1], [1, 1], False, False)[0].sum().backward()


def test_pool_meta_shapes():
    x = torch.empty(2, 3, 9, 9, device="meta")
    out, idx = F.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    assert out.shape == idx.shape == (2, 3, 5, 5) and idx.dtype == torch.int64
    assert F.avg_pool2d(x, 2).shape == (2, 3, 4, 4)
    assert F.global_avg_pool(x, keepdim=True).shape == (2, 3, 1, 1)


# Outputs of at least kStreamBytes (8 MiB, kernels/pool.h) are written by streaming stores
# from scratch in cache: sizes past it in double (every forward output but the 3-D NCHW one,
# every gradient; most of them below it in float, written to the cache), each ISA copy (max:
# exact); 2-D rows of 516 through phased copies, of 512 read whole (whole_stride2_rows); in
# channels_last with whole vectors of channels and a tail (40, 36 channels).
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,layout", [((2, 8, 131072), "contiguous"), ((2, 8, 520, 516), "contiguous"),
                                          ((2, 8, 520, 512), "contiguous"),
                                          ((1, 4, 66, 64, 62), "contiguous"), ((2, 40, 260, 260), "channels_last"),
                                          ((1, 36, 66, 64, 62), "channels_last")])
def test_large_outputs_written_by_streaming_stores_match_torch(shape, layout, dtype, isa_engine):
    spatial = len(shape) - 2
    tmax, tavg = (getattr(torch.nn.functional, f"{kind}_pool{spatial}d") for kind in ("max", "avg"))
    ours_max, ours_avg = getattr(F, f"max_pool{spatial}d"), getattr(F, f"avg_pool{spatial}d")
    fmt = torch.contiguous_format
    if layout == "channels_last":
        fmt = torch.channels_last if spatial == 2 else torch.channels_last_3d
    x = torch.randint(-50, 50, shape, generator=torch.Generator().manual_seed(spatial)).to(dtype)
    x = x.contiguous(memory_format=fmt)
    grad = torch.randint(-8, 8, tmax(x, 3, 2, 1).shape, generator=torch.Generator().manual_seed(7)).to(dtype)
    grad = grad.contiguous(memory_format=fmt)  # its layout picks the backward's form
    cases = ((ours_max, tmax, {}), (ours_max, tmax, {"return_indices": True}),  # tap codes, then positions
             (ours_avg, tavg, {"count_include_pad": False}))
    for ours, theirs, kwargs in cases:
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_a, out_b = ours(a, 3, 2, 1, **kwargs), theirs(b, 3, 2, 1, **kwargs)
        if kwargs.get("return_indices"):
            assert torch.equal(out_a[1], out_b[1])
            out_a, out_b = out_a[0], out_b[0]
        out_a.backward(grad), out_b.backward(grad)
        # NCHW average: shares of the divisions add in another order; channels_last: in torch's
        tol = 0 if ours is ours_max or layout == "channels_last" else 1e-6
        torch.testing.assert_close(out_a, out_b, rtol=tol, atol=tol)
        torch.testing.assert_close(a.grad, b.grad, rtol=tol, atol=tol)
    values, indices = ours_max(x, 3, 2, 1, return_indices=True)
    assert torch.equal(indices, tmax(x, 3, 2, 1, return_indices=True)[1])


# The gradient of global average pooling (its own op) comes back in the input's layout, as
# torch's mean does, so autograd keeps it without a copy; the larger shape's gradient is
# past kStreamBytes in double (written by streaming stores).
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (4, 256, 33, 32)])
def test_global_avg_pool_gradient_in_the_input_layout(shape, fmt, dtype, isa_engine):
    x = torch.randint(-9, 9, shape).to(dtype).contiguous(memory_format=fmt).requires_grad_()
    ref = x.detach().clone().requires_grad_()
    grad = torch.randint(-9, 9, shape[:2]).to(dtype)
    F.global_avg_pool(x).backward(grad)
    ref.mean((2, 3)).backward(grad)
    assert x.grad.is_contiguous(memory_format=fmt) and x.grad.dtype == dtype
    torch.testing.assert_close(x.grad, ref.grad, rtol=0, atol=0)
