"""CUDA: the build registered a CUDA kernel for every op whenever it built with
CUDA (checked without a GPU), and, on a GPU, CUDA matches the CPU and passes gradcheck."""
import json
import os
import shutil

import pytest
import torch
from torch.autograd import gradcheck

import convops
import convops.check as check
import convops.functional as F
from convops._ops import OP_NAMES
from conftest import cuda_only

BUILD_INFO = json.load(open(os.path.join(os.path.dirname(convops.__file__), "_build_info.json")))


def has_kernel(op, key):
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"convops::{op}", key)


@pytest.mark.parametrize("op", OP_NAMES)
def test_every_op_has_a_cpu_kernel(op):
    assert has_kernel(op, "CPU")


@pytest.mark.parametrize("op", OP_NAMES)
def test_cuda_build_registered_every_op(op):
    assert has_kernel(op, "CUDA") == BUILD_INFO["cuda"], (op, BUILD_INFO)


def test_a_present_toolkit_means_a_cuda_build():
    """A machine with nvcc (as CI's) must not silently build CPU-only."""
    if os.environ.get("CONVOPS_CUDA") == "0" or shutil.which("nvcc") is None or torch.version.cuda is None:
        pytest.skip("CPU-only build requested or no CUDA toolkit here")
    assert BUILD_INFO["cuda"], BUILD_INFO


CONFIGS = [  # (spatial, sizes, kernel, stride, padding, dilation, groups)
    (1, (33,), (5,), (2,), (2,), (1,), 1),
    (2, (17, 15), (3, 3), (1, 2), (1, 1), (2, 1), 2),
    (2, (14, 14), (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (3, (7, 8, 6), (3, 2, 3), (1, 1, 2), (1, 0, 1), (1, 2, 1), 3),
]


def _run_family(device, dtype, config, x, w, b):
    """Every op of the family, forward and backward, on one device; results as float32 on the CPU."""
    spatial, sizes, kernel, stride, padding, dilation, groups = config
    # copies, so the float64 run on the CPU cannot make the caller's tensors require grad
    xs, ws, bs = (t.to(device, dtype, copy=True).requires_grad_() for t in (x, w, b))
    out = F.conv(xs, ws, bs, stride, padding, dilation, groups)
    out.backward(torch.ones_like(out))
    # the same weight read as a transposed convolution's: out_channels -> in_channels
    up = torch.ops.convops.conv_transpose(out.detach(), ws.detach(), None, list(stride), list(padding),
                                          [0] * spatial, list(dilation), groups)
    cols = F.unfold(xs.detach(), kernel, dilation, padding, stride)
    back = F.fold(cols, sizes, kernel, dilation, padding, stride)
    return [t.float().cpu() for t in (out, xs.grad, ws.grad, bs.grad, up, cols, back)]


@cuda_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("config", CONFIGS)
def test_cuda_matches_cpu(config, dtype):
    spatial, sizes, kernel, stride, padding, dilation, groups = config
    x = torch.randn(3, 2 * groups, *sizes, dtype=torch.float64)
    w = torch.randn(3 * groups, 2, *kernel, dtype=torch.float64)
    b = torch.randn(3 * groups, dtype=torch.float64)
    tol = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    cpu = _run_family("cpu", dtype, config, x, w, b)
    cuda = _run_family("cuda", dtype, config, x, w, b)
    for a, c in zip(cpu, cuda):
        torch.testing.assert_close(c, a, rtol=tol, atol=tol * 10)


@cuda_only
@pytest.mark.parametrize("config", CONFIGS)
def test_cuda_gradcheck(config):
    spatial, sizes, kernel, stride, padding, dilation, groups = config
    small = tuple(min(s, 6) for s in sizes)
    x = torch.randn(2, groups, *small, dtype=torch.float64, device="cuda", requires_grad=True)
    w = torch.randn(groups, 1, *kernel, dtype=torch.float64, device="cuda", requires_grad=True)
    fn = lambda x, w: F.conv(x, w, None, stride, padding, dilation, groups)  # noqa: E731
    assert gradcheck(fn, (x, w), atol=1e-7, rtol=1e-5)
    fn = lambda x: F.unfold(x, kernel, dilation, padding, stride)  # noqa: E731
    assert gradcheck(fn, (x,), atol=1e-7, rtol=1e-5)


POOL_CONFIGS = [  # sizes, kernel, stride, padding, dilation, ceil_mode
    ((31,), (3,), (2,), (1,), (2,), True),
    ((17, 15), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((9, 8, 7), (2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 2, 1), True),
]


def _run_pools(device, dtype, config, x, layout):
    sizes, kernel, stride, padding, dilation, ceil_mode = config
    xs = x.to(device, dtype, copy=True)
    if layout == "channels_last" and xs.dim() in (4, 5):
        xs = xs.contiguous(memory_format=torch.channels_last if xs.dim() == 4 else torch.channels_last_3d)
    xs.requires_grad_()
    out, idx = torch.ops.convops.max_pool(xs, list(kernel), list(stride), list(padding), list(dilation), ceil_mode)
    avg = torch.ops.convops.avg_pool(xs, list(kernel), list(stride), list(padding), ceil_mode, False, None)
    glob = F.global_avg_pool(xs)
    (out.sum() + (avg * 2).sum() + (glob * 3).sum()).backward()
    return [t.float().cpu() for t in (out, avg, glob, xs.grad)] + [idx.cpu()]


@cuda_only
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("config", POOL_CONFIGS)
def test_cuda_pooling_matches_cpu(config, dtype, layout):
    x = (torch.randperm(3 * 4 * torch.Size(config[0]).numel()).double() / 7).view(3, 4, *config[0])
    tol = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    for a, c in zip(_run_pools("cpu", dtype, config, x, layout), _run_pools("cuda", dtype, config, x, layout)):
        if a.dtype == torch.int64:
            assert torch.equal(a, c)
        else:
            torch.testing.assert_close(c, a, rtol=tol, atol=tol * 10)


@cuda_only
@pytest.mark.parametrize("config", POOL_CONFIGS)
def test_cuda_pooling_gradcheck(config):
    sizes, kernel, stride, padding, dilation, ceil_mode = config
    small = tuple(min(s, 7) for s in sizes)
    x = (torch.randperm(2 * 2 * torch.Size(small).numel()).double() / 7).view(2, 2, *small).cuda().requires_grad_()
    assert gradcheck(lambda x: torch.ops.convops.max_pool(x, list(kernel), list(stride), list(padding),
                                                          list(dilation), ceil_mode)[0], (x,), atol=1e-7, rtol=1e-5)
    assert gradcheck(lambda x: torch.ops.convops.avg_pool(x, list(kernel), list(stride), list(padding), ceil_mode,
                                                          True, None), (x,), atol=1e-7, rtol=1e-5)


@cuda_only
def test_check_passes_on_cuda(capsys):
    """`python -m convops check` on the GPU: every op against torch's CUDA ops, gradcheck and
    gradgradcheck, opcheck."""
    assert check.run(["cuda"])
    assert "convops check: PASS" in capsys.readouterr().out
