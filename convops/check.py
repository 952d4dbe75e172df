"""`python -m convops check`: verify an install on this machine's devices.

For every op: the forward and its gradients against torch.nn.functional in
float64, gradcheck and gradgradcheck with tight tolerances, and
torch.library.opcheck; prints a table and a verdict, and returns 1 on any failure."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as tF
from torch.autograd import gradcheck, gradgradcheck

from . import _C
from . import functional as F

ops = torch.ops.convops
TOLERANCE = 1e-9  # float64 against torch
GRADCHECK = dict(atol=1e-7, rtol=1e-5)


@dataclass
class Case:
    name: str
    ours: Callable
    theirs: Callable
    shapes: tuple  # shapes of the tensor arguments (float64, random)
    distinct: bool = False  # values far apart (max pooling: no argmax flips inside gradcheck's step)


def _flip(w):
    return w.flip(list(range(2, w.dim())))


def _unfold_via_conv(x, kernel, dilation, padding, stride):
    """im2col as a convolution with one-hot kernels: an independent route for 1-D and 3-D."""
    k = math.prod(kernel)
    eye = torch.eye(k, dtype=x.dtype, device=x.device).view(k, 1, *kernel)
    c = x.shape[1]
    conv = {1: tF.conv1d, 2: tF.conv2d, 3: tF.conv3d}[len(kernel)]
    cols = conv(x, eye.repeat(c, 1, *([1] * len(kernel))), None, stride, padding, dilation, groups=c)
    return cols.reshape(x.shape[0], c * k, -1)


def _cases_for(d: int, conv, conv_t) -> list[Case]:
    size = {1: (11,), 2: (7, 6), 3: (4, 3, 4)}[d]
    k = {1: (3,), 2: (3, 2), 3: (2, 2, 2)}[d]
    ours, ours_t = getattr(F, f"conv{d}d"), getattr(F, f"conv_transpose{d}d")
    s, p, dl, op = (2,) * d, (1,) * d, (1,) * (d - 1) + (2,), (1,) * d
    zeros_like_input = (2, 3, *size)
    cols_shape = tuple(F.unfold(torch.zeros(zeros_like_input), k, dl, p, s).shape)

    def fold_reference(c):
        # fold is the adjoint of unfold: its result is unfold's vector-Jacobian product
        x = torch.zeros(zeros_like_input, dtype=c.dtype, device=c.device)
        return torch.autograd.functional.vjp(lambda x: _unfold_via_conv(x, k, dl, p, s), x, c, create_graph=True)[1]

    return [
        Case(f"conv{d}d", lambda x, w, b: ours(x, w, b, s, p, dl, 2),
             lambda x, w, b: conv(x, w, b, s, p, dl, 2), ((2, 4, *size), (6, 2, *k), (6,))),
        Case(f"conv{d}d mode=convolution", lambda x, w, b: ours(x, w, b, 1, p, 1, 1, mode="convolution"),
             lambda x, w, b: conv(x, _flip(w), b, 1, p, 1, 1), ((2, 3, *size), (4, 3, *k), (4,))),
        Case(f"conv_transpose{d}d", lambda x, w, b: ours_t(x, w, b, s, p, op, 2, dl),
             lambda x, w, b: conv_t(x, w, b, s, p, op, 2, dl), ((2, 4, *size), (4, 3, *k), (6,))),
        Case(f"unfold {d}-D", lambda x: F.unfold(x, k, dl, p, s), lambda x: _unfold_via_conv(x, k, dl, p, s),
             (zeros_like_input,)),
        Case(f"fold {d}-D", lambda c: F.fold(c, size, k, dl, p, s), fold_reference, (cols_shape,)),
    ]


def _pool_cases_for(d: int) -> list[Case]:
    size = {1: (11,), 2: (7, 8), 3: (5, 4, 5)}[d]
    k, s, p, dl = (3,) * d, (2,) * d, (1,) * d, (1,) * (d - 1) + (2,)
    ours_max, ours_avg = getattr(F, f"max_pool{d}d"), getattr(F, f"avg_pool{d}d")
    torch_max, torch_avg = getattr(tF, f"max_pool{d}d"), getattr(tF, f"avg_pool{d}d")
    shape = ((2, 3, *size),)
    return [
        Case(f"max_pool{d}d ceil_mode", lambda x: ours_max(x, k, s, p, dl, ceil_mode=True),
             lambda x: torch_max(x, k, s, p, dl, ceil_mode=True), shape, distinct=True),
        Case(f"avg_pool{d}d count_include_pad", lambda x: ours_avg(x, k, s, p, ceil_mode=True),
             lambda x: torch_avg(x, k, s, p, ceil_mode=True), shape),
        Case(f"avg_pool{d}d exclude padding", lambda x: ours_avg(x, k, s, p, count_include_pad=False),
             lambda x: torch_avg(x, k, s, p, count_include_pad=False), shape),
        Case(f"pool{d}d mode=max", lambda x: F.pool(x, 2), lambda x: torch_max(x, 2), shape, distinct=True),
        Case(f"global_avg_pool {d}-D", lambda x: F.global_avg_pool(x), lambda x: x.mean(dim=list(range(2, 2 + d))),
             shape),
    ]


def cases() -> list[Case]:
    return (_cases_for(1, tF.conv1d, tF.conv_transpose1d) + _cases_for(2, tF.conv2d, tF.conv_transpose2d)
            + _cases_for(3, tF.conv3d, tF.conv_transpose3d)
            + _pool_cases_for(1) + _pool_cases_for(2) + _pool_cases_for(3))


def opcheck_cases(device):
    def r(*shape):
        return torch.randn(*shape, dtype=torch.float64, device=device, requires_grad=True)
    x, w, b = r(2, 4, 6, 5), r(6, 2, 3, 3), r(6)
    p = ([2, 1], [1, 1], [1, 2], 2)
    dy = r(*ops.conv(x, w, b, *p).shape)
    win = ([2, 3], [1, 1], [1, 0], [1, 2])
    max_win = ([3, 2], [2, 1], [1, 1], [1, 2], True)
    avg_win = ([3, 2], [2, 1], [1, 1], True, False, None)
    pooled, indices = ops.max_pool(x, *max_win)
    return [
        ("conv", ops.conv.default, (x, w, b, *p)),
        ("conv_backward_input", ops.conv_backward_input.default, (dy, w, list(x.shape), *p)),
        ("conv_backward_weight", ops.conv_backward_weight.default, (dy, x, list(w.shape), *p)),
        ("conv_transpose", ops.conv_transpose.default, (x, r(4, 3, 3, 3), r(6), [2, 1], [1, 1], [1, 0], [1, 1], 2)),
        ("im2col", ops.im2col.default, (x, *win)),
        ("col2im", ops.col2im.default, (r(*ops.im2col(x, *win).shape), [6, 5], *win)),
        ("max_pool", ops.max_pool.default, (x, *max_win)),
        ("max_pool_backward", ops.max_pool_backward.default, (r(*pooled.shape), indices, list(x.shape), *max_win)),
        ("max_pool tap_indices", ops.max_pool.default, (x, *max_win, True, True)),
        ("max_pool_backward tap_indices", ops.max_pool_backward.default,
         (r(*pooled.shape), ops.max_pool(x, *max_win, True, True)[1], list(x.shape), *max_win)),
        ("avg_pool", ops.avg_pool.default, (x, *avg_win)),
        ("avg_pool_backward", ops.avg_pool_backward.default,
         (r(*ops.avg_pool(x, *avg_win).shape), list(x.shape), *avg_win)),
        ("global_avg_pool", ops.global_avg_pool.default, (x,)),
        ("global_avg_pool_backward", ops.global_avg_pool_backward.default, (r(2, 4), list(x.shape), False)),
    ]


def _distinct(shape, gen):
    n = math.prod(shape)
    return (torch.randperm(n, generator=gen, dtype=torch.float64) / 7).view(shape)


def _max_error(ours, theirs, tensors):
    a = [t.clone().requires_grad_() for t in tensors]
    b = [t.clone().requires_grad_() for t in tensors]
    out_a, out_b = ours(*a), theirs(*b)
    grad = torch.randn_like(out_b)
    out_a.backward(grad)
    out_b.backward(grad)
    errors = [(out_a - out_b).abs().max().item()]
    errors += [(ta.grad - tb.grad).abs().max().item() for ta, tb in zip(a, b)]
    return max(errors)


def run(devices=None) -> bool:
    devices = devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    gen = torch.Generator().manual_seed(0)
    rows, ok = [], True

    def record(name, device, check, error, passed, seconds):
        nonlocal ok
        ok &= passed
        rows.append((name, device, check, "" if error is None else f"{error:.1e}", "pass" if passed else "FAIL",
                     f"{seconds:.2f}s"))

    def attempt(name, device, check, fn):
        start = time.perf_counter()
        try:
            error, passed = fn()
        except Exception as exc:  # a failure to report, not to crash on
            error, passed = None, False
            check = f"{check}: {type(exc).__name__}: {str(exc).splitlines()[0][:50]}"
        record(name, device, check, error, passed, time.perf_counter() - start)

    for device in devices:
        for case in cases():
            tensors = [_distinct(s, gen) if case.distinct else torch.randn(s, generator=gen, dtype=torch.float64)
                       for s in case.shapes]
            tensors = [t.to(device) for t in tensors]

            def vs_torch():
                err = _max_error(case.ours, case.theirs, tensors)
                return err, err <= TOLERANCE

            def grads():
                leaves = [t.clone().requires_grad_() for t in tensors]
                return None, gradcheck(case.ours, leaves, **GRADCHECK) and gradgradcheck(case.ours, leaves,
                                                                                         **GRADCHECK)
            attempt(case.name, device, "vs torch (fwd+grad)", vs_torch)
            attempt(case.name, device, "gradcheck+gradgradcheck", grads)
        for name, op, args in opcheck_cases(device):
            def opcheck():
                results = torch.library.opcheck(op, args)
                return None, all(v == "SUCCESS" for v in results.values())
            attempt(f"convops::{name}", device, "opcheck", opcheck)

    headers = ("op", "device", "check", "max error", "result", "time")
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    failed = sum(r[4] == "FAIL" for r in rows)
    verdict = "PASS" if ok else "FAIL"
    print(f"\nconvops check: {verdict}: {len(rows) - failed} passed, {failed} failed on {', '.join(devices)} "
          f"(CPU forms: {_C.cpu_isa()}, GEMM: {_C.cpu_gemm()})")
    return ok
