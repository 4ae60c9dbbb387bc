"""`lanthorn run` as systemd and a person start it: exit codes, sd_notify, signals, console."""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
from loop_helpers import build_zoo_bundle

from lanthorn.device.service.sdnotify import Notifier
from lanthorn.vocabulary import BAUD


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data dir whose current model is a zoo bundle (independent of the shipped one)."""
    from lanthorn.device.storage.storage import DataDir
    root = tmp_path_factory.mktemp("run")
    bundle = build_zoo_bundle(root)
    DataDir(root / "data", shipped_model=None).install_model(bundle)
    return root / "data"


def lanthorn(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "lanthorn", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kw)


def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    return sock, path


def wait_message(sock, want: str, timeout: float = 30.0) -> list[str]:
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], 0.5)
        if r:
            got.append(sock.recv(4096).decode())
            if any(want in m for m in got):
                return got
    raise AssertionError(f"no {want!r} from the piece within {timeout} s (got {got})")


def test_runs_for_seconds_and_reports(data_dir):
    p = lanthorn("run", "--sim", "--seconds", "2", "--data-dir", str(data_dir))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "model zoo-cnn1d (current" in err and "stopped after" in err and "LEDs off" in err
    assert "Traceback" not in err


def test_systemd_ready_watchdog_and_sigterm(tmp_path, data_dir):
    sock, path = notify_socket(tmp_path)
    p = lanthorn("run", "--sim", "--data-dir", str(data_dir),
                 env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    try:
        got = wait_message(sock, "READY=1")
        got += wait_message(sock, "WATCHDOG=1")
        got += wait_message(sock, "WATCHDOG=1", timeout=5)  # fed again within the timeout
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        sock.close()
    assert p.returncode == 0, err
    assert "stopped on SIGTERM" in err


def test_console_on_a_serial_port(data_dir):
    """The console answers over a real tty, opened with real pyserial on the host end."""
    serial = pytest.importorskip("serial")
    from pty_link import PtyLink
    link = PtyLink()
    p = lanthorn("run", "--sim", "--seconds", "60", "--serial", link.device,
                 "--data-dir", str(data_dir))
    try:
        with serial.Serial(link.host, BAUD, timeout=0.2) as ser:
            deadline, buf, sent = time.monotonic() + 30, b"", 0.0
            while time.monotonic() < deadline and b"OK" not in buf:
                if time.monotonic() - sent > 2.0:  # until the device has started listening
                    ser.write(b"get brightness\n")
                    sent = time.monotonic()
                buf += ser.read(4096)
        assert b"OK" in buf and b"60" in buf, buf
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        link.close()
    assert p.returncode == 0, err
    assert "console on" in err


@pytest.mark.parametrize("args,needle", [
    (["--seconds", "-1"], "--seconds must be a positive number"),
    (["--profile", "no-such-profile"], "no shipped profile named"),
    (["--seconds", "0"], "--seconds must be a positive number"),
])
def test_mistakes_are_one_line(args, needle, tmp_path):
    p = lanthorn("run", "--sim", "--data-dir", str(tmp_path / "d"), *args)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_notifier_outside_systemd_does_nothing():
    n = Notifier({})
    assert not n.enabled and n.feed_interval() == 2.0
    n.watchdog()  # no socket: nothing happens, nothing raises
    assert not n.notify("READY=1")


def test_notifier_watchdog_interval_and_dead_socket(tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock"), "WATCHDOG_USEC": "3000000"})
    assert n.enabled and n.feed_interval() == pytest.approx(1.5)
    n.watchdog()  # systemd went away: counted, never fatal
    assert n.errors >= 1
    other_pid = Notifier({"NOTIFY_SOCKET": "x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_s is None


def test_notifier_never_blocks_when_nobody_reads(tmp_path):
    """A receiver that never drains its queue must not freeze the loop that feeds it."""
    sock, path = notify_socket(tmp_path)
    try:
        n = Notifier({"NOTIFY_SOCKET": path})
        t0 = time.monotonic()
        for _ in range(5000):
            n.watchdog()
        assert time.monotonic() - t0 < 10 and n.errors > 0  # the queue filled; we went on
    finally:
        sock.close()


def test_notifier_abstract_socket_address():
    name = f"lanthorn-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)  # systemd may name its socket in the abstract namespace ("@...")
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        sock.settimeout(5)
        assert sock.recv(4096) == b"READY=1\nSTATUS=running"
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_default_data_dir_env_then_system_then_xdg(tmp_path, monkeypatch):
    """`run` and `provision` open the same folder when none is given: $LANTHORN_DATA_DIR,
    else the system data dir when it is writable (an installed object), else XDG's."""
    from lanthorn.device.storage import data_dir as dd
    monkeypatch.setenv("LANTHORN_DATA_DIR", str(tmp_path / "env"))
    assert dd.default_data_dir() == tmp_path / "env"
    assert dd.data_dir_or_default(str(tmp_path / "given")) == tmp_path / "given"
    monkeypatch.delenv("LANTHORN_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(dd, "SYSTEM_DATA_DIR", tmp_path / "missing")
    assert dd.default_data_dir() == tmp_path / "xdg" / "lanthorn"
    system = tmp_path / "system"
    system.mkdir()
    monkeypatch.setattr(dd, "SYSTEM_DATA_DIR", system)
    assert dd.default_data_dir() == system
