"""The device side of the serial console: a thread that answers lines on a serial port.

Why a thread with a short read timeout: the loop must keep its frame rate whatever a person
(or line noise) sends, so the console never runs on the loop's thread and never blocks
longer than one read; everything it changes goes through the thread-safe ParamStore and
DataDir, and a model swap is one ``app.install_model`` call the loop picks up on its next
frame. Nothing typed can stop the server: every command runs inside one ``try``; bad bytes,
over-long lines and unknown commands get an ``ERR`` line (see :mod:`console_wire`).

The server reads, splits lines, dispatches each to one handler and sends the answer; the
handlers that are more than a line or two live beside it, so each can be read alone:
:mod:`console_params` (parameters and presets), :mod:`console_record` (takes into the
device's dataset), :mod:`console_push` (model push and trusted keys) and
:mod:`exhibition_lock` (the PIN). A running ``watch``, ``record`` or push is the server's
one *stream*, ticked between reads on this thread.

The app is the running piece, seen only through
:class:`lanthorn.device.console.console_app.ConsoleApp` (``params``, ``storage``, ``status()``,
``model_info()``, ``install_model(path)``, ``rollback_model(slot)``, ``latest()``,
``param_note(name, value)``, ``frames_since(t)``) and nothing else. pyserial is imported
only when a port is opened by name.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from typing import Any, Callable, Iterator

from lanthorn.device.console import console_archive, console_params, console_push, console_record
from lanthorn.device.console import console_wire as wire
from lanthorn.device.console.console_wire import MAX_LINE, ProtocolError
from lanthorn.device.console.exhibition_lock import ExhibitionLock
from lanthorn.device.storage import fault_log
from lanthorn.device.storage.stores import CARD_ERRNOS
from lanthorn.errors import UserError
from lanthorn.vocabulary import BAUD

READ_TIMEOUT_S = 0.02
REOPEN_S = 1.0  # how often a port that is not there (a USB gadget, unplugged) is tried
MAX_WATCH_HZ = 50.0
LOG_LINES, MAX_LOG_LINES = 20, 1000


class LineReader:
    """Bytes in, complete lines out. CR, LF and CRLF all end a line (a CR then LF arriving
    in separate reads still count once). A line longer than ``limit`` bytes is discarded up
    to its end and reported as ``("long", n)``; otherwise ``("line", bytes)``."""

    def __init__(self, limit: int = MAX_LINE):
        self.limit = limit
        self.buf = bytearray()
        self._skip_lf = False
        self._dropped = 0  # bytes of an over-long line thrown away so far

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        """Every complete line of what has arrived so far."""
        self.add(data)
        return list(self.lines())

    def add(self, data: bytes) -> None:
        if self._skip_lf and data[:1] == b"\n":
            data = data[1:]
        if data:
            self._skip_lf = False
        self.buf += data

    def lines(self) -> Iterator[tuple[str, Any]]:
        """Complete lines one at a time, so a reader that stops after one (a push begins)
        finds everything after it, binary frames included, still in :meth:`take_rest`."""
        while True:
            ends = [i for i in (self.buf.find(b"\r"), self.buf.find(b"\n")) if i >= 0]
            if not ends:
                if len(self.buf) > self.limit:
                    self._dropped += len(self.buf)
                    self.buf.clear()
                return
            i = min(ends)
            line = bytes(self.buf[:i])
            step = 2 if self.buf[i:i + 2] == b"\r\n" else 1
            if self.buf[i:i + 1] == b"\r" and i + 1 == len(self.buf):
                self._skip_lf = True  # the LF of a CRLF may come in the next read
            del self.buf[:i + step]
            if self._dropped or len(line) > self.limit:
                yield "long", self._dropped + len(line)
                self._dropped = 0
            else:
                yield "line", line

    def take_rest(self) -> bytes:
        """Bytes after the lines taken so far (binary push frames that arrived early)."""
        rest = bytes(self.buf)
        self.buf.clear()
        if self._skip_lf and rest[:1] == b"\n":
            rest = rest[1:]
        self._skip_lf = False
        return rest


def decode_line(raw: bytes) -> str:
    """Bytes of one line -> text, applying backspace/delete as typed in a raw terminal.
    Raises ProtocolError for bytes that are not UTF-8 or control characters."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"line is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                            f"position {exc.start}); nothing was done") from None
    out: list[str] = []
    for ch in text:
        if ch in "\b\x7f":
            if out:
                out.pop()
        elif ch == "\t":
            out.append(" ")
        elif ord(ch) < 32:
            raise ProtocolError(f"line contains control character 0x{ord(ch):02x}; nothing was done")
        else:
            out.append(ch)
    return "".join(out)


#: Control characters inside one answer line, shown escaped: a value holding a newline must
#: never become a second line that a client would read as the device's own OK/ERR.
_ESCAPES = {i: f"\\x{i:02x}" for i in list(range(32)) + [0x7F]}
_ESCAPES.update({ord("\r"): "\\r", ord("\n"): "\\n", ord("\t"): "\\t",
                 0x2028: "\\u2028", 0x2029: "\\u2029"})


def wire_bytes(lines: list[str]) -> bytes:
    """Answer lines -> the bytes sent: each line on exactly one wire line (control
    characters escaped), and anything that is not UTF-8-encodable (a lone surrogate)
    backslash-escaped instead of failing the send and leaving the line unanswered."""
    return "".join(line.translate(_ESCAPES) + "\r\n" for line in lines).encode(
        "utf-8", "backslashreplace")


class ConsoleServer:
    """Answers console lines on ``port`` for ``app`` (a ConsoleApp).

    ``port`` is a device name (opened with pyserial at ``baud``) or an open serial-like
    object with ``read(n)``, ``write(b)`` and a read timeout. ``start()`` runs the server
    in a daemon thread; ``stop()`` ends it. Opened by name, a port that disappears (a USB
    cable pulled) is reopened every ``reopen_s`` seconds until it comes back. ``clock``
    times everything the console itself waits for (lockouts, watch rates, takes, a silent
    push), so tests can move it instead of sleeping.
    """

    def __init__(self, port, app, baud: int = BAUD, clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] | None = None, reopen_s: float = REOPEN_S):
        self.port_name = port if isinstance(port, (str, os.PathLike)) else None
        self.ser = None if self.port_name else port
        self.app, self.baud, self.clock, self.reopen_s = app, baud, clock, reopen_s
        self.log = log or (lambda msg: None)
        self.mode = "text"
        self.reader = LineReader()
        self.lock = ExhibitionLock(app.storage, clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self.stream: Any = None  # the running watch / record / push, if any
        self.handled = 0  # lines answered (for tests and status)
        self.open_attempts = 0  # tries to open the port by name (for tests and logs)
        self._open_failing = False
        self.access_until = 0.0  # 'access PIN': this connection may read a locked object

    # --- lifecycle
    def start(self) -> "ConsoleServer":
        self._thread = threading.Thread(target=self.serve_forever, name="lanthorn-console",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self._end_stream()
        if self.port_name and self.ser is not None:
            try:
                self.ser.close()
            except Exception:
                pass

    def _open(self) -> bool:
        import serial  # lazily: the device package imports without pyserial
        self.open_attempts += 1
        assert self.port_name is not None, "only a console given a port's name opens it"
        try:
            self.ser = serial.Serial(os.fspath(self.port_name), self.baud, timeout=READ_TIMEOUT_S,
                                     write_timeout=2.0)
        except (serial.SerialException, OSError) as exc:
            if not self._open_failing:  # once, not every second into the journal
                self.log(f"console: cannot open {self.port_name} ({exc}); retrying every "
                         f"{'second' if self.reopen_s == 1 else f'{self.reopen_s:g} s'}")
            self._open_failing = True
            self.ser = None
            return False
        if self._open_failing:
            self.log(f"console: {self.port_name} is open")
        self._open_failing = False
        self.mode, self.reader = "text", LineReader()  # whoever plugs in next starts afresh
        self.access_until = 0.0
        return True

    def _notices(self) -> None:
        """Why the object runs on a fall-back (no model, bad settings...), said whenever the
        port (re)opens, so a person who just plugged the cable in learns it."""
        for msg in list(self.app.status().get("messages") or []):
            self.send([wire.event_line(self.mode, "notice", "NOTE " + msg)])

    def serve_forever(self) -> None:
        if self.ser is not None:
            self._notices()
        while not self._stop.is_set():
            if self.ser is None:
                if not self.port_name or not self._open():
                    self._stop.wait(self.reopen_s)
                    continue
                self._notices()
            data = self._read()
            if data is None:
                if not self.port_name:
                    return
                continue
            try:
                self.on_bytes(data)
                self.tick()
            except Exception:  # a bug must not take the console (let alone the loop) down
                self.log("console: internal error\n" + traceback.format_exc())
                self._end_stream()
                self.send(wire.err_lines(self.mode, None, "internal error (logged); "
                                         "the console is still running"))

    def _read(self) -> bytes | None:
        """One read; None when the port is gone (closed, to be reopened by name)."""
        ser = self.ser
        assert ser is not None, "the loop opens the port before reading"
        try:
            return ser.read(4096 if self.stream else 512) or b""
        except Exception as exc:
            self.log(f"console: read failed: {exc}")
            self._end_stream()
            if self.port_name:
                try:
                    ser.close()
                except Exception:
                    pass
                self.ser = None
            return None

    # --- output
    def send(self, lines: list[str]) -> None:
        if not lines or self.ser is None:
            return
        data = wire_bytes(lines)
        with self._write_lock:
            try:
                self.ser.write(data)
            except Exception as exc:  # nobody listening (buffer full, port gone): drop it
                self.log(f"console: write failed: {exc}")
                if getattr(self.stream, "ends_when_unheard", False):
                    self.stream = None  # do not keep streaming into a line nobody reads

    def ok(self, cmd, message="", body=None, data=None) -> list[str]:
        return wire.ok_lines(self.mode, cmd, message, body, data)

    # --- input
    def on_bytes(self, data: bytes) -> None:
        if self.stream is not None and self.stream.takes_bytes:
            self._feed_stream(data)
            return
        self.reader.add(data)
        for kind, value in self.reader.lines():
            if kind == "long":
                self._stop_stream_for_input()
                self.send(wire.err_lines(self.mode, None, f"line too long ({value} bytes, "
                                         f"at most {MAX_LINE}); it was ignored"))
                continue
            self.handle_raw(value)
            if self.stream is not None and self.stream.takes_bytes:
                rest = self.reader.take_rest()  # frames may have come in the same read
                if rest:
                    self._feed_stream(rest)
                return

    def handle_raw(self, raw: bytes) -> None:
        try:
            line = decode_line(raw)
        except ProtocolError as exc:
            self._stop_stream_for_input()
            self.send(wire.err_lines(self.mode, None, str(exc)))
            return
        if self.stream is not None:
            stopped = self._stop_stream_for_input()
            if not line.strip() or line.strip().lower() == "stop":
                self.send(wire.ok_lines(self.mode, "stop", f"{stopped} stopped"))
                return
        if not line.strip():  # Enter on its own: answered too, so every line gets one answer
            self.handled += 1
            answer = wire.ok_lines(self.mode, None, "")
            self.send(wire.tag_answer(answer, line) if self.mode == "json" else answer)
            return
        self.send(self.handle_line(line))

    def handle_line(self, line: str) -> list[str]:
        """One typed line -> the answer lines (text or json per the current mode)."""
        self.handled += 1
        cmd_name = None
        try:
            cmd, args = wire.parse(line)
            cmd_name = cmd.name
            if cmd.writes and self.lock.locked:
                raise UserError("locked: changes are refused until 'unlock PIN'")
            if cmd.pin and not console_archive.may_read(self):
                raise UserError("locked: the model, voice, presets and saved settings are "
                                "read only with the PIN ('access PIN' first)")
            answer = HANDLERS[cmd.name](self, cmd.name, args)
        except UserError as exc:
            answer = wire.err_lines(self.mode, cmd_name, str(exc))
        except OSError as exc:  # a full or read-only card: one clear line, no traceback
            answer = self._card_refused(cmd_name, exc)
        except Exception as exc:
            answer = self._failed(cmd_name, exc)
        return wire.tag_answer(answer, line) if self.mode == "json" else answer

    def _failed(self, cmd_name: str | None, exc: Exception) -> list[str]:
        """A bug: the traceback goes to the device log, one line to the person."""
        self.log("console: command failed\n" + traceback.format_exc())
        return wire.err_lines(self.mode, cmd_name, f"{type(exc).__name__}: {exc}")

    def _card_refused(self, cmd_name: str | None, exc: OSError) -> list[str]:
        """A write the card refused (full, read-only, failing) in a command that did not
        say so itself: one line naming it and the way out, one line in the device log, and
        the problem kept for ``status`` and the fault log."""
        if exc.errno not in CARD_ERRNOS:
            return self._failed(cmd_name, exc)
        self.log(f"console: {cmd_name}: the card refused a write ({exc.strerror or exc})")
        return wire.err_lines(self.mode, cmd_name,
                              str(self.app.storage.refused(exc, f"finish '{cmd_name}'")))

    # --- the stream (watch, record, push) runs between reads, on this thread;
    # each has tick(server) -> still running?, cancel(server), close(), and a push feed(server, data)
    def tick(self) -> None:
        s = self.stream
        if s is not None and not s.tick(self) and self.stream is s:
            self.stream = None

    def _feed_stream(self, data: bytes) -> None:
        s = self.stream
        if not s.feed(self, data) and self.stream is s:
            self.stream = None

    def _stop_stream_for_input(self) -> str | None:
        """A line typed during a watch or take ends it (a push is not stopped by text)."""
        s = self.stream
        if s is None or s.takes_bytes:
            return None
        self.stream = None
        s.cancel(self)
        return s.name

    def _end_stream(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = None


class Watch:
    """``watch``: the newest sample every ``period`` seconds until any line is typed."""

    name = "watch"
    takes_bytes = False
    ends_when_unheard = True

    def __init__(self, period: float, now: float):
        self.period, self.next_t = period, now

    def tick(self, server: ConsoleServer) -> bool:
        now = server.clock()
        if now >= self.next_t:
            # keep the phase, but after a stall start afresh rather than send a burst
            nxt = self.next_t + self.period
            self.next_t = nxt if nxt > now else now + self.period
            latest = server.app.latest()
            server.send([wire.event_line(server.mode, "watch",
                                         wire.format_values(_readable(latest)), data=latest)])
        return True

    def cancel(self, server: ConsoleServer) -> None:
        pass

    def close(self) -> None:
        pass


# --- the commands that are a line or two (the others: console_params, _record, _push)


def cmd_help(server: ConsoleServer, name, args):
    return server.ok(name, body=wire.help_text(args[0] if args else None),
                     data={"commands": [c.describe() for c in wire.COMMANDS]})



def cmd_mode(server: ConsoleServer, name, args):
    mode = args[0].lower()
    if mode not in ("text", "json"):
        raise UserError("mode must be text or json")
    server.mode = mode
    server.access_until = 0.0  # a client starts and ends with 'mode': 'access PIN' ends with it
    return server.ok(name, f"mode {mode}")



def cmd_status(server: ConsoleServer, name, args):
    st = dict(server.app.status())
    st["locked"] = server.lock.locked
    return server.ok(name, body=_body_lines(st), data=st)



def cmd_model_info(server: ConsoleServer, name, args):
    info = server.app.model_info()
    return server.ok(name, f"model {info.get('name')}", body=_body_lines(info), data=info)



def cmd_model_rollback(server: ConsoleServer, name, args):
    slot = args[0].lower() if args else "model"
    if slot not in ("model", "voice"):
        raise UserError(f"model rollback {args[0]!r}: say 'model rollback' for the gesture "
                        f"model or 'model rollback voice' for the voice")
    info = server.app.rollback_model(slot)  # previous, else the shipped default
    if slot == "voice":
        voice = info.get("voice") or {}
        return server.ok(name, f"rolled back to voice {voice.get('name')}", data=info)
    return server.ok(name, f"rolled back to {info.get('name')}", data=info)



def cmd_lock(server: ConsoleServer, name, args):
    server.lock.lock(args[0])
    server.access_until = 0.0  # an earlier 'access PIN' does not outlive a new lock
    kept = f" (not stored: {server.lock.note}; it lasts until a restart)" if server.lock.note else ""
    return server.ok(name, "locked: changes are refused until 'unlock PIN'" + kept)



def cmd_unlock(server: ConsoleServer, name, args):
    server.lock.unlock(args[0])
    return server.ok(name, "unlocked")



def cmd_log(server: ConsoleServer, name, args):
    """``log [N]``: the on-card fault log (read-only, so it answers while locked)."""
    try:
        n = int(args[0]) if args else LOG_LINES
    except ValueError:
        raise UserError(f"log takes a number of lines, got {args[0]!r}") from None
    if not 1 <= n <= MAX_LOG_LINES:
        raise UserError(f"log shows 1 to {MAX_LOG_LINES} lines, got {n}")
    faults = server.app.storage.faults
    entries = faults.entries(n)
    summary = faults.summary()
    note = f"; {summary['problem']}" if summary.get("problem") else ""
    return server.ok(name, f"{len(entries)} of {summary['lines']} fault log lines{note}",
                     body=[fault_log.format_entry(e) for e in entries],
                     data={"entries": entries, **summary})



def cmd_stop(server: ConsoleServer, name, args):
    return server.ok(name, "nothing to stop")



def cmd_watch(server: ConsoleServer, name, args):
    try:
        hz = float(args[0]) if args else 5.0
    except ValueError:
        raise UserError(f"watch rate must be a number of Hz, got {args[0]}") from None
    if not 0.1 <= hz <= MAX_WATCH_HZ:
        raise UserError(f"watch rate must be between 0.1 and {MAX_WATCH_HZ:g} Hz, got {hz:g}")
    server.stream = Watch(1.0 / hz, server.clock())
    return server.ok(name, f"watching at {hz:g} Hz; send any line or 'stop' to end",
                     data={"hz": hz})


#: One handler per entry of console_wire.COMMANDS: (server, command name, args) -> lines.
HANDLERS: dict[str, Callable[[ConsoleServer, str, list[str]], list[str]]] = {
    "help": cmd_help, "mode": cmd_mode, "status": cmd_status, "model info": cmd_model_info,
    "model rollback": cmd_model_rollback, "lock": cmd_lock, "unlock": cmd_unlock,
    "log": cmd_log, "stop": cmd_stop, "watch": cmd_watch,
    **console_params.HANDLERS, **console_record.HANDLERS, **console_push.HANDLERS,
    **console_archive.HANDLERS}


def _readable(latest: dict) -> dict:
    """A watch sample for a person at a terminal: the sensors and the model, not the ring's
    colours in hex or the display's words (json clients get those for their pictures)."""
    return {k: v for k, v in latest.items() if k not in ("leds", "oled")}


def _body_lines(d: dict) -> list[str]:
    """``key: value`` lines for status / model info in text mode."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            v = wire.format_values(v)
        elif isinstance(v, (list, tuple)):
            v = "; ".join(str(x) for x in v) if v else "-"
        out.append(f"{k}: {v}")
    return out
