"""VGG-11 (Simonyan and Zisserman 2014, configuration A) with torchvision's structure and
parameter names. Input (N, 3, H, W), output (N, classes)."""
import torch
import torch.nn as tnn

from .layers import layers

CONFIG_A = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(tnn.Module):
    def __init__(self, config=CONFIG_A, num_classes=1000, in_channels=3, dropout=0.5, backend="convops"):
        super().__init__()
        L = layers(backend)
        features, channels = [], in_channels
        for item in config:
            if item == "M":
                features.append(L.MaxPool2d(2, 2))
            else:
                features += [L.Conv2d(channels, item, 3, padding=1), tnn.ReLU(inplace=True)]
                channels = item
        self.features = tnn.Sequential(*features)
        self.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
        self.classifier = tnn.Sequential(
            tnn.Linear(512 * 7 * 7, 4096), tnn.ReLU(True), tnn.Dropout(dropout),
            tnn.Linear(4096, 4096), tnn.ReLU(True), tnn.Dropout(dropout), tnn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg11(num_classes=1000, in_channels=3, backend="convops") -> VGG:
    return VGG(CONFIG_A, num_classes, in_channels, backend=backend)
