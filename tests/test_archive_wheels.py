"""The archive's wheelhouses without a network: the board extras' requirements, installed
distributions repacked into wheels that pip installs, a folder of wheels as the source, and
the refusals (another platform's object from this environment; a folder without a wheel)."""
import subprocess
import sys

import pytest

from lanthorn.errors import UserError
from lanthorn.host import archive_wheels as aw


def _names(reqs):
    return {aw.canon(r.split(">")[0].split("=")[0].split("<")[0]) for r in reqs}


def test_board_extras_are_the_device_set():
    pi5 = _names(aw.top_requirements(["pi5"]))
    assert {"numpy", "pyserial", "pillow", "rpi-lgpio", "spidev", "smbus2", "cryptography",
            "luma-oled"} <= pi5
    assert "torch" not in pi5 and "rpi-gpio" not in pi5
    sim = _names(aw.top_requirements(["sim"]))
    assert "luma-oled" in sim and "luma-emulator" not in sim  # the window is not the object
    host = _names(aw.top_requirements(["host"]))
    assert {"torch", "onnx", "onnxruntime", "luma-oled"} <= host  # lanthorn[sim] followed


def test_repacked_wheels_install_with_no_index(tmp_path):
    src, out, target = tmp_path / "src", tmp_path / "wh", tmp_path / "t"
    src.mkdir()
    for dist in aw.installed_closure(["pyserial", "smbus2", "setuptools"]):
        aw.repack(dist, src)
    assert sorted(p.name.split("-")[0] for p in src.iterdir()) == ["pyserial", "setuptools", "smbus2"]
    info = aw.build_wheelhouse(out, ["pyserial>=3.5", "smbus2"], str(src), aw.this_machine())
    assert {p.split("==")[0] for p in info["pins"]} == {"pyserial", "smbus2", "setuptools"}
    assert (out / "requirements.txt").read_text().count("==") == 3
    env = {"PIP_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links",
                    str(out), "--target", str(target), "pyserial", "smbus2"], check=True, env=env)
    done = subprocess.run([sys.executable, "-c", "import serial, smbus2; print(serial.__file__)"],
                          capture_output=True, text=True, env={"PYTHONPATH": str(target)},
                          cwd=tmp_path)
    assert str(target) in done.stdout


def test_refusals_are_one_clear_line(tmp_path):
    pi = {"machine": "aarch64", "python": "3.11.2", "system": "Linux"}
    with pytest.raises(UserError, match="--wheelhouse-from index or a folder"):
        aw.build_wheelhouse(tmp_path / "a", ["numpy"], "installed", pi)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="pip download failed"):
        aw.build_wheelhouse(tmp_path / "b", ["pyserial"], str(tmp_path / "empty"), aw.this_machine())
    with pytest.raises(UserError, match="not 'index', 'installed' or a folder"):
        aw.build_wheelhouse(tmp_path / "c", ["pyserial"], str(tmp_path / "nowhere"), pi)
