"""GPIO pins in the gpiozero style: a pin factory per board, and a mock one for tests.

Drivers take :class:`Pin` objects (the MPR121's IRQ line, an OLED reset line, a status
LED) instead of calling a GPIO library, so the same driver runs on a Pi 4 (RPi.GPIO), a
Pi 5 (rpi-lgpio, which installs the same ``RPi.GPIO`` module on top of lgpio), a Jetson
(Jetson.GPIO, same API, BOARD numbering) or in tests (:class:`MockPinFactory`).
The board's library is imported only when a real factory is created.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Callable

from lanthorn.errors import install_hint

from .board import Board
from .interfaces import PartError

EDGES = ("rising", "falling", "both")


class Pin(ABC):
    """One GPIO line. ``number`` is in the board's numbering (BCM on a Pi, BOARD on a Jetson)."""

    def __init__(self, factory: "PinFactory", number: int):
        self.factory = factory
        self.number = number

    @abstractmethod
    def input(self, pull: str | None = None) -> None:
        """Make it an input; pull is "up", "down" or None (external resistor)."""

    @abstractmethod
    def output(self, initial: int = 0) -> None: ...

    @abstractmethod
    def read(self) -> bool: ...

    @abstractmethod
    def write(self, value) -> None: ...

    @abstractmethod
    def when_changed(self, edge: str, callback: Callable[[int], None] | None,
                     bounce_ms: int = 0) -> None:
        """Call ``callback(pin_number)`` on the given edge; None removes it."""

    def close(self) -> None:
        self.factory.release(self.number)


class PinFactory(ABC):
    def __init__(self):
        self.pins: dict[int, Pin] = {}

    def pin(self, number: int) -> Pin:
        if number in self.pins:
            raise PartError(f"GPIO{number}", "pin is already in use by another part")
        pin = self.pins[number] = self._make(number)
        return pin

    @abstractmethod
    def _make(self, number: int) -> Pin: ...

    def release(self, number: int) -> None:
        self.pins.pop(number, None)

    def close(self) -> None:
        for pin in list(self.pins.values()):
            pin.close()


# ---------------------------------------------------------------- RPi.GPIO-style libraries
class LibraryPin(Pin):
    def __init__(self, factory: "LibraryPinFactory", number: int):
        super().__init__(factory, number)
        self.gpio = factory.gpio
        self._has_event = False

    def input(self, pull=None):
        g = self.gpio
        if pull is None or not self.factory.supports_pull:
            g.setup(self.number, g.IN)
        else:
            g.setup(self.number, g.IN, pull_up_down={"up": g.PUD_UP, "down": g.PUD_DOWN}[pull])

    def output(self, initial=0):
        self.gpio.setup(self.number, self.gpio.OUT, initial=self.gpio.HIGH if initial else self.gpio.LOW)

    def read(self):
        return bool(self.gpio.input(self.number))

    def write(self, value):
        self.gpio.output(self.number, self.gpio.HIGH if value else self.gpio.LOW)

    def when_changed(self, edge, callback, bounce_ms=0):
        g = self.gpio
        if self._has_event:
            g.remove_event_detect(self.number)
            self._has_event = False
        if callback is None:
            return
        kind = {"rising": g.RISING, "falling": g.FALLING, "both": g.BOTH}[edge]
        kwargs = {"bouncetime": bounce_ms} if bounce_ms else {}
        g.add_event_detect(self.number, kind, callback=callback, **kwargs)
        self._has_event = True

    def close(self):
        if self._has_event:
            self.gpio.remove_event_detect(self.number)
            self._has_event = False
        self.gpio.cleanup(self.number)
        super().close()


class LibraryPinFactory(PinFactory):
    """Pins through RPi.GPIO (Pi 4), rpi-lgpio's RPi.GPIO (Pi 5) or Jetson.GPIO (Jetson)."""

    def __init__(self, board: Board):
        super().__init__()
        self.board = board
        try:
            self.gpio = importlib.import_module(board.gpio_module)
        except ModuleNotFoundError:
            raise PartError("gpio", f"{board.title} needs the {board.gpio_package} package "
                                    f"(module {board.gpio_module}): {install_hint(board.extra)}") from None
        except RuntimeError as exc:  # RPi.GPIO raises this off a Pi or without /dev/gpiomem access
            raise PartError("gpio", f"{board.gpio_module} cannot run here ({exc}); add the user "
                                    f"to the 'gpio' group") from None
        # Jetson.GPIO ignores pull_up_down (no internal pulls on its header): wire a resistor
        self.supports_pull = board.gpio_module != "Jetson.GPIO"
        self.gpio.setwarnings(False)
        self.gpio.setmode(getattr(self.gpio, board.numbering))

    def _make(self, number):
        if number not in self.board.gpio_pins:
            raise PartError(f"GPIO{number}", f"not a GPIO pin on {self.board.title}")
        return LibraryPin(self, number)


# ---------------------------------------------------------------- tests and the simulator
class MockPin(Pin):
    """A pin whose external level tests set with :meth:`drive`; edges fire callbacks."""

    def __init__(self, factory, number):
        super().__init__(factory, number)
        self.mode: str | None = None
        self.pull: str | None = None
        self.level = 0
        self._callback = None
        self._edge = "both"

    def input(self, pull=None):
        self.mode, self.pull = "in", pull
        self.level = 1 if pull == "up" else 0

    def output(self, initial=0):
        self.mode, self.level = "out", int(bool(initial))

    def read(self):
        return bool(self.level)

    def write(self, value):
        if self.mode != "out":
            raise PartError(f"GPIO{self.number}", "write to a pin that is not an output")
        self.level = int(bool(value))

    def drive(self, level: int) -> None:
        """The outside world pulls the line to ``level``."""
        old, self.level = self.level, int(bool(level))
        if self._callback and old != self.level:
            rising = self.level == 1
            if self._edge == "both" or (self._edge == "rising") == rising:
                self._callback(self.number)

    def when_changed(self, edge, callback, bounce_ms=0):
        if edge not in EDGES:
            raise ValueError(f"edge must be one of {EDGES}")
        self._edge, self._callback = edge, callback


class MockPinFactory(PinFactory):
    def _make(self, number):
        return MockPin(self, number)


def pin_factory_for(board: Board) -> PinFactory:
    """The real factory for a board, or the mock one for the simulator."""
    return MockPinFactory() if board.name == "sim" else LibraryPinFactory(board)
