"""The model zoo: shapes and a backward step for every model, parity with the torch
backend, torchvision compatibility (parameter counts, state_dict keys, weights), the
seed's Inception figures, and the training CLI (a short run, torchvision's on-disk
format offline, exact resume, a 2-process DDP run on CPU)."""
import json
import os
import socket
import struct

import pytest
import torch
import torch.multiprocessing as mp
import torchvision

import convops.nn as cnn
import models
from conftest import CUDA
from models import train

# (builder kwargs, input size)
ZOO = {
    "lenet5": (dict(), (1, 28, 28)),
    "alexnet": (dict(num_classes=10), (3, 64, 64)),
    "alexnet_lrn": (dict(num_classes=10, lrn=True), (3, 64, 64)),
    "googlenet": (dict(num_classes=10), (3, 64, 64)),
    "resnet18": (dict(num_classes=10), (3, 32, 32)),
    "resnet34": (dict(num_classes=10), (3, 32, 32)),
    "resnet50": (dict(num_classes=10), (3, 32, 32)),
    "vgg11": (dict(num_classes=10), (3, 32, 32)),
}


def build(name, **kwargs):
    builder = models.BUILDERS[name.split("_")[0]]
    return builder(**{**ZOO[name][0], **kwargs})


@pytest.mark.parametrize("name", list(ZOO))
def test_forward_shape_and_backward_step(name):
    torch.manual_seed(0)
    model = build(name)
    assert any(isinstance(m, cnn.Conv2d) for m in model.modules())
    x = torch.randn(2, *ZOO[name][1])
    out = model(x)
    logits = out.logits if isinstance(out, models.GoogLeNetOutputs) else out
    assert logits.shape == (2, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    logits.sum().backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    model.eval()
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("name", list(ZOO))
def test_parity_with_the_torch_backend(name, device):
    torch.manual_seed(0)
    ours = build(name).double().eval().to(device)
    theirs = build(name, backend="torch").double().eval().to(device)
    assert not any(isinstance(m, cnn.Conv2d) for m in theirs.modules())
    with torch.no_grad():
        for p in ours.parameters():  # weights large enough that nothing vanishes
            p.normal_(0, 0.05)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, *ZOO[name][1], dtype=torch.float64, device=device)
    out, ref = ours(x), theirs(x)
    torch.testing.assert_close(out, ref)
    (out * ref.detach()).sum().backward()
    (ref * ref.detach()).sum().backward()
    for (param, p), q in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m: f"{param}: {m}")


TORCHVISION = {
    "alexnet": torchvision.models.alexnet,
    "googlenet": lambda: torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True),
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "vgg11": torchvision.models.vgg11,
}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_compatible(name):
    torch.manual_seed(0)
    reference = TORCHVISION[name]().eval()
    ours = models.BUILDERS[name]().eval()
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0, 0.05)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    torch.testing.assert_close(ours.double()(x), reference.double()(x))


def test_resnet18_parameter_count():
    assert sum(p.numel() for p in models.resnet18().parameters()) == 11_689_512


def test_local_response_norm_matches_torch():
    x = torch.randn(2, 10, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(models.LocalResponseNorm()(x), torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(x))


def test_seed_inception_figures():
    block = models.InceptionBlock(256, 128, 64, 192, 64, 96, 64)
    s = models.summary(block, (256, 28, 28))
    assert s.output_shape == (1, 480, 28, 28)
    assert s.conv_weights == 346_112
    assert s.mult_adds == 271_351_808  # 271 x 10^6
    naive = models.summary(models.NaiveInceptionBlock(256, 128, 192, 96), (256, 28, 28))
    assert naive.conv_weights == 1_089_536
    assert naive.mult_adds == 854_196_224  # 854 x 10^6
    table = str(s)
    assert "branch3.1.0" in table and "346,112" in table and "271x10^6" in table


def test_summary_of_lenet():
    s = models.summary(models.lenet5(), (1, 28, 28))
    assert s.output_shape == (1, 10)
    assert s.params == sum(p.numel() for p in models.lenet5().parameters())
    conv2 = next(r for r in s.rows if r.name == "features.3")
    assert conv2.output_shape == (1, 16, 10, 10) and conv2.mult_adds == 16 * 10 * 10 * 6 * 25


def test_builders_reject_an_unknown_backend():
    with pytest.raises(ValueError, match="backend: expected 'convops' or 'torch'"):
        models.lenet5(backend="jax")


# ---------------------------------------------------------------- training CLI

def _args(tmp_path, *extra):
    return train.parse_args(["--no-progress", "--out", str(tmp_path), "--limit", "512", "--epochs", "2",
                             *extra])


def test_short_training_run_lowers_the_loss_and_writes_outputs(tmp_path):
    history = train.run(_args(tmp_path)).history
    assert history[1]["train_loss"] < history[0]["train_loss"]
    for name in ("best.pt", "last.pt", "metrics.json", "curves.png", "filters.png"):
        assert (tmp_path / name).exists(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["args"]["model"] == "lenet5"


def test_resume_continues_exactly(tmp_path):
    straight = train.run(_args(tmp_path / "a"))
    half = train.parse_args(["--no-progress", "--out", str(tmp_path / "b"), "--limit", "512", "--epochs", "1"])
    train.run(half)
    resumed = train.run(_args(tmp_path / "b", "--resume", str(tmp_path / "b" / "last.pt")))
    assert len(resumed.history) == 2
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.history[1]["train_loss"] == straight.history[1]["train_loss"]


def _write_idx(path, array, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        f.write(array.numpy().astype("uint8").tobytes())


@pytest.mark.parametrize("dataset,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_dataset_from_disk_without_network(tmp_path, dataset, folder):
    raw = tmp_path / "data" / folder / "raw"
    raw.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 96), ("t10k", 32)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", torch.randint(0, 256, (n, 28, 28), generator=gen), 2051)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", torch.randint(0, 10, (n,), generator=gen), 2049)
    trainer = train.run(train.parse_args(["--dataset", dataset, "--data-dir", str(tmp_path / "data"), "--epochs",
                                          "1", "--no-progress", "--no-plots", "--out", str(tmp_path / "out")]))
    assert len(trainer.data.train) == 96 and len(trainer.data.test) == 32
    assert 0.0 <= trainer.history[0]["test_acc"] <= 1.0


def test_missing_dataset_says_how_to_get_it(tmp_path, capsys):
    code = train.main(["--dataset", "cifar10", "--data-dir", str(tmp_path), "--no-progress", "--out",
                       str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--download" in err and "Traceback" not in err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir, result_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = train.Trainer(train.parse_args(["--no-progress", "--no-plots", "--limit", "256", "--epochs", "1",
                                              "--out", out_dir]))
    trainer.run()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    torch.distributed.all_gather(gathered, flat)
    equal = all(torch.equal(gathered[0], g) for g in gathered)
    with open(os.path.join(result_dir, f"rank{rank}.json"), "w") as f:
        json.dump(dict(equal=equal, samples=len(trainer.train_set), steps=trainer.history[0]["train_acc"]), f)
    torch.distributed.destroy_process_group()


def test_two_process_ddp_on_cpu_keeps_replicas_equal(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "out"), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["equal"] for r in results)
    assert (tmp_path / "out" / "last.pt").exists()


def test_amp_and_channels_last_training(tmp_path):
    trainer = train.run(_args(tmp_path, "--amp", "--channels-last", "--model", "resnet18", "--batch-size", "32",
                              "--epochs", "1", "--limit", "64", "--no-plots"))
    assert trainer.history and trainer.history[0]["train_loss"] > 0
    assert trainer.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
