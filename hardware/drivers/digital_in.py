"""Digital inputs on a GPIO pin: a PIR motion sensor, a push button, a reed switch.

One binary channel per part, read through the board's pin factory
(:mod:`lanthorn.hardware.gpio`: RPi.GPIO on a Pi 4, rpi-lgpio on a Pi 5, Jetson.GPIO on a
Jetson, a mock or simulated pin in tests and the simulator), so no GPIO library is imported
here.

* ``pull``: "up", "down" or None. A button or reed switch wired from the pin to GND wants
  "up" and ``active_low=True`` (pressed = the line pulled low). A PIR module (HC-SR501,
  AM312) drives its output itself: no pull, active high. On a Jetson the header has no
  internal pulls: wire a 10 kΩ resistor (see hardware/README.md).
* ``debounce_ms``: time-based debouncing. A contact chatters for a few milliseconds when it
  closes or opens; the reported state changes only once the line has held its new level for
  ``debounce_ms`` (measured on ``clock``, injectable for tests), so one press is one press.
  0 reports the line as it is (a PIR's output is already clean).

The pin is sampled on every :meth:`read` (the piece reads at its sample rate, 100 Hz), so
no interrupt thread is needed and the same driver runs on every board and in the simulator.
"""
from __future__ import annotations

import time

from ..channels import Channel, ChannelSensor


class DigitalInput(ChannelSensor):
    def __init__(self, pin, pull: str | None = "up", active_low: bool = True,
                 debounce_ms: float = 20.0, channels: tuple[Channel, ...] | None = None,
                 name: str = "button", clock=time.monotonic):
        self.name = name
        self.channels = channels or (Channel(name, "on", 0.0, 1.0, "binary"),)
        self.pin = pin
        self.active_low = bool(active_low)
        self.debounce_s = float(debounce_ms) / 1000.0
        self._clock = clock
        pin.input(pull=pull)
        self._state = self._active(pin.read())  # what we report
        self._candidate = self._state  # the level the line moved to
        self._since = clock()  # when the line moved to it

    def _active(self, level: bool) -> bool:
        return bool(level) != self.active_low

    def read(self) -> tuple[float]:
        """(1.0,) while active (pressed, motion seen, magnet near), else (0.0,)."""
        now = self._clock()
        level = self._active(self.pin.read())
        if level != self._candidate:
            self._candidate, self._since = level, now
        if self._candidate != self._state and now - self._since >= self.debounce_s:
            self._state = self._candidate
        return (1.0 if self._state else 0.0,)

    def close(self) -> None:
        if self.pin is not None:
            self.pin.close()
            self.pin = None
