"""Model push over a serial line: the binary framing on the wire, shared by the device
(receiver) and the host (sender), so the two can never disagree. (Named for the wire: the
text lines around it are :mod:`lanthorn.device.console.console_wire`; the device's handling of a
push, lock and signatures included, is :mod:`lanthorn.device.console.console_push`.)

Why this shape: a serial cable in a gallery is long, noisy and gets unplugged. Each chunk
carries its own CRC-32 so a flipped bit costs one chunk, not the whole transfer; the
sender keeps a window of frames in flight (go-back-N) so the line never idles waiting for
acknowledgements (with 1 KiB chunks the payload is 98.8 % of the wire bytes; a push over
a pty paced to 115200 baud measured 96 % of the line rate, see tests); the whole file is checked against its SHA-256 and loaded by the runtime
before the running model is swapped. An interrupted push keeps its verified chunks on the
device, so ``lanthorn push`` run again resumes where it stopped.

Conversation (text lines, then binary frames, then text lines)::

    host:   push begin SIZE SHA256 [CHUNK]\\n
    device: OK push ready chunk=1024 offset=0        (json mode: data {"chunk", "offset"})
    host:   FRAME(seq) FRAME(seq+1) ...               (binary, see below)
    device: ACK seq   (frame written)   |   NAK seq reason   (resend from seq)
    ...
    device: OK installed NAME sha256=...   or   ERR <why; the old model keeps running>

Frame: ``A5 5A | seq u32 LE | length u16 LE | payload | crc32 u32 LE`` where the CRC covers
seq, length and payload. ``seq`` numbers chunks from the start of the file (chunk k holds
bytes k*CHUNK ...). A frame with seq 0xFFFFFFFF and no payload aborts the push.
"""
from __future__ import annotations

import hashlib
import os
import re
import struct
import time
import zlib
from pathlib import Path
from typing import Callable

from lanthorn.errors import UserError

FRAME_SYNC = b"\xa5\x5a"
_HEADER = struct.Struct("<2sIH")
_CRC = struct.Struct("<I")
OVERHEAD = _HEADER.size + _CRC.size  # 12 bytes per frame
DEFAULT_CHUNK = 1024
MIN_CHUNK, MAX_CHUNK = 64, 4096
MAX_SIZE = 64 * 1024 * 1024
ABORT_SEQ = 0xFFFFFFFF
IDLE_TIMEOUT_S = 5.0  # device gives up on a silent push after this long
_MAX_GARBAGE = 256 * 1024
_ACK = re.compile(r"^(ACK|NAK) (\d+)(?: (.*))?$")


class PushError(UserError):
    """A push that cannot complete; the device keeps its running model."""


def encode_frame(seq: int, payload: bytes) -> bytes:
    head = _HEADER.pack(FRAME_SYNC, seq, len(payload))
    return head + payload + _CRC.pack(zlib.crc32(head[2:] + payload) & 0xFFFFFFFF)


def abort_frame() -> bytes:
    return encode_frame(ABORT_SEQ, b"")


def wire_efficiency(chunk: int = DEFAULT_CHUNK) -> float:
    """Payload bytes / wire bytes of a frame (acks travel the other way)."""
    return chunk / (chunk + OVERHEAD)


def parse_ack(line: str) -> tuple[str, int, str] | None:
    """'ACK 5' -> ("ACK", 5, ""); 'NAK 5 crc' -> ("NAK", 5, "crc"); anything else None."""
    m = _ACK.match(line.strip())
    return (m.group(1), int(m.group(2)), m.group(3) or "") if m else None


BUSY = "busy: a push is in progress"


def is_busy_answer(line: str) -> bool:
    """The device's answer to a line typed during a push (text or json), not a verdict."""
    return line.startswith("ERR " + BUSY) or (line.startswith('{"ok":false') and
                                              f'"error":"{BUSY}' in line)


def check_begin(size: str, sha256: str, chunk: str | None) -> tuple[int, str, int]:
    """Validate the arguments of ``push begin`` (device side)."""
    try:
        size_i = int(size)
        chunk_i = int(chunk) if chunk is not None else DEFAULT_CHUNK
    except ValueError:
        raise PushError("push begin SIZE SHA256 [CHUNK]: SIZE and CHUNK are whole numbers") from None
    if not 0 < size_i <= MAX_SIZE:
        raise PushError(f"push size must be between 1 and {MAX_SIZE} bytes, got {size_i}")
    if not MIN_CHUNK <= chunk_i <= MAX_CHUNK:
        raise PushError(f"push chunk must be between {MIN_CHUNK} and {MAX_CHUNK} bytes, got {chunk_i}")
    sha = sha256.lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise PushError("push SHA256 must be 64 hexadecimal digits")
    return size_i, sha, chunk_i


def typed_line(raw: bytes) -> str | None:
    """Bytes between frames that look typed (printable ASCII, starting with a letter, at most
    a line long): a person at the console during a push. Noise and torn frames are not."""
    text = raw.strip(b" \t")
    if not 2 <= len(text) <= 512 or not all(32 <= b < 127 for b in text):
        return None
    return text.decode("ascii") if chr(text[0]).isalpha() else None


class FrameDecoder:
    """Bytes in, frames out; resynchronises on the magic after noise or a torn frame. Bytes
    outside frames that end in CR or LF and look typed come out as ("text", None, line)."""

    def __init__(self):
        self.buf = bytearray()
        self.garbage = 0
        self._text = bytearray()  # bytes outside frames since the last line end

    def _outside(self, data: bytes):
        """Bytes that are not part of a frame: garbage, or a line typed during the push."""
        self.garbage += len(data)
        while data:
            ends = [i for i in (data.find(b"\r"), data.find(b"\n")) if i >= 0]
            if not ends:
                self._text += data[:513 - len(self._text)]
                return
            i = min(ends)
            line = typed_line(bytes(self._text) + data[:i])
            self._text.clear()
            data = data[i + 1:]
            if line is not None:
                yield "text", None, line

    def feed(self, data: bytes):
        """Yields ("frame", seq, payload), ("bad", None, reason) or ("text", None, line)."""
        self.buf += data
        buf = self.buf
        while True:
            i = buf.find(FRAME_SYNC)
            if i < 0:
                keep = 1 if buf[-1:] == FRAME_SYNC[:1] else 0
                outside = bytes(buf[:len(buf) - keep])
                del buf[:len(buf) - keep]
                yield from self._outside(outside)
                return
            if i:
                outside = bytes(buf[:i])
                del buf[:i]
                yield from self._outside(outside)
            if len(buf) < _HEADER.size:
                return
            _, seq, length = _HEADER.unpack_from(buf)
            if length > MAX_CHUNK:
                self.garbage += 1
                self._text.clear()
                del buf[:1]  # a false magic inside noise
                continue
            end = _HEADER.size + length + _CRC.size
            if len(buf) < end:
                return
            payload = bytes(buf[_HEADER.size:_HEADER.size + length])
            (crc,) = _CRC.unpack_from(buf, end - _CRC.size)
            if crc != zlib.crc32(bytes(buf[2:_HEADER.size]) + payload) & 0xFFFFFFFF:
                del buf[:1]
                self.garbage += 1
                self._text.clear()
                yield "bad", None, "crc"
                continue
            del buf[:end]
            self._text.clear()
            yield "frame", seq, payload


class PushReceiver:
    """Device side of one push: writes verified chunks to ``incoming/``, answers ACK/NAK,
    and on completion checks the SHA-256. Installing the model is the caller's job."""

    def __init__(self, incoming_dir: str | os.PathLike, size: int, sha256: str, chunk: int,
                 clock: Callable[[], float] = time.monotonic):
        self.dir = Path(incoming_dir)
        self.size, self.sha256, self.chunk = size, sha256, chunk
        self.n_chunks = -(-size // chunk)
        self.part = self.dir / f"{sha256}-{size}-{chunk}.part"
        self.clock = clock
        self.decoder = FrameDecoder()
        self.complete = False
        self.aborted = False
        self._nak_sent_for: int | None = None
        self._last_gap_seq: int | None = None
        #: lines typed during the push (not frames), for the console to answer "busy"
        self.typed: list[str] = []
        self.dir.mkdir(parents=True, exist_ok=True)
        for other in self.dir.glob("*.part"):  # keep only the push being resumed
            if other != self.part:
                other.unlink()
        have = self.part.stat().st_size if self.part.exists() else 0
        self.expected = min(have // chunk, self.n_chunks)
        self.resumed_from = self.expected * chunk
        # unbuffered: every acknowledged chunk is in the file even if the process is killed
        self._f = open(self.part, "ab" if have else "wb", buffering=0)
        self._f.truncate(self.resumed_from)  # drop a torn last chunk
        self._f.seek(self.resumed_from)
        self.last_activity = clock()
        if self.expected == self.n_chunks:
            self.complete = True

    @property
    def received(self) -> int:
        return min(self.expected * self.chunk, self.size)

    def idle_for(self) -> float:
        return self.clock() - self.last_activity

    def feed(self, data: bytes) -> list[str]:
        """Process incoming bytes; returns the ACK/NAK lines to send back."""
        if data:
            self.last_activity = self.clock()
        replies: list[str] = []
        for kind, seq, payload in self.decoder.feed(data):
            if kind == "text":  # a person typing: the console answers it (busy)
                self.typed.append(payload)
                continue
            if self.complete or self.aborted:
                break
            if kind == "bad":
                self._nak(replies, "crc")
                continue
            if seq == ABORT_SEQ:
                self.aborted = True
                break
            if seq < self.expected:
                replies.append(f"ACK {seq}")  # a resend of a chunk we have: harmless
                continue
            if seq > self.expected:
                if self._last_gap_seq is not None and seq <= self._last_gap_seq:
                    # sequence numbers went back: the sender is on a new round and the
                    # chunk we wait for was lost again, so ask again (not wait for a timeout)
                    self._nak_sent_for = None
                self._last_gap_seq = seq
                self._nak(replies, "gap")
                continue
            want = min(self.chunk, self.size - seq * self.chunk)
            if len(payload) != want:
                self._nak(replies, "length")
                continue
            self._write(payload)
            self.expected += 1
            self._nak_sent_for = self._last_gap_seq = None
            replies.append(f"ACK {seq}")
            if self.expected == self.n_chunks:
                self.complete = True
        if self.decoder.garbage > _MAX_GARBAGE:
            self.aborted = True
        return replies

    def _write(self, payload: bytes) -> None:
        self._f.write(payload)

    def _nak(self, replies: list[str], reason: str) -> None:
        if self._nak_sent_for != self.expected:  # one NAK per gap; the sender goes back once
            self._nak_sent_for = self.expected
            replies.append(f"NAK {self.expected} {reason}")

    def close(self) -> None:
        """Stop without finishing: the verified chunks stay for a resume."""
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def finish(self) -> Path:
        """Check the whole file's SHA-256; returns the verified file (renamed from .part)."""
        self.close()
        digest = hashlib.sha256()
        with open(self.part, "rb") as f:
            for block in iter(lambda: f.read(65536), b""):
                digest.update(block)
        if self.part.stat().st_size != self.size or digest.hexdigest() != self.sha256:
            self.part.unlink()
            raise PushError("the received file does not match its SHA-256; nothing was "
                            "installed, the old model keeps running")
        done = self.dir / f"{self.sha256}.lanthorn"
        os.replace(self.part, done)
        return done


def ack_timeout_for(baud: int, chunk: int = DEFAULT_CHUNK, window: int = 8) -> float:
    """How long the sender waits for an acknowledgement before going back: twice the time
    a full window takes on the wire (8N1: 10 bits a byte), and never under 2 s, so a slow
    line (9600 baud) is not mistaken for a dead one."""
    return max(2.0, 2.0 * window * (chunk + OVERHEAD) * 10.0 / max(int(baud), 1))


class PushSender:
    """Host side: sends ``data`` in frames with a window of ``window`` frames in flight,
    going back to the first unacknowledged chunk on NAK or timeout.

    ``write(bytes)`` sends; ``read_line(timeout) -> str | None`` returns the next line from
    the device (None on timeout). Lines that are not ACK/NAK end the transfer (they are the
    device's final answer or an error) and are returned by :meth:`run`.
    """

    def __init__(self, data: bytes, chunk: int, write: Callable[[bytes], object],
                 read_line: Callable[[float], str | None], window: int = 8,
                 ack_timeout: float = 2.0, max_retries: int = 10,
                 progress: Callable[[int], None] | None = None):
        self.data, self.chunk = data, chunk
        self.n_chunks = -(-len(data) // chunk)
        self.write, self.read_line = write, read_line
        self.window, self.ack_timeout, self.max_retries = window, ack_timeout, max_retries
        self.progress = progress or (lambda n: None)
        self.wire_bytes = 0
        self.resent_frames = 0
        self.timeouts = 0  # waits for an ack that ran out (each costs ack_timeout)

    def _send(self, seq: int) -> None:
        frame = encode_frame(seq, self.data[seq * self.chunk:(seq + 1) * self.chunk])
        self.write(frame)
        self.wire_bytes += len(frame)

    def run(self, start_seq: int = 0) -> str | None:
        """Send every chunk from ``start_seq``; returns the first non-ACK/NAK line after the
        last ACK (the device's verdict), or raises PushError."""
        base = next_seq = start_seq
        sent_max = start_seq - 1
        retries = 0
        self.progress(min(base * self.chunk, len(self.data)))
        while base < self.n_chunks:
            while next_seq < self.n_chunks and next_seq < base + self.window:
                if next_seq <= sent_max:
                    self.resent_frames += 1
                self._send(next_seq)
                sent_max = max(sent_max, next_seq)
                next_seq += 1
            line = self.read_line(self.ack_timeout)
            if line is None:
                self.timeouts += 1
                retries += 1
                if retries > self.max_retries:
                    self.write(abort_frame())
                    raise PushError(f"the device stopped answering at chunk {base} of "
                                    f"{self.n_chunks}; run the push again to resume")
                next_seq = base
                continue
            ack = parse_ack(line)
            if ack is None:
                if line.strip() and not is_busy_answer(line):
                    return line  # the device gave up early: its reason is in the line
                continue  # (a busy answer is for a line typed on the console meanwhile)
            kind, seq, reason = ack
            if kind == "ACK":
                if seq >= base:
                    base = seq + 1
                    retries = 0
                    self.progress(min(base * self.chunk, len(self.data)))
            else:
                retries += 1
                if retries > self.max_retries:
                    self.write(abort_frame())
                    raise PushError(f"too many damaged chunks at chunk {seq} ({reason}); "
                                    "check the cable and baud rate")
                base = max(base, seq)
                next_seq = base
        return None
