"""The simulated parts report what the real drivers report for the same physics: a fake
chip that feels the scene, read through the real driver, agrees with the simulated part
within the simulated noise (same axes, signs, units, ranges and clipping)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from channel_specs import spec
from hw_fakes import FakeSMBus
from hw_fakes_channels import FakeADS1115, FakeLSM6DS3, FakeMPU6050

from lanthorn.hardware import channel_parts as CP
from lanthorn.hardware.drivers.ads1115 import ADS1115
from lanthorn.hardware.drivers.lsm6ds3 import LSM6DS3
from lanthorn.hardware.drivers.mpu6050 import MPU6050
from lanthorn.hardware.sim.motion import Scene


def busy_scene(clock):
    s = Scene(now=clock, seed=2)
    s.tilt(math.radians(25), "x", at=0.5)
    s.tilt(math.radians(-15), "y", at=1.0)
    s.lift(0.2, at=1.5)
    s.shake(1.2, at=2.5)
    s.knock(2.5, at=3.8)
    return s


@pytest.mark.parametrize("type_name, chip_class, driver, address", [
    ("mpu6050", FakeMPU6050, MPU6050, 0x68), ("lsm6ds3", FakeLSM6DS3, LSM6DS3, 0x6A)])
def test_the_sim_imu_and_the_real_driver_on_a_chip_feeling_the_scene_agree(type_name, chip_class,
                                                                           driver, address):
    t = [0.0]
    scene = busy_scene(lambda: t[0])
    s = spec(type_name, "imu", accel_range_g=2, gyro_range_dps=250)
    sim = CP.open_sim(s, scene)
    chip = chip_class()
    real = driver(FakeSMBus({address: chip}), address, 2, 250, sleep=lambda _: None)
    diffs = []
    for t[0] in np.arange(0.0, 4.2, 0.01):
        chip.feel(scene.specific_force(t[0]), scene.rotation_rate(t[0]))
        diffs.append(np.subtract(sim.read(), real.read()))
    d = np.abs(np.array(diffs))
    assert d[:, :3].max() < 0.12  # offsets (~0.02 g each) + noise + tremor, never a sign or axis
    assert d[:, 3:].max() < 5.0  # gyro offsets ~1 deg/s, noise 0.1
    assert np.median(d[:, :3]) < 0.04


def test_the_sim_adc_and_the_real_driver_agree_on_every_kind():
    t = [0.0]
    scene = busy_scene(lambda: t[0])
    scene.approach(at=0.2)
    scene.turn_knob(0.75, at=0.5)
    scene.make_noise(80, at=1.0)
    kinds = ["potentiometer", "ldr", "piezo", "envelope"]
    s = spec("ads1115", "adc", inputs=["a", "b", "c", "d"], kinds=kinds, gain=[4.096, 4.096, 2.048, 2.048])
    sim = CP.open_sim(s, scene)
    chip = FakeADS1115(busy_reads=0)  # on the real clock: see the fake
    real = ADS1115(FakeSMBus({0x48: chip}), 0x48, [(i, fs) for i, _, _, fs in CP.ads_inputs(s.options)],
                   sleep=lambda _: None)
    for t[0] in (0.1, 1.2, 3.81, 4.0):
        chip.volts = [sim.volts(k, t[0]) for k in kinds]
        expected = [real.convert(i) for i in range(4)]
        assert sim.read() == pytest.approx(expected, abs=0.006)
