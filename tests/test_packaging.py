"""The distribution installs and imports as `lanthorn.*`, and the layers point one way."""
import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_after(statement: str) -> set[str]:
    """Top-level module names newly imported by `statement` in a fresh interpreter."""
    code = textwrap.dedent(f"""
        import sys, json
        before = set(sys.modules)
        {statement}
        print(json.dumps(sorted(set(sys.modules) - before)))
    """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout))


STDLIB = set(sys.stdlib_module_names)


@pytest.mark.parametrize("layer", ["lanthorn.device", "lanthorn.hardware"])
def test_device_layers_import_only_stdlib_and_numpy(layer):
    mods = _imported_after(f"import {layer}")
    # import every submodule too: the promise covers the whole layer, not just __init__
    mods |= _imported_after(textwrap.dedent(f"""
        import pkgutil, importlib, {layer}
        for m in pkgutil.walk_packages({layer}.__path__, '{layer}.'):
            if m.name.endswith('__main__'):
                continue
            importlib.import_module(m.name)
    """).replace("\n", "\n        "))
    tops = {m.split(".")[0] for m in mods}
    foreign = sorted(t for t in tops - STDLIB - {"numpy", "lanthorn", "_distutils_hack"}
                     if not t.startswith("_"))
    assert not foreign, f"{layer} pulled in non-stdlib modules: {foreign}"
    upward = sorted(m for m in mods if m.startswith(("lanthorn.host", "lanthorn.quantize")))
    assert not upward, f"{layer} imports upward: {upward}"


def test_hardware_does_not_import_device():
    mods = _imported_after("import lanthorn.hardware")
    assert not [m for m in mods if m.startswith("lanthorn.device")]


def test_cli_help_and_module_entry():
    out = subprocess.run([sys.executable, "-m", "lanthorn", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "selftest" in out.stdout


def test_cli_unknown_command_is_one_line():
    out = subprocess.run([sys.executable, "-m", "lanthorn", "frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "unknown command" in out.stderr


def test_every_subcommand_has_help():
    from lanthorn.cli import COMMANDS
    for name in COMMANDS:
        out = subprocess.run([sys.executable, "-m", "lanthorn", name, "--help"],
                             capture_output=True, text=True)
        assert out.returncode == 0, (name, out.stderr)
        assert f"lanthorn {name}" in out.stdout


# What a maker's `pip install` must bring along for the object to run as from a clone.
SDIST_MUST_CARRY = ["firmware/kernel/lk.h", "firmware/kernel/lk_internal.h",
                    "firmware/kernel/lk_x86.h", "firmware/kernel/lk_vnni.c",
                    "firmware/kernel/lk_pack.h", "firmware/kernel/lk_arm.h",
                    "firmware/kernel/lk_avx2.c", "firmware/kernel/lk_neon.c",
                    "firmware/kernel/lk_sdot.c",
                    "device/engine/kernel_ext/_lk_module.c", "hardware/profiles/sim.toml",
                    "hardware/profiles/pi5.toml", "device/models/temperament.lanthorn",
                    "lanthorn/commands/run.py", "quantize/export_c.py"]
WHEEL_MUST_CARRY = ["lanthorn/commands/__init__.py", "lanthorn/commands/run.py",
                    "lanthorn/commands/selftest.py", "lanthorn/quantize/export_c.py",
                    "lanthorn/hardware/profiles/sim.toml", "lanthorn/hardware/profiles/pi4.toml",
                    "lanthorn/hardware/profiles/pi5.toml", "lanthorn/device/models/temperament.lanthorn"]
PROBE = ("import json; from lanthorn.device.engine import runtime; from lanthorn.device.models import "
         "DEFAULT_BUNDLE; from lanthorn.hardware.profile import shipped_profiles; "
         "import lanthorn.device as d; print(json.dumps({'backend': runtime.load(DEFAULT_BUNDLE).backend, "
         "'profiles': shipped_profiles(), 'file': d.__file__}))")


def _fresh_copy(dest: Path) -> Path:
    """The files a fresh clone has (tracked, plus new files not ignored), and nothing a
    previous build left: an old *.egg-info/SOURCES.txt would smuggle files into the sdist."""
    import shutil
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                            capture_output=True)
    if listed.returncode != 0:  # not a git checkout (e.g. an unpacked sdist)
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.so", "out"))
        return dest
    for rel in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`python -m build` as the README says: the sdist, then the wheel built *from the sdist*
    (so a file missing from the sdist breaks the wheel's C extension too), C kernel included."""
    out = tmp_path_factory.mktemp("dist")
    src = _fresh_copy(tmp_path_factory.mktemp("clone") / "lanthorn")
    env = {k: v for k, v in os.environ.items() if k != "LANTHORN_NO_C"}
    r = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "fatal error" not in r.stdout + r.stderr, "the C kernel did not compile from the sdist"
    return next(out.glob("lanthorn-*.tar.gz")), next(out.glob("lanthorn-*.whl"))


def test_sdist_and_wheel_carry_what_the_object_needs(built):
    import tarfile
    import zipfile
    sdist, wheel = built
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    assert not [f for f in SDIST_MUST_CARRY if f not in names]
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [f for f in WHEEL_MUST_CARRY if f not in names]
    assert [n for n in names if n.startswith("lanthorn/device/engine/kernel_ext/_lk") and n.endswith(".so")], \
        "the wheel has no compiled C kernel"


@pytest.mark.slow
def test_wheel_and_sdist_install_into_clean_venv_run_c_kernel_and_selftest(built, tmp_path):
    """A clean venv (no site packages), the wheel with the [sim] extra from the registry as a
    maker would; then the sdist itself over it (compiling the kernel once more). Each time:
    a C backend, every shipped profile, `lanthorn selftest --sim` OK, run outside the clone."""
    sdist, wheel = built
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py, cli = env_dir / "bin" / "python", env_dir / "bin" / "lanthorn"
    env = {k: v for k, v in os.environ.items() if k not in ("LANTHORN_NO_C", "LANTHORN_BACKEND")}
    for target, extra_args in ((f"{wheel}[sim]", []),
                               (str(sdist), ["--force-reinstall", "--no-deps", "--no-cache-dir"])):
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *extra_args, target],
                           capture_output=True, text=True, timeout=900, env=env)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        out = subprocess.run([str(py), "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert str(env_dir) in got["file"], got  # imported from the install, not the clone
        assert got["backend"].startswith("c-"), f"{target}: backend {got['backend']}"
        assert {"sim", "pi4", "pi5", "pi5-companion", "jetson-orin-nano"} <= set(got["profiles"])
        st = subprocess.run([str(cli), "selftest", "--sim"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
        assert st.returncode == 0 and "all required parts OK" in st.stdout, st.stdout + st.stderr


def test_output_piped_into_head_ends_quietly():
    """`lanthorn params --markdown | head -1`: the reader has gone when lanthorn writes
    (a pipe whose read end is already closed); that ends quietly, without a traceback."""
    import os
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([sys.executable, "-m", "lanthorn", "params", "--markdown"],
                              stdout=w, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(w)
    err = proc.stderr.decode()
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 0
