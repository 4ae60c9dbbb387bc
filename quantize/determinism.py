"""Training that gives the same bytes on any CPU: the kernel settings torch must train under.

PyTorch picks its float kernels by the CPU it finds, and kernels for different instruction
sets add in different orders, so the same seed on an Intel AVX-512 box and an AMD AVX2 box
gives weights that differ in their last bits -- and, after a few thousand Adam steps, int8
weights that differ. Every setting below removes one such choice; each says which.

Two of them are read by torch (and the MKL inside it) only once, when torch is first
imported, so they must be in the environment before that: :func:`apply` puts them there and
is called before ``import torch`` by everything that trains (:mod:`lanthorn.quantize.net`,
:func:`lanthorn.host.voice_train.fit`, ``lanthorn``'s command line, the test suite).
:func:`require` then checks, after import, that torch really runs with them.

If torch was imported before :func:`apply` could act (a user's script imported it first),
the settings can no longer take effect in this process, and :func:`require` refuses with one
line that says how to fix it, rather than quietly training bytes that only this CPU gives.
(Re-running the training in a fresh subprocess was the alternative; it would lose what the
caller holds in memory -- prepared splits, progress callbacks, the studio's live log -- and
pay torch's import twice, for a case a one-line fix avoids.)

``LANTHORN_NATIVE_KERNELS=1`` is the escape hatch: nothing is set, torch picks the machine's
fastest kernels, and the bytes are this CPU's. It exists so a test can show that the settings
matter (tests/test_cpu_independent.py: with it, two dispatches on one machine differ).
"""
from __future__ import annotations

import contextlib
import os
import sys

#: the escape hatch (see the module's docstring)
NATIVE_ENV = "LANTHORN_NATIVE_KERNELS"

#: what goes into the environment before torch is imported, and why
SETTINGS = {
    # ATen compiles its vectorised CPU kernels (sums, means, softmax, the optimizers'
    # element-wise updates, batch norm) once per instruction set -- DEFAULT, AVX2, AVX-512 on
    # x86 -- and picks one at import by the CPU. Vector width sets the order a reduction adds
    # in, and the AVX2/AVX-512 builds fuse multiply-adds; "default" is the plain build (no
    # FMA, scalar order), the same code on every x86 CPU.
    "ATEN_CPU_CAPABILITY": "default",
    # MKL (torch's GEMM on x86: nn.Linear, and convolution once oneDNN is off) chooses its
    # kernels and blocking by CPU and vendor (its AVX-512, AVX2 and AMD paths add in other
    # orders). Conditional Numerical Reproducibility's COMPATIBLE branch is the one code path
    # MKL runs on every x86 CPU; STRICT adds its strict mode (accepted with COMPATIBLE,
    # checked: mkl_cbwr_get reports 0x10003).
    "MKL_CBWR": "COMPATIBLE,STRICT",
}
#: MKL's branch code for COMPATIBLE (mkl_cbwr.h: MKL_CBWR_COMPATIBLE)
_MKL_COMPATIBLE = 3


def native() -> bool:
    """True when the escape hatch is set: train with this CPU's own kernels."""
    return os.environ.get(NATIVE_ENV, "").strip() not in ("", "0")


def apply() -> None:
    """Put :data:`SETTINGS` into the environment, if torch is not imported yet (afterwards
    they would do nothing). Idempotent; a no-op under the escape hatch."""
    if native() or "torch" in sys.modules:
        return
    os.environ.update(SETTINGS)


def require(threads: int = 1) -> None:
    """Make this process's torch train the same bytes on any CPU, or refuse in one line.

    After import: one thread (a reduction split across threads adds in an order that depends
    on how many there are), oneDNN and NNPACK off (their convolution and matmul kernels are
    JIT-compiled or chosen per instruction set; off, a convolution is ATen's im2col and
    MKL's GEMM, both fixed above), and the dispatch checked."""
    apply()
    import torch

    torch.set_num_threads(threads)
    if native():
        return
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    got = dispatch()
    if got["aten"] != "DEFAULT" or got["mkl_cbwr"] not in (None, _MKL_COMPATIBLE):
        from lanthorn.errors import UserError
        raise UserError(
            f"torch was imported before lanthorn could fix its CPU kernels (it runs ATen {got['aten']}"
            f", MKL branch {got['mkl_cbwr']}), so training here would give bytes no other CPU "
            f"gives: import lanthorn.quantize.determinism and call apply() before torch, or set "
            f"{' '.join(f'{k}={v}' for k, v in SETTINGS.items())} (or {NATIVE_ENV}=1 to accept "
            f"this CPU's bytes)")


@contextlib.contextmanager
def fixed_kernels():
    """For a float computation outside training whose result goes into a bundle (the
    quantizer's bias correction convolves in torch): one thread, oneDNN and NNPACK off for
    its duration, then the caller's settings back. Unlike :func:`require` it never refuses:
    if torch came first with another dispatch, the ATen/MKL part is what that process has."""
    apply()
    import torch

    if native():
        yield
        return
    threads, mkldnn, nnpack = (torch.get_num_threads(), torch.backends.mkldnn.enabled,
                               torch._C._get_nnpack_enabled())
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn
        torch.backends.nnpack.set_flags(nnpack)


def dispatch() -> dict:
    """What torch runs with here: ATen's kernel build, MKL's reproducibility branch (None
    where torch has no MKL, as on arm64), threads, oneDNN. Recorded in what a training
    writes, so a bundle says how it was trained."""
    import torch

    return {"aten": torch.backends.cpu.get_cpu_capability(), "mkl_cbwr": _mkl_branch(),
            "threads": torch.get_num_threads(), "mkldnn": bool(torch.backends.mkldnn.enabled),
            "native": native()}


def _mkl_branch() -> int | None:
    """MKL's current CNR branch (mkl_cbwr.h codes: 1 off, 2 auto, 3 COMPATIBLE), read from
    the MKL linked into libtorch_cpu; None without MKL."""
    import ctypes

    import torch
    if not torch.backends.mkl.is_available():
        return None
    lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        get = ctypes.CDLL(lib).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    return get(1)   # MKL_CBWR_BRANCH
