"""`lanthorn install-service`: the systemd unit (notify + watchdog, restart, no network)."""
from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lanthorn.device.service.service import unit_text


def service(*args):
    return subprocess.run([sys.executable, "-m", "lanthorn", "install-service", *args],
                          capture_output=True, text=True, timeout=60)


def keys(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_writes_a_notify_unit_with_watchdog_and_no_network(tmp_path):
    out = tmp_path / "lanthorn.service"
    r = service("--user", getpass.getuser(), "--profile", "pi5", "--serial", "/dev/ttyGS0",
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "systemctl" in r.stdout
    k = keys(out.read_text())
    assert k["Type"] == ["notify"] and k["Restart"] == ["on-failure"]
    assert int(k["WatchdogSec"][0]) >= 4  # the loop feeds it every 2 s
    assert k["PrivateNetwork"] == ["yes"] and k["RestrictAddressFamilies"] == ["AF_UNIX"]
    assert k["IPAddressDeny"] == ["any"]
    assert k["ProtectSystem"] == ["strict"] and k["NoNewPrivileges"] == ["yes"]
    assert k["StateDirectory"] == ["lanthorn"]
    assert k["User"] == [getpass.getuser()]
    exec_start = k["ExecStart"][0]
    assert exec_start.startswith(sys.executable + " -m lanthorn run ")
    assert "--profile pi5" in exec_start and "--serial /dev/ttyGS0" in exec_start
    assert "--data-dir /var/lib/lanthorn" in exec_start
    assert "network" not in " ".join(k.get("After", []) + k.get("Wants", []))


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path):
    out = tmp_path / "lanthorn.service"
    assert service("--user", getpass.getuser(), "--out", str(out)).returncode == 0
    r = subprocess.run(["systemd-analyze", "verify", str(out)], capture_output=True, text=True,
                       timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if str(out) in line]
    assert not problems, problems


def test_pwm_leds_run_as_root_with_raw_io_only(tmp_path):
    r = service("--profile", "pi4", "--out", "-")
    assert r.returncode == 0, r.stderr
    k = keys(r.stdout)
    assert k["User"] == ["root"] and k["CapabilityBoundingSet"] == ["CAP_SYS_RAWIO"]


def test_custom_data_dir_is_the_only_writable_path():
    text = unit_text("pi", Path("/data/lanthorn"), None, None, ["gpio", "i2c"])
    k = keys(text)
    assert k["ReadWritePaths"] == ["/data/lanthorn"] and "StateDirectory" not in k
    assert k["SupplementaryGroups"] == ["gpio i2c"] and k["CapabilityBoundingSet"] == [""]
    assert "LANTHORN_DATA_DIR=/data/lanthorn" in k["Environment"]


@pytest.mark.parametrize("args,needle", [
    (["--user", "no-such-user-xyz"], "there is no user 'no-such-user-xyz'"),
    (["--profile", "sim"], "is a simulator profile"),
    (["--data-dir", "relative/dir"], "--data-dir must be an absolute path"),
    (["--out", "/no/such/folder/lanthorn.service"], "the folder /no/such/folder does not exist"),
    (["--profile", "no-such-profile"], "no shipped profile named"),
])
def test_mistakes_are_one_line(args, needle):
    r = service(*args)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
