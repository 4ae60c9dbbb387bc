"""The on-card fault log: bounded, power-cut safe, fed by the fault path, read by `log`."""
from __future__ import annotations

import json
import os

import pytest

from lanthorn.device.console.server import ConsoleServer
from lanthorn.device.piece.piece import Piece
from lanthorn.device.storage.fault_log import FaultLog, parse_lines
from lanthorn.device.storage.storage import DataDir
from lanthorn.hardware.interfaces import PartError
from lanthorn.hardware.profile import load_profile
from lanthorn.hardware.sim import SimClock, open_sim_body
from tests.console_fakes import FakeApp, FakeClock


def test_a_line_per_fault_survives_a_new_log_on_the_same_file(tmp_path):
    log = FaultLog(tmp_path / "faults.log", clock=lambda: 0.0)
    log.record("touch", "failed", "no answer at 0x5a")
    log.record("touch", "recovered")
    again = FaultLog(tmp_path / "faults.log")
    assert [(e["part"], e["what"]) for e in again.entries()] == [("touch", "failed"),
                                                                  ("touch", "recovered")]
    assert again.entries()[0]["t"] == "1970-01-01T00:00:00Z"
    assert again.entries()[0]["detail"] == "no answer at 0x5a"


def test_the_log_is_bounded_and_drops_the_oldest(tmp_path):
    path = tmp_path / "faults.log"
    log = FaultLog(path, max_bytes=4096, max_lines=1000)
    for i in range(500):
        log.record("distance", "failed", f"episode {i} " + "x" * 40)
        assert path.stat().st_size <= 4096
    kept = [e["detail"].split()[1] for e in log.entries()]
    assert kept[-1] == "499" and "0" not in kept            # the newest kept, the oldest gone
    assert [int(k) for k in kept] == sorted(int(k) for k in kept)
    assert log.summary()["since_start"] == 500 and 0 < log.summary()["lines"] < 500


def test_the_line_count_is_bounded_too(tmp_path):
    log = FaultLog(tmp_path / "faults.log", max_bytes=10 ** 6, max_lines=100)
    for i in range(400):
        log.record("light", "failed", str(i))
    assert len(log.entries()) <= 100 + 50  # counted every 50 appends, halved when over


def test_a_torn_last_line_is_skipped_and_does_not_swallow_the_next(tmp_path):
    path = tmp_path / "faults.log"
    log = FaultLog(path)
    log.record("touch", "failed", "first")
    whole = path.read_bytes()
    path.write_bytes(whole + whole[:17])          # a power cut in the middle of a line
    assert [e["detail"] for e in FaultLog(path).entries()] == ["first"]
    assert FaultLog(path).summary()["torn_skipped"] == 1
    after = FaultLog(path)
    after.record("touch", "recovered", "second")
    assert [e["detail"] for e in after.entries()] == ["first", "second"]
    path.write_bytes(path.read_bytes() + b"\0" * 64 + b"\n")  # zeros a cut left in a block
    assert [e["detail"] for e in FaultLog(path).entries()] == ["first", "second"]


def test_parse_lines_refuses_what_is_not_a_fault_line():
    text = '{"t": "x", "part": "p", "what": "w"}\n[1, 2]\n{"t": 1}\nnot json\n'
    entries, torn = parse_lines(text)
    assert len(entries) == 1 and torn == 3


def test_a_read_only_card_keeps_the_lines_in_memory_and_says_so(tmp_path, monkeypatch):
    log = FaultLog(tmp_path / "faults.log")
    real_open = os.open

    def refuse(path, *a, **k):
        if str(path).endswith("faults.log"):
            raise OSError(30, "Read-only file system")
        return real_open(path, *a, **k)
    monkeypatch.setattr(os, "open", refuse)
    log.record("touch", "failed", "cable")
    log.record("touch", "recovered")
    assert "cannot write the fault log faults.log (Read-only file system)" in log.problem
    assert [e["what"] for e in log.entries()] == ["failed", "recovered"]
    monkeypatch.setattr(os, "open", real_open)      # the card is writable again
    log.record("light", "failed")
    assert log.problem is None and [e["part"] for e in FaultLog(log.path).entries()] == ["light"]


class Flaky:
    """A distance sensor that breaks, then comes back."""

    def __init__(self, inner):
        self.inner, self.broken = inner, False

    def read_mm(self):
        if self.broken:
            raise PartError("distance", "no answer at 0x29")
        return self.inner.read_mm()

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _piece(dd):
    body = open_sim_body(load_profile("sim"), seed=1, clock=SimClock())
    body.distance = Flaky(body.distance)
    return body, Piece(body, storage=dd, clock=body.clock, charge_compute=False,
                       oled_thread=False, voice_thread=False)


def test_a_part_failing_and_recovering_reaches_the_card_and_status(tmp_path):
    dd = DataDir(tmp_path, shipped_model=None)
    body, piece = _piece(dd)
    piece.run(seconds=0.5)
    body.distance.broken = True
    piece.run(seconds=1.0)
    body.distance.broken = False
    piece.run(seconds=Piece.RETRY_S + 1.0)
    lines = [json.loads(x) for x in (tmp_path / "faults.log").read_text().splitlines()]
    assert [(x["part"], x["what"]) for x in lines] == [("distance", "failed"),
                                                       ("distance", "recovered")]
    assert "no answer at 0x29" in lines[0]["detail"]
    assert piece.status()["fault_log"]["lines"] == 2


def test_a_read_only_card_the_piece_keeps_running_and_says_it_cannot_log(tmp_path, monkeypatch):
    dd = DataDir(tmp_path, shipped_model=None)
    body, piece = _piece(dd)
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: (_ for _ in ()).throw(
        OSError(30, "Read-only file system")) if str(p).endswith("faults.log")
        else real_open(p, *a, **k))
    piece.run(seconds=0.5)
    body.distance.broken = True
    piece.run(seconds=1.0)
    shown = piece.frames_shown
    piece.run(seconds=1.0)
    assert piece.frames_shown > shown + 50          # still lit
    st = piece.status()["fault_log"]
    assert "Read-only file system" in st["problem"] and st["lines"] == 1


def test_log_on_the_console_answers_while_locked(tmp_path):
    clock = FakeClock()
    app = FakeApp(tmp_path, clock=clock)
    server = ConsoleServer(None, app, clock=clock)
    app.storage.faults.record("touch", "failed", "pad 3 shorted")
    app.storage.faults.record("touch", "recovered")
    assert server.handle_line("lock 4711")[-1].startswith("OK")
    answer = server.handle_line("log")
    assert answer[-1] == "OK 2 of 2 fault log lines"
    assert answer[0].endswith("touch failed: pad 3 shorted") and answer[1].endswith("recovered")
    assert server.handle_line("log 1") == [answer[1], "OK 1 of 2 fault log lines"]
    server.mode = "json"
    data = json.loads(server.handle_line("log 5")[-1])["data"]
    assert [e["what"] for e in data["entries"]] == ["failed", "recovered"]
    server.mode = "text"
    assert server.handle_line("log many")[-1].startswith("ERR log takes a number")
    assert server.handle_line("log 0")[-1].startswith("ERR log shows 1 to")


@pytest.mark.parametrize("threaded", [False, True])
def test_the_background_writer_stores_every_line(tmp_path, threaded):
    log = FaultLog(tmp_path / "faults.log")
    if threaded:
        log.background()
    for i in range(30):
        log.record("light", "failed", str(i))
    assert log.flush()
    log.close()
    assert [e["detail"] for e in FaultLog(log.path).entries()] == [str(i) for i in range(30)]
