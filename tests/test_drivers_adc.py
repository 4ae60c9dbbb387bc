"""ADS1115 driver at register level against a fake I2C chip."""
from __future__ import annotations

import pytest
from hw_fakes import FakeChip, FakeSMBus
from hw_fakes_channels import FakeADS1115

from lanthorn.hardware.drivers.ads1115 import ADS1115, config_word
from lanthorn.hardware.interfaces import PartError


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.sleeps.append(s)
        self.t += s


def make(inputs=((0, 4.096),), address=0x48, volts=(1.0, 2.0, 0.5, 0.1), **kwargs):
    chip = FakeADS1115(volts)
    bus = FakeSMBus({address: chip})
    clock = FakeClock()
    return ADS1115(bus, address, inputs, clock=clock, sleep=clock.sleep, **kwargs), chip, bus, clock


def test_config_word_bits_are_the_datasheets():
    # OS=1, MUX=100 (AIN0/GND), PGA=001 (4.096 V), MODE=1, DR=111 (860 SPS), COMP_QUE=11
    assert config_word(0, 4.096, 860) == 0b1_100_001_1_111_0_0_0_11
    assert config_word(3, 0.256, 8) == 0b1_111_101_1_000_0_0_0_11
    assert config_word(1, 6.144, 128) == 0xD183  # 1 101 000 1 100 00011


def test_opening_converts_each_input_once_with_its_own_gain():
    chip = FakeADS1115((1.0, 2.0, 0.5, 0.1))
    bus = FakeSMBus({0x48: chip})
    clock = FakeClock()
    adc = ADS1115(bus, 0x48, [(0, 4.096), (2, 1.024), (3, 0.256)], 475, clock=clock, sleep=clock.sleep)
    assert adc.values == pytest.approx([1.0, 0.5, 0.1], abs=4.096 / 32768)
    assert chip.conversions == [(0, 4.096), (2, 1.024), (3, 0.256)]
    # identity first (the threshold registers), then the config register written big endian:
    # pointer 0x01, MSB, LSB; OS polled on the config register; the result read at 0x00
    word = config_word(0, 4.096, 475)
    writes = bus.writes(0x48)
    assert writes[:3] == [bytes([0x02]), bytes([0x03]), bytes([0x01, word >> 8, word & 0xFF])]
    assert writes[3:6] == [bytes([0x01]), bytes([0x01]), bytes([0x00])]  # busy, ready, result
    assert clock.sleeps[0] == pytest.approx(1 / 475)


def test_a_read_never_waits_it_collects_one_conversion_and_starts_the_next():
    adc, chip, bus, clock = make(inputs=[(0, 4.096), (2, 1.024)])
    chip.busy_reads = 1
    sleeps = len(clock.sleeps)
    chip.volts[0], chip.volts[2] = 3.0, 0.75
    assert adc.read() == pytest.approx((1.0, 0.5), abs=1e-3)  # starts AIN0, returns the last
    assert chip.conversions[-1] == (0, 4.096)
    assert adc.read() == pytest.approx((1.0, 0.5), abs=1e-3)  # AIN0 still converting
    assert adc.read() == pytest.approx((3.0, 0.5), abs=1e-3)  # AIN0 collected, AIN2 started
    assert chip.conversions[-1] == (2, 1.024)
    adc.read()
    assert adc.read() == pytest.approx((3.0, 0.75), abs=1e-3)
    assert len(clock.sleeps) == sleeps  # no read slept


def test_signed_results_and_the_range_edges():
    adc, chip, bus, clock = make()
    assert adc.decode(0x7FFF, 4.096) == pytest.approx(4.096 * 32767 / 32768)
    assert adc.decode(0x8000, 4.096) == -4.096
    assert adc.decode(0xFFFF, 2.048) == pytest.approx(-2.048 / 32768)
    chip.volts[0] = 5.0  # above the 4.096 V range (an input that must never exceed VDD anyway)
    assert adc.convert(0) == pytest.approx(4.096 * 32767 / 32768)
    chip.volts[0] = -0.01  # slightly below ground reads slightly negative
    assert adc.convert(0) == pytest.approx(-0.01, abs=4.096 / 32768)


@pytest.mark.parametrize("fs", [6.144, 4.096, 2.048, 1.024, 0.512, 0.256])
def test_every_gain_scales_the_same_voltage_back(fs):
    adc, chip, bus, clock = make(inputs=[(1, fs)], volts=(0, fs * 0.6, 0, 0))
    assert adc.convert(0) == pytest.approx(fs * 0.6, abs=fs / 32768)
    assert chip.conversions[-1] == (1, fs)


def test_a_conversion_that_never_finishes_times_out_naming_the_input():
    chip = FakeADS1115()
    chip.stuck = True
    clock = FakeClock()
    with pytest.raises(PartError, match=r"AIN2 conversion not ready after 25\.4 ms \(I2C address 0x48\)"):
        ADS1115(FakeSMBus({0x48: chip}), 0x48, [(2, 2.048)], 128, clock=clock, sleep=clock.sleep)
    assert clock.t > 3 / 128  # it waited the timeout on the (fake) clock, not forever
    adc, chip, bus, clock = make(inputs=[(1, 2.048)], data_rate=128)
    chip.stuck = True
    adc.read()  # starts a conversion that will never be ready
    clock.t += 0.010
    adc.read()  # not ready, not late yet
    clock.t += 0.020
    with pytest.raises(PartError, match="AIN1 conversion not ready after 25.4 ms"):
        adc.read()


def test_missing_chip_and_wrong_chip_are_refused_with_the_address():
    with pytest.raises(PartError) as err:
        ADS1115(FakeSMBus({}), 0x4A, name="knob")
    assert str(err.value).startswith("knob: no answer at I2C address 0x4a") and "wiring" in str(err.value)
    with pytest.raises(PartError, match=r"not an ADS1115 .*0x0000/0x0000, expected 0x8000/0x7fff"):
        ADS1115(FakeSMBus({0x48: FakeChip()}), 0x48)


def test_replugged_chip_answers_again_after_reopening():
    adc, chip, bus, clock = make()
    del bus.devices[0x48]
    with pytest.raises(PartError, match="no answer at I2C address 0x48"):
        adc.read()
    chip.power_cycle()
    bus.devices[0x48] = chip
    adc.close()
    again = ADS1115(bus, 0x48, [(0, 4.096)], clock=clock, sleep=clock.sleep)
    assert again.read()[0] == pytest.approx(1.0, abs=0.001)
    assert chip.reg[1] & 0x0100  # it converted in single-shot mode on a chip fresh from power-on
