"""WS2812 pixels driven from an SPI MOSI line (Raspberry Pi 5, Jetson) through spidev.

WS2812 data is a self-clocked pulse train: every bit lasts ~1.25 us, a 0 is a short high
pulse (~0.35 us) and a 1 a long one (~0.8 us); the pixels latch when the line stays low
for more than 50 us (280 us for the newer WS2812B-V5, so we send 300 us). Clocking SPI at
``hz`` (2.4-6.4 MHz), each WS2812 bit becomes ``round(hz * 1.25 us)`` SPI bits with the
right number of leading ones; at the default 6.4 MHz that is one SPI byte per WS2812 bit
(0 -> 0b11000000, 1 -> 0b11111000). Colour bytes go out in the strip's wire order (GRB
for WS2812B), most significant bit first.

Encoding is a table lookup into preallocated buffers, so ``show`` allocates nothing.
A frame must go out as one SPI transfer (a gap between chunks would latch a half frame):
the transfer must fit spidev's ``bufsiz`` (4096 bytes by default; 6.4 MHz fits 160 pixels).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lanthorn.errors import install_hint

from ..interfaces import LedStrip, PartError

BIT_PERIOD_S = 1.25e-6
T0H_S = 0.35e-6
T1H_S = 0.80e-6
LATCH_S = 300e-6
SPIDEV_BUFSIZ = Path("/sys/module/spidev/parameters/bufsiz")


def symbol_table(hz: int) -> np.ndarray:
    """(256, bytes_per_colour_byte) uint8: the SPI bytes that encode each colour byte."""
    bits = round(hz * BIT_PERIOD_S)
    t0, t1 = max(1, round(hz * T0H_S)), round(hz * T1H_S)
    if bits < 3 or t1 <= t0 or t1 >= bits:
        raise ValueError(f"SPI clock {hz} Hz cannot shape WS2812 pulses; use 2.4-6.4 MHz")
    one = np.array([1] * t1 + [0] * (bits - t1), np.uint8)
    zero = np.array([1] * t0 + [0] * (bits - t0), np.uint8)
    values = np.arange(256, dtype=np.uint8)
    msb_first = np.unpackbits(values[:, None], axis=1)  # (256, 8)
    # 8 WS2812 bits of `bits` SPI bits each: always a whole number of SPI bytes
    pattern = np.where(msb_first[:, :, None] == 1, one, zero).reshape(256, 8 * bits)
    return np.packbits(pattern, axis=1)


def channel_order(order: str) -> list[int]:
    """Indices into an RGB pixel in wire order, e.g. "GRB" -> [1, 0, 2]."""
    return ["RGB".index(c) for c in order.upper()]


class Ws2812Spi(LedStrip):
    def __init__(self, n_pixels: int, bus: int = 0, device: int = 0, hz: int = 6_400_000,
                 order: str = "GRB", brightness: float = 1.0, power_cap_ma: float | None = None,
                 name: str = "leds", spi=None):
        super().__init__(n_pixels, brightness, power_cap_ma)
        self.name = name
        self.hz = hz
        self._order = np.array(channel_order(order))
        self._table = symbol_table(hz)
        per_byte = self._table.shape[1]
        latch = math.ceil(LATCH_S * hz / 8)
        # [1 low byte][pixels][latch low bytes]: starting low guarantees the first edge
        self._buf = np.zeros(1 + n_pixels * 3 * per_byte + latch, np.uint8)
        self._pixels = self._buf[1:1 + n_pixels * 3 * per_byte].reshape(n_pixels * 3, per_byte)
        self._wire = np.zeros((n_pixels, 3), np.uint8)
        self._wire_flat = self._wire.reshape(-1)          # a view made once, not per frame
        self._symbols = np.zeros(n_pixels * 3, np.intp)  # the wire bytes as table indices
        self._check_bufsiz()
        if spi is None:
            spi = self._open(bus, device)
        self._spi = spi
        self._spi.max_speed_hz = hz
        self._spi.mode = 0

    def _open(self, bus: int, device: int):
        try:
            import spidev
        except ModuleNotFoundError:
            raise PartError(self.name, "needs the spidev package: " + install_hint("pi5")) from None
        spi = spidev.SpiDev()
        try:
            spi.open(bus, device)
        except FileNotFoundError:
            raise PartError(self.name, f"/dev/spidev{bus}.{device} does not exist: enable SPI "
                                       f"(Pi: raspi-config > Interface Options > SPI; Jetson: "
                                       f"jetson-io.py > Configure 40-pin header > spi1)") from None
        except PermissionError:
            raise PartError(self.name, f"no permission to open /dev/spidev{bus}.{device}: add the "
                                       f"user to the 'spi' group") from None
        return spi

    def _check_bufsiz(self) -> None:
        try:
            limit = int(SPIDEV_BUFSIZ.read_text())
        except (OSError, ValueError):
            return
        if self._buf.size > limit:
            raise PartError(self.name, f"a frame of {self.n_pixels} pixels is {self._buf.size} SPI bytes, "
                                       f"over spidev's bufsiz of {limit}; add spidev.bufsiz=65536 "
                                       f"to the kernel command line")

    def encode(self, frame: np.ndarray) -> np.ndarray:
        """Fill and return the SPI buffer for an RGB frame (a view; valid until the next call)."""
        # mode="clip": with the default "raise", numpy buffers ``out`` (a copy per call);
        # the indices are in range by construction (colour bytes 0..255, channels 0..2)
        # uint8 indices would be converted to intp (a new array) per call, so copy them into
        # our own intp buffer first
        np.take(frame, self._order, axis=1, out=self._wire, mode="clip")
        np.copyto(self._symbols, self._wire_flat)
        np.take(self._table, self._symbols, axis=0, out=self._pixels, mode="clip")
        return self._buf

    def _write(self, frame: np.ndarray) -> None:
        buf = self.encode(frame)
        try:
            self._spi.writebytes2(buf)
        except OSError as exc:
            raise PartError(self.name, f"SPI write failed ({exc.strerror or exc}); check that SPI "
                                       f"is enabled and nothing else uses the bus") from exc

    def close(self) -> None:
        if getattr(self, "_spi", None) is None:
            return
        try:
            self.off()
        except Exception:
            pass
        self._spi.close()
        self._spi = None
