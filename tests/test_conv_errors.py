"""Bad input raises ValueError (Python argument checks) or RuntimeError (C++
checks) naming the op, what was expected and what was got. Never a crash."""
import pytest
import torch

import convops.functional as F

ops = torch.ops.convops
x4 = torch.randn(2, 4, 8, 8)
w4 = torch.randn(6, 2, 3, 3)

CASES = [
    # (call, exception, message pattern)
    (lambda: F.conv2d(torch.randn(8, 8), w4), ValueError, r"conv2d: expected 3-D \(unbatched\) or 4-D"),
    (lambda: F.conv2d(x4, torch.randn(6, 4, 3)), ValueError, r"conv2d: expected 4-D weight"),
    (lambda: F.conv(torch.randn(2, 3), w4), ValueError, r"conv: expected a 3-D, 4-D or 5-D input"),
    (lambda: F.conv2d(x4, w4), RuntimeError, r"convops::conv: expected weight of shape .*in_channels/groups = 4"),
    (lambda: F.conv2d(x4, torch.randn(5, 2, 3, 3), groups=2), RuntimeError,
     r"expected out_channels \(5\) to be divisible by groups \(2\)"),
    (lambda: F.conv2d(x4, torch.randn(6, 1, 3, 3), groups=3), RuntimeError,
     r"expected in_channels \(4\) to be divisible by groups \(3\)"),
    (lambda: F.conv2d(x4, w4, groups=0), ValueError, r"conv2d: expected groups to be a positive int, got 0"),
    (lambda: F.conv2d(x4, w4, stride=0, groups=2), ValueError, r"conv2d: expected stride to be positive.*\(0, 0\)"),
    (lambda: F.conv2d(x4, w4, dilation=(1, -1), groups=2), ValueError, r"conv2d: expected dilation to be positive"),
    (lambda: F.conv2d(x4, w4, padding=-1, groups=2), ValueError, r"conv2d: expected padding to be >= 0"),
    (lambda: F.conv2d(x4, w4, padding=(1, 2, 3), groups=2), ValueError, r"expected padding to be an int or a tuple of 2"),
    (lambda: F.conv2d(x4, w4, padding="full", groups=2), ValueError, r"conv2d: expected padding .*'same' or 'valid', got 'full'"),
    (lambda: F.conv2d(x4, w4, padding="same", stride=2, groups=2), ValueError, r"padding='same' needs stride 1"),
    (lambda: F.conv2d(torch.randn(1, 4, 2, 2), w4, groups=2), RuntimeError, r"convops::conv: kernel .* is larger than the padded input"),
    (lambda: F.conv2d(x4, w4, torch.randn(5), groups=2), RuntimeError, r"convops::conv: expected bias of shape \(6\), got \[5\]"),
    (lambda: F.conv2d(x4, w4, groups=2, mode="flipped"), ValueError, r"conv2d: expected mode to be 'cross_correlation'.*got 'flipped'"),
    (lambda: F.conv2d(x4, w4, groups=2, mode=2), ValueError, r"expected mode .* got 2"),
    (lambda: F.conv2d(x4, w4.double(), groups=2), RuntimeError, r"convops::conv: expected weight to have the dtype of input \(Float\), got Double"),
    (lambda: F.conv2d(x4.int(), w4.int(), groups=2), RuntimeError, r"convops::conv: expected input to be float32, float64, float16 or bfloat16, got Int"),
    (lambda: F.conv2d(x4, w4, torch.randn(6, dtype=torch.float64), groups=2), RuntimeError, r"expected bias to have the dtype of input"),
    (lambda: F.conv2d(x4, w4, groups=2, bias=torch.randn(6, 1)), RuntimeError, r"expected bias of shape \(6\)"),
    (lambda: F.conv_transpose2d(x4, torch.randn(4, 3, 3, 3), output_padding=2, stride=2), ValueError,
     r"conv_transpose2d: expected output_padding smaller than stride or dilation"),
    (lambda: F.conv_transpose2d(x4, torch.randn(3, 3, 3, 3)), RuntimeError,
     r"convops::conv_transpose: expected weight.size\(0\) to equal the input channels \(4\)"),
    (lambda: F.conv_transpose2d(torch.randn(1, 4, 1, 1), torch.randn(4, 3, 1, 1), padding=1), RuntimeError,
     r"convops::conv_transpose: the output would be empty"),
    (lambda: F.conv_transpose1d(torch.randn(1, 4, 5), torch.randn(4, 2, 3), stride=(1, 1)), ValueError,
     r"conv_transpose1d: expected stride to be an int or a tuple of 1 ints"),
    (lambda: F.unfold(torch.randn(1, 2, 4, 4), (5, 5)), RuntimeError, r"convops::im2col: kernel .* is larger"),
    (lambda: F.unfold(torch.randn(1, 2, 4, 4), (2, 2, 2)), ValueError, r"unfold: expected input of shape"),
    (lambda: F.unfold(torch.randn(1, 2, 4, 4), 2, stride=0), ValueError, r"unfold: expected stride to be positive"),
    (lambda: F.fold(torch.randn(1, 7, 9), (4, 4), (2, 2)), RuntimeError,
     r"convops::col2im: expected columns.size\(1\) \(7\) to be divisible by prod\(kernel_size\) \(4"),
    (lambda: F.fold(torch.randn(1, 8, 10), (4, 4), (2, 2)), RuntimeError,
     r"convops::col2im: expected columns.size\(2\) to be 9 .* got 10"),
    (lambda: F.fold(torch.randn(1, 8, 9, 1), (4, 4), (2, 2)), ValueError, r"fold: expected 2-D \(unbatched\) or 3-D"),
    (lambda: ops.conv(x4, w4, None, [1], [0, 0], [1, 1], 2), RuntimeError,
     r"convops::conv: expected stride with 2 values \(one per spatial dim\), got \[1\]"),
    (lambda: ops.conv(torch.randn(2, 4), w4, None, [1, 1], [0, 0], [1, 1], 2), RuntimeError,
     r"convops::conv: expected input of shape \(N, C, \*spatial\)"),
    (lambda: ops.conv_backward_input(torch.randn(2, 6, 5, 5), w4, [2, 4, 8, 8], [1, 1], [0, 0], [1, 1], 2),
     RuntimeError, r"convops::conv_backward_input: expected grad_output of shape \[2, 6, 6, 6\]"),
    (lambda: ops.conv(x4, w4, None, [1, 1], [0, 0], [1, 1], -1), RuntimeError, r"expected groups > 0, got -1"),
]


@pytest.mark.parametrize("call,exc,pattern", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_bad_input_raises_a_clear_error(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_meta_tensors_propagate_shapes_without_kernels():
    x = torch.empty(2, 4, 9, 9, device="meta")
    w = torch.empty(6, 2, 3, 3, device="meta")
    assert F.conv2d(x, w, stride=2, padding=1, groups=2).shape == (2, 6, 5, 5)
    assert F.conv_transpose2d(x, torch.empty(4, 3, 3, 3, device="meta"), stride=2, output_padding=1).shape == \
        (2, 3, 20, 20)
    assert F.unfold(x, 3).shape == (2, 36, 49)
    assert F.fold(torch.empty(2, 36, 49, device="meta"), (9, 9), 3).shape == (2, 4, 9, 9)
