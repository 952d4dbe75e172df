"""Slow, obviously correct references in plain PyTorch, written from the
definitions (shift-and-add over kernel taps), independent of convops and of
torch's convolution kernels. Shapes: (N, C, *spatial), 1 to 3 spatial dims."""
import itertools

import torch
import torch.nn.functional as F


def _tap_slices(offsets, stride, count):
    """Slices that pick, along each spatial dim, position tap + stride * l for l < count."""
    return tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offsets, stride, count))


def _pad(x, padding):
    spec = []
    for p in reversed(padding):
        spec += [p, p]
    return F.pad(x, spec)


def conv(x, w, bias=None, stride=None, padding=None, dilation=None, groups=1, flip=False):
    """y[n, o, l] = sum_{c, k} w[o, c, k] x_padded[n, c, l*stride + k*dilation]."""
    d = x.dim() - 2
    stride, padding, dilation = stride or (1,) * d, padding or (0,) * d, dilation or (1,) * d
    if flip:
        w = w.flip(list(range(2, w.dim())))
    xp = _pad(x, padding)
    kernel = w.shape[2:]
    out_sizes = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(d)]
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups
    y = x.new_zeros((n, o, *out_sizes))
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og]
        for tap in itertools.product(*[range(k) for k in kernel]):
            offsets = [t * dl for t, dl in zip(tap, dilation)]
            patch = xs[(slice(None), slice(None)) + _tap_slices(offsets, stride, out_sizes)]
            y[:, g * og:(g + 1) * og] += torch.einsum("nc...,oc->no...", patch, ws[(Ellipsis,) + tap])
    if bias is not None:
        y += bias.view(1, -1, *([1] * d))
    return y


def conv_transpose(x, w, bias=None, stride=None, padding=None, output_padding=None, dilation=None, groups=1,
                   flip=False):
    """The adjoint of conv: scatter each input element through every tap, then crop the padding."""
    d = x.dim() - 2
    stride, padding = stride or (1,) * d, padding or (0,) * d
    output_padding, dilation = output_padding or (0,) * d, dilation or (1,) * d
    if flip:
        w = w.flip(list(range(2, w.dim())))
    kernel = w.shape[2:]
    n, c = x.shape[:2]
    og = w.shape[1]
    cg = c // groups
    full = [(x.shape[2 + i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 + output_padding[i]
            for i in range(d)]
    y = x.new_zeros((n, og * groups, *full))
    for g in range(groups):
        xs = x[:, g * cg:(g + 1) * cg]
        ws = w[g * cg:(g + 1) * cg]
        for tap in itertools.product(*[range(k) for k in kernel]):
            offsets = [t * dl for t, dl in zip(tap, dilation)]
            index = (slice(None), slice(g * og, (g + 1) * og)) + _tap_slices(offsets, stride, x.shape[2:])
            y[index] += torch.einsum("nc...,co->no...", xs, ws[(Ellipsis,) + tap])
    crop = (slice(None), slice(None)) + tuple(
        slice(p, full[i] - p) for i, p in enumerate(padding))
    y = y[crop]
    if bias is not None:
        y = y + bias.view(1, -1, *([1] * d))
    return y


def unfold(x, kernel, dilation, padding, stride):
    d = x.dim() - 2
    xp = _pad(x, padding)
    out_sizes = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(d)]
    blocks = []
    for tap in itertools.product(*[range(k) for k in kernel]):
        offsets = [t * dl for t, dl in zip(tap, dilation)]
        blocks.append(xp[(slice(None), slice(None)) + _tap_slices(offsets, stride, out_sizes)])
    n, c = x.shape[:2]
    stacked = torch.stack(blocks, dim=2)  # (N, C, K, *L)
    positions = 1
    for size in out_sizes:
        positions *= size
    return stacked.reshape(n, c * len(blocks), positions)


def fold(cols, output_size, kernel, dilation, padding, stride):
    d = len(output_size)
    n = cols.shape[0]
    k_count = 1
    for k in kernel:
        k_count *= k
    c = cols.shape[1] // k_count
    padded = [s + 2 * p for s, p in zip(output_size, padding)]
    out_sizes = [(padded[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(d)]
    blocks = cols.reshape(n, c, k_count, *out_sizes)
    y = cols.new_zeros((n, c, *padded))
    for j, tap in enumerate(itertools.product(*[range(k) for k in kernel])):
        offsets = [t * dl for t, dl in zip(tap, dilation)]
        y[(slice(None), slice(None)) + _tap_slices(offsets, stride, out_sizes)] += blocks[:, :, j]
    return y[(slice(None), slice(None)) + tuple(slice(p, p + s) for p, s in zip(padding, output_size))]
