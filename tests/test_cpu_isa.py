"""The copies of the CPU forms (kernels/cpu_isa.h): baseline x86-64, AVX2 and AVX-512,
picked at run time. Their results are checked against torch by the differential and
gradcheck tests (engines 'row': the best copy, and 'row-baseline'); here: the switch,
bitwise agreement of every copy with the baseline, and that no instruction leaks out of
a copy into code a lesser CPU runs."""
import os
import re
import shutil
import subprocess

import pytest
import torch

import convops
import convops.functional as F
from conftest import _env, cpu_engine


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"^flags\s*:(.*)$", f.read(), re.M)
    except OSError:
        return set()
    return set(found.group(1).split()) if found and os.uname().machine == "x86_64" else set()


FLAGS = _cpu_flags()
HAS_AVX2 = {"avx2", "fma"} <= FLAGS
HAS_AVX512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "fma"} <= FLAGS
COPIES = [isa for isa, present in (("avx2", HAS_AVX2), ("avx512", HAS_AVX512)) if present]
BEST = COPIES[-1] if COPIES else "baseline"


def test_default_is_the_best_copy_the_cpu_has():
    with cpu_engine("row"):
        assert convops._C.cpu_isa() == BEST
    with cpu_engine("row-baseline"):
        assert convops._C.cpu_isa() == "baseline"


def test_unknown_isa_is_a_clear_error():
    with _env("CONVOPS_CPU_ISA", "sse9"):
        with pytest.raises(RuntimeError, match="CONVOPS_CPU_ISA to be auto, baseline, avx2 or avx512, got 'sse9'"):
            F.max_pool2d(torch.randn(1, 1, 4, 4), 2)
        with pytest.raises(RuntimeError, match="CONVOPS_CPU_ISA"):
            convops._C.cpu_isa()


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_asking_for_a_copy_the_cpu_lacks_is_a_clear_error(isa):
    with _env("CONVOPS_CPU_ISA", isa):
        if isa in COPIES:
            assert convops._C.cpu_isa() == isa
        else:
            with pytest.raises(RuntimeError, match=f"CONVOPS_CPU_ISA={isa} but this CPU .* runs at most"):
                F.max_pool2d(torch.randn(1, 1, 4, 4), 2)


def _run_all_forms(x, w):
    """Every CPU form with an AVX2 copy, NCHW and channels_last, forward and backward."""
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        leaf = x.detach().contiguous(memory_format=layout).requires_grad_()
        outs = [F.max_pool2d(leaf, 3, 2, 1), F.avg_pool2d(leaf, 3, 2, 1), F.avg_pool2d(leaf, (2, 3), 1, (1, 0)),
                F.max_pool2d(leaf, 2, dilation=2)]
        sum(o.sum() for o in outs).backward()
        results += [o.detach() for o in outs] + [leaf.grad]
    # 13 channels: channels_last pooling's partial vector (masked loads and stores) in every copy
    odd = x.detach()[:, :13].contiguous(memory_format=torch.channels_last)
    results += [*F.max_pool2d(odd, 3, 2, 1, return_indices=True), F.avg_pool2d(odd, 3, 2, 1)]
    xd = x.detach().clone().requires_grad_()
    wd = w.clone().requires_grad_()
    out = F.conv2d(xd, wd, padding=1, groups=x.shape[1])
    out.backward(torch.ones_like(out))
    results += [out.detach(), xd.grad]
    # The direct forms: LeNet-like (one vector of 16 channels, or two of 8), grouped, strided,
    # and 2 input channels per group (the input gradient vectorised over positions).
    for w_shape, kwargs in (((16, 16, 5, 5), {}), ((24, 4, 3, 3), dict(stride=(1, 2), padding=1, groups=4)),
                            ((16, 2, 3, 3), dict(padding=2, dilation=2, groups=8))):
        xd = x.detach().clone().requires_grad_()
        wd = torch.linspace(-1, 1, torch.Size(w_shape).numel(), dtype=x.dtype).view(w_shape).requires_grad_()
        out = F.conv2d(xd, wd, **kwargs)
        out.backward(torch.cos(out.detach()))
        results += [out.detach(), xd.grad, wd.grad]
    # A group wider than 64 channels (direct too: its weights stay in cache), several passes
    # over the channel vectors; dilated, so not by Winograd's forms.
    xw = x.detach().repeat(1, 8, 1, 1).requires_grad_()
    ww = torch.linspace(-1, 1, 72 * 128 * 9, dtype=x.dtype).view(72, 128, 3, 3)
    out = F.conv2d(xw, ww, padding=2, dilation=2)
    out.backward(torch.cos(out.detach()))
    results += [out.detach(), xw.grad]
    # Small padded images side by side (a pass of images at one output position at a time).
    xs = x.detach().flatten()[:8 * 16 * 16].view(8, 16, 4, 4).clone().requires_grad_()
    ws = torch.linspace(-1, 1, 40 * 16 * 9, dtype=x.dtype).view(40, 16, 3, 3)
    out = F.conv2d(xs, ws, torch.linspace(-1, 1, 40, dtype=x.dtype), padding=1)
    out.backward(torch.cos(out.detach()))
    results += [out.detach(), xs.grad]
    # Winograd's F(2x2, 3x3) forms (3x3 at unit stride, 32 channels and more per group):
    # forward with bias and input gradient, odd outputs.
    xw = x.detach().repeat(1, 2, 1, 1).requires_grad_()
    ww = torch.linspace(-1, 1, 40 * 32 * 9, dtype=x.dtype).view(40, 32, 3, 3)
    out = F.conv2d(xw, ww, torch.linspace(-1, 1, 40, dtype=x.dtype))
    out.backward(torch.cos(out.detach()))
    results += [out.detach(), xw.grad]
    # The GEMM forms (every copy runs them: CONVOPS_GEMM=own below): a 1x1 convolution (its
    # three products) and a strided transposed one.
    for fn, w_shape, kwargs in ((F.conv2d, (20, 16, 1, 1), {}),
                                (F.conv_transpose2d, (16, 6, 4, 4), dict(stride=2, padding=1))):
        xd = x.detach().clone().requires_grad_()
        wd = torch.linspace(-1, 1, torch.Size(w_shape).numel(), dtype=x.dtype).view(w_shape).requires_grad_()
        out = fn(xd, wd, **kwargs)
        out.backward(torch.cos(out.detach()))
        results += [out.detach(), xd.grad, wd.grad]
    # channels_last arguments, moved to NCHW and back by the transposing copies (whole and
    # partial tiles: 851 positions by 16 channels, 25 taps by 16, 20 channels).
    xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    wc = torch.linspace(-1, 1, 20 * 16 * 25, dtype=x.dtype).view(20, 16, 5, 5)
    wc = wc.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = F.conv2d(xc, wc, padding=2)
    out.backward(torch.cos(out.detach()))
    results += [out.detach(), xc.grad, wc.grad]
    return results


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_copy_agrees_with_the_baseline_bitwise(isa, dtype):
    """Same arithmetic in the same order (no FMA contraction; the direct convolution and GEMM
    forms fuse by std::fma, rounded once in every copy): the same bits. The depthwise
    weight gradient and the global average are left out of the bitwise check: their
    vectorised reductions add in another order."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 23, 37, generator=gen, dtype=dtype)
    w = torch.randn(16, 1, 3, 3, generator=gen, dtype=dtype)
    if isa not in COPIES:
        pytest.skip(f"this CPU has no {isa}")
    with cpu_engine("row"), _env("CONVOPS_CPU_ISA", isa), _env("CONVOPS_GEMM", "own"):
        assert convops._C.cpu_isa() == isa
        fast = _run_all_forms(x, w)
    with cpu_engine("row-baseline"), _env("CONVOPS_GEMM", "own"):
        base = _run_all_forms(x, w)
    for a, b in zip(fast, base):
        assert torch.equal(a, b)
    with cpu_engine("row"), _env("CONVOPS_CPU_ISA", isa):
        fast_mean = F.global_avg_pool(x)
    with cpu_engine("row-baseline"):
        torch.testing.assert_close(F.global_avg_pool(x), fast_mean)


# Instructions only AVX-512 has: EVEX registers (zmm, the upper 16 xmm/ymm, mask registers k1-k7).
EVEX = re.compile(r"%zmm|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|%k[1-7]\b")
# The code of each copy: its namespace, and its cpu_copy<CpuIsa::...> table getter.
COPY_OF_FUNCTION = (("avx512::", "avx512"), ("CpuIsa)2,", "avx512"), ("avx2::", "avx2"), ("CpuIsa)1,", "avx2"))


@pytest.mark.skipif(shutil.which("objdump") is None or os.uname().machine != "x86_64", reason="needs objdump, x86-64")
def test_no_instruction_leaks_out_of_its_copy():
    """The baseline extension must run on any x86-64 and the AVX2 copy on any AVX2 CPU: a
    VEX-encoded instruction anywhere but in a copy (say an inline function of a header merged
    from a copy's unit), or an EVEX one anywhere but in the AVX-512 copy, would crash them."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", convops._C.__file__],
                             capture_output=True, text=True, check=True).stdout
    offenders, copy, function = set(), None, None
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            function = header.group(1)
            copy = next((isa for mark, isa in COPY_OF_FUNCTION if mark in function), None)
        elif re.match(r"^\s+[0-9a-f]+:\s+v[a-z]", line):
            if copy is None or (copy == "avx2" and EVEX.search(line)):
                offenders.add(function)
    assert not offenders, sorted(offenders)[:5]
    assert "convops::kernels::avx2::" in listing and "convops::kernels::avx512::" in listing
    assert "%zmm" in listing  # the AVX-512 copy runs 512-bit vectors
