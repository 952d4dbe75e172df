"""convops against torch.nn.functional (and the slow reference for what torch
lacks), forward and backward, over hypothesis-drawn problems with integer data
so the comparison is exact. Each test runs on both CPU engines: 'row' (the
fast CPU loops) and 'element' (the per-element code the CUDA kernels run); the
convolutions also on 'columns' (the row engine through im2col + GEMM only: 'row'
takes groups with few output channels through the direct forms); and, on a GPU, 'cuda'
(the CUDA kernels against torch on the CPU)."""
import pytest
import torch
import torch.nn.functional as tF
from hypothesis import given, settings

import convops.functional as F
import reference
from conftest import CONV_ENGINES, CUDA, ISA_ENGINES, cpu_engine, engine_device
from strategies import conv_problems, conv_transpose_problems, integer_tensor, unfold_problems, with_layout

EXAMPLES = {"row": 250, "columns": 120, "element": 80, "cuda": 80}
TORCH_CONV = {1: tF.conv1d, 2: tF.conv2d, 3: tF.conv3d}
TORCH_CONV_T = {1: tF.conv_transpose1d, 2: tF.conv_transpose2d, 3: tF.conv_transpose3d}
OURS_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
OURS_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def exact(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def run_both(ours, theirs, tensors, layout, device="cpu", grad_layout="contiguous"):
    """Forward and backward of ours (inputs in `layout`, on `device`, the output's gradient in
    `grad_layout`) and theirs (contiguous, on the CPU) on the same values; returns [(output,
    [gradient of each tensor])] for both, on the CPU."""
    results = []
    for fn, lay, grad_lay, dev in ((ours, layout, grad_layout, device), (theirs, "contiguous", "contiguous", "cpu")):
        leaves = [None if t is None else t.to(dev, copy=True).requires_grad_(True) for t in tensors]
        out = fn(*[None if t is None else with_layout(t, lay) for t in leaves])
        grad = integer_tensor(out.shape, out.dtype, generator=torch.Generator().manual_seed(7)).to(dev)
        out.backward(with_layout(grad, grad_lay))
        results.append((out.detach().cpu(), [None if t is None else t.grad.cpu() for t in leaves]))
    return results


def compare(results):
    (out, grads), (ref_out, ref_grads) = results
    exact(out, ref_out)
    for g, rg in zip(grads, ref_grads):
        if rg is not None:
            exact(g, rg)


def _conv_tensors(p):
    gen = torch.Generator().manual_seed(hash(repr(p)) % (2 ** 31))
    shape = (p["batch"], p["in_channels"], *p["sizes"])
    if p["unbatched"]:
        shape = shape[1:]
    x = integer_tensor(shape, p["dtype"], generator=gen)
    w = integer_tensor((p["out_channels"], p["in_channels"] // p["groups"], *p["kernel"]), p["dtype"],
                       generator=gen)
    b = integer_tensor((p["out_channels"],), p["dtype"], generator=gen) if p["bias"] else None
    return x, w, b


def _flipped(w, mode):
    return w.flip(list(range(2, w.dim()))) if mode in ("convolution", 0) else w


@pytest.mark.parametrize("engine", [*CONV_ENGINES, CUDA])
def test_conv_matches_torch(engine):
    @settings(max_examples=EXAMPLES[engine])
    @given(conv_problems())
    def check(p):
        x, w, b = _conv_tensors(p)
        args = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
        ours = lambda x, w, b: OURS_CONV[p["spatial"]](x, w, b, mode=p["mode"], **args)  # noqa: E731
        theirs = lambda x, w, b: TORCH_CONV[p["spatial"]](x, _flipped(w, p["mode"]), b, **args)  # noqa: E731
        compare(run_both(ours, theirs, [x, w, b], p["layout"], engine_device(engine), p["grad_layout"]))

    with cpu_engine(engine):
        check()


@pytest.mark.parametrize("engine", [*CONV_ENGINES, CUDA])
def test_generic_conv_matches_torch(engine):
    @settings(max_examples=EXAMPLES[engine] // 4)
    @given(conv_problems())
    def check(p):
        p = dict(p, unbatched=False)
        x, w, b = _conv_tensors(p)
        args = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
        ours = lambda x, w, b: F.conv(x, w, b, mode=p["mode"], **args)  # noqa: E731
        theirs = lambda x, w, b: TORCH_CONV[p["spatial"]](x, _flipped(w, p["mode"]), b, **args)  # noqa: E731
        compare(run_both(ours, theirs, [x, w, b], p["layout"], engine_device(engine), p["grad_layout"]))

    with cpu_engine(engine):
        check()


@pytest.mark.parametrize("engine", [*CONV_ENGINES, CUDA])
def test_conv_transpose_matches_torch(engine):
    @settings(max_examples=EXAMPLES[engine])
    @given(conv_transpose_problems())
    def check(p):
        gen = torch.Generator().manual_seed(hash(repr(p)) % (2 ** 31))
        shape = (p["batch"], p["in_channels"], *p["sizes"])
        if p["unbatched"]:
            shape = shape[1:]
        x = integer_tensor(shape, p["dtype"], generator=gen)
        w = integer_tensor((p["in_channels"], p["out_channels"] // p["groups"], *p["kernel"]), p["dtype"],
                           generator=gen)
        b = integer_tensor((p["out_channels"],), p["dtype"], generator=gen) if p["bias"] else None
        args = dict(stride=p["stride"], padding=p["padding"], output_padding=p["output_padding"],
                    groups=p["groups"], dilation=p["dilation"])
        ours = lambda x, w, b: OURS_CONV_T[p["spatial"]](x, w, b, mode=p["mode"], **args)  # noqa: E731
        theirs = lambda x, w, b: TORCH_CONV_T[p["spatial"]](x, _flipped(w, p["mode"]), b, **args)  # noqa: E731
        compare(run_both(ours, theirs, [x, w, b], p["layout"], engine_device(engine), p["grad_layout"]))

    with cpu_engine(engine):
        check()


def _unfold_input(p):
    gen = torch.Generator().manual_seed(hash(repr(p)) % (2 ** 31))
    return integer_tensor((p["batch"], p["channels"], *p["sizes"]), p["dtype"], generator=gen)


@pytest.mark.parametrize("engine", ["row", "element", CUDA])
def test_unfold_and_fold_match_torch_and_reference(engine):
    @settings(max_examples=EXAMPLES[engine])
    @given(unfold_problems())
    def check(p):
        x = _unfold_input(p)
        args = (p["kernel"], p["dilation"], p["padding"], p["stride"])
        if p["spatial"] == 2:
            ref_unfold = lambda x: tF.unfold(x, *args)  # noqa: E731
        else:
            ref_unfold = lambda x: reference.unfold(x, *args)  # noqa: E731
        compare(run_both(lambda x: F.unfold(x, *args), ref_unfold, [x], p["layout"], engine_device(engine)))

        cols = integer_tensor(F.unfold(x, *args).shape, p["dtype"])
        if p["spatial"] == 2:
            ref_fold = lambda c: tF.fold(c, p["sizes"], *args)  # noqa: E731
        else:
            ref_fold = lambda c: reference.fold(c, p["sizes"], *args)  # noqa: E731
        compare(run_both(lambda c: F.fold(c, p["sizes"], *args), ref_fold, [cols], "strided", engine_device(engine)))

    with cpu_engine(engine):
        check()


@settings(max_examples=60)
@given(conv_problems())
def test_reference_conv_matches_torch(p):
    """The slow reference is itself checked against torch, so it can stand in where torch has no twin."""
    p = dict(p, unbatched=False, padding=p["padding"] if not isinstance(p["padding"], str) else 0)
    x, w, b = _conv_tensors(p)
    pad = p["padding"] if isinstance(p["padding"], tuple) else (p["padding"],) * p["spatial"]
    expected = TORCH_CONV[p["spatial"]](x, w, b, p["stride"], pad, p["dilation"], p["groups"])
    exact(reference.conv(x, w, b, p["stride"], pad, p["dilation"], p["groups"]), expected)
    exact(F.conv(x, w, b, p["stride"], pad, p["dilation"], p["groups"]), expected)


@settings(max_examples=60)
@given(conv_transpose_problems())
def test_reference_conv_transpose_matches_torch(p):
    gen = torch.Generator().manual_seed(1)
    x = integer_tensor((p["batch"], p["in_channels"], *p["sizes"]), p["dtype"], generator=gen)
    w = integer_tensor((p["in_channels"], p["out_channels"] // p["groups"], *p["kernel"]), p["dtype"], generator=gen)
    args = (p["stride"], p["padding"], p["output_padding"], p["groups"], p["dilation"])
    expected = TORCH_CONV_T[p["spatial"]](x, w, None, *args)
    exact(reference.conv_transpose(x, w, None, p["stride"], p["padding"], p["output_padding"], p["dilation"],
                                   p["groups"]), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_reduced_precision_accumulates_in_float(dtype, spatial):
    """float16/bfloat16 in, same dtype out, and values as close to the float32 result as torch's own."""
    gen = torch.Generator().manual_seed(spatial)
    x = torch.randn(2, 6, *([9] * spatial), generator=gen).to(dtype)
    w = torch.randn(4, 3, *([3] * spatial), generator=gen).to(dtype)
    b = torch.randn(4, generator=gen).to(dtype)
    args = dict(stride=1, padding=1, dilation=1, groups=2)
    exact32 = TORCH_CONV[spatial](x.float(), w.float(), b.float(), **args)
    ours = OURS_CONV[spatial](x, w, b, **args)
    assert ours.dtype == dtype
    err_ours = (ours.float() - exact32).abs().max().item()
    err_torch = (TORCH_CONV[spatial](x, w, b, **args).float() - exact32).abs().max().item()
    assert err_ours <= 2 * err_torch + 1e-2

    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    OURS_CONV[spatial](xr, wr, None, **args).sum().backward()
    x32, w32 = x.float().requires_grad_(), w.float().requires_grad_()
    TORCH_CONV[spatial](x32, w32, None, **args).sum().backward()
    assert xr.grad.dtype == dtype and wr.grad.dtype == dtype
    tol = 1e-2 if dtype == torch.float16 else 8e-2
    torch.testing.assert_close(xr.grad.float(), x32.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(wr.grad.float(), w32.grad, rtol=tol, atol=tol * 10)


def conv_with_grads(x, w, b, gy, **args):
    """F.conv2d's output and the gradients of x, w and b for the output gradient gy."""
    leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    out = F.conv2d(*leaves, **args)
    out.backward(gy)
    return [out.detach()] + [t.grad for t in leaves]


@pytest.mark.parametrize("dtype,size", [
    (torch.float16, 6),
    (torch.bfloat16, 6),     # 8 * 72 * 36 multiply-adds per image: computed in float (conv.cpp)
    (torch.bfloat16, 24),
    (torch.float16, 128),    # float16 in float at any size (8 * 72 * 16384 multiply-adds per image)
])
def test_reduced_precision_on_the_cpu_is_the_float_result_rounded_once(dtype, size):
    """float16 on the CPU, and bfloat16 problems of few multiply-adds per image, are computed in
    float and rounded once: the float computation's result, to the bit, forward and gradients."""
    gen = torch.Generator().manual_seed(size)
    x, w, b = (torch.randn(s, generator=gen).to(dtype) for s in ((4, 8, size, size), (8, 8, 3, 3), (8,)))
    gy = torch.randn(4, 8, size, size, generator=gen).to(dtype)
    ours = conv_with_grads(x, w, b, gy, padding=1)
    in_float = conv_with_grads(x.float(), w.float(), b.float(), gy.float(), padding=1)
    for a, f in zip(ours, in_float):
        assert a.dtype == dtype
        assert torch.equal(a, f.to(dtype))


def test_large_bfloat16_problems_accumulate_in_float():
    """bfloat16 above computes_in_float's bound (64 * 576 * 256 multiply-adds per image) runs
    the bfloat16 GEMMs: as close to the float result as torch's own, forward and gradients."""
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(s, generator=gen) for s in ((2, 64, 16, 16), (64, 64, 3, 3), (64,)))
    gy = torch.randn(2, 64, 16, 16, generator=gen)
    exact32 = conv_with_grads(x, w, b, gy, padding=1)
    low = [t.bfloat16() for t in (x, w, b, gy)]
    ours = conv_with_grads(*low, padding=1)
    theirs = [tF.conv2d(*low[:3], padding=1)]
    for a, t, e in zip(ours, theirs + [None] * 3, exact32):
        assert a.dtype == torch.bfloat16
        scale = e.abs().max().item()
        err = (a.float() - e).abs().max().item()
        bound = (t.float() - e).abs().max().item() * 2 if t is not None else 2 ** -7 * scale
        assert err <= bound + 1e-3 * scale


@pytest.mark.parametrize("engine", CONV_ENGINES)
@pytest.mark.parametrize("size,kernel,groups", [
    ((5, 5), (3, 3), 1),      # 25 positions per image: the images of a chunk share one GEMM per group
    ((5, 5), (3, 3), 2),
    ((1, 1), (3, 3), 4),      # 1 position (ResNet's last stage on 32x32 inputs)
    ((12, 12), (3, 3), 1),    # 144 positions: per-image GEMMs, batched in one call
    ((12, 12), (1, 1), 2),    # pointwise: the input is its own columns
    ((40, 40), (3, 3), 1),    # GEMMs large enough for one call per image
    ((40, 40), (3, 3), 2),    # chunks of one image (its columns exceed the buffer bound)
    ((96, 96), (1, 1), 2),    # the same, pointwise
])
@pytest.mark.parametrize("threads", [1, 3])
def test_every_gemm_plan_matches_torch(engine, size, kernel, groups, threads, num_threads):
    """The orchestration picks a GEMM plan by problem size (csrc/ops/conv/conv.cpp chunk_plan;
    engine 'columns': with 6 output channels per group, 'row' runs the direct forms);
    each, with batches that do not divide into chunks evenly, forward and both gradients. With
    3 threads, images with more positions than channels are split among the threads
    (over_images): 37 images as 13 + 13 + 11, each thread with its own weight-gradient sum."""
    num_threads(threads)
    gen = torch.Generator().manual_seed(7)
    x = integer_tensor((37, 4 * groups, *size), torch.float64, generator=gen)
    w = integer_tensor((6 * groups, 4, *kernel), torch.float64, generator=gen)
    b = integer_tensor((6 * groups,), torch.float64, generator=gen)
    padding = kernel[0] // 2
    with cpu_engine(engine):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        out = F.conv2d(*leaves, padding=padding, groups=groups)
        grad = integer_tensor(out.shape, torch.float64, generator=gen)
        out.backward(grad)
    ref_leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    ref = tF.conv2d(*ref_leaves, padding=padding, groups=groups)
    ref.backward(grad)
    exact(out, ref)
    for ours, theirs in zip(leaves, ref_leaves):
        exact(ours.grad, theirs.grad)



@pytest.mark.parametrize("engine", [*CONV_ENGINES, CUDA])
@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation,groups,cropped", [
    ((3, 8, 1, 1), (6, 8, 3, 3), 1, 1, 1, 1, True),            # ResNet's last stage on 32x32: the centre tap only
    ((3, 8, 2, 2), (6, 8, 3, 3), 2, 1, 1, 2, True),            # its stride-2 entry: 4 taps of 9
    ((2, 4, 1, 9), (4, 4, 3, 3), 1, 1, 1, 1, True),            # dead taps in one dim only
    ((2, 4, 2, 9), (4, 4, 5, 3), (3, 1), (4, 1), (2, 1), 1, True),  # dilated and strided: taps 2..3 of 5 live
    ((2, 4, 1, 1, 5), (4, 4, 3, 3, 3), 1, 1, 1, 1, True),      # 3-D
    ((2, 4, 1, 5), (4, 4, 3, 3), (3, 1), (3, 1), 1, 1, False),  # dead taps 1, 2 of dim 0, but padding 3 - 0
                                                                 # keeps 2 outputs only with all 3: kept whole
])
def test_taps_that_read_only_padding_are_left_out(engine, x_shape, w_shape, stride, padding, dilation, groups,
                                                  cropped):
    """A kernel tap that reads padding at every output position adds nothing: the convolution
    runs on the live taps only (conv.cpp live_taps). Forward and both gradients match torch
    exactly; the dead taps' weight gradient is exactly 0; and where the crop applies, NaN weights
    on the dead taps (which torch's oneDNN forms skip too) reach neither the output nor the
    input gradient."""
    device = engine_device(engine)
    gen = torch.Generator().manual_seed(11)
    spatial = len(x_shape) - 2
    w_shape = (w_shape[0], w_shape[1] // groups, *w_shape[2:])
    x, w = (integer_tensor(s, torch.float64, generator=gen) for s in (x_shape, w_shape))
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    with cpu_engine(engine):
        (out, grads), (ref_out, ref_grads) = run_both(lambda x, w: OURS_CONV[spatial](x, w, **args),
                                                      lambda x, w: TORCH_CONV[spatial](x, w, **args),
                                                      [x, w], "contiguous", device)
    exact(out, ref_out)
    for g, rg in zip(grads, ref_grads):
        exact(g, rg)
    # A tap is dead where it reads no input at any output: torch's weight gradient of ones is 0 there.
    ones = torch.ones(x_shape, dtype=torch.float64, requires_grad=True)
    w_ones = torch.ones(w_shape, dtype=torch.float64, requires_grad=True)
    TORCH_CONV[spatial](ones, w_ones, **args).sum().backward()
    dead = w_ones.grad == 0
    assert dead.any()
    assert (grads[1][dead] == 0).all()
    if not cropped:
        return
    w_nan = w.masked_fill(dead, float("nan")).to(device)
    x_ours = x.to(device, copy=True).requires_grad_()
    with cpu_engine(engine):
        out_nan = OURS_CONV[spatial](x_ours, w_nan, **args)
        out_nan.backward(torch.ones_like(out_nan))
    x_ref = x.clone().requires_grad_()
    ref = TORCH_CONV[spatial](x_ref, w.masked_fill(dead, 0), **args)
    ref.backward(torch.ones_like(ref))
    exact(out_nan.detach().cpu(), ref.detach())
    exact(x_ours.grad.cpu(), x_ref.grad)


# ---------------------------------------------------------------- memory formats

LAYOUT = {True: "channels_last", False: "contiguous"}

@pytest.mark.parametrize("engine", ["row", "element"])
@pytest.mark.parametrize("spatial", [2, 3])
@pytest.mark.parametrize("x_cl,w_cl", [(True, False), (False, True), (True, True), (False, False)])
@pytest.mark.parametrize("in_channels,out_channels,groups", [(4, 6, 1), (4, 6, 2), (1, 3, 1), (4, 4, 4)])
@pytest.mark.parametrize("kernel", [3, 1])
def test_convolutions_return_the_memory_format_torch_returns(engine, spatial, x_cl, w_cl, in_channels, out_channels,
                                                             groups, kernel):
    """channels_last in, channels_last out, as torch's convolutions: the output, the input and
    weight gradients and the transposed convolution's output are channels_last where the input
    or the weight is (suggest_memory_format; a 1-channel input counts), with torch's strides and
    values. The row engine moves them by its transposing copy, the element engine (the GPU's
    path) by ATen's."""
    gen = torch.Generator().manual_seed(spatial * 100 + in_channels)
    x = with_layout(integer_tensor((2, in_channels, *[5] * spatial), torch.float32, generator=gen), LAYOUT[x_cl])
    w = with_layout(integer_tensor((out_channels, in_channels // groups, *[kernel] * spatial), torch.float32,
                                   generator=gen), LAYOUT[w_cl])
    w_t = with_layout(integer_tensor((in_channels, out_channels // groups, *[kernel] * spatial), torch.float32,
                                     generator=gen), LAYOUT[w_cl])
    args = dict(padding=kernel // 2, groups=groups)
    results = []
    for conv, conv_t in ((OURS_CONV[spatial], OURS_CONV_T[spatial]), (TORCH_CONV[spatial], TORCH_CONV_T[spatial])):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        with cpu_engine(engine):
            y = conv(xs, ws, **args)
            y.backward(integer_tensor(y.shape, y.dtype, generator=torch.Generator().manual_seed(3)))
            results.append([y.detach(), xs.grad, ws.grad, conv_t(x, w_t, **args)])
    for ours, theirs in zip(*results):
        exact(ours, theirs)
        assert ours.stride() == theirs.stride()
    if x_cl and in_channels > 1:  # the strides compared are a channels_last result's
        assert not results[0][0].is_contiguous()


@pytest.mark.parametrize("engine", ISA_ENGINES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("x_shape,kernel", [
    ((2, 35, 11, 13), 3),      # the layout copies' whole tiles and both tails, in both directions
    ((3, 21, 4, 5), 5),        # a channels_last 5x5 weight: 25 taps by 21 channels, tiled too
    ((2, 19, 3, 5, 7), 3),     # 3-D
    ((2, 35, 11, 13), 1),      # 1x1: one GEMM over the positions' rows, no copies
    ((3, 19, 3, 5, 7), 1),     # three images: some thread's share holds two, each with its bias
])
def test_channels_last_convolutions_match_torch(engine, dtype, x_shape, kernel):
    """Channels_last input, weight and output gradient at sizes past a vector's lanes in both
    dims (the transposing copy's tiles, kernels/transpose_cpu.h) and not multiples of them (its
    tails), and 1x1 convolutions by position rows (conv.cpp by_position_rows): the output and
    the three gradients match torch."""
    gen = torch.Generator().manual_seed(5)
    C = x_shape[1]
    x = integer_tensor(x_shape, dtype, generator=gen)
    w = integer_tensor((C + 2, C, *[kernel] * (len(x_shape) - 2)), dtype, generator=gen)
    b = integer_tensor((C + 2,), dtype, generator=gen)
    conv = {4: F.conv2d, 5: F.conv3d}[len(x_shape)]
    theirs_conv = {4: tF.conv2d, 5: tF.conv3d}[len(x_shape)]
    with cpu_engine(engine):
        (out, grads), (ref_out, ref_grads) = run_both(lambda x, w, b: conv(x, w, b, padding=kernel // 2),
                                                      lambda x, w, b: theirs_conv(x, w, b, padding=kernel // 2),
                                                      [x, w, b], "channels_last", grad_layout="channels_last")
    exact(out, ref_out)
    assert not out.is_contiguous()
    for g, rg in zip(grads, ref_grads):
        exact(g, rg)
