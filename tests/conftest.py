"""Shared test settings: seeded hypothesis profiles and the CPU engine switch."""
import contextlib
import os

import pytest
import torch
from hypothesis import HealthCheck, settings

import convops  # noqa: F401  (registers the ops)

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("ci")

torch.manual_seed(0)

ENGINES = ("row", "element")


@contextlib.contextmanager
def cpu_engine(name):
    """Run the CPU kernels with the given engine: 'element' is the per-element code the CUDA kernels run."""
    old = os.environ.get("CONVOPS_CPU_ENGINE")
    os.environ["CONVOPS_CPU_ENGINE"] = name
    try:
        yield
    finally:
        if old is None:
            del os.environ["CONVOPS_CPU_ENGINE"]
        else:
            os.environ["CONVOPS_CPU_ENGINE"] = old


@pytest.fixture(params=ENGINES)
def engine(request):
    with cpu_engine(request.param):
        yield request.param


cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
