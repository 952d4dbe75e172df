"""The fake kernels let torch.compile (fullgraph) and torch.export trace convops ops."""
import torch

import convops.functional as F


def _net(x, w, wt):
    y = F.conv2d(x, w, padding=1, stride=2, mode="convolution")
    y = F.conv_transpose2d(torch.relu(y), wt, stride=2, output_padding=1)
    cols = F.unfold(y, 2, stride=2)
    return F.fold(cols, y.shape[2:], 2, stride=2)


def test_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    wt = torch.randn(4, 2, 3, 3, requires_grad=True)
    expected = _net(x, w, wt)
    expected.sum().backward()
    grads = [t.grad.clone() for t in (x, w, wt)]
    for t in (x, w, wt):
        t.grad = None
    compiled = torch.compile(_net, fullgraph=True)
    out = compiled(x, w, wt)
    out.sum().backward()
    torch.testing.assert_close(out, expected)
    for t, g in zip((x, w, wt), grads):
        torch.testing.assert_close(t.grad, g)


def test_export_matches_eager():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4, 3, 3, 3))
            self.wt = torch.nn.Parameter(torch.randn(4, 2, 3, 3))

        def forward(self, x):
            return _net(x, self.w, self.wt)

    net = Net()
    x = torch.randn(2, 3, 8, 8)
    exported = torch.export.export(net, (x,))
    assert any("convops" in str(n.target) for n in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(x), net(x))
