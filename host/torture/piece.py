"""A real ``lanthorn run --sim --serial`` process on a pseudo-terminal, as the torture
campaigns drive it: start, talk, measure (RSS, fds, threads), kill, restart.

The harness holds the pty's master end and never closes its slave end, so the device path
stays valid across kills and restarts (like a USB gadget port on the object). A reader
thread drains the master continuously: a harness that stopped reading would make the
device's writes time out, and an answer dropped that way would be counted as unanswered.
"""
from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

from lanthorn.device.console import push_wire as pp


def is_final(line: str) -> bool:
    """Is this wire line a final answer (text ``OK``/``ERR`` or a JSON ``{"ok": ...}``)?"""
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError:
            return False
        return isinstance(obj, dict) and "ok" in obj
    return line == "OK" or line.startswith(("OK ", "ERR ")) or line == "ERR"


class Piece:
    """One device process. ``env`` adds environment variables (e.g. NOTIFY_SOCKET);
    ``argv`` overrides the command (a supervisor test runs it through its own wrapper)."""

    def __init__(self, data_dir: str | os.PathLike, seed: int = 0, log_path=None,
                 extra_args: tuple[str, ...] = (), env: dict | None = None):
        self.data_dir = Path(data_dir)
        self.seed = seed
        self.extra_args = tuple(extra_args)
        self.env = dict(os.environ, **(env or {}))
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_path = Path(log_path) if log_path else self.data_dir.parent / "piece.log"
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self.master)
        self.port = os.ttyname(self._slave)
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.received_bytes = 0
        self._buf = bytearray()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name="torture-reader")
        self._reader.start()
        self.starts = 0

    # --- process
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "lanthorn", "run", "--sim", "--quiet", "--seed", str(self.seed),
                "--serial", self.port, "--data-dir", str(self.data_dir), *self.extra_args]

    def start(self, wait: float = 60.0) -> "Piece":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env)
        self.log.close()
        self.starts += 1
        if wait:
            self.wait_ready(wait)
        return self

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Send blank lines until one is answered (every line is); returns the seconds."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the piece exited with {self.proc.returncode} while starting; "
                                   f"see {self.log_path}")
            self.drain()
            self.write(b"\n")
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                line = self.next_line(end - time.monotonic())
                if line is not None and is_final(line):
                    self.drain(0.2)
                    return time.monotonic() - t0
        raise RuntimeError(f"the piece did not answer within {timeout:g} s; see {self.log_path}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.alive():
            self.proc.send_signal(sig)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM (as systemd stops it); returns the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        self._stop.set()
        self._reader.join(2)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # --- measurements of the process (Linux /proc)
    def _proc_status(self, key: str) -> int | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        except (OSError, AttributeError):
            return None
        return None

    def rss_kb(self) -> int | None:
        return self._proc_status("VmRSS")

    def threads(self) -> int | None:
        return self._proc_status("Threads")

    def fds(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except (OSError, AttributeError):
            return None

    # --- the wire
    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.master, 65536)
            except OSError:
                if self._stop.wait(0.05):
                    return
                continue
            self.received_bytes += len(data)
            self._buf += data
            while True:
                i = self._buf.find(b"\n")
                if i < 0:
                    break
                raw = bytes(self._buf[:i])
                del self._buf[:i + 1]
                self.lines.put(raw.decode("utf-8", "replace").rstrip("\r"))

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            view = view[n:]

    def next_line(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def drain(self, quiet: float = 0.0) -> list[str]:
        """Everything received so far (waiting until ``quiet`` seconds pass without a line)."""
        out = []
        while True:
            line = self.next_line(quiet)
            if line is None:
                return out
            out.append(line)

    def request(self, line: str, timeout: float = 30.0) -> tuple[str, list[str]]:
        """Send one line; return (its final answer, the lines before it)."""
        self.write(line.encode("utf-8") + b"\n")
        return self.wait_final(timeout)

    def wait_final(self, timeout: float = 30.0) -> tuple[str, list[str]]:
        before = []
        end = time.monotonic() + timeout
        while True:
            got = self.next_line(end - time.monotonic())
            if got is None:
                raise TimeoutError(f"no answer within {timeout:g} s (got {before[-5:]})")
            if is_final(got):
                return got, before
            before.append(got)

    def call(self, line: str, timeout: float = 30.0) -> dict:
        """A command in json mode; returns its answer object (answers to anything sent
        earlier are skipped: json answers name the line they answer)."""
        self.drain()
        for attempt in range(4):
            if attempt:  # the device may be waiting for push frames: end that first, as
                self.write(pp.abort_frame() + b"\n")  # `lanthorn push` does on connecting
            self.write(b"mode json\n")
            try:
                self._tagged("mode json", timeout / 4 if attempt < 3 else timeout)
                break
            except TimeoutError:
                if attempt == 3:
                    raise
        self.write(line.encode("utf-8") + b"\n")
        return self._tagged(line, timeout)

    def _tagged(self, line: str, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while True:
            got = self.next_line(end - time.monotonic())
            if got is None:
                raise TimeoutError(f"no answer to {line!r} within {timeout:g} s")
            if got.startswith("{"):
                try:
                    obj = json.loads(got)
                except ValueError:
                    continue
                if isinstance(obj, dict) and "ok" in obj and obj.get("line") == line.strip():
                    return obj

    def status(self) -> dict:
        return self.call("status").get("data", {})

    def model_sha(self) -> str | None:
        return self.call("model info").get("data", {}).get("sha256")
