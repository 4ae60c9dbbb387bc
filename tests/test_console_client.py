"""The host side: terminal plots, completion, the json client, and the `console`, `push` and
`record` commands, each over a real pty with real pyserial against a ConsoleServer."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from console_fakes import FakeApp, make_fake_bundle
from pty_link import PtyLink

from lanthorn.device.console.push_wire import encode_frame, wire_efficiency
from lanthorn.device.console.server import ConsoleServer
from lanthorn.device.engine import bundle as B
from lanthorn.device.engine import int8
from lanthorn.device.engine.graph import Graph, Layer, Tensor
from lanthorn.device.engine.runtime import load
from lanthorn.device.piece.frames import CHANNELS
from lanthorn.host import termplot
from lanthorn.host.console_client import ConsoleClient, ConsoleError
from lanthorn.host.console_repl import Completer, render
from lanthorn.vocabulary import BAUD

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- terminal plots

def test_sparkline_and_bar():
    assert termplot.sparkline([0, 0.5, 1.0], 0, 1) == "▁▅█"
    assert termplot.sparkline([5, 5]) == "▁▁"  # flat data does not divide by zero
    assert termplot.sparkline([0, float("nan"), 2], 0, 1) == "▁ █"  # clipped, gaps shown
    assert termplot.bar(0.5, 4) == "██  "
    assert termplot.bar(1 / 16, 2) == "▏ "
    assert termplot.bar(2.0, 3) == "███" and termplot.bar(float("nan"), 2) == "  "


def test_watch_panel_redraws_in_place():
    panel = termplot.WatchPanel(history=3, bar_width=10)
    for v in (0.0, 0.5, 1.0, 1.0):
        panel.update({"t": 1.5, "values": {"pad0": v, "light": 0.2},
                      "probs": {"nobody": 0.25, "tap": 0.75}, "mood": "curious"})
    lines = panel.render()
    assert lines[0].startswith("t=     1.50 s   mood: curious")
    assert lines[1].endswith("▅██") and lines[1].startswith("pad0 ")
    assert lines[4] == "tap      0.750 ███████▌  ◀"
    out = []
    panel.draw(out.append)
    panel.draw(out.append)
    assert out[0].startswith("\x1b[2K")  # the first frame only clears the lines it writes
    assert out[1].startswith(f"\x1b[{len(lines)}F")  # second frame moves back up over the first


# ----------------------------------------------------------------------------- completion

COMMANDS = [{"name": n, "args": "", "help": "", "writes": False}
            for n in ("help", "get", "set", "reset", "preset save", "preset load", "preset list",
                      "model info", "mode", "watch")]
PARAMS = [{"name": "brightness", "type": "int"}, {"name": "palette", "type": "choice",
                                                   "choices": ["ember", "tide"]},
          {"name": "display_enabled", "type": "bool"}]


@pytest.mark.parametrize("before,word,expected", [
    ("", "", ["get", "help", "mode", "model", "preset", "quit", "reset", "set", "watch"]),
    ("", "pr", ["preset"]),
    ("preset ", "l", ["load", "list"]),
    ("set ", "b", ["brightness"]),
    ("reset ", "", ["brightness", "palette", "display_enabled", "all"]),
    ("set palette ", "", ["ember", "tide"]),
    ("set display_enabled ", "o", ["on", "off"]),
    ("preset load ", "e", ["evening"]),
    ("get brightness ", "", []),
])
def test_completion_from_the_device_tables(before, word, expected):
    c = Completer(COMMANDS, PARAMS, presets=lambda: ["evening", "night"])
    assert c.candidates(before, word) == expected


def test_render_answers_for_people():
    cmds = [{"name": "get", "args": "NAME", "help": "show one", "writes": False},
            {"name": "set", "args": "NAME VALUE...", "help": "change", "writes": True}]
    assert render("help set", {"ok": True, "cmd": "help", "data": {"commands": cmds}}, cmds) == \
        ["set NAME VALUE...  change  [locked: refused]"]
    assert render("x", {"ok": False, "error": "nope"}, cmds) == ["ERR nope"]
    assert render("get brightness", {"ok": True, "cmd": "get", "message": "40 %"}, cmds) == ["OK 40 %"]
    lines = render("status", {"ok": True, "cmd": "status", "message": "",
                              "data": {"fps": 59.94, "sensors": {"touch": "ok"}, "model": None}}, cmds)
    assert lines == ["fps                    59.94", "sensors                touch=ok",
                     "model                  -"]


# ----------------------------------------------------------------------------- the client

def tiny_bundle(path, name):
    rng = np.random.default_rng(len(name))
    w = rng.integers(-127, 128, (2, 14)).astype(np.int8)
    g = Graph({"x": Tensor("x", (14,), scale=0.05, zero_point=0),
               "y": Tensor("y", (2,), scale=0.2, zero_point=0)},
              [Layer("dense", "fc", ("x",), ("y",), {"act_min": -128, "act_max": 127},
                     {"weight": w, "bias": np.zeros(2, np.int32),
                      "multiplier": int8.requant_multiplier(0.05, np.full(2, 0.01), 0.2)})],
              ("x",), ("y",))
    B.write_bundle(B.Bundle(g, B.InputSpec((14,), rate_hz=25.0), ("nobody", "tap"),
                            {"name": name}, {}, b""), path)
    return path


@pytest.fixture
def device(tmp_path):
    """A console server with a fake app whose models load with the real runtime."""
    link = PtyLink()
    app = FakeApp(tmp_path / "dev", loader=lambda p: load(p))
    server = ConsoleServer(link.device, app).start()
    yield link, app, server
    server.stop()
    link.close()


def test_client_connects_and_calls(device):
    link, app, _ = device
    with ConsoleClient(link.host) as c:
        assert c.call("set brightness 40") == {"name": "brightness", "value": 40}
        assert app.params.get("brightness") == 40
        with pytest.raises(ConsoleError, match="device: brightness must be between 0 and 100 %, got 900"):
            c.call("set brightness 900")
        names = {p["name"]: p for p in c.params()}
        assert names["brightness"]["value"] == 40 and names["brightness"]["range"] == "between 0 and 100 %"
        assert "preset load" in [x["name"] for x in c.commands()]


def test_client_recovers_a_device_left_watching_or_mid_push(device):
    import serial
    link, app, server = device
    raw = serial.Serial(link.host, timeout=1)
    raw.write(b"watch 20\n")  # someone left a watch running in picocom
    raw.readline()
    raw.close()
    with ConsoleClient(link.host) as c:
        assert c.call("get palette")["value"] == "ember"
        c.write(b"push begin 5000 " + b"a" * 64 + b"\n")  # a push cut off after its start
        c.write(encode_frame(0, b"x" * 1024))
    with ConsoleClient(link.host) as c:  # the next client aborts it and gets an answer
        assert c.call("get palette")["value"] == "ember"


def test_client_push_and_record(device, tmp_path):
    link, app, _ = device
    model = tiny_bundle(tmp_path / "a.lanthorn", "alpha").read_bytes()
    seen = []
    with ConsoleClient(link.host) as c:
        result = c.push(model, 256, progress=seen.append)
        assert result["info"]["name"] == "alpha" and seen[-1] == len(model)
        assert result["wire_bytes"] == len(model) + 12 * -(-len(model) // 256)
        with pytest.raises(ConsoleError, match="device refused the model: the new model does not load"):
            c.push(make_fake_bundle("not-a-real-bundle", 500))
        assert c.call("model info")["name"] == "alpha"
        rows, done = c.record("tap", 1)
    assert len(rows) == done["frames"] == 25 and done["channels"] == list(CHANNELS)


@pytest.fixture
def cli(capsys):
    """Run `lanthorn ...` in this process (the server thread keeps answering meanwhile)."""
    from types import SimpleNamespace

    from lanthorn.cli import main

    def run(*args):
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def test_cli_console_push_record(device, tmp_path, cli, monkeypatch):
    import io
    link, app, _ = device
    _cli = cli
    out = _cli("console", link.host, "-c", "set brightness 40", "-c", "get brightness",
               "-c", "set brightness 900")
    assert out.stdout.splitlines()[-3:] == ["OK brightness = 40 %", "OK 40 %",
                                             "ERR brightness must be between 0 and 100 %, got 900"]
    assert out.returncode == 1  # one line failed
    out = _cli("console", link.host, "-c", "watch 20", "--seconds", "0.5")
    assert out.returncode == 0 and "pad0" in out.stdout and out.stdout.rstrip().endswith("OK watch stopped")
    # piped stdin: one line per command, like a script
    monkeypatch.setattr("sys.stdin", io.StringIO("get palette\nlist\nquit\n"))
    out = _cli("console", link.host)
    assert out.stdout.splitlines()[0] == "OK ember" and "brightness" in out.stdout

    bundle = tiny_bundle(tmp_path / "beta.lanthorn", "beta")
    out = _cli("push", str(bundle), "--port", link.host, "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("installed beta sha256=")
    n = bundle.stat().st_size
    frames = -(-n // 1024)
    assert f"payload/wire {n / (n + 12 * frames):.1%}" in out.stdout
    assert app.model_info()["name"] == "beta"

    data = tmp_path / "ds"
    out = _cli("record", link.host, "tap", "1", "--data", str(data), "--source", "alice",
               "--consent", "verbal, on video")
    assert out.returncode == 0, out.stderr
    # the performer is counted in before the take starts (3 s by default)
    assert "get ready to tap: 3 2 1 go\nrecording tap for 1 s" in out.stderr, out.stderr
    from lanthorn.device.storage.dataset import load_dataset, read_manifest
    (rec,) = load_dataset(data).recordings
    assert rec.frames.shape == (25, len(CHANNELS)) and rec.source == "alice"
    assert read_manifest(data)[1]["alice"].consent == "verbal, on video"
    # a new gesture the device's model does not know: streamed to a new dataset that has it
    out = _cli("record", link.host, "wave", "1", "--data", str(tmp_path / "new"))
    assert out.returncode == 0, out.stderr
    assert "of wave to" in out.stdout and "(not kept on the device)" in out.stdout
    ds = load_dataset(tmp_path / "new")
    assert ds.labels[-1] == "wave" and ds.recordings[0].frames.shape == (25, len(CHANNELS))


def test_cli_user_errors_are_one_line(device, tmp_path, cli):
    link, *_ = device
    _cli = cli
    out = _cli("push", str(tmp_path / "missing.lanthorn"), "--port", link.host)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no such file" in out.stderr
    bad = tmp_path / "bad.lanthorn"
    bad.write_bytes(b"not a bundle at all")
    out = _cli("push", str(bad), "--port", link.host)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    out = _cli("console", str(tmp_path / "no-such-port"))
    assert out.returncode == 2 and "no serial port" in out.stderr
    assert "ls /dev/ttyACM*" in out.stderr and out.stderr.count("No such file") == 0
    from lanthorn.device.storage.dataset import create_dataset
    create_dataset(tmp_path / "d")
    out = _cli("record", link.host, "wave", "1", "--data", str(tmp_path / "d"))
    assert out.returncode == 2 and "has no label 'wave' (its labels: nobody," in out.stderr


def test_push_efficiency_at_115200_baud():
    """A pty has no baud limit, so measure what the framing costs: payload / wire bytes
    of a default push (acks go the other way on a full-duplex line)."""
    eff = wire_efficiency()
    assert 0.98 < eff < 0.99
    assert BAUD / 10 * eff / 1024 == pytest.approx(11.1, abs=0.05)  # KiB/s of model at 115200


def _read_until(fd, needle: bytes, timeout=30.0) -> bytes:
    import os
    import select
    import time
    buf, end = b"", time.monotonic() + timeout
    while needle not in buf:
        left = end - time.monotonic()
        assert left > 0, f"{needle!r} never appeared in {buf[-600:]!r}"
        if select.select([fd], [], [], min(left, 0.2))[0]:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf


def test_interactive_console_completes_and_keeps_history(device, tmp_path):
    """A person at a real terminal: Tab completes from the device's tables, the history
    file keeps what was typed, Enter stops a live watch."""
    import os
    link, app, _ = device
    master, slave = os.openpty()
    history = tmp_path / "history"
    proc = subprocess.Popen([sys.executable, "-m", "lanthorn", "console", link.host],
                            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                            env={**os.environ, "TERM": "dumb", "LANTHORN_HISTORY": str(history)})
    os.close(slave)
    try:
        _read_until(master, b"lanthorn> ")
        os.write(master, b"set bri\t")
        _read_until(master, b"brightness ")  # completed by readline from the device's table
        os.write(master, b"40\r")
        _read_until(master, b"OK brightness = 40 %")
        assert app.params.get("brightness") == 40
        os.write(master, b"set palette t\t\r")
        _read_until(master, b"OK palette = tide")
        os.write(master, b"watch 20\r")
        _read_until(master, b"(press Enter to stop)")
        _read_until(master, b"nobody")  # the live panel: bars per class
        os.write(master, b"\r")
        _read_until(master, b"OK watch stopped")
        os.write(master, b"quit\r")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert [x.strip() for x in history.read_text().splitlines()[-4:]] == ["set brightness 40", "set palette tide",
                                                    "watch 20", "quit"]


def test_push_on_a_115200_baud_line(tmp_path):
    """Measured, not asserted: the share of a paced 115200-baud line that a push turns into
    model bytes (framing, acks on the return path, window stalls included)."""
    with PtyLink(baud=BAUD) as link:
        app = FakeApp(tmp_path / "dev")
        server = ConsoleServer(link.device, app).start()
        try:
            data = make_fake_bundle("paced", 24 * 1024)
            with ConsoleClient(link.host, BAUD) as c:
                result = c.push(data)
        finally:
            server.stop()
    assert result["info"]["name"] == "paced" and result["resent_frames"] == 0
    line_rate = BAUD / 10
    share = len(data) / result["seconds"] / line_rate
    print(f"push of {len(data)} B over a paced 115200 baud link: {result['seconds']:.2f} s, "
          f"{share:.1%} of the line rate (framing alone allows {wire_efficiency():.1%})")
    assert share < 1.0  # the pacing really limits it (a bare pty runs ~80x faster)


def test_late_answers_to_earlier_requests_are_skipped(device):
    link, app, server = device
    with ConsoleClient(link.host) as c:
        c.send_line("get palette")  # as if an earlier request had timed out
        c.send_line("status")
        assert c.call("get brightness") == {"name": "brightness", "value": 60}
        assert c.request("x" * 600)["error"].startswith("line too long")  # cmd None: accepted


def test_no_console_on_the_port_is_a_clear_error():
    with PtyLink() as link:  # a port with nothing listening (wrong port, piece not running)
        with pytest.raises(ConsoleError, match=r"no answer from a lanthorn console on .* at "
                                               r"115200 baud \(is 'lanthorn run --serial'"):
            ConsoleClient(link.host, timeout=0.5)
