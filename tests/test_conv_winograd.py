"""Winograd's F(2x2, 3x3) (csrc/kernels/winograd.h), which the row engine runs for 2-D 3x3
convolutions at unit stride and dilation with at least 32 input and output channels per
group and 64 tiles of 2x2 outputs per image, or 16 where the outputs fill whole tiles
(csrc/ops/conv/conv_cpu.cpp; a block of tiles then spans images): its forward and
its input gradient (the forward of the output gradient with the kernel flipped), in the
best copy and the baseline one, against torch. Integer-valued data comes out exact (every
factor of its transforms is 0, +-1 or +-1/2). The shapes reach every edge: odd output sizes
(half tiles), paddings 0 to 2, output channels that leave a partial block of rows in the
products, and images cut into several blocks of tiles, mid-row."""
import pytest
import torch
import torch.nn.functional as tF

import convops.functional as F
from conftest import cpu_engine

# (batch, in channels, out channels, groups, H, W, padding, bias)
SHAPES = [
    (2, 32, 32, 1, 16, 16, 1, True),    # the fewest tiles: 8 x 8
    (1, 32, 48, 1, 17, 21, 0, False),   # odd outputs (15 x 19): the last tiles half outside
    (2, 64, 64, 2, 16, 15, 2, True),    # two groups of 32, padding 2 (18 x 17 outputs)
    (3, 40, 33, 1, 16, 17, 1, True),    # 33 output channels: rows left over by the products' blocks of 8
    (1, 256, 256, 1, 16, 18, 1, True),  # 72 tiles in blocks of 24 (12 in double): cut mid-row
    (2, 48, 32, 1, 18, 17, (0, 2), False),  # padded along one dim only
    (5, 32, 32, 1, 8, 8, 1, True),      # 16 whole tiles per image: one block of five images
    (3, 256, 256, 1, 8, 8, 1, False),   # blocks of 24 tiles (12 in double) cut images mid-way
    (4, 32, 40, 2, 10, 8, 1, True),     # 20 tiles per image, two groups
]
ENGINES = ("row", "row-baseline")


def _integers(shape, dtype, gen):
    return torch.randint(-3, 4, shape, generator=gen).to(dtype)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_input_gradient_are_exact_on_integers(shape, dtype, engine):
    N, C, O, G, H, W, pad, has_bias = shape
    gen = torch.Generator().manual_seed(sum(shape[:6]))
    x = _integers((N, C, H, W), dtype, gen).requires_grad_()
    w = _integers((O, C // G, 3, 3), dtype, gen)
    b = _integers((O,), dtype, gen) if has_bias else None
    expected = tF.conv2d(x, w, b, padding=pad, groups=G)
    grad = _integers(expected.shape, dtype, gen)
    (expected_dx,) = torch.autograd.grad(expected, x, grad)
    with cpu_engine(engine):
        out = F.conv2d(x, w, b, padding=pad, groups=G)
        (dx,) = torch.autograd.grad(out, x, grad)
    assert torch.equal(out, expected)
    assert torch.equal(dx, expected_dx)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_torch_on_random_data(shape, dtype):
    N, C, O, G, H, W, pad, has_bias = shape
    gen = torch.Generator().manual_seed(1 + sum(shape[:6]))
    x = torch.randn(N, C, H, W, generator=gen, dtype=dtype).requires_grad_()
    w = torch.randn(O, C // G, 3, 3, generator=gen, dtype=dtype)
    b = torch.randn(O, generator=gen, dtype=dtype) if has_bias else None
    expected = tF.conv2d(x, w, b, padding=pad, groups=G)
    grad = torch.randn(expected.shape, generator=gen, dtype=dtype)
    (expected_dx,) = torch.autograd.grad(expected, x, grad)
    with cpu_engine("row"):
        out = F.conv2d(x, w, b, padding=pad, groups=G)
        (dx,) = torch.autograd.grad(out, x, grad)
    # its transforms add up to 4x4 values before and after the products: a few ulps of the
    # largest terms more than the direct sum, the outputs about sqrt(C/G * 9) in size
    scale = (C // G * 9) ** 0.5
    tol = dict(rtol=1e-4, atol=1e-5 * scale) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13 * scale)
    torch.testing.assert_close(out, expected, **tol)
    torch.testing.assert_close(dx, expected_dx, **tol)


def test_gradients_check():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 32, 16, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(32, 32, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(32, generator=gen, dtype=torch.float64, requires_grad=True)
    with cpu_engine("row"):
        fn = lambda x, w, b: F.conv2d(x, w, b, padding=1)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, w, b), atol=1e-7, rtol=1e-5, fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (x, w, b), atol=1e-7, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_transposed_convolution_at_unit_stride_runs_it_too(engine):
    """conv_transpose2d at unit stride is the input gradient of a convolution (its forward
    and, for its own input gradient, a convolution again)."""
    gen = torch.Generator().manual_seed(2)
    x = _integers((2, 48, 15, 16), torch.float32, gen).requires_grad_()
    w = _integers((48, 32, 3, 3), torch.float32, gen)
    b = _integers((32,), torch.float32, gen)
    expected = tF.conv_transpose2d(x, w, b, padding=1)
    grad = _integers(expected.shape, torch.float32, gen)
    (expected_dx,) = torch.autograd.grad(expected, x, grad)
    with cpu_engine(engine):
        out = F.conv_transpose2d(x, w, b, padding=1)
        (dx,) = torch.autograd.grad(out, x, grad)
    assert torch.equal(out, expected)
    assert torch.equal(dx, expected_dx)


# (batch, in channels, out channels, groups, H, W, padding, dilation, bias)
DILATED_SHAPES = [
    (2, 32, 32, 1, 32, 32, 2, 2, True),         # 4 phases of 16 x 16, padded by 1 each
    (1, 32, 40, 1, 32, 48, (2, 3), (2, 3), False),  # 6 phases, 2 along H and 3 along W
    (1, 64, 64, 2, 48, 48, 3, 3, True),         # 9 phases of 16 x 16, two groups of 32
    (2, 32, 33, 1, 34, 34, 0, 2, False),        # unpadded: phases of 17 x 17 to 15 x 15 outputs
    (1, 32, 32, 1, 33, 32, 2, 2, True),         # an odd side: no phases, the direct forms
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", DILATED_SHAPES, ids=str)
def test_dilated_convolution_by_phases_is_exact_on_integers(shape, dtype, engine):
    """A dilated 3x3 whose sides and padding are multiples of its dilation runs as undilated
    phases of the batch (conv_cpu.cpp, winograd_plan; kernels::move_phases): its forward and
    its input gradient (a dilated correlation of the output gradient), against torch."""
    N, C, O, G, H, W, pad, dil, has_bias = shape
    gen = torch.Generator().manual_seed(3 + H + W + C)
    x = _integers((N, C, H, W), dtype, gen).requires_grad_()
    w = _integers((O, C // G, 3, 3), dtype, gen)
    b = _integers((O,), dtype, gen) if has_bias else None
    expected = tF.conv2d(x, w, b, padding=pad, dilation=dil, groups=G)
    grad = _integers(expected.shape, dtype, gen)
    (expected_dx,) = torch.autograd.grad(expected, x, grad)
    with cpu_engine(engine):
        out = F.conv2d(x, w, b, padding=pad, dilation=dil, groups=G)
        (dx,) = torch.autograd.grad(out, x, grad)
    assert torch.equal(out, expected)
    assert torch.equal(dx, expected_dx)
