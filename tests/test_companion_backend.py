"""The companion backend against a scripted companion on a pseudo-terminal (real pyserial
on the host side), for the paths the real firmware under simavr cannot be made to take:
wrong protocol version, mismatched profile, sensor failure, silence, garbage and gaps."""
from __future__ import annotations

import logging
import os
import re
import threading
import time

import numpy as np
import pytest

from lanthorn.hardware.companion import backend as B
from lanthorn.hardware.companion import wire as P
from lanthorn.hardware.interfaces import PartError

INFO = P.Info(protocol=1, firmware=(0, 1, 0), board=P.BOARD_ATMEGA328P, n_pads=12, n_leds=24,
              pad_rate_hz=100, idle_timeout_ms=1500, max_payload=200, flags=P.INFO_TOUCH_OK)


class FakeCompanion:
    """Answers like main.c on the master side of a pty; behaviour is tweakable per test."""

    def __init__(self, info=INFO):
        self.master, self.slave = os.openpty()
        self.port = os.ttyname(self.slave)
        self.info = info
        self.seq = 0
        self.received: list[P.Frame] = []
        self.sensor_status = 0
        self.stream_hz = 0
        self.silent = False  # stop answering and streaming (cable pulled)
        self.nak_hello = False
        self.garbage_before_reply = b""
        self.skip_seq = 0  # add to the next seq (frames "lost" on the way)
        self.duplicate_next = False
        self.ignore: set[int] = set()  # frame types it never answers (a busy or buggy firmware)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def send(self, type_, payload=b""):
        self.seq = (self.seq + self.skip_seq) & 0xFF
        self.skip_seq = 0
        wire = P.encode_frame(type_, self.seq, payload)
        os.write(self.master, self.garbage_before_reply + wire + (wire if self.duplicate_next else b""))
        self.garbage_before_reply, self.duplicate_next = b"", False
        self.seq = (self.seq + 1) & 0xFF

    def _run(self):
        reader = P.FrameReader()
        next_scan = time.monotonic()
        t0 = time.monotonic()
        while not self._stop.is_set():
            import select
            r, _, _ = select.select([self.master], [], [], 0.002)
            if r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    return
                for f in reader.feed(data):
                    if isinstance(f, P.Frame):
                        self.received.append(f)
                        if not self.silent and f.type not in self.ignore:
                            self._answer(f)
            now = time.monotonic()
            if self.stream_hz and not self.silent and now >= next_scan:
                next_scan = now + 1.0 / self.stream_hz
                n = self.info.n_pads
                self.send(P.SENSOR, P.pack_sensor(P.Sensor(int((now - t0) * 1000), 0b101, self.sensor_status,
                                                           tuple([640] * n), tuple([700] * n))))

    def _answer(self, f):
        if f.type == P.HELLO:
            if self.nak_hello:
                self.send(P.NAK, bytes([P.HELLO, f.seq, P.E_VERSION]))
            else:
                self.send(P.INFO, P.pack_info(self.info))
        elif f.type == P.PING:
            self.send(P.PONG, f.payload)
        elif f.type == P.STREAM:
            self.stream_hz = int.from_bytes(f.payload, "little")
            self.send(P.ACK, bytes([f.type, f.seq]))
        elif f.type in (P.BRIGHTNESS, P.POWER_CAP) or (f.type == P.LEDS and f.payload[0] & P.LEDS_SHOW):
            self.send(P.ACK, bytes([f.type, f.seq]))
        elif f.type == P.STATUS_REQ:
            self.send(P.STATUS, P.pack_status(P.Status(1, 0, 255, 0, 0, 0, 0, 0)))

    def close(self):
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def fake():
    f = FakeCompanion()
    yield f
    f.close()
    B._links.clear()


def test_touch_and_leds_share_one_link_and_close_it_with_the_last_part(fake):
    touch = B.open_companion_part("touch", {"port": fake.port})
    leds = B.open_companion_part("leds", {"port": fake.port, "count": 24}, power_cap_ma=900)
    assert touch.link is leds.link and sum(f.type == P.HELLO for f in fake.received) == 1
    cap = next(f for f in fake.received if f.type == P.POWER_CAP)
    assert int.from_bytes(cap.payload, "little") == 900
    r = touch.read()
    assert r.touched == 0b101 and r.pads() == [0, 2] and (r.delta() == 60).all()
    touch.close()
    assert B._links  # leds still uses it
    leds.close()
    assert not B._links


def test_unsupported_protocol_version_is_a_clear_error(fake):
    fake.nak_hello = True
    with pytest.raises(PartError, match="another protocol version.*flash firmware"):
        B.open_companion_part("touch", {"port": fake.port})


@pytest.mark.parametrize("role,options,message", [
    ("touch", {"pads": 16}, "profile asks for 16 pads but the companion firmware scans 12"),
    ("leds", {"count": 60}, "profile says 60 LEDs but the companion firmware drives 24"),
    ("display", {}, "only the touch and leds parts"),
])
def test_profile_that_does_not_match_the_firmware(fake, role, options, message):
    with pytest.raises(PartError, match=message):
        B.open_companion_part(role, {"port": fake.port, **options})
    assert not B._links  # the failed part released the port


def _eventually_raises(read, match, timeout=10.0):
    """The pty hands bytes over asynchronously: poll until the new state shows."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        try:
            read()
        except PartError as exc:
            if re.search(match, str(exc)):
                return
            seen.append(str(exc))  # the previous state, not handed over yet
        assert time.monotonic() < deadline, f"no PartError matching {match!r}; saw {seen[-1:]}"
        time.sleep(0.01)


def test_sensor_failure_and_overcurrent_reported_by_the_companion(fake):
    touch = B.open_companion_part("touch", {"port": fake.port})
    try:
        fake.sensor_status = P.SENSOR_FAIL
        _eventually_raises(touch.read, "MPR121 is not answering")
        fake.sensor_status = P.SENSOR_OVERCURRENT
        _eventually_raises(touch.read, "over-current")
        fake.sensor_status = 0
        deadline = time.monotonic() + 10
        while True:  # recovers by itself: the link is fine
            try:
                assert touch.read().touched == 0b101
                break
            except PartError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        touch.close()


def test_silence_while_streaming_raises_and_the_part_can_be_reopened(fake):
    touch = B.open_companion_part("touch", {"port": fake.port})
    touch.read()
    fake.silent = True
    with pytest.raises(PartError, match="no frame from the companion"):
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            touch.read()
            time.sleep(0.01)
    broken = touch.link
    touch.close()
    fake.silent = False
    again = B.open_companion_part("touch", {"port": fake.port})  # what body.open_part does
    try:
        assert again.link is not broken and again.read().touched == 0b101
    finally:
        again.close()


def test_garbage_gaps_and_duplicates_are_counted_not_raised(fake):
    link = B.CompanionLink(fake.port, name="touch")  # not streaming: only replies come back
    try:
        fake.garbage_before_reply = b"\x05\x11\x22\x00\xff\xff\x00"  # a bad-CRC frame + junk
        assert link.ping(b"x") > 0
        fake.skip_seq = 3
        assert link.ping(b"y") > 0
        fake.duplicate_next = True
        assert link.ping(b"z") > 0
        assert link.ping(b"w") > 0  # the duplicate PONG z has arrived by now
        assert (link.rx_errors, link.seq_gaps, link.duplicates) == (2, 3, 1)
    finally:
        link.close()


def test_error_frames_are_logged_with_their_text(fake, caplog):
    touch = B.open_companion_part("touch", {"port": fake.port})
    try:
        with caplog.at_level(logging.WARNING, logger=B.__name__):
            fake.send(P.ERROR, bytes([P.E_SENSOR, 0x5A]) + b"MPR121 not answering: check SDA/SCL")
            deadline = time.monotonic() + 10
            while touch.link.last_error is None and time.monotonic() < deadline:
                touch.read()
                time.sleep(0.01)
        assert touch.link.last_error == "MPR121 not answering: check SDA/SCL"
        assert "MPR121 not answering" in caplog.text
    finally:
        touch.close()


@pytest.mark.parametrize("order", ["GRB", "RGB", "BRG"])
def test_colour_order_reaches_the_wire_as_the_profile_says(fake, order):
    """The firmware swaps R and G (it writes GRB); the host pre-permutes for other strips."""
    leds = B.open_companion_part("leds", {"port": fake.port, "count": 24, "order": order})
    frame = np.zeros((24, 3), np.uint8)
    frame[0] = (10, 20, 30)  # R, G, B
    leds.show(frame)
    leds.close()
    assert not any(f.type == P.POWER_CAP for f in fake.received)  # no cap in the profile:
    # the firmware keeps its own default rather than being told "no cap"
    sent = [f for f in fake.received if f.type == P.LEDS][-1]
    host_bytes = sent.payload[3:6]
    wire = bytes([host_bytes[1], host_bytes[0], host_bytes[2]])  # what main.c sends out
    assert wire == bytes({"R": 10, "G": 20, "B": 30}[c] for c in order)


def test_ping_payload_limit_is_a_programming_error(fake):
    touch = B.open_companion_part("touch", {"port": fake.port})
    try:
        with pytest.raises(ValueError, match="at most 32"):
            touch.link.ping(bytes(33))
    finally:
        touch.close()


def test_companion_command_reports_watches_and_walks_the_leds(fake, capsys, monkeypatch):
    from lanthorn.cli import main as cli
    from lanthorn.hardware.companion import check
    monkeypatch.setattr(check, "LED_STEP_S", 0.005)
    assert cli(["companion", fake.port, "--watch", "0.3", "--leds"]) == 0
    out = capsys.readouterr().out
    assert f"companion on {fake.port}: lanthorn firmware 0.1.0, protocol 1, ATmega328P" in out
    assert "12 pads at 100 Hz (MPR121 answering), 24 LEDs" in out
    assert "touched: 0 (-60), 2 (-60)" in out
    assert "status: live" in out
    shows = [f for f in fake.received if f.type == P.LEDS]
    assert len(shows) >= 2 and shows[-1].payload[3:] == bytes(72)  # ends with the ring off


@pytest.mark.parametrize("argv,message", [
    (["companion", "/dev/ttyNOPE0"], "cannot open serial port /dev/ttyNOPE0"),
    (["companion", "/dev/null", "--watch", "-1"], "--watch must be a number of seconds"),
])
def test_companion_command_mistakes_are_one_line(capsys, argv, message):
    from lanthorn.cli import main as cli
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_brightness_and_power_cap_changes_reach_the_companion(fake):
    """`set brightness 40` on the console changes the strip's attributes; the companion
    (its idle animation, its backstop cap) must hear about it, not only at open."""
    leds = B.open_companion_part("leds", {"port": fake.port, "count": 24}, power_cap_ma=900)
    frame = np.zeros((24, 3), np.uint8)
    leds.show(frame)
    n_b = sum(f.type == P.BRIGHTNESS for f in fake.received)
    leds.brightness = 0.4
    leds.power_cap_ma = 700
    leds.show(frame)
    leds.link.flush()   # the settings leave with the frame, without waiting for their ACK
    _wait_for(lambda: sum(f.type == P.BRIGHTNESS for f in fake.received) == n_b + 1)
    bright = [f for f in fake.received if f.type == P.BRIGHTNESS]
    caps = [f for f in fake.received if f.type == P.POWER_CAP]
    assert len(bright) == n_b + 1 and bright[-1].payload == bytes([round(0.4 * 255)])
    assert int.from_bytes(caps[-1].payload, "little") == 700
    leds.show(frame)                                   # unchanged: nothing sent again
    leds.link.flush()
    time.sleep(0.05)
    assert sum(f.type == P.BRIGHTNESS for f in fake.received) == n_b + 1
    leds.close()


def _wait_for(cond, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "the fake companion never received it"
        time.sleep(0.005)


def test_a_brightness_change_never_blocks_show(fake):
    """The loop thread calls show() 60 times a second; a brightness change must not make
    it wait for the companion's reply (here: a firmware that never ACKs BRIGHTNESS, which
    once stalled show() for a second and then failed the part)."""
    leds = B.open_companion_part("leds", {"port": fake.port, "count": 24})
    frame = np.zeros((24, 3), np.uint8)
    leds.show(frame)
    leds.link.flush()
    fake.ignore.add(P.BRIGHTNESS)
    waits = []
    real_wait = leds.link._wait
    leds.link._wait = lambda match, timeout: waits.append(timeout) or real_wait(match, timeout)
    for level in (0.2, 0.5, 0.9):
        leds.brightness = level
        leds.show(frame + 1)          # no PartError, no reply awaited
    assert waits and max(waits) == 0.0, f"show() waited for the companion: {waits}"
    leds.link._wait = real_wait
    leds.link.flush()
    _wait_for(lambda: any(f.type == P.BRIGHTNESS and f.payload == bytes([round(0.9 * 255)])
                          for f in fake.received))
    assert any(f.type == P.LEDS for f in fake.received[-3:])
    leds.close()
