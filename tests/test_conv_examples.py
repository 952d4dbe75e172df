"""The seed documents' worked examples (Knet conv4), exactly, and their output-size arithmetic."""
import torch

import convops.functional as F


def as1d(values):
    return torch.tensor(values, dtype=torch.float64).view(1, 1, -1)


def test_true_convolution_1d():
    x, w = as1d(range(1, 8)), as1d([1, 2, 3])
    assert F.conv1d(x, w, mode="convolution").flatten().tolist() == [10, 16, 22, 28, 34]
    assert F.conv1d(x, w, mode=0).flatten().tolist() == [10, 16, 22, 28, 34]


def test_true_convolution_1d_padding_and_stride():
    x, w = as1d(range(1, 8)), as1d([1, 2, 3])
    assert F.conv1d(x, w, padding=1, mode="convolution").flatten().tolist() == [4, 10, 16, 22, 28, 34, 32]
    assert F.conv1d(x, w, padding=1, stride=3, mode="convolution").flatten().tolist() == [4, 22, 32]


def test_cross_correlation_1d_is_the_default():
    x, w = as1d(range(1, 8)), as1d([1, 2, 3])
    assert F.conv1d(x, w).flatten().tolist() == [14, 20, 26, 32, 38]
    assert F.conv1d(x, w, mode="cross_correlation").flatten().tolist() == [14, 20, 26, 32, 38]
    assert F.conv1d(x, w, mode=1).flatten().tolist() == [14, 20, 26, 32, 38]


def test_true_convolution_2d():
    # Julia's column-major x = reshape(1:9, 3, 3) and w = reshape(1:4, 2, 2), written row by row
    x = torch.tensor([[1., 4, 7], [2, 5, 8], [3, 6, 9]]).view(1, 1, 3, 3)
    w = torch.tensor([[1., 3], [2, 4]]).view(1, 1, 2, 2)
    assert F.conv2d(x, w, mode="convolution").view(2, 2).tolist() == [[23, 53], [33, 63]]
    assert F.conv(x, w, mode="convolution").view(2, 2).tolist() == [[23, 53], [33, 63]]


def test_alexnet_first_layer_output_size():
    x = torch.zeros(1, 3, 227, 227)
    w = torch.zeros(96, 3, 11, 11)
    assert F.conv2d(x, w, stride=4).shape == (1, 96, 55, 55)


def test_padding_keeps_size_and_unbatched_inputs():
    x = torch.randn(3, 10, 10)
    w = torch.randn(4, 3, 3, 3)
    assert F.conv2d(x, w, padding=1).shape == (4, 10, 10)
    assert F.conv2d(x, w, padding="same").shape == (4, 10, 10)
    assert F.conv2d(x, w, padding="valid").shape == (4, 8, 8)


def test_unfold_matrix_times_flattened_kernel_is_the_convolution():
    """im2col turns convolution into one matrix product, as the notes derive."""
    x = torch.arange(1., 10).view(1, 1, 3, 3)
    w = torch.tensor([[1., 2], [3, 4]])
    cols = F.unfold(x, (2, 2))
    assert cols.shape == (1, 4, 4)
    product = (w.flatten() @ cols[0]).view(2, 2)
    assert torch.equal(product, F.conv2d(x, w.view(1, 1, 2, 2))[0, 0])
    assert torch.equal(F.fold(cols, (3, 3), (2, 2)),
                       torch.tensor([[1., 4, 3], [8, 20, 12], [7, 16, 9]]).view(1, 1, 3, 3))
