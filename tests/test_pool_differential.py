"""Pooling against torch.nn.functional, forward and backward (values, indices,
gradients) over hypothesis-drawn problems with integer data (exact comparison),
NaN/inf inputs and ties; on both CPU engines (the row engine in its AVX2 and baseline copies) and,
on a GPU, on the CUDA kernels ('cuda', against torch on the CPU)."""
import ctypes
import itertools
import mmap

import pytest
import torch
import torch.nn.functional as tF
from hypothesis import assume, given, settings

import convops.functional as F
from conftest import CUDA, ISA_ENGINES, cpu_engine, engine_device
from strategies import integer_tensor, pool_problems, with_layout

EXAMPLES = {"row": 250, "row-baseline": 80, "element": 80, "cuda": 80}
TORCH_MAX = {1: tF.max_pool1d, 2: tF.max_pool2d, 3: tF.max_pool3d}
TORCH_AVG = {1: tF.avg_pool1d, 2: tF.avg_pool2d, 3: tF.avg_pool3d}
OURS_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
OURS_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def pool_input(p):
    gen = torch.Generator().manual_seed(hash(repr(p)) % (2 ** 31))
    shape = (p["batch"], p["channels"], *p["sizes"])
    if p["unbatched"]:
        shape = shape[1:]
    x = integer_tensor(shape, p["dtype"], generator=gen)
    if p["specials"] == "ties":
        x = (x > 0).to(p["dtype"])
    elif p["specials"] in ("nan", "inf") and x.numel():
        mask = torch.rand(shape, generator=gen) < 0.2
        x[mask] = float("nan") if p["specials"] == "nan" else float("-inf")
        if p["specials"] == "inf":
            x[torch.rand(shape, generator=gen) < 0.1] = float("inf")
    return x


def forward_backward(fn, x, layout, with_indices=False, device="cpu", grad_layout="contiguous"):
    """Output, indices and input gradient of fn on x (in `layout`, on `device`; the output's
    gradient in `grad_layout`, which picks the backward's form), back on the CPU."""
    leaf = x.to(device, copy=True).requires_grad_(True)
    result = fn(with_layout(leaf, layout))
    out, indices = result if with_indices else (result, None)
    grad = integer_tensor(out.shape, out.dtype, generator=torch.Generator().manual_seed(3))
    out.backward(with_layout(grad.to(device), grad_layout))
    return out.detach().cpu(), None if indices is None else indices.cpu(), leaf.grad.cpu()


def same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def same_max_pool(ours_fn, theirs, x, layout, device="cpu", grad_layout="contiguous"):
    """ours_fn(t, return_indices) against torch's (output, indices, gradient): with the indices
    asked for (torch's int64 positions), and without (autograd then saves each window's
    winning tap, uint8): values and gradients alike."""
    with_positions = forward_backward(lambda t: ours_fn(t, True), x, layout, True, device, grad_layout)
    with_taps = forward_backward(lambda t: ours_fn(t, False), x, layout, False, device, grad_layout)
    for a, b in zip(with_positions, theirs):
        same(a, b)
    same(with_taps[0], theirs[0])
    same(with_taps[2], theirs[2])
    return with_positions


def has_window_outside(p):
    """A max window with no tap inside the input (a dilation stepping over a small input): torch's
    gradient for it lands on an unrelated input; convops' reaches none (test_pool_semantics)."""
    for size, k, s, pad, d in zip(p["sizes"], p["kernel"], p["stride"] if not p["stride_none"] else p["kernel"],
                                  p["padding"], p["dilation"]):
        o = 0
        while o * s - pad < 0:
            start = o * s - pad
            if start + -(start // d) * d >= size:
                return True
            o += 1
    return False


@pytest.mark.parametrize("engine", [*ISA_ENGINES, CUDA])
def test_max_pool_matches_torch(engine):
    @settings(max_examples=EXAMPLES[engine])
    @given(pool_problems(is_max=True))
    def check(p):
        assume(not has_window_outside(p))
        x = pool_input(p)
        stride = None if p["stride_none"] else p["stride"]
        args = (p["kernel"], stride, p["padding"], p["dilation"], p["ceil_mode"])
        theirs = forward_backward(lambda t: TORCH_MAX[p["spatial"]](t, *args, True), x, "contiguous", True)
        ours = same_max_pool(lambda t, indices: OURS_MAX[p["spatial"]](t, *args, indices), theirs, x, p["layout"],
                             engine_device(engine), p["grad_layout"])
        if p["layout"] == "channels_last" and p["spatial"] >= 2 and not p["unbatched"] and x.numel():
            fmt = torch.channels_last if p["spatial"] == 2 else torch.channels_last_3d
            assert ours[0].is_contiguous(memory_format=fmt) and ours[1].is_contiguous(memory_format=fmt)

    with cpu_engine(engine):
        check()


@pytest.mark.parametrize("sizes,kernel,stride,padding,dilation,ceil_mode", [
    ((9, 40), (3, 3), (2, 1), (1, 1), (1, 2), False),        # 36 windows per row: the phased row form
    ((9, 11), (2, 2), (2, 2), (0, 0), (1, 1), True),          # 6 per row: window by window
    ((4, 5, 30), (2, 3, 3), (1, 2, 1), (1, 1, 1), (2, 1, 1), True),
    ((4, 5, 9), (2, 3, 3), (1, 2, 2), (1, 1, 1), (2, 1, 1), False),
    ((300, 14), (3, 2), (2, 2), (1, 1), (1, 2), False),       # short rows of a plane past the window table
    ((2, 40), (1, 3), (1, 2), (0, 1), (1, 1), True),          # 1-D pooling in 2-D: one pass per output row
])
@pytest.mark.parametrize("specials", ["nan", "ties", "inf"])
def test_max_pool_row_forms_match_torch(sizes, kernel, stride, padding, dilation, ceil_mode, specials, isa_engine):
    """The CPU plane form pools long output rows by phased row passes and short ones window by
    window, through a table of the call's windows or (larger planes) one by one (kernels/pool_cpu.h,
    kShortPoolRow); all against torch, values, indices, gradients (from either argmax code)."""
    p = dict(batch=2, channels=3, sizes=sizes, unbatched=False, dtype=torch.float32, specials=specials)
    x = pool_input(p)
    args = (kernel, stride, padding, dilation, ceil_mode)
    theirs = forward_backward(lambda t: TORCH_MAX[len(sizes)](t, *args, True), x, "contiguous", True)
    same_max_pool(lambda t, indices: OURS_MAX[len(sizes)](t, *args, indices), theirs, x, "contiguous")


def special_values(shape, seed):
    """Integers with ties and signed zeros; in the first image also NaN, +-inf and values whose
    sum overflows, sparse enough that most vectors of the second hold none of them."""
    gen = torch.Generator().manual_seed(seed)
    x = integer_tensor(shape, torch.float32, generator=gen)
    x[torch.rand(shape, generator=gen) < 0.2] = 0.0
    x[torch.rand(shape, generator=gen) < 0.2] = -0.0
    first = x[0]
    for value, share in ((float("nan"), 0.02), (float("inf"), 0.02), (float("-inf"), 0.03), (3e38, 0.03),
                         (-3e38, 0.03)):
        first[torch.rand(first.shape, generator=gen) < share] = value
    return x


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("sizes,kernel,stride,padding,dilation", [
    ((300,), (3,), (2,), (1,), (1,)),
    ((40, 70), (3, 3), (2, 2), (1, 1), (1, 1)),
    ((9, 11), (3, 2), (2, 1), (1, 1), (1, 2)),
    ((6, 7, 20), (3, 3, 3), (2, 2, 1), (1, 1, 1), (1, 1, 2)),
])
def test_inference_max_pool_is_the_indexed_scan(isa_engine, layout, sizes, kernel, stride, padding, dilation):
    """Max pooling takes a source where it is greater (an ordered compare: one max instruction
    without indices) and scans again by torch's rule the vectors whose sum is not a number
    (kernels/pool_cpu.h, max_of_sources): with and without indices the same bits (the first
    maximum, the sign of a tied zero, NaN), and torch's values and indices."""
    x = with_layout(special_values((2, 37, *sizes), seed=len(sizes)), layout)
    args = (list(kernel), list(stride), list(padding), list(dilation), False)
    values, none = torch.ops.convops.max_pool(x, *args, with_indices=False)
    indexed, positions = torch.ops.convops.max_pool(x, *args, with_indices=True)
    assert none.numel() == 0
    assert torch.equal(values.view(torch.int32), indexed.view(torch.int32))  # NaNs and signed zeros too
    theirs, their_positions = TORCH_MAX[len(sizes)](x, kernel, stride, padding, dilation, return_indices=True)
    same(values, theirs)
    assert torch.equal(positions, their_positions)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes,kernel,stride,padding,dilation,ceil_mode", [
    ((128,), 3, 2, 1, 1, False),                         # 64 windows: the shortest row read in place
    ((130,), 3, 2, 1, 1, False),                         # the last inside window would read past the row
    ((131,), 3, 2, 1, 1, True),                          # an odd row, ceil_mode's overhanging last window
    ((300,), 2, 2, 0, 1, False),                         # no padding: no window before the inside ones
    ((301,), 5, 2, 2, 1, True),
    # each range of taps of max_row_stride2's pairs: t in [-pad, kernel - 1 - pad]
    ((299,), 2, 2, 1, 1, True),                          # [-1, 0]
    ((300,), 3, 2, 0, 1, False),                         # [0, 2]: the next pair's first even lane
    ((301,), 4, 2, 0, 1, False),                         # [0, 3]: and its first odd lane
    ((300,), 4, 2, 1, 1, True),                          # [-1, 2]
    ((302,), 4, 2, 2, 1, False),                         # [-2, 1]: the previous pair's last even lane
    ((300,), 5, 2, 1, 1, False),                         # [-1, 3]
    ((303,), 6, 2, 2, 1, True),                          # [-2, 3]
    ((300,), 6, 2, 3, 1, False),                         # [-3, 2]: taps by pairs again
    ((257,), 4, 2, 2, 3, False),                         # dilated taps
    ((200,), 1, 2, 0, 1, False),                         # one tap
    ((300,), 35, 2, 17, 1, True),                        # 9 windows reach into the left padding
    ((300,), 17, 2, 8, 4, False),                        # taps 64 apart: the phased copy again
    ((3, 150), (1, 3), (1, 2), (0, 1), (1, 2), False),   # 1-D pooling in 2-D: each row its output row
    ((3, 150), (2, 3), 2, (1, 1), (1, 2), False),        # 2-D: phased rows, not read in place
])
def test_stride_two_rows_are_read_in_place(isa_engine, dtype, sizes, kernel, stride, padding, dilation, ceil_mode):
    """1-D max pooling's stride-2 row passes read long input rows in place, the windows at a row's
    ends one by one (kernels/pool_cpu.h, max_row_in_place): torch's values, indices
    and gradients (from either code), and with or without indices the same bits, over NaN,
    +-inf, ties and signed zeros."""
    x = special_values((2, 5, *sizes), seed=sum(sizes)).to(dtype)
    args = (kernel, stride, padding, dilation, ceil_mode)
    theirs = forward_backward(lambda t: TORCH_MAX[len(sizes)](t, *args, True), x, "contiguous", True)
    same_max_pool(lambda t, indices: OURS_MAX[len(sizes)](t, *args, indices), theirs, x, "contiguous")
    bits = torch.int64 if dtype == torch.float64 else torch.int32  # NaNs and signed zeros too
    assert torch.equal(OURS_MAX[len(sizes)](x, *args).view(bits), theirs[0].view(bits))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes,kernel,stride,padding,dilation,ceil_mode", [
    ((9, 32), 3, 2, 1, 1, False),                      # rows of 32: passed a block of rows at a time
    ((5, 112), 3, 2, 1, 1, False),                     # rows of 112: one by one
    ((4, 6, 32), 3, 2, 1, 1, False),                   # 3-D
    ((7, 16), 2, 2, 0, 1, False),                      # taps [0, 1]
    ((32,), 3, 2, 1, 1, False),                        # 1-D rows too short for max_row_in_place
    ((9, 32), 3, (1, 2), 1, (2, 1), False),            # another stride and a dilation along dim 0
    ((5, 32), 3, 2, 1, 1, True),                       # ceil_mode's 17th window: the phased copy
    ((5, 40), 3, 2, 1, 1, False),                      # 20 windows: not whole AVX2 or AVX-512 vectors
])
def test_whole_rows_are_read_in_place(isa_engine, dtype, sizes, kernel, stride, padding, dilation, ceil_mode):
    """2-D and 3-D max pooling's row passes read whole stride-2 rows in place, their left padding
    as -inf (kernels/pool_cpu.h, whole_rows_in_place): torch's values, indices and gradients
    (from either code), the same bits with or without indices, over NaN, +-inf, ties and signed
    zeros; every other row ends in a large value the next row's first window must not see, and
    some rows hold a NaN in their first vector, which is scanned again by the rule."""
    x = special_values((2, 5, *sizes), seed=sum(sizes)).to(dtype)
    x[..., ::2, -1] = 1e9
    x[..., 1::4, 5] = float("nan")
    args = (kernel, stride, padding, dilation, ceil_mode)
    theirs = forward_backward(lambda t: TORCH_MAX[len(sizes)](t, *args, True), x, "contiguous", True)
    same_max_pool(lambda t, indices: OURS_MAX[len(sizes)](t, *args, indices), theirs, x, "contiguous")
    bits = torch.int64 if dtype == torch.float64 else torch.int32
    assert torch.equal(OURS_MAX[len(sizes)](x, *args).view(bits), theirs[0].view(bits))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("length,kernel,padding,ceil_mode", [
    (128, 3, 1, False),    # 64 windows: the shortest row read in place
    (130, 3, 1, False),    # the last inside window would read past the row
    (131, 3, 1, True),     # ceil_mode's overhanging last window
    (300, 2, 0, False),
    (301, 5, 2, True),
    (200, 1, 0, False),    # one tap
    (300, 35, 17, True),   # 9 windows reach into the left padding
    (300, 65, 32, False),  # taps 64 apart: the phased copy again
    # each range of taps t in [-pad, kernel - 1 - pad] of the pairs (for_each_stride2_vector)
    # and of the gradient's gather (gradient_row_stride2); odd lengths end in a partial vector
    (299, 2, 1, True),
    (300, 3, 0, False),
    (301, 4, 0, False),
    (300, 4, 1, True),
    (302, 4, 2, False),
    (300, 5, 1, False),
    (303, 6, 2, True),
    (300, 6, 3, False),    # taps by pairs again
])
@pytest.mark.parametrize("count_include_pad,divisor_override", [(True, None), (False, None), (True, 3)])
def test_average_rows_are_read_in_place(isa_engine, dtype, length, kernel, padding, ceil_mode, count_include_pad,
                                        divisor_override):
    """1-D average pooling at stride 2 reads long input rows in place, the windows at a row's
    ends one by one (kernels/pool_cpu.h, average_row_in_place), and its gradient gathers each
    input's shares (gradient_row): torch's averages and gradients exactly, by every divisor rule."""
    x = integer_tensor((2, 5, length), dtype, generator=torch.Generator().manual_seed(length + kernel))
    p = dict(spatial=1, kernel=[kernel], padding=[padding], ceil_mode=ceil_mode, count_include_pad=count_include_pad,
             divisor_override=divisor_override)
    ours = forward_backward(lambda t: F.avg_pool1d(t, kernel, 2, padding, ceil_mode, count_include_pad,
                                                   divisor_override), x, "contiguous")
    theirs = forward_backward(lambda t: _torch_avg(p, t, [2]), x, "contiguous")
    same(ours[0], theirs[0])  # sums of small integers in tap order, one division: exact
    if padding <= 2 and kernel - padding <= 4:  # gathered by pairs (gradient_row_stride2) in torch's order: exact
        same(ours[2], theirs[2])
    else:  # spread over the phased line: where three windows cover an input, in another order
        torch.testing.assert_close(ours[2], theirs[2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("sizes,kernel,stride,padding,ceil_mode", [
    ((9, 32), 3, 2, 1, False),         # rows of 32
    ((5, 112), 3, 2, 1, False),        # rows of 112
    ((4, 6, 32), 3, 2, 1, False),      # 3-D: rows of each output slice's summed input slices
    ((7, 16), 2, 2, 0, False),         # taps [0, 1]
    ((7, 16), 2, 2, 0, True),          # ceil_mode that adds no window
    ((9, 32), 3, (1, 2), 1, False),    # another stride along dim 0
    ((5, 32), 3, 2, 1, True),          # ceil_mode's 17th window: the phased copy
    ((5, 40), 3, 2, 1, False),         # 20 windows: not whole AVX2 or AVX-512 vectors (whole 4-lane ones)
])
@pytest.mark.parametrize("count_include_pad,divisor_override", [(True, None), (False, None), (True, 5)])
def test_whole_rows_of_sums_are_averaged_in_place(isa_engine, dtype, sizes, kernel, stride, padding, ceil_mode,
                                                  count_include_pad, divisor_override):
    """2-D and 3-D average pooling averages whole stride-2 rows of its row sums where they lie,
    their left padding zeros (kernels/pool_cpu.h, whole_stride2_rows): torch's averages exactly,
    by every divisor rule (bfloat16: its sums in float), with +-inf and NaN among the inputs, and
    its gradients."""
    x = integer_tensor((2, 3, *sizes), torch.float64, generator=torch.Generator().manual_seed(sum(sizes)))
    x[..., ::2, -1] = 1000
    x[..., 1::4, 5] = float("nan")
    x[..., 2::5, 0] = float("inf")
    x[..., 3::5, 1] = -float("inf")
    x = x.to(dtype)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    ours = forward_backward(lambda t: OURS_AVG[len(sizes)](t, *args), x, "contiguous")
    if dtype == torch.bfloat16:  # sums in float, as torch's (which has no 3-D form for it), then rounded once
        same(ours[0], TORCH_AVG[len(sizes)](x.float(), *args).to(dtype))
        return
    theirs = forward_backward(lambda t: TORCH_AVG[len(sizes)](t, *args), x, "contiguous")
    same(ours[0], theirs[0])  # sums of small integers, one division: exact
    torch.testing.assert_close(ours[2], theirs[2], equal_nan=True)


def guarded_input(values, before=False):
    """A copy of the tensor `values` whose last value is the last byte before a page that cannot
    be read (before=True: whose first value is the first byte after one): a kernel reading past
    (or before) the input faults."""
    page = mmap.PAGESIZE
    span = -(-values.nbytes // page) * page
    memory = mmap.mmap(-1, span + page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    start = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    guard = 0 if before else span  # the guard page's offset
    prot_none = 0  # <sys/mman.h>'s PROT_NONE, which mmap does not export
    assert ctypes.CDLL(None).mprotect(ctypes.c_void_p(start + guard), page, prot_none) == 0
    offset = page if before else span - values.nbytes
    guarded = torch.frombuffer(memory, dtype=values.dtype, count=values.numel(), offset=offset)
    guarded.copy_(values.flatten())
    return guarded.view(values.shape), memory


@pytest.mark.parametrize("length", [130, 4096])
def test_pooling_reads_nothing_past_its_input(isa_engine, length):
    """The row forms read whole vectors, at stride 2 one value past the last they keep: never
    past the end of the input (here the last value before an unreadable page)."""
    x, memory = guarded_input(integer_tensor((1, 1, length), torch.float32,
                                             generator=torch.Generator().manual_seed(length)))
    for ours, theirs in ((F.max_pool1d, tF.max_pool1d), (F.avg_pool1d, tF.avg_pool1d)):
        same(ours(x, 3, 2, 1), theirs(x.clone(), 3, 2, 1))
    same(F.max_pool1d(x, 3, 2, 1, return_indices=True)[1], tF.max_pool1d(x.clone(), 3, 2, 1, return_indices=True)[1])
    del x
    memory.close()


@pytest.mark.parametrize("sizes", [(32,), (4, 32), (2, 4, 32), (3, 112)])
def test_pooling_reads_nothing_before_its_input(isa_engine, sizes):
    """Rows read in place whole take their left padding as -inf, never the value before the row:
    here the input's first value is the first byte after an unreadable page."""
    x, memory = guarded_input(integer_tensor((1, 1, *sizes), torch.float32,
                                             generator=torch.Generator().manual_seed(len(sizes))), before=True)
    ours = OURS_MAX[len(sizes)]
    values, positions = TORCH_MAX[len(sizes)](x.clone(), 3, 2, 1, return_indices=True)
    same(ours(x, 3, 2, 1), values)  # inference: values alone
    for a, b in zip(ours(x, 3, 2, 1, return_indices=True), (values, positions)):
        same(a, b)
    same(ours(x.requires_grad_(), 3, 2, 1).detach(), values)  # for the gradient: tap codes
    del x
    memory.close()


@pytest.mark.parametrize("engine", [*ISA_ENGINES, CUDA])
@pytest.mark.parametrize("sizes,kernel,stride,padding,dilation", [
    ((9, 11), (3, 2), (2, 1), (1, 1), (1, 2)),
    ((5, 6, 7), (2, 3, 2), (1, 2, 2), (1, 1, 0), (2, 1, 1)),
])
@pytest.mark.parametrize("channels", [5, 37])
def test_channels_last_pooling_matches_torch(engine, sizes, kernel, stride, padding, dilation, channels):
    """Pooling a dense channels_last input of several channels (read in place by each engine:
    the CPU's channels_last forms, the element forms through PoolGeometry::cl_channels, the
    CUDA kernels): values, indices, gradients exactly torch's, results in channels_last. 37
    channels: whole vectors of every ISA copy (summed or compared in registers) and a tail."""
    p = dict(batch=2, channels=channels, sizes=sizes, unbatched=False, dtype=torch.float64, specials="ties")
    x = pool_input(p)
    fmt = torch.channels_last if len(sizes) == 2 else torch.channels_last_3d
    with cpu_engine(engine):
        args = (kernel, stride, padding, dilation, True)
        theirs = forward_backward(lambda t: TORCH_MAX[len(sizes)](t, *args, True), x, "contiguous", True)
        for grad_layout in ("contiguous", "channels_last"):  # the gradient's layout picks the backward's form
            same_max_pool(lambda t, indices: OURS_MAX[len(sizes)](t, *args, indices), theirs, x, "channels_last",
                          engine_device(engine), grad_layout)
        for include_pad, grad_layout in itertools.product((True, False), ("contiguous", "channels_last")):
            avg = lambda t, f: f[len(sizes)](t, kernel, stride, padding, True, include_pad)  # noqa: E731
            ours = forward_backward(lambda t: avg(t, OURS_AVG), x, "channels_last", device=engine_device(engine),
                                    grad_layout=grad_layout)
            theirs = forward_backward(lambda t: avg(t, TORCH_AVG), x, "contiguous")
            for a, b in zip(ours, theirs):
                if b is not None:
                    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        leaf = x.to(engine_device(engine)).contiguous(memory_format=fmt)
        assert OURS_MAX[len(sizes)](leaf, kernel, stride, padding, dilation).is_contiguous(memory_format=fmt)
        assert OURS_AVG[len(sizes)](leaf, kernel, stride, padding).is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("engine", ISA_ENGINES)
@pytest.mark.parametrize("dtype,channels", [(torch.float32, 133), (torch.float64, 69)])
@pytest.mark.parametrize("sizes,kernel,stride,padding", [
    ((9, 11), (3, 3), (2, 2), (1, 1)),
    ((5, 6, 7), (2, 3, 2), (1, 2, 2), (1, 1, 0)),
])
def test_channels_last_max_pool_gradient_of_many_channels(engine, dtype, channels, sizes, kernel, stride, padding):
    """channels_last max pooling's gradient, undilated, with at least kGatherMinVectors vectors of
    channels in every ISA copy and a tail: from tap codes, gathered per input position
    (max_pool_backward_cl_gather); from positions, scattered. Exactly torch's, ties included."""
    p = dict(batch=2, channels=channels, sizes=sizes, unbatched=False, dtype=dtype, specials="ties")
    x = pool_input(p)
    with cpu_engine(engine):
        args = (kernel, stride, padding, 1, True)
        theirs = forward_backward(lambda t: TORCH_MAX[len(sizes)](t, *args, True), x, "contiguous", True)
        same_max_pool(lambda t, indices: OURS_MAX[len(sizes)](t, *args, indices), theirs, x, "channels_last", "cpu",
                      "channels_last")


def torch_avg_accepts(p):
    """torch's avg_pool3d (alone) refuses inputs smaller than the kernel; convops pools them."""
    return p["spatial"] != 3 or all(s >= k for s, k in zip(p["sizes"], p["kernel"]))


def _torch_avg(p, t, stride):
    """torch's avg_pool1d has no divisor_override: run 1-D as 2-D with a unit dim then."""
    if p["spatial"] == 1 and p["divisor_override"] is not None:
        out = tF.avg_pool2d(t.unsqueeze(-2), (1, p["kernel"][0]), (1, (stride or p["kernel"])[0]),
                            (0, p["padding"][0]), p["ceil_mode"], p["count_include_pad"], p["divisor_override"])
        return out.squeeze(-2)
    extra = () if p["spatial"] == 1 else (p["divisor_override"],)
    return TORCH_AVG[p["spatial"]](t, p["kernel"], stride, p["padding"], p["ceil_mode"], p["count_include_pad"],
                                   *extra)


@pytest.mark.parametrize("engine", [*ISA_ENGINES, CUDA])
def test_avg_pool_matches_torch(engine):
    @settings(max_examples=EXAMPLES[engine])
    @given(pool_problems(is_max=False))
    def check(p):
        assume(torch_avg_accepts(p))
        x = pool_input(p)
        stride = None if p["stride_none"] else p["stride"]
        ours_fn = lambda t: OURS_AVG[p["spatial"]](t, p["kernel"], stride, p["padding"], p["ceil_mode"],  # noqa
                                                   p["count_include_pad"], p["divisor_override"])
        ours = forward_backward(ours_fn, x, p["layout"], device=engine_device(engine), grad_layout=p["grad_layout"])
        theirs = forward_backward(lambda t: _torch_avg(p, t, stride), x, "contiguous")
        # sums of small integers are exact; the division rounds the same way up to one ulp
        tol = 1e-6 if p["dtype"] == torch.float32 else 1e-12
        torch.testing.assert_close(ours[0], theirs[0], rtol=tol, atol=tol, equal_nan=True)
        torch.testing.assert_close(ours[2], theirs[2], rtol=tol, atol=tol, equal_nan=True)
        assert not torch.isnan(ours[0]).any() or p["specials"] == "nan" or p["specials"] == "inf"

    with cpu_engine(engine):
        check()


@pytest.mark.parametrize("sizes,kernel,stride,padding,ceil_mode", [
    ((30, 40), (3, 3), (2, 2), (1, 1), False),           # 15 output rows: blocks of 6, the last one short
    ((7, 9), (2, 3), (1, 3), (1, 1), True),              # stride 3: a block split into three phases
    ((6, 20), (1, 3), (1, 2), (0, 1), True),             # 1-D pooling in 2-D: each input row split as it is
    ((5, 8, 12), (3, 3, 3), (2, 2, 2), (1, 1, 1), True), # 3-D: each output slice sums its input slices first
    ((3, 6, 7), (2, 2, 2), (1, 2, 1), (1, 0, 1), False), # overlapping slices, a window along dim 0 of one slice
    ((4, 48, 48), (3, 2, 3), (2, 2, 2), (1, 1, 1), True), # slices past kAvgSlabValues: rows summed from the input
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_avg_pool_row_forms_match_torch(sizes, kernel, stride, padding, ceil_mode, dtype, isa_engine):
    """The CPU plane form of average pooling sums each output row's window rows (from a slab of
    summed input slices where the window spans dim 0 and the slices are small), splits blocks of
    these sums into phases at once and averages them row by row (kernels/pool_cpu.h,
    avg_pool_plane): against torch, with and without the padding counted and a divisor override."""
    p = dict(batch=2, channels=3, sizes=sizes, unbatched=False, dtype=dtype, specials="none")
    x = pool_input(p)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    for include_pad, divisor in ((True, None), (False, None), (True, 5)):
        args = (kernel, stride, padding, ceil_mode, include_pad, divisor)
        ours = forward_backward(lambda t: OURS_AVG[len(sizes)](t, *args), x, "contiguous")
        theirs = forward_backward(lambda t: TORCH_AVG[len(sizes)](t, *args), x, "contiguous")
        torch.testing.assert_close(ours[0], theirs[0], rtol=tol, atol=tol)
        torch.testing.assert_close(ours[2], theirs[2], rtol=tol, atol=tol)


@pytest.mark.parametrize("engine", [*ISA_ENGINES, CUDA])
def test_knet_pool_matches_torch(engine):
    @settings(max_examples=EXAMPLES[engine] // 2)
    @given(pool_problems(is_max=False))
    def check(p):
        assume(torch_avg_accepts(p))
        p = dict(p, unbatched=False)
        x = pool_input(p)
        stride = None if p["stride_none"] else p["stride"]
        for mode, torch_fn in ((0, lambda t: TORCH_MAX[p["spatial"]](t, p["kernel"], stride, p["padding"], 1,
                                                                       p["ceil_mode"])),
                               (1, lambda t: TORCH_AVG[p["spatial"]](t, p["kernel"], stride, p["padding"],
                                                                       p["ceil_mode"], True)),
                               (2, lambda t: TORCH_AVG[p["spatial"]](t, p["kernel"], stride, p["padding"],
                                                                       p["ceil_mode"], False))):
            names = {0: "max", 1: "avg_include_padding", 2: "avg_exclude_padding"}
            for m in (mode, names[mode]):
                ours = F.pool(x.to(engine_device(engine)), p["kernel"], stride, p["padding"], mode=m,
                              ceil_mode=p["ceil_mode"]).cpu()
                torch.testing.assert_close(ours, torch_fn(x), rtol=1e-6, atol=1e-6, equal_nan=True)

    with cpu_engine(engine):
        check()


@pytest.mark.parametrize("engine", [*ISA_ENGINES, CUDA])
@pytest.mark.parametrize("spatial", [1, 2, 3])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_global_avg_pool_matches_mean(engine, spatial, layout):
    with cpu_engine(engine):
        for batch, channels in ((0, 3), (1, 1), (3, 5)):
            x = integer_tensor((batch, channels, *[5, 4, 3][:spatial]), torch.float64)
            # against torch's mean on the CPU, sum / count as ours (torch's CUDA mean multiplies by
            # 1 / count: an ulp off)
            leaf = x.to(engine_device(engine), copy=True).requires_grad_(True)
            out = F.global_avg_pool(with_layout(leaf, layout))
            ref_leaf = x.clone().requires_grad_(True)
            ref = ref_leaf.mean(dim=list(range(2, 2 + spatial)))
            same(out.cpu(), ref)
            grad = integer_tensor(out.shape, out.dtype)
            out.backward(grad.to(out.device))
            ref.backward(grad)
            same(leaf.grad.cpu(), ref_leaf.grad)
            kept = F.global_avg_pool(x, keepdim=True)
            assert kept.shape == (batch, channels, *([1] * spatial))


@pytest.mark.parametrize("engine", ISA_ENGINES)
@pytest.mark.parametrize("positions", [(7, 7), (4, 4), (3,), (2, 9, 3)])
def test_global_avg_pool_float_planes_by_blocks(engine, positions):
    """Float planes go through plane_means a vector's worth at a time (their sums across lanes
    folded together, pool_cpu.h fold_row_sums): 37 planes (blocks and a partial last one) of
    49, 16 (whole vectors only), 3 (no whole vector) and 54 values, each plane its own mean."""
    x = torch.randn(37, 1, *positions, generator=torch.Generator().manual_seed(5)).view(1, 37, *positions)
    with cpu_engine(engine):
        out = F.global_avg_pool(x)
    ref = x.double().mean(dim=list(range(2, x.dim()))).float()
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_reduced_precision_pooling(dtype, spatial):
    x = torch.randn(2, 3, *([7] * spatial)).to(dtype)
    for ours, theirs in ((OURS_MAX[spatial], TORCH_MAX[spatial]), (OURS_AVG[spatial], TORCH_AVG[spatial])):
        out = ours(x, 3, 2, 1)
        assert out.dtype == dtype
        ref = theirs(x.float(), 3, 2, 1)
        torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)
    out = F.global_avg_pool(x)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), x.float().mean(dim=list(range(2, 2 + spatial))), rtol=1e-2, atol=1e-2)


def test_max_pool_indices_feed_max_unpool():
    x = torch.randn(2, 3, 8, 8)
    out, indices = F.max_pool2d(x, 2, return_indices=True)
    restored = tF.max_unpool2d(out, indices, 2)
    assert torch.equal(restored, tF.max_unpool2d(*tF.max_pool2d(x, 2, return_indices=True), 2))
