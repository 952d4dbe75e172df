"""LeNet-5 (LeCun et al. 1998): two 5x5 convolutions with 2x2 max pooling, then
120-84-classes fully connected layers. (N, in_channels, S, S) -> (N, classes); S = 28 by
default (32 for CIFAR), padded by 2 at the first convolution as the original's 32x32 input."""
import torch.nn as tnn

from .layers import layers


class LeNet5(tnn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, backend: str = "convops", image_size: int = 28):
        super().__init__()
        L = layers(backend)
        self.features = tnn.Sequential(
            L.Conv2d(in_channels, 6, 5, padding=2), tnn.ReLU(inplace=True), L.MaxPool2d(2),   # 6 x S/2
            L.Conv2d(6, 16, 5), tnn.ReLU(inplace=True), L.MaxPool2d(2),                      # 16 x (S/2-4)/2
        )
        side = (image_size // 2 - 4) // 2
        self.classifier = tnn.Sequential(
            tnn.Flatten(), tnn.Linear(16 * side * side, 120), tnn.ReLU(inplace=True), tnn.Linear(120, 84),
            tnn.ReLU(inplace=True), tnn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def lenet5(num_classes: int = 10, in_channels: int = 1, backend: str = "convops", image_size: int = 28) -> LeNet5:
    return LeNet5(in_channels, num_classes, backend, image_size)
