"""SSD1306 OLED (128x64 on the default piece) through luma.oled over I2C.

luma.oled owns the SSD1306 command set (init sequence, addressing, contrast) and luma.core
the I2C transport: with a bus number luma opens smbus2 itself and sends a full frame as
large i2c_rdwr transfers (a 1 KiB frame takes ~25 ms at 400 kHz). Some modules bring the
chip's RESET pin out; when the profile names ``reset_pin`` we pulse it low before init.
"""
from __future__ import annotations

import time

from lanthorn.errors import install_hint

from ..interfaces import Display, PartError
from .i2c import WIRING_HINT


class Ssd1306(Display):
    def __init__(self, bus: int = 1, address: int = 0x3C, width: int = 128, height: int = 64,
                 rotate: int = 0, reset=None, name: str = "display"):
        self.name = name
        self.address = address
        self.width, self.height = width, height
        self._reset = reset
        try:
            import luma.core.error as luma_error
            from luma.core.interface.serial import i2c
            from luma.oled.device import ssd1306
        except ModuleNotFoundError:
            raise PartError(name, "needs luma.oled: " + install_hint("board")) from None
        self._luma_error = luma_error.Error
        if reset is not None:
            reset.output(1)
            reset.write(0)
            time.sleep(0.01)
            reset.write(1)
            time.sleep(0.01)
        self._device = None
        with self._errors():
            serial = i2c(port=bus, address=address)
            self._device = ssd1306(serial, width=width, height=height, rotate=rotate)
        self._bus = bus

    def _errors(self):
        return _LumaErrors(self)

    def _write(self, image) -> None:
        assert self._device is not None, "a display is not written after close()"
        with self._errors():
            self._device.display(image)

    def close(self) -> None:
        if self._device is not None:
            try:
                self._device.cleanup()  # clears and switches the panel off, closes the bus
            except Exception:
                pass
            self._device = None
        if self._reset is not None:
            self._reset.close()
            self._reset = None


class _LumaErrors:
    def __init__(self, display: Ssd1306):
        self.display = display

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        d = self.display
        if exc is None or isinstance(exc, PartError):
            return False
        if isinstance(exc, (OSError, d._luma_error)):
            raise PartError(d.name, f"SSD1306 at I2C address {d.address:#04x}: {exc}; "
                                    f"{WIRING_HINT}") from exc
        return False
