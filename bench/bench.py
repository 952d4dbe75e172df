"""`make bench`: convops against torch's native ops on the same input, in the same
process, interleaved, minimum of many repeats; ratio = torch time / convops time
(above 1: convops is faster). Forward and forward+backward, 1 and 2 threads.
Writes the table to JSON. Shapes: DESIGN.md section 5 and the zoo's conv layers."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as tF

import convops.functional as F

# (name, ours, theirs, input shape, weight shape, kwargs, target fwd, target fwd+bwd)
# Targets are the speedups issue #2 asks of the conv family for now (>= 0.5 on the ResNet shapes);
# rows without a target are measured only. Forward runs without autograd (as inference does, so
# torch's max pooling computes no indices either), forward+backward with it.
CONV_CASES = [
    ("conv3x3 64ch 56x56 N8", F.conv2d, tF.conv2d, (8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), 0.5, 0.5),
    ("conv3x3 256ch 14x14 N8", F.conv2d, tF.conv2d, (8, 256, 14, 14), (256, 256, 3, 3), dict(padding=1), 0.5, 0.5),
    ("conv1x1 256->64 56x56 N8", F.conv2d, tF.conv2d, (8, 256, 56, 56), (64, 256, 1, 1), {}, 0.5, 0.5),
    ("depthwise3x3 64ch 56x56 N8", F.conv2d, tF.conv2d, (8, 64, 56, 56), (64, 1, 3, 3),
     dict(padding=1, groups=64), None, None),
    ("grouped3x3 g8 128ch 28x28 N8", F.conv2d, tF.conv2d, (8, 128, 28, 28), (128, 16, 3, 3),
     dict(padding=1, groups=8), None, None),
    ("dilated3x3 d2 64ch 56x56 N8", F.conv2d, tF.conv2d, (8, 64, 56, 56), (64, 64, 3, 3),
     dict(padding=2, dilation=2), None, None),
    ("conv1d k5 64ch L4096 N8", F.conv1d, tF.conv1d, (8, 64, 4096), (64, 64, 5), dict(padding=2), None, None),
    ("conv_transpose2d 64->32 s2 28x28 N8", F.conv_transpose2d, tF.conv_transpose2d, (8, 64, 28, 28),
     (64, 32, 4, 4), dict(stride=2, padding=1), None, None),
    ("conv3d 3x3x3 32ch 16^3 N2", F.conv3d, tF.conv3d, (2, 32, 16, 16, 16), (32, 32, 3, 3, 3), dict(padding=1),
     None, None),
    ("LeNet conv1 1->6 5x5 28x28 N64", F.conv2d, tF.conv2d, (64, 1, 28, 28), (6, 1, 5, 5), dict(padding=2),
     None, None),
    ("LeNet conv2 6->16 5x5 14x14 N64", F.conv2d, tF.conv2d, (64, 6, 14, 14), (16, 6, 5, 5), {}, None, None),
    ("AlexNet conv1 3->64 11x11 s4 224 N4", F.conv2d, tF.conv2d, (4, 3, 224, 224), (64, 3, 11, 11),
     dict(stride=4, padding=2), None, None),
    ("ResNet stem 3->64 7x7 s2 224 N4", F.conv2d, tF.conv2d, (4, 3, 224, 224), (64, 3, 7, 7),
     dict(stride=2, padding=3), None, None),
]


# Pooling: (name, ours, theirs, input shape, memory format, target fwd, target fwd+bwd); issue #3's targets.
CL2, CL3, NCHW = torch.channels_last, torch.channels_last_3d, torch.contiguous_format
POOL_CASES = []
for _fmt, _tag, _target in ((NCHW, "NCHW", 5.0), ("cl", "channels_last", 1.0)):
    for _d, _shape in ((1, (8, 64, 4096)), (2, (8, 64, 112, 112)), (3, (2, 32, 32, 32, 32))):
        if _d == 1 and _fmt != NCHW:
            continue
        _mf = NCHW if _fmt == NCHW else (CL2 if _d == 2 else CL3)
        _ours_max, _theirs_max = getattr(F, f"max_pool{_d}d"), getattr(tF, f"max_pool{_d}d")
        _ours_avg, _theirs_avg = getattr(F, f"avg_pool{_d}d"), getattr(tF, f"avg_pool{_d}d")
        POOL_CASES += [
            (f"max_pool{_d}d k3s2p1 {_tag}", lambda x, f=_ours_max: f(x, 3, 2, 1),
             lambda x, f=_theirs_max: f(x, 3, 2, 1), _shape, _mf, _target, _target),
            (f"avg_pool{_d}d k3s2p1 {_tag}", lambda x, f=_ours_avg: f(x, 3, 2, 1),
             lambda x, f=_theirs_avg: f(x, 3, 2, 1), _shape, _mf, _target, _target),
            (f"avg_pool{_d}d excl-pad {_tag}", lambda x, f=_ours_avg: f(x, 3, 2, 1, count_include_pad=False),
             lambda x, f=_theirs_avg: f(x, 3, 2, 1, count_include_pad=False), _shape, _mf, _target, _target),
        ]
POOL_CASES += [
    ("global_avg_pool (64,2048,7,7) NCHW", F.global_avg_pool, lambda x: x.mean((2, 3)), (64, 2048, 7, 7), NCHW,
     1.0, 1.0),
    ("global_avg_pool (64,2048,7,7) channels_last", F.global_avg_pool, lambda x: x.mean((2, 3)), (64, 2048, 7, 7),
     CL2, 1.0, 1.0),
]


def _time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(ours, theirs, repeats: int, min_seconds: float) -> tuple[float, float]:
    """Interleaved minimum times (torch, convops) after a warm-up of each."""
    ours(), theirs()
    best_t = best_o = float("inf")
    start = time.perf_counter()
    for i in range(repeats):
        best_t = min(best_t, _time_once(theirs))
        best_o = min(best_o, _time_once(ours))
        if i >= 3 and time.perf_counter() - start > min_seconds:
            break
    return best_t, best_o


def conv_step(fn, x, w, b, kwargs, backward: bool):
    def step():
        if backward:
            for t in (x, w, b):
                t.grad = None
        out = fn(x, w, b, **kwargs)
        if backward:
            out.backward(torch.ones_like(out))
    return step


def pool_step(fn, x, backward: bool):
    def step():
        if backward:
            x.grad = None
        out = fn(x)
        if backward:
            out.backward(torch.ones_like(out))
    return step


def _cases(gen):
    """(name, step(ours|theirs, backward) maker, target fwd, target fwd+bwd) for every bench case."""
    for name, ours, theirs, xs, ws, kwargs, target_f, target_fb in CONV_CASES:
        out_channels = ws[1] * kwargs.get("groups", 1) if "transpose" in name else ws[0]
        x = torch.randn(xs, generator=gen).requires_grad_()
        w = torch.randn(ws, generator=gen).requires_grad_()
        b = torch.randn(out_channels, generator=gen).requires_grad_()
        yield name, (lambda fn, bwd, x=x, w=w, b=b, kw=kwargs: conv_step(fn, x, w, b, kw, bwd)), ours, theirs, \
            target_f, target_fb
    for name, ours, theirs, xs, fmt, target_f, target_fb in POOL_CASES:
        x = torch.randn(xs, generator=gen).contiguous(memory_format=fmt).requires_grad_()
        yield name, (lambda fn, bwd, x=x: pool_step(fn, x, bwd)), ours, theirs, target_f, target_fb


def run(threads_list, repeats, min_seconds, only):
    rows = []
    gen = torch.Generator().manual_seed(0)
    for name, make_step, ours, theirs, target_f, target_fb in _cases(gen):
        if only and only not in name:
            continue
        for threads in threads_list:
            torch.set_num_threads(threads)
            for backward, target in ((False, target_f), (True, target_fb)):
                with torch.set_grad_enabled(backward):
                    t_torch, t_ours = measure(make_step(ours, backward), make_step(theirs, backward), repeats,
                                              min_seconds)
                ratio = t_torch / t_ours
                row = dict(case=name, pass_="fwd+bwd" if backward else "fwd", threads=threads,
                           torch_ms=t_torch * 1e3, convops_ms=t_ours * 1e3, speedup=ratio, target=target,
                           below_target=target is not None and ratio < target)
                rows.append(row)
                print_row(row)
    return rows


def print_header():
    print(f"{'case':<44} {'pass':<8} {'thr':>3} {'torch ms':>9} {'convops ms':>10} {'speedup':>8} {'target':>7}")


def print_row(r):
    target = "" if r["target"] is None else f">={r['target']:.1f}"
    flag = "  BELOW TARGET" if r["below_target"] else ""
    print(f"{r['case']:<44} {r['pass_']:<8} {r['threads']:>3} {r['torch_ms']:>9.2f} {r['convops_ms']:>10.2f} "
          f"{r['speedup']:>7.2f}x {target:>7}{flag}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/results.json")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="stop repeating a case after this long")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print_header()
    rows = run(args.threads, args.repeats, args.min_seconds, args.only)
    meta = dict(torch=torch.__version__, machine=platform.machine(), cpus=os.cpu_count(),
                python=sys.version.split()[0], when=time.strftime("%Y-%m-%d %H:%M:%S"))
    with open(args.out, "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)
    below = [r for r in rows if r["below_target"]]
    print(f"\n{len(rows)} rows, {len(below)} below target; written to {args.out}")


if __name__ == "__main__":
    main()
