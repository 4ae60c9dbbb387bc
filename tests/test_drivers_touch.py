"""MPR121 driver at register level against a fake I2C bus."""
import errno

import numpy as np
import pytest
from hw_fakes import FakeChip, FakeMPR121, FakeSMBus, io_error

from lanthorn.hardware.drivers.mpr121 import MPR121
from lanthorn.hardware.gpio import MockPinFactory
from lanthorn.hardware.interfaces import PartError


def make(**kwargs):
    chip = FakeMPR121()
    bus = FakeSMBus({0x5A: chip})
    return MPR121(bus, **kwargs), chip, bus


def test_init_sequence_matches_the_datasheet_order():
    sensor, chip, bus = make(touch_threshold=14, release_threshold=7)
    writes = bus.register_writes(0x5A)
    assert writes[0] == (0x80, 0x63)  # soft reset first
    assert writes[1] == (0x5E, 0x00)  # then stop mode
    # CONFIG2 was read back (reset value check) before any configuration
    first_read = next(i for i, (k, *_ ) in enumerate(bus.log) if k == "r")
    assert bus.log[first_read - 1] == ("w", 0x5A, bytes([0x5D]))
    thresholds = {reg: v for reg, v in writes if 0x41 <= reg <= 0x58}
    assert thresholds == {0x41 + 2 * i: 14 for i in range(12)} | {0x42 + 2 * i: 7 for i in range(12)}
    assert (0x2B, 0x01) in writes and (0x2D, 0x0E) in writes and (0x30, 0x05) in writes
    assert (0x5C, 0x10) in writes and (0x5D, 0x20) in writes
    assert writes[-1] == (0x5E, 0x8C)  # run mode last: baseline tracking + 12 electrodes
    assert chip.regs[0x5E] == 0x8C


def test_fewer_pads_enable_fewer_electrodes():
    sensor, chip, bus = make(pads=8)
    assert chip.regs[0x5E] == 0x88 and sensor.n_pads == 8


def test_decodes_a_scan_little_endian_10_bit_and_baseline_shifted():
    sensor, chip, bus = make()
    filtered = [700, 1023, 0, 512, 3, 256, 300, 301, 302, 303, 304, 305]
    baseline = [720, 1020, 0, 516, 4, 256, 400, 400, 400, 400, 400, 400]
    chip.set_scan(0b1000_0000_0101, filtered, baseline)
    chip.regs[0x05] |= 0xFC  # garbage in the unused upper bits must be masked off
    r = sensor.read()
    assert r.raw.dtype == np.uint16 and r.raw.tolist() == filtered
    assert r.baseline.tolist() == [b & ~3 for b in baseline]
    assert r.touched == 0b1000_0000_0101 and r.pads() == [0, 2, 11]
    # one block read for status+filtered data, one for baselines
    reads = [d for k, a, d in bus.log if k == "r"]
    assert [len(d) for d in reads[-2:]] == [0x1E, 12]


def test_touch_status_ignores_bits_of_disabled_pads_and_proximity():
    sensor, chip, bus = make(pads=4)
    chip.set_scan(0b0001_1111_1111, [0] * 12, [0] * 12)
    assert sensor.read().touched == 0b1111


def test_over_current_flag_is_a_part_error():
    sensor, chip, bus = make()
    chip.set_scan(0x8000, [500] * 12, [500] * 12)
    with pytest.raises(PartError, match="over-current"):
        sensor.read()


def test_wrong_chip_at_the_address_is_named():
    bus = FakeSMBus({0x5A: FakeChip()})  # answers, but CONFIG2 is not 0x24
    with pytest.raises(PartError, match=r"not an MPR121.*CONFIG2 reads 0x00"):
        MPR121(bus)


def test_missing_chip_names_part_address_and_wiring():
    bus = FakeSMBus({})
    with pytest.raises(PartError) as err:
        MPR121(bus, address=0x5B, name="touch")
    msg = str(err.value)
    assert msg.startswith("touch:") and "0x5b" in msg and "pull-ups" in msg and "wiring" in msg
    assert err.value.part == "touch"


def test_io_error_during_read_becomes_part_error():
    sensor, chip, bus = make()
    bus.fail = io_error(errno.ETIMEDOUT)
    with pytest.raises(PartError, match="bus timeout"):
        sensor.read()


def test_irq_pin_is_pulled_up_and_reports_pending_changes():
    pins = MockPinFactory()
    irq = pins.pin(4)
    sensor, chip, bus = make(irq=irq)
    assert irq.mode == "in" and irq.pull == "up" and sensor.irq_pending() is False
    irq.drive(0)
    assert sensor.irq_pending() is True
    sensor.close()
    assert 4 not in pins.pins  # released


def test_close_stops_scanning_and_tolerates_a_dead_bus():
    sensor, chip, bus = make()
    sensor.close()
    assert chip.regs[0x5E] == 0
    sensor2, chip2, bus2 = make()
    bus2.fail = io_error()
    sensor2.close()  # no exception
    sensor2.close()
