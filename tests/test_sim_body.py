"""The simulated body behind the part interfaces: clock, script, mouse touch, faults, profile."""
from __future__ import annotations

import time

import numpy as np
import pytest

from lanthorn.hardware.body import open_body
from lanthorn.hardware.interfaces import (
    Body,
    Display,
    DistanceSensor,
    LedStrip,
    LightSensor,
    PartError,
    TouchReading,
    TouchSensor,
)
from lanthorn.hardware.profile import load_profile
from lanthorn.hardware.sim import SimClock, SimError, open_sim_body


def _run(body, seconds, dt=0.04):
    """Read every sensor at 1/dt Hz for ``seconds`` of simulated time."""
    rows = []
    for _ in range(int(round(seconds / dt))):
        r = body.touch.read()
        rows.append((body.now(), r, body.distance.read_mm(), body.light.read_lux(), body.gesture_at()))
        body.clock.advance(dt)
    return rows


def test_parts_implement_the_interfaces():
    body = open_sim_body(realtime=False)
    assert isinstance(body, Body)
    assert isinstance(body.touch, TouchSensor) and isinstance(body.distance, DistanceSensor)
    assert isinstance(body.light, LightSensor) and isinstance(body.leds, LedStrip)
    assert isinstance(body.display, Display)
    r = body.touch.read()
    assert isinstance(r, TouchReading) and r.raw.shape == (12,) and r.raw.dtype == np.uint16
    body.close()


def test_same_seed_same_live_readings():
    def readings(seed):
        return [(r.raw.tolist(), r.touched, d, lux, g) for _, r, d, lux, g
                in _run(open_sim_body(seed=seed, realtime=False), 20.0)]

    a = readings(5)
    assert a == readings(5)
    assert a != readings(6)


def test_default_tour_performs_every_gesture_with_matching_physics():
    body = open_sim_body(seed=1, realtime=False)
    rows = _run(body, 45.0)
    seen = {g for *_, g in rows}
    assert seen >= {"nobody", "approach", "tap", "double_tap", "stroke_cw", "stroke_ccw", "hold",
                    "palm", "leave"}
    for _, r, _d, _lux, g in rows:
        if r.touched:
            assert g in ("tap", "double_tap", "stroke_cw", "stroke_ccw", "hold", "palm")
    palm = max(bin(r.touched).count("1") for _, r, _, _, g in rows if g == "palm")
    assert palm >= 3
    assert any(d is not None for _, _, d, _, g in rows if g == "approach")
    assert all(d is None for _, _, d, _, _ in rows[:10])  # the room starts empty


def test_script_places_gestures_at_their_times():
    script = [(1.0, "approach", {"body_mm": 300.0}), (4.0, "tap", {"pad": 6}),
              (6.0, "leave")]
    body = open_sim_body(seed=0, script=script, realtime=False)
    assert body.gesture_at(0.5) == "nobody" and body.gesture_at(1.2) == "approach"
    assert body.gesture_at(4.3) == "tap"
    rows = _run(body, 10.0)
    touched = [(t, r.pads()) for t, r, *_ in rows if r.touched]
    assert touched and all(4.0 <= t < 5.0 and set(p) <= {5, 6, 7} for t, p in touched)
    # the visitor stands at the object between approach and leave, is gone after
    assert all(d is not None for t, _, d, _, _ in rows if 3.0 < t < 4.0)
    assert all(d is None for t, _, d, _, _ in rows if t > 9.0)
    assert body.world.script_end() < 10.0


@pytest.mark.parametrize("script,match", [
    ([(0.0, "juggle")], "unknown gesture"),
    ([(2.0, "hold", {"duration": 3.0}), (3.0, "tap")], "starts before the previous gesture"),
    ([(-1.0, "tap")], "negative time"),
    (["tap"], r"must be \(start_s, gesture\[, options\]\)"),
    ([(0.0, "tap", {"pad": 99})], "pad must be an integer"),
])
def test_bad_script_is_a_clear_error(script, match):
    with pytest.raises(SimError, match=match):
        open_sim_body(script=script, realtime=False)


def test_mouse_press_touches_the_pad_until_released():
    body = open_sim_body(seed=0, script=[], realtime=False)
    body.clock.advance(1.0)
    assert body.touch.read().touched == 0
    body.press(3)
    body.clock.advance(0.04)
    r = body.touch.read()
    assert r.pads() == [3] and r.delta()[3] > 30
    assert body.distance.read_mm() is not None  # someone is reaching to the ring
    body.press(4)
    body.clock.advance(0.04)
    assert body.touch.read().pads() == [3, 4]
    body.release(3)
    body.clock.advance(0.04)
    assert body.touch.read().pads() == [4]
    body.release()
    body.clock.advance(0.04)
    assert body.touch.read().touched == 0
    with pytest.raises(SimError, match="pad must be an integer 0..11"):
        body.press(12)


def test_failure_injection_raises_part_error_from_t():
    body = open_sim_body(realtime=False, failures={"distance": 2.0})
    body.distance.read_mm()
    body.clock.advance(2.0)
    with pytest.raises(PartError) as exc:
        body.distance.read_mm()
    assert exc.value.part == "distance" and "t=2.00" in str(exc.value)
    body.touch.read()  # the other parts carry on


def test_intermittent_fault_and_heal():
    body = open_sim_body(realtime=False)
    body.touch.fail_after(1.0, until=2.0)
    body.leds.fail_after(0.5)
    body.display.fail_after(0.5)
    body.light.fail_after(0.5)
    body.touch.read()
    body.clock.advance(1.5)
    with pytest.raises(PartError, match="touch"):
        body.touch.read()
    with pytest.raises(PartError, match="leds"):
        body.leds.show(np.zeros((24, 3), np.uint8))
    with pytest.raises(PartError, match="light"):
        body.light.read_lux()
    from PIL import Image
    with pytest.raises(PartError, match="display"):
        body.display.show(Image.new("1", (128, 64)))
    body.clock.advance(1.0)
    body.touch.read()  # fault window over
    body.leds.heal()
    body.leds.show(np.zeros((24, 3), np.uint8))


def test_failure_in_a_missing_part_is_refused():
    with pytest.raises(SimError, match="cannot inject a failure into 'motor'"):
        open_sim_body(realtime=False, failures={"motor": 1.0})


def test_leds_and_display_keep_what_they_were_sent():
    from PIL import Image, ImageDraw
    body = open_body(load_profile("sim"), sim=True, realtime=False)
    assert body.leds.n_pixels == 24 and body.leds.power_cap_ma == 1200
    frame = np.full((24, 3), 255, np.uint8)
    shown = body.leds.show(frame)
    assert np.array_equal(body.leds.last_frame, shown) and body.leds.frames_shown == 1
    assert shown.max() < 255  # brightness 0.8 and the power cap both apply
    assert body.display.image is None
    img = Image.new("1", (128, 64))
    ImageDraw.Draw(img).rectangle((10, 10, 20, 20), fill=1)
    body.display.show(img)
    assert body.display.image.size == (128, 64)
    assert body.display.image.getpixel((15, 15)) and not body.display.image.getpixel((50, 50))
    with pytest.raises(ValueError, match="image size"):
        body.display.show(Image.new("1", (64, 32)))


def test_profile_settings_reach_the_simulator():
    profile = load_profile("sim")
    body = open_body(profile, sim=True, realtime=False, seed=3)
    assert body.world.sensors.chip.touch_threshold == profile.parts["touch"].touch_threshold
    assert body.distance.max_range_mm == 1200


def test_realtime_clock_moves_by_itself():
    body = open_sim_body()
    t0 = body.now()
    time.sleep(0.02)
    assert body.now() > t0 >= 0.0


def test_sim_clock_never_goes_back():
    c = SimClock()
    c.advance(1.0)
    with pytest.raises(ValueError):
        c.advance(-0.1)
    with pytest.raises(ValueError):
        c.set(0.5)
    with pytest.raises(SimError, match="clock must be a callable"):
        open_sim_body(clock=3.0)


def test_long_live_run_stays_cheap():
    """Hours of an endless visitor: a read costs about the same as at the start."""
    body = open_sim_body(seed=0, realtime=False)

    def cost():
        t0 = time.perf_counter()
        for _ in range(50):
            body.touch.read()
            body.clock.advance(0.04)
        return time.perf_counter() - t0

    early = min(cost() for _ in range(3))
    body.clock.set(4 * 3600.0)
    late = min(cost() for _ in range(3))
    print(f"50 reads: {early * 1e3:.1f} ms at start, {late * 1e3:.1f} ms after 4 h")
    assert late < 20 * early + 0.05  # generous: catches only a per-read cost growing with time


def test_hand_changes_from_another_thread_are_safe():
    """The window's thread moves the finger while the device loop's thread reads the pads."""
    import threading
    body = open_sim_body(realtime=False, script=[])
    stop = threading.Event()
    errors = []

    def mouse():
        k = 0
        while not stop.is_set():
            body.touch_at(k * 0.05)
            body.press(k % 12)
            body.release(k % 12)
            if k % 7 == 0:
                body.touch_at(None)
            k += 1
            time.sleep(0)  # let the reader run

    th = threading.Thread(target=mouse)
    th.start()
    try:
        for _ in range(400):
            try:
                body.touch.read()
                body.distance.read_mm()
            except Exception as exc:  # any race would surface here
                errors.append(exc)
                break
            body.clock.advance(0.01)
    finally:
        stop.set()
        th.join()
    assert not errors


def test_touch_at_between_pads_touches_both():
    body = open_sim_body(realtime=False, script=[])
    body.touch_at(3.5 * np.pi / 6)  # halfway between pads 3 and 4
    body.clock.advance(0.04)
    r = body.touch.read()
    assert r.pads() == [3, 4]
    assert abs(float(r.delta()[3]) - float(r.delta()[4])) < 10
    body.touch_at(None)
    body.clock.advance(0.04)
    assert body.touch.read().touched == 0


def test_parts_the_profile_leaves_out_are_none(tmp_path):
    from lanthorn.hardware.profile import PROFILE_DIR
    text = (PROFILE_DIR / "sim.toml").read_text()
    text = text.replace('required = ["touch", "distance", "light", "leds", "display"]',
                        'required = ["touch", "leds"]')
    text = text[:text.index("[parts.display]")]
    (tmp_path / "nodisplay.toml").write_text(text)
    body = open_body(load_profile(str(tmp_path / "nodisplay.toml")), sim=True, realtime=False)
    assert body.display is None and set(body.parts()) == {"touch", "distance", "light", "leds"}
    with pytest.raises(SimError, match="cannot inject a failure into 'display'"):
        open_body(load_profile(str(tmp_path / "nodisplay.toml")), sim=True, realtime=False,
                  failures={"display": 1.0})
