"""What the 6-axis IMU drivers share: the bus, error wording, counts -> units, replug checks.

A chip that lost power (unplugged and plugged back, a brown-out) comes back in its power-on
state: asleep or powered down, every output register zero, while it still answers on the
bus. A real accelerometer never reads exactly zero on all three axes (gravity is always
there), so an all-zero burst makes the driver look at the chip's power register, and a chip
found in its power-on state raises PartError: part health then re-opens the part, which
configures it again.
"""
from __future__ import annotations

import time

from ..channels import Channel, ChannelSensor
from ..interfaces import PartError
from .i2c import bus_errors, open_bus

FULL_SCALE_COUNTS = 32768.0


class IMU(ChannelSensor):
    """Base for the MPU-6050 and LSM6DS3 drivers; subclasses implement _start and _burst."""

    chip = "IMU"
    who_am_i_register = 0x00
    who_am_i_values: tuple[int, ...] = ()

    def __init__(self, bus, address, accel_range_g, gyro_range_dps, sample_rate_hz,
                 channels: tuple[Channel, ...] | None, name: str, sleep=time.sleep):
        self.name, self.address = name, address
        self.accel_range_g, self.gyro_range_dps = int(accel_range_g), int(gyro_range_dps)
        self.sample_rate_hz = float(sample_rate_hz)
        self.channels = channels or default_channels(self.accel_range_g, self.gyro_range_dps)
        self._sleep = sleep
        self._bus, self._owned = open_bus(bus, name)
        self._bus_label = bus if isinstance(bus, int) else getattr(bus, "label", "?")
        self.g_per_count = self.accel_range_g / FULL_SCALE_COUNTS
        self.dps_per_count = self.gyro_range_dps / FULL_SCALE_COUNTS
        try:
            with self._errors():
                self._check_identity()
                self._start()
        except Exception:
            self.close()
            raise

    def _errors(self):
        return bus_errors(self.name, self.address, self._bus_label)

    def _check_identity(self) -> None:
        who = self._bus.read_byte_data(self.address, self.who_am_i_register)
        if who not in self.who_am_i_values:
            expected = " or ".join(f"{v:#04x}" for v in self.who_am_i_values)
            raise PartError(self.name, f"the chip at I2C address {self.address:#04x} is not an "
                                       f"{self.chip} (WHO_AM_I reads {who:#04x}, expected "
                                       f"{expected}); check the part type and the address")

    def _start(self) -> None:
        raise NotImplementedError

    def _burst(self) -> tuple[list[int], list[int]]:
        """Raw signed counts (accel xyz, gyro xyz)."""
        raise NotImplementedError

    def _in_power_on_state(self) -> bool:
        raise NotImplementedError

    def read(self) -> tuple[float, ...]:
        """(ax, ay, az) in g and (gx, gy, gz) in degrees/s."""
        with self._errors():
            accel, gyro = self._burst()
            if not any(accel) and not any(gyro) and self._in_power_on_state():
                raise PartError(self.name, f"the {self.chip} is in its power-on state (it was "
                                           f"unplugged or lost power); it needs re-initialising")
        return self.decode(accel, gyro)

    def decode(self, accel, gyro) -> tuple[float, ...]:
        g, d = self.g_per_count, self.dps_per_count
        return tuple(c * g for c in accel) + tuple(c * d for c in gyro)

    def close(self) -> None:
        if getattr(self, "_bus", None) is not None and self._owned:
            self._bus.close()
        self._bus = None


def signed16(hi: int, lo: int) -> int:
    v = hi << 8 | lo
    return v - 0x10000 if v & 0x8000 else v


def default_channels(accel_g: float, gyro_dps: float, rate_hz: float = 100.0):
    return tuple(Channel(n, "g", -accel_g, accel_g, "signed", rate_hz) for n in ("ax", "ay", "az")) \
        + tuple(Channel(n, "dps", -gyro_dps, gyro_dps, "signed", rate_hz) for n in ("gx", "gy", "gz"))
