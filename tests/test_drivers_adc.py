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


def test_a_read_is_one_single_shot_conversion_per_input_with_its_own_gain():
    adc, chip, bus, clock = make(inputs=[(0, 4.096), (2, 1.024), (3, 0.256)], data_rate=475)
    bus.log.clear()
    v = adc.read()
    assert v == pytest.approx((1.0, 0.5, 0.1), abs=0.256 / 32768 * 2 + 4.096 / 32768)
    assert chip.conversions == [(0, 4.096), (2, 1.024), (3, 0.256)]
    # the config register is written big endian: pointer 0x01, MSB, LSB
    first = bus.writes(0x48)[0]
    word = config_word(0, 4.096, 475)
    assert first == bytes([0x01, word >> 8, word & 0xFF])
    # then OS is polled on the config register, then the conversion register is read
    pointers = [d[0] for d in bus.writes(0x48) if len(d) == 1]
    assert pointers[:3] == [0x01, 0x01, 0x00]  # busy once, ready, read the result
    assert clock.sleeps[0] == pytest.approx(1 / 475)


def test_signed_results_and_the_range_edges():
    adc, chip, bus, clock = make()
    assert adc.decode(0x7FFF, 4.096) == pytest.approx(4.096 * 32767 / 32768)
    assert adc.decode(0x8000, 4.096) == -4.096
    assert adc.decode(0xFFFF, 2.048) == pytest.approx(-2.048 / 32768)
    chip.volts[0] = 5.0  # above the 4.096 V range (an input that must never exceed VDD anyway)
    assert adc.read()[0] == pytest.approx(4.096 * 32767 / 32768)
    chip.volts[0] = -0.01  # slightly below ground reads slightly negative
    assert adc.read()[0] == pytest.approx(-0.01, abs=4.096 / 32768)


@pytest.mark.parametrize("fs", [6.144, 4.096, 2.048, 1.024, 0.512, 0.256])
def test_every_gain_scales_the_same_voltage_back(fs):
    adc, chip, bus, clock = make(inputs=[(1, fs)], volts=(0, fs * 0.6, 0, 0))
    assert adc.read()[0] == pytest.approx(fs * 0.6, abs=fs / 32768)
    assert chip.conversions[-1] == (1, fs)


def test_a_conversion_that_never_finishes_times_out_naming_the_input():
    adc, chip, bus, clock = make(inputs=[(2, 2.048)], data_rate=128)
    chip.stuck = True
    with pytest.raises(PartError, match=r"AIN2 conversion not ready after 25\.4 ms \(I2C address 0x48\)"):
        adc.read()
    assert clock.t > 3 / 128  # it waited the timeout on the (fake) clock, not forever


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
