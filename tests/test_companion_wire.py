"""The companion protocol: the C implementation (host-compiled, via ctypes) against the
Python one, on known vectors, every corruption, and hypothesis round trips."""
from __future__ import annotations

import ctypes
import re

import pytest
from firmware_lib import SRC, CProtocol, LpSeq, build_protocol_lib
from hypothesis import given, settings
from hypothesis import strategies as st

from lanthorn.hardware.companion import wire as P


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    return CProtocol(build_protocol_lib(tmp_path_factory.mktemp("protocol")))


# Wikipedia's COBS examples (without the 0x00 delimiter).
COBS_VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


def test_constants_match_the_c_header():
    """One fact, two languages: every #define LP_X in protocol.h equals wire.X."""
    header = (SRC / "protocol.h").read_text()
    defines = dict(re.findall(r"#define LP_(\w+) \(?(-?(?:0x[0-9A-Fa-f]+|\d+))\)?\s", header))
    assert len(defines) > 40
    for name, value in defines.items():
        py_name = name[2:] if name.startswith("E_") else name
        py_name = {"OK": None}.get(py_name, py_name)
        if py_name is None:
            continue
        assert hasattr(P, name) or hasattr(P, py_name), f"companion/wire.py lacks LP_{name}"
        assert getattr(P, name, getattr(P, py_name, None)) == int(value, 0), name
    # derived sizes too
    for name in ("MAX_FRAME", "MAX_ENCODED", "MAX_WIRE"):
        assert f"LP_{name}" in header


def test_crc_check_value(c):
    assert P.crc16(b"123456789") == 0x29B1  # the catalogue check value of CRC-16/CCITT-FALSE
    assert c.lib.lp_crc16(b"123456789", 9) == 0x29B1


@pytest.mark.parametrize("raw,enc", COBS_VECTORS)
def test_cobs_vectors_both_sides(c, raw, enc):
    assert P.cobs_encode(raw) == enc
    assert P.cobs_decode(enc) == raw
    out = (ctypes.c_uint8 * 600)()
    n = c.lib.lp_cobs_encode(raw, len(raw), out, 600)
    assert bytes(out[:n]) == enc
    n = c.lib.lp_cobs_decode(enc, len(enc), out, 600)
    assert bytes(out[:n]) == raw


def test_cobs_encode_reports_no_room(c):
    out = (ctypes.c_uint8 * 4)()
    assert c.lib.lp_cobs_encode(b"\x11\x22\x33\x44", 4, out, 4) == 0
    assert c.lib.lp_cobs_decode(b"\x05\x11\x22\x33\x44", 5, out, 3) == -P.E_NO_ROOM


def test_python_frame_decodes_in_c_and_back(c):
    wire = P.encode_frame(P.LEDS, 7, P.leds_payload(bytes(range(72))))
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    assert c.parse(wire[:-1]) == (0, (P.LEDS, 7, P.leds_payload(bytes(range(72)))))
    assert c.build(P.LEDS, 7, P.leds_payload(bytes(range(72)))) == wire
    assert P.decode_frame(c.build(P.PONG, 255, b"hi")[:-1]) == P.Frame(P.PONG, 255, b"hi")


@pytest.mark.parametrize("corrupt,code", [
    (lambda w: w[:3] + bytes([w[3] ^ 0x40]) + w[4:], P.E_CRC),           # one bit flipped
    (lambda w: w[:-2], P.E_FRAMING),                                        # truncated mid-block
    (lambda w: b"\x03\x01", P.E_FRAMING),                                   # code past the end
    (lambda w: b"\x02\x01", P.E_SHORT),                                     # one byte decoded
    (lambda w: P.cobs_encode(b"\x01\x02\x03"), P.E_SHORT),                  # no room for a CRC
    (lambda w: b"\x01" * 300, P.E_TOO_LONG),                                # oversized
    (lambda w: P.cobs_encode(bytes(P.MAX_FRAME + 1)), P.E_TOO_LONG),        # decodes too long
    (lambda w: w[:2] + b"\x00" + w[3:], P.E_FRAMING),                       # a zero inside
    (lambda w: b"\x00", P.E_FRAMING),                                       # code byte zero
])
def test_every_corruption_is_rejected_the_same_way(c, corrupt, code):
    wire = P.encode_frame(P.PING, 3, b"abcdef")[:-1]
    bad = corrupt(wire)
    c_code, frame = c.parse(bad)
    assert frame is None and c_code == -code
    with pytest.raises(P.ProtocolError) as exc:
        P.decode_frame(bad)
    assert exc.value.code == code


def test_truncation_at_every_length_never_yields_a_frame(c):
    wire = P.encode_frame(P.LEDS, 9, P.leds_payload(bytes(range(1, 73))))[:-1]
    for cut in range(len(wire)):
        code, frame = c.parse(wire[:cut])
        assert frame is None and code < 0, cut
        with pytest.raises(P.ProtocolError):
            P.decode_frame(wire[:cut])


def test_c_refuses_oversized_payload(c):
    assert c.build(P.PING, 0, bytes(P.MAX_PAYLOAD + 1)) == -P.E_TOO_LONG
    assert c.build(P.PING, 0, bytes(10), cap=8) == -P.E_NO_ROOM
    with pytest.raises(P.ProtocolError):
        P.encode_frame(P.PING, 0, bytes(P.MAX_PAYLOAD + 1))
    # the largest legal frame fits the advertised wire size exactly
    assert len(c.build(P.LEDS, 0, bytes(P.MAX_PAYLOAD))) <= P.MAX_WIRE


def test_stream_resynchronises_after_garbage(c):
    good1 = P.encode_frame(P.PING, 1, b"one")
    good2 = P.encode_frame(P.PING, 2, b"two")
    noise = b"\x07\x99\x13" + b"\x00"          # garbage ended by a delimiter: one error
    long_junk = b"\x55" * 500 + b"\x00"          # overflow: one TOO_LONG, then back in step
    flipped = bytearray(P.encode_frame(P.PING, 3, b"xyz"))
    flipped[2] ^= 1
    data = b"\x00\x00" + good1 + noise + long_junk + bytes(flipped) + good2
    got = c.stream(data)
    assert got == [(P.PING, 1, b"one"), -P.E_FRAMING, -P.E_TOO_LONG, -P.E_CRC, (P.PING, 2, b"two")]
    py = P.FrameReader().feed(data)
    assert [f if isinstance(f, P.Frame) else -f.code for f in py] == \
        [P.Frame(P.PING, 1, b"one"), -P.E_FRAMING, -P.E_TOO_LONG, -P.E_CRC, P.Frame(P.PING, 2, b"two")]


def test_python_reader_handles_split_reads():
    data = P.encode_frame(P.SENSOR, 4, b"x" * 50) + P.encode_frame(P.ACK, 5, b"\x03\x04")
    reader = P.FrameReader()
    got = []
    for i in range(0, len(data), 7):
        got += reader.feed(data[i:i + 7])
    assert got == [P.Frame(P.SENSOR, 4, b"x" * 50), P.Frame(P.ACK, 5, b"\x03\x04")]


def test_sequence_rules_agree(c):
    s = LpSeq()
    c.lib.lp_seq_reset(ctypes.byref(s))
    py = P.SeqTracker()
    # first frame syncs, then in order, duplicate, gap of 2, wrap-around, gap across wrap
    seqs = [200, 201, 201, 204, 255, 0, 3]
    want = [0, 0, P.SEQ_DUPLICATE, 2, 50, 0, 2]
    assert [c.lib.lp_seq_check(ctypes.byref(s), q) for q in seqs] == want
    assert [py.check(q) for q in seqs] == want


@pytest.mark.parametrize("type_,payload,ok", [
    (P.HELLO, b"\x01", True), (P.HELLO, b"", False),
    (P.PING, b"", True), (P.PING, bytes(32), True), (P.PING, bytes(33), False),
    (P.LEDS, P.leds_payload(bytes(72)), True),
    (P.LEDS, P.leds_payload(bytes(75)), False),                # 25 pixels on a 24-pixel ring
    (P.LEDS, P.leds_payload(bytes(6), start=22), True),
    (P.LEDS, P.leds_payload(bytes(6), start=23), False),
    (P.LEDS, P.leds_payload(bytes(6))[:-1], False),            # not whole pixels
    (P.LEDS, b"\x80\x00\x00", False),                          # unknown flag bit
    (P.BRIGHTNESS, b"\x80", True), (P.BRIGHTNESS, b"", False),
    (P.POWER_CAP, b"\xb0\x04", True), (P.POWER_CAP, b"\xb0", False),
    (P.STREAM, b"\x19\x00", True), (P.STATUS_REQ, b"", True), (P.STATUS_REQ, b"\x00", False),
])
def test_payload_check(c, type_, payload, ok):
    assert c.payload_check(type_, payload) == (0 if ok else -P.E_BAD_PAYLOAD)


def test_unknown_type_and_companion_types_are_refused_by_the_companion(c):
    assert c.payload_check(0x42, b"") == -P.E_UNKNOWN_TYPE
    assert c.payload_check(P.SENSOR, b"") == -P.E_UNKNOWN_TYPE


def test_sensor_payload_built_in_c_unpacks_in_python(c):
    raw = (ctypes.c_uint16 * 12)(*range(700, 712))
    base = (ctypes.c_uint16 * 12)(*range(720, 732))
    out = (ctypes.c_uint8 * 64)()
    n = c.lib.lp_sensor_payload(out, 123456789, 0b100000000101, P.SENSOR_OVERCURRENT, 12, raw, base)
    s = P.unpack_sensor(bytes(out[:n]))
    assert s == P.Sensor(123456789, 0b100000000101, P.SENSOR_OVERCURRENT,
                         tuple(range(700, 712)), tuple(range(720, 732)))
    assert P.pack_sensor(s) == bytes(out[:n])
    assert c.lib.lp_sensor_payload(out, 0, 0, 0, 13, raw, base) == 0


def test_bad_payloads_are_protocol_errors():
    with pytest.raises(P.ProtocolError):
        P.unpack_sensor(b"\x00" * 9)
    with pytest.raises(P.ProtocolError):
        P.unpack_info(b"\x01")
    with pytest.raises(P.ProtocolError):
        P.unpack_status(b"")


def test_power_cap_backstop_agrees_with_limit_frame(c):
    """A frame the Pi already limited passes the companion's cap unchanged, and an
    unlimited one comes out within the same budget."""
    import numpy as np

    from lanthorn.hardware.interfaces import estimate_current_ma, limit_frame

    rng = np.random.default_rng(1)
    for cap in (100, 300, 600, 1200, 2000):
        frame = rng.integers(0, 256, (24, 3), dtype=np.uint8)
        frame[:12] = 255
        pre = limit_frame(frame, 1.0, cap)
        buf = (ctypes.c_uint8 * 72).from_buffer_copy(pre.tobytes())
        c.lib.lp_limit_power(buf, 24, cap)
        assert bytes(buf) == pre.tobytes()
        buf = (ctypes.c_uint8 * 72).from_buffer_copy(frame.tobytes())
        assert c.lib.lp_limit_power(buf, 24, cap) == (estimate_current_ma(frame) > cap)
        assert estimate_current_ma(np.frombuffer(bytes(buf), np.uint8).reshape(24, 3)) <= cap + 1e-6
    buf = (ctypes.c_uint8 * 3).from_buffer_copy(b"\xff\x80\x00")
    c.lib.lp_apply_brightness(buf, 3, 128)
    assert bytes(buf) == bytes([128, 64, 0])


@settings(max_examples=300, deadline=None)
@given(type_=st.integers(0, 255), seq=st.integers(0, 255), payload=st.binary(max_size=P.MAX_PAYLOAD))
def test_round_trip_python_to_c_to_python(c, type_, seq, payload):
    wire = P.encode_frame(type_, seq, payload)
    assert c.parse(wire[:-1]) == (0, (type_, seq, payload))
    assert c.build(type_, seq, payload) == wire
    assert P.decode_frame(wire[:-1]) == P.Frame(type_, seq, payload)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_c_and_python_agree_on_arbitrary_bytes(c, data):
    code, frame = c.parse(data)
    try:
        f = P.decode_frame(data)
    except P.ProtocolError as exc:
        assert frame is None and code == -exc.code
    else:
        assert code == 0 and frame == (f.type, f.seq, f.payload)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=700))
def test_cobs_round_trip(c, raw):
    enc = P.cobs_encode(raw)
    assert b"\x00" not in enc and P.cobs_decode(enc) == raw
    out = (ctypes.c_uint8 * 800)()
    n = c.lib.lp_cobs_encode(raw, len(raw), out, 800)
    assert bytes(out[:n]) == enc
