"""The host side of the serial console: talk to a running object in json mode.

Used by ``lanthorn console`` (interactive), ``lanthorn push`` and ``lanthorn record``. The
client switches the device to ``mode json`` on connect, so every answer is one JSON object
per line and nothing depends on the wording of the text answers; completion and help are
built from the device's own command and parameter tables (``help`` / ``list``), so an
older or newer firmware is described as it really is.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from lanthorn.device.console import push_wire as pp
from lanthorn.errors import UserError
from lanthorn.vocabulary import BAUD


def port_error(port: str, exc: Exception) -> str:
    """One line for a port that would not open: what is wrong in plain words (pyserial's
    text repeats the OS error twice) and what to try."""
    code = getattr(exc, "errno", None)
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
    if code == errno.ENOENT:
        return (f"no serial port {port}: is the object plugged in and powered? "
                f"(ls /dev/ttyACM* /dev/ttyUSB* lists the ports; 'lanthorn run --sim --serial "
                f"auto' makes a simulated object to talk to)")
    if code == errno.EACCES:
        return (f"not allowed to open {port}: add yourself to the dialout group (sudo usermod "
                f"-aG dialout $USER, then log in again)")
    why = os.strerror(code) if isinstance(code, int) else str(exc)
    return f"cannot open serial port {port}: {why}; check the cable and the port name"

class ConsoleError(UserError):
    """The device answered ERR (the message is the device's reason), or did not answer."""


class PortBusy(ConsoleError):
    """Another program holds the serial port (the message says which, when it is lanthorn)."""


class _TextAnswer(Exception):
    """A text-mode answer arrived while json was expected: the device restarted, or another
    client (a push, picocom) left it in text mode. The client renegotiates and retries."""


#: Where each lanthorn client that holds a port writes who it is, so a second one can say.
LOCK_DIR = Path(os.environ.get("LANTHORN_PORT_LOCKS", Path(tempfile.gettempdir()) / "lanthorn-ports"))


def _lock_info_path(port: str) -> Path:
    return LOCK_DIR / (os.path.realpath(port).strip("/").replace("/", "_") + ".json")


def _holder(port: str) -> str:
    """Who holds ``port``, in words, from the lock note of a live lanthorn process."""
    try:
        info = json.loads(_lock_info_path(port).read_text())
        pid = int(info["pid"])
        os.kill(pid, 0)          # still running?
    except (OSError, ValueError, KeyError, TypeError):
        return "another program (picocom, screen, a serial monitor?)"
    return f"{info.get('command', 'lanthorn')} (pid {pid}, since {info.get('since', '?')})"


class SerialLines:
    """Lines over a serial port held exclusively: opening it with a lock (a second lanthorn
    client is refused, naming who holds it from the note each holder leaves), reading and
    writing lines, and letting go of the port and its note. :class:`ConsoleClient` speaks
    the console protocol over it."""

    def __init__(self, port: str, baud: int = BAUD, holder: str | None = None):
        self.port, self.baud = port, baud
        self.holder = holder or "lanthorn " + (Path(sys.argv[0]).name if sys.argv else "")
        self.ser = None
        self._buf = bytearray()

    def _open(self) -> None:
        import serial
        try:
            self.ser = serial.Serial(self.port, self.baud, timeout=0.05, write_timeout=10,
                                     exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            if "exclusively lock" in str(exc) or getattr(exc, "errno", None) == errno.EBUSY:
                raise PortBusy(f"serial port {self.port} is in use by {_holder(self.port)}; "
                               f"close it there first (only one program can talk to the "
                               f"object at a time)") from None
            raise ConsoleError(port_error(self.port, exc)) from None
        self._buf.clear()
        try:
            LOCK_DIR.mkdir(parents=True, exist_ok=True)
            _lock_info_path(self.port).write_text(json.dumps({
                "pid": os.getpid(), "command": self.holder,
                "since": time.strftime("%H:%M:%S")}))
        except OSError:
            pass  # the note is a courtesy; the lock itself is the port's

    def _close_port(self) -> None:
        try:
            self.ser.close()
        except Exception:
            pass
        self.ser = None
        try:
            info = _lock_info_path(self.port)
            if json.loads(info.read_text()).get("pid") == os.getpid():
                info.unlink()
        except (OSError, ValueError):
            pass

    @property
    def is_open(self) -> bool:
        return self.ser is not None

    def read_line(self, timeout: float) -> str | None:
        """The next line from the device (without its ending), or None after ``timeout``."""
        end = time.monotonic() + timeout
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                raw = bytes(self._buf[:i])
                del self._buf[:i + 1]
                return raw.decode("utf-8", "replace").rstrip("\r")
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            self.ser.timeout = min(remaining, 0.2)
            chunk = self.ser.read(max(1, self.ser.in_waiting or 1))
            if chunk:
                self._buf += chunk

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def send_line(self, line: str) -> None:
        self.ser.write(line.encode("utf-8") + b"\n")


class ConsoleClient(SerialLines):
    """One lanthorn client on a serial port, held exclusively while it talks.

    The port is opened with an exclusive lock (a second ``push`` or ``console`` on it is
    refused, naming who holds it), and every answer is checked to be json: a device that
    restarted (it starts in text mode), or that another client left in text mode, is
    noticed on the next answer and the mode renegotiated, and the command sent again --
    the person never sees it. :meth:`release` lets go of the port between commands (the
    interactive console does, so a ``push`` from another terminal can run meanwhile);
    the next request takes it back."""

    def __init__(self, port: str, baud: int = BAUD, timeout: float = 5.0, connect: bool = True,
                 holder: str | None = None):
        super().__init__(port, baud, holder)
        self.timeout = timeout
        self.notices: list[str] = []
        self.connected = False
        self.reconnects = 0
        self._open()
        if connect:
            try:
                self.connect()
            except BaseException:
                self.close()             # the port and its note go with the failed attempt
                raise

    def release(self) -> None:
        """Leave the device in text mode and let go of the port (until the next request)."""
        self.close()

    def ensure_open(self) -> None:
        if self.ser is None:
            self._open()
            self.connect()

    def connect(self) -> None:
        """Bring the device to a known state: stop any watch/record, end a half-done push,
        switch to json mode. Lines before the answer (stale output, notices) are skipped."""
        for attempt in range(3):
            if attempt:
                self.write(pp.abort_frame() + b"\n")  # the device may be waiting for push frames
                self.read_line(0.3)  # its answer (or an ERR for the binary bytes)
            self.write(b"\n")
            self.send_line("mode json")
            end = time.monotonic() + (1.0 if attempt < 2 else self.timeout)
            while time.monotonic() < end:
                line = self.read_line(end - time.monotonic())
                if line is None:
                    break
                obj = _json(line)
                if obj and obj.get("cmd") == "mode" and obj.get("ok"):
                    self.connected = True
                    return
                if obj and obj.get("event") == "notice":
                    self.notices.append(obj.get("text", ""))
                elif line.startswith("NOTE "):
                    self.notices.append(line[5:])
        raise ConsoleError(f"no answer from a lanthorn console on {self.port} at {self.baud} "
                           "baud (is 'lanthorn run --serial' running there, at this baud rate?)")

    #: Commands that are not sent twice when the device went away mid-way (the person
    #: decides whether to do it again): they take time or move data.
    NOT_RETRIED = ("record", "push", "watch")

    def request(self, line: str, on_event: Callable[[dict], None] | None = None,
                timeout: float | None = None) -> dict:
        """Send one command line; return its final answer object ({"ok": ...}). Events that
        come first (watch, frames, notices) go to ``on_event``.

        A device found in text mode (restarted, or left so by another client) or silent for
        ``timeout`` is brought back to json mode and the line sent once more (except
        record/push/watch, which are reported instead)."""
        self.ensure_open()
        retry = line.split()[0].lower() not in self.NOT_RETRIED if line.split() else False
        self.send_line(line)
        try:
            return self.wait_answer(on_event, timeout, expect=_command_of(line), line=line,
                                    text_is_stale=False)
        except (_TextAnswer, ConsoleError) as exc:
            if isinstance(exc, PortBusy):
                raise
            self.connected = False
            self.connect()                      # renegotiate: the device is json again
            self.reconnects += 1
            if not retry:
                raise ConsoleError("the device restarted or was reset by another client while "
                                   f"running {line.split()[0]!r}; run it again") from None
            self.send_line(line)
            return self.wait_answer(on_event, timeout, expect=_command_of(line), line=line)

    def wait_answer(self, on_event=None, timeout: float | None = None,
                    expect: str | None = None, line: str | None = None,
                    text_is_stale: bool = True) -> dict:
        """The next final answer. Late answers to an earlier, timed-out request are skipped:
        answers tagged with another ``line``, or (untagged) naming another command. With
        ``text_is_stale`` False, a text-mode answer ("OK ..."/"ERR ...") raises _TextAnswer:
        the device is not in json mode any more."""
        timeout = self.timeout if timeout is None else timeout
        end = time.monotonic() + timeout
        while True:
            got = self.read_line(max(0.0, end - time.monotonic()))
            if got is None:
                raise ConsoleError(f"the device did not answer within {timeout:g} s")
            obj = _json(got)
            if obj is None:
                if not text_is_stale and (got.startswith("OK") or got.startswith("ERR")):
                    raise _TextAnswer(got)
                continue  # not ours (e.g. a stale text line)
            if "ok" in obj:
                if line is not None and "line" in obj:
                    if obj["line"] != line.strip():
                        continue
                elif expect and obj.get("cmd") not in (None, expect):
                    continue
                return obj
            if on_event:
                on_event(obj)
            end = max(end, time.monotonic() + timeout)  # streaming: the device is alive

    def call(self, line: str, **kw):
        """Like request, but an ERR answer raises ConsoleError; returns the answer's data."""
        ans = self.request(line, **kw)
        if not ans.get("ok"):
            raise ConsoleError(f"device: {ans.get('error')}")
        return ans.get("data")

    def close(self) -> None:
        """Leave the device as a person expects to find it: in text mode (the next one to
        open the port may be picocom or the Arduino serial monitor)."""
        if self.ser is None:
            return
        try:
            if self.connected:
                self.connected = False
                self.send_line("mode text")
                end = time.monotonic() + 1.0
                while (line := self.read_line(max(0.0, end - time.monotonic()))) is not None:
                    if line.startswith("OK mode text"):
                        break
        except Exception:
            pass  # unplugged, or the device is busy: nothing more to do
        self._close_port()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- tables (for completion and help)
    def commands(self) -> list[dict]:
        return self.call("help")["commands"]

    def params(self) -> list[dict]:
        return self.call("list")["params"]

    # --- push
    def push(self, data: bytes, chunk: int = pp.DEFAULT_CHUNK,
             progress: Callable[[int], None] | None = None, window: int = 8) -> dict:
        """Send a bundle; returns {"info": model_info, "resumed_from", "wire_bytes",
        "seconds", "resent_frames"}. Raises ConsoleError/PushError with the device's reason."""
        sha = hashlib.sha256(data).hexdigest()
        ready = self.request(f"push begin {len(data)} {sha} {chunk}")
        if not ready.get("ok"):
            raise ConsoleError(f"device refused the push: {ready.get('error')}")
        offset = int(ready["data"]["offset"])
        chunk = int(ready["data"]["chunk"])
        t0 = time.monotonic()
        sender = pp.PushSender(data, chunk, self.write, self.read_line, window=window,
                               ack_timeout=pp.ack_timeout_for(self.baud, chunk, window),
                               progress=progress)
        verdict = sender.run(offset // chunk)
        # the final answer can take a moment: the device loads the model to verify it
        ans = _json(verdict) if verdict else self.wait_answer(timeout=max(self.timeout, 30.0),
                                                              expect="push begin")
        seconds = time.monotonic() - t0
        if ans is None or "ok" not in ans:
            raise ConsoleError(f"unexpected answer from the device during the push: {verdict!r}")
        if not ans["ok"]:
            raise ConsoleError(f"device refused the model: {ans.get('error')}")
        return {"info": ans.get("data") or {}, "resumed_from": offset, "seconds": seconds,
                "wire_bytes": sender.wire_bytes, "resent_frames": sender.resent_frames,
                "sha256": sha}

    # --- record
    def record(self, label: str, seconds: float,
               on_rows: Callable[[int], None] | None = None,
               on_frames: Callable[[dict], None] | None = None) -> tuple[list[list[float]], dict]:
        """Record a demonstration; returns (rows, final data: session, rate_hz, channels...).
        ``on_rows`` gets the number of frames so far; ``on_frames`` each frames event's data
        (its ``now`` is the device's live reading: what the model makes of the take)."""
        rows: list[list[float]] = []
        start: dict = {}

        def on_event(ev):
            if ev.get("event") == "recording":      # the take has started
                start.update(ev.get("data") or {})
            elif ev.get("event") == "frames":
                rows.extend(ev["data"]["rows"])
                if on_rows:
                    on_rows(len(rows))
                if on_frames:
                    on_frames(ev["data"])

        ans = self.request(f"record {label} {seconds:g}", on_event, timeout=seconds + 10.0)
        if not ans.get("ok"):
            raise ConsoleError(f"device: {ans.get('error')}")
        done = dict(start, **(ans.get("data") or {}))
        return rows, done


def _command_of(line: str) -> str | None:
    """The command name the device will put in its answer to ``line`` (None if unparsable)."""
    from lanthorn.device.console.console_wire import ProtocolError, parse
    try:
        return parse(line)[0].name
    except ProtocolError:
        return None


def _json(line: str | None) -> dict | None:
    if not line or not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def read_bundle_file(path: str) -> tuple[bytes, str]:
    """(file bytes, the bundle's own SHA-256 as ``model info`` reports it), checked locally
    first so a wrong file is refused before the cable is busy for a minute (the device
    checks again after the transfer)."""
    from lanthorn.device.engine.bundle import read_bundle
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file")
    bundle = read_bundle(p)  # raises BundleError with a clear reason
    return p.read_bytes(), bundle.sha256
