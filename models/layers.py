"""The layer set a zoo model is built from: convops.nn (default) or torch.nn, same
names and state_dict keys either way, so weights load across backends."""
from types import SimpleNamespace

import torch.nn as tnn

import convops.nn as cnn

BACKENDS = ("convops", "torch")


def layers(backend: str) -> SimpleNamespace:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected 'convops' or 'torch', got {backend!r}")
    lib = cnn if backend == "convops" else tnn
    return SimpleNamespace(
        Conv2d=lib.Conv2d, MaxPool2d=lib.MaxPool2d, AvgPool2d=lib.AvgPool2d,
        # global average pooling to (N, C, 1, 1); neither has parameters
        GlobalAvgPool=(lambda: cnn.GlobalAvgPool(keepdim=True)) if backend == "convops"
        else (lambda: tnn.AdaptiveAvgPool2d((1, 1))),
        backend=backend,
    )
