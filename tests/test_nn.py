"""convops.nn against torch.nn: every layer with copied weights (outputs, gradients,
repr, state_dict both ways, initialisation), constructor errors, convert() on
torchvision models, and the PyTorch 2 integrations (compile, export, meta, autocast,
determinism, pickling)."""
import copy
import io
import pickle

import pytest
import torch
import torch.nn as tnn
import torchvision

import convops.nn as cnn

torch.set_default_dtype(torch.float32)

# (convops class, torch class, constructor args, kwargs, input shape)
LAYERS = [
    (cnn.Conv1d, tnn.Conv1d, (4, 6, 3), dict(stride=2, padding=1), (2, 4, 11)),
    (cnn.Conv1d, tnn.Conv1d, (4, 6, 4), dict(padding="same", dilation=2, padding_mode="circular"), (2, 4, 11)),
    (cnn.Conv2d, tnn.Conv2d, (4, 6, 3), dict(padding=1, groups=2, bias=False), (2, 4, 9, 8)),
    (cnn.Conv2d, tnn.Conv2d, (4, 4, (3, 2)), dict(padding=(1, 2), groups=4, padding_mode="reflect"), (2, 4, 9, 8)),
    (cnn.Conv2d, tnn.Conv2d, (4, 6, 3), dict(padding="same", padding_mode="replicate"), (2, 4, 7, 7)),
    (cnn.Conv2d, tnn.Conv2d, (4, 6, 3), dict(padding="valid", stride=2), (4, 9, 8)),
    (cnn.Conv3d, tnn.Conv3d, (2, 4, 3), dict(padding=1, stride=(1, 2, 1)), (2, 2, 5, 6, 5)),
    (cnn.Conv3d, tnn.Conv3d, (2, 4, 3), dict(padding=1, padding_mode="circular"), (2, 2, 5, 6, 5)),
    (cnn.ConvTranspose1d, tnn.ConvTranspose1d, (4, 6, 3), dict(stride=2, output_padding=1), (2, 4, 7)),
    (cnn.ConvTranspose2d, tnn.ConvTranspose2d, (4, 6, 3), dict(stride=2, padding=1, groups=2), (2, 4, 5, 6)),
    (cnn.ConvTranspose3d, tnn.ConvTranspose3d, (2, 4, 2), dict(stride=2, dilation=2), (2, 2, 3, 4, 3)),
    (cnn.MaxPool1d, tnn.MaxPool1d, (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 4, 11)),
    (cnn.MaxPool2d, tnn.MaxPool2d, (3,), dict(stride=2, padding=1, dilation=2), (2, 4, 11, 10)),
    (cnn.MaxPool3d, tnn.MaxPool3d, (2,), dict(ceil_mode=True), (2, 3, 5, 6, 5)),
    (cnn.AvgPool1d, tnn.AvgPool1d, (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 4, 11)),
    (cnn.AvgPool2d, tnn.AvgPool2d, (3,), dict(stride=2, padding=1, divisor_override=4), (2, 4, 9, 8)),
    (cnn.AvgPool3d, tnn.AvgPool3d, (2,), dict(ceil_mode=True), (2, 3, 5, 6, 5)),
    (cnn.Unfold, tnn.Unfold, ((2, 3),), dict(padding=1, stride=2), (2, 3, 7, 8)),
    (cnn.Fold, tnn.Fold, ((6, 7), (2, 3)), dict(padding=1, stride=2), (2, 18, 16)),
]
IDS = [f"{c.__name__}-{i}" for i, (c, *_) in enumerate(LAYERS)]


def _pair(ours_cls, torch_cls, args, kwargs):
    torch.manual_seed(0)
    theirs = torch_cls(*args, **kwargs).double()
    torch.manual_seed(0)
    ours = ours_cls(*args, **kwargs).double()
    return ours, theirs


@pytest.mark.parametrize("ours_cls,torch_cls,args,kwargs,shape", LAYERS, ids=IDS)
def test_layer_matches_torch(ours_cls, torch_cls, args, kwargs, shape):
    ours, theirs = _pair(ours_cls, torch_cls, args, kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert torch.equal(a, b), f"initialisation differs for {name}"
    x = torch.randn(shape, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = ours(xa), theirs(xb)
    torch.testing.assert_close(out_a, out_b)
    grad = torch.randn_like(out_b)
    out_a.backward(grad)
    out_b.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=f"gradient of {name}")


@pytest.mark.parametrize("ours_cls,torch_cls,args,kwargs,shape", LAYERS[:11], ids=IDS[:11])
def test_state_dict_loads_both_ways(ours_cls, torch_cls, args, kwargs, shape):
    ours, theirs = _pair(ours_cls, torch_cls, args, kwargs)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    fresh = torch_cls(*args, **kwargs).double()
    fresh.load_state_dict(ours.state_dict())
    torch.testing.assert_close(fresh(x), ours(x))


def test_conv_transpose_output_size_argument():
    ours, theirs = _pair(cnn.ConvTranspose2d, tnn.ConvTranspose2d, (3, 2, 3), dict(stride=2))
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    out = ours(x, output_size=[12, 12])
    assert out.shape[-2:] == (12, 12)
    torch.testing.assert_close(out, theirs(x, output_size=[12, 12]))


def test_true_convolution_mode_layers():
    conv = cnn.Conv2d(2, 3, 3, padding=1, mode="convolution").double()
    assert "mode='convolution'" in repr(conv)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    expected = torch.nn.functional.conv2d(x, conv.weight.flip([2, 3]), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)
    up = cnn.ConvTranspose1d(2, 3, 3, mode=0).double()
    x1 = torch.randn(1, 2, 6, dtype=torch.float64)
    torch.testing.assert_close(up(x1), torch.nn.functional.conv_transpose1d(x1, up.weight.flip([2]), up.bias))


def test_global_avg_pool_layer():
    pool = cnn.GlobalAvgPool(keepdim=True)
    assert repr(pool) == "GlobalAvgPool(keepdim=True)"
    x = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(pool(x), tnn.AdaptiveAvgPool2d(1)(x))
    assert cnn.GlobalAvgPool()(x).shape == (2, 3)


@pytest.mark.parametrize("build", [
    lambda: cnn.Conv2d(3, 8, 3, groups=2),
    lambda: cnn.Conv2d(4, 6, 3, groups=4),
    lambda: cnn.Conv2d(3, 8, 3, padding_mode="mirror"),
    lambda: cnn.Conv2d(3, 8, 3, padding="full"),
    lambda: cnn.Conv2d(3, 8, 3, padding="same", stride=2),
    lambda: cnn.Conv2d(3, 8, 3, mode="flipped"),
    lambda: cnn.ConvTranspose2d(3, 8, 3, mode=5),
    lambda: cnn.Conv1d(4, 8, 3, groups=0),
])
def test_invalid_constructor_arguments_raise_value_error(build):
    with pytest.raises(ValueError):
        build()


# ---------------------------------------------------------------- convert()

MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), 64),
    "resnet50": (lambda: torchvision.models.resnet50(weights=None), 64),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), 64),
    "googlenet": (lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True), 64),
    "squeezenet": (lambda: torchvision.models.squeezenet1_0(weights=None), 64),
    "vgg11": (lambda: torchvision.models.vgg11(weights=None), 32),
}


def _count(model, classes):
    return sum(type(m) in classes for m in model.modules())


@pytest.mark.parametrize("name", list(MODELS))
def test_convert_torchvision_model_same_outputs_and_gradients(name):
    build, size = MODELS[name]
    torch.manual_seed(0)
    original = build().double().eval()
    converted = cnn.convert(original)
    assert converted is not original
    torch_layers = (tnn.Conv2d, tnn.MaxPool2d, tnn.AvgPool2d)
    assert _count(converted, torch_layers) == 0 and _count(original, torch_layers) > 0
    assert _count(converted, (cnn.Conv2d,)) == _count(original, (tnn.Conv2d,))
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    out_a, out_b = original(x), converted(x)
    torch.testing.assert_close(out_b, out_a)
    grad = torch.randn_like(out_a)
    out_a.backward(grad)
    out_b.backward(grad)
    for (n, p), (_, q) in zip(original.named_parameters(), converted.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=f"gradient of {n}")


def test_convert_adaptive_pools():
    model = tnn.Sequential(tnn.Conv2d(3, 4, 3), tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(),
                           tnn.Linear(4, 2))
    converted = cnn.convert(model)
    assert isinstance(converted[1], cnn.GlobalAvgPool) and converted[1].keepdim
    keep = cnn.convert(tnn.Sequential(tnn.AdaptiveAvgPool2d((7, 7))))
    assert type(keep[0]) is tnn.AdaptiveAvgPool2d
    assert isinstance(cnn.convert(tnn.AdaptiveAvgPool1d(1)), cnn.GlobalAvgPool)
    assert isinstance(cnn.convert(tnn.Conv1d(2, 3, 3)), cnn.Conv1d)


def test_convert_inplace_shares_parameters_hooks_and_optimizer():
    model = tnn.Sequential(tnn.Conv2d(3, 4, 3), tnn.ReLU(), tnn.MaxPool2d(2))
    weight = model[0].weight
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    converted = cnn.convert(model, inplace=True)
    assert converted is model and isinstance(model[0], cnn.Conv2d) and model[0].weight is weight
    out = model(torch.randn(1, 3, 8, 8))
    assert seen == [torch.Size([1, 4, 6, 6])]
    before = weight.detach().clone()
    out.sum().backward()
    opt.step()
    assert not torch.equal(before, model[0].weight.detach())


def test_convert_rejects_non_modules():
    with pytest.raises(ValueError, match="convert: expected a torch.nn.Module"):
        cnn.convert(torch.randn(3))


# ---------------------------------------------------------------- PyTorch 2

def _small_net():
    torch.manual_seed(0)
    return tnn.Sequential(cnn.Conv2d(3, 8, 3, padding=1), tnn.ReLU(), cnn.MaxPool2d(2, ceil_mode=True),
                          cnn.Conv2d(8, 8, 3, groups=2, padding="same", mode="convolution"),
                          cnn.AvgPool2d(2, count_include_pad=False), cnn.ConvTranspose2d(8, 4, 2, stride=2),
                          cnn.GlobalAvgPool(), tnn.Linear(4, 3))


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph_matches_eager(dynamic):
    torch._dynamo.reset()
    net = _small_net()
    x = torch.randn(2, 3, 12, 12)
    expected = net(x)
    expected.sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    compiled = torch.compile(net, fullgraph=True, dynamic=dynamic)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    for p, g in zip(net.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)
    if dynamic:
        x2 = torch.randn(3, 3, 16, 14)
        torch.testing.assert_close(compiled(x2), net(x2), rtol=1e-4, atol=1e-5)


def test_export_matches_eager():
    net = _small_net().eval()
    x = torch.randn(2, 3, 12, 12)
    exported = torch.export.export(net, (x,))
    torch.testing.assert_close(exported.module()(x), net(x))


def test_meta_tensors_propagate_through_every_layer():
    for ours_cls, _, args, kwargs, shape in LAYERS:
        layer = ours_cls(*args, **kwargs).to("meta")
        out = layer(torch.empty(shape, device="meta"))
        real = ours_cls(*args, **kwargs)(torch.randn(shape))
        assert out.shape == real.shape and out.device.type == "meta"


def test_cpu_bfloat16_autocast_runs_convolutions_in_bfloat16():
    net = _small_net()
    x = torch.randn(2, 3, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net[0](x)
        pooled = net[2](y)
        out = net(x)
    assert y.dtype == torch.bfloat16 and pooled.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), net(x), rtol=5e-2, atol=5e-2)
    out.float().sum().backward()
    assert net[0].weight.grad.dtype == torch.float32


def test_deterministic_algorithms_are_respected():
    net = _small_net()
    x = torch.randn(4, 3, 12, 12, requires_grad=True)
    torch.use_deterministic_algorithms(True)
    try:
        results = []
        for _ in range(2):
            net.zero_grad()
            x.grad = None
            out = net(x)
            out.sum().backward()
            results.append([out.detach().clone(), x.grad.clone()] + [p.grad.clone() for p in net.parameters()])
    finally:
        torch.use_deterministic_algorithms(False)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_pickle_deepcopy_and_torch_save_of_a_converted_model():
    model = cnn.convert(torchvision.models.resnet18(weights=None)).eval()
    x = torch.randn(1, 3, 32, 32)
    expected = model(x)
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        torch.testing.assert_close(clone(x), expected)
        assert isinstance(clone.conv1, cnn.Conv2d)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(loaded(x), expected)
