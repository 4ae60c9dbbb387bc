"""The console command table and line format, and the push framing (pure, no serial port)."""
import hashlib
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanthorn.device.console import console_wire
from lanthorn.device.console.console_wire import COMMANDS, ProtocolError, parse
from lanthorn.device.console.push_wire import (
    DEFAULT_CHUNK,
    OVERHEAD,
    FrameDecoder,
    PushError,
    PushReceiver,
    PushSender,
    abort_frame,
    check_begin,
    encode_frame,
    parse_ack,
    wire_efficiency,
)
from lanthorn.vocabulary import BAUD

# ----------------------------------------------------------------------------- line parsing

@pytest.mark.parametrize("line,name,args", [
    ("help", "help", []),
    ("help set", "help", ["set"]),
    ("GET brightness", "get", ["brightness"]),
    ("set brightness 40", "set", ["brightness", "40"]),
    ("set phrases_calm  still here | hello ", "set", ["phrases_calm", "still here | hello"]),
    ('set phrases_calm "a | b"', "set", ["phrases_calm", "a | b"]),
    ("preset save evening", "preset save", ["evening"]),
    ("Preset LIST", "preset list", []),
    ("model info", "model info", []),
    ("push begin 100 " + "a" * 64, "push begin", ["100", "a" * 64]),
    ("watch", "watch", []),
    ("watch 10", "watch", ["10"]),
    ("mode json", "mode", ["json"]),
])
def test_parse(line, name, args):
    cmd, got = parse(line)
    assert cmd.name == name and got == args


@pytest.mark.parametrize("line,match", [
    ("", "empty line"),
    ("brightnes 40", r"unknown command 'brightnes'.*type 'help'"),
    ("lst", r"did you mean list"),
    ("preset", r"preset: expected one of save, load, list, delete"),
    ("preset rename x", r"preset 'rename': expected one of"),
    ("get", r"usage: get NAME"),
    ("get a b", r"usage: get NAME"),
    ("set brightness", r"usage: set NAME VALUE"),
    ("watch 1 2", r"usage: watch \[HZ\]"),
])
def test_parse_errors_say_how_to_fix(line, match):
    with pytest.raises(ProtocolError, match=match):
        parse(line)


def test_table_is_consistent():
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    for c in COMMANDS:
        assert c.help and c.usage().startswith(c.name)
        lo, hi = c.arity()
        assert hi is None or lo <= hi
    # every changing command is marked, reading ones are not
    writes = {c.name for c in COMMANDS if c.writes}
    assert {"set", "save", "reset", "preset save", "preset load", "preset delete",
            "record", "model rollback", "trust add", "trust remove"} <= writes
    # a push is gated by signatures while locked (device/SIGNING.md), not refused outright
    assert "push begin" not in writes
    assert not writes & {"get", "list", "status", "watch", "help", "model info", "unlock"}


def test_help_text():
    lines = console_wire.help_text()
    assert len(lines) == len(COMMANDS) + 1
    assert any(line.startswith("set NAME VALUE...") for line in lines)
    assert console_wire.help_text("set")[1] == "(refused while the exhibition lock is on)"
    assert len(console_wire.help_text("preset")) == 5  # save, load, list, delete, show
    with pytest.raises(ProtocolError, match="no command or parameter 'frobnicate'"):
        console_wire.help_text("frobnicate")


def test_answer_lines_text_and_json():
    assert console_wire.ok_lines("text", "get", "40", body=["a"]) == ["a", "OK 40"]
    assert console_wire.ok_lines("text", "save") == ["OK"]
    assert console_wire.err_lines("text", "set", "bad\nvalue  here") == ["ERR bad value here"]
    (line,) = console_wire.ok_lines("json", "get", "40", data={"value": 40})
    assert json.loads(line) == {"ok": True, "cmd": "get", "message": "40", "data": {"value": 40}}
    (line,) = console_wire.err_lines("json", None, "nope")
    assert json.loads(line) == {"ok": False, "cmd": None, "error": "nope"}
    import numpy as np
    ev = json.loads(console_wire.event_line("json", "watch", "", data={"x": np.float32(0.5),
                                                                   "v": np.arange(2)}))
    assert ev == {"event": "watch", "data": {"x": 0.5, "v": [0, 1]}}
    assert console_wire.format_values({"a": 0.5, "b": [1.0, 2], "c": {"d": "x"}}) == \
        "a=0.500 b=1.000,2 | d=x"


# ----------------------------------------------------------------------------- push framing

def test_frame_round_trip_and_overhead():
    frame = encode_frame(7, b"hello")
    assert len(frame) == 5 + OVERHEAD
    assert list(FrameDecoder().feed(frame)) == [("frame", 7, b"hello")]
    assert wire_efficiency(DEFAULT_CHUNK) == pytest.approx(1024 / 1036)
    assert list(FrameDecoder().feed(abort_frame()))[0][1] == 0xFFFFFFFF


@settings(max_examples=60, deadline=None)
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
       noise=st.binary(max_size=64), cuts=st.lists(st.integers(1, 50), max_size=20))
def test_decoder_resynchronises_after_noise_in_any_split(payloads, noise, cuts):
    """Noise before the frames and arbitrary read boundaries never lose a good frame."""
    stream = noise + b"".join(encode_frame(i, p) for i, p in enumerate(payloads))
    dec, got, pos = FrameDecoder(), [], 0
    for c in cuts + [len(stream)]:
        got += [f for f in dec.feed(stream[pos:pos + c]) if f[0] == "frame"]
        pos += c
    frames = [(seq, p) for _, seq, p in got]
    # noise may itself contain a valid-looking frame only with a correct CRC-32: ignore those
    assert frames[-len(payloads):] == list(enumerate(payloads))


def test_corrupted_frame_is_reported_bad():
    frame = bytearray(encode_frame(0, b"x" * 100))
    frame[50] ^= 0x10
    kinds = [k for k, _, _ in FrameDecoder().feed(bytes(frame))]
    assert kinds and kinds[0] == "bad" and "frame" not in kinds


@pytest.mark.parametrize("args,match", [
    (("0", "a" * 64, None), "between 1 and"),
    (("x", "a" * 64, None), "whole numbers"),
    (("10", "a" * 63, None), "64 hexadecimal"),
    (("10", "a" * 64, "8"), "chunk must be between 64 and 4096"),
])
def test_check_begin_refuses(args, match):
    with pytest.raises(PushError, match=match):
        check_begin(*args)


def test_parse_ack():
    assert parse_ack("ACK 5") == ("ACK", 5, "")
    assert parse_ack("NAK 3 crc\r\n") == ("NAK", 3, "crc")
    assert parse_ack("OK installed") is None


class Link:
    """An in-memory cable between PushSender and PushReceiver with a damage hook."""

    def __init__(self, receiver, damage=None):
        self.rx, self.damage, self.lines, self.sent = receiver, damage or (lambda b: b), [], 0

    def write(self, data):
        self.sent += 1
        self.lines += self.rx.feed(self.damage(data))

    def read_line(self, timeout):
        return self.lines.pop(0) if self.lines else None


def _push(tmp_path, data, chunk=256, damage=None, **kw):
    sha = hashlib.sha256(data).hexdigest()
    rx = PushReceiver(tmp_path / "incoming", len(data), sha, chunk)
    link = Link(rx, damage)
    tx = PushSender(data, chunk, link.write, link.read_line, ack_timeout=0.01, **kw)
    verdict = tx.run(rx.expected)
    return rx, tx, verdict


def test_clean_push_verifies(tmp_path):
    data = random.Random(1).randbytes(5000)
    rx, tx, verdict = _push(tmp_path, data)
    assert verdict is None and rx.complete
    assert rx.finish().read_bytes() == data
    assert tx.resent_frames == 0 and tx.wire_bytes == len(data) + OVERHEAD * 20


def test_flipped_and_dropped_frames_are_resent(tmp_path):
    rng = random.Random(2)
    data = rng.randbytes(8000)
    count = {"n": 0}

    def damage(frame):
        count["n"] += 1
        if count["n"] in (3, 9):
            return b""  # lost on the line
        if count["n"] in (5, 14):
            b = bytearray(frame)
            b[rng.randrange(len(b))] ^= 0x40
            return bytes(b)
        return frame

    rx, tx, verdict = _push(tmp_path, data, damage=damage)
    assert verdict is None and rx.complete and tx.resent_frames > 0
    assert rx.finish().read_bytes() == data


def test_sha_mismatch_is_refused_and_part_removed(tmp_path):
    data = b"A" * 1000
    rx = PushReceiver(tmp_path, len(data), "0" * 64, 256)
    lines: list = []
    tx = PushSender(data, 256, lambda b: lines.extend(rx.feed(b)),
                    lambda t: lines.pop(0) if lines else None)
    tx.run()
    with pytest.raises(PushError, match="does not match its SHA-256"):
        rx.finish()
    assert not list(tmp_path.glob("*.part"))


def test_interrupted_push_resumes_from_verified_chunks(tmp_path):
    data = random.Random(3).randbytes(3000)
    sha = hashlib.sha256(data).hexdigest()
    rx = PushReceiver(tmp_path, len(data), sha, 256)
    rx.feed(b"".join(encode_frame(i, data[i * 256:(i + 1) * 256]) for i in range(5)))
    rx.feed(encode_frame(5, data[5 * 256:6 * 256])[:100])  # torn mid-frame: the cable is pulled
    rx.close()
    again = PushReceiver(tmp_path, len(data), sha, 256)
    assert again.expected == 5 and again.resumed_from == 1280
    lines: list = []
    tx = PushSender(data, 256, lambda b: lines.extend(again.feed(b)),
                    lambda t: lines.pop(0) if lines else None)
    assert tx.run(again.expected) is None
    assert again.finish().read_bytes() == data
    # a different push throws away the stale partial file
    PushReceiver(tmp_path, 10, "1" * 64, 64).close()
    assert [p.name for p in tmp_path.glob("*.part")] == ["1" * 64 + "-10-64.part"]


def test_silent_device_gives_up_with_a_resume_hint():
    written = []
    tx = PushSender(b"x" * 500, 128, written.append, lambda t: None, ack_timeout=0.0,
                    max_retries=2)
    with pytest.raises(PushError, match="stopped answering at chunk 0 of 4; run the push again"):
        tx.run()
    assert written[-1] == abort_frame()


def test_device_verdict_ends_the_transfer():
    lines = ["ERR locked"]
    tx = PushSender(b"x" * 500, 128, lambda b: None, lambda t: lines.pop(0) if lines else None)
    assert tx.run() == "ERR locked"


def test_abort_frame_stops_the_receiver(tmp_path):
    rx = PushReceiver(tmp_path, 1000, "0" * 64, 256)
    rx.feed(encode_frame(0, b"a" * 256) + abort_frame())
    assert rx.aborted and not rx.complete


def test_console_reference_doc_is_current():
    """device/CONSOLE.md is generated from the command table; regenerate it with
    `lanthorn console --markdown > device/CONSOLE.md` after changing the table."""
    from pathlib import Path
    doc = Path(__file__).resolve().parents[1] / "device" / "CONSOLE.md"
    assert doc.read_text(encoding="utf-8") == console_wire.markdown()
    for c in COMMANDS:
        assert f"`{c.usage()}`" in doc.read_text(encoding="utf-8")


def test_ack_timeout_scales_with_a_slow_line():
    from lanthorn.device.console.push_wire import ack_timeout_for
    assert ack_timeout_for(BAUD) == 2.0  # 8 KiB in flight take 0.72 s at 115200
    assert ack_timeout_for(9600) == pytest.approx(2 * 8 * 1036 * 10 / 9600)  # 17 s


def test_a_retransmission_lost_again_is_asked_for_again_not_timed_out(tmp_path):
    """Chunk 2 is damaged on its first and its second trip: the receiver notices the
    sender's new round (sequence numbers going back) and NAKs again, so the push never
    waits out an ack timeout."""
    data = random.Random(4).randbytes(256 * 12)
    trips = {"n": 0}

    def damage(frame):
        if frame[2:6] == (2).to_bytes(4, "little"):
            trips["n"] += 1
            if trips["n"] <= 2:
                return frame[:20] + bytes([frame[20] ^ 1]) + frame[21:]
        return frame

    rx, tx, verdict = _push(tmp_path, data, damage=damage)
    assert verdict is None and trips["n"] == 3 and tx.timeouts == 0
    assert rx.finish().read_bytes() == data
