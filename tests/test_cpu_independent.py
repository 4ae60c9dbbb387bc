"""Training gives the same bytes whichever kernels the CPU would pick (quantize/determinism).

One machine stands in for several CPUs: each run trains the same two tiny models (the gesture
CNN and the voice MLP, tests/cpu_dispatch_train.py) in a fresh process, with the environment
asking torch and MKL for another kernel dispatch -- the machine's best (AVX-512 on an Intel
or Zen 4 box, AVX2 on a Zen 3), AVX2, and the plain builds. With lanthorn's settings the
weights are identical; with them switched off (``LANTHORN_NATIVE_KERNELS=1``) the very same
runs differ, which is what shows the first test can fail.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MACHINE_SKIP

from lanthorn.quantize import determinism

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "cpu_dispatch_train.py"
#: the dispatch hints each run gives (on top of an environment cleared of all of them)
HINTS = {
    "best": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "MKL_CBWR": "AVX2"},
    "plain": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
_CLEARED = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", determinism.NATIVE_ENV)


def _has_avx2() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


def train_under(hints: dict, native: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(hints)
    if native:
        env[determinism.NATIVE_ENV] = "1"
    r = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_two_dispatches_train_the_same_bytes():
    runs = {name: train_under(h) for name, h in HINTS.items()}
    for name, got in runs.items():
        # the settings took hold whatever was asked for
        assert got["dispatch"]["aten"] == "DEFAULT" and not got["dispatch"]["mkldnn"], name
        assert got["dispatch"]["mkl_cbwr"] in (None, 3), name
    for model in ("gesture", "voice"):
        assert len({got[model] for got in runs.values()}) == 1, (model, runs)


@pytest.mark.skipif(not _has_avx2(), reason=f"{MACHINE_SKIP} no AVX2/FMA, so torch's best kernels "
                    "are its plain ones and there is no second dispatch to differ")
def test_without_the_settings_the_same_runs_differ():
    best, plain = train_under(HINTS["best"], native=True), train_under(HINTS["plain"], native=True)
    assert best["dispatch"]["aten"] != "DEFAULT" and plain["dispatch"]["aten"] == "DEFAULT"
    assert best["gesture"] != plain["gesture"] and best["voice"] != plain["voice"]


def test_torch_imported_first_is_refused_in_one_line():
    """A script that imported torch (with the machine's kernels) before lanthorn: training
    refuses, naming the fix, instead of training bytes only this CPU gives."""
    code = ("import torch, sys\n"
            "from lanthorn.errors import UserError\n"
            "from lanthorn.quantize import net\n"
            "try:\n    net.set_deterministic(0)\nexcept UserError as e:\n    print(e); sys.exit(3)\n")
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    if _has_avx2():
        assert r.returncode == 3, r.stdout + r.stderr
        line = r.stdout.strip()
        assert "\n" not in line and "ATEN_CPU_CAPABILITY=default" in line
        assert determinism.NATIVE_ENV in line
    else:   # torch's best here is its plain build: only MKL's branch may be left to refuse
        assert r.returncode in (0, 3), r.stdout + r.stderr
