"""The new parts under the device's part health, as the MPR121 is: a replugged or unplugged
chip fails its part (imputed meanwhile, said once), and at the retry the real body re-opens
it, which configures the chip again."""
from __future__ import annotations

from types import MappingProxyType

import pytest
from channel_specs import spec
from hw_fakes import FakeSMBus
from hw_fakes_channels import FakeADS1115, FakeLSM6DS3, FakeMPU6050

from lanthorn.device.piece.part_health import PartHealth
from lanthorn.hardware.body import RealBody, RealParts
from lanthorn.hardware.gpio import MockPinFactory
from lanthorn.hardware.profile import Profile

IMPUTED = (0.0,) * 6


def body_with(bus, **specs):
    profile = Profile(name="t", board="pi5", backend="real", source="t.toml", i2c_bus=1,
                      spi_bus=0, spi_device=0, supply_ma=None, led_cap_ma=None, required=(),
                      parts=MappingProxyType(specs))
    body = RealBody(shared=RealParts(profile, pin_factory=MockPinFactory(), bus_factory=lambda n: bus))
    for role in specs:
        setattr(body, role, body.shared.open(role))
    said = []
    health = PartHealth(body, 5.0, said.append, lambda kind, text: None)
    for role in specs:  # PartHealth lists the fixed roles itself; any-named parts are the
        health.state.setdefault(role, "ok")  # body side's change (issue 23), so add them here
    return body, health, said


@pytest.mark.parametrize("chip_class, type_name, address", [
    (FakeMPU6050, "mpu6050", 0x68), (FakeLSM6DS3, "lsm6ds3", 0x6A)])
def test_a_replugged_imu_is_imputed_then_reinitialised_at_the_retry(chip_class, type_name, address):
    chip = chip_class()
    bus = FakeSMBus({address: chip})
    body, health, said = body_with(bus, imu=spec(type_name, "imu"))
    read = lambda part: part.read()  # noqa: E731
    assert health.use("imu", 0.0, read, IMPUTED)[2] == pytest.approx(1.0, abs=1e-3)
    chip.power_cycle()  # a brown-out: answers, but asleep with zero outputs
    assert health.use("imu", 1.0, read, IMPUTED) == IMPUTED
    assert health.state["imu"].startswith("failed: imu: the") and "power-on state" in said[0]
    assert health.use("imu", 3.0, read, IMPUTED) == IMPUTED  # not tried before the retry
    resets = chip.resets
    values = health.use("imu", 6.5, read, IMPUTED)  # retry: re-opened, configured, read
    assert chip.resets == resets + 1 and values[2] == pytest.approx(1.0, abs=1e-3)
    assert health.state["imu"] == "ok" and said[-1] == "imu works again"


def test_an_unplugged_adc_comes_back_when_plugged_in_again():
    adc = FakeADS1115(volts=(2.0, 0, 0, 0), busy_reads=0)  # on the real clock: see the fake
    bus = FakeSMBus({0x48: adc})
    body, health, said = body_with(bus, knob=spec("ads1115", "knob", inputs=["knob"]))
    read = lambda part: part.read()  # noqa: E731
    assert health.use("knob", 0.0, read, (0.0,)) == pytest.approx((2.0,), abs=1e-3)
    del bus.devices[0x48]
    assert health.use("knob", 1.0, read, (0.0,)) == (0.0,)
    assert "no answer at I2C address 0x48" in health.state["knob"]
    assert health.use("knob", 6.5, read, (0.0,)) == (0.0,)  # retried: still away
    assert "0x48" in health.state["knob"]
    adc.power_cycle()
    bus.devices[0x48] = adc
    assert health.use("knob", 12.0, read, (0.0,)) == pytest.approx((2.0,), abs=1e-3)
    assert health.state["knob"] == "ok"
