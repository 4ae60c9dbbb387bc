"""The simulated scene and channel parts give physically plausible, seeded readings."""
from __future__ import annotations

import math

import numpy as np
import pytest
from channel_specs import spec

from lanthorn.hardware import channel_parts as CP
from lanthorn.hardware.sim.motion import Scene


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def rig(seed=0, **tables):
    """A scene on a clock and one sim part per {name: (type, table)}."""
    clock = Clock()
    scene = Scene(now=clock, seed=seed)
    parts = {name: CP.open_sim(spec(t, name, **table), scene) for name, (t, table) in tables.items()}
    return clock, scene, parts


def trace(clock, part, t0, t1, hz=100.0):
    rows = []
    for t in np.arange(t0, t1, 1.0 / hz):
        clock.t = float(t)
        rows.append(part.read())
    return np.array(rows)


def test_at_rest_the_accelerometer_reads_one_g_up_and_the_gyro_nearly_nothing():
    clock, scene, p = rig(imu=("mpu6050", {}))
    r = trace(clock, p["imu"], 0, 2)
    mag = np.linalg.norm(r[:, :3], axis=1)
    assert abs(mag.mean() - 1.0) < 0.05 and mag.std() < 0.01
    assert r[:, 2].mean() > 0.95
    assert np.abs(r[:, 3:].mean(axis=0)).max() < 4.0 and r[:, 3:].std(axis=0).max() < 0.5


def test_a_tilt_turns_gravity_and_the_gyro_sees_the_rate_of_turn():
    clock, scene, p = rig(imu=("lsm6ds3", {}))
    scene.tilt(math.radians(30), axis="x", duration=0.5, at=1.0)
    r = trace(clock, p["imu"], 0, 3)
    before, after = r[:90], r[-50:]
    assert abs(after[:, 1].mean() - before[:, 1].mean() - math.sin(math.radians(30))) < 0.05
    assert abs(after[:, 2].mean() - math.cos(math.radians(30)) - (before[:, 2].mean() - 1)) < 0.05
    # the gyro integrates to the 30 degrees turned (minus its constant offset)
    gx = r[:, 3] - before[:, 3].mean()
    assert abs(gx.sum() / 100.0 - 30.0) < 2.0 and gx.max() > 80  # peak ~ pi/2 * 60 deg/s


def test_a_lift_pushes_then_lightens_and_a_shake_saturates_nothing_at_8g():
    clock, scene, p = rig(imu=("mpu6050", {"accel_range_g": 8}))
    scene.lift(0.2, duration=0.6, at=1.0)
    scene.shake(amplitude=1.5, duration=1.0, at=3.0)
    r = trace(clock, p["imu"], 0, 4.5)
    az = r[:, 2]
    assert az[100:130].max() > 1.2 and az[131:160].min() < 0.8  # up-thrust, then braking
    shake = r[300:400, 0]
    assert shake.max() > 1.0 and shake.min() < -1.0 and np.abs(r[:, :3]).max() < 8


def test_a_knock_is_a_spike_that_clips_at_the_range():
    clock, scene, p = rig(imu=("mpu6050", {"accel_range_g": 2}))
    scene.knock(strength=5.0, at=1.0)
    r = trace(clock, p["imu"], 0, 2)
    assert r[100, 2] == pytest.approx(2.0 - 2.0 / 32768)  # the register's largest value
    assert np.abs(r[110:, 2] - 1.0).max() < 0.1  # and it is over within 0.1 s


def test_the_adc_follows_the_knob_the_light_and_the_knocks():
    clock, scene, p = rig(adc=("ads1115", {"inputs": ["knob", "ldr", "piezo", "mic"],
                                           "kinds": ["potentiometer", "ldr", "piezo", "envelope"]}))
    clock.t = 0.5
    knob0, ldr0, piezo0, mic0 = p["adc"].read()
    scene.turn_knob(0.9, duration=0.5, at=1.0)
    scene.approach(at=1.0)
    scene.knock(3.0, at=2.0)
    clock.t = 2.01
    knob1, ldr1, piezo1, _ = p["adc"].read()
    assert knob0 == pytest.approx(0.2 * 3.3, abs=0.01) and knob1 == pytest.approx(0.9 * 3.3, abs=0.01)
    assert ldr1 < ldr0 - 0.1  # a visitor's shadow on the LDR
    assert piezo0 < 0.01 and piezo1 > 1.0
    scene.make_noise(75, at=3.0)
    clock.t = 4.0
    assert p["adc"].read()[3] > mic0 + 0.1


def test_pir_holds_after_the_visitor_leaves_and_the_button_is_debounced():
    clock, scene, p = rig(pir=("pir", {"pin": 23, "hold_s": 2.0}), btn=("button", {"pin": 17}))
    scene.approach(at=1.0)
    scene.leave(at=3.0)
    scene.press(at=1.0)
    scene.release(at=1.5)
    pir, btn = trace(clock, p["pir"], 0, 6, hz=1000)[:, 0], trace(clock, p["btn"], 0, 6, hz=1000)[:, 0]
    on = np.flatnonzero(pir)
    assert on[0] == 1000 and 4990 <= on[-1] <= 5000
    edges = np.flatnonzero(np.diff(btn))
    assert len(edges) == 2  # one press, one release, despite the contact's chatter
    assert 1000 + 19 <= edges[0] <= 1000 + 25 and 1500 + 19 <= edges[1] <= 1500 + 25


def test_sound_level_in_dbfs():
    clock, scene, p = rig(mic=("sound_level", {}))
    clock.t = 0.5
    quiet = p["mic"].read()[0]
    scene.make_noise(94.0, duration=0.1, at=1.0)
    clock.t = 2.0
    assert quiet == pytest.approx(38 - 120, abs=2) and p["mic"].read()[0] == pytest.approx(-26, abs=2)


def test_same_seed_same_readings_other_seed_other_noise():
    runs = []
    for seed in (5, 5, 6):
        clock, scene, p = rig(seed, imu=("mpu6050", {}))
        scene.shake(at=0.2)
        runs.append(trace(clock, p["imu"], 0, 1))
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_actions_out_of_time_order_are_refused():
    scene = Scene()
    scene.tilt(0.2, at=2.0)
    with pytest.raises(ValueError, match="time order"):
        scene.tilt(0.1, at=1.0)
    with pytest.raises(ValueError, match="axis"):
        scene.tilt(0.1, axis="z", at=3.0)


def test_sim_channel_parts_fail_on_demand():
    from lanthorn.hardware.interfaces import PartError
    clock, scene, p = rig(imu=("mpu6050", {}))
    p["imu"].fail_after(1.0, until=2.0)
    clock.t = 1.5
    with pytest.raises(PartError, match="imu"):
        p["imu"].read()
    clock.t = 2.5
    assert len(p["imu"].read()) == 6
