"""torch.nn-compatible layers over convops ops, and convert() for existing models.

Every layer subclasses its torch.nn namesake, so the constructor signature, defaults,
attribute names, parameter initialisation, state_dict keys, extra_repr and padding_mode
handling are torch's own; only the computation goes through convops.functional.
Convolutions also take `mode` ("cross_correlation" / 1, the default, or "convolution" /
0, the kernel flipped along every spatial dim). Shapes are those of torch.nn.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as tnn
import torch.nn.functional as tF

from . import functional as F
from .functional import _flips_kernel

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "MaxPool1d",
           "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "Unfold", "Fold", "GlobalAvgPool",
           "convert"]

_DEFAULT_MODE = "cross_correlation"


class _ModeMixin:
    """The `mode` attribute shared by the convolution layers."""

    def _set_mode(self, mode):
        _flips_kernel(mode, type(self).__name__)  # ValueError for a bad mode
        self.mode = mode

    def extra_repr(self) -> str:
        s = super().extra_repr()
        mode = getattr(self, "mode", _DEFAULT_MODE)
        return s if mode in (_DEFAULT_MODE, 1) else s + f", mode={mode!r}"


def _conv_class(base, functional, name):
    class Conv(_ModeMixin, base):
        def __init__(self, *args, mode=_DEFAULT_MODE, **kwargs):
            super().__init__(*args, **kwargs)
            self._set_mode(mode)

        def _conv_forward(self, input, weight, bias):
            padding = self.padding
            if self.padding_mode != "zeros":
                input = tF.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
                padding = 0
            return functional(input, weight, bias, self.stride, padding, self.dilation, self.groups, mode=self.mode)

    Conv.__name__ = Conv.__qualname__ = name
    Conv.__doc__ = f"torch.nn.{name} computed by convops, plus `mode=`."
    return Conv


Conv1d = _conv_class(tnn.Conv1d, F.conv1d, "Conv1d")
Conv2d = _conv_class(tnn.Conv2d, F.conv2d, "Conv2d")
Conv3d = _conv_class(tnn.Conv3d, F.conv3d, "Conv3d")


def _conv_transpose_class(base, functional, spatial, name):
    class ConvTranspose(_ModeMixin, base):
        def __init__(self, *args, mode=_DEFAULT_MODE, **kwargs):
            super().__init__(*args, **kwargs)
            self._set_mode(mode)

        def forward(self, input, output_size=None):
            if self.padding_mode != "zeros":
                raise ValueError(f"Only `zeros` padding mode is supported for {name}")
            output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                                  spatial, self.dilation)
            return functional(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                              self.dilation, mode=self.mode)

    ConvTranspose.__name__ = ConvTranspose.__qualname__ = name
    ConvTranspose.__doc__ = f"torch.nn.{name} computed by convops, plus `mode=`."
    return ConvTranspose


ConvTranspose1d = _conv_transpose_class(tnn.ConvTranspose1d, F.conv_transpose1d, 1, "ConvTranspose1d")
ConvTranspose2d = _conv_transpose_class(tnn.ConvTranspose2d, F.conv_transpose2d, 2, "ConvTranspose2d")
ConvTranspose3d = _conv_transpose_class(tnn.ConvTranspose3d, F.conv_transpose3d, 3, "ConvTranspose3d")


def _max_pool_class(base, functional, name):
    class MaxPool(base):
        def forward(self, input):
            return functional(input, self.kernel_size, self.stride, self.padding, self.dilation,
                              ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    MaxPool.__name__ = MaxPool.__qualname__ = name
    MaxPool.__doc__ = f"torch.nn.{name} computed by convops."
    return MaxPool


MaxPool1d = _max_pool_class(tnn.MaxPool1d, F.max_pool1d, "MaxPool1d")
MaxPool2d = _max_pool_class(tnn.MaxPool2d, F.max_pool2d, "MaxPool2d")
MaxPool3d = _max_pool_class(tnn.MaxPool3d, F.max_pool3d, "MaxPool3d")


def _avg_pool_class(base, functional, name):
    class AvgPool(base):
        def forward(self, input):
            return functional(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, getattr(self, "divisor_override", None))

    AvgPool.__name__ = AvgPool.__qualname__ = name
    AvgPool.__doc__ = f"torch.nn.{name} computed by convops."
    return AvgPool


class AvgPool1d(_avg_pool_class(tnn.AvgPool1d, F.avg_pool1d, "AvgPool1d")):
    """torch.nn.AvgPool1d computed by convops; also takes divisor_override, as AvgPool2d does."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.divisor_override = divisor_override

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.divisor_override is None else s + f", divisor_override={self.divisor_override}"


AvgPool2d = _avg_pool_class(tnn.AvgPool2d, F.avg_pool2d, "AvgPool2d")
AvgPool3d = _avg_pool_class(tnn.AvgPool3d, F.avg_pool3d, "AvgPool3d")


class Unfold(tnn.Unfold):
    """torch.nn.Unfold computed by convops, for 1 to 3 spatial dims."""

    def forward(self, input):
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)


class Fold(tnn.Fold):
    """torch.nn.Fold computed by convops, for 1 to 3 spatial dims."""

    def forward(self, input):
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)


class GlobalAvgPool(tnn.Module):
    """Mean over every spatial dim of (N, C, *spatial): (N, C), or (N, C, 1, ...) with keepdim."""

    def __init__(self, keepdim: bool = False):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, input):
        return F.global_avg_pool(input, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"keepdim={self.keepdim}"


_TWINS = {
    tnn.Conv1d: Conv1d, tnn.Conv2d: Conv2d, tnn.Conv3d: Conv3d,
    tnn.ConvTranspose1d: ConvTranspose1d, tnn.ConvTranspose2d: ConvTranspose2d,
    tnn.ConvTranspose3d: ConvTranspose3d,
    tnn.MaxPool1d: MaxPool1d, tnn.MaxPool2d: MaxPool2d, tnn.MaxPool3d: MaxPool3d,
    tnn.AvgPool1d: AvgPool1d, tnn.AvgPool2d: AvgPool2d, tnn.AvgPool3d: AvgPool3d,
    tnn.Unfold: Unfold, tnn.Fold: Fold,
}
_ADAPTIVE_AVG = (tnn.AdaptiveAvgPool1d, tnn.AdaptiveAvgPool2d, tnn.AdaptiveAvgPool3d)


def _twin(module: tnn.Module) -> tnn.Module | None:
    """The convops twin of one torch.nn layer (sharing its parameters, buffers and hooks), or None."""
    if type(module) in _ADAPTIVE_AVG:
        size = module.output_size
        sizes = size if isinstance(size, (tuple, list)) else (size,)
        if all(s == 1 for s in sizes):
            twin = GlobalAvgPool(keepdim=True)
            twin.train(module.training)
            return twin
        return None
    cls = _TWINS.get(type(module))
    if cls is None:
        return None
    twin = cls.__new__(cls)
    # the same parameter, buffer and hook objects, in containers of the twin's own
    twin.__dict__.update({k: (v.copy() if isinstance(v, dict) else v) for k, v in module.__dict__.items()})
    if isinstance(twin, _ModeMixin):
        twin.mode = _DEFAULT_MODE
    if isinstance(twin, AvgPool1d):
        twin.divisor_override = None
    return twin


def convert(module: tnn.Module, inplace: bool = False) -> tnn.Module:
    """Replace every torch.nn layer convops implements by its convops twin.

    The twins share the layers' parameters, so with inplace=True optimisers and hooks
    keep working; with inplace=False a deep copy is converted and the original is left
    as it was. AdaptiveAvgPool{1,2,3}d with output size 1 becomes GlobalAvgPool(keepdim=True);
    every other layer stays. Returns the converted model.
    """
    if not isinstance(module, tnn.Module):
        raise ValueError(f"convert: expected a torch.nn.Module, got {type(module).__name__}")
    root = module if inplace else copy.deepcopy(module)
    twin = _twin(root)
    if twin is not None:
        return twin
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            replacement = _twin(child)
            if replacement is not None:
                setattr(parent, name, replacement)
    return root
