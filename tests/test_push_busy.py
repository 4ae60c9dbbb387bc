"""A stalled push does not make the console deaf: each line typed meanwhile is answered
``ERR busy: a push is in progress (N bytes of M)`` at once, and the push still completes.
Over a real pty with pyserial on both ends (tests/pty_link.py)."""
from __future__ import annotations

import hashlib
import json
import threading
import time

from test_console import rig  # noqa: F401 - the pty rig: a console server on FakeApp

from lanthorn.device.console.push_wire import FrameDecoder, PushSender, encode_frame, is_busy_answer, typed_line
from tests.console_fakes import make_fake_bundle


def test_lines_typed_during_a_stalled_push_are_answered_busy_and_the_push_resumes(rig):  # noqa: F811
    term, app, server, _ = rig
    data = make_fake_bundle("late", 2000)
    sha = hashlib.sha256(data).hexdigest()
    assert term.answer(f"push begin {len(data)} {sha} 256")[-1].startswith("OK push ready")
    term.send(encode_frame(0, data[:256]) + encode_frame(1, data[256:512]))
    assert [term.line(), term.line()] == ["ACK 0", "ACK 1"]
    waits = []
    for line in ("status", "get brightness", "model info"):  # the sender has stalled
        t0 = time.monotonic()
        assert term.answer(line) == [f"ERR busy: a push is in progress (512 bytes of {len(data)})"]
        waits.append(time.monotonic() - t0)
    print(f"busy answered in {max(waits) * 1e3:.1f} ms at most")
    assert term.answer("mode json", end=b"\r\n")[0].startswith("ERR busy")  # not run
    assert server.mode == "text"
    for seq in range(2, -(-len(data) // 256)):  # the sender comes back: the push resumes where it was
        term.send(encode_frame(seq, data[seq * 256:(seq + 1) * 256]))
        assert term.line() == f"ACK {seq}"
    assert term.line() == f"OK installed late sha256={sha}"
    assert app.model.name == "late"
    assert term.answer("get palette") == ["OK ember"]


def test_a_busy_answer_is_told_from_a_verdict_in_both_modes():
    from lanthorn.device.console import console_wire as wire
    for mode in ("text", "json"):
        (line,) = wire.err_lines(mode, None, "busy: a push is in progress (5 bytes of 9)")
        line = wire.tag_answer([line], "status")[0] if mode == "json" else line
        assert is_busy_answer(line)
        assert not is_busy_answer(wire.err_lines(mode, "push begin", "push timed out")[0])
    assert json.loads(line)["line"] == "status"


def test_a_sender_that_hears_busy_keeps_pushing(rig):  # noqa: F811
    """Someone types while `lanthorn push` runs: the sender skips the busy answer."""
    term, app, *_ = rig
    data = make_fake_bundle("both", 6000)
    sha = hashlib.sha256(data).hexdigest()
    assert term.answer(f"push begin {len(data)} {sha} 256")[-1].startswith("OK push ready")
    lock = threading.Lock()

    def write(b):
        with lock:
            term.ser.write(b)

    def read_line(timeout):
        term.ser.timeout = timeout
        raw = term.ser.readline()
        return raw.decode().strip() if raw else None
    sender = PushSender(data, 256, write, read_line, ack_timeout=0.5)
    typist = threading.Thread(target=lambda: [write(b"status\n") or time.sleep(0.01)
                                              for _ in range(5)])
    typist.start()
    verdict = sender.run(0)
    typist.join()
    term.ser.timeout = 5
    verdict = verdict or term.line()
    while is_busy_answer(verdict):
        verdict = term.line()
    assert verdict == f"OK installed both sha256={sha}"


def test_the_decoder_tells_typing_from_noise_and_frames():
    dec = FrameDecoder()
    frame = encode_frame(0, b"a\nb" * 40)
    got = list(dec.feed(b"status\r\n" + frame + b"\x01\x02zz\n" + b"get palette\n"))
    assert [(k, v) for k, _, v in got if k == "text"] == [("text", "status"),
                                                          ("text", "get palette")]
    assert [k for k, *_ in got].count("frame") == 1
    assert typed_line(b"\xa5x\n") is None and typed_line(b"3") is None
    assert typed_line(b"  set brightness 40 ") == "set brightness 40"
