"""CI is honest: a proof that did not run turns it red, with the missing tool's name.

The README's `make test` promises that the aarch64, fuzzing, firmware and browser proofs run.
These tests check the two mechanisms that keep that promise: `tests/conftest.py` (a skipped
test fails under CI=true) and `scripts/system-deps.sh` (each tool probed by using it)."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = textwrap.dedent("""
    import pytest
    def test_needs_a_tool():
        pytest.skip("frobnicate-gcc not installed (Debian: frob)")
    @pytest.mark.skipif(True, reason="needs qemu-zz")
    def test_marked():
        pass
    def test_cpu_feature():
        pytest.skip("not on this machine: no avx512_vnni; ran c-avx2")
    def test_runs():
        pass
""")


def _run_sample(tmp_path, ci: str | None):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_under_ci_a_skipped_test_fails_naming_the_tool(tmp_path):
    r = _run_sample(tmp_path, "true")
    assert r.returncode == 1, r.stdout
    assert "frobnicate-gcc not installed" in r.stdout and "qemu-zz" in r.stdout
    assert "skipped under CI=true" in r.stdout
    # a CPU feature no package can bring stays a skip; a test that ran stays a pass
    assert "1 failed" in r.stdout and "1 error" in r.stdout and "1 skipped" in r.stdout, r.stdout
    assert "PASSED test_sample.py::test_runs" in r.stdout


def test_without_ci_skips_stay_visible_skips(tmp_path):
    r = _run_sample(tmp_path, None)
    assert r.returncode == 0, r.stdout
    assert "3 skipped" in r.stdout and "frobnicate-gcc not installed" in r.stdout


def test_every_system_tool_probe_passes_here():
    """The probes do what the tests do (link static aarch64 and run it under qemu, link
    libFuzzer+ASan, build an AVR ELF, link simavr, run a Cortex-M image...). Under CI
    `make test` ran system-deps first, so every probe must pass; elsewhere a failing probe
    is reported with the packages that fix it."""
    r = subprocess.run(["bash", str(ROOT / "scripts" / "system-deps.sh"), "--check"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        import pytest
        pytest.skip("system tools missing: " + " | ".join(r.stdout.strip().splitlines()))
    assert "all probes pass" in r.stdout
