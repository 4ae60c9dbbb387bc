"""The companion wire protocol, Python side (the spec is firmware/PROTOCOL.md).

Named ``wire`` (not ``protocol``) to keep it apart from the device's serial console
protocol: this one is the binary frame format between the Pi and its microcontroller.

The C twin is firmware/src/protocol.c. Both are tested against each other (frames built
here are parsed in C and back), and tests/test_companion_wire.py checks that every
constant below has the same value in firmware/src/protocol.h. Standard library only.

Wire format: COBS(type u8, seq u8, payload, CRC-16/CCITT-FALSE big-endian) + 0x00.
Payload fields are little-endian.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

VERSION = 1
MAX_PAYLOAD = 200
OVERHEAD = 4
MAX_FRAME = MAX_PAYLOAD + OVERHEAD
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 1
MAX_WIRE = MAX_ENCODED + 1

# frame types: host -> companion
HELLO = 0x01
PING = 0x02
LEDS = 0x03
BRIGHTNESS = 0x04
POWER_CAP = 0x05
STREAM = 0x06
STATUS_REQ = 0x07
# companion -> host
INFO = 0x81
PONG = 0x82
SENSOR = 0x83
ERROR = 0x84
ACK = 0x85
NAK = 0x86
STATUS = 0x87

TYPE_NAMES = {v: k for k, v in dict(
    HELLO=HELLO, PING=PING, LEDS=LEDS, BRIGHTNESS=BRIGHTNESS, POWER_CAP=POWER_CAP,
    STREAM=STREAM, STATUS_REQ=STATUS_REQ, INFO=INFO, PONG=PONG, SENSOR=SENSOR, ERROR=ERROR,
    ACK=ACK, NAK=NAK, STATUS=STATUS).items()}

LEDS_SHOW = 0x01
LEDS_PRELIMITED = 0x02

INFO_LEN = 14
STATUS_LEN = 16
SENSOR_HEADER_LEN = 8
MAX_PING = 32
MAX_ERROR_TEXT = 48
MAX_PADS = 12

BOARD_ATMEGA328P = 1
BOARD_RP2040 = 2
BOARD_NAMES = {BOARD_ATMEGA328P: "ATmega328P", BOARD_RP2040: "RP2040"}
INFO_TOUCH_OK = 0x01

SENSOR_FAIL = 0x01
SENSOR_OVERCURRENT = 0x02

MODE_LIVE = 0
MODE_IDLE = 1

# error codes (negated as decoder return values in C; as-is in ERROR and NAK frames)
E_CRC = 1
E_FRAMING = 2
E_SHORT = 3
E_TOO_LONG = 4
E_UNKNOWN_TYPE = 5
E_BAD_PAYLOAD = 6
E_SEQ_GAP = 7
E_SENSOR = 8
E_RX_OVERFLOW = 9
E_VERSION = 10
E_NO_ROOM = 11
ERROR_NAMES = {
    E_CRC: "bad CRC", E_FRAMING: "bad COBS framing", E_SHORT: "frame too short",
    E_TOO_LONG: "frame too long", E_UNKNOWN_TYPE: "unknown frame type",
    E_BAD_PAYLOAD: "bad payload", E_SEQ_GAP: "sequence gap", E_SENSOR: "touch sensor not answering",
    E_RX_OVERFLOW: "receive buffer overflow", E_VERSION: "unsupported protocol version",
    E_NO_ROOM: "no room",
}

SEQ_DUPLICATE = -1


class ProtocolError(ValueError):
    """A frame that cannot be decoded; ``code`` is one of the E_* codes."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final xor)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode (no delimiter); byte-for-byte the same as lp_cobs_encode."""
    out = bytearray([0])
    code_at, code = 0, 1
    for i, byte in enumerate(data):
        if byte == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(byte)
            code += 1
            if code == 0xFF and i + 1 < len(data):  # a full block; open the next only if needed
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0 or i + code - 1 > n or 0 in data[i:i + code - 1]:
            raise ProtocolError(E_FRAMING, "bad COBS framing")
        out += data[i:i + code - 1]
        i += code - 1
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes = b""

    @property
    def name(self) -> str:
        return TYPE_NAMES.get(self.type, f"0x{self.type:02x}")


def encode_frame(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """The complete wire bytes of one frame, delimiter included."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(E_TOO_LONG, f"payload of {len(payload)} bytes (max {MAX_PAYLOAD})")
    raw = bytes([type_ & 0xFF, seq & 0xFF]) + bytes(payload)
    raw += crc16(raw).to_bytes(2, "big")
    return cobs_encode(raw) + b"\x00"


def decode_frame(encoded: bytes) -> Frame:
    """Decode one frame given without its 0x00 delimiter. Raises ProtocolError."""
    if len(encoded) > MAX_ENCODED:
        raise ProtocolError(E_TOO_LONG, f"frame of {len(encoded)} encoded bytes (max {MAX_ENCODED})")
    raw = cobs_decode(encoded)
    if len(raw) > MAX_FRAME:
        raise ProtocolError(E_TOO_LONG, f"frame of {len(raw)} bytes (max {MAX_FRAME})")
    if len(raw) < OVERHEAD:
        raise ProtocolError(E_SHORT, f"frame of {len(raw)} bytes (min {OVERHEAD})")
    if crc16(raw[:-2]) != int.from_bytes(raw[-2:], "big"):
        raise ProtocolError(E_CRC, "bad CRC")
    return Frame(raw[0], raw[1], raw[2:-2])


class FrameReader:
    """Splits a byte stream into frames; garbage costs one frame, never the stream.

    ``feed(data)`` returns a list of Frame or ProtocolError items in arrival order.
    """

    def __init__(self):
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list:
        out: list[Frame | ProtocolError] = []
        for chunk_end in _split_keep(data):
            part, ended = chunk_end
            if not self._overflow:
                self._buf += part
                if len(self._buf) > MAX_ENCODED:
                    self._overflow = True
                    self._buf.clear()
            if ended:
                if self._overflow:
                    out.append(ProtocolError(E_TOO_LONG, "frame too long"))
                elif self._buf:
                    try:
                        out.append(decode_frame(bytes(self._buf)))
                    except ProtocolError as exc:
                        out.append(exc)
                self._buf.clear()
                self._overflow = False
        return out


def _split_keep(data: bytes):
    start = 0
    while True:
        end = data.find(b"\x00", start)
        if end < 0:
            if start < len(data):
                yield data[start:], False
            return
        yield data[start:end], True
        start = end + 1


class SeqTracker:
    """Sequence rules of PROTOCOL.md: ``check`` returns missing frames (≥0) or SEQ_DUPLICATE."""

    def __init__(self):
        self.last: int | None = None

    def reset(self) -> None:
        self.last = None

    def check(self, seq: int) -> int:
        if self.last is None:
            self.last = seq
            return 0
        if seq == self.last:
            return SEQ_DUPLICATE
        missing = (seq - self.last - 1) & 0xFF
        self.last = seq
        return missing


# --- payloads --------------------------------------------------------------------------

@dataclass(frozen=True)
class Info:
    """What the companion says about itself in reply to HELLO."""

    protocol: int
    firmware: tuple[int, int, int]
    board: int
    n_pads: int
    n_leds: int
    pad_rate_hz: int
    idle_timeout_ms: int
    max_payload: int
    flags: int

    @property
    def board_name(self) -> str:
        return BOARD_NAMES.get(self.board, f"board {self.board}")

    @property
    def touch_ok(self) -> bool:
        return bool(self.flags & INFO_TOUCH_OK)

    @property
    def firmware_version(self) -> str:
        return ".".join(map(str, self.firmware))


_INFO = struct.Struct("<BBBBBBHHHBB")
assert _INFO.size == INFO_LEN


def pack_info(info: Info) -> bytes:
    return _INFO.pack(info.protocol, *info.firmware, info.board, info.n_pads, info.n_leds,
                      info.pad_rate_hz, info.idle_timeout_ms, info.max_payload, info.flags)


def unpack_info(payload: bytes) -> Info:
    _need(payload, INFO_LEN, "INFO")
    v = _INFO.unpack(payload)
    return Info(v[0], (v[1], v[2], v[3]), *v[4:])


@dataclass(frozen=True)
class Sensor:
    """One pad scan as the companion sent it (raw and baseline are 10-bit counts)."""

    t_ms: int
    touched: int
    status: int
    raw: tuple[int, ...]
    baseline: tuple[int, ...]


def pack_sensor(s: Sensor) -> bytes:
    n = len(s.raw)
    return struct.pack(f"<IHBB{n}H{n}H", s.t_ms, s.touched, n, s.status, *s.raw, *s.baseline)


def unpack_sensor(payload: bytes) -> Sensor:
    if len(payload) < SENSOR_HEADER_LEN:
        raise ProtocolError(E_BAD_PAYLOAD, f"SENSOR payload of {len(payload)} bytes")
    t_ms, touched, n, status = struct.unpack_from("<IHBB", payload)
    if n > MAX_PADS or len(payload) != SENSOR_HEADER_LEN + 4 * n:
        raise ProtocolError(E_BAD_PAYLOAD, f"SENSOR payload of {len(payload)} bytes for {n} pads")
    vals = struct.unpack_from(f"<{2 * n}H", payload, SENSOR_HEADER_LEN)
    return Sensor(t_ms, touched, status, vals[:n], vals[n:])


@dataclass(frozen=True)
class Status:
    uptime_ms: int
    mode: int
    brightness: int
    power_cap_ma: int
    rx_frames: int
    rx_errors: int
    seq_gaps: int
    sensor_errors: int


_STATUS = struct.Struct("<IBBHHHHH")
assert _STATUS.size == STATUS_LEN


def unpack_status(payload: bytes) -> Status:
    _need(payload, STATUS_LEN, "STATUS")
    return Status(*_STATUS.unpack_from(payload))


def pack_status(s: Status) -> bytes:
    return _STATUS.pack(s.uptime_ms, s.mode, s.brightness, s.power_cap_ma, s.rx_frames,
                        s.rx_errors, s.seq_gaps, s.sensor_errors)


def leds_payload(rgb: bytes, start: int = 0, show: bool = True, prelimited: bool = True) -> bytes:
    """LEDS: flags u8, start u16, then RGB triplets (ring order, RGB not wire order)."""
    if len(rgb) % 3:
        raise ValueError("LED data must be RGB triplets")
    flags = (LEDS_SHOW if show else 0) | (LEDS_PRELIMITED if prelimited else 0)
    return struct.pack("<BH", flags, start) + bytes(rgb)


def unpack_error(payload: bytes) -> tuple[int, int, str]:
    if len(payload) < 2:
        raise ProtocolError(E_BAD_PAYLOAD, "ERROR payload too short")
    return payload[0], payload[1], payload[2:].decode("ascii", "replace")


def unpack_nak(payload: bytes) -> tuple[int, int, int]:
    _need(payload, 3, "NAK")
    return payload[0], payload[1], payload[2]


def _need(payload: bytes, n: int, what: str) -> None:
    if len(payload) != n:
        raise ProtocolError(E_BAD_PAYLOAD, f"{what} payload of {len(payload)} bytes, expected {n}")
