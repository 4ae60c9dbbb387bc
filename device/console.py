"""The device side of the serial console: a thread that answers lines on a serial port.

Why a thread with a short read timeout: the loop must keep its frame rate whatever a person
(or line noise) sends, so the console never runs on the loop's thread and never blocks
longer than one read; everything it changes goes through the thread-safe ParamStore and
DataDir, and a model swap is one ``app.install_model`` call the loop picks up on its next
frame. Nothing typed can stop the server: every command runs inside one ``try``; bad bytes,
over-long lines and unknown commands get an ``ERR`` line (see :mod:`console_wire`).

The app is the running loop (``ConsoleApp`` in the console contract): ``params``,
``storage``, ``status()``, ``model_info()``, ``install_model(path)``, ``latest()`` and
``frames_since(t)``. pyserial is imported only when a port is opened by name.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import shutil
import threading
import time
import traceback
from typing import Any, Callable

import numpy as np

from lanthorn.device import console_wire as wire
from lanthorn.device.console_wire import MAX_LINE, ProtocolError
from lanthorn.device.push_wire import IDLE_TIMEOUT_S, PushError, PushReceiver, check_begin
from lanthorn.errors import UserError

READ_TIMEOUT_S = 0.02
MAX_WATCH_HZ = 50.0
MAX_RECORD_S = 600.0
RECORD_SOURCE = "device"
_PIN = re.compile(r"^[0-9A-Za-z]{4,16}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # as dataset names
_LOCKOUT_CAP_S = 300.0
_SPACE_MARGIN = 1 << 20  # keep 1 MiB free for settings and logs after a push


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
        out: list[tuple[str, Any]] = []
        if self._skip_lf and data[:1] == b"\n":
            data = data[1:]
        if data:
            self._skip_lf = False
        self.buf += data
        while True:
            ends = [i for i in (self.buf.find(b"\r"), self.buf.find(b"\n")) if i >= 0]
            if not ends:
                if len(self.buf) > self.limit:
                    self._dropped += len(self.buf)
                    self.buf.clear()
                return out
            i = min(ends)
            line = bytes(self.buf[:i])
            step = 2 if self.buf[i:i + 2] == b"\r\n" else 1
            if self.buf[i:i + 1] == b"\r" and i + 1 == len(self.buf):
                self._skip_lf = True  # the LF of a CRLF may come in the next read
            del self.buf[:i + step]
            if self._dropped or len(line) > self.limit:
                out.append(("long", self._dropped + len(line)))
                self._dropped = 0
            else:
                out.append(("line", line))

    def take_rest(self) -> bytes:
        """Bytes after the last complete line (binary push frames that arrived early)."""
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


def _hash_pin(pin: str, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, 20000).hex()


class ExhibitionLock:
    """The PIN lock, kept in its own small file (``lock.json``: salted hash, never the PIN),
    apart from the parameters so that a damaged settings.json cannot lift it. It fails
    closed: a lock file that exists but cannot be read counts as locked (a person with a
    shell on the device deletes it to recover). Wrong PINs lock out further attempts for a
    time that doubles with each failure (1 s, 2 s, 4 s ... 5 min), without ever blocking the
    console thread. The failure count is saved too, so pulling the plug does not buy a fresh
    set of quick guesses. Unlocking deletes the file, which works even on a full card.

    ``locked`` is the one query other parts (push, signature checks) ask."""

    def __init__(self, storage, clock: Callable[[], float] = time.monotonic):
        self.storage, self.clock = storage, clock
        state, record = storage.load_lock()
        self.damaged = state == "damaged"
        self.record = record if state == "locked" else None
        failures = self.record.get("failures", 0) if self.record else 0
        self.failures = failures if isinstance(failures, int) and 0 < failures < 10**6 else 0
        self.blocked_until = self.clock() + self._delay() if self.failures else 0.0
        self.note = ""  # why the lock state could not be stored, if it could not

    def _delay(self) -> float:
        return min(2.0 ** (min(self.failures, 64) - 1), _LOCKOUT_CAP_S)

    @property
    def locked(self) -> bool:
        return self.record is not None or self.damaged

    def _store(self, record: dict) -> None:
        try:
            self.storage.save_lock(record)
            self.note = ""
        except UserError as exc:  # full or read-only card: the lock holds in memory
            self.note = str(exc)

    def lock(self, pin: str) -> None:
        if self.locked:
            raise UserError("already locked (unlock PIN first)")
        if not _PIN.match(pin):
            raise UserError("the PIN must be 4-16 letters or digits")
        salt = os.urandom(16)
        record = {"salt": salt.hex(), "hash": _hash_pin(pin, salt)}
        self._store(record)  # survives restarts and power cuts
        self.record = record

    def unlock(self, pin: str) -> None:
        if not self.locked:
            raise UserError("not locked")
        if self.damaged:
            raise UserError(f"the lock file {self.storage.lock_path} is damaged, so the lock "
                            "stays on; delete that file on the device to lift it")
        wait = self.blocked_until - self.clock()
        if wait > 0:
            # rounded up: "try again in 0 s" while still refusing would be a lie
            raise UserError(f"too many wrong PINs; try again in {math.ceil(wait):d} s")
        try:
            good = hmac.compare_digest(_hash_pin(pin, bytes.fromhex(self.record["salt"])),
                                       self.record["hash"])
        except ValueError:  # a record whose salt is not hex: no PIN can match it
            good = False
        if not good:
            self.failures += 1
            delay = self._delay()
            self.blocked_until = self.clock() + delay
            self.record = dict(self.record, failures=self.failures)
            self._store(self.record)
            raise UserError(f"wrong PIN; next attempt allowed in {math.ceil(delay):d} s")
        self.storage.clear_lock()
        self.record, self.failures, self.blocked_until, self.note = None, 0, 0.0, ""


class ConsoleServer:
    """Answers console lines on ``port`` for ``app``.

    ``port`` is a device name (opened with pyserial at ``baud``) or an open serial-like
    object with ``read(n)``, ``write(b)`` and a read timeout. ``start()`` runs the server
    in a daemon thread; ``stop()`` ends it. Opened by name, a port that disappears (a USB
    cable pulled) is reopened every second until it comes back.
    """

    def __init__(self, port, app, baud: int = 115200, clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] | None = None):
        self.port_name = port if isinstance(port, (str, os.PathLike)) else None
        self.ser = None if self.port_name else port
        self.app, self.baud, self.clock = app, baud, clock
        self.log = log or (lambda msg: None)
        self.mode = "text"
        self.reader = LineReader()
        self.lock = ExhibitionLock(app.storage, clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self.stream: Any = None  # the running watch / record / push, if any
        self.handled = 0  # lines answered (for tests and status)
        self._open_failing = False

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
        try:
            self.ser = serial.Serial(os.fspath(self.port_name), self.baud, timeout=READ_TIMEOUT_S,
                                     write_timeout=2.0)
        except (serial.SerialException, OSError) as exc:
            if not self._open_failing:  # once, not every second into the journal
                self.log(f"console: cannot open {self.port_name} ({exc}); retrying every second")
            self._open_failing = True
            self.ser = None
            return False
        if self._open_failing:
            self.log(f"console: {self.port_name} is open")
        self._open_failing = False
        self.mode, self.reader = "text", LineReader()  # whoever plugs in next starts afresh
        return True

    def _notices(self) -> None:
        """Why the object runs on a fall-back (no model, bad settings...), said whenever the
        port (re)opens, so a person who just plugged the cable in learns it."""
        for msg in list(getattr(self.app, "messages", []) or []):
            self._send([wire.event_line(self.mode, "notice", "NOTE " + msg)])

    def serve_forever(self) -> None:
        if self.ser is not None:
            self._notices()
        while not self._stop.is_set():
            if self.ser is None:
                if not self.port_name or not self._open():
                    self._stop.wait(1.0)
                    continue
                self._notices()
            try:
                data = self.ser.read(4096 if self.stream else 512)
            except Exception as exc:  # port gone: reopen by name, or give up on an object
                self.log(f"console: read failed: {exc}")
                self._end_stream()
                if not self.port_name:
                    return
                try:
                    self.ser.close()
                except Exception:
                    pass
                self.ser = None
                continue
            try:
                self.on_bytes(data or b"")
                self.tick()
            except Exception:  # a bug must not take the console (let alone the loop) down
                self.log("console: internal error\n" + traceback.format_exc())
                self._end_stream()
                self._send(wire.err_lines(self.mode, None, "internal error (logged); "
                                              "the console is still running"))

    # --- output
    def _send(self, lines: list[str]) -> None:
        if not lines or self.ser is None:
            return
        data = wire_bytes(lines)
        with self._write_lock:
            try:
                self.ser.write(data)
            except Exception as exc:  # nobody listening (buffer full, port gone): drop it
                self.log(f"console: write failed: {exc}")
                if isinstance(self.stream, _Watch):
                    self.stream = None  # do not keep streaming into a line nobody reads

    # --- input
    def on_bytes(self, data: bytes) -> None:
        if isinstance(self.stream, _Push):
            self._push_bytes(data)
            return
        for kind, value in self.reader.feed(data):
            if kind == "long":
                self._stop_stream_for_input()
                self._send(wire.err_lines(self.mode, None, f"line too long ({value} bytes, "
                                              f"at most {MAX_LINE}); it was ignored"))
                continue
            self.handle_raw(value)
            if isinstance(self.stream, _Push):  # frames may have come in the same read
                rest = self.reader.take_rest()
                if rest:
                    self._push_bytes(rest)
                return

    def handle_raw(self, raw: bytes) -> None:
        try:
            line = decode_line(raw)
        except ProtocolError as exc:
            self._stop_stream_for_input()
            self._send(wire.err_lines(self.mode, None, str(exc)))
            return
        if self.stream is not None:
            stopped = self._stop_stream_for_input()
            if not line.strip() or line.strip().lower() == "stop":
                self._send(wire.ok_lines(self.mode, "stop", f"{stopped} stopped"))
                return
        if not line.strip():  # Enter on its own: answered too, so every line gets one answer
            self.handled += 1
            answer = wire.ok_lines(self.mode, None, "")
            self._send(wire.tag_answer(answer, line) if self.mode == "json" else answer)
            return
        self._send(self.handle_line(line))

    def handle_line(self, line: str) -> list[str]:
        """One typed line -> the answer lines (text or json per the current mode)."""
        self.handled += 1
        cmd_name = None
        try:
            cmd, args = wire.parse(line)
            cmd_name = cmd.name
            if cmd.writes and self.lock.locked:
                raise UserError("locked: changes are refused until 'unlock PIN'")
            handler = getattr(self, "cmd_" + cmd.name.replace(" ", "_"))
            answer = handler(cmd.name, args)
        except UserError as exc:
            answer = wire.err_lines(self.mode, cmd_name, str(exc))
        except Exception as exc:
            self.log("console: command failed\n" + traceback.format_exc())
            answer = wire.err_lines(self.mode, cmd_name, f"{type(exc).__name__}: {exc}")
        return wire.tag_answer(answer, line) if self.mode == "json" else answer

    def ok(self, cmd, message="", body=None, data=None) -> list[str]:
        return wire.ok_lines(self.mode, cmd, message, body, data)

    # --- streams (watch, record, push) run between reads, on this thread
    def tick(self) -> None:
        s = self.stream
        if isinstance(s, _Watch):
            now = self.clock()
            if now >= s.next_t:
                s.next_t = max(s.next_t + s.period, now)
                latest = self.app.latest()
                self._send([wire.event_line(self.mode, "watch",
                                                wire.format_values(_readable(latest)),
                                                data=latest)])
        elif isinstance(s, _Record):
            self._record_tick(s)
        elif isinstance(s, _Push):
            if s.rx.idle_for() > IDLE_TIMEOUT_S:
                self._end_stream()
                self._send(wire.err_lines(self.mode, "push begin", "push timed out (no data "
                                              f"for {IDLE_TIMEOUT_S:.0f} s); the old model keeps "
                                              "running; run the push again to resume"))

    def _stop_stream_for_input(self) -> str | None:
        s = self.stream
        if s is None or isinstance(s, _Push):
            return None
        if isinstance(s, _Record):
            self.stream = None
            self._send(wire.err_lines(self.mode, "record", "recording cancelled; nothing "
                                          "was saved"))
            return "record"
        self.stream = None
        return "watch"

    def _end_stream(self) -> None:
        if isinstance(self.stream, _Push):
            self.stream.rx.close()
        self.stream = None

    # --- commands (one method per entry of wire.COMMANDS; names with a space use "_")
    def cmd_help(self, name, args):
        return self.ok(name, body=wire.help_text(args[0] if args else None),
                       data={"commands": [c.describe() for c in wire.COMMANDS]})

    def cmd_mode(self, name, args):
        mode = args[0].lower()
        if mode not in ("text", "json"):
            raise UserError("mode must be text or json")
        self.mode = mode
        return self.ok(name, f"mode {mode}")

    def cmd_list(self, name, args):
        from lanthorn.device.params import text_table
        store = self.app.params
        values = store.snapshot()
        data = [dict(p.describe(), value=values[p.name]) for p in store.table]
        return self.ok(name, f"{len(data)} parameters", body=text_table(store).splitlines(),
                       data={"params": data})

    def _value_text(self, pname: str, value) -> str:
        p = self.app.params.param(pname)
        return f"{p.format(value)} {p.unit}".rstrip()

    def _note(self, pname: str, value) -> str:
        """What the piece really does with a value, when the hardware limits it (the LED
        budget of the profile wins over a larger power_cap_ma, and saying only OK would
        hide that)."""
        note = getattr(self.app, "param_note", None)
        text = note(pname, value) if note else None
        return f" ({text})" if text else ""

    def cmd_get(self, name, args):
        pname = self.app.params.param(args[0]).name      # names are case-insensitive
        value = self.app.params.get(pname)
        return self.ok(name, self._value_text(pname, value) + self._note(pname, value),
                       data={"name": pname, "value": value})

    def cmd_set(self, name, args):
        pname = self.app.params.param(args[0]).name
        value = self.app.params.set_text(pname, args[1])
        return self.ok(name, f"{pname} = {self._value_text(pname, value)}"
                       + self._note(pname, value), data={"name": pname, "value": value})

    def cmd_reset(self, name, args):
        target = None if args[0].lower() == "all" else args[0]
        self.app.params.reset(target)
        return self.ok(name, f"{target or 'all parameters'} back to default")

    def cmd_save(self, name, args):
        self.app.params.save(self.app.storage)
        return self.ok(name, "saved as the start-up values")

    def cmd_preset_save(self, name, args):
        self.app.storage.save_preset(args[0], self.app.params.snapshot())
        return self.ok(name, f"preset {args[0]} saved")

    def cmd_preset_load(self, name, args):
        warnings = self.app.params.update_from_dict(self.app.storage.load_preset(args[0]))
        return self.ok(name, f"preset {args[0]} loaded" + (f" ({len(warnings)} values skipped)"
                                                          if warnings else ""),
                       body=warnings, data={"warnings": warnings})

    def cmd_preset_list(self, name, args):
        names = self.app.storage.list_presets()
        return self.ok(name, f"{len(names)} presets", body=names, data={"presets": names})

    def cmd_preset_delete(self, name, args):
        self.app.storage.delete_preset(args[0])
        return self.ok(name, f"preset {args[0]} deleted")

    def cmd_status(self, name, args):
        st = dict(self.app.status())
        st["locked"] = self.lock.locked
        body = _body_lines(st)
        return self.ok(name, body=body, data=st)

    def cmd_model_info(self, name, args):
        info = self.app.model_info()
        body = _body_lines(info)
        return self.ok(name, f"model {info.get('name')}", body=body, data=info)

    def cmd_model_rollback(self, name, args):
        slot = args[0].lower() if args else "model"
        if slot not in ("model", "voice"):
            raise UserError(f"model rollback {args[0]!r}: say 'model rollback' for the gesture "
                            f"model or 'model rollback voice' for the voice")
        # previous, else the shipped default the first push replaced
        target = self.app.storage.rollback_target(slot)
        info = self.app.install_model(str(target))
        if slot == "voice":
            voice = info.get("voice") or {}
            return self.ok(name, f"rolled back to voice {voice.get('name')}", data=info)
        return self.ok(name, f"rolled back to {info.get('name')}", data=info)

    def cmd_lock(self, name, args):
        self.lock.lock(args[0])
        kept = f" (not stored: {self.lock.note}; it lasts until a restart)" if self.lock.note else ""
        return self.ok(name, "locked: changes are refused until 'unlock PIN'" + kept)

    def cmd_unlock(self, name, args):
        self.lock.unlock(args[0])
        return self.ok(name, "unlocked")

    def cmd_stop(self, name, args):
        return self.ok(name, "nothing to stop")

    def cmd_watch(self, name, args):
        try:
            hz = float(args[0]) if args else 5.0
        except ValueError:
            raise UserError(f"watch rate must be a number of Hz, got {args[0]}") from None
        if not 0.1 <= hz <= MAX_WATCH_HZ:
            raise UserError(f"watch rate must be between 0.1 and {MAX_WATCH_HZ:g} Hz, got {hz:g}")
        self.stream = _Watch(1.0 / hz, self.clock())
        return self.ok(name, f"watching at {hz:g} Hz; send any line or 'stop' to end",
                       data={"hz": hz})

    def cmd_record(self, name, args):
        from lanthorn.device import dataset, frames
        label = args[0]
        try:
            seconds = float(args[1])
        except ValueError:
            raise UserError(f"record SECONDS must be a number, got {args[1]}") from None
        if not 0.5 <= seconds <= MAX_RECORD_S:
            raise UserError(f"record SECONDS must be between 0.5 and {MAX_RECORD_S:g}, got {seconds:g}")
        if not _LABEL.match(label):
            raise UserError(f"label {label!r} must be 1-64 letters, digits, '.', '_' or '-'")
        rate = float(getattr(self.app, "frame_rate", None) or frames.DEFAULT_RATE_HZ)
        channels = tuple(getattr(self.app, "frame_channels", frames.CHANNELS))
        folder = self.app.storage.recordings_dir
        keep, why = self._device_dataset(folder, rate, channels, label)
        if not keep and self.mode != "json":
            # typed at a terminal: the take would go nowhere, so refuse before recording
            raise UserError(f"{why}; record new gestures with 'lanthorn record PORT {label} "
                            f"SECONDS --data DIR' on a computer")
        # everything buffered so far is before the take; the returned time is in the app's
        # own time base, so from here on the server only passes back what it was given
        _, t_from = self.app.frames_since(-math.inf)
        self.stream = _Record(label, seconds, self.clock(), rate, channels,
                              folder if keep else None)
        self.stream.t_last = t_from
        # one line, one answer: the start is a notice (an event in json mode); the final
        # OK (or ERR) comes when the take is done
        return [wire.event_line(
            self.mode, "recording", f"NOTE recording {label} for {seconds:g} s; 'stop' cancels",
            data={"label": label, "seconds": seconds, "rate_hz": rate,
                  "channels": list(channels), "kept_on_device": keep,
                  "not_kept_because": why})]

    def _kept(self):
        from lanthorn.device import dataset
        folder = self.app.storage.recordings_dir
        if not (folder / dataset.MANIFEST).exists():
            return None
        return dataset.load_dataset(folder)

    def cmd_recordings(self, name, args):
        ds = self._kept()
        rows = [] if ds is None else [
            {"session": r.session, "source": r.source, "frames": len(r.frames),
             "label": ds.labels[int(np.bincount(r.labels).argmax())]} for r in ds.recordings]
        body = [f"{x['session']}  {x['label']}  {x['frames']} frames" for x in rows]
        return self.ok(name, f"{len(rows)} take{'s' if len(rows) != 1 else ''} kept on the device",
                       body, data={"takes": rows})

    def cmd_recording_get(self, name, args):
        ds = self._kept()
        rec = next((r for r in (ds.recordings if ds else []) if r.session == args[0]), None)
        if rec is None:
            raise UserError(f"no take {args[0]!r} kept on the device (see 'recordings')")
        labels = [ds.labels[i] for i in rec.labels]
        runs: list[list] = []
        for lab in labels:                          # [[label, frames], ...]: short on the wire
            if runs and runs[-1][0] == lab:
                runs[-1][1] += 1
            else:
                runs.append([lab, 1])
        rows = [[float(f"{float(x):.5g}") for x in f] for f in rec.frames]
        data = {"session": rec.session, "source": rec.source, "rate_hz": ds.rate_hz,
                "channels": list(ds.channels), "labels": runs, "frames": len(rows)}
        if self.mode == "json":
            lines = [wire.json_line({"event": "frames", "data": {"rows": rows[i:i + 50]}})
                     for i in range(0, len(rows), 50)]
            return lines + self.ok(name, f"{len(rows)} frames of {rec.session}", data=data)
        body = ["label," + ",".join(ds.channels)] + [
            lab + "," + ",".join(f"{v:g}" for v in row) for lab, row in zip(labels, rows)]
        return self.ok(name, f"{len(rows)} frames of {rec.session}", body)

    def _device_dataset(self, folder, rate, channels, label) -> tuple[bool, str]:
        """Whether a take of ``label`` can also be kept in the device's own recordings
        (a dataset with the default label set), and if not, why."""
        from lanthorn.device import dataset, frames
        try:
            dataset.create_dataset(folder, rate, channels, frames.LABELS)
            header, sources, _ = dataset.read_manifest(folder)
        except dataset.DataError as exc:
            return False, f"the device's recordings cannot take it ({exc})"
        if label not in header["labels"]:
            return False, (f"label {label!r} is not one of the device's recording labels "
                           f"({', '.join(header['labels'])})")
        if RECORD_SOURCE not in sources:
            dataset.add_source(folder, dataset.Source(
                RECORD_SOURCE, device="recorded on the object over the serial console",
                notes="consent and author are added when the recordings are pulled to a host",
                rate_hz=rate))
        return True, ""

    def _record_tick(self, s: "_Record") -> None:
        from lanthorn.device import dataset
        now = self.clock()
        if now < s.next_poll:
            return
        s.next_poll = now + 0.2
        new, s.t_last = self.app.frames_since(s.t_last)
        want = int(round(s.seconds * s.rate))
        # 5 significant digits, as the dataset's CSV keeps them: shorter lines on the wire
        rows = [[float(f"{float(x):.5g}") for x in f] for f in new][:want - len(s.rows)]
        s.rows.extend(rows)
        if rows and self.mode == "json":  # the host client pulls the frames as they come
            # with what the model makes of them right now (live confidence while recording)
            self._send([wire.json_line({"event": "frames", "data": {
                "rows": rows, "now": self.app.latest()}})])
        if len(s.rows) < want and now - s.t0 < s.seconds + 2.0:
            return
        self.stream = None
        if not s.rows:
            self._send(wire.err_lines(self.mode, "record", "no frames arrived from the "
                                          "loop; nothing was saved"))
            return
        session = f"{s.label}-{time.strftime('%Y%m%d-%H%M%S')}"
        data = {"session": session, "path": None, "frames": len(s.rows), "label": s.label,
                "rate_hz": s.rate, "channels": list(s.channels)}
        where = "(streamed only, not kept on the device)"
        if s.folder is not None:
            path = dataset.write_recording(s.folder, RECORD_SOURCE, session, s.rows, s.label,
                                           rate_hz=s.rate)
            data["path"] = str(path.relative_to(self.app.storage.root))
            where = f"into {data['path']}"
        self._send(self.ok("record", f"recorded {len(s.rows)} frames of {s.label} {where}",
                           data=data))

    # --- trusted signing keys (device/signing.py; the lock decides whether they are needed)
    def _trust(self):
        from lanthorn.device.signing import TrustStore  # noqa: PLC0415
        return TrustStore(self.app.storage.root)

    def cmd_trust_list(self, name, args):
        entries = self._trust().entries()
        body = [f"{e['key']}  {e['name']}".rstrip() for e in entries] or ["(no trusted keys)"]
        return self.ok(name, f"{len(entries)} trusted key(s)", body=body,
                       data={"keys": entries, "locked": self.lock.locked})

    def cmd_trust_add(self, name, args):
        from lanthorn.device.signing import parse_public_key, short_id  # noqa: PLC0415
        key = parse_public_key(args[0])
        added = self._trust().add(key, args[1] if len(args) > 1 else "")
        return self.ok(name, f"{'trusting' if added else 'already trusted:'} {short_id(key)}…")

    def cmd_trust_remove(self, name, args):
        from lanthorn.device.signing import parse_public_key, short_id  # noqa: PLC0415
        key = parse_public_key(args[0])
        self._trust().remove(key)
        return self.ok(name, f"no longer trusting {short_id(key)}…")

    def cmd_push_begin(self, name, args):
        size, sha, chunk = check_begin(args[0], args[1], args[2] if len(args) > 2 else None)
        if self.lock.locked and not self._trust().keys():
            raise UserError("locked: no signing key is trusted, so no push can be installed; "
                            "'unlock PIN' first, or provision a key (see SIGNING.md)")
        incoming = self.app.storage.incoming_dir
        free = shutil.disk_usage(incoming).free
        if free < size + _SPACE_MARGIN:  # refuse now rather than fail half-way through
            raise UserError(f"not enough space on the device for a {size} byte model "
                            f"({free} bytes free); the old model keeps running")
        try:
            rx = PushReceiver(incoming, size, sha, chunk, clock=self.clock)
        except OSError as exc:
            raise UserError(f"cannot store the push: {exc.strerror or exc}") from None
        self.stream = _Push(rx)
        answer = self.ok(name, f"push ready chunk={chunk} offset={rx.resumed_from}",
                         data={"chunk": chunk, "offset": rx.resumed_from})
        if rx.complete:  # everything was already here from an interrupted push
            self._send(answer)
            self._finish_push()
            return []
        return answer

    def _push_bytes(self, data: bytes) -> None:
        s = self.stream
        try:
            replies = s.rx.feed(data)
        except OSError as exc:  # the data partition is full or failing
            self._end_stream()
            self._send(wire.err_lines(self.mode, "push begin", f"cannot store the push: "
                                          f"{exc.strerror or exc}; the old model keeps running"))
            return
        self._send(replies)
        if s.rx.aborted:
            self._end_stream()
            self._send(wire.err_lines(self.mode, "push begin", "push aborted by the sender; "
                                          "the old model keeps running"))
        elif s.rx.complete:
            self._finish_push()

    def _finish_push(self) -> None:
        rx = self.stream.rx
        self.stream = None
        try:
            path = rx.finish()
        except PushError as exc:
            self._send(wire.err_lines(self.mode, "push begin", str(exc)))
            return
        try:
            if self.lock.locked:
                self._check_signed(path)
            info = self.app.install_model(str(path))
        except Exception as exc:  # refused by verification: the app keeps its old model
            self._send(wire.err_lines(self.mode, "push begin", f"{exc}"))
            return
        finally:
            if path.exists():
                path.unlink()  # refused: do not keep a bad file around
        self._send(self.ok("push begin", f"installed {info.get('name')} sha256={info.get('sha256')}",
                           data=info))


    def _check_signed(self, path) -> None:
        """A locked object installs only bundles signed by a key it trusts."""
        from lanthorn.device.bundle import read_bundle  # noqa: PLC0415
        from lanthorn.device.signing import SignatureError, check_trusted  # noqa: PLC0415
        try:
            check_trusted(read_bundle(path), self._trust().keys())
        except SignatureError as exc:
            raise UserError(f"refused: this object is locked and installs only bundles signed "
                            f"by a trusted key; {exc}; the old model keeps running") from None


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


class _Watch:
    def __init__(self, period: float, now: float):
        self.period, self.next_t = period, now


class _Record:
    def __init__(self, label, seconds, t0, rate, channels, folder):
        self.label, self.seconds, self.t0, self.rate = label, seconds, t0, rate
        self.channels, self.folder = channels, folder  # folder None: streamed only
        self.t_last, self.next_poll, self.rows = t0, t0, []


class _Push:
    def __init__(self, rx: PushReceiver):
        self.rx = rx
