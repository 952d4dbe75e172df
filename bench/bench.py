"""`make bench`: convops against torch's native ops on the same input, in the same
process, interleaved, minimum of many repeats; ratio = torch time / convops time
(above 1: convops is faster). Forward and forward+backward, 1 and 2 threads; with
`--device cuda`, the same cases on the GPU against torch's cuDNN/cuBLAS, TF32 off and on.
Also: a training step of zoo models (convops layers vs torch.nn layers, same weights), and
the peak memory of each convolution forward (each side in a fresh process, ratio
convops / torch, target <= 1.5). Writes the table to JSON. Shapes: DESIGN.md section 5,
the zoo's conv layers and issue #6's targets."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch
import torch.nn.functional as tF

import convops
import convops.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import models  # noqa: E402  (the zoo, from the repository root)

# (name, ours, theirs, input shape, weight shape, kwargs, target fwd, target fwd+bwd)
# Targets are issue #6's speedups; rows without a target are measured only. Forward runs
# without autograd (as inference does, so torch's max pooling computes no indices either),
# forward+backward with it.
CONV_CASES = [
    ("conv3x3 64ch 56x56 N8", F.conv2d, tF.conv2d, (8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), 0.8, 0.7),
    ("conv3x3 256ch 14x14 N8", F.conv2d, tF.conv2d, (8, 256, 14, 14), (256, 256, 3, 3), dict(padding=1), 0.8, 0.7),
    ("conv1x1 256->64 56x56 N8", F.conv2d, tF.conv2d, (8, 256, 56, 56), (64, 256, 1, 1), {}, 0.9, 0.8),
    ("depthwise3x3 64ch 56x56 N8", F.conv2d, tF.conv2d, (8, 64, 56, 56), (64, 1, 3, 3),
     dict(padding=1, groups=64), 1.0, 1.0),
    ("grouped3x3 g8 128ch 28x28 N8", F.conv2d, tF.conv2d, (8, 128, 28, 28), (128, 16, 3, 3),
     dict(padding=1, groups=8), 1.0, 1.0),
    ("dilated3x3 d2 64ch 56x56 N8", F.conv2d, tF.conv2d, (8, 64, 56, 56), (64, 64, 3, 3),
     dict(padding=2, dilation=2), 0.8, 0.7),
    ("conv1d k5 64ch L4096 N8", F.conv1d, tF.conv1d, (8, 64, 4096), (64, 64, 5), dict(padding=2), 0.8, 0.7),
    ("conv_transpose2d 64->32 s2 28x28 N8", F.conv_transpose2d, tF.conv_transpose2d, (8, 64, 28, 28),
     (64, 32, 4, 4), dict(stride=2, padding=1), 0.8, 0.7),
    ("conv3d 3x3x3 32ch 16^3 N2", F.conv3d, tF.conv3d, (2, 32, 16, 16, 16), (32, 32, 3, 3, 3), dict(padding=1),
     0.7, 0.6),
    ("LeNet conv1 1->6 5x5 28x28 N64", F.conv2d, tF.conv2d, (64, 1, 28, 28), (6, 1, 5, 5), dict(padding=2),
     1.0, 1.0),
    ("LeNet conv2 6->16 5x5 14x14 N64", F.conv2d, tF.conv2d, (64, 6, 14, 14), (16, 6, 5, 5), {}, 1.0, 1.0),
    ("AlexNet conv1 3->64 11x11 s4 224 N4", F.conv2d, tF.conv2d, (4, 3, 224, 224), (64, 3, 11, 11),
     dict(stride=4, padding=2), None, None),
    ("ResNet stem 3->64 7x7 s2 224 N4", F.conv2d, tF.conv2d, (4, 3, 224, 224), (64, 3, 7, 7),
     dict(stride=2, padding=3), None, None),
]

# channels_last twins of NCHW cases, measured only (speed and memory): input and weight in
# channels_last, as after a model's .to(memory_format=torch.channels_last); both sides then
# return channels_last.
CHANNELS_LAST_TWINS = ("conv3x3 64ch 56x56 N8", "conv1x1 256->64 56x56 N8")


def conv_cases():
    """Every conv row: CONV_CASES' entries with their memory format, then the channels_last twins."""
    for case in CONV_CASES:
        yield (*case, torch.contiguous_format)
    for base in CHANNELS_LAST_TWINS:
        name, ours, theirs, xs, ws, kwargs, _, _ = next(c for c in CONV_CASES if c[0] == base)
        yield f"{name} channels_last", ours, theirs, xs, ws, kwargs, None, None, torch.channels_last


# Training steps of zoo models: (name, builder, input shape, target, autocast). The convops model
# and the torch.nn one start from the same weights; a step is forward, cross-entropy, backward,
# SGD; under torch.autocast in bfloat16 where `autocast` says so (measured only: no target).
def _lenet5(backend):
    return models.lenet5(backend=backend)


def _resnet18(backend):
    return models.resnet18(num_classes=10, backend=backend)


MODEL_CASES = [
    ("train step LeNet-5 N64", _lenet5, (64, 1, 28, 28), 1.0, False),
    ("train step ResNet-18 32x32 N32", _resnet18, (32, 3, 32, 32), 0.8, False),
    ("train step LeNet-5 N64 autocast bf16", _lenet5, (64, 1, 28, 28), None, True),
    ("train step ResNet-18 32x32 N32 autocast bf16", _resnet18, (32, 3, 32, 32), None, True),
]

PEAK_MEMORY_TARGET = 1.5  # convops' peak memory of a conv forward, at most this times torch's

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


def _sync():
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _time_once(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


MAX_REPEATS = 1000  # bounds a case of a few microseconds


def measure(ours, theirs, repeats: int, min_seconds: float) -> tuple[float, float]:
    """Interleaved minimum times (torch, convops) after a warm-up of each: at least `repeats`
    pairs and at least `min_seconds` of them. Sub-millisecond cases need the time more than the
    count: 15 pairs of them fit inside one burst of a neighbour's load on these shared machines."""
    ours(), theirs()
    best_t = best_o = float("inf")
    start = time.perf_counter()
    for i in range(MAX_REPEATS):
        best_t = min(best_t, _time_once(theirs))
        best_o = min(best_o, _time_once(ours))
        if i + 1 >= repeats and time.perf_counter() - start > min_seconds:
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


def train_step(model, x, labels, autocast: bool):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
    return step


def _model_cases(gen, device):
    for name, build, xs, target, autocast in MODEL_CASES:
        ours, theirs = build("convops").to(device), build("torch").to(device)
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(xs, generator=gen).to(device)
        labels = torch.randint(0, 10, (xs[0],), generator=gen).to(device)
        yield name, train_step(ours, x, labels, autocast), train_step(theirs, x, labels, autocast), target


def _conv_inputs(gen, device, name, xs, ws, kwargs, fmt):
    out_channels = ws[1] * kwargs.get("groups", 1) if "transpose" in name else ws[0]
    x, w, b = (torch.randn(shape, generator=gen).to(device) for shape in (xs, ws, (out_channels,)))
    return [x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt), b]


def _cases(gen, device):
    """(name, step(ours|theirs, backward) maker, target fwd, target fwd+bwd) for every bench case."""
    for name, ours, theirs, xs, ws, kwargs, target_f, target_fb, fmt in conv_cases():
        x, w, b = (t.requires_grad_() for t in _conv_inputs(gen, device, name, xs, ws, kwargs, fmt))
        yield name, (lambda fn, bwd, x=x, w=w, b=b, kw=kwargs: conv_step(fn, x, w, b, kw, bwd)), ours, theirs, \
            target_f, target_fb
    for name, ours, theirs, xs, fmt, target_f, target_fb in POOL_CASES:
        x = torch.randn(xs, generator=gen).to(device).contiguous(memory_format=fmt).requires_grad_()
        yield name, (lambda fn, bwd, x=x: pool_step(fn, x, bwd)), ours, theirs, target_f, target_fb


def _row(name, pass_, setting, t_torch, t_ours, target):
    ratio = t_torch / t_ours
    return dict(case=name, pass_=pass_, setting=setting, torch_ms=t_torch * 1e3, convops_ms=t_ours * 1e3,
                speedup=ratio, target=target, below_target=target is not None and ratio < target)


def settings_for(device, threads_list):
    """The columns of the table: thread counts on the CPU; on the GPU, TF32 off and on (float32
    GEMMs in cuBLAS, convops' included, and cuDNN's convolutions)."""
    if device == "cpu":
        return [f"{n}T" for n in threads_list]
    return ["TF32 off", "TF32 on"]


def apply_setting(setting):
    if setting.endswith("T"):
        torch.set_num_threads(int(setting[:-1]))
    else:
        tf32 = setting == "TF32 on"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def run(device, settings, repeats, min_seconds, only):
    """Every case at one setting, then every case at the next. Measuring 1 thread right
    after a 2-thread case ran 1-D/2-D pooling up to 1.4x slower, on either side: the idle
    OpenMP worker spins on the second vCPU for a while (with OMP_WAIT_POLICY=PASSIVE the
    1-thread rows were steady, and 2-thread regions much slower). CUDA targets: none stated,
    the rows are measured only."""
    rows = []
    for setting in settings:
        apply_setting(setting)
        gen = torch.Generator().manual_seed(0)  # the same inputs at every setting
        for name, ours, theirs, target in _model_cases(gen, device):
            target = target if device == "cpu" else None
            if only and only not in name:
                continue
            t_torch, t_ours = measure(ours, theirs, max(3, repeats // 3), min_seconds)
            rows.append(_row(name, "train", setting, t_torch, t_ours, target))
            print_row(rows[-1])
        for name, make_step, ours, theirs, target_f, target_fb in _cases(gen, device):
            if only and only not in name:
                continue
            if device != "cpu":
                target_f = target_fb = None
            for backward, target in ((False, target_f), (True, target_fb)):
                with torch.set_grad_enabled(backward):
                    t_torch, t_ours = measure(make_step(ours, backward), make_step(theirs, backward), repeats,
                                              min_seconds)
                rows.append(_row(name, "fwd+bwd" if backward else "fwd", setting, t_torch, t_ours, target))
                print_row(rows[-1])
    return rows


# ---------------------------------------------------------------- peak memory
# Each side runs one forward of a conv case in a fresh process (so neither inherits the
# other's freed pages); the cost is the rise of the process's peak resident set (VmHWM)
# over what it held with the inputs in place.

def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss_kb():
    """Resets the peak to what the process holds now (Linux clear_refs 5); returns it."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kb("VmRSS")


def _peak_memory_child(case_name, side):
    torch.set_num_threads(1)
    name, ours, theirs, xs, ws, kwargs, _, _, fmt = next(c for c in conv_cases() if c[0] == case_name)
    fn = ours if side == "convops" else theirs
    gen = torch.Generator().manual_seed(0)
    x, w, b = _conv_inputs(gen, "cpu", name, xs, ws, kwargs, fmt)
    with torch.no_grad():  # one-time set-up (thread pools, oneDNN) on an input the size of the kernel
        fn(torch.randn(1, xs[1], *ws[2:], generator=gen), w, b, **kwargs)
    before = _reset_peak_rss_kb()
    with torch.no_grad():
        out = fn(x, w, b, **kwargs)
    print(json.dumps(dict(peak_kb=_status_kb("VmHWM") - before, output_kb=out.numel() * out.element_size() // 1024)))


def _cuda_peak_kb(case, side):
    """On the GPU the caching allocator counts every byte: the rise of its peak over what the
    inputs hold, in this process (TF32 off)."""
    name, ours, theirs, xs, ws, kwargs, _, _, fmt = case
    fn = ours if side == "convops" else theirs
    x, w, b = _conv_inputs(torch.Generator().manual_seed(0), "cuda", name, xs, ws, kwargs, fmt)
    with torch.no_grad():
        fn(x, w, b, **kwargs)  # set-up: cuBLAS/cuDNN workspaces, kernel selection
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn(x, w, b, **kwargs)
        torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) // 1024


def peak_memory(device, only):
    rows = []
    apply_setting("1T" if device == "cpu" else "TF32 off")
    for case in conv_cases():
        name, twin = case[0], case[-1] != torch.contiguous_format
        if only and only not in name:
            continue
        peaks = {}
        for side in ("torch", "convops"):
            if device != "cpu":
                peaks[side] = _cuda_peak_kb(case, side)
                continue
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--peak-memory-child", name, side],
                                  capture_output=True, text=True, check=True)
            peaks[side] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_kb"]
        ratio = peaks["convops"] / max(peaks["torch"], 1)
        target = PEAK_MEMORY_TARGET if device == "cpu" and not twin else None  # issue #6's: the CPU's NCHW
        rows.append(dict(case=name, torch_mib=peaks["torch"] / 1024, convops_mib=peaks["convops"] / 1024,
                         ratio=ratio, target=target, above_target=target is not None and ratio > target))
        r = rows[-1]
        flag = "  ABOVE TARGET" if r["above_target"] else ""
        shown = "" if target is None else "<=" + format(target, ".1f")
        print(f"{name:<44} {r['torch_mib']:>9.1f} {r['convops_mib']:>11.1f} {ratio:>7.2f}x {shown:>7}{flag}",
              flush=True)
    return rows


def print_header():
    print(f"{'case':<44} {'pass':<8} {'setting':>8} {'torch ms':>9} {'convops ms':>10} {'speedup':>8} "
          f"{'target':>7}")


def print_row(r):
    target = "" if r["target"] is None else f">={r['target']:.1f}"
    flag = "  BELOW TARGET" if r["below_target"] else ""
    print(f"{r['case']:<44} {r['pass_']:<8} {r['setting']:>8} {r['torch_ms']:>9.3f} {r['convops_ms']:>10.3f} "
          f"{r['speedup']:>7.2f}x {target:>7}{flag}", flush=True)


def markdown(results: dict) -> str:
    """The README's tables from a results JSON: speedups at each setting (threads, or TF32 off and
    on), then peak memory."""
    cells, order = {}, []
    for r in results["rows"]:
        if r["case"] not in order:
            order.append(r["case"])
        mark = " (below)" if r["below_target"] else ""
        cells[(r["case"], r["pass_"], r["setting"])] = f"{r['speedup']:.2f}x{mark}"
    targets = {}
    for r in results["rows"]:
        if r["target"] is not None:
            targets.setdefault(r["case"], {})[r["pass_"]] = r["target"]
    settings = results["meta"]["settings"]
    lines = ["| case | target | " + " | ".join(f"{p} {s}" for s in settings for p in ("fwd", "fwd+bwd")) + " |",
             "| --- | --- | " + " | ".join("---" for _ in range(2 * len(settings))) + " |"]
    for case in order:
        t = targets.get(case, {})
        target = " / ".join(f"{t[k]:g}x" for k in ("fwd", "fwd+bwd", "train") if k in t) or "-"
        if (case, "train", settings[0]) in cells:  # a training step: in the forward columns
            row = [c for s in settings for c in (cells.get((case, "train", s), ""), "")]
        else:
            row = [cells.get((case, pass_, s), "") for s in settings for pass_ in ("fwd", "fwd+bwd")]
        lines.append(f"| {case} | {target} | " + " | ".join(row) + " |")
    if results.get("peak_memory"):
        lines += ["",
                  f"| peak memory of one conv forward ({settings[0]}) | torch MiB | convops MiB | convops / torch |",
                  "| --- | --- | --- | --- |"]
        for r in results["peak_memory"]:
            mark = f" (above {r['target']:g})" if r["above_target"] else ""
            lines.append(f"| {r['case']} | {r['torch_mib']:.1f} | {r['convops_mib']:.1f} | {r['ratio']:.2f}x{mark} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None, help="results JSON (default bench/results.json, "
                        "bench/results_cuda.json with --device cuda)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="repeat a case at least this long")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory table")
    parser.add_argument("--peak-memory-child", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)
    parser.add_argument("--markdown", metavar="JSON", help="print the README tables of a results file and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as f:
            print(markdown(json.load(f)))
        return
    if args.peak_memory_child:
        _peak_memory_child(*args.peak_memory_child)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available to this torch")
    out = args.out or ("bench/results.json" if args.device == "cpu" else "bench/results_cuda.json")
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else None
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"convops CPU forms: {convops._C.cpu_isa()}, GEMM: {convops._C.cpu_gemm()}"
          + (f", GPU: {gpu}" if gpu else ""))
    settings = settings_for(args.device, args.threads)
    print_header()
    rows = run(args.device, settings, args.repeats, args.min_seconds, args.only)
    memory = []
    if not args.no_memory:
        print(f"\n{'peak memory of one conv forward (' + settings[0] + ')':<44} {'torch MiB':>9} {'convops MiB':>11} "
              f"{'ratio':>8} {'target':>7}")
        memory = peak_memory(args.device, args.only)
    meta = dict(torch=torch.__version__, machine=platform.machine(), cpus=os.cpu_count(),
                cpu_isa=convops._C.cpu_isa(), cpu_gemm=convops._C.cpu_gemm(), python=sys.version.split()[0],
                device=args.device, gpu=gpu, settings=settings, when=time.strftime("%Y-%m-%d %H:%M:%S"))
    with open(out, "w") as f:
        json.dump(dict(meta=meta, rows=rows, peak_memory=memory), f, indent=1)
    below = [r for r in rows if r["below_target"]]
    above = [r for r in memory if r["above_target"]]
    print(f"\n{len(rows)} rows, {len(below)} below target; {len(memory)} memory rows, {len(above)} above target; "
          f"written to {out}")


if __name__ == "__main__":
    main()
