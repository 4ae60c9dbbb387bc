"""The companion firmware builds with Debian's avr-gcc exactly as `make -C firmware` does,
fits an ATmega328P with room to spare (figures printed into the test output), and its
PlatformIO configuration describes the same build for makers."""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from firmware_lib import FIRMWARE, SRC, build_firmware

FLASH_BYTES, RAM_BYTES = 32768, 2048
BOOTLOADER_BYTES = 2048  # optiboot on a Nano/Uno sits at the top of the flash


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.getbasetemp() / "firmware-build"
    return out, build_firmware(out, "all")


def _avr_size(elf: Path) -> tuple[int, int, int]:
    text, data, bss = subprocess.run(["avr-size", str(elf)], check=True, capture_output=True,
                                     text=True).stdout.splitlines()[1].split()[:3]
    return int(text), int(data), int(bss)


def test_avr_firmware_builds_and_fits_with_room_to_spare(build, capsys):
    out, result = build
    elf, hexfile = out / "lanthorn-companion.elf", out / "lanthorn-companion.hex"
    assert elf.stat().st_size > 0 and hexfile.read_text().startswith(":")
    text, data, bss = _avr_size(elf)
    flash, ram = text + data, data + bss
    # the Makefile's own report, which `make -C firmware` prints for makers, says the same
    line = next(x for x in result.stdout.splitlines() if x.startswith("lanthorn-companion ("))
    assert f"flash {flash} bytes" in line and f"RAM {ram} bytes" in line
    assert flash <= 0.75 * (FLASH_BYTES - BOOTLOADER_BYTES)
    assert ram <= 0.75 * RAM_BYTES  # the rest is stack: test_simavr measures its peak
    with capsys.disabled():
        print(f"\n[firmware] ATmega328P build (avr-gcc -Os -flto): flash {flash} B of "
              f"{FLASH_BYTES - BOOTLOADER_BYTES} B usable ({100 * flash / (FLASH_BYTES - BOOTLOADER_BYTES):.0f}%), "
              f"RAM {ram} B static of {RAM_BYTES} B ({100 * ram / RAM_BYTES:.0f}%)")


def test_hex_file_is_valid_intel_hex_of_the_whole_image(build):
    out, _ = build
    text, data, _bss = _avr_size(out / "lanthorn-companion.elf")
    total = 0
    for line in (out / "lanthorn-companion.hex").read_text().split():
        raw = bytes.fromhex(line[1:])
        assert sum(raw) & 0xFF == 0, f"bad checksum in {line}"
        if raw[3] == 0x00:
            total += raw[0]
    assert total == text + data  # avrdude uploads exactly what avr-size counts


def test_over_budget_build_fails_with_a_clear_message(build, tmp_path):
    out, _ = build
    r = subprocess.run(["make", "--no-print-directory", "-C", str(FIRMWARE), f"BUILD={out}",
                        "FLASH_BUDGET=1000", "size"], capture_output=True, text=True)
    assert r.returncode != 0 and "flash over budget (1000)" in r.stdout


# ---------------------------------------------------------------------- PlatformIO
def _pio_config() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(FIRMWARE / "platformio.ini")
    return cfg


def _sources_for(src_filter: str) -> set[str]:
    """Apply a PlatformIO build_src_filter (+<glob> -<glob>, in order) to firmware/src."""
    chosen: set[str] = set()
    every = {p.name for p in SRC.iterdir() if p.suffix in (".c", ".cpp")}
    for sign, pattern in re.findall(r"([+-])<([^>]*)>", src_filter):
        matched = {f for f in every if Path(f).match(pattern)}
        chosen = chosen | matched if sign == "+" else chosen - matched
    return chosen


def test_platformio_envs_build_the_same_sources_as_the_makefile():
    cfg = _pio_config()
    assert cfg["platformio"]["src_dir"] == "src"
    for env in ("env:nanoatmega328", "env:uno", "env:pico"):
        assert env in cfg, f"platformio.ini lacks [{env}]"
    assert cfg["env:nanoatmega328"]["board"] == "nanoatmega328" and cfg["env:uno"]["board"] == "uno"
    makefile = (FIRMWARE / "Makefile").read_text()
    make_srcs = {Path(s).name for s in re.search(r"^SRCS := (.*)$", makefile, re.M).group(1).split()}
    assert _sources_for(cfg["avr"]["build_src_filter"]) == make_srcs
    pico = _sources_for(cfg["env:pico"]["build_src_filter"])
    assert "hal_pico.cpp" in pico and not pico & {"hal_avr.c", "ws2812.c"}


def test_pio_project_config_accepts_it(tmp_path):
    """`pio project config` (PlatformIO itself, offline) parses and resolves the project."""
    pio = shutil.which("pio", path=str(Path(sys.executable).parent)) or shutil.which("pio")
    if pio is None:
        pytest.skip("PlatformIO not installed (pip install platformio; it is in lanthorn[dev])")
    env = dict(os.environ, PLATFORMIO_CORE_DIR=str(tmp_path), PLATFORMIO_SETTING_ENABLE_TELEMETRY="No",
               PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL="3650")
    r = subprocess.run([pio, "project", "config", "--json-output"], cwd=FIRMWARE, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    sections = dict(json.loads(r.stdout))
    nano = dict(sections["env:nanoatmega328"])
    assert nano["platform"] == "atmelavr" and "-std=gnu99" in nano["build_flags"]
    assert "-DN_LEDS=24" in nano["build_flags"]
    assert dict(sections["env:pico"])["board"] == "pico"
