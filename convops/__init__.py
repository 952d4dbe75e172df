"""convops: convolution and pooling as verified custom PyTorch ops (C++ for CPU, CUDA for GPU)."""
import torch  # noqa: F401  (the extension links against torch's libraries)

from . import _C  # noqa: F401  (loading the library registers the convops:: ops)
from . import _ops  # noqa: F401  (fake kernels and autograd)
from . import functional
from . import functional as F
from . import nn

__all__ = ["functional", "F", "nn"]
