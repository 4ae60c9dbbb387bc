"""The device never opens a network socket: proven with an audit hook in a running piece.

The piece runs in a subprocess (the simulated body, the console on a pseudo-terminal, a
systemd notify socket) with ``sys.addaudithook`` watching every socket the interpreter
creates, binds, connects or resolves. Any AF_INET/AF_INET6 socket or name lookup is written
to a report and the process exits at once with code 97, so nothing in the piece can catch
and hide it. A control run shows the hook does catch an IP socket.
"""
from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from loop_helpers import build_zoo_bundle

from lanthorn.vocabulary import BAUD

GUARD = textwrap.dedent("""
    import os, socket, sys
    REPORT = os.environ["NO_NET_REPORT"]
    BAD = {int(socket.AF_INET), int(socket.AF_INET6)}

    def violation(what):
        with open(REPORT, "a") as f:
            f.write(what + "\\n")
        os._exit(97)

    def hook(event, args):
        if event == "socket.__new__":
            family = args[1]
            if family is not None and int(family) in BAD:
                violation(f"socket.__new__ family={family!r}")
        elif event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            address = args[-1]
            if isinstance(address, tuple):  # IP addresses are tuples; unix ones are str/bytes
                violation(f"{event} {address!r}")
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                       "socket.getnameinfo"):
            violation(f"{event} {args!r}")

    sys.addaudithook(hook)
""")


def guarded(code: str, tmp_path, env=None):
    report = tmp_path / "violations.txt"
    script = GUARD + "\n" + textwrap.dedent(code)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_NET_REPORT": str(report), **(env or {})})
    return proc, report


def test_the_hook_catches_an_ip_socket(tmp_path):
    proc, report = guarded("import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)", tmp_path)
    proc.communicate(timeout=30)
    assert proc.returncode == 97 and "family=" in report.read_text()


def test_the_hook_catches_a_name_lookup(tmp_path):
    proc, report = guarded("import socket\ntry:\n    socket.getaddrinfo('localhost', 80)\n"
                           "except OSError:\n    pass", tmp_path)
    proc.communicate(timeout=30)
    assert proc.returncode == 97 and "getaddrinfo" in report.read_text()


def test_the_running_piece_opens_no_network_socket(tmp_path):
    serial = pytest.importorskip("serial")
    from pty_link import PtyLink

    from lanthorn.device.storage.storage import DataDir
    bundle = build_zoo_bundle(tmp_path)
    data = tmp_path / "data"
    DataDir(data, shipped_model=None).install_model(bundle)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd's side (test process)
    notify.bind(str(tmp_path / "notify.sock"))
    link = PtyLink()
    proc, report = guarded(f"""
        import sys
        from lanthorn.cli import main
        sys.exit(main(["run", "--sim", "--seconds", "25", "--serial", {link.device!r},
                       "--data-dir", {str(data)!r}]))
    """, tmp_path, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"})
    answers = b""
    try:
        r, _, _ = select.select([notify], [], [], 30)
        assert r and b"READY=1" in notify.recv(4096), "the piece did not report READY"
        with serial.Serial(link.host, BAUD, timeout=0.3) as ser:
            for line in (b"status", b"get brightness", b"set brightness 40", b"model info",
                         b"watch", b"stop", b"list"):
                ser.write(line + b"\n")
                done = answers.count(b"OK") + answers.count(b"ERR")
                deadline = time.monotonic() + (1.0 if line == b"watch" else 10.0)
                while time.monotonic() < deadline and (
                        line == b"watch" or answers.count(b"OK") + answers.count(b"ERR") == done):
                    answers += ser.read(4096)
    finally:
        proc.send_signal(2)  # SIGINT: a clean stop
        out, err = proc.communicate(timeout=30)
        link.close()
        notify.close()
    violations = report.read_text() if report.exists() else ""
    assert not violations, violations
    assert proc.returncode == 0, err
    assert b"OK" in answers and b"brightness" in answers  # the console really ran
