"""The console server over a real pseudo-terminal with real pyserial, against a fake app.

What a person at picocom sees (text mode) and what the host client sees (json mode): every
line gets exactly one OK/ERR; bad bytes, over-long lines and unknown commands are answered
and the server keeps going; the lock refuses writes; watch streams until any line.

Console time (lockouts, watch rates, takes) runs on a FakeClock the test moves; only the
bytes travel in real time, over the pty.
"""
import hashlib
import json
import time

import pytest
import serial
from console_fakes import FakeApp, FakeClock, make_fake_bundle
from pty_link import PtyLink

from lanthorn.device.console import console_wire
from lanthorn.device.console.console_app import ConsoleApp
from lanthorn.device.console.console_wire import MAX_LINE, ProtocolError
from lanthorn.device.console.push_wire import PushSender
from lanthorn.device.console.server import HANDLERS, ConsoleServer, LineReader, decode_line
from lanthorn.device.piece.frames import CHANNELS
from lanthorn.vocabulary import BAUD


class Terminal:
    """A plain pyserial client, like a person at a serial terminal."""

    def __init__(self, path):
        self.ser = serial.Serial(path, BAUD, timeout=5)

    def send(self, data: bytes):
        self.ser.write(data)

    def line(self) -> str:
        raw = self.ser.readline()
        assert raw.endswith(b"\n"), f"no answer (got {raw!r})"
        return raw.decode().rstrip("\r\n")

    def answer(self, line: str | bytes = None, end=b"\n") -> list[str]:
        """Send a line, return every line up to and including the final OK/ERR."""
        if line is not None:
            self.send((line.encode() if isinstance(line, str) else line) + end)
        out = []
        while True:
            out.append(self.line())
            if out[-1].startswith(("OK", "ERR")) or out[-1].startswith('{"ok"'):
                return out


@pytest.fixture
def rig(tmp_path):
    link = PtyLink()
    clock = FakeClock()
    app = FakeApp(tmp_path / "data", clock=clock)  # app.clock: the test moves console time
    term = Terminal(link.host)  # opened first: pyserial's open() discards pending input
    server = ConsoleServer(link.device, app, clock=clock).start()
    # with no model at all the console says so once, at start
    assert term.line() == ("NOTE no usable model: running the built-in idle animation "
                           "(push one with 'lanthorn push')")
    yield term, app, server, link
    term.ser.close()
    server.stop()
    link.close()


def wait_for(condition, what, timeout=10.0):
    """Until ``condition()`` holds (another thread's doing), or fail naming ``what``."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.005)


# ----------------------------------------------------------------------------- pure parts

def test_line_reader_endings_and_overlong():
    r = LineReader(limit=8)
    assert r.feed(b"a\rb\nc\r\nd") == [("line", b"a"), ("line", b"b"), ("line", b"c")]
    assert r.feed(b"\r") == [("line", b"d")]
    assert r.feed(b"\ne\n") == [("line", b"e")]  # the LF of a split CRLF is not an empty line
    assert r.feed(b"x" * 20) == []
    assert r.feed(b"yy\nok\n") == [("long", 22), ("line", b"ok")]


def test_decode_line():
    assert decode_line(b"sett\x7f brightness\t40") == "set brightness 40"
    with pytest.raises(ProtocolError, match=r"not UTF-8 text \(byte 0xff at position 2\)"):
        decode_line(b"ab\xff")
    with pytest.raises(ProtocolError, match="control character 0x1b"):
        decode_line(b"\x1b[A")


# ----------------------------------------------------------------------------- over the pty

def test_set_get_and_range_error(rig):
    term, app, *_ = rig
    assert term.answer("set brightness 40") == ["OK brightness = 40 %"]
    assert term.answer("get brightness") == ["OK 40 %"]
    assert app.params.get("brightness") == 40  # the loop sees it on its next frame
    (err,) = term.answer("set brightness 900")
    assert err == "ERR brightness must be between 0 and 100 %, got 900"
    assert term.answer("get brightness") == ["OK 40 %"]


@pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"])
def test_any_line_ending(rig, end):
    term, *_ = rig
    assert term.answer("get palette", end=end) == ["OK ember"]
    assert term.answer("get speed", end=end) == ["OK 1 x"]


def test_bad_input_is_answered_and_the_server_survives(rig):
    term, app, server, _ = rig
    assert term.answer("frobnicate")[0].startswith("ERR unknown command 'frobnicate'")
    assert "did you mean list" in term.answer("lsit")[0]
    assert term.answer(b"get \xff\xfe brightness")[0].startswith("ERR line is not UTF-8")
    long = term.answer(b"set phrases_calm " + b"x" * 2000)
    assert long == [f"ERR line too long (2017 bytes, at most {MAX_LINE}); it was ignored"]
    assert term.answer("get nope")[0] == "ERR unknown parameter 'nope' (try 'list')"
    assert term.answer("set")[0] == "ERR usage: set NAME VALUE..."
    term.send(b"\n\r\n")  # empty lines: answered too (every line gets one answer)
    assert [term.line(), term.line()] == ["OK", "OK"]
    assert term.answer("get brightness") == ["OK 60 %"]


def test_random_bytes_never_kill_the_server(rig):
    import random
    term, app, server, _ = rig
    rng = random.Random(5)
    for _ in range(20):
        term.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
    term.send(b"\nget palette\n")  # a marker: everything before it has been answered
    deadline = time.monotonic() + 30
    while term.line() != "OK ember":
        assert time.monotonic() < deadline
    assert server._thread.is_alive()
    assert term.answer("get brightness") == ["OK 60 %"]


def test_list_help_status_model_info(rig):
    term, app, *_ = rig
    lines = term.answer("list")
    assert lines[-1] == f"OK {len(app.params.names())} parameters"
    assert any(line.startswith("brightness") and "60 %" in line for line in lines)
    lines = term.answer("help")
    assert lines[-1] == "OK" and any(line.startswith("preset save NAME") for line in lines)
    assert term.answer("help set")[0].startswith("set NAME VALUE...:")
    lines = term.answer("status")
    assert "fps: 60.0" in lines and "sensors: touch=ok distance=failed: no ack" in lines
    assert term.answer("model info") == ["name: None", "messages: no usable model: running the "
                                         "built-in idle animation (push one with 'lanthorn push')",
                                         "OK model None"]


def test_save_presets_and_reset(rig, tmp_path):
    term, app, *_ = rig
    term.answer("set palette tide")
    assert term.answer("save") == ["OK saved as the start-up values"]
    settings = json.loads((tmp_path / "data" / "settings.json").read_text())
    assert settings["params"]["palette"] == "tide"
    assert term.answer("preset save evening") == ["OK preset evening saved"]
    term.answer("set palette moss")
    assert term.answer("preset list") == ["evening", "OK 1 presets"]
    assert term.answer("preset load evening") == ["OK preset evening loaded"]
    assert app.params.get("palette") == "tide"
    assert term.answer("preset load nope")[0] == "ERR no preset named 'nope' (presets: evening)"
    assert term.answer("preset save ../x")[0].startswith("ERR preset name '../x' must be")
    assert term.answer("preset delete evening") == ["OK preset evening deleted"]
    assert term.answer("reset palette") == ["OK palette back to default"]
    assert app.params.get("palette") == "ember"


def test_exhibition_lock(rig, tmp_path):
    term, app, server, _ = rig
    assert term.answer("lock 12") == ["ERR the PIN must be 4-16 letters or digits"]
    assert term.answer("lock 4711")[0].startswith("OK locked")
    stored = (tmp_path / "data" / "lock.json").read_text()
    assert "4711" not in stored and '"hash"' in stored  # stored hashed, salted, in its own file
    assert term.answer("set brightness 10")[0].startswith("ERR locked")
    assert term.answer("preset save x")[0].startswith("ERR locked")
    assert term.answer("get brightness") == ["OK 60 %"]  # reading still works
    assert term.answer("unlock 0000") == ["ERR wrong PIN; next attempt allowed in 1 s"]
    assert term.answer("unlock 4711")[0].startswith("ERR too many wrong PINs; try again in")
    # the lock survives a restart (a power cut in the gallery)
    server2 = ConsoleServer("unused", app)
    assert server2.lock.locked
    app.clock.advance(1.05)  # the lockout is over in console time
    assert term.answer("unlock 4711") == ["OK unlocked"]
    assert term.answer("set brightness 10") == ["OK brightness = 10 %"]


def test_lockout_grows(tmp_path):
    from lanthorn.device.console.exhibition_lock import ExhibitionLock
    from lanthorn.device.storage.storage import DataDir

    now = [0.0]
    lock = ExhibitionLock(DataDir(tmp_path, shipped_model=None), clock=lambda: now[0])
    lock.lock("abcd")
    waits = []
    for _ in range(5):
        with pytest.raises(Exception, match="wrong PIN") as e:
            lock.unlock("zzzz")
        waits.append(lock.blocked_until - now[0])
        now[0] = lock.blocked_until
    assert waits == [1, 2, 4, 8, 16] and "16 s" in str(e.value)
    # a restart (power cut) keeps the count: the next wait is as long as the last one
    again = ExhibitionLock(lock.storage, clock=lambda: now[0])
    assert again.failures == 5 and again.blocked_until == now[0] + 16
    with pytest.raises(Exception, match="try again in 16 s"):
        again.unlock("abcd")
    now[0] += 16
    again.unlock("abcd")
    assert not again.locked and ExhibitionLock(lock.storage).failures == 0


def test_watch_streams_until_any_line(rig):
    term, app, *_ = rig
    assert term.answer("watch 20") == ["OK watching at 20 Hz; send any line or 'stop' to end"]
    lines = []
    for _ in range(5):  # one sample per 1/20 s of console time
        lines.append(term.line())
        app.clock.advance(0.05)
    assert all(line.startswith("t=") and "pad0=" in line and "| nobody=0.900" in line for line in lines)
    term.send(b"\n")
    rest = term.answer()
    assert rest[-1] == "OK watch stopped"
    assert term.answer("watch 500") == ["ERR watch rate must be between 0.1 and 50 Hz, got 500"]


def test_json_mode(rig):
    term, app, *_ = rig
    assert term.answer("mode json") == ['{"ok":true,"cmd":"mode","message":"mode json",'
                                        '"line":"mode json"}']
    (line,) = term.answer("get brightness")
    assert json.loads(line) == {"ok": True, "cmd": "get", "message": "60 %", "line": "get brightness",
                                "data": {"name": "brightness", "value": 60}}
    (line,) = term.answer("set brightness 900")
    assert json.loads(line)["error"].startswith("brightness must be between 0 and 100")
    (line,) = term.answer("help")
    assert {"name": "set", "args": "NAME VALUE...", "writes": True} .items() <= \
        json.loads(line)["data"]["commands"][3].items()
    term.send(b"watch 20\n")
    assert json.loads(term.line())["ok"]
    ev = json.loads(term.line())
    assert ev["event"] == "watch" and ev["data"]["probs"] == {"nobody": 0.9, "tap": 0.1}
    term.send(b"stop\n")
    while not (line := term.line()).startswith('{"ok"'):
        pass
    assert json.loads(line)["message"] == "watch stopped"


def test_record_into_the_data_dir(rig, tmp_path):
    from lanthorn.device.storage.dataset import load_dataset
    term, app, *_ = rig
    assert term.answer("record wave 1")[0].startswith(
        "ERR label 'wave' is not one of the device's recording labels (nobody, approach")
    assert term.answer("record ../x 1")[0].startswith("ERR label '../x' must be")
    # one line, one answer: a notice that it started, then the one OK when it is done
    term.send(b"record tap 1\n")
    assert term.line() == "NOTE recording tap for 1 s; 'stop' cancels"
    app.clock.advance(1.0)  # a second of console time: 25 frames at the fake loop's 25 Hz
    (done,) = term.answer()
    assert done.startswith("OK recorded 25 frames of tap into dataset/recordings/device/tap-")
    ds = load_dataset(tmp_path / "data" / "dataset")
    (rec,) = ds.recordings
    assert rec.frames.shape == (25, len(CHANNELS)) and rec.session.startswith("tap-")
    term.send(b"record tap 5\n")
    assert term.line() == "NOTE recording tap for 5 s; 'stop' cancels"
    term.send(b"stop\n")
    assert term.answer() == ["ERR recording cancelled; nothing was saved"]
    assert term.answer() == ["OK record stopped"]


def _push_over(term, data, sha=None, chunk=256):
    sha = sha or hashlib.sha256(data).hexdigest()
    ready = term.answer(f"push begin {len(data)} {sha} {chunk}")
    assert ready[-1].startswith("OK push ready"), ready
    offset = int(ready[-1].rsplit("offset=", 1)[1])

    def read_line(timeout):
        term.ser.timeout = timeout
        raw = term.ser.readline()
        return raw.decode().strip() if raw else None

    # a pty has no baud limit: a short ack timeout keeps a lost retransmission cheap
    sender = PushSender(data, chunk, term.ser.write, read_line, ack_timeout=0.5)
    verdict = sender.run(offset // chunk)
    term.ser.timeout = 5
    return verdict or term.line(), sender


def test_push_installs_and_keeps_previous(rig, tmp_path):
    term, app, *_ = rig
    first = make_fake_bundle("first", 3000)
    verdict, sender = _push_over(term, first)
    assert verdict == f"OK installed first sha256={hashlib.sha256(first).hexdigest()}"
    assert term.answer("model info")[-1] == "OK model first"
    verdict, _ = _push_over(term, make_fake_bundle("second", 5000))
    assert verdict.startswith("OK installed second")
    models = tmp_path / "data" / "models"
    assert (models / "previous.lanthorn").read_bytes() == first
    assert not list((models / "incoming").iterdir())
    assert term.answer("model rollback") == ["OK rolled back to first"]
    assert app.model.name == "first"


def test_corrupted_bundle_is_refused_and_the_old_model_runs(rig, tmp_path):
    term, app, *_ = rig
    _push_over(term, make_fake_bundle("good", 1000))
    bad = bytearray(make_fake_bundle("evil", 1000))
    bad[500] ^= 1  # SHA-256 of the transfer matches, but the bundle itself is damaged
    verdict, _ = _push_over(term, bytes(bad))
    assert verdict.startswith("ERR the new model does not load, keeping the old one")
    assert app.model.name == "good" and term.answer("model info")[-1] == "OK model good"
    # the transfer's own SHA-256 disagrees: refused before anything is loaded
    verdict, _ = _push_over(term, make_fake_bundle("other", 1000), sha="0" * 64)
    assert verdict.startswith("ERR the received file does not match its SHA-256")
    assert app.model.name == "good"
    assert not list((tmp_path / "data" / "models" / "incoming").iterdir())


def test_line_noise_during_push_is_retransmitted(tmp_path):
    """Bytes flipped on the cable cost a NAK and a resend, never a wrong model."""
    count = {"n": 0}

    def noise(data):
        count["n"] += 1
        if len(data) > 100 and count["n"] in (3, 8, 15):
            b = bytearray(data)
            b[len(b) // 2] ^= 0x20
            return bytes(b)
        return data

    with PtyLink(damage=noise) as link:
        app = FakeApp(tmp_path / "d")
        term = Terminal(link.host)
        server = ConsoleServer(link.device, app).start()
        term.line()  # the start-up notice
        data = make_fake_bundle("noisy", 20000)
        verdict, sender = _push_over(term, data)
        term.ser.close()
        server.stop()
    assert verdict.startswith("OK installed noisy") and sender.resent_frames > 0


def test_push_while_locked_is_refused(rig):
    term, *_ = rig
    term.answer("lock 1234")
    assert term.answer("push begin 10 " + "a" * 64)[0].startswith("ERR locked")


def test_interrupted_push_resumes(rig, tmp_path):
    term, app, server, _ = rig
    data = make_fake_bundle("resumed", 4000)
    sha = hashlib.sha256(data).hexdigest()
    term.answer(f"push begin {len(data)} {sha} 256")
    from lanthorn.device.console.push_wire import abort_frame, encode_frame
    term.send(b"".join(encode_frame(i, data[i * 256:(i + 1) * 256]) for i in range(6)))
    assert [term.line() for _ in range(6)] == [f"ACK {i}" for i in range(6)]
    term.send(abort_frame())
    assert term.answer() == ["ERR push aborted by the sender; the old model keeps running"]
    verdict, sender = _push_over(term, data)
    assert verdict.startswith("OK installed resumed")
    assert sender.wire_bytes < len(data) - 5 * 256  # only the missing chunks were sent


def test_server_waits_for_its_port_to_appear(tmp_path):
    """A USB gadget port (/dev/ttyGS0) appears only when the cable is plugged in."""
    with PtyLink() as link:
        port = tmp_path / "ttyGS0"
        logs = []
        server = ConsoleServer(str(port), FakeApp(tmp_path / "d"), log=logs.append,
                               reopen_s=0.05).start()
        try:
            wait_for(lambda: server.open_attempts >= 3, "three attempts to open the port")
            assert server._thread.is_alive()
            assert len(logs) == 1 and "retrying every 0.05 s" in logs[0]  # said once
            term = Terminal(link.host)
            port.symlink_to(link.device)  # the port appears
            assert term.line().startswith("NOTE no usable model")
            assert term.answer("get palette") == ["OK ember"]
            assert logs[-1].endswith("ttyGS0 is open")
            term.ser.close()
        finally:
            server.stop()


def test_push_refused_when_the_device_is_full(rig, monkeypatch):
    import shutil
    from collections import namedtuple
    term, app, *_ = rig
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 6, 10 ** 6 - 5000, 5000))
    assert term.answer("push begin 100000 " + "a" * 64) == [
        "ERR not enough space on the device for a 100000 byte model (5000 bytes free); the "
        "old model keeps running"]


def test_push_write_failure_is_answered(rig, monkeypatch):
    from lanthorn.device.console import push_wire
    term, app, *_ = rig
    data = make_fake_bundle("x", 2000)
    term.answer(f"push begin {len(data)} {hashlib.sha256(data).hexdigest()} 256")

    def full(self, payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(push_wire.PushReceiver, "_write", full, raising=False)
    from lanthorn.device.console.push_wire import encode_frame
    term.send(encode_frame(0, data[:256]))
    assert term.answer() == ["ERR the card is full: could not store the push; free space on "
                             "it (pull takes with 'lanthorn fetch' and delete them, 'preset "
                             "delete NAME'); 'status' shows storage; the old model keeps running"]
    assert term.answer("get palette") == ["OK ember"]


class MemorySerial:
    """An in-memory port for property tests: what the server writes is kept."""

    def __init__(self):
        self.out = bytearray()

    def write(self, data):
        self.out += data

    def read(self, n):
        return b""


WORDS = ["help", "list", "get", "set", "reset", "save", "preset", "load", "delete", "status",
         "model", "info", "rollback", "lock", "unlock", "mode", "json", "text", "stop",
         "brightness", "palette", "tide", "40", "900", "-1", "1e9", "nan", "phrases_calm", "|",
         '"', "all", "evening", "record", "push", "begin"]


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")
                                .decode("latin-1"))),
    max_size=12), ending=st.sampled_from([b"\r", b"\n", b"\r\n"]))
def test_any_input_gets_answers_and_never_an_internal_error(tmp_path_factory, lines, ending):
    app = FakeApp(tmp_path_factory.mktemp("fuzz"))
    logs = []
    ser = MemorySerial()
    server = ConsoleServer(ser, app, log=logs.append)
    expected = 0
    for line in lines:
        raw = line.encode("latin-1")
        expected += 1  # every line, blank ones included
        server.on_bytes(raw + ending)
        server.tick()
        server.stream = None  # end any watch/record/push the words happened to start
        server.reader = type(server.reader)()
    assert not [line for line in logs if "internal error" in line or "command failed" in line], logs
    out = ser.out.decode("utf-8", "replace").split("\r\n")
    assert not [line for line in out if "Traceback" in line]
    finals = [line for line in out if line.startswith(("OK", "ERR", '{"ok"'))]
    assert len(finals) == expected  # exactly one final answer per line
    # the parameters are still valid values whatever was typed
    for p in app.params.table:
        assert p.check(app.params.get(p.name)) == app.params.get(p.name)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary(min_size=1, max_size=40).map(
           lambda b: b.replace(b"\r", b"x").replace(b"\n", b"y")), max_size=8),
       endings=st.lists(st.sampled_from([b"\r", b"\n", b"\r\n"]), min_size=8, max_size=8),
       cuts=st.lists(st.integers(1, 30), max_size=30))
def test_line_reader_any_split_any_ending(lines, endings, cuts):
    """However the bytes are split into reads, every line comes out once, whole."""
    stream = b"".join(line + end for line, end in zip(lines, endings, strict=False))
    r, got, pos = LineReader(limit=64), [], 0
    for c in cuts + [len(stream)]:
        got += r.feed(stream[pos:pos + c])
        pos += c
    assert got == [("line", line) for line in lines]


# ----------------------------------------------------------------------------- the contract

def test_fake_app_satisfies_the_console_contract(tmp_path):
    """The fake the console tests run against is a ConsoleApp, member for member and with
    the same parameters, so it cannot drift from what the real piece implements."""
    import inspect
    app = FakeApp(tmp_path)
    assert isinstance(app, ConsoleApp)
    members = [n for n in dir(ConsoleApp) if not n.startswith("_")]
    assert {"status", "model_info", "install_model", "rollback_model", "latest",
            "frames_since"} <= set(members)
    for name in members:
        want = inspect.signature(getattr(ConsoleApp, name))
        got = inspect.signature(getattr(FakeApp, name))
        assert list(got.parameters) == list(want.parameters), name
    assert set(ConsoleApp.__annotations__) == {"params", "storage"}
    assert all(hasattr(app, a) for a in ConsoleApp.__annotations__)


def test_every_command_has_exactly_one_handler():
    assert set(HANDLERS) == set(console_wire.BY_NAME)


def test_model_rollback_asks_the_app(tmp_path):
    """The console rolls back through ConsoleApp.rollback_model, never the storage itself."""
    calls = []

    class App(FakeApp):
        def rollback_model(self, slot="model"):
            calls.append(slot)
            return super().rollback_model(slot)

    ser = MemorySerial()
    app = App(tmp_path)
    server = ConsoleServer(ser, app)
    server.on_bytes(b"model rollback\n")
    assert ser.out.decode().endswith("ERR there is no previous model to roll back to\r\n")
    for name in ("first", "second"):
        (tmp_path / f"{name}.bin").write_bytes(make_fake_bundle(name))
        app.install_model(str(tmp_path / f"{name}.bin"))
    server.on_bytes(b"model rollback\nmodel rollback sideways\n")
    assert ser.out.decode().split("\r\n")[-3:] == [
        "OK rolled back to first", "ERR model rollback 'sideways': say 'model rollback' for "
        "the gesture model or 'model rollback voice' for the voice", ""]
    server.on_bytes(b"model rollback VOICE\n")
    assert calls == ["model", "model", "voice"] and app.model.name == "first"


def test_watch_keeps_its_rate_in_console_time(tmp_path):
    clock = FakeClock()
    ser = MemorySerial()
    server = ConsoleServer(ser, FakeApp(tmp_path, clock=clock), clock=clock)

    def samples():
        return sum(line.startswith("t=") for line in ser.out.decode().split("\r\n"))

    server.on_bytes(b"watch 20\n")
    server.tick()
    assert samples() == 1                 # the first at once
    server.tick()
    clock.advance(0.049)
    server.tick()
    assert samples() == 1                 # not before 1/20 s has passed
    clock.advance(0.001)
    server.tick()
    server.tick()
    assert samples() == 2                 # then exactly one
    clock.advance(10.0)
    server.tick()
    server.tick()
    assert samples() == 3                 # a stall is not made up for with a burst


def test_frames_right_behind_push_begin_are_not_lost(tmp_path):
    """A sender that does not wait for 'push ready' (or a frame that arrives in the same
    read as the line): the frames, CR and LF bytes included, go to the push, not to the
    line reader."""
    from lanthorn.device.console.push_wire import encode_frame
    ser = MemorySerial()
    app = FakeApp(tmp_path)
    server = ConsoleServer(ser, app)
    data = make_fake_bundle("eager", 600)
    assert b"\n" in data[:256]  # the first frame holds a line ending
    begin = f"push begin {len(data)} {hashlib.sha256(data).hexdigest()} 256\r\n".encode()
    server.on_bytes(begin + b"".join(encode_frame(i, data[i * 256:(i + 1) * 256])
                                     for i in range(3)))
    assert ser.out.decode().split("\r\n")[:4] == [
        "OK push ready chunk=256 offset=0", "ACK 0", "ACK 1", "ACK 2"]
    assert ser.out.decode().split("\r\n")[4].startswith("OK installed eager")
    assert app.model.name == "eager" and server.stream is None
