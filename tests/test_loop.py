"""The device loop on the simulated body: rates, touch-to-light, degradation, models, params."""
from __future__ import annotations

import gc
import shutil
import tracemalloc

import numpy as np
import pytest
from loop_helpers import FakeModel, build_zoo_bundle, oracle_model, quiet_body

from lanthorn.device.piece.frames import CHANNELS, LABELS, N_CHANNELS
from lanthorn.device.piece.inference import ModelMismatch
from lanthorn.device.piece.params import ParamStore
from lanthorn.device.piece.piece import Piece
from lanthorn.device.storage.storage import DataDir
from lanthorn.errors import UserError
from lanthorn.hardware.profile import load_profile
from lanthorn.hardware.sim import SimClock, open_sim_body

EMPTY = [(30.0, "approach")]  # nobody there for the first 30 s


@pytest.fixture(scope="module")
def zoo_bundle(tmp_path_factory):
    return build_zoo_bundle(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def zoo_bundle_b(tmp_path_factory):
    return build_zoo_bundle(tmp_path_factory.mktemp("zoo_b"), name="zoo-b", seed=5)


def sim(script=EMPTY, failures=None, seed=1):
    clock = SimClock()
    body = open_sim_body(load_profile("sim"), seed=seed, script=script, clock=clock,
                         failures=failures)
    return body, clock


def make_loop(body, clock, model=None, **kw):
    kw.setdefault("charge_compute", False)
    kw.setdefault("oled_thread", False)
    return Piece(body, model=model, clock=clock, **kw)


def run_for(loop, seconds):
    """Step a started loop for ``seconds`` of simulated time."""
    end = loop.clock() + seconds
    while loop.next_due() <= end:
        if loop.next_due() > loop.clock():
            loop.clock.set(loop.next_due())
        loop.step()


def glow_at(frame, pixel):
    b = frame.astype(int).sum(axis=1)
    return b[pixel], np.median(b)


# --- rates and timing ---------------------------------------------------------------------

def test_rates_on_the_simulated_clock(zoo_bundle):
    from lanthorn.device.engine.runtime import load
    body, clock = sim()
    loop = make_loop(body, clock, load(zoo_bundle))
    loop.run(seconds=4.0)
    s = loop.summary()
    assert 239 <= s["frames"] <= 241  # 60 fps
    assert 99 <= s["inferences"] <= 100  # 25 Hz
    assert s["sample_ms"]["n"] in (400, 401)  # 100 Hz
    assert body.leds.frames_shown >= 240  # shown, plus "off" at shutdown
    assert body.leds.last_frame.max() == 0  # clean shutdown: LEDs off
    assert gc.isenabled()  # the loop collects garbage in idle time only while it runs
    st = loop.status()
    assert st["fps"] == pytest.approx(60.0, abs=0.1)
    assert st["frame_ms_p99"] is not None and st["infer_ms"] is not None
    assert st["model"] == "zoo-cnn1d" and st["sensors"]["touch"] == "ok"
    # the file's sha256 (what sha256sum prints) and the internal digest, each named
    import hashlib
    from pathlib import Path
    assert st["file_sha256"] == hashlib.sha256(Path(zoo_bundle).read_bytes()).hexdigest()
    assert st["internal_digest"] == st["sha256"] != st["file_sha256"]
    info = loop.model_info()
    assert (info["file_sha256"], info["internal_digest"]) == (st["file_sha256"], st["sha256"])


def test_touch_lights_the_ring_on_the_next_frame():
    body, clock = sim()
    loop = make_loop(body, clock, oracle_model(body))
    loop.start()
    run_for(loop, 1.0)
    before = body.leds.last_frame.copy()
    body.press(3)  # pad 3 = pixel 6 of 24
    run_for(loop, 1 / 60)
    lit, rest = glow_at(body.leds.last_frame, 6)
    assert lit > 2 * rest and lit > glow_at(before, 6)[0] * 2
    lat = loop.latency_ms.values()
    assert lat.size == 1 and 0 <= lat[0] <= 1000 / 60 + 1000 / 100 + 1e-6
    body.release()


def test_charging_compute_makes_latency_include_work():
    body, clock = sim(script=[(0.5, "tap"), (2.0, "tap"), (3.5, "tap")])
    loop = Piece(body, model=oracle_model(body), clock=clock, charge_compute=True)
    loop.run(seconds=5.0)
    lat = loop.latency_ms.values()
    assert lat.size >= 3 and (lat > 0).all()
    assert loop.summary()["cpu_share"] > 0


def test_no_allocation_in_steady_state(zoo_bundle):
    from lanthorn.device.engine.runtime import load
    body, clock = sim(script=None)  # the endless touring visitor
    loop = make_loop(body, clock, load(zoo_bundle))
    loop.start()
    run_for(loop, 3.0)
    tracemalloc.start()
    try:
        snap0 = tracemalloc.take_snapshot()
        run_for(loop, 4.0)
        snap1 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
    # 240 frames, 400 samples, 100 inferences: per-frame allocations would be many KiB
    assert grown < 16 * 1024, [str(s) for s in snap1.compare_to(snap0, "lineno")[:5]]


@pytest.mark.parametrize("n_pixels", [24, 2000])
def test_each_wake_allocates_only_small_objects(n_pixels):
    """What the loop itself allocates per wake-up (parts and model that allocate nothing):
    a few small numpy view/scalar objects, never a buffer (the same for a 2000-pixel ring)."""
    probs = np.full(len(LABELS), 1 / len(LABELS), np.float32)
    clock = SimClock()
    loop = Piece(quiet_body(n_pixels), model=FakeModel(lambda x: probs), clock=clock,
                      charge_compute=False)
    loop.start()
    run_for(loop, 5.0)
    worst = 0
    tracemalloc.start()
    try:
        for _ in range(600):
            clock.set(loop.next_due())
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            loop.step()
            worst = max(worst, tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    assert worst < 4096, worst


# --- behaviour through the loop -------------------------------------------------------------

def test_visitor_moves_the_mood_and_the_timeline_tells():
    script = [(1.0, "approach"), (3.0, "stroke_cw"), (5.0, "stroke_cw"), (7.0, "stroke_ccw")]
    body, clock = sim(script=script)
    loop = make_loop(body, clock, oracle_model(body))
    loop.start()
    run_for(loop, 9.0)
    kinds = [(e.kind, e.text) for e in loop.timeline]
    assert ("gesture", "approach") in kinds and ("gesture", "stroke_cw") in kinds
    assert ("mood", "delighted") in kinds
    assert any(k == "phrase" for k, _ in kinds)
    assert body.display.image.getbbox()  # the phrase is on the OLED
    loop.shutdown()
    assert not body.display.image.getbbox() and body.leds.last_frame.max() == 0


def test_model_reads_its_own_channels_in_its_order():
    chans = ("light", "distance") + tuple(f"pad{i}" for i in range(12))
    model = FakeModel(channels=chans)
    body, clock = sim()
    loop = make_loop(body, clock, model)
    loop.run(seconds=2.5)
    x = model.seen
    assert x.shape == (50, 14)
    assert np.all(x[-5:, 0] > 0.1)  # the light channel (indoor lux) came first
    assert np.all(x[-5:, 1] == 0.0)  # nobody in range


def test_incompatible_model_runs_idle_instead():
    body, clock = sim()
    loop = make_loop(body, clock, FakeModel(channels=("pad0", "humidity")))
    assert loop.model is None and any("humidity" in m for m in loop.messages)
    loop.run(seconds=1.0)
    assert loop.frames_shown in (60, 61)


# --- degradation --------------------------------------------------------------------------

def test_failed_sensor_is_reported_imputed_and_retried():
    body, clock = sim(script=None)
    body.touch.fail_after(1.0, until=4.0)
    body.distance.fail_after(0.5)
    loop = make_loop(body, clock, oracle_model(body))
    loop.start()
    run_for(loop, 2.0)
    st = loop.status()
    assert st["sensors"]["touch"].startswith("failed: ") and "touch" in st["sensors"]["touch"]
    assert st["sensors"]["distance"].startswith("failed: ")
    assert loop.latest()["values"]["pad0"] == 0.0  # imputed: no touch
    frames = loop.frames_shown
    run_for(loop, 8.0)  # the touch sensor heals at 4 s and is retried every 5 s
    assert abs(loop.frames_shown - frames - 480) <= 1  # never stopped
    st = loop.status()
    assert st["sensors"]["touch"] == "ok" and st["sensors"]["distance"].startswith("failed")
    assert any("touch works again" in m for m in st["messages"])


def test_dead_leds_and_display_do_not_stop_the_loop():
    body, clock = sim(failures={"leds": 0.5, "display": 0.0})
    loop = make_loop(body, clock, oracle_model(body))
    loop.run(seconds=2.0)
    st = loop.status()
    assert st["sensors"]["leds"].startswith("failed") and st["sensors"]["display"].startswith("failed")
    assert loop.inferences >= 49 and loop.frames_shown in (120, 121)


def test_part_that_failed_to_open_is_reported():
    body, clock = sim()
    body.light = None
    body.open_errors["light"] = "light: no answer at 0x23"
    loop = make_loop(body, clock)
    loop.run(seconds=0.5)
    assert loop.status()["sensors"]["light"] == "failed: light: no answer at 0x23"


def test_no_model_runs_the_idle_animation():
    body, clock = sim()
    loop = make_loop(body, clock, None)
    loop.start()
    run_for(loop, 2.0)
    assert body.leds.last_frame.max() > 0  # breathing
    assert loop.status()["model"] is None and loop.model_info()["name"] is None
    assert np.array(body.display.image, bool)[53:].any()  # "no model" footer


def test_model_failing_while_running_is_dropped():
    def broken(x):
        raise RuntimeError("arena overflow")
    body, clock = sim()
    loop = make_loop(body, clock, FakeModel(broken))
    loop.run(seconds=1.0)
    assert loop.model is None and loop.frames_shown == 60
    assert any("arena overflow" in m for m in loop.messages)


# --- storage and model swap ---------------------------------------------------------------

def test_storage_falls_back_to_previous(tmp_path, zoo_bundle):
    data = DataDir(tmp_path / "data", shipped_model=None)
    shutil.copy(zoo_bundle, data.previous_path)
    data.current_path.write_bytes(b"not a bundle")
    body, clock = sim()
    loop = Piece(body, storage=data, clock=clock, charge_compute=False, oled_thread=False)
    assert loop.model_source == "previous" and loop.status()["model"] == "zoo-cnn1d"
    assert any("set aside" in m for m in loop.messages)
    assert list(data.rejected_dir.glob("*current.lanthorn"))


def test_install_model_swaps_on_next_frame_and_keeps_old_on_error(tmp_path, zoo_bundle, zoo_bundle_b):
    data = DataDir(tmp_path / "data", shipped_model=None)
    data.install_model(zoo_bundle)
    body, clock = sim()
    loop = Piece(body, storage=data, clock=clock, charge_compute=False, oled_thread=False)
    loop.start()
    run_for(loop, 0.5)
    info = loop.install_model(str(zoo_bundle_b))
    assert info["name"] == "zoo-b" and loop.model_info()["name"] == "zoo-b"
    run_for(loop, 0.1)
    assert loop.status()["model"] == "zoo-b" and loop.model_source == "current"
    assert data.previous_path.read_bytes() == zoo_bundle.read_bytes()

    bad = tmp_path / "bad.lanthorn"
    bad.write_bytes(zoo_bundle_b.read_bytes()[:-100])
    with pytest.raises(UserError, match="keeping the old one"):
        loop.install_model(str(bad))
    with pytest.raises(UserError, match="keeping the old one"):
        loop.install_model(str(tmp_path / "missing.lanthorn"))
    run_for(loop, 0.1)
    assert loop.status()["model"] == "zoo-b"
    assert data.current_path.read_bytes() == zoo_bundle_b.read_bytes()


def test_install_model_refuses_a_model_for_other_inputs(tmp_path):
    from lanthorn.device.engine.bundle import write_bundle
    from lanthorn.quantize.qdq_import import bundle_from_qdq
    from lanthorn.quantize.tiny_models import build
    _, q = build("mlp_25k", tmp_path)
    path = tmp_path / "mlp.lanthorn"
    write_bundle(bundle_from_qdq(q), path)
    body, clock = sim()
    loop = make_loop(body, clock, FakeModel(name="old"))
    with pytest.raises(ModelMismatch, match="does not fit this object"):
        loop.install_model(str(path))
    assert loop.model_info()["name"] == "old"


# --- params -------------------------------------------------------------------------------

def test_param_changes_apply_on_the_next_frame():
    body, clock = sim()
    params = ParamStore()
    loop = Piece(body, params=params, model=oracle_model(body), clock=clock,
                      charge_compute=False, oled_thread=False)
    loop.start()
    run_for(loop, 1.0)
    assert body.leds.last_frame.max() > 0
    params.set_text("brightness", "0")
    run_for(loop, 1 / 60)
    assert body.leds.last_frame.max() == 0
    params.set_text("brightness", "100")
    params.set_text("power_cap_ma", "100")  # the cap wins over brightness
    run_for(loop, 1 / 60)
    assert body.leds.power_cap_ma == 100


def test_quiet_hours_by_the_device_clock():
    body, clock = sim()
    params = ParamStore(values={"quiet_hours": "22:00-08:00", "quiet_mode": "sleep"})
    minute = [12 * 60]
    loop = Piece(body, params=params, model=oracle_model(body), clock=clock,
                      charge_compute=False, oled_thread=False, minute_of_day=lambda: minute[0])
    loop.start()
    run_for(loop, 1.5)
    assert body.leds.last_frame.max() > 0 and not loop.status()["quiet"]
    minute[0] = 23 * 60
    run_for(loop, 1.5)
    assert loop.status()["quiet"] and body.leds.last_frame.max() == 0
    assert not body.display.image.getbbox()  # sleeping: display dark too


# --- console-facing views -----------------------------------------------------------------

def test_latest_and_frames_since():
    body, clock = sim(script=[(0.2, "hold", {"pad": 2})])
    loop = make_loop(body, clock, oracle_model(body))
    loop.start()
    run_for(loop, 1.0)
    latest = loop.latest()
    assert set(latest["values"]) == set(CHANNELS) and set(latest["probs"]) == set(LABELS)
    assert latest["values"]["pad2"] > 0.2 and latest["gesture"] == "hold"
    frames, t = loop.frames_since(0.0)
    assert len(frames) in (24, 25) and frames[0].shape == (N_CHANNELS,)
    run_for(loop, 1.0)
    more, t2 = loop.frames_since(t)
    assert len(more) == 25 and t2 > t


def test_watchdog_is_fed_from_the_loop_thread():
    body, clock = sim()
    fed = []
    loop = make_loop(body, clock, None, watchdog=lambda: fed.append(clock()))
    loop.run(seconds=5.0)
    assert len(fed) == 3  # at 0, 2 and 4 s


def test_sensitivities_scale_what_the_model_sees():
    def pad2(**values):
        body, clock = sim(script=[(0.2, "hold", {"pad": 2})])
        loop = Piece(body, params=ParamStore(values=values), model=oracle_model(body),
                          clock=clock, charge_compute=False, oled_thread=False)
        loop.start()
        run_for(loop, 1.0)
        v = loop.latest()["values"]
        return v["pad2"], v["distance"]
    (p1, d1), (p2, d2) = pad2(), pad2(touch_sensitivity=2.0, approach_sensitivity=1.5)
    assert p2 == pytest.approx(2 * p1, rel=0.02)
    assert d2 == pytest.approx(min(1.5 * d1, 1.0), rel=0.02)


def test_a_driver_bug_degrades_the_part_not_the_piece():
    body = quiet_body()

    def broken():
        raise ValueError("unpack requires a buffer of 2 bytes")
    body.touch.read = broken
    clock = SimClock()
    loop = Piece(body, model=FakeModel(), clock=clock, charge_compute=False)
    loop.run(seconds=1.0)
    assert loop.frames_shown >= 60
    assert loop.status()["sensors"]["touch"] == \
        "failed: touch: ValueError: unpack requires a buffer of 2 bytes"


def test_the_models_card_brings_its_own_temperament():
    body, clock = sim()
    eye = np.eye(2, dtype=np.float32)
    model = FakeModel(lambda x: eye[1], labels=("nobody", "wave"), name="waver")
    model.card["temperament"] = {"gesture_moods": {"wave": {"shy": 1.0}, "bad": {"x": 1}}}
    loop = make_loop(body, clock, model)
    loop.run(seconds=3.0)
    assert loop.mood.mood == "shy"
    assert any("unknown mood 'x'" in m for m in loop.messages)


def test_display_that_comes_back_is_used_again():
    body, clock = sim()
    body.display.fail_after(0.0, until=2.0)
    loop = make_loop(body, clock, oracle_model(body))
    loop.start()
    run_for(loop, 1.0)
    assert loop.status()["sensors"]["display"].startswith("failed")
    run_for(loop, 7.0)  # healed at 2 s, retried 5 s after the failure
    assert loop.status()["sensors"]["display"] == "ok" and body.display.image.getbbox()


def test_frames_since_across_the_history_ring_wrapping():
    class ShortMemory(Piece):
        HISTORY_S = 2.0  # 50 frames at 25 Hz
    body, clock = sim(script=None)
    loop = ShortMemory(body, model=oracle_model(body), clock=clock, charge_compute=False,
                       oled_thread=False)
    loop.start()
    run_for(loop, 5.0)
    frames, newest = loop.frames_since(-np.inf)
    assert len(frames) == 50 and newest == pytest.approx(5.0, abs=0.05)
    hist_t = loop.inference.history.times
    times = hist_t[np.argsort(hist_t)]
    assert np.all(np.diff(times) > 0) and times[0] == pytest.approx(3.04, abs=0.05)
    later, t2 = loop.frames_since(4.5)
    assert len(later) in (12, 13) and t2 == newest
    np.testing.assert_array_equal(later[-1], frames[-1])
