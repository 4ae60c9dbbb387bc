"""WS2812 pixels on a Raspberry Pi 4 through rpi_ws281x (PWM + DMA, GPIO 18 by default).

rpi_ws281x generates the pulse train in hardware, so timing holds however busy the CPU
is. It needs root (it maps the PWM and DMA registers through /dev/mem) and conflicts with
the analogue audio output, which shares PWM0. It cannot drive a Pi 5 (the RP1 chip has no
compatible PWM/DMA path): the Pi 5 uses :mod:`.ws2812_spi`.

The strip type tells the library the wire colour order, so frames are handed over as
plain RGB; brightness stays at 255 because :func:`limit_frame` already applied ours.
"""
from __future__ import annotations

import atexit

import numpy as np

from lanthorn.errors import install_hint

from ..interfaces import LedStrip, PartError

WS2812_HZ = 800_000
PWM1_PINS = (13, 19)  # PWM channel 1; 12/18 are channel 0, 21 is PCM, 10 is SPI


class Ws2812Pwm(LedStrip):
    def __init__(self, n_pixels: int, pin: int = 18, order: str = "GRB", dma: int = 10,
                 brightness: float = 1.0, power_cap_ma: float | None = None, name: str = "leds"):
        super().__init__(n_pixels, brightness, power_cap_ma)
        self.name = name
        try:
            from rpi_ws281x import PixelStrip, ws
        except ModuleNotFoundError:
            raise PartError(name, "needs the rpi_ws281x package: " + install_hint("pi4")) from None
        strip_type = getattr(ws, f"WS2811_STRIP_{order.upper()}", None)
        if strip_type is None:
            raise PartError(name, f"rpi_ws281x has no colour order {order!r}")
        channel = 1 if pin in PWM1_PINS else 0
        self._strip = PixelStrip(n_pixels, pin, WS2812_HZ, dma, False, 255, channel, strip_type)
        try:
            self._strip.begin()
        except RuntimeError as exc:
            _forget(self._strip)
            self._strip = None
            raise PartError(name, f"rpi_ws281x could not start on GPIO{pin} ({exc}); it must run as "
                                  f"root, and the analogue audio must be off "
                                  f"(dtparam=audio=off in /boot/firmware/config.txt)") from exc
        self._packed = np.zeros(n_pixels, np.uint32)

    def _write(self, frame: np.ndarray) -> None:
        f = frame.astype(np.uint32, copy=False)
        np.bitwise_or(f[:, 0] << 16, f[:, 1] << 8, out=self._packed)
        self._packed |= f[:, 2]
        set_pixel = self._strip.setPixelColor
        for i, colour in enumerate(self._packed.tolist()):
            set_pixel(i, colour)
        try:
            self._strip.show()
        except RuntimeError as exc:
            raise PartError(self.name, f"rpi_ws281x render failed ({exc})") from exc

    def close(self) -> None:
        if getattr(self, "_strip", None) is None:
            return
        try:
            self.off()
        except Exception:
            pass
        cleanup = getattr(self._strip, "_cleanup", None)
        if cleanup is not None:
            cleanup()
        _forget(self._strip)
        self._strip = None


def _forget(strip) -> None:
    """Take back the exit hook PixelStrip registers for itself.

    rpi_ws281x's PixelStrip registers ``atexit(self._cleanup)`` when it is made, and that
    cleanup calls ``ws2811_fini`` on its C struct. After a failed ``begin()`` the struct was
    never initialised, so the hook segfaults the process at exit (rc 139 after a selftest or
    a Ctrl-C that had otherwise ended well). After our own close() it has nothing left to do.
    """
    cleanup = getattr(strip, "_cleanup", None)
    if cleanup is not None:
        atexit.unregister(cleanup)
    if hasattr(strip, "_leds"):
        strip._leds = None  # the library's own "nothing to free" state
