"""One regression test per failure the torture campaigns found (issue 16); each names the
finding it pins down. The campaigns themselves run bounded in tests/test_torture.py."""
from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
from console_fakes import FakeApp
from loop_helpers import FakeModel

from lanthorn.device.console.exhibition_lock import ExhibitionLock
from lanthorn.device.console.server import ConsoleServer, wire_bytes
from lanthorn.device.piece.params import ParamError, ParamStore
from lanthorn.device.piece.piece import Piece
from lanthorn.device.storage.storage import SHIPPED_MODEL, DataDir
from lanthorn.hardware.interfaces import TouchReading
from lanthorn.hardware.profile import load_profile
from lanthorn.hardware.sim import SimClock, open_sim_body
from lanthorn.host.torture import bundles


class MemorySerial:
    def __init__(self):
        self.out = bytearray()

    def write(self, data):
        self.out += data

    def lines(self):
        return self.out.decode("utf-8").split("\r\n")[:-1]


def server(tmp_path):
    ser = MemorySerial()
    app = FakeApp(tmp_path / "data")
    return ConsoleServer(ser, app), ser, app


# --- console: every line answered once, nothing forged ----------------------------------

@pytest.mark.parametrize("mode", ["text", "json"])
def test_blank_and_odd_lines_get_exactly_one_answer(tmp_path, mode):
    """Found: blank lines got no answer; in json mode 88 of 961 fuzz lines went unanswered."""
    srv, ser, _ = server(tmp_path)
    srv.mode = mode
    lines = [b"", b"   ", b"rest  LL", b"preset bogus evening", b"\x08\x08get brightness", b"\t"]
    for raw in lines:
        srv.on_bytes(raw + b"\r\n")
    finals = [line for line in ser.lines() if line.startswith(("OK", "ERR", '{"ok"'))]
    assert len(finals) == len(lines), ser.lines()


def test_a_value_cannot_forge_answer_lines(tmp_path):
    """Found: `set phrases_...` with \\n/\\r in its JSON value printed three OK/ERR lines."""
    srv, ser, app = server(tmp_path)
    srv.on_bytes(b'set phrases_calm ["a\\nOK forged", "b\\r\\nERR forged"]\n')
    assert len(ser.lines()) == 1 and ser.lines()[0].startswith("ERR phrases_calm")
    assert app.params.get("phrases_calm") == ParamStore().get("phrases_calm")
    # and whatever reaches the wire stays on one line per answer line
    assert wire_bytes(["OK a\nOK b\rERR c\u2028d"]).count(b"\r\n") == 1


def test_a_lone_surrogate_is_refused_and_cannot_poison_answers(tmp_path):
    """Found: `set phrases_… ["\\ud800"]` was accepted; from then on status/list/get
    answered 'internal error', and after a save, after every restart too."""
    srv, ser, app = server(tmp_path)
    srv.on_bytes(b'set phrases_calm ["\\ud800"]\n')
    assert ser.lines()[-1].startswith("ERR phrases_calm: phrase '\\ud800'")
    for line in (b"list\n", b"status\n", b"get phrases_calm\n", b"save\n"):
        srv.on_bytes(line)
        assert ser.lines()[-1].startswith("OK"), ser.lines()[-3:]
    with pytest.raises(ParamError, match="lone surrogate"):
        ParamStore().set("phrases_calm", ["\udfff"])


def test_a_poisoned_settings_file_is_survived_at_load(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "settings.json").write_text(
        '{"params": {"phrases_calm": ["\\ud800"], "brightness": 30}, "version": 1}')
    srv, ser, app = server(tmp_path)
    assert app.params.get("brightness") == 30  # the good values are kept
    assert app.params.get("phrases_calm") == ParamStore().get("phrases_calm")
    srv.on_bytes(b"status\nlist\n")
    assert [line for line in ser.lines() if line.startswith(("OK", "ERR"))] == ["OK", f"OK {len(app.params.names())} parameters"]


# --- the lock: its own file, fail closed, unlock on a full card --------------------------

def test_a_damaged_settings_file_does_not_lift_the_lock(tmp_path):
    """Found: settings.json truncated by 5 bytes silently lifted the exhibition lock."""
    dd = DataDir(tmp_path, shipped_model=None)
    ExhibitionLock(dd).lock("4711")
    dd.update_settings("params", {"brightness": 20})
    text = dd.settings_path.read_text()
    dd.settings_path.write_text(text[:-5])
    assert ExhibitionLock(DataDir(tmp_path, shipped_model=None)).locked


@pytest.mark.parametrize("damage", [b'{"salt": "ab', b"", b"\xff\xfe", b'{"salt": 1, "hash": 2}'])
def test_a_damaged_lock_file_fails_closed(tmp_path, damage):
    dd = DataDir(tmp_path, shipped_model=None)
    ExhibitionLock(dd).lock("4711")
    dd.lock_path.write_bytes(damage)
    lock = ExhibitionLock(DataDir(tmp_path, shipped_model=None))
    assert lock.locked
    with pytest.raises(Exception, match="lock file .* is damaged"):
        lock.unlock("4711")


def test_the_legacy_lock_in_settings_is_still_honoured(tmp_path):
    dd = DataDir(tmp_path, shipped_model=None)
    ExhibitionLock(dd).lock("4711")
    record = json.loads(dd.lock_path.read_text())
    dd.lock_path.unlink()
    dd.update_settings("lock", record)  # what an older lanthorn wrote
    lock = ExhibitionLock(DataDir(tmp_path, shipped_model=None))
    assert lock.locked
    lock.unlock("4711")
    assert not ExhibitionLock(DataDir(tmp_path, shipped_model=None)).locked
    assert "lock" not in dd.load_settings()[0]


def test_unlock_works_when_the_card_is_full(tmp_path, monkeypatch):
    """Found: on a full partition `unlock` with the right PIN failed with ENOSPC and the
    object stayed locked (and `preset delete`, the way to free space, was refused)."""
    dd = DataDir(tmp_path, shipped_model=None)
    lock = ExhibitionLock(dd, clock=lambda: 100.0)
    lock.lock("4711")
    import lanthorn.device.storage.storage as storage_mod

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(storage_mod, "atomic_write_text", full)
    with pytest.raises(Exception, match="wrong PIN"):  # a failure count that cannot be saved
        lock.unlock("0000")
    lock.blocked_until = 0
    lock.unlock("4711")  # deleting the lock file needs no space
    assert not lock.locked and not dd.lock_path.exists()


# --- storage faults: the piece always comes up ------------------------------------------

def test_an_unwritable_data_dir_runs_on_defaults_and_says_so(tmp_path, monkeypatch):
    """Found: an empty read-only data dir stopped the piece from starting at all."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    dd = DataDir(blocker / "data")
    body = open_sim_body(load_profile("sim"), seed=1, clock=SimClock())
    loop = Piece(body, storage=dd, clock=body.clock, charge_compute=False, oled_thread=False)
    loop.run(seconds=0.5)
    st = loop.status()
    assert st["model_source"] == "shipped" and loop.frames_shown >= 29
    assert "cannot use data directory" in st["storage"][0]


def test_a_bad_file_that_cannot_be_set_aside_is_skipped(tmp_path, monkeypatch):
    """Found: read-only + a corrupt current model or settings.json: renaming the bad file
    into rejected/ failed and the piece did not start, with previous right there."""
    dd = DataDir(tmp_path, shipped_model=None)
    shutil.copyfile(SHIPPED_MODEL, dd.previous_path)
    dd.current_path.write_bytes(b"LANTHRN\0garbage")
    dd.settings_path.write_text('{"params": {"brightn')

    def refuse(*a):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(os, "replace", refuse)
    model, source, msgs = dd.load_model()
    assert source == "previous" and any("could not be set aside" in m for m in msgs)
    assert dd.load_settings()[0] == {}
    assert any("cannot set aside" in p for p in dd.problems)


def test_boot_sweeps_temp_files_and_stale_partial_pushes(tmp_path):
    """Found: temp files (20 of 83 kills) and .part pushes stayed forever."""
    dd = DataDir(tmp_path, shipped_model=None)
    leftovers = [tmp_path / ".settings.json.abc.tmp", dd.models_dir / ".staged.lanthorn",
                 dd.presets_dir / ".x.json.q.tmp", dd.incoming_dir / ("a" * 64 + ".lanthorn")]
    stale = dd.incoming_dir / ("b" * 64 + "-100-64.part")
    fresh = dd.incoming_dir / ("c" * 64 + "-100-64.part")
    for p in leftovers + [stale, fresh]:
        p.write_bytes(b"x")
    old = time.time() - 2 * DataDir.STALE_PART_S
    os.utime(stale, (old, old))
    assert DataDir(tmp_path, shipped_model=None).leftovers_removed == 5
    assert fresh.exists()  # a push from today can still resume
    assert not any(p.exists() for p in leftovers + [stale])


# --- models: whatever the header says, fall back ----------------------------------------

@pytest.mark.parametrize("variant", ["rate negative", "rate huge", "rate as text", "rate 1e-6 Hz",
                                     "rate NaN", "window huge", "card as list",
                                     "labels too few", "unknown channel"])
def test_a_poisoned_current_model_falls_back_at_boot(tmp_path, variant):
    """Found: a verified push of a bundle with a poisoned header stopped the piece and it
    never came back (3 restarts in a row died) -- rate negative / huge / text, card as a
    list; rate 1e-6 Hz installed and silently never ran."""
    dd = DataDir(tmp_path)
    shutil.copyfile(SHIPPED_MODEL, dd.previous_path)
    dd.current_path.write_bytes(bundles.poisoned(SHIPPED_MODEL.read_bytes())[variant])
    body = open_sim_body(load_profile("sim"), seed=1, clock=SimClock())
    loop = Piece(body, storage=dd, clock=body.clock, charge_compute=False, oled_thread=False)
    loop.run(seconds=1.0)
    assert loop.model_source == "previous" and loop.inferences >= 20
    assert loop.model_info()["name"] == "temperament"
    assert not dd.current_path.exists()  # set aside: the next boot does not try it again


@pytest.mark.parametrize("variant", ["rate negative", "rate 1e-6 Hz", "card as list"])
def test_a_poisoned_push_is_refused_at_install(tmp_path, variant):
    dd = DataDir(tmp_path)
    body = open_sim_body(load_profile("sim"), seed=1, clock=SimClock())
    loop = Piece(body, storage=dd, clock=body.clock, charge_compute=False, oled_thread=False)
    bad = tmp_path / "bad.lanthorn"
    bad.write_bytes(bundles.poisoned(SHIPPED_MODEL.read_bytes())[variant])
    with pytest.raises(Exception, match="keeping the old one"):
        loop.install_model(str(bad))
    loop.run(seconds=0.5)
    assert loop.model_source == "shipped" and loop.inferences > 0


def test_a_model_failing_at_bind_time_falls_back_to_previous(tmp_path):
    """Defence in depth: anything that fails while binding a new model (not just what the
    checks foresee) falls back: previous, then shipped, then idle."""
    dd = DataDir(tmp_path)
    shutil.copyfile(SHIPPED_MODEL, dd.previous_path)
    shutil.copyfile(SHIPPED_MODEL, dd.current_path)
    body = open_sim_body(load_profile("sim"), seed=1, clock=SimClock())
    loop = Piece(body, storage=dd, clock=body.clock, charge_compute=False, oled_thread=False)

    class Exploding(FakeModel):
        @property
        def labels(self):
            raise MemoryError("Unable to allocate 6.11 TiB")

        @labels.setter
        def labels(self, value):
            pass
    loop.slots.wanted = (Exploding(), "current")
    loop.run(seconds=0.5)
    assert loop.model_source == "previous" and loop.model is not None
    assert any("falling back" in m for m in loop.messages)


def test_a_model_failing_while_running_falls_back_not_to_idle(tmp_path):
    dd = DataDir(tmp_path)

    def broken(x):
        raise RuntimeError("arena overflow")
    body = open_sim_body(load_profile("sim"), seed=1, clock=SimClock())
    loop = Piece(body, storage=dd, model=FakeModel(broken), clock=body.clock,
                      charge_compute=False, oled_thread=False)
    loop.run(seconds=1.0)
    assert loop.model_source == "shipped" and loop.inferences > 0


# --- sensors: wrong types, a replugged MPR121 ------------------------------------------

@pytest.mark.parametrize("role,value", [("light", None), ("light", np.array([1.0, 2.0])),
                                        ("light", float("nan")), ("distance", "far"),
                                        ("distance", -3.0), ("touch", None),
                                        ("touch", TouchReading(np.zeros(3, np.uint16),
                                                               np.zeros(3, np.uint16), 0))])
def test_a_driver_returning_a_wrong_type_degrades_its_part(role, value):
    """Found: light returning None or an array, distance returning a string stopped the loop."""
    body = open_sim_body(load_profile("sim"), seed=1, clock=SimClock())
    method = {"touch": "read", "distance": "read_mm", "light": "read_lux"}[role]
    setattr(getattr(body, role), method, lambda: value)
    loop = Piece(body, model=None, clock=body.clock, charge_compute=False, oled_thread=False)
    loop.run(seconds=1.0)
    assert loop.frames_shown >= 59 and loop.status()["sensors"][role].startswith("failed")


def test_a_replugged_mpr121_in_stop_mode_is_reinitialised():
    """Found: an MPR121 unplugged and plugged back (or browned out) came back in stop mode;
    reads succeeded with all-zero data, health said ok and touch stayed dead."""
    from hw_fakes import FakeMPR121, FakeSMBus

    from lanthorn.hardware.drivers.mpr121 import MPR121
    from lanthorn.hardware.interfaces import PartError
    chip = FakeMPR121()
    bus = FakeSMBus({0x5A: chip})
    touch = MPR121(bus)
    chip.set_scan(0, [600] * 12, [600] * 12)
    assert touch.read().raw.tolist() == [600] * 12
    chip.regs[:] = bytes(256)  # power-on reset: stop mode, every register zero
    chip.regs[0x5D] = 0x24
    with pytest.raises(PartError, match="stop mode"):
        touch.read()
    touch = MPR121(bus)  # what the loop's re-open does
    assert bus.register_writes(0x5A)[-1] == (0x5E, 0x80 | 12)  # running again


def test_the_loop_reopens_a_touch_part_that_reads_all_zero():
    """Any touch driver: ZERO_SCANS all-zero scans in a row mark it failed, and the retry
    re-opens it through the body (as a replug needs)."""
    body = open_sim_body(load_profile("sim"), seed=1, clock=SimClock())
    real_read = body.touch.read
    state = {"stopped": True}
    z = np.zeros(12, np.uint16)
    body.touch.read = lambda: TouchReading(z, z.copy(), 0) if state["stopped"] else real_read()

    def open_part(role):
        state["stopped"] = False  # configured again
        return body.touch
    body.open_part = open_part
    loop = Piece(body, model=None, clock=body.clock, charge_compute=False, oled_thread=False)
    loop.start()
    end = body.clock() + 0.5
    while loop.next_due() <= end:
        body.clock.set(loop.next_due())
        loop.step()
    assert "lost its configuration" in loop.status()["sensors"]["touch"]
    end = body.clock() + Piece.RETRY_S + 0.5
    while loop.next_due() <= end:
        body.clock.set(loop.next_due())
        loop.step()
    assert loop.status()["sensors"]["touch"] == "ok"


# --- the soak leak -------------------------------------------------------------------------

def test_the_endless_visitor_forgets_old_gestures():
    """Found by soak: gc-tracked objects 22 -> 40,644 in 5.5 simulated hours (~7,200 an hour):
    the simulator's endless visitor kept every gesture it ever planned."""
    from lanthorn.hardware.sim.visitor import World
    w = World(seed=3)
    kept = {}
    for t in np.arange(0.0, 6 * 3600.0, 7.0):
        w.gesture_at(float(t))
        kept[int(t // 3600)] = len(w.segments)
    horizon = World.KEEP_S + 600.0  # what it keeps, plus the tour planned ahead
    assert w.segments[0].end >= 6 * 3600.0 - horizon
    assert kept[5] < 1.5 * kept[1]  # flat, not growing by the hour
