"""NXP MPR121 12-electrode capacitive touch controller over I2C (smbus2).

Register map and start-up follow the NXP datasheet and Adafruit's widely used driver:
soft reset, stop mode, check CONFIG2 reads its reset value 0x24 (which proves an MPR121
answers, not some other chip at that address), per-electrode touch/release thresholds,
the baseline filter settings, debounce, charge current and timing, then run mode with
baseline tracking. A scan is two block reads: touch status + out-of-range + filtered
data (0x00..0x1D), then the 12 baseline bytes (0x1E..0x29).
"""
from __future__ import annotations

import time

import numpy as np

from ..interfaces import PartError, TouchReading, TouchSensor
from .i2c import bus_errors, open_bus

TOUCH_STATUS = 0x00  # 2 bytes, bit i = electrode i touched; bit 15 = over-current flag
OOR_STATUS = 0x02
FILTERED_DATA = 0x04  # 2 bytes per electrode, little endian, 10 bits
BASELINE = 0x1E  # 1 byte per electrode, the 8 high bits of a 10-bit value
MHDR, NHDR, NCLR, FDLR = 0x2B, 0x2C, 0x2D, 0x2E  # rising
MHDF, NHDF, NCLF, FDLF = 0x2F, 0x30, 0x31, 0x32  # falling
NHDT, NCLT, FDLT = 0x33, 0x34, 0x35  # touched
TOUCH_THRESHOLD = 0x41  # then release at 0x42, 2 registers per electrode
DEBOUNCE = 0x5B
CONFIG1 = 0x5C  # FFI and charge current
CONFIG2 = 0x5D  # charge time, SFI, ESI
ECR = 0x5E  # electrode configuration: 0 = stop mode
SOFT_RESET = 0x80
SOFT_RESET_VALUE = 0x63
CONFIG2_RESET_VALUE = 0x24
OVER_CURRENT = 0x8000

# (register, value) written after the thresholds, as in Adafruit's driver.
FILTER_SETTINGS = (
    (MHDR, 0x01), (NHDR, 0x01), (NCLR, 0x0E), (FDLR, 0x00),
    (MHDF, 0x01), (NHDF, 0x05), (NCLF, 0x01), (FDLF, 0x00),
    (NHDT, 0x00), (NCLT, 0x00), (FDLT, 0x00),
    (DEBOUNCE, 0x00),
    (CONFIG1, 0x10),  # 16 uA charge current, first filter 6 samples
    (CONFIG2, 0x20),  # 0.5 us charge time, 1 ms sample interval
)
ECR_BASELINE_TRACKING = 0x80  # CL=10: baseline tracking, initial value from the first reading


class MPR121(TouchSensor):
    """12 pads on an MPR121. ``bus`` is an I2C bus number or an open smbus2-like object.

    ``irq`` (optional) is a :class:`lanthorn.hardware.gpio.Pin` wired to the chip's IRQ
    output (open drain, low while a touch status change is unread).
    """

    def __init__(self, bus=1, address: int = 0x5A, pads: int = 12, touch_threshold: int = 12,
                 release_threshold: int = 6, irq=None, name: str = "touch"):
        self.name = name
        self.address = address
        self.n_pads = pads
        self._bus, self._owned = open_bus(bus, name)
        self._bus_label = bus if isinstance(bus, int) else getattr(bus, "label", "?")
        self._irq = irq
        self._mask = (1 << pads) - 1
        try:
            self._start(touch_threshold, release_threshold)
        except Exception:
            self.close()
            raise
        if irq is not None:
            irq.input(pull="up")

    def _errors(self):
        return bus_errors(self.name, self.address, self._bus_label)

    def _start(self, touch: int, release: int) -> None:
        write = self._bus.write_byte_data
        with self._errors():
            write(self.address, SOFT_RESET, SOFT_RESET_VALUE)
            time.sleep(0.001)
            write(self.address, ECR, 0x00)  # stop mode: configuration is only accepted there
            config2 = self._bus.read_byte_data(self.address, CONFIG2)
            if config2 != CONFIG2_RESET_VALUE:
                raise PartError(self.name, f"the chip at I2C address {self.address:#04x} is not an "
                                           f"MPR121 in its reset state (CONFIG2 reads {config2:#04x}, "
                                           f"expected {CONFIG2_RESET_VALUE:#04x}); check the address")
            for i in range(12):
                write(self.address, TOUCH_THRESHOLD + 2 * i, touch)
                write(self.address, TOUCH_THRESHOLD + 2 * i + 1, release)
            for register, value in FILTER_SETTINGS:
                write(self.address, register, value)
            write(self.address, ECR, ECR_BASELINE_TRACKING | self.n_pads)

    def read(self) -> TouchReading:
        with self._errors():
            block = self._bus.read_i2c_block_data(self.address, TOUCH_STATUS, 0x1E)
            base = self._bus.read_i2c_block_data(self.address, BASELINE, self.n_pads)
            if not any(block) and not any(base[:self.n_pads]):
                # all zero: a running chip never reads that. After a replug or brown-out it
                # is back in its power-on stop mode (ECR 0) and must be configured again
                if self._bus.read_byte_data(self.address, ECR) & 0x3F == 0:
                    raise PartError(self.name, "the chip is in stop mode (it was unplugged or "
                                               "lost power); it needs re-initialising")
        return self.decode(block, base)

    def decode(self, block, base) -> TouchReading:
        """Turn the raw register bytes of one scan into a TouchReading."""
        status = block[0] | block[1] << 8
        if status & OVER_CURRENT:
            raise PartError(self.name, "over-current flag set: the REXT pin or an electrode is shorted "
                                       "to ground or VDD; check the pad wiring, then restart")
        data = np.frombuffer(bytes(block[FILTERED_DATA:FILTERED_DATA + 2 * self.n_pads]), "<u2")
        raw = (data & 0x3FF).astype(np.uint16)
        baseline = np.frombuffer(bytes(base[:self.n_pads]), np.uint8).astype(np.uint16) << 2
        return TouchReading(raw=raw, baseline=baseline, touched=status & self._mask)

    def irq_pending(self) -> bool | None:
        """True while the IRQ line is low (unread change), None without an IRQ pin."""
        return None if self._irq is None else not self._irq.read()

    def close(self) -> None:
        if getattr(self, "_bus", None) is None:
            return
        try:
            with self._errors():
                self._bus.write_byte_data(self.address, ECR, 0x00)  # stop scanning
        except PartError:
            pass
        if self._irq is not None:
            self._irq.close()
        if self._owned:
            self._bus.close()
        self._bus = None
