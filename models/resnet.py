"""ResNet-18/34/50 (He et al. 2015) with torchvision's structure, parameter names and
counts, so torchvision state_dicts load with strict=True. Input (N, 3, H, W), output (N, classes)."""
import torch
import torch.nn as tnn

from .layers import layers


class BasicBlock(tnn.Module):
    """Two 3x3 convolutions and an identity (or 1x1-projected) shortcut."""
    expansion = 1

    def __init__(self, L, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = L.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = L.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(tnn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, plus the shortcut."""
    expansion = 4

    def __init__(self, L, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = L.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = L.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = L.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(tnn.Module):
    def __init__(self, block, depths, num_classes=1000, in_channels=3, backend="convops"):
        super().__init__()
        L = layers(backend)
        self.inplanes = 64
        self.conv1 = L.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU(inplace=True)
        self.maxpool = L.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(L, block, 64, depths[0], 1)
        self.layer2 = self._stage(L, block, 128, depths[1], 2)
        self.layer3 = self._stage(L, block, 256, depths[2], 2)
        self.layer4 = self._stage(L, block, 512, depths[3], 2)
        self.avgpool = L.GlobalAvgPool()
        self.fc = tnn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, tnn.Conv2d):
                tnn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, L, block, planes, depth, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = tnn.Sequential(L.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                        tnn.BatchNorm2d(planes * block.expansion))
        blocks = [block(L, self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        blocks += [block(L, self.inplanes, planes) for _ in range(depth - 1)]
        return tnn.Sequential(*blocks)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes=1000, in_channels=3, backend="convops") -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, backend)


def resnet34(num_classes=1000, in_channels=3, backend="convops") -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels, backend)


def resnet50(num_classes=1000, in_channels=3, backend="convops") -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, backend)
