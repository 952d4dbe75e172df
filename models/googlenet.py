"""GoogLeNet / Inception v1 (Szegedy et al. 2014).

InceptionBlock is the paper's module: four parallel branches (1x1; 1x1 reduce then 3x3;
1x1 reduce then a true 5x5; 3x3 max pool then 1x1 projection), each convolution followed
by ReLU, concatenated along channels. NaiveInceptionBlock is the version without the 1x1
reductions that the notes compare it with. googlenet() follows torchvision (batch-normed
convolutions, and a 3x3 where the paper has its 5x5) so torchvision weights load into it.
Input (N, C, H, W) -> (N, sum of branch channels, H, W) for the blocks; (N, classes) for the net."""
from collections import namedtuple

import torch
import torch.nn as tnn

from .layers import layers

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


def _conv_relu(L):
    def make(cin, cout, k, **kw):
        return tnn.Sequential(L.Conv2d(cin, cout, k, **kw), tnn.ReLU(inplace=True))
    return make


class _Inception(tnn.Module):
    def __init__(self, conv, pool, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, wide_kernel):
        super().__init__()
        self.branch1 = conv(in_channels, ch1x1, 1)
        self.branch2 = tnn.Sequential(conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = tnn.Sequential(conv(in_channels, ch5x5red, 1),
                                      conv(ch5x5red, ch5x5, wide_kernel, padding=wide_kernel // 2))
        self.branch4 = tnn.Sequential(pool(3, stride=1, padding=1, ceil_mode=True), conv(in_channels, pool_proj, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionBlock(_Inception):
    """The paper's Inception module, with a true 5x5 branch."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, backend="convops"):
        L = layers(backend)
        super().__init__(_conv_relu(L), L.MaxPool2d, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5,
                         pool_proj, wide_kernel=5)


class NaiveInceptionBlock(tnn.Module):
    """1x1, 3x3 and 5x5 convolutions and a 3x3 max pool straight on the input, concatenated."""

    def __init__(self, in_channels, ch1x1, ch3x3, ch5x5, backend="convops"):
        super().__init__()
        L = layers(backend)
        conv = _conv_relu(L)
        self.branch1 = conv(in_channels, ch1x1, 1)
        self.branch2 = conv(in_channels, ch3x3, 3, padding=1)
        self.branch3 = conv(in_channels, ch5x5, 5, padding=2)
        self.branch4 = L.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class BasicConv2d(tnn.Module):
    """Convolution without bias, batch norm, ReLU (torchvision's GoogLeNet unit)."""

    def __init__(self, L, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__()
        self.conv = L.Conv2d(in_channels, out_channels, kernel_size, bias=False, **kwargs)
        self.bn = tnn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class InceptionAux(tnn.Module):
    def __init__(self, L, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.conv = BasicConv2d(L, in_channels, 128, 1)
        self.fc1 = tnn.Linear(2048, 1024)
        self.fc2 = tnn.Linear(1024, num_classes)
        self.dropout = tnn.Dropout(dropout)

    def forward(self, x):
        x = self.conv(torch.nn.functional.adaptive_avg_pool2d(x, (4, 4)))
        return self.fc2(self.dropout(torch.relu(self.fc1(torch.flatten(x, 1)))))


class GoogLeNet(tnn.Module):
    def __init__(self, num_classes=1000, aux_logits=True, transform_input=False, in_channels=3, dropout=0.2,
                 dropout_aux=0.7, backend="convops"):
        super().__init__()
        L = layers(backend)
        conv = lambda cin, cout, k, **kw: BasicConv2d(L, cin, cout, k, **kw)  # noqa: E731

        def inception(*channels):
            return _Inception(conv, L.MaxPool2d, *channels, wide_kernel=3)

        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.conv1 = conv(in_channels, 64, 7, stride=2, padding=3)
        self.maxpool1 = L.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = conv(64, 64, 1)
        self.conv3 = conv(64, 192, 3, padding=1)
        self.maxpool2 = L.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = L.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = L.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128)
        self.aux1 = InceptionAux(L, 512, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(L, 528, num_classes, dropout_aux) if aux_logits else None
        self.avgpool = L.GlobalAvgPool()
        self.dropout = tnn.Dropout(dropout)
        self.fc = tnn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (tnn.Conv2d, tnn.Linear)):
                tnn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)

    def _transform(self, x):
        if not self.transform_input:
            return x
        # torchvision's weights expect ImageNet-normalised input mapped back to [-1, 1]
        channels = [x[:, i:i + 1] * (s / 0.5) + (m - 0.5) / 0.5
                    for i, (m, s) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))]
        return torch.cat(channels, 1)

    def forward(self, x):
        x = self.maxpool1(self.conv1(self._transform(x)))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.inception4a(self.maxpool3(self.inception3b(self.inception3a(x))))
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.inception5b(self.inception5a(self.maxpool4(self.inception4e(x))))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(num_classes=1000, aux_logits=True, transform_input=False, in_channels=3, backend="convops"):
    return GoogLeNet(num_classes, aux_logits, transform_input, in_channels, backend=backend)
