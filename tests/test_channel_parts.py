"""The channel-part registry: options in profiles, declared channels, clear refusals."""
from __future__ import annotations

import pytest
from channel_specs import spec

from lanthorn.hardware import channel_parts as CP
from lanthorn.hardware.channels import ChannelSensor
from lanthorn.hardware.profile import PART_TYPES, ProfileError
from lanthorn.hardware.sim.motion import Scene


def test_every_registered_type_is_a_profile_part_type_with_the_same_options():
    for type_name, schema in CP.OPTIONS.items():
        assert PART_TYPES[type_name][1] is schema
        assert {"names", "prefix", "rate_hz"} <= set(schema)


def test_imu_declares_signed_channels_that_follow_its_ranges():
    chans = CP.channels_for(spec("mpu6050", "imu", accel_range_g=8, gyro_range_dps=1000))
    assert [c.name for c in chans] == ["ax", "ay", "az", "gx", "gy", "gz"]
    assert [(c.unit, c.lo, c.hi, c.encoding) for c in chans[::3]] == [
        ("g", -8.0, 8.0, "signed"), ("dps", -1000.0, 1000.0, "signed")]
    assert chans[0].encode(4.0) == 0.5 and chans[3].encode(-1000.0) == -1.0


def test_names_and_prefix_rename_the_channels():
    assert CP.channel_names("lsm6ds3", spec("lsm6ds3", prefix="top_").options)[0] == "top_ax"
    s = spec("button", "b", pin=17, names=["lid"])
    assert [c.name for c in CP.channels_for(s)] == ["lid"]


def test_ads1115_inputs_gains_and_vdd_give_the_channel_ranges():
    s = spec("ads1115", "adc", inputs=["knob", "", "piezo"], gain=[4.096, 2.048, 1.024],
             kinds=["potentiometer", "voltage", "piezo"])
    chans = CP.channels_for(s)
    assert [(c.name, c.unit, c.lo, c.hi) for c in chans] == [
        ("knob", "V", 0.0, 3.3), ("piezo", "V", 0.0, 1.024)]  # 4.096 V range, but VDD 3.3 V
    assert CP.ads_inputs(s.options) == [(0, "knob", "potentiometer", 4.096), (2, "piezo", "piezo", 1.024)]


def test_digital_and_sound_channels():
    (pir,) = CP.channels_for(spec("pir", "p", pin=23))
    assert (pir.name, pir.encoding, pir.encode(1.0)) == ("presence", "binary", 1.0)
    (snd,) = CP.channels_for(spec("sound_level", "mic"))
    assert (snd.unit, snd.lo, snd.hi, snd.rate_hz) == ("dBFS", -90.0, 0.0, 20.0)


@pytest.mark.parametrize("type_name, table, message", [
    ("mpu6050", {"accel_range_g": 3}, "accel_range_g must be one of 2, 4, 8, 16, not 3"),
    ("mpu6050", {"dlpf_hz": 50}, "dlpf_hz must be one of"),
    ("lsm6ds3", {"sample_rate_hz": 100}, "sample_rate_hz must be one of 12.5, 26"),
    ("lsm6ds3", {"names": ["x", "y"]}, "names must list 6 channel names"),
    ("ads1115", {}, "missing 'inputs'"),
    ("ads1115", {"inputs": ["a", "b", "c", "d", "e"]}, "inputs must name 1 to 4"),
    ("ads1115", {"inputs": ["a"], "gain": 5.0}, "gain 5.0 V is not an ADS1115 range"),
    ("ads1115", {"inputs": ["a", "b"], "gain": [4.096]}, "one per input"),
    ("ads1115", {"inputs": ["a"], "kinds": ["thermistor"]}, "kind 'thermistor' is not one of"),
    ("ads1115", {"inputs": ["a"], "address": 0x50}, "address must be 0x48..0x4B"),
    ("ads1115", {"inputs": ["a", "a"]}, "channel names repeat"),
    ("button", {}, "missing 'pin'"),
    ("button", {"pin": 5, "pull": "sideways"}, 'pull must be "up", "down" or "none"'),
    ("button", {"pin": 5, "names": ["2nd"]}, "must be letters, digits and _"),
    ("sound_level", {"rate_hz": 0}, "rate_hz must be above 0"),
    ("mpu6050", {"acel_range_g": 4}, "did you mean 'accel_range_g'"),
])
def test_bad_options_are_refused_with_what_to_change(type_name, table, message):
    with pytest.raises(ProfileError) as err:
        spec(type_name, "part", **table)
    assert message in str(err.value) and "test.toml: [parts.part]" in str(err.value)


def test_a_channel_type_cannot_take_a_fixed_role():
    with pytest.raises(ProfileError, match="unknown type 'mpu6050' for touch"):
        spec("mpu6050", "touch")


def test_every_type_opens_in_the_simulator_and_reads_its_channels():
    t = [0.0]
    scene = Scene(now=lambda: t[0], seed=3)
    tables = {"mpu6050": {}, "lsm6ds3": {}, "ads1115": {"inputs": ["knob", "ldr"]},
              "pir": {"pin": 23}, "button": {"pin": 17}, "reed_switch": {"pin": 27},
              "sound_level": {}}
    assert set(tables) == set(CP.TYPES)
    for type_name, table in tables.items():
        s = spec(type_name, type_name, **table)
        part = CP.open_sim(s, scene)
        assert isinstance(part, ChannelSensor) and part.channels == CP.channels_for(s)
        values = part.read()
        assert len(values) == len(part.channels)
        assert all(c.lo - 0.01 <= v <= c.hi + 0.01 for c, v in zip(part.channels, values, strict=True))


def _profile_with(**specs):
    """A Profile holding channel parts (built directly: the profile's part names beyond the
    fixed roles are the body's side of issue 23)."""
    from types import MappingProxyType

    from lanthorn.hardware.profile import Profile
    return Profile(name="t", board="pi5", backend="real", source="t.toml", i2c_bus=1, spi_bus=0,
                   spi_device=0, supply_ma=None, led_cap_ma=None, required=(),
                   parts=MappingProxyType(specs))


def test_the_real_body_opens_channel_parts_on_its_shared_bus_and_pins_and_reopens_them():
    from hw_fakes import FakeSMBus
    from hw_fakes_channels import FakeADS1115, FakeMPU6050

    from lanthorn.hardware.body import RealParts
    from lanthorn.hardware.drivers.ads1115 import ADS1115
    from lanthorn.hardware.drivers.digital_in import DigitalInput
    from lanthorn.hardware.drivers.mpu6050 import MPU6050
    from lanthorn.hardware.gpio import MockPinFactory
    from lanthorn.hardware.interfaces import PartError
    imu, adc = FakeMPU6050(), FakeADS1115(volts=(1.65, 0, 0, 0), busy_reads=0)
    bus = FakeSMBus({0x68: imu, 0x48: adc})
    pins = MockPinFactory()
    profile = _profile_with(imu=spec("mpu6050", "imu", accel_range_g=2),
                            knob=spec("ads1115", "knob", inputs=["knob"]),
                            lid=spec("reed_switch", "lid", pin=27))
    shared = RealParts(profile, pin_factory=pins, bus_factory=lambda n: bus)
    parts = {role: shared.open(role) for role in profile.parts}
    assert isinstance(parts["imu"], MPU6050) and isinstance(parts["knob"], ADS1115)
    assert isinstance(parts["lid"], DigitalInput) and pins.pins[27].pull == "up"
    assert parts["imu"].channel_names() == ("ax", "ay", "az", "gx", "gy", "gz")
    assert parts["imu"].read()[2] == pytest.approx(1.0, abs=1e-3)
    assert parts["knob"].read() == pytest.approx((1.65,), abs=1e-3)
    imu.power_cycle()  # replugged
    with pytest.raises(PartError, match="imu: the MPU-6050 is in its power-on state"):
        parts["imu"].read()
    parts["imu"].close()
    again = shared.open("imu")  # what RealBody.open_part does at part health's retry
    assert imu.resets == 2 and again.read()[2] == pytest.approx(1.0, abs=1e-3)
