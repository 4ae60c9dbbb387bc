"""The ARM cost model (`make arm-cost-model`, firmware/kernel/tools/arm_cost_model.py) works
from the sources as they are: it finds the kernel's multiplying inner loops in the aarch64
build and has llvm-mca analyse them, and its qemu plugin counts exactly the instructions a
guest executes between two marker system calls. No speed is asserted: only that the
evidence is produced from the real code and the count is exact."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "firmware" / "kernel" / "tools"


def need(*tools):
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/system-deps.sh installs them)")


def test_static_model_finds_the_sdot_and_neon_loops():
    need("aarch64-linux-gnu-gcc")
    if not (shutil.which("llvm-mca-19") or shutil.which("llvm-mca")):
        pytest.skip("needs llvm-mca (Debian llvm-19; scripts/system-deps.sh installs it)")
    r = subprocess.run([sys.executable, str(TOOLS / "arm_cost_model.py"), "--static-only"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {line.split("|")[1].strip(): line for line in r.stdout.splitlines()
            if line.startswith("| ") and "MAC/cyc" in line}
    tile = next(v for k, v in rows.items() if k.startswith("SDOT tile, 4 px x 16 outputs"))
    cells = [c.strip() for c in tile.split("|")[1:-1]]
    assert cells[1] == "1024" and cells[3] == "no SDOT"          # 64 sdot x 16; a72 has none
    for cell in cells[4:]:                                         # a76, a78, neoverse-n1
        assert re.fullmatch(r"[\d.]+ cyc, [\d.]+ MAC/cyc \(\d+% of 32\)", cell), cell
    neon = next(v for k, v in rows.items() if k.startswith("NEON smull+sadalp dot, 4 output"))
    assert neon.split("|")[2].strip() == "64" and "% of 8)" in neon
    dw = next(v for k, v in rows.items() if k.startswith("NEON depthwise, 16 channels, 3x3 unrolled"))
    assert dw.split("|")[2].strip() == "144" and "% of 4)" in dw   # 9 taps x 16 channels, smlal.4s


def test_qemu_plugin_counts_exactly_between_markers(tmp_path):
    need("aarch64-linux-gnu-gcc", "qemu-aarch64", "gcc")
    plugin = tmp_path / "libinsn.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(plugin),
                    str(TOOLS / "qemu_insn_count.c")], check=True)
    src = tmp_path / "loop.c"
    src.write_text('#include <stdlib.h>\n#include <unistd.h>\n'
                   'int main(int argc, char **argv) { long n = atol(argv[1]);\n'
                   '  syscall(0x4C4B);\n'
                   '  __asm__ volatile("1: subs %0, %0, #1\\n b.ne 1b" : "+r"(n));\n'
                   '  syscall(0x4C4B); return argc < 2; }\n')
    exe = tmp_path / "loop"
    subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-static", "-o", str(exe), str(src)], check=True)

    def between(n):
        out = tmp_path / f"count{n}"
        subprocess.run(["qemu-aarch64", "-plugin", f"{plugin},out={out}", str(exe), str(n)],
                       check=True, timeout=60)
        total, start, end = map(int, out.read_text().split())
        assert 0 < start < end < total
        return end - start
    assert between(3000) - between(1000) == 2 * 2000      # subs + b.ne per iteration, exactly
