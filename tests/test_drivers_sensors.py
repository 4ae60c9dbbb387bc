"""Light (BH1750, VEML7700) and distance (VL53L0X) drivers against fake buses/libraries."""
import sys
import types

import pytest
from hw_fakes import FakeBH1750, FakeChip, FakeSMBus, io_error

from lanthorn.hardware.drivers import veml7700 as veml
from lanthorn.hardware.drivers.bh1750 import BH1750
from lanthorn.hardware.drivers.i2c import SMBusI2C, open_bus
from lanthorn.hardware.drivers.veml7700 import VEML7700
from lanthorn.hardware.interfaces import PartError


# ------------------------------------------------------------------ BH1750
def test_bh1750_starts_continuous_high_res_and_decodes_big_endian():
    chip = FakeBH1750(counts=0x1234)
    bus = FakeSMBus({0x23: chip})
    light = BH1750(bus)
    assert chip.opcodes == [0x01, 0x07, 0x10]  # power on, reset, continuous H-res
    assert light.read_lux() == pytest.approx(0x1234 / 1.2)
    chip.counts = 0
    assert light.read_lux() == 0.0
    chip.counts = 0xFFFF
    assert light.read_lux() == pytest.approx(54612.5)


def test_bh1750_io_error_is_part_error():
    with pytest.raises(PartError, match=r"light: no answer at I2C address 0x5c"):
        BH1750(FakeSMBus({}), address=0x5C)
    chip = FakeBH1750(1)
    bus = FakeSMBus({0x23: chip})
    light = BH1750(bus)
    bus.fail = io_error()
    with pytest.raises(PartError, match="check wiring"):
        light.read_lux()


# ------------------------------------------------------------------ VEML7700
def test_veml7700_writes_config_and_scales_counts():
    chip = FakeChip()
    bus = FakeSMBus({0x10: chip})
    light = VEML7700(bus, gain=0.25, integration_ms=100)
    conf = chip.regs[0] | chip.regs[1] << 8
    assert conf == 0b11 << 11  # gain 1/4, IT 100 ms (0000), powered on (bit 0 clear)
    assert bus.register_writes(0x10)[:2] == [(0x00, 0x00), (0x01, 0x18)]  # little-endian word
    chip.regs[4], chip.regs[5] = 0x10, 0x27  # 10000 counts
    raw_lux = 10000 * 0.0036 * 8 * 8  # 2304 lx before correction ...
    assert light.read_lux() == pytest.approx(veml.correct_nonlinearity(raw_lux))
    assert 2304 < light.read_lux() < 2304 * 1.2  # ... corrected upwards above 1000 lx
    chip.regs[4], chip.regs[5] = 100, 0
    assert light.read_lux() == pytest.approx(100 * 0.2304)  # no correction in the dark


@pytest.mark.parametrize("gain, it, bits, res", [
    (2, 800, (0b01 << 11) | (0b0011 << 6), 0.0036),
    (1, 25, (0b00 << 11) | (0b1100 << 6), 0.2304),
    (0.125, 50, (0b10 << 11) | (0b1000 << 6), 0.9216),
])
def test_veml7700_gain_and_integration_table(gain, it, bits, res):
    assert veml.config_word(gain, it) == bits
    assert veml.lux_per_count(gain, it) == pytest.approx(res)


def test_veml7700_close_shuts_down_and_io_error():
    chip = FakeChip()
    bus = FakeSMBus({0x10: chip})
    light = VEML7700(bus)
    light.close()
    assert chip.regs[0] & 1 == 1
    with pytest.raises(PartError, match="0x10"):
        VEML7700(FakeSMBus({}))


# ------------------------------------------------------------------ bus opening and the busio adapter
def test_open_bus_errors_tell_what_to_do(monkeypatch):
    import smbus2

    def missing(n):
        raise FileNotFoundError(2, "No such file", f"/dev/i2c-{n}")
    monkeypatch.setattr(smbus2, "SMBus", missing)
    with pytest.raises(PartError, match=r"/dev/i2c-3 does not exist: enable I2C"):
        open_bus(3, "light")

    def denied(n):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(smbus2, "SMBus", denied)
    with pytest.raises(PartError, match="'i2c' group"):
        open_bus(1, "light")


def test_smbus_busio_adapter_transfers():
    chip = FakeChip({0xC0: 0xEE, 0xC1: 0xAA})
    bus = FakeSMBus({0x29: chip})
    i2c = SMBusI2C(bus)
    assert i2c.try_lock() and not i2c.try_lock()
    i2c.unlock()
    i2c.writeto(0x29, bytes([0x00, 0x01, 0x02]), start=1)  # only [0x01, 0x02] goes out
    assert bus.log[-1] == ("w", 0x29, bytes([0x01, 0x02]))
    buf = bytearray(4)
    i2c.writeto_then_readfrom(0x29, bytes([0xC0]), buf, in_start=1, in_end=3)
    assert buf == bytearray([0, 0xEE, 0xAA, 0])
    i2c.readfrom_into(0x29, buf)
    assert len(bus.log[-1][2]) == 4
    i2c.writeto(0x29, b"")  # the zero-length probe adafruit_bus_device uses
    with pytest.raises(OSError):
        i2c.writeto(0x30, b"")


# ------------------------------------------------------------------ VL53L0X through adafruit_vl53l0x
class FakeVL53L0X:
    """The API of adafruit_vl53l0x.VL53L0X that the wrapper uses."""

    instances = []
    fail_init: Exception | None = None

    def __init__(self, i2c, address=41, io_timeout_s=0):
        if FakeVL53L0X.fail_init is not None:
            raise FakeVL53L0X.fail_init
        self.i2c, self.address, self.io_timeout_s = i2c, address, io_timeout_s
        self.measurement_timing_budget = 33000
        self.continuous = False
        self.data_ready = False
        self.value = 0
        self.error: Exception | None = None
        FakeVL53L0X.instances.append(self)

    def start_continuous(self):
        self.continuous = True

    def stop_continuous(self):
        self.continuous = False

    @property
    def range(self):
        if self.error:
            raise self.error
        self.data_ready = False
        return self.value


@pytest.fixture
def fake_vl53(monkeypatch):
    mod = types.ModuleType("adafruit_vl53l0x")
    mod.VL53L0X = FakeVL53L0X
    FakeVL53L0X.instances.clear()
    FakeVL53L0X.fail_init = None
    monkeypatch.setitem(sys.modules, "adafruit_vl53l0x", mod)
    return FakeVL53L0X


def test_vl53l0x_configures_library_in_continuous_mode(fake_vl53):
    from lanthorn.hardware.drivers.vl53l0x import VL53L0X
    bus = FakeSMBus({})
    sensor = VL53L0X(bus, address=0x29, timing_budget_ms=50, max_range_mm=1000)
    lib = fake_vl53.instances[-1]
    assert isinstance(lib.i2c, SMBusI2C) and lib.i2c.bus is bus and lib.address == 0x29
    assert lib.measurement_timing_budget == 50000 and lib.continuous
    assert lib.io_timeout_s > 0  # never hang the loop on a dead sensor
    sensor.close()
    assert not lib.continuous


def test_vl53l0x_readings_out_of_range_and_non_blocking(fake_vl53):
    from lanthorn.hardware.drivers.vl53l0x import VL53L0X
    sensor = VL53L0X(FakeSMBus({}), max_range_mm=1200)
    lib = fake_vl53.instances[-1]
    assert sensor.read_mm() is None  # nothing measured yet
    lib.value, lib.data_ready = 523, True
    assert sensor.read_mm() == 523.0
    lib.value = 999  # not ready: the last value stands, no blocking wait
    assert sensor.read_mm() == 523.0
    for out in (8190, 8191, 1201, 0):
        lib.value, lib.data_ready = out, True
        assert sensor.read_mm() is None, out
    lib.value, lib.data_ready = 1200, True
    assert sensor.read_mm() == 1200.0


def test_vl53l0x_errors(fake_vl53, monkeypatch):
    from lanthorn.hardware.drivers.vl53l0x import VL53L0X
    fake_vl53.fail_init = ValueError("No I2C device at address: 0x29")
    with pytest.raises(PartError, match=r"distance: no answer at I2C address 0x29.*pull-ups"):
        VL53L0X(FakeSMBus({}))
    fake_vl53.fail_init = None
    sensor = VL53L0X(FakeSMBus({}))
    lib = fake_vl53.instances[-1]
    lib.data_ready, lib.error = True, io_error()
    with pytest.raises(PartError, match="0x29"):
        sensor.read_mm()
    lib.error = RuntimeError("Timeout waiting for VL53L0X!")
    with pytest.raises(PartError, match="Timeout waiting.*XSHUT"):
        sensor.read_mm()
    fake_vl53.fail_init = RuntimeError("Failed to find expected ID register values. Check wiring!")
    with pytest.raises(PartError, match="expected ID register"):
        VL53L0X(FakeSMBus({}))
    fake_vl53.fail_init = None
    monkeypatch.setitem(sys.modules, "adafruit_vl53l0x", None)  # not installed
    with pytest.raises(PartError, match="adafruit-circuitpython-vl53l0x"):
        VL53L0X(FakeSMBus({}))
