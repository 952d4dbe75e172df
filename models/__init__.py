"""The convops model zoo: the seed notes' networks built from convops.nn layers
(backend="convops", the default) or torch.nn layers (backend="torch"), and
`python -m models.train` to train them on torchvision datasets."""
from .alexnet import AlexNet, LocalResponseNorm, alexnet
from .googlenet import GoogLeNet, GoogLeNetOutputs, InceptionBlock, NaiveInceptionBlock, googlenet
from .lenet import LeNet5, lenet5
from .resnet import ResNet, resnet18, resnet34, resnet50
from .summary import summary
from .vgg import VGG, vgg11

BUILDERS = {"lenet5": lenet5, "alexnet": alexnet, "googlenet": googlenet, "resnet18": resnet18,
            "resnet34": resnet34, "resnet50": resnet50, "vgg11": vgg11}

__all__ = ["lenet5", "alexnet", "InceptionBlock", "NaiveInceptionBlock", "googlenet", "resnet18", "resnet34",
           "resnet50", "vgg11", "summary", "BUILDERS", "LeNet5", "AlexNet", "GoogLeNet", "ResNet", "VGG",
           "LocalResponseNorm", "GoogLeNetOutputs"]
