"""The two copies of the CPU forms (kernels/cpu_isa.h): baseline x86-64 and AVX2, picked at
run time. Their results are checked against torch by the differential and gradcheck tests
(engines 'row' and 'row-baseline'); here: the switch, bitwise agreement of the copies, and
that no AVX instruction leaks out of the AVX2 copy into code every CPU runs."""
import os
import re
import shutil
import subprocess

import pytest
import torch

import convops
import convops.functional as F
from conftest import cpu_engine


def _cpu_has_avx2():
    try:
        with open("/proc/cpuinfo") as f:
            return re.search(r"^flags\s*:.*\bavx2\b", f.read(), re.M) is not None
    except OSError:
        return False


HAS_AVX2 = _cpu_has_avx2() and os.uname().machine == "x86_64"


def test_default_is_the_best_copy_the_cpu_has():
    with cpu_engine("row"):
        assert convops._C.cpu_isa() == ("avx2" if HAS_AVX2 else "baseline")
    with cpu_engine("row-baseline"):
        assert convops._C.cpu_isa() == "baseline"


def test_unknown_isa_is_a_clear_error():
    old = os.environ.get("CONVOPS_CPU_ISA")
    os.environ["CONVOPS_CPU_ISA"] = "sse9"
    try:
        with pytest.raises(RuntimeError, match="CONVOPS_CPU_ISA to be auto, baseline or avx2, got 'sse9'"):
            F.max_pool2d(torch.randn(1, 1, 4, 4), 2)
        with pytest.raises(RuntimeError, match="CONVOPS_CPU_ISA"):
            convops._C.cpu_isa()
        os.environ["CONVOPS_CPU_ISA"] = "avx2"
        if HAS_AVX2:
            assert convops._C.cpu_isa() == "avx2"
        else:
            with pytest.raises(RuntimeError, match="has no AVX2"):
                convops._C.cpu_isa()
    finally:
        if old is None:
            del os.environ["CONVOPS_CPU_ISA"]
        else:
            os.environ["CONVOPS_CPU_ISA"] = old


def _run_all_forms(x, w):
    """Every CPU form with an AVX2 copy, NCHW and channels_last, forward and backward."""
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        leaf = x.detach().contiguous(memory_format=layout).requires_grad_()
        outs = [F.max_pool2d(leaf, 3, 2, 1), F.avg_pool2d(leaf, 3, 2, 1), F.avg_pool2d(leaf, (2, 3), 1, (1, 0)),
                F.max_pool2d(leaf, 2, dilation=2)]
        sum(o.sum() for o in outs).backward()
        results += [o.detach() for o in outs] + [leaf.grad]
    xd = x.detach().clone().requires_grad_()
    wd = w.clone().requires_grad_()
    out = F.conv2d(xd, wd, padding=1, groups=x.shape[1])
    out.backward(torch.ones_like(out))
    return results + [out.detach(), xd.grad]


@pytest.mark.skipif(not HAS_AVX2, reason="needs a CPU with AVX2")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_avx2_and_baseline_copies_agree_bitwise(dtype):
    """Same arithmetic in the same order (no FMA contraction): the same bits. The depthwise
    weight gradient and the global average are left out of the bitwise check: their
    vectorised reductions add in another order."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 23, 37, generator=gen, dtype=dtype)
    w = torch.randn(16, 1, 3, 3, generator=gen, dtype=dtype)
    with cpu_engine("row"):
        assert convops._C.cpu_isa() == "avx2"
        fast = _run_all_forms(x, w)
    with cpu_engine("row-baseline"):
        base = _run_all_forms(x, w)
    for a, b in zip(fast, base):
        assert torch.equal(a, b)
    with cpu_engine("row"):
        fast_mean = F.global_avg_pool(x)
    with cpu_engine("row-baseline"):
        torch.testing.assert_close(F.global_avg_pool(x), fast_mean)


@pytest.mark.skipif(shutil.which("objdump") is None or os.uname().machine != "x86_64", reason="needs objdump, x86-64")
def test_no_avx_instruction_outside_the_avx2_copy():
    """The baseline extension must run on any x86-64: a VEX-encoded instruction anywhere but in
    the AVX2 copy (say an inline function of a header merged from the AVX2 unit) would crash it."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", convops._C.__file__],
                             capture_output=True, text=True, check=True).stdout
    offenders, function = set(), None
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            function = header.group(1)
        elif re.match(r"^\s+[0-9a-f]+:\s+v[a-z]", line) and "avx2" not in function:
            offenders.add(function)
    assert not offenders, sorted(offenders)[:5]
    assert "convops::kernels::avx2::" in listing
