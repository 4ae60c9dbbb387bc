"""The C kernel cross-compiled for aarch64 and run under qemu-aarch64 gives the numpy
reference's int8 outputs on every element, in every variant the emulated CPU supports:

* an armv8-a build under ``-cpu cortex-a72`` (a Raspberry Pi 4: NEON, no dot product),
* the same armv8-a build under ``-cpu max`` (run-time dispatch must find SDOT),
* an armv8.2-a+dotprod build under ``-cpu max`` (a Pi 5 class core).

Shared vectors: each graph of kernel_graphs.op_suite (every operator and notable geometry)
plus the shipped default model is written as the LKB1 blob the extension also uses, with
random input sets; firmware/kernel/tools/lk_run_blob.c runs them and writes the outputs.
"""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from kernel_graphs import op_suite, random_input_sets

from lanthorn.device.engine import engine_c
from lanthorn.device.engine.engine_ref import ReferenceEngine
from lanthorn.device.engine.graph import raw_outputs

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "firmware" / "kernel"
CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"
MODEL = ROOT / "device" / "models" / "temperament.lanthorn"

pytestmark = pytest.mark.skipif(
    not (shutil.which(CC) and shutil.which(QEMU)),
    reason=f"needs {CC} and {QEMU} (Debian: gcc-aarch64-linux-gnu qemu-user; "
           "scripts/system-deps.sh installs them)")

# (build march, qemu -cpu, variants that must run there, the one 'best' must pick)
CONFIGS = [
    ("armv8-a", "cortex-a72", {"c-scalar", "c-neon"}, "c-neon"),
    ("armv8-a", "max", {"c-scalar", "c-neon", "c-neon-dotprod"}, "c-neon-dotprod"),
    ("armv8.2-a+dotprod", "max", {"c-scalar", "c-neon", "c-neon-dotprod"}, "c-neon-dotprod"),
]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    out = tmp_path_factory.mktemp("aarch64")
    exes = {}
    sources = [str(KERNEL / "tools" / "lk_run_blob.c")] + sorted(str(p) for p in KERNEL.glob("*.c"))
    for march in {c[0] for c in CONFIGS}:
        exe = out / f"lk_run_blob-{march.replace('+', '_')}"
        subprocess.run([CC, "-O2", "-std=c11", "-Wall", "-Wextra", "-ffp-contract=off",
                        "-static", f"-march={march}", f"-I{KERNEL}", "-o", str(exe), *sources],
                       check=True, capture_output=True, text=True)
        exes[march] = exe
    return exes


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    """(name, blob path, inputs path, expected output bytes per set, n sets)."""
    out = tmp_path_factory.mktemp("vectors")
    rng = np.random.default_rng(2026)
    graphs = op_suite(7)
    if MODEL.exists():
        from lanthorn.device.engine.bundle import read_bundle
        graphs.append(("temperament", read_bundle(MODEL).graph))
    cases = []
    for name, g in graphs:
        sets = random_input_sets(g, rng, 3)
        ref = ReferenceEngine(g)
        expected = b"".join(o.tobytes() for xs in sets for o in ref.run_quantized(xs))
        (out / f"{name}.lkb").write_bytes(engine_c.to_blob(g))
        (out / f"{name}.in").write_bytes(b"".join(np.ascontiguousarray(x).tobytes()
                                                  for xs in sets for x in xs))
        assert len(raw_outputs(g)) >= 1
        cases.append((name, out / f"{name}.lkb", out / f"{name}.in", expected))
    return cases


@pytest.mark.parametrize("march,cpu,variants,best", CONFIGS, ids=[f"{c[0]}@{c[1]}" for c in CONFIGS])
def test_aarch64_outputs_identical_to_numpy(builds, vectors, tmp_path, march, cpu, variants, best):
    exe = builds[march]
    listing = tmp_path / "models.txt"
    listing.write_text("".join(f"{blob} {inputs} {tmp_path / name}\n"
                               for name, blob, inputs, _ in vectors))
    r = subprocess.run([QEMU, "-cpu", cpu, str(exe), "-m", str(listing), "all"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}\n{r.stdout[-2000:]}"
    report: dict[str, dict[str, int]] = {}
    for line in r.stdout.splitlines():
        if line.startswith("model "):
            current = report.setdefault(Path(line.split()[1]).stem, {})
        else:
            current[line.split()[0]] = int(line.split()[2])     # variant -> packed bytes
    assert set(report) == {name for name, *_ in vectors}
    for name, _blob, _inputs, expected in vectors:
        packed = report[name]
        ran = set(packed)
        assert ran == variants, f"{name}: variants run under -cpu {cpu}: {sorted(ran)}"
        if name in ("conv3x3", "conv1d", "dense300x37", "depthwise", "depthwise_odd_c",
                    "depthwise_s2", "depthwise_dil5x5", "depthwise_1d"):   # SIMD paths taken
            assert all(packed[v] > 0 for v in ran - {"c-scalar"}), packed
        for v in sorted(ran):
            got = Path(f"{tmp_path / name}.{v}").read_bytes()
            assert len(got) == len(expected), f"{name} {v}: output size"
            diff = np.flatnonzero(np.frombuffer(got, np.int8) != np.frombuffer(expected, np.int8))
            assert diff.size == 0, (f"{name} on {march}@{cpu} {v}: {diff.size} bytes differ "
                                    f"from numpy, first at {diff[0]}")
    r = subprocess.run([QEMU, "-cpu", cpu, str(exe), str(vectors[0][1]), str(vectors[0][2]),
                        str(tmp_path / "best")], capture_output=True, text=True, timeout=60)
    assert r.stdout.split()[0] == best


def test_aarch64_gather_index_error_exit_code(builds, tmp_path):
    from kernel_graphs import one_layer
    g = one_layer("gather", [((2,), "int32", 1.0, 0)], (2, 3), 0, 0.1, {},
                  {"table": np.arange(12, dtype=np.int8).reshape(4, 3)})
    (tmp_path / "g.lkb").write_bytes(engine_c.to_blob(g))
    (tmp_path / "g.in").write_bytes(np.array([1, 9], np.int32).tobytes())
    r = subprocess.run([QEMU, "-cpu", "max", str(builds["armv8-a"]), str(tmp_path / "g.lkb"),
                        str(tmp_path / "g.in"), str(tmp_path / "g"), "all"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3
