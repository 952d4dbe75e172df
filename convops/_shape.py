"""Output-size arithmetic and argument normalisation shared by the fake kernels,
the functional API and the modules. One place for each formula."""
from __future__ import annotations

import math

import torch
from torch._prims_common import suggest_memory_format
from collections.abc import Sequence


def ntuple(value, n: int, name: str, op: str) -> tuple[int, ...]:
    """An int or a length-n sequence of ints as a tuple of n ints."""
    if isinstance(value, bool):
        raise ValueError(f"{op}: expected {name} to be an int or a tuple of {n} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, Sequence) and len(value) == n and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ValueError(f"{op}: expected {name} to be an int or a tuple of {n} ints, got {value!r}")


def check_at_least(values: tuple[int, ...], minimum: int, name: str, op: str) -> None:
    if any(v < minimum for v in values):
        rel = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{op}: expected {name} to be {rel} in every dimension, got {values}")


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Sliding-window positions along one dim: floor((X + 2p - d(K-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_sizes(sizes, kernel, stride, padding, dilation) -> list[int]:
    return [conv_output_size(*args) for args in zip(sizes, kernel, stride, padding, dilation)]


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int, output_padding: int,
                               dilation: int) -> int:
    """(X - 1) s - 2p + d(K-1) + output_padding + 1: the input size a convolution maps to X."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv_transpose_output_sizes(sizes, kernel, stride, padding, output_padding, dilation) -> list[int]:
    return [conv_transpose_output_size(*args) for args in zip(sizes, kernel, stride, padding, output_padding, dilation)]


# The largest max-pool window whose argmax the ops can save as a tap number (tap_indices:
# uint8, 255 meaning "no tap inside"): csrc/kernels/pool.h, kMaxCodedTaps.
MAX_CODED_TAPS = 255


def prod(values) -> int:
    return math.prod(values)


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling output size: floor or ceil, and a ceil window must start inside the input or its
    left padding."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_output_sizes(sizes, kernel, stride, padding, dilation, ceil_mode) -> list[int]:
    return [pool_output_size(s, k, st, p, d, ceil_mode)
            for s, k, st, p, d in zip(sizes, kernel, stride, padding, dilation)]


def memory_format_of(t):
    """The layout convops' pooling returns for t, mirroring csrc/ops/common.cpp output_format()."""
    if t.is_contiguous():
        return torch.contiguous_format
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def conv_memory_format(a, b):
    """The layout convops' convolutions return for tensor arguments a, b, mirroring
    csrc/ops/conv/conv.cpp conv_format(): channels_last where either is laid out so."""
    format = suggest_memory_format(a)
    return format if format != torch.contiguous_format else suggest_memory_format(b)
