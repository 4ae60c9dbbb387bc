"""ROHM BH1750 ambient light sensor over I2C (smbus2).

The BH1750 has no registers: one-byte opcodes select the mode, and a plain 2-byte read
returns the latest measurement, big endian. We power it on, reset the data register and
start continuous high-resolution mode (1 lx resolution, a new value every ~120 ms), so a
read never waits. lux = counts / 1.2 at the default measurement time (MTreg = 69).
"""
from __future__ import annotations

from ..interfaces import LightSensor
from .i2c import bus_errors, open_bus

POWER_ON = 0x01
RESET = 0x07
CONTINUOUS_HIGH_RES = 0x10
COUNTS_PER_LUX = 1.2


class BH1750(LightSensor):
    def __init__(self, bus=1, address: int = 0x23, name: str = "light"):
        self.name = name
        self.address = address
        self._bus, self._owned = open_bus(bus, name)
        self._bus_label = bus if isinstance(bus, int) else getattr(bus, "label", "?")
        try:
            with self._errors():
                for opcode in (POWER_ON, RESET, CONTINUOUS_HIGH_RES):
                    self._bus.write_byte(address, opcode)
        except Exception:
            self.close()
            raise

    def _errors(self):
        return bus_errors(self.name, self.address, self._bus_label)

    def read_lux(self) -> float:
        from smbus2 import i2c_msg
        msg = i2c_msg.read(self.address, 2)
        with self._errors():
            self._bus.i2c_rdwr(msg)
        hi, lo = bytes(msg)
        return (hi << 8 | lo) / COUNTS_PER_LUX

    def close(self) -> None:
        if getattr(self, "_bus", None) is not None and self._owned:
            self._bus.close()
        self._bus = None
