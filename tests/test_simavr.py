"""The real AVR firmware under simavr, driven by the Python companion backend over a pty.

firmware/sim/harness.c runs the unmodified ELF on a simulated ATmega328P at 16 MHz (in real
time) with UART0 on a pseudo-terminal, an MPR121 model on the TWI bus whose synthetic
finger touches pad (t/400 ms) mod 12 for 300 ms of every 400 ms from t = 1 s, and a WS2812
receiver on PD6 that decodes each latched frame and measures its bit timing in cycles.
These tests open that pty with the very backend a profile selects (pyserial inside).
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from firmware_lib import Harness, build_firmware

from lanthorn.hardware.companion import backend as B
from lanthorn.hardware.companion import wire as P
from lanthorn.hardware.interfaces import PartError, estimate_current_ma, limit_frame
from lanthorn.vocabulary import BAUD

pytestmark = pytest.mark.slow  # ~10 s of simulated real time in all

CAP_MA = 600


@pytest.fixture(autouse=True)
def patient_timeouts(monkeypatch):
    """The simulation keeps real time only while it gets the CPU; on a loaded CI machine it
    falls behind, so replies and scans arrive late. Widen the host's timeouts for these
    tests (real hardware keeps the tight defaults; test_companion_backend tests them)."""
    monkeypatch.setattr(B, "REPLY_TIMEOUT_S", 5.0)
    monkeypatch.setattr(B, "LINK_TIMEOUT_S", 3.0)
    monkeypatch.setattr(B, "FIRST_SENSOR_TIMEOUT_S", 5.0)
    monkeypatch.setattr(B, "HELLO_TIMEOUT_S", 10.0)
    monkeypatch.setattr(B, "SHOW_ACK_TIMEOUT_S", 1.0)
    monkeypatch.setattr(B, "WRITE_TIMEOUT_S", 10.0)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    out = tmp_path_factory.getbasetemp() / "firmware-build"
    build_firmware(out, "all", "harness")
    return out


@pytest.fixture(scope="module")
def harness(build_dir):
    h = Harness(build_dir)
    yield h
    h.stop()


def _grb(rgb: np.ndarray) -> bytes:
    return rgb[:, [1, 0, 2]].astype(np.uint8).tobytes()


def _wait_for(predicate, timeout: float, step=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step:
            step()
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_hello_ping_status_from_a_profile_part(harness):
    options = {"port": harness.pty, "baud": BAUD, "count": 24}
    leds = B.open_companion_part("leds", options, power_cap_ma=CAP_MA)
    try:
        link = leds.link
        info = link.info
        assert (info.protocol, info.board_name, info.n_pads, info.n_leds) == (1, "ATmega328P", 12, 24)
        assert info.pad_rate_hz == 100 and info.idle_timeout_ms == 1500 and info.touch_ok
        assert info.firmware_version == "0.1.0"
        assert link.ping(b"lanthorn") > 0
        assert link.ping() > 0  # empty PING gets a nonce; still answered
        status = link.status()
        assert status.mode == P.MODE_LIVE and status.power_cap_ma == CAP_MA
        assert status.brightness == 255 and status.rx_errors == 0 and status.sensor_errors == 0
    finally:
        leds.close()


def test_sensor_frames_follow_the_simulated_finger(harness):
    touch = B.open_companion_part("touch", {"port": harness.pty, "pads": 12})
    try:
        assert touch.link.streaming
        # 2 s of the companion's clock past the finger's start (t = 1 s); the wall-clock cap
        # is generous because a loaded machine runs the simulation slower than real time
        t_end = time.monotonic() + 30
        gaps_before, errors_before = touch.link.seq_gaps, touch.link.rx_errors
        t_from = max(1000, touch.t_ms)
        readings = []
        while time.monotonic() < t_end and touch.t_ms < t_from + 2000:
            readings.append((touch.t_ms, touch.read()))
            time.sleep(0.005)
        scans = [s for s in touch.link.recent if s.t_ms >= t_from]
        lost = touch.link.seq_gaps - gaps_before
        bad = touch.link.rx_errors - errors_before
    finally:
        touch.close()
    assert len(readings) > 20
    # every scan the companion sent (not only the newest per read) agrees with the model;
    # on a loaded machine the pty can overflow while this process waits for the CPU: such
    # frames are lost whole (counted by their seq gap), never taken for others
    assert len(scans) + lost >= 190, (len(scans), lost, bad)
    assert len(scans) > 100
    checked = 0
    for s in scans:
        assert s.status == 0 and len(s.raw) == 12
        assert list(s.baseline) == [700 + 4 * i for i in range(12)]
        phase = s.t_ms % 400
        if phase < 5 or 295 < phase < 305 or phase > 395:
            continue  # within a few ms of an edge the scan may straddle it
        pad = (s.t_ms // 400) % 12
        expected = 1 << pad if phase < 300 else 0
        assert s.touched == expected, (s.t_ms, s.touched)
        assert [b - r for r, b in zip(s.raw, s.baseline, strict=True)] == [60 * (expected >> i & 1) for i in range(12)]
        checked += 1
    assert checked > 0.6 * len(scans)
    # a steady pad rate on the companion's own clock: scans 10 ms apart
    steps = np.diff([s.t_ms for s in scans])
    assert np.median(steps) == 10 and (steps % 10 == 0).all()
    # the TouchReading view of the same data
    t_ms, r = readings[-1]
    assert r.raw.dtype == np.uint16 and r.raw.shape == (12,)
    assert r.pads() == [i for i in range(12) if r.delta()[i] > 0]


def test_led_frames_reach_the_ring_with_ws2812_timing(harness):
    leds = B.open_companion_part("leds", {"port": harness.pty, "count": 24}, power_cap_ma=CAP_MA)
    sent = []
    try:
        for k in range(5):
            frame = np.zeros((24, 3), np.uint8)
            frame[k] = (40 + k, 10, 200 - k)
            frame[(k + 12) % 24] = (1, 2, 3)
            sent.append(leds.show(frame).copy())  # show returns the strip's own buffer
            leds.link.flush()  # each one out (a loaded machine would otherwise see newest-wins)
        white = np.full((24, 3), 255, np.uint8)  # 1464 mA estimated: over the 600 mA cap
        capped = leds.show(white).copy()
        leds.link.flush()
        assert (capped == limit_frame(white, 1.0, CAP_MA)).all()
        sent.append(capped)
        # the MCU's own cap: a frame that was NOT limited by the host still stays in budget
        leds.link.show(white, prelimited=False)
        leds.link.flush()
        shown = {}
        assert _wait_for(lambda: all(_grb(f) in shown for f in sent), 15.0,
                         lambda: shown.update({x["grb"]: x for x in harness.led_frames()}))
        link = leds.link
        assert (link.shows_sent, link.shows_dropped) == (7, 0)
        acked, lost = link.shows_acked, link.lost_acks
    finally:
        leds.close()
    assert acked + lost == 7 and acked >= 5  # late ACKs are counted, never raised
    frames = harness.led_frames()
    for f in frames:  # every frame on the wire, live or idle, with valid WS2812 timing
        assert f["bits"] == 24 * 24 and f["bad"] == 0
        assert 4 <= f["t0h"][0] and f["t0h"][1] <= 8 and 10 <= f["t1h"][0] and f["t1h"][1] <= 15
    # the host-limited white frame passed the companion's cap unchanged ...
    assert _grb(capped) in shown
    # ... and the unlimited one was capped on the MCU (its wire frame is within budget)
    whites = [f for f in frames if len(set(f["grb"])) == 1 and f["grb"][0] > 50]
    assert whites, "no uniform white frame seen on the ring"
    wire = np.frombuffer(whites[-1]["grb"], np.uint8).reshape(24, 3)
    assert estimate_current_ma(wire) <= CAP_MA


def test_show_never_waits_for_the_ack_newest_frame_wins(harness, monkeypatch):
    """While a SHOW is unacknowledged nothing may be sent; show() keeps only the newest
    frame and returns at once, and that frame goes out when the line is free."""
    monkeypatch.setattr(B, "SHOW_ACK_TIMEOUT_S", 2.0)  # only the ACK may free the line here
    leds = B.open_companion_part("leds", {"port": harness.pty, "count": 24})
    try:
        link = leds.link
        for attempt in range(5):  # three calls must fit in the ACK's ~10 ms: retry if the
            frames = []           # test process was descheduled in between (loaded CI)
            for k in range(3):
                f = np.zeros((24, 3), np.uint8)
                f[k] = (11 * (k + 1), attempt, 77)
                frames.append(f)
            link.flush()
            sent, dropped = link.shows_sent, link.shows_dropped
            for f in frames:  # back to back: A goes out, B is replaced by C before A's ACK
                leds.show(f)
            if (link.shows_sent - sent, link.shows_dropped - dropped) == (1, 1):
                break
        else:
            pytest.fail("five attempts at three back-to-back frames all outlived an ACK")
        link.flush()
        assert link.shows_sent - sent == 2
        assert _wait_for(lambda: any(x["grb"] == _grb(frames[2]) for x in harness.led_frames()), 10.0)
    finally:
        leds.close()
    on_ring = {x["grb"] for x in harness.led_frames()}
    assert _grb(frames[0]) in on_ring and _grb(frames[1]) not in on_ring


def test_idle_animation_when_the_pi_goes_quiet_and_live_again(harness):
    """Timed on the companion's clock (the LEDS lines' t_ms), so a slow machine where the
    simulation falls behind real time only makes the test wait longer."""
    leds = B.open_companion_part("leds", {"port": harness.pty, "count": 24}, power_cap_ma=CAP_MA)
    try:
        marker = np.zeros((24, 3), np.uint8)
        marker[5] = (9, 99, 199)
        leds.show(marker)
        leds.link.flush()
        shown = []
        assert _wait_for(lambda: shown or shown.extend(
            x for x in harness.led_frames() if x["grb"] == _grb(marker)), 5.0)
        t_marker = shown[-1]["t_ms"]
        after = lambda: [x for x in harness.led_frames() if x["t_ms"] > t_marker]  # noqa: E731
        assert _wait_for(lambda: len(after()) >= 4, 20.0), "the companion did not start its idle animation"
        idle = after()
        assert leds.link.status().mode == P.MODE_LIVE  # STATUS_REQ itself is a host frame
        back = np.zeros((24, 3), np.uint8)
        back[7] = (200, 100, 50)
        leds.show(back)
        assert _wait_for(lambda: any(f["grb"] == _grb(back) for f in harness.led_frames()), 10.0)
    finally:
        leds.close()
    # idle starts once idle_timeout_ms (1500) passed without a host frame, not before
    assert 1500 <= idle[0]["t_ms"] - t_marker <= 1500 + 2 * 33 + 10
    # ~30 fps of the dim warm glow: red >= green >= blue, far below full scale
    assert all(25 <= b["t_ms"] - a["t_ms"] <= 45 for a, b in zip(idle, idle[1:4], strict=False))
    for f in idle[:4]:
        px = np.frombuffer(f["grb"], np.uint8).reshape(24, 3)[:, [1, 0, 2]]
        assert px.max() <= 100 and (px[:, 0] >= px[:, 1]).all() and (px[:, 1] >= px[:, 2]).all()


def test_link_loss_raises_part_error(build_dir):
    h = Harness(build_dir)
    try:
        touch = B.open_companion_part("touch", {"port": h.pty})
        touch.read()
        summary = h.stop()  # the companion "unplugged"
        assert "state=" in summary
        with pytest.raises(PartError, match="touch"):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                touch.read()
                time.sleep(0.02)
        touch.close()
    finally:
        h.stop()


def test_no_companion_on_the_port_is_a_clear_part_error(tmp_path):
    with pytest.raises(PartError, match="cannot open serial port"):
        B.open_companion_part("touch", {"port": str(tmp_path / "ttyACM9")})
    master, slave = os.openpty()  # a port where nothing answers
    try:
        with pytest.raises(PartError, match="no answer to HELLO"):
            B.CompanionLink(os.ttyname(slave), hello_timeout=0.4, name="touch")
    finally:
        os.close(master)
        os.close(slave)


def test_a_profile_with_a_companion_opens_both_parts_on_one_link(harness):
    """The path a maker takes: profile -> open_body -> one HELLO, touch and leds working."""
    from lanthorn.hardware.body import open_body
    from lanthorn.hardware.profile import parse_profile
    companion = {"type": "companion", "port": harness.pty, "count": 24, "pads": 12}
    profile = parse_profile({"name": "nano-companion", "board": "pi5", "required": ["touch", "leds"],
                             "power": {"supply_ma": 2000, "led_cap_ma": 500},
                             "parts": {"touch": companion, "leds": companion}})
    body = open_body(profile, board_check=False)
    try:
        assert body.open_errors == {}
        assert body.touch.link is body.leds.link
        assert body.leds.link.status().power_cap_ma == 500
        reading = body.touch.read()
        assert reading.raw.shape == (12,)
        frame = np.zeros((24, 3), np.uint8)
        frame[3] = (33, 66, 99)
        body.leds.show(frame)
        assert _wait_for(lambda: any(f["grb"] == _grb(frame) for f in harness.led_frames()), 10.0)
    finally:
        body.close()
    assert body.touch.link is None and not B._links  # the port is closed with its last part


class RawSession:
    """Frames by hand over pyserial, for what the backend never sends: corruption, NAK cases."""

    def __init__(self, pty: str):
        import serial
        self.port = serial.Serial(pty, BAUD, timeout=0)
        self.reader = P.FrameReader()
        self.seq = 0
        self.frames: list = []

    def send(self, type_, payload=b"", seq=None, raw=None):
        if seq is None:
            seq, self.seq = self.seq, (self.seq + 1) & 0xFF
        self.port.write(raw if raw is not None else P.encode_frame(type_, seq, payload))
        return seq

    def expect(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.frames += [f for f in self.reader.feed(self.port.read(4096)) if isinstance(f, P.Frame)]
            for i, f in enumerate(self.frames):
                if predicate(f):
                    return self.frames.pop(i)
            time.sleep(0.005)
        raise AssertionError(f"no matching frame; got {[f.name for f in self.frames]}")

    def close(self):
        self.port.close()


def test_the_firmware_answers_bad_frames_as_the_spec_says(harness):
    s = RawSession(harness.pty)
    try:
        s.port.write(b"\x00")
        s.send(P.HELLO, b"\x01")
        s.expect(lambda f: f.type == P.INFO)
        s.send(P.STREAM, b"\x00\x00")
        s.expect(lambda f: f.type == P.ACK)
        before = P.unpack_status(_status(s)).rx_errors

        wire = bytearray(P.encode_frame(P.PING, 9, b"abc"))
        wire[3] ^= 0x40  # a flipped bit: bad CRC, no trustworthy seq -> ERROR(CRC)
        s.send(0, raw=bytes(wire))
        code, _, _ = P.unpack_error(s.expect(lambda f: f.type == P.ERROR).payload)
        assert code == P.E_CRC
        s.send(0, raw=b"\x05\x01\x02\x00")  # COBS says 5 bytes, 2 follow: framing
        assert P.unpack_error(s.expect(lambda f: f.type == P.ERROR).payload)[0] == P.E_FRAMING
        s.send(0, raw=b"\x07" * 300 + b"\x00")  # longer than any frame
        assert P.unpack_error(s.expect(lambda f: f.type == P.ERROR).payload)[0] == P.E_TOO_LONG

        seq = s.send(P.LEDS, P.leds_payload(bytes(6), 23))  # two pixels from 23: past the ring
        assert P.unpack_nak(s.expect(lambda f: f.type == P.NAK).payload) == (P.LEDS, seq, P.E_BAD_PAYLOAD)
        seq = s.send(0x55, b"")
        assert P.unpack_nak(s.expect(lambda f: f.type == P.NAK).payload) == (0x55, seq, P.E_UNKNOWN_TYPE)
        seq = s.send(P.HELLO, b"\x02")
        assert P.unpack_nak(s.expect(lambda f: f.type == P.NAK).payload) == (P.HELLO, seq, P.E_VERSION)

        # a duplicate is acknowledged again but not applied twice; a gap is counted
        seq = s.send(P.BRIGHTNESS, b"\x40")
        s.expect(lambda f: f.type == P.ACK and f.payload == bytes([P.BRIGHTNESS, seq]))
        s.send(P.BRIGHTNESS, b"\x10", seq=seq)  # same seq, other value
        s.expect(lambda f: f.type == P.ACK and f.payload == bytes([P.BRIGHTNESS, seq]))
        s.seq = (s.seq + 4) & 0xFF  # four frames "lost"
        status = P.unpack_status(_status(s))
        assert status.brightness == 0x40  # the duplicate was not applied
        assert status.rx_errors - before == 3 and status.seq_gaps >= 4

        # brightness applies on the MCU to frames the host did not limit
        frame = np.zeros((24, 3), np.uint8)
        frame[2] = (200, 100, 40)
        seq = s.send(P.LEDS, P.leds_payload(frame.tobytes(), 0, show=True, prelimited=False))
        s.expect(lambda f: f.type == P.ACK and f.payload == bytes([P.LEDS, seq]))
        dimmed = (frame.astype(np.uint16) * 0x40 // 255).astype(np.uint8)
        assert _wait_for(lambda: any(x["grb"] == _grb(dimmed) for x in harness.led_frames()), 10.0)
        s.send(P.BRIGHTNESS, b"\xff")
    finally:
        s.close()


def _status(s: RawSession) -> bytes:
    s.send(P.STATUS_REQ)
    return s.expect(lambda f: f.type == P.STATUS).payload


def test_without_a_touch_chip_the_companion_says_so_and_keeps_the_leds(build_dir):
    h = Harness(build_dir, "--no-touch")
    try:
        with pytest.raises(PartError, match="MPR121 is not answering"):
            touch = B.open_companion_part("touch", {"port": h.pty})
            try:
                assert not touch.link.info.touch_ok
                # after HELLO the next scan reports the outage once, text read from flash
                assert _wait_for(lambda: touch.link.last_error is not None, 10.0, touch.link.pump)
                assert touch.link.last_error == "MPR121 not answering: check SDA/SCL, 3.3V, ADDR"
                touch.read()
            finally:
                touch.close()
        leds = B.open_companion_part("leds", {"port": h.pty, "count": 24})
        frame = np.zeros((24, 3), np.uint8)
        frame[0] = (1, 2, 3)
        leds.show(frame)
        leds.close()
        assert _wait_for(lambda: any(x["grb"] == _grb(frame) for x in h.led_frames()), 10.0)
        summary = h.stop()
        assert "i2c_reads=0" in summary
    finally:
        h.stop()


# Last: it stops the module's harness.
def test_ram_headroom_measured_after_the_session(harness, capsys):
    """The harness paints the RAM above .data/.bss; after all the traffic above, whatever is
    still painted was never touched by the stack: the measured headroom of a 2 KB part."""
    summary = dict(kv.split("=") for kv in harness.stop().split()[1:])
    static, peak, free = (int(summary[k]) for k in ("ram_static", "stack_peak", "ram_free"))
    assert static + peak + free == 2048
    assert peak > 150  # a frame was built and sent from inside handle(): deeper than idle
    assert free >= 256, f"only {free} bytes of RAM never touched"
    assert int(summary["bad_bits"]) == 0 and int(summary["frames"]) > 0
    with capsys.disabled():
        print(f"\n[firmware] ATmega328P RAM measured under simavr: {static} B static + {peak} B "
              f"stack peak = {static + peak} of 2048 B; {free} B never touched")
