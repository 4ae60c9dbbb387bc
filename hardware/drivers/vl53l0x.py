"""ST VL53L0X time-of-flight distance sensor through Adafruit's maintained driver.

The VL53L0X is configured by hundreds of undocumented register writes (ST's API, ported by
Pololu, then by Adafruit); re-deriving them would be a liability, so this wraps
``adafruit_vl53l0x`` (PyPI: adafruit-circuitpython-vl53l0x, actively maintained) and
hands it the smbus2 bus through :class:`~lanthorn.hardware.drivers.i2c.SMBusI2C`, so no
Blinka board detection is involved. The sensor runs in continuous mode; :meth:`read_mm`
never blocks: it returns the newest measurement, or the previous one when no new
measurement is ready yet.

Out of range: the chip reports 8190/8191 mm (or a value beyond what it can see) when
nothing reflects; that and anything above ``max_range_mm`` is None ("nobody there").
"""
from __future__ import annotations

from contextlib import contextmanager

from lanthorn.errors import install_hint

from ..interfaces import DistanceSensor, PartError
from .i2c import WIRING_HINT, SMBusI2C, bus_errors, open_bus

OUT_OF_RANGE_MM = 8190


class VL53L0X(DistanceSensor):
    def __init__(self, bus=1, address: int = 0x29, max_range_mm: float = 1200.0,
                 timing_budget_ms: int = 33, name: str = "distance", io_timeout_s: float = 0.5):
        self.name = name
        self.address = address
        self.max_range_mm = float(max_range_mm)
        try:
            import adafruit_vl53l0x
        except ModuleNotFoundError:
            raise PartError(name, "needs the adafruit-circuitpython-vl53l0x package: "
                                  + install_hint("board")) from None
        self._bus, self._owned = open_bus(bus, name)
        self._bus_label = bus if isinstance(bus, int) else getattr(bus, "label", "?")
        self._last: float | None = None
        try:
            with self._errors():
                self._sensor = adafruit_vl53l0x.VL53L0X(SMBusI2C(self._bus), address=address,
                                                        io_timeout_s=io_timeout_s)
                self._sensor.measurement_timing_budget = int(timing_budget_ms * 1000)
                self._sensor.start_continuous()
        except Exception:
            self._sensor = None
            self.close()
            raise

    def _errors(self):
        return _library_errors(self.name, self.address, self._bus_label)

    def read_mm(self) -> float | None:
        with self._errors():
            if self._sensor.data_ready:
                self._last = self.decode(self._sensor.range)
        return self._last

    def decode(self, mm: int) -> float | None:
        if mm <= 0 or mm >= OUT_OF_RANGE_MM or mm > self.max_range_mm:
            return None
        return float(mm)

    def close(self) -> None:
        sensor = getattr(self, "_sensor", None)
        if sensor is not None:
            try:
                sensor.stop_continuous()
            except Exception:
                pass
            self._sensor = None
        if getattr(self, "_bus", None) is not None and self._owned:
            self._bus.close()
        self._bus = None


@contextmanager
def _library_errors(part: str, address: int, bus_label):
    """bus_errors plus the library's own failure modes (ValueError: no device; RuntimeError: timeout, wrong chip)."""
    with bus_errors(part, address, bus_label):
        try:
            yield
        except ValueError as exc:
            if "No I2C device" not in str(exc):
                raise
            raise PartError(part, f"no answer at I2C address {address:#04x} on bus {bus_label}; "
                                  f"{WIRING_HINT}") from exc
        except RuntimeError as exc:  # the library's "Timeout waiting..." / "Failed to find expected ID..."
            raise PartError(part, f"{exc} (I2C address {address:#04x}); check power, wiring and "
                                  f"that XSHUT is not held low") from exc
