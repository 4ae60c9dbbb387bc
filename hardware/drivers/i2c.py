"""Opening I2C buses and turning bus errors into PartErrors a maker can act on.

Every I2C driver goes through :func:`open_bus` and :func:`bus_errors`, so "nothing
answers at 0x5A" reads the same for every chip and always says what to check.
"""
from __future__ import annotations

import errno
import threading
from contextlib import contextmanager

from lanthorn.errors import install_hint

from ..interfaces import PartError

WIRING_HINT = "check wiring (SDA/SCL, 3.3 V, GND), pull-ups and the address jumper"


def open_bus(bus, part: str):
    """An smbus2.SMBus for a bus number, or ``bus`` itself when it is already a bus object.

    Returns (bus object, whether we own it and must close it).
    """
    if not isinstance(bus, int):
        return bus, False
    try:
        import smbus2
    except ModuleNotFoundError:
        raise PartError(part, "needs the smbus2 package: " + install_hint("board")) from None
    try:
        return smbus2.SMBus(bus), True
    except FileNotFoundError:
        raise PartError(part, f"/dev/i2c-{bus} does not exist: enable I2C (Raspberry Pi: "
                              f"raspi-config > Interface Options > I2C; Jetson: check the bus "
                              f"number, header pins 3/5 are bus 7)") from None
    except PermissionError:
        raise PartError(part, f"no permission to open /dev/i2c-{bus}: add the user to the "
                              f"'i2c' group (sudo usermod -aG i2c $USER) and log in again") from None
    except OSError as exc:
        raise PartError(part, f"cannot open /dev/i2c-{bus}: {exc.strerror or exc}") from None


def describe_oserror(exc: OSError) -> str:
    if exc.errno in (errno.EREMOTEIO, errno.ENXIO, errno.EIO):
        return "no answer"
    if exc.errno == errno.ETIMEDOUT:
        return "bus timeout (SDA or SCL held low?)"
    return exc.strerror or str(exc)


@contextmanager
def bus_errors(part: str, address: int, bus_label):
    """Re-raise OSError from the bus as PartError naming part, address, bus and what to check."""
    try:
        yield
    except PartError:
        raise
    except OSError as exc:
        raise PartError(part, f"{describe_oserror(exc)} at I2C address {address:#04x} on bus "
                              f"{bus_label} ({exc.strerror or exc}); {WIRING_HINT}") from exc


class SMBusI2C:
    """The CircuitPython ``busio.I2C`` interface over an smbus2 bus.

    Adafruit's CircuitPython drivers (the maintained VL53L0X driver among them) talk to an
    object with try_lock/unlock/writeto/readfrom_into/writeto_then_readfrom. On Linux Blinka
    would provide it after detecting the board; this adapter lets the drivers share the
    smbus2 bus lanthorn already opened, with raw i2c_rdwr transfers (repeated start for
    write-then-read, as the chips expect), on any board.
    """

    def __init__(self, bus):
        self.bus = bus
        self._lock = threading.Lock()

    def try_lock(self) -> bool:
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        self._lock.release()

    def writeto(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        from smbus2 import i2c_msg
        self.bus.i2c_rdwr(i2c_msg.write(address, bytes(buffer[start:end])))

    def readfrom_into(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        from smbus2 import i2c_msg
        end = len(buffer) if end is None else end
        msg = i2c_msg.read(address, end - start)
        self.bus.i2c_rdwr(msg)
        buffer[start:end] = bytes(msg)

    def writeto_then_readfrom(self, address: int, buffer_out, buffer_in, *, out_start: int = 0,
                              out_end: int | None = None, in_start: int = 0,
                              in_end: int | None = None) -> None:
        from smbus2 import i2c_msg
        in_end = len(buffer_in) if in_end is None else in_end
        write = i2c_msg.write(address, bytes(buffer_out[out_start:out_end]))
        read = i2c_msg.read(address, in_end - in_start)
        self.bus.i2c_rdwr(write, read)
        buffer_in[in_start:in_end] = bytes(read)

    def deinit(self) -> None:
        """Blinka API; the bus belongs to whoever opened it."""
