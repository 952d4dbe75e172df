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
# Convolutions also run 'columns': the row engine with every convolution through im2col + GEMM
# (the row engine takes groups with few output channels through the direct forms instead),
# the GEMMs by convops' own GEMM forms (which 'row' runs only on CPUs where MKL would not use
# AVX-512: ops/gemm.h).
CONV_ENGINES = ("row", "columns", "element")
# The row engine's forms that have copies per instruction set (pooling, depthwise) also run baseline x86-64.
ISA_ENGINES = ("row", "row-baseline", "element")


@contextlib.contextmanager
def _env(name, value):
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def cpu_engine(name):
    """Run the CPU kernels with the given engine: 'element' is the per-element code the CUDA kernels run;
    'row' the fast CPU forms (the best copy the CPU has: AVX-512, AVX2), 'row-baseline' their baseline copy,
    'columns' the row engine with convolutions through im2col + GEMM only, by the GEMM forms."""
    if name == "cuda":  # the CPU switches do not reach the CUDA kernels
        yield
        return
    engine, isa = ("row", "baseline") if name == "row-baseline" else (name, None)
    gemm = "own" if name == "columns" else None
    with _env("CONVOPS_CPU_ENGINE", engine), _env("CONVOPS_CPU_ISA", isa), _env("CONVOPS_GEMM", gemm):
        yield


@pytest.fixture(params=ENGINES)
def engine(request):
    with cpu_engine(request.param):
        yield request.param


@pytest.fixture(params=CONV_ENGINES)
def conv_engine(request):
    with cpu_engine(request.param):
        yield request.param


@pytest.fixture(params=ISA_ENGINES)
def isa_engine(request):
    with cpu_engine(request.param):
        yield request.param


@pytest.fixture
def num_threads():
    """Call it with a thread count for torch (and convops) in this test; restored after."""
    old = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(old)


cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# The differential tests also run convops on the GPU (skipped without one) against torch on the CPU.
CUDA = pytest.param("cuda", marks=cuda_only)


def engine_device(name):
    """Where convops runs under an engine: 'cuda' runs the CUDA kernels, every other engine the CPU's."""
    return "cuda" if name == "cuda" else "cpu"
