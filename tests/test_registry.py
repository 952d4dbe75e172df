"""Every op the library registers is covered by an opcheck case, and its Autograd kernel
(convops/_ops.py) records a graph only when a gradient is needed."""
import torch
from torch.autograd import gradgradcheck

import convops._ops
from convops._ops import OP_NAMES
from test_conv_autograd import _opcheck_cases
from test_pool_semantics import _pool_opcheck_cases

ops = torch.ops.convops


def test_every_op_has_an_opcheck_case():
    cases = list(_opcheck_cases().values()) + list(_pool_opcheck_cases().values())
    covered = {op.name().split("::")[-1].split(".")[0] for op, _ in cases}
    assert set(OP_NAMES) <= covered, set(OP_NAMES) - covered


def _max_pool_call(x):
    # with_indices and tap_indices left to their schema defaults (True, False)
    return ops.max_pool(x, [2, 2], [2, 2], [0, 0], [1, 1], False)


def test_autograd_kernels_record_only_when_a_gradient_is_needed():
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    w = torch.randn(4, 3, 3, 3)
    out = ops.conv(x, w, None, [1, 1], [1, 1], [1, 1], 1)
    assert out.requires_grad and type(out.grad_fn).__name__ == "convops_convBackward"
    with torch.no_grad():
        assert not ops.conv(x, w, None, [1, 1], [1, 1], [1, 1], 1).requires_grad
    assert ops.conv(x.detach(), w, None, [1, 1], [1, 1], [1, 1], 1).grad_fn is None
    values, indices = _max_pool_call(x)
    assert values.requires_grad and not indices.requires_grad


def test_autograd_kernels_fill_schema_defaults_without_torch_helper(monkeypatch):
    # torch.library.register_autograd's kernels call fill_defaults on every forward (12.5 us
    # here); ours read the defaults once, at registration.
    def fail(*args, **kwargs):
        raise AssertionError("fill_defaults called per call")
    monkeypatch.setattr(torch._library.utils, "fill_defaults", fail)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    values, _ = _max_pool_call(x)
    (grad,) = torch.autograd.grad(values.sum(), x)
    expected = torch.autograd.grad(torch.nn.functional.max_pool2d(x, 2).sum(), x)[0]
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)
    assert gradgradcheck(lambda x: _max_pool_call(x)[0], (x,))


def test_autograd_kernels_compute_only_the_gradients_asked_for(monkeypatch):
    called = []

    class Spy:
        def __getattr__(self, name):
            called.append(name)
            return getattr(ops, name)
    monkeypatch.setattr(convops._ops, "ops", Spy())
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    out = ops.conv(x, w, b, [1, 1], [1, 1], [1, 1], 1)
    out.backward(torch.ones_like(out))
    reference = w.detach().requires_grad_()
    torch.nn.functional.conv2d(x, reference, padding=1).sum().backward()
    torch.testing.assert_close(w.grad, reference.grad)
    assert torch.equal(b.grad, torch.full_like(b, 72.0))  # 2 images x 6 x 6 positions
    assert called == ["conv_backward_weight"]
