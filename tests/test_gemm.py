"""convops' own GEMM forms (kernels/gemm_cpu.h, chosen by ops/gemm.h), through the
convolutions whose products they compute: a 1x1 convolution's forward is W @ x (the
image as B), its input gradient W^T @ dy (A transposed: row stride 1), its weight gradient
dy @ x^T (B transposed), summed over the images (beta 1 after the first). The shapes cross every block edge: k past one 256-deep slice,
m past a 144-row block and not a multiple of the tile rows, n past a 3072-column block and
not a multiple of the tile columns. The 'columns' engine runs the whole convolution suite
through these forms too (conftest.py)."""
import re

import pytest
import torch
import torch.nn.functional as tF

import convops
import convops.functional as F
from conftest import _env, cpu_engine


def _conv_both(x, w, stride=1, padding=0, transpose=False, layout=torch.contiguous_format):
    """Output and gradients of convops (own GEMM forms) and torch, float64; x and w in `layout`."""
    results = []
    for fn in ((F.conv_transpose2d, tF.conv_transpose2d) if transpose else (F.conv2d, tF.conv2d)):
        xl = x.contiguous(memory_format=layout).requires_grad_()
        wl = w.contiguous(memory_format=layout).requires_grad_()
        out = fn(xl, wl, stride=stride, padding=padding)
        out.backward(torch.cos(out.detach()))
        results.append((out.detach(), xl.grad, wl.grad))
    return results


# (batch, in channels, out channels, height, width): 1x1 convolutions, so the GEMM is the
# image itself: m = out channels, k = in channels, n = height * width.
SHAPES = [
    (1, 300, 150, 4, 800),   # k 300: two slices; m 150: two row blocks, a partial tile; n 3200: two column blocks
    (3, 7, 5, 3, 11),        # one partial tile, k of 7
    (2, 256, 12, 1, 64),     # k exactly one slice, whole tiles
    (5, 33, 40, 9, 9),       # n 81 < 100: images side by side (the folded path), beta over chunks
    (2, 300, 40, 7, 10),     # k 300 against a B that packs whole: each row block runs both slices
]


# channels_last: the product of the position rows (N*H*W, C) and W^T, whose A (the rows, or
# the output gradient's in the input gradient) the forms read in place: whole tiles from A
# itself, each row block's partial last tile packed.
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", SHAPES)
def test_gemm_forms_match_torch(shape, layout, num_threads):
    n, c, o, h, w = shape
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(o, c, 1, 1, generator=gen, dtype=torch.float64)
    for threads in (1, 2):
        num_threads(threads)
        with cpu_engine("row"), _env("CONVOPS_GEMM", "own"):
            ours, theirs = _conv_both(x, weight, layout=layout)
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-10)


def test_gemm_forms_transposed_convolution_matches_torch():
    """Stride 2, kernel 4: the input gradient's columns (W^T @ dy) and col2im, as in
    conv_transpose2d's forward."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 20, 9, 13, generator=gen, dtype=torch.float64)
    w = torch.randn(20, 14, 4, 4, generator=gen, dtype=torch.float64)
    with cpu_engine("row"), _env("CONVOPS_GEMM", "own"):
        ours, theirs = _conv_both(x, w, stride=2, padding=1, transpose=True)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-10)


def test_gemm_forms_give_the_same_bits_at_any_thread_count(num_threads):
    """Threads take whole blocks of output columns or rows, each summed in the same order."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(1, 300, 40, 80, generator=gen)
    w = torch.randn(150, 300, 1, 1, generator=gen)
    runs = []
    for threads in (1, 2):
        num_threads(threads)
        with cpu_engine("row"), _env("CONVOPS_GEMM", "own"):
            runs.append(_conv_both(x, w)[0])
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_auto_runs_the_forms_on_many_position_rows():
    """"auto" gives the forms the products whose A is many contiguous rows against a small B
    (ops/gemm.cpp, rows_read_in_place): a channels_last 1x1 convolution's forward and input
    gradient have the forms' bits on any CPU (in double, where MKL's differ: its float sums
    here came out the same)."""
    dtype = torch.float64
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(2, 96, 32, 32, generator=gen, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(40, 96, 1, 1, generator=gen, dtype=dtype).contiguous(memory_format=torch.channels_last)
    dy = torch.randn(2, 40, 32, 32, generator=gen, dtype=dtype).contiguous(memory_format=torch.channels_last)

    def run(asked):
        xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
        with cpu_engine("row"), _env("CONVOPS_GEMM", asked):
            out = F.conv2d(xl, wl)
            out.backward(dy)
        return out.detach(), xl.grad

    auto, own, aten = run("auto"), run("own"), run("aten")
    for a, b, c in zip(auto, own, aten):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c)


def test_unknown_gemm_choice_is_a_clear_error():
    x, w = torch.randn(1, 3, 4, 4), torch.randn(2, 3, 1, 1)
    with _env("CONVOPS_GEMM", "blas"):
        with pytest.raises(RuntimeError, match="expected CONVOPS_GEMM to be auto, own or aten, got 'blas'"):
            F.conv2d(x, w)
        with pytest.raises(RuntimeError, match="CONVOPS_GEMM"):
            convops._C.cpu_gemm()


def test_the_gemm_choice_is_reported():
    """auto: convops' own where MKL would not use AVX-512 and the CPU runs it at full width (AMD,
    family 26 or later: Zen 5), else ATen."""
    with cpu_engine("row"):
        for asked in ("own", "aten"):
            with _env("CONVOPS_GEMM", asked):
                assert convops._C.cpu_gemm() == asked
        with _env("CONVOPS_GEMM", "auto"):
            with open("/proc/cpuinfo") as f:
                info = f.read()
            amd = "AuthenticAMD" in info
            family = int(re.search(r"^cpu family\s*:\s*(\d+)", info, re.M).group(1)) if amd else 0
            expected = "own" if amd and family >= 26 and convops._C.cpu_isa() == "avx512" else "aten"
            assert convops._C.cpu_gemm() == expected
    with cpu_engine("element"), _env("CONVOPS_GEMM", "own"):
        assert convops._C.cpu_gemm() == "aten"  # the element engine multiplies as the GPU does: ATen


def test_aten_choice_still_runs_atens_gemm():
    gen = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 5, 6, 6, generator=gen), torch.randn(4, 5, 1, 1, generator=gen)
    with cpu_engine("row"), _env("CONVOPS_GEMM", "aten"):
        torch.testing.assert_close(F.conv2d(x, w), tF.conv2d(x, w))
