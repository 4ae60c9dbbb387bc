"""The distribution installs and imports as `lanthorn.*`, and the layers point one way."""
import json
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
            if '_cmd' in m.name or m.name.endswith('__main__'):
                continue  # command modules may import more when a command runs
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


@pytest.mark.slow
def test_built_wheel_installs_and_imports_in_clean_venv(tmp_path):
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True,
                   env={**__import__("os").environ, "LANTHORN_NO_C": "1"})
    wheel = next((tmp_path / "dist").glob("lanthorn-*.whl"))
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # --no-deps + numpy from this interpreter's site keeps the test offline-friendly
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    site = subprocess.run([sys.executable, "-c", "import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    code = ("import sys; sys.path.append(%r); import lanthorn.device, lanthorn.hardware, "
            "lanthorn.host, lanthorn.quantize, lanthorn.cli; print(lanthorn.device.__file__)" % site)
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert str(env_dir) in out.stdout  # imported from the wheel, not the source tree
    out = subprocess.run([str(env_dir / "bin" / "lanthorn"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0


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
