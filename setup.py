"""Builds convops._C: the C++ sources always, the CUDA sources when a CUDA toolkit is found.

Environment switches:
  CONVOPS_CUDA=0   build CPU-only even if a toolkit is present
  CONVOPS_CUDA=1   require a CUDA build (fail if no toolkit is found)
  CUDA_HOME        the toolkit folder (must hold bin/nvcc and include/cuda_runtime.h)
  TORCH_CUDA_ARCH_LIST  GPU architectures; defaults to the local GPU, or 7.5+PTX without one
  CONVOPS_EXTRA_CFLAGS  extra C++ flags, e.g. -march=native for a build tuned to this machine only
"""
import glob
import json
import os
import shutil
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _is_toolkit(folder):
    return bool(folder) and os.path.isfile(os.path.join(folder, "bin", "nvcc")) and os.path.isfile(
        os.path.join(folder, "include", "cuda_runtime.h"))


def _find_cuda_home():
    """The real toolkit folder. The nvcc on PATH may be a wrapper script, so its
    parent is not trusted blindly: every candidate must hold nvcc and the runtime headers."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
        try:  # a wrapper script that execs the real nvcc names its folder
            with open(nvcc, "rb") as f:
                head = f.read(4096).decode("utf-8", "ignore")
            for token in head.split():
                if token.endswith("/bin/nvcc"):
                    candidates.append(os.path.dirname(os.path.dirname(token)))
        except OSError:
            pass
    candidates += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for folder in candidates:
        if _is_toolkit(folder):
            return os.path.realpath(folder)
    return None


def _nvidia_wheel_includes():
    """cuBLAS/cuSPARSE headers that ATen's CUDA headers want ship in the nvidia wheels."""
    try:
        import nvidia
    except ImportError:
        return []
    found = []
    for root in list(nvidia.__path__):
        for inc in glob.glob(os.path.join(root, "*", "include")):
            if os.path.isfile(os.path.join(inc, "cublas_v2.h")):
                found.append(inc)
    return found


def _write_build_info(cuda_home):
    """What this build decided, for the tests: a CUDA build must register CUDA kernels for every op."""
    info = {"cuda": bool(cuda_home), "cuda_home": cuda_home,
            "arch_list": os.environ.get("TORCH_CUDA_ARCH_LIST") if cuda_home else None}
    with open(os.path.join(HERE, "convops", "_build_info.json"), "w") as f:
        json.dump(info, f, indent=1)


def _extensions():
    mode = os.environ.get("CONVOPS_CUDA", "auto")
    cuda_home = None if mode == "0" else _find_cuda_home()
    if mode == "1" and cuda_home is None:
        sys.exit("setup.py: CONVOPS_CUDA=1 but no CUDA toolkit (bin/nvcc + include/cuda_runtime.h) was found; "
                 "set CUDA_HOME")
    if cuda_home:
        os.environ["CUDA_HOME"] = cuda_home  # before torch.utils.cpp_extension reads it

    import torch
    from torch.utils import cpp_extension

    if cuda_home and torch.version.cuda is None:
        print("setup.py: torch has no CUDA support; building CPU-only", file=sys.stderr)
        cuda_home = None

    sources = sorted(glob.glob("csrc/**/*.cpp", recursive=True))
    # -ffp-contract=off: the AVX2/AVX-512 copies of the CPU forms (csrc/kernels/cpu_isa.h) must not
    # fuse multiply-adds that the baseline copy rounds twice, so that all copies agree bitwise.
    cxx = ["-O3", "-g0", "-fopenmp", "-ffp-contract=off"] + os.environ.get("CONVOPS_EXTRA_CFLAGS", "").split()
    extra = {"cxx": cxx}
    if cuda_home:
        cpp_extension.CUDA_HOME = cuda_home
        sources += sorted(glob.glob("csrc/**/*.cu", recursive=True))
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = "7.5+PTX"
        extra["nvcc"] = ["-O3"]
        ext_cls = cpp_extension.CUDAExtension
        print(f"setup.py: building with CUDA from {cuda_home} for arch "
              f"{os.environ.get('TORCH_CUDA_ARCH_LIST', 'of the local GPU')}", file=sys.stderr)
    else:
        ext_cls = cpp_extension.CppExtension
        print("setup.py: building CPU-only", file=sys.stderr)
    _write_build_info(cuda_home)
    ext = ext_cls(
        name="convops._C",
        sources=sources,
        include_dirs=[os.path.join(HERE, "csrc")] + (_nvidia_wheel_includes() if cuda_home else []),
        define_macros=[("CONVOPS_WITH_CUDA", "1")] if cuda_home else [],
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
        py_limited_api=False,
    )
    return [ext], cpp_extension.BuildExtension.with_options(use_ninja=True)


ext_modules, build_ext = _extensions()

setup(
    name="convops",
    version="0.1.0",
    description="Convolution and pooling as verified custom PyTorch ops (C++ and CUDA)",
    packages=find_packages(include=["convops", "convops.*"]),
    ext_modules=ext_modules,
    cmdclass={"build_ext": build_ext},
    python_requires=">=3.10",
)
