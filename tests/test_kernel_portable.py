"""The kernel sources stay microcontroller-ready: they compile warning-free as strict C11
for a Cortex-M0 (no FPU) and a Cortex-M4F, and the objects need nothing from the C
library but memcpy/memmove/memset (no libm, no malloc, no stdio, no OS)."""
import shutil
import subprocess
from pathlib import Path

import pytest

KERNEL = Path(__file__).resolve().parents[1] / "firmware" / "kernel"
CC, NM = "arm-none-eabi-gcc", "arm-none-eabi-nm"
ALLOWED = {"memcpy", "memmove", "memset"}   # fmaf: hardware on M4, lk_fma_int on M0


@pytest.mark.skipif(not shutil.which(CC), reason=f"needs {CC} (Debian: gcc-arm-none-eabi)")
@pytest.mark.parametrize("cpu", [["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"],
                                 ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                                  "-mfpu=fpv4-sp-d16"]], ids=["cortex-m0", "cortex-m4f"])
def test_kernel_builds_for_cortex_m_without_libc_or_os(tmp_path, cpu):
    sources = sorted(KERNEL.glob("*.c"))
    assert sources
    objs = []
    for src in sources:
        obj = tmp_path / (src.stem + ".o")
        r = subprocess.run([CC, "-std=c11", "-pedantic", "-Os", "-Wall", "-Wextra", "-Werror",
                            "-ffp-contract=off", *cpu, f"-I{KERNEL}", "-c", str(src), "-o", str(obj)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        objs.append(obj)
    out = subprocess.run([NM, "-u", *map(str, objs)], capture_output=True, text=True, check=True).stdout
    defined = subprocess.run([NM, "--defined-only", *map(str, objs)], capture_output=True,
                             text=True, check=True).stdout
    ours = {line.split()[-1] for line in defined.splitlines() if len(line.split()) == 3}
    needed = {line.split()[-1] for line in out.splitlines() if line.strip().startswith("U")}
    foreign = sorted(s for s in needed - ours - ALLOWED if not s.startswith(("__aeabi_", "__gnu_")))
    assert not foreign, f"kernel needs {foreign} from the platform"


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs a host C compiler (gcc)")
def test_integer_fma_equals_fmaf(tmp_path):
    """lk_fma_int (QLinearAdd's FMA on Cortex-M0/M3, which have no FMA instruction) equals
    the C library's correctly rounded fmaf on 4 million cases, ties and cancellations
    included."""
    exe = tmp_path / "fma_check"
    subprocess.run(["gcc", "-O2", "-std=c11", "-ffp-contract=off", f"-I{KERNEL}", "-o", str(exe),
                    str(KERNEL / "tools" / "fma_check.c"), "-lm"], check=True, capture_output=True)
    r = subprocess.run([str(exe), "4000000"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("0 mismatches in 4000000"), r.stdout
