"""The companion backend: pads and LED ring of a microcontroller on a serial port.

A profile part of type "companion" (``[parts.touch]`` and/or ``[parts.leds]``) opens this
backend through :func:`open_companion_part`. Both roles on the same port share one
:class:`CompanionLink`, so the Pi opens the port once, says HELLO once, and the pads and
the ring see one consistent device.

Why there is no reader thread: every call pumps what has arrived, so the link's idea of
"alive" is the device loop's idea. In particular the keep-alive PING (PROTOCOL.md: at
least every idle_timeout/3) is sent from :meth:`CompanionTouch.read` (every LED frame is a host frame too), never from a background thread: if the device loop freezes,
the companion notices the silence and plays its own idle animation instead of freezing
on the Pi's last frame.

Failure contract (interfaces.py): single bad frames are counted, never raised; silence
(no frame for ``LINK_TIMEOUT_S`` while streaming or showing, no reply to HELLO, PING or
STATUS) and serial errors raise :class:`PartError`; the body then reopens the part.
Standard library and numpy at import; pyserial is imported when a port is opened.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

from lanthorn.vocabulary import BAUD

from ..interfaces import LedStrip, PartError, TouchReading, TouchSensor
from . import wire as P

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 3.0  # opening the port resets a Nano/Uno; its bootloader waits ~1.5 s
HELLO_RETRY_S = 0.25
REPLY_TIMEOUT_S = 1.0  # PING/STATUS/BRIGHTNESS/...: answered within ms; generous for a busy Pi
SHOW_ACK_TIMEOUT_S = 0.05  # PROTOCOL.md: wait up to 50 ms for the ACK of a SHOW
LINK_TIMEOUT_S = 1.0  # no frame at all for this long while streaming or showing: lost
WRITE_TIMEOUT_S = 1.0  # a write that cannot leave in this long: the port is stuck
FIRST_SENSOR_TIMEOUT_S = 1.0
# The timeouts above are read when used (not bound as defaults), so a slow simulation in a
# test can widen them without touching what real hardware gets.
WIRE_ORDER = "GRB"  # what the shipped firmware sends to its LEDs (main.c converts RGB -> GRB)
PIXELS_PER_CHUNK = (P.MAX_PAYLOAD - 3) // 3  # 65 RGB pixels after the LEDS header


def _open_serial(port: str, baud: int, name: str):
    """A pyserial port that never blocks a read and gives up on a stuck write."""
    try:
        import serial
    except ModuleNotFoundError:
        raise PartError(name, "pyserial is not installed (pip install pyserial)") from None
    try:
        return serial.Serial(port, baud, timeout=0, write_timeout=WRITE_TIMEOUT_S)
    except (serial.SerialException, OSError) as exc:
        raise PartError(name, f"cannot open serial port {port}: {exc}; check the cable "
                              f"and the port in the profile (ls /dev/ttyACM* /dev/ttyUSB*)") from None


def brightness_payload(level: float) -> bytes:
    """BRIGHTNESS's one byte: 0..1 as 0..255."""
    return bytes([int(round(min(max(level, 0.0), 1.0) * 255))])


def power_cap_payload(cap_ma: float | None) -> bytes:
    """POWER_CAP's two bytes: milliamps, 0 for "no cap"."""
    cap = 0 if cap_ma is None else int(min(max(cap_ma, 1), 0xFFFF))
    return cap.to_bytes(2, "little")


class FrameLink:
    """The wire to a companion: the serial port, framing, sequence numbers, replies matched
    to requests, the one rule that gates the line (nothing goes out while a SHOW is
    unacknowledged) and the link statistics. :class:`CompanionLink` adds the commands.

    ``port`` is a device path for pyserial, or an already open pyserial-like object (tests
    pass real pyserial ports over pseudo-terminals). ``name`` is used in PartError.
    """

    def __init__(self, port, baud: int = BAUD, name: str = "companion", clock=time.monotonic):
        self.name = name
        self._clock = clock
        self._lock = threading.RLock()  # touch and leds may be driven from two threads
        self._reader = P.FrameReader()
        self._rx_seq = P.SeqTracker()
        self._tx_seq = 0
        self._pending: list[P.Frame] = []  # replies not yet claimed by a waiter
        self.sensor: P.Sensor | None = None  # the newest scan
        self.recent: deque[P.Sensor] = deque(maxlen=256)  # the last scans, every one (diagnostics, tests)
        self.sensor_at = 0.0
        self.last_rx = self.last_tx = self._clock()
        self.broken: str | None = None
        # link statistics (PROTOCOL.md: bad frames are counted and dropped)
        self.rx_frames = self.rx_errors = self.seq_gaps = self.duplicates = 0
        self.shows_sent = self.shows_acked = self.shows_dropped = self.lost_acks = self.naks = 0
        self._show_pending: tuple[int, float] | None = None  # (seq, sent at) of the last SHOW
        self.last_error: str | None = None
        self.port_name = port if isinstance(port, str) else getattr(port, "port", None) or "?"
        self._owned = isinstance(port, str)
        self._serial = _open_serial(port, baud, name) if self._owned else port

    # ------------------------------------------------------------------ bytes in and out
    def _fail(self, message: str) -> PartError:
        self.broken = message
        return PartError(self.name, message)

    def _send(self, type_: int, payload: bytes = b"") -> int:
        if self.broken:
            raise PartError(self.name, self.broken)
        if self._show_pending is not None and type_ != P.LEDS:
            self.settle()  # PROTOCOL.md: nothing else goes out while a SHOW is unacknowledged
        seq = self._tx_seq
        self._tx_seq = (seq + 1) & 0xFF
        try:
            self._serial.write(P.encode_frame(type_, seq, payload))
        except Exception as exc:  # serial.SerialException, OSError, write timeout
            raise self._fail(f"serial write to {self.port_name} failed: {exc}") from None
        self.last_tx = self._clock()
        return seq

    def pump(self) -> None:
        """Read whatever has arrived and handle each frame (never blocks)."""
        try:
            waiting = self._serial.in_waiting
            data = self._serial.read(waiting) if waiting else b""
        except Exception as exc:
            raise self._fail(f"serial read from {self.port_name} failed: {exc}") from None
        if data:
            for item in self._reader.feed(data):
                self._handle(item)

    def _handle(self, item) -> None:
        if isinstance(item, P.ProtocolError):
            self.rx_errors += 1
            return
        self.last_rx = self._clock()
        gap = self._rx_seq.check(item.seq)
        if gap == P.SEQ_DUPLICATE:
            self.duplicates += 1
            return
        self.seq_gaps += gap
        self.rx_frames += 1
        if item.type == P.SENSOR:
            try:
                self.sensor = P.unpack_sensor(item.payload)
                self.recent.append(self.sensor)
                self.sensor_at = self.last_rx
            except P.ProtocolError:
                self.rx_errors += 1
        elif item.type == P.ERROR:
            code, detail, text = P.unpack_error(item.payload)
            self.last_error = text or P.ERROR_NAMES.get(code, f"error {code}")
            log.warning("%s: companion reports %s (code %d, detail %d)", self.name, self.last_error,
                        code, detail)
        else:
            if item.type == P.NAK:
                self.naks += 1
                t, s, code = P.unpack_nak(item.payload)
                log.warning("%s: companion refused %s seq %d: %s", self.name,
                            P.TYPE_NAMES.get(t, t), s, P.ERROR_NAMES.get(code, code))
            self._pending.append(item)
            del self._pending[:-16]  # unclaimed replies (late ACKs) must not pile up

    def _wait(self, match, timeout: float):
        """Pump until a pending frame satisfies ``match``; the frame, or None on timeout."""
        deadline = self._clock() + timeout
        while True:
            self.pump()
            for i, f in enumerate(self._pending):
                if match(f):
                    return self._pending.pop(i)
            if self._clock() >= deadline:
                return None
            time.sleep(0.001)

    def _request(self, type_: int, payload: bytes, reply: int, what: str,
                 timeout: float | None = None, accept=lambda f: True) -> P.Frame:
        """Send a frame and wait for its reply (ACK/NAK of this seq, or the reply type)."""
        timeout = REPLY_TIMEOUT_S if timeout is None else timeout
        with self._lock:
            seq = self._send(type_, payload)

            def match(f):
                if f.type in (P.ACK, P.NAK) and f.payload[:2] == bytes([type_, seq]):
                    return True
                return f.type == reply and reply not in (P.ACK, P.NAK) and accept(f)
            before = (self.rx_frames, self.rx_errors)
            f = self._wait(match, timeout)
            if f is None:
                heard = self.rx_frames - before[0]
                detail = (f"{heard} other frames and {self.rx_errors - before[1]} bad ones came meanwhile"
                          if heard or self.rx_errors > before[1] else "nothing came back")
                if self.last_error:
                    detail += f"; the companion last reported: {self.last_error}"
                raise self._fail(f"no reply to {what} within {timeout * 1000:.0f} ms ({detail}); is "
                                 f"the companion powered and running the lanthorn firmware?")
            if f.type == P.NAK:
                code = f.payload[2]
                raise PartError(self.name, f"companion refused {what}: "
                                           f"{P.ERROR_NAMES.get(code, f'error {code}')}")
            return f

    def _show_resolved(self, wait: bool = False) -> bool:
        """True once the outstanding SHOW (if any) is acknowledged, refused or overdue."""
        if self._show_pending is None:
            return True
        seq, sent = self._show_pending
        match = lambda f: f.type in (P.ACK, P.NAK) and f.payload[:2] == bytes([P.LEDS, seq])  # noqa: E731
        ack = self._wait(match, max(0.0, sent + SHOW_ACK_TIMEOUT_S - self._clock()) if wait else 0.0)
        if ack is None and self._clock() - sent < SHOW_ACK_TIMEOUT_S:
            return False
        self._show_pending = None
        if ack is not None:
            if ack.type == P.ACK:
                self.shows_acked += 1
            return True  # a NAK was logged and counted in _handle
        self.lost_acks += 1  # PROTOCOL.md: carry on and count it; silence is judged here
        silent = self._clock() - self.last_rx
        if silent > LINK_TIMEOUT_S:
            raise self._fail(f"the companion on {self.port_name} has not answered for "
                             f"{silent:.1f} s; check the USB cable and its power")
        return True

    def settle(self) -> None:
        """Wait (at most 50 ms after it was sent) until the outstanding SHOW is resolved."""
        with self._lock:
            self._show_resolved(wait=True)


class CompanionLink(FrameLink):
    """One companion on one serial port: HELLO on opening, then its commands (PING, STATUS,
    brightness, power cap, sensor streaming) and the LED frames, paced by SHOW's ACK."""

    def __init__(self, port, baud: int = BAUD, name: str = "companion",
                 hello_timeout: float | None = None, clock=time.monotonic):
        super().__init__(port, baud, name, clock)
        self.streaming = False
        self._deferred: tuple[np.ndarray, bool] | None = None  # the newest frame, waiting for that ACK
        self._settings: dict[int, bytes] = {}  # BRIGHTNESS/POWER_CAP to send with the next frame
        try:
            self.info: P.Info = self.hello(HELLO_TIMEOUT_S if hello_timeout is None else hello_timeout)
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------------ the commands
    def hello(self, timeout: float | None = None) -> P.Info:
        """Say HELLO until INFO arrives (retrying while an Arduino bootloader runs)."""
        timeout = HELLO_TIMEOUT_S if timeout is None else timeout
        with self._lock:
            deadline = self._clock() + timeout
            try:
                self._serial.write(b"\x00")  # end any half-sent frame from before we opened
            except Exception as exc:
                raise self._fail(f"serial write to {self.port_name} failed: {exc}") from None
            while True:
                seq = self._send(P.HELLO, bytes([P.VERSION]))
                f = self._wait(lambda f, seq=seq: f.type == P.INFO or (
                    f.type == P.NAK and f.payload[:2] == bytes([P.HELLO, seq])),
                    min(HELLO_RETRY_S, max(0.0, deadline - self._clock())))
                if f is not None and f.type == P.NAK:
                    raise self._fail("the companion firmware speaks another protocol version than "
                                     f"this lanthorn ({P.VERSION}); flash firmware/ from this release")
                if f is not None:
                    self._rx_seq.reset()
                    self._rx_seq.check(f.seq)
                    info = P.unpack_info(f.payload)
                    self.last_rx = self._clock()
                    return info
                if self._clock() >= deadline:
                    raise self._fail(f"no answer to HELLO on {self.port_name} within {timeout:.1f} s: "
                                     "check the port, the baud rate and that the lanthorn firmware "
                                     "is flashed (make -C firmware flash)")

    def ping(self, data: bytes = b"") -> float:
        """Round trip time in seconds of a PING carrying ``data``."""
        if len(data) > P.MAX_PING:
            raise ValueError(f"PING carries at most {P.MAX_PING} bytes")
        if not data:  # a nonce, so a late PONG of a keep-alive cannot answer this PING
            self._nonce = (getattr(self, "_nonce", 0) + 1) & 0xFFFF
            data = b"L" + self._nonce.to_bytes(2, "little")
        t0 = self._clock()
        self._request(P.PING, data, P.PONG, "PING", accept=lambda f: f.payload == data)
        return self._clock() - t0

    def keepalive(self) -> None:
        """Send a PING without waiting when the host has been quiet for idle_timeout/3."""
        with self._lock:
            if self._clock() - self.last_tx >= self.info.idle_timeout_ms / 3000.0:
                self._send(P.PING, b"")

    def status(self) -> P.Status:
        return P.unpack_status(self._request(P.STATUS_REQ, b"", P.STATUS, "STATUS").payload)

    def set_brightness(self, level: float) -> None:
        """Brightness the companion applies to its idle animation and to non-prelimited frames
        (waits for the ACK: for opening the part, never from the loop; see :meth:`queue_setting`)."""
        self._request(P.BRIGHTNESS, brightness_payload(level), P.ACK, "BRIGHTNESS")

    def set_power_cap(self, cap_ma: float | None) -> None:
        self._request(P.POWER_CAP, power_cap_payload(cap_ma), P.ACK, "POWER_CAP")

    def queue_setting(self, type_: int, payload: bytes) -> None:
        """Send a setting (BRIGHTNESS, POWER_CAP) ahead of the next LED frame, without waiting.

        The device loop changes brightness live (``set brightness 40``); waiting for the
        companion's ACK there would stall a frame for a round trip, or for a second when the
        companion is busy. So the setting goes out when the line is free, as LED frames do
        (newest value wins); its ACK is left unclaimed, a NAK is logged and counted when it
        arrives (``_handle``), and a companion that stops answering is noticed by the link's
        silence rules like any other."""
        with self._lock:
            self._settings[type_] = payload

    def stream(self, rate_hz: int) -> None:
        """Ask for SENSOR frames at ``rate_hz`` (0 stops them)."""
        self._request(P.STREAM, int(rate_hz).to_bytes(2, "little"), P.ACK, "STREAM")
        self.streaming = rate_hz > 0
        self.sensor_at = self._clock()

    def check_alive(self) -> None:
        """PartError when the companion has gone silent while it should be talking."""
        if self.broken:
            raise PartError(self.name, self.broken)
        silent = self._clock() - self.last_rx
        if self.streaming and silent > LINK_TIMEOUT_S:
            raise self._fail(f"no frame from the companion on {self.port_name} for {silent:.1f} s; "
                             "check the USB cable and the companion's power")

    def show(self, rgb: np.ndarray, prelimited: bool = True) -> None:
        """Queue a (n, 3) uint8 RGB frame for the ring; never waits for the companion.

        PROTOCOL.md: nothing may be sent while a SHOW is unacknowledged (the companion's
        interrupts are off during the WS2812 output). Its ACK comes back ~15-20 ms after the
        frame at 115200 baud with 100 Hz sensor streaming (measured under simavr: line time
        both ways plus the SENSOR frames queued ahead of it), longer than a 60 fps frame.
        So the newest frame waits here until that ACK arrives (or 50 ms pass) and is sent
        by the next :meth:`poll`, from this call or the touch part's next read; a frame
        replaced before it went out is counted in ``shows_dropped`` (newest wins, as the
        protocol intends). The device loop never blocks on the LEDs.
        """
        data = np.array(rgb, dtype=np.uint8).reshape(-1, 3)
        with self._lock:
            if self._deferred is not None:
                self.shows_dropped += 1
            self._deferred = (data, prelimited)
            self.poll()

    def poll(self) -> None:
        """Pump what has arrived and send the waiting LED frame if the line is free."""
        with self._lock:
            self.pump()
            if (self._deferred is None and not self._settings) or not self._show_resolved():
                return
            while self._settings:
                type_, payload = next(iter(self._settings.items()))
                self._send(type_, payload)
                del self._settings[type_]
            if self._deferred is None:
                return
            data, prelimited = self._deferred
            self._deferred = None
            n = len(data)
            for start in range(0, n, PIXELS_PER_CHUNK):
                chunk = data[start:start + PIXELS_PER_CHUNK]
                last = start + len(chunk) >= n
                seq = self._send(P.LEDS, P.leds_payload(chunk.tobytes(), start, show=last,
                                                        prelimited=prelimited))
            self._show_pending = (seq, self._clock())
            self.shows_sent += 1

    def flush(self) -> None:
        """Send the waiting LED frame now (waiting for the line first) and settle it."""
        with self._lock:
            self.settle()
            self.poll()
            self.settle()

    def close(self) -> None:
        s = getattr(self, "_serial", None)
        if s is None:
            return
        try:
            if not self.broken:
                self.flush()  # the last frame (often "all off") must reach the ring
        except PartError:
            pass
        self._serial = None
        if self._owned:
            try:
                s.close()
            except Exception:
                pass


class CompanionTouch(TouchSensor):
    """The companion's MPR121 pads, as a TouchSensor (newest streamed scan per read)."""

    def __init__(self, link: CompanionLink, pads: int = 12, rate_hz: int | None = None,
                 name: str = "touch", on_close=None):
        self.name = name
        self.link: CompanionLink = link
        self._on_close = on_close
        info = link.info
        if pads > info.n_pads:
            raise PartError(name, f"the profile asks for {pads} pads but the companion firmware "
                                  f"scans {info.n_pads}; rebuild it with N_PADS={pads} or fix the profile")
        self.n_pads = pads
        link.stream(rate_hz or info.pad_rate_hz)
        with link._lock:
            first = link._clock() + FIRST_SENSOR_TIMEOUT_S
            while link.sensor is None and link._clock() < first:
                link.pump()
                time.sleep(0.002)
        if link.sensor is None:
            raise link._fail(f"no SENSOR frame within {FIRST_SENSOR_TIMEOUT_S:.0f} s of asking "
                             "the companion to stream")

    def read(self) -> TouchReading:
        link = self.link
        with link._lock:
            link.poll()  # also sends an LED frame that was waiting for the line
            link.check_alive()
            link.keepalive()
            s = link.sensor
        assert s is not None  # __init__ waited for the first scan
        if s.status & P.SENSOR_FAIL:
            raise PartError(self.name, "the companion's MPR121 is not answering: check its SDA/SCL, "
                                       "3.3 V and ADDR wiring to the microcontroller")
        if s.status & P.SENSOR_OVERCURRENT:
            raise PartError(self.name, "over-current flag set: an electrode is shorted to ground "
                                       "or VDD; check the pad wiring, then restart")
        n = self.n_pads
        return TouchReading(raw=np.array(s.raw[:n], np.uint16),
                            baseline=np.array(s.baseline[:n], np.uint16),
                            touched=s.touched & ((1 << n) - 1))

    @property
    def t_ms(self) -> int | None:
        """The companion's clock at the newest scan (for latency and rate measurements)."""
        return None if self.link.sensor is None else self.link.sensor.t_ms

    def close(self) -> None:
        link, self.link = getattr(self, "link", None), None  # type: ignore[assignment]  # closed: None
        if link is None:
            return
        try:
            if not link.broken and link._serial is not None:
                link.stream(0)
        except PartError:
            pass
        if self._on_close:
            self._on_close()


class CompanionLeds(LedStrip):
    """The companion's WS2812 ring, as a LedStrip.

    Brightness and the power cap are applied here (``LedStrip.show``) and again, as a
    safety net, on the companion: it gets the same cap at open, so a limited frame passes
    it unchanged, and the brightness for its own idle animation. ``order`` is the strip's
    colour order; the shipped firmware writes GRB, so for any other order the host
    permutes the bytes so that what reaches the wire is in ``order``.
    """

    def __init__(self, link: CompanionLink, count: int = 24, order: str = "GRB",
                 brightness: float = 1.0, power_cap_ma: float | None = None, name: str = "leds",
                 on_close=None):
        self.name = name
        self.link = link
        self._on_close = on_close
        self._brightness, self._sync = 1.0, False
        self._power_cap_ma: float | None = None
        if count != link.info.n_leds:
            raise PartError(name, f"the profile says {count} LEDs but the companion firmware drives "
                                  f"{link.info.n_leds}; rebuild it with N_LEDS={count} or fix the profile")
        super().__init__(count, brightness, power_cap_ma)
        # host byte j goes to the firmware, which swaps the first two (RGB -> GRB) on the wire
        wire = ["RGB".index(c) for c in order.upper()]
        self._perm = [wire[WIRE_ORDER.index(c)] for c in "RGB"]
        if power_cap_ma is not None:  # else the firmware keeps its own DEFAULT_POWER_CAP_MA
            link.set_power_cap(power_cap_ma)
        link.set_brightness(brightness)
        self._sync = False

    # Brightness and the cap are set by the loop as plain attributes (``set brightness 40``
    # on the console); the companion needs them too, for its idle animation and backstop
    # cap. A change is queued with the next frame (CompanionLink.queue_setting: never waits
    # for the companion), where a link failure is a part failure the loop already handles
    # (a setter must never throw into the loop).
    @property
    def brightness(self) -> float:
        return self._brightness

    @brightness.setter
    def brightness(self, value: float) -> None:
        value = float(value)
        if value != getattr(self, "_brightness", None):
            self._brightness = value
            self._sync = True

    @property
    def power_cap_ma(self) -> float | None:
        return self._power_cap_ma

    @power_cap_ma.setter
    def power_cap_ma(self, value: float | None) -> None:
        if value != getattr(self, "_power_cap_ma", None):
            self._power_cap_ma = value
            self._sync = True

    def _write(self, frame: np.ndarray) -> None:
        if self._sync:
            self._sync = False
            if self._power_cap_ma is not None:
                self.link.queue_setting(P.POWER_CAP, power_cap_payload(self._power_cap_ma))
            self.link.queue_setting(P.BRIGHTNESS, brightness_payload(self._brightness))
        self.link.show(frame[:, self._perm], prelimited=True)

    def close(self) -> None:
        link, self.link = getattr(self, "link", None), None  # type: ignore[assignment]  # closed: None
        if link is None:
            return
        try:
            if not link.broken and link._serial is not None:
                link.flush()
        except PartError:
            pass
        if self._on_close:
            self._on_close()


# ---------------------------------------------------------------------- from a profile
_links: dict[str, list] = {}  # port -> [link, users]
_links_lock = threading.Lock()


def _acquire(port: str, baud: int, name: str) -> CompanionLink:
    with _links_lock:
        entry = _links.get(port)
        if entry is None or entry[0].broken or entry[0]._serial is None:
            if entry is not None:
                entry[0].close()
            entry = _links[port] = [CompanionLink(port, baud, name=name), 0]
        entry[1] += 1
        return entry[0]


def _release(port: str, link: CompanionLink) -> None:
    with _links_lock:
        entry = _links.get(port)
        if entry is None or entry[0] is not link:
            link.close()
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _links[port]
            link.close()


def open_companion_part(role: str, options: dict, power_cap_ma: float | None = None):
    """Open the touch or leds part of a profile's companion (see hardware/profile.py)."""
    port, baud = options["port"], options.get("baud", BAUD)
    link = _acquire(port, baud, role)
    release = lambda: _release(port, link)  # noqa: E731
    try:
        if role == "touch":
            return CompanionTouch(link, options.get("pads", 12), name=role, on_close=release)
        if role == "leds":
            return CompanionLeds(link, options.get("count", 24), options.get("order", "GRB"),
                                 options.get("brightness", 1.0), power_cap_ma, name=role,
                                 on_close=release)
        raise PartError(role, "a companion provides only the touch and leds parts")
    except Exception:
        release()
        raise
