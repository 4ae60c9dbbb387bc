"""What built a bundle: versions, commit, Python, the CPU and its float/int8 features.

Written into each bundle's own ``build`` section (see :mod:`lanthorn.device.engine.bundle`) by the
process that writes it, and shown by ``lanthorn inspect``. It is the one part of a bundle
that is *expected* to differ between two machines that rebuild the same model, so it is the
one part the reproducibility comparison leaves out (:func:`lanthorn.device.engine.bundle.
reproducible_content`): training and quantization give the same bytes on any CPU, and this
record says honestly on which one they were made.

Standard library only (the device layer): package versions come from their installed
metadata (no torch import), the commit from ``git`` when lanthorn runs from a clone.
"""
from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

#: the packages whose versions change what a bundle contains
PACKAGES = ("numpy", "torch", "onnx", "onnxruntime")
#: CPU flags that decide which float and int8 kernels a library picks (x86 and arm64 names)
_RELEVANT = re.compile(r"^(sse4_[12]|ssse3|avx|avx2|fma|f16c|avx512.*|avx_vnni.*|amx.*|"
                       r"asimd|asimddp|asimdhp|fphp|i8mm|bf16|sve\d?|sme\d?)$")
_ROOT = Path(__file__).resolve().parents[2]   # device/engine/ -> the repository


def build_record() -> dict:
    """The record for a bundle written now, by this process (cached: it does not change)."""
    return dict(_record())


@functools.lru_cache(maxsize=1)
def _record() -> dict:
    from lanthorn import __version__

    commit, dirty = git_commit()
    model, features = cpu()
    rec = {"lanthorn": __version__, "commit": commit, "dirty": dirty,
           "python": platform.python_version(), "machine": platform.machine(),
           "cpu": model, "cpu_features": features,
           "torch_kernels": torch_kernels()}
    rec.update({name: package_version(name) for name in PACKAGES})
    return rec


def package_version(name: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def git_commit() -> tuple[str | None, bool | None]:
    """(commit, whether tracked files differ from it) of the clone lanthorn runs from;
    (None, None) for an installed copy (no ``.git`` beside the package)."""
    if not (_ROOT / ".git").exists():
        return None, None
    try:
        head = subprocess.run(["git", "-C", str(_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        status = subprocess.run(["git", "-C", str(_ROOT), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None, None
    if head.returncode != 0:
        return None, None
    return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None


def cpu() -> tuple[str, list[str]]:
    """(the CPU's model name, its flags that matter for float and int8 kernels)."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return model, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = {f for f in value.split() if _RELEVANT.match(f)}
    return model, sorted(flags)


def torch_kernels() -> str:
    """Whether torch in this process was set to its CPU-independent kernels
    (lanthorn.quantize.determinism), read from the environment it set."""
    if os.environ.get("LANTHORN_NATIVE_KERNELS", "").strip() not in ("", "0"):
        return "native (LANTHORN_NATIVE_KERNELS=1): this CPU's own kernels"
    if os.environ.get("ATEN_CPU_CAPABILITY") == "default" and \
            os.environ.get("MKL_CBWR", "").startswith("COMPATIBLE"):
        return "cpu-independent (ATEN_CPU_CAPABILITY=default, MKL_CBWR=COMPATIBLE)"
    return "torch not set up by lanthorn in this process" if "torch" in sys.modules else "no torch"


def describe(rec: dict) -> list[str]:
    """The record as the lines ``lanthorn inspect`` prints."""
    if not rec:
        return ["built by: (no build record: written before lanthorn 0.3.0)"]
    commit = rec.get("commit")
    where = (f"commit {commit[:12]}{' + local changes' if rec.get('dirty') else ''}"
             if commit else "not from a clone")
    versions = ", ".join(f"{k} {rec[k]}" for k in ("python", *PACKAGES) if rec.get(k))
    return [f"built by: lanthorn {rec.get('lanthorn')} ({where}); {versions}",
            f"built on: {rec.get('cpu')} ({rec.get('machine')}): "
            f"{' '.join(rec.get('cpu_features') or []) or 'no feature flags read'}",
            f"torch kernels (writing process): {rec.get('torch_kernels')}"]
