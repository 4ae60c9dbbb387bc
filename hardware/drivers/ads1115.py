"""TI ADS1115 16-bit ADC over I2C (smbus2): up to four single-ended analog inputs.

From TI's datasheet (SBAS444): four registers behind a pointer byte, each 16 bits, most
significant byte first -- conversion (0x00), config (0x01), Lo_thresh (0x02, reset 0x8000)
and Hi_thresh (0x03, reset 0x7FFF). Config bits:

* OS (15): write 1 to start a single conversion; reads 0 while converting, 1 when idle;
* MUX (14:12): 100..111 = AIN0..AIN3 against GND (single-ended);
* PGA (11:9): full scale 000 +-6.144 V, 001 4.096, 010 2.048, 011 1.024, 100 0.512,
  101/110/111 0.256 V -- the gain, chosen per input here;
* MODE (8): 1 = single-shot (power-down between conversions);
* DR (7:5): 8, 16, 32, 64, 128, 250, 475, 860 samples/s;
* COMP_QUE (1:0): 11 disables the comparator (and its ALERT/RDY pin).

A conversion: write the config with OS=1, poll OS until the conversion is ready (with a
timeout of a few conversion times: a chip that never finishes is a PartError), read the
conversion register (signed) and scale by full scale / 32768.

The piece reads its parts in its sampling loop, which must not stall for milliseconds, so
:meth:`read` never waits for a conversion: it collects the one it started last time (one
look at OS; if not ready yet, the next read looks again), starts the next input's, and
returns the newest volts of every input. Each input is thus converted every
``len(inputs)`` reads; opening converts each once, blocking, so the first read has values.
:meth:`convert` is the blocking single conversion (selftest, tests).

Nothing persists in the chip between conversions, so a chip that was unplugged and comes
back needs no re-initialising. Opening checks the threshold registers' reset values, which
nothing here writes: that tells an ADS1115 from another chip at the address.

The inputs must stay between GND and VDD (the full-scale range does not change that):
+-6.144 V at 3.3 V VDD still means 0..3.3 V.
"""
from __future__ import annotations

import time

from ..channels import Channel, ChannelSensor
from ..interfaces import PartError
from .i2c import bus_errors, open_bus

CONVERSION, CONFIG, LO_THRESH, HI_THRESH = 0x00, 0x01, 0x02, 0x03
LO_THRESH_RESET, HI_THRESH_RESET = 0x8000, 0x7FFF
OS = 0x8000
MODE_SINGLE = 0x0100
COMP_QUE_DISABLE = 0x0003
PGA = {6.144: 0b000, 4.096: 0b001, 2.048: 0b010, 1.024: 0b011, 0.512: 0b100, 0.256: 0b101}
DR = {8: 0b000, 16: 0b001, 32: 0b010, 64: 0b011, 128: 0b100, 250: 0b101, 475: 0b110, 860: 0b111}


def config_word(ain: int, full_scale: float, data_rate: int) -> int:
    """The config register value that starts one single-ended conversion of ``ain``."""
    return (OS | (0b100 | ain) << 12 | PGA[full_scale] << 9 | MODE_SINGLE | DR[data_rate] << 5
            | COMP_QUE_DISABLE)


class ADS1115(ChannelSensor):
    """``inputs``: [(AIN index, full-scale volts)], one channel each, in that order."""

    def __init__(self, bus=1, address: int = 0x48, inputs=((0, 4.096),), data_rate: int = 475,
                 channels: tuple[Channel, ...] | None = None, name: str = "adc",
                 clock=time.monotonic, sleep=time.sleep):
        self.name, self.address = name, address
        self.inputs = [(int(ain), float(fs)) for ain, fs in inputs]
        self.data_rate = int(data_rate)
        self.channels = channels or tuple(Channel(f"ain{ain}", "V", 0.0, fs, "linear")
                                          for ain, fs in self.inputs)
        self._configs = [config_word(ain, fs, self.data_rate) for ain, fs in self.inputs]
        # a conversion takes 1/DR (+10 % oscillator tolerance); allow 3x that plus 2 ms
        self.timeout_s = 3.0 / self.data_rate + 0.002
        self._clock, self._sleep = clock, sleep
        self._bus, self._owned = open_bus(bus, name)
        self._bus_label = bus if isinstance(bus, int) else getattr(bus, "label", "?")
        self._pending: int | None = None  # the input whose conversion is under way
        self._started = 0.0
        try:
            with self._errors():
                self._check_identity()
            self.values = [self.convert(i) for i in range(len(self.inputs))]
        except Exception:
            self.close()
            raise
        self._next = 0

    def _errors(self):
        return bus_errors(self.name, self.address, self._bus_label)

    def _read_register(self, register: int) -> int:
        hi, lo = self._bus.read_i2c_block_data(self.address, register, 2)
        return hi << 8 | lo

    def _write_register(self, register: int, value: int) -> None:
        self._bus.write_i2c_block_data(self.address, register, [value >> 8, value & 0xFF])

    def _check_identity(self) -> None:
        lo, hi = self._read_register(LO_THRESH), self._read_register(HI_THRESH)
        if (lo, hi) != (LO_THRESH_RESET, HI_THRESH_RESET):
            raise PartError(self.name, f"the chip at I2C address {self.address:#04x} is not an "
                                       f"ADS1115 (its threshold registers read {lo:#06x}/{hi:#06x}, "
                                       f"expected 0x8000/0x7fff); check the part type and address")

    def _not_ready(self, index: int) -> PartError:
        return PartError(self.name, f"AIN{self.inputs[index][0]} conversion not ready after "
                                    f"{self.timeout_s * 1000:.1f} ms (I2C address "
                                    f"{self.address:#04x}); check the chip's power")

    def convert(self, index: int) -> float:
        """One single-shot conversion of the ``index``-th input, in volts (blocking)."""
        with self._errors():
            self._write_register(CONFIG, self._configs[index])
            deadline = self._clock() + self.timeout_s
            self._sleep(1.0 / self.data_rate)
            while True:
                # late is taken *before* looking: only a look that began after the deadline
                # and still saw a conversion under way fails (an oversleeping loaded machine
                # must not blame the chip)
                late = self._clock() > deadline
                if self._read_register(CONFIG) & OS:
                    break
                if late:
                    raise self._not_ready(index)
                self._sleep(0.0002)
            raw = self._read_register(CONVERSION)
        return self.decode(raw, self.inputs[index][1])

    @staticmethod
    def decode(raw: int, full_scale: float) -> float:
        """A conversion register value (two's complement) in volts."""
        counts = raw - 0x10000 if raw & 0x8000 else raw
        return counts * full_scale / 32768.0

    def read(self) -> tuple[float, ...]:
        """The newest volts of every input; collects one conversion, starts the next."""
        with self._errors():
            if self._pending is not None:
                index = self._pending
                late = self._clock() - self._started > self.timeout_s  # before looking, as above
                if self._read_register(CONFIG) & OS:
                    self.values[index] = self.decode(self._read_register(CONVERSION),
                                                     self.inputs[index][1])
                    self._pending = None
                elif late:
                    self._pending = None
                    raise self._not_ready(index)
            if self._pending is None:
                self._pending, self._next = self._next, (self._next + 1) % len(self.inputs)
                self._write_register(CONFIG, self._configs[self._pending])
                self._started = self._clock()
        return tuple(self.values)

    def close(self) -> None:
        if getattr(self, "_bus", None) is not None and self._owned:
            self._bus.close()
        self._bus = None
