"""`python -m convops tour`: the seed notes' worked examples, computed by convops."""
import torch

from . import functional as F


def _show(label, tensor):
    values = tensor.squeeze().tolist()
    print(f"  {label:<48} {values}")


def run() -> None:
    x = torch.arange(1.0, 8.0).view(1, 1, 7)
    w = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3)
    print("1-D, x = 1..7, w = [1, 2, 3] (Knet conv4):")
    _show("true convolution (mode='convolution', 0)", F.conv1d(x, w, mode="convolution"))
    _show("  with padding=1", F.conv1d(x, w, padding=1, mode="convolution"))
    _show("  with padding=1, stride=3", F.conv1d(x, w, padding=1, stride=3, mode="convolution"))
    _show("cross-correlation (the default, torch's conv)", F.conv1d(x, w))
    x2 = torch.arange(1.0, 10.0).view(3, 3).t().reshape(1, 1, 3, 3)  # Julia's column-major reshape(1:9, 3, 3)
    w2 = torch.arange(1.0, 5.0).view(2, 2).t().reshape(1, 1, 2, 2)
    print("2-D, x = reshape(1:9, 3, 3), w = reshape(1:4, 2, 2):")
    _show("true convolution", F.conv2d(x2, w2, mode="convolution"))
    print("Output size (X + 2P - W) / S + 1:")
    image = torch.zeros(1, 3, 227, 227)
    print(f"  {'227x227 input, 11x11 kernel, stride 4 ->':<48} "
          f"{tuple(F.conv2d(image, torch.zeros(96, 3, 11, 11), stride=4).shape[2:])}")
    cols = F.unfold(x2, 2)
    print("im2col turns the 2-D convolution into one matrix product:")
    _show("unfold(x, 2) (4 patches as columns)", cols)
    _show("flipped kernel row @ columns", (w2.flip([2, 3]).reshape(1, 4) @ cols[0]).view(2, 2))
