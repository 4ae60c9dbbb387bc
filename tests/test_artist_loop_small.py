"""The issue's "smaller" items of the artist's loop, each with its check."""
import subprocess
import sys
from pathlib import Path

import pytest
from console_fakes import FakeApp, fake_loader
from pty_link import PtyLink
from test_console import Terminal

from lanthorn.cli import main
from lanthorn.device.console.exhibition_lock import ExhibitionLock as PinLock
from lanthorn.device.console.server import ConsoleServer
from lanthorn.device.piece.frames import CHANNELS
from lanthorn.device.piece.params import ParamError, ParamStore
from lanthorn.device.storage.storage import DataDir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def rig(tmp_path):
    link = PtyLink()
    app = FakeApp(tmp_path / "data")
    term = Terminal(link.host)
    server = ConsoleServer(link.device, app).start()
    term.line()                                   # the "no usable model" notice
    yield term, app, server, link
    term.ser.close()
    server.stop()
    link.close()


def test_unlock_never_says_try_again_in_0_s(tmp_path):
    now = [100.0]
    lock = PinLock(DataDir(tmp_path / "d", loader=fake_loader, shipped_model=None), clock=lambda: now[0])
    lock.lock("1234")
    with pytest.raises(Exception, match=r"wrong PIN; next attempt allowed in 1 s"):
        lock.unlock("9999")
    now[0] += 0.7                                  # 0.3 s left: round up, not down to 0
    with pytest.raises(Exception, match=r"try again in 1 s$"):
        lock.unlock("1234")
    now[0] += 0.4
    lock.unlock("1234")
    assert not lock.locked


def test_parameter_names_are_case_insensitive_like_commands(rig):
    store = ParamStore()
    assert store.set_text("Brightness", "40") == 40 and store.get("BRIGHTNESS") == 40
    with pytest.raises(ParamError, match="unknown parameter 'brightnes'"):
        store.get("brightnes")
    term, *_ = rig
    assert term.answer("SET Brightness 41") == ["OK brightness = 41 %"]
    assert term.answer("get BRIGHTNESS") == ["OK 41 %"]


def test_power_cap_above_the_profile_says_which_one_applies():
    from lanthorn.device.piece.piece import Piece
    from lanthorn.hardware.profile import load_profile
    from lanthorn.hardware.sim import open_sim_body
    body = open_sim_body(load_profile("sim"), realtime=False)
    try:
        loop = Piece(body, model=None, clock=body.clock, oled_thread=False)
        cap = loop.rendering.led_cap
        assert cap is not None
        assert "caps the LEDs at" in loop.param_note("power_cap_ma", cap + 3000)
        assert loop.param_note("power_cap_ma", cap - 1) is None
        assert loop.param_note("brightness", 5000) is None
    finally:
        body.close()


def test_console_set_power_cap_reports_the_profile_cap(rig):
    term, app, *_ = rig
    app.param_note = lambda name, value: ("the hardware profile caps the LEDs at 1200 mA, so "
                                          "1200 mA applies") if name == "power_cap_ma" and value > 1200 else None
    assert term.answer("set power_cap_ma 5000") == [
        "OK power_cap_ma = 5000 mA (the hardware profile caps the LEDs at 1200 mA, so 1200 mA applies)"]
    assert term.answer("set power_cap_ma 800") == ["OK power_cap_ma = 800 mA"]


def test_pushing_a_float_onnx_points_to_quantize(tmp_path, capsys):
    import onnx

    from lanthorn.quantize import tiny_models
    onnx.save(tiny_models.cnn1d(seed=1), str(tmp_path / "model.onnx"))
    assert main(["push", str(tmp_path / "model.onnx"), "--port", "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert "lanthorn quantize MODEL.onnx" in err and len(err.strip().splitlines()) == 1


def test_repushing_the_running_model_keeps_the_rollback_slot(tmp_path):
    from test_console_e2e import SHIPPED, variant
    if not SHIPPED.exists():
        pytest.skip("the shipped bundle is not built")
    storage = DataDir(tmp_path / "d", shipped_model=None)
    a = variant(tmp_path / "a.lanthorn", "first")
    b = variant(tmp_path / "b.lanthorn", "second")
    storage.install_model(a)
    storage.install_model(b)
    prev = storage.previous_path.read_bytes()
    assert prev == a.read_bytes()
    storage.install_model(b)                        # the same bundle again
    assert storage.previous_path.read_bytes() == prev   # still 'first': rollback still works
    assert storage.current_path.read_bytes() == b.read_bytes()


def test_run_without_touches_says_so_not_none(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lanthorn", "run", "--sim", "--seconds", "0.5",
                        "--data-dir", str(tmp_path / "d")], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "None" not in r.stderr and ("touch-to-light p50" in r.stderr or "no touches" in r.stderr)


def test_record_keeps_takes_in_dataset_and_fetch_pulls_them(rig, tmp_path, capsys):
    term, app, server, link = rig
    start, done = term.answer("record tap 1")
    assert start.startswith("NOTE recording tap") and done.startswith("OK recorded 25 frames of "
                                                                      "tap into dataset/recordings/")
    assert not (tmp_path / "data" / "recordings" / "recordings").exists()
    listing = term.answer("recordings")
    assert listing[-1] == "OK 1 take kept on the device" and "tap" in listing[0]
    term.ser.close()                               # one program on the port at a time
    out = tmp_path / "mine"
    assert main(["fetch", link.host, "--data", str(out), "--consent", "verbal"]) == 0
    text = capsys.readouterr().out
    assert "fetched 1 take" in text
    from lanthorn.device.storage.dataset import load_dataset
    ds = load_dataset(out)
    (rec,) = ds.recordings
    assert rec.frames.shape == (25, len(CHANNELS))
    assert ds.sources["device-recordings"].consent == "verbal"
    assert main(["fetch", link.host, "--data", str(out)]) == 0   # again: nothing new
    assert "fetched 0 takes" in capsys.readouterr().out and len(load_dataset(out).recordings) == 1
    term.ser.open()


def test_record_progress_has_no_carriage_returns_in_a_log(monkeypatch):
    """`record` progress is one counter on a terminal, plain lines otherwise (checked on
    the code path: the pty end-to-end test runs it with stderr a pipe)."""
    import inspect

    from lanthorn.commands import record as record_cmd
    src = inspect.getsource(record_cmd.run)
    assert "isatty" in src and "on_rows=(" in src


def test_wording_plurals_and_same_size():
    from lanthorn.quantize.quantizer import _compared
    assert _compared(1000, 1000) == "the same size"
    assert _compared(1030, 1000) == "about the same size"
    assert _compared(4000, 1000) == "4.0x smaller"
    from lanthorn.words import plural
    assert plural(1, "session") == "1 session" and plural(3, "session") == "3 sessions"
