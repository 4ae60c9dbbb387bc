"""Vishay VEML7700 ambient light sensor over I2C (smbus2).

16-bit little-endian registers, which is exactly SMBus word order: ALS_CONF (0x00) holds
gain (bits 12:11), integration time (bits 9:6) and shutdown (bit 0); ALS (0x04) the count.
Lux per count follows Vishay's resolution table (0.0036 lx/count at gain 2 and 800 ms,
scaling inversely with gain and integration time, as Adafruit's driver computes it), and
above 1000 lx Vishay's application note polynomial corrects the sensor's non-linearity.
"""
from __future__ import annotations

from ..interfaces import LightSensor
from .i2c import bus_errors, open_bus

ALS_CONF = 0x00
POWER_SAVING = 0x03
ALS = 0x04
GAIN_BITS = {1: 0b00, 2: 0b01, 0.125: 0b10, 0.25: 0b11}  # ALS_GAIN, bits 12:11
IT_BITS = {25: 0b1100, 50: 0b1000, 100: 0b0000, 200: 0b0001, 400: 0b0010, 800: 0b0011}  # bits 9:6
RESOLUTION_AT_MAX = 0.0036  # lx/count at gain 2, 800 ms


def config_word(gain: float, integration_ms: int) -> int:
    return GAIN_BITS[gain] << 11 | IT_BITS[integration_ms] << 6  # persistence 1, no interrupt, powered on


def lux_per_count(gain: float, integration_ms: int) -> float:
    return RESOLUTION_AT_MAX * (800 / integration_ms) * (2 / gain)


def correct_nonlinearity(lux: float) -> float:
    """Vishay's correction (application note "Designing the VEML7700 Into an Application")."""
    return (6.0135e-13 * lux ** 4 - 9.3924e-9 * lux ** 3 + 8.1488e-5 * lux ** 2 + 1.0023 * lux)


class VEML7700(LightSensor):
    def __init__(self, bus=1, address: int = 0x10, gain: float = 0.25, integration_ms: int = 100,
                 name: str = "light"):
        if gain not in GAIN_BITS or integration_ms not in IT_BITS:
            raise ValueError(f"{name}: gain {gain} / integration {integration_ms} ms not supported")
        self.name = name
        self.address = address
        self.resolution = lux_per_count(gain, integration_ms)
        self._bus, self._owned = open_bus(bus, name)
        self._bus_label = bus if isinstance(bus, int) else getattr(bus, "label", "?")
        try:
            with self._errors():
                self._bus.write_word_data(address, ALS_CONF, config_word(gain, integration_ms))
                self._bus.write_word_data(address, POWER_SAVING, 0x0000)
        except Exception:
            self.close()
            raise

    def _errors(self):
        return bus_errors(self.name, self.address, self._bus_label)

    def read_lux(self) -> float:
        with self._errors():
            counts = self._bus.read_word_data(self.address, ALS)
        lux = counts * self.resolution
        return correct_nonlinearity(lux) if lux > 1000 else lux

    def close(self) -> None:
        if getattr(self, "_bus", None) is not None:
            try:
                with self._errors():
                    self._bus.write_word_data(self.address, ALS_CONF, 0x0001)  # shut down
            except Exception:
                pass
            if self._owned:
                self._bus.close()
        self._bus = None
