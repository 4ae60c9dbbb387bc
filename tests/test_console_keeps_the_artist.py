"""A console that never loses the artist, over ptys with real pyserial.

Must-show: an open `lanthorn console` keeps answering after a `lanthorn push` from another
process and after the device is killed and restarted; the port is held exclusively while a
client talks, and a second one says who holds it.
"""
import queue
import subprocess
import sys
import threading
import time

import pytest
from pty_link import PtyLink
from test_console_e2e import ROOT, SHIPPED, Device, variant, wait_ready

from lanthorn.host.console_client import ConsoleClient

pytestmark = pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped bundle is not built")


class Console:
    """`lanthorn console PORT` in its own process, typed to through a pipe."""

    def __init__(self, port):
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "lanthorn", "console", port], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def ask(self, line, until, timeout=60.0):
        """Type a line; the output lines up to one that starts with ``until`` (or ERR)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out, end = [], time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                got = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, out
                continue
            out.append(got)
            if got.startswith(until) or got.startswith("ERR"):
                return out
        raise AssertionError(f"no answer to {line!r}: {out}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def lanthorn(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "lanthorn", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_an_open_console_survives_a_push_and_a_device_restart(tmp_path):
    link = PtyLink()
    device = Device(link.device, tmp_path / "data", tmp_path / "device.log").start()
    console = None
    try:
        wait_ready(link.host, device)
        console = Console(link.host)
        assert console.ask("set brightness 41", "OK")[-1] == "OK brightness = 41 %"
        # a push from another terminal while the console sits at its prompt
        bundle = variant(tmp_path / "v.lanthorn", "pushed-while-console-open")
        r = lanthorn("push", bundle, "--port", link.host, "--quiet")
        assert r.returncode == 0, r.stderr
        assert "installed pushed-while-console-open" in r.stdout
        assert console.ask("get brightness", "OK")[-1] == "OK 41 %"
        info = console.ask("model info", "OK")
        assert any("pushed-while-console-open" in x for x in info), info
        # the device is killed (a power cut) and comes back: still in the same console
        device.kill()
        device.start()
        wait_ready(link.host, device)
        got = console.ask("get brightness", "OK")
        assert got[-1].startswith("OK ") and "ERR" not in got[-1], got
        assert any(x.startswith("uptime_s") for x in console.ask("status", "locked"))
        assert console.proc.poll() is None
    finally:
        if console:
            console.close()
        device.stop()
        link.close()


def test_the_port_is_held_exclusively_and_a_second_client_says_who(tmp_path):
    link = PtyLink()
    device = Device(link.device, tmp_path / "data", tmp_path / "device.log").start()
    try:
        wait_ready(link.host, device)
        with ConsoleClient(link.host, holder="lanthorn record (test)") as holder:
            assert holder.call("get brightness") is not None
            r = lanthorn("push", variant(tmp_path / "v.lanthorn", "second"), "--port", link.host)
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
            assert "in use by lanthorn record (test)" in r.stderr and "pid" in r.stderr
            r = lanthorn("console", link.host, "-c", "status")
            assert r.returncode == 2 and "in use by lanthorn record (test)" in r.stderr
            assert holder.call("get brightness") is not None   # the holder is undisturbed
        # released: the next one gets it
        r = lanthorn("console", link.host, "-c", "get brightness")
        assert r.returncode == 0 and r.stdout.strip().startswith("OK"), r.stdout + r.stderr
    finally:
        device.stop()
        link.close()


def test_a_client_renegotiates_when_the_device_went_back_to_text_mode(tmp_path):
    """What a push from elsewhere or a restart does to a client holding json mode: the next
    answer comes in text; the client switches back and resends, invisibly."""
    link = PtyLink()
    device = Device(link.device, tmp_path / "data", tmp_path / "device.log").start()
    try:
        wait_ready(link.host, device)
        c = ConsoleClient(link.host, holder="test")
        try:
            c.call("set brightness 33")
            c.send_line("mode text")            # as another client's close() would leave it
            end = time.monotonic() + 30         # (which reads the answer, in text)
            while (line := c.read_line(1.0)) != "OK mode text":
                assert time.monotonic() < end, f"no answer to 'mode text' (last: {line!r})"
            assert c.call("get brightness")["value"] == 33
            assert c.reconnects == 1
        finally:
            c.close()
    finally:
        device.stop()
        link.close()
