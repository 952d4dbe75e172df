"""AlexNet. Default: torchvision's layout (same parameters and state_dict keys).
lrn=True: the paper's network (Krizhevsky et al. 2012): 96-256-384-384-256 filters with
local response normalisation after the first two convolution blocks, computed with
convops pooling. Input (N, 3, H, W) with H, W >= 63; output (N, classes)."""
import torch
import torch.nn as tnn

import convops.functional as F

from .layers import layers


class LocalResponseNorm(tnn.Module):
    """b = a / (k + alpha/n * sum of a^2 over n neighbouring channels)^beta: the sum is an
    average pool over the channel dim (counting the zero padding), as torch.nn.LocalResponseNorm."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        squares = (x * x).unsqueeze(1)  # (N, 1, C, H, W): channels become a pooled dim
        front, back = self.size // 2, (self.size - 1) // 2
        squares = torch.nn.functional.pad(squares, (0, 0, 0, 0, front, back))
        mean = F.avg_pool3d(squares, (self.size, 1, 1), stride=1).squeeze(1)
        return x / (self.k + self.alpha * mean).pow(self.beta)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class AlexNet(tnn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, lrn: bool = False,
                 backend: str = "convops"):
        super().__init__()
        L = layers(backend)
        relu = lambda: tnn.ReLU(inplace=True)  # noqa: E731
        if lrn:
            self.features = tnn.Sequential(
                L.Conv2d(in_channels, 96, 11, stride=4, padding=2), relu(), LocalResponseNorm(), L.MaxPool2d(3, 2),
                L.Conv2d(96, 256, 5, padding=2), relu(), LocalResponseNorm(), L.MaxPool2d(3, 2),
                L.Conv2d(256, 384, 3, padding=1), relu(), L.Conv2d(384, 384, 3, padding=1), relu(),
                L.Conv2d(384, 256, 3, padding=1), relu(), L.MaxPool2d(3, 2))
        else:
            self.features = tnn.Sequential(
                L.Conv2d(in_channels, 64, 11, stride=4, padding=2), relu(), L.MaxPool2d(3, 2),
                L.Conv2d(64, 192, 5, padding=2), relu(), L.MaxPool2d(3, 2),
                L.Conv2d(192, 384, 3, padding=1), relu(), L.Conv2d(384, 256, 3, padding=1), relu(),
                L.Conv2d(256, 256, 3, padding=1), relu(), L.MaxPool2d(3, 2))
        self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
        self.classifier = tnn.Sequential(
            tnn.Dropout(dropout), tnn.Linear(256 * 6 * 6, 4096), relu(), tnn.Dropout(dropout),
            tnn.Linear(4096, 4096), relu(), tnn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def alexnet(num_classes: int = 1000, in_channels: int = 3, lrn: bool = False, backend: str = "convops",
            dropout: float = 0.5) -> AlexNet:
    return AlexNet(num_classes, in_channels, dropout, lrn, backend)
