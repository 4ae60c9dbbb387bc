"""Which single-board computer we are on, and what that board offers.

Detection reads the device tree model string (``/proc/device-tree/model``), which every
Raspberry Pi and Jetson kernel provides; it is more reliable than CPU info and needs no
library. The board tables here are the one place that knows, per board:

* which GPIO library drives its pins (RPi.GPIO on a Pi 4; rpi-lgpio, which provides the
  same ``RPi.GPIO`` module on top of lgpio, on a Pi 5 whose RP1 chip the old library cannot
  drive; Jetson.GPIO on a Jetson),
* how pins are numbered in profiles (BCM GPIO numbers on a Pi, physical BOARD numbers on
  a Jetson, as Jetson.GPIO's documentation uses) and which numbers are valid,
* which header pins the buses occupy, so a profile cannot put a GPIO on an I2C or SPI line,
* the 40-pin header layout, so error messages and the wiring docs can name physical pins.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lanthorn.errors import UserError

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


class UnsupportedBoard(UserError):
    """This machine is not a board lanthorn knows how to drive. ``model``: what it says it is."""

    def __init__(self, message: str, model: str | None = None):
        super().__init__(message)
        self.model = model


# Physical header pin -> BCM GPIO number, identical on every 40-pin Raspberry Pi.
_PI_PHYSICAL_TO_BCM = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24,
    19: 10, 21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12,
    33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}
# Power and ground pins, the same on the Pi and the Jetson 40-pin headers.
HEADER_POWER = {1: "3V3", 17: "3V3", 2: "5V", 4: "5V",
                **{p: "GND" for p in (6, 9, 14, 20, 25, 30, 34, 39)}}


@dataclass(frozen=True)
class BusPins:
    """Pins an enabled bus occupies, in the board's own numbering (BCM or BOARD)."""

    i2c: dict[int, dict[str, int]] = field(default_factory=dict)  # bus -> {"SDA": pin, "SCL": pin}
    spi: dict[int, dict[str, int]] = field(default_factory=dict)  # bus -> {"MOSI", "MISO", "SCLK", "CE0", "CE1"}


@dataclass(frozen=True)
class Board:
    """Facts about one supported board."""

    name: str  # profile name: pi4, pi5, jetson-orin-nano, sim
    title: str  # for people
    gpio_module: str  # Python module imported to drive GPIO
    gpio_package: str  # the PyPI distribution providing it (the board's pip extra)
    extra: str  # pip extra: lanthorn[pi4], ...
    numbering: str  # "BCM" or "BOARD"
    gpio_pins: frozenset[int]  # valid GPIO numbers in that numbering
    buses: BusPins
    led_drivers: tuple[str, ...]  # WS2812 drivers that work on this board
    default_i2c_bus: int
    physical: dict[int, int]  # GPIO number (board numbering) -> physical header pin

    def physical_pin(self, pin: int) -> int | None:
        return self.physical.get(pin)

    def describe_pin(self, pin: int) -> str:
        """'GPIO18 (header pin 12)' or 'pin 12 (header pin 12)' for messages and docs."""
        phys = self.physical_pin(pin)
        label = f"GPIO{pin}" if self.numbering == "BCM" else f"BOARD pin {pin}"
        return f"{label} (header pin {phys})" if phys is not None else label


_PI_BUSES = BusPins(i2c={1: {"SDA": 2, "SCL": 3}},
                    spi={0: {"MOSI": 10, "MISO": 9, "SCLK": 11, "CE0": 8, "CE1": 7}})
# BCM 0/1 carry the HAT ID EEPROM bus; leave them alone.
_PI_GPIO = frozenset(range(2, 28))
_PI_PHYS = {bcm: phys for phys, bcm in _PI_PHYSICAL_TO_BCM.items()}

# Jetson Orin Nano developer kit: Jetson.GPIO's BOARD-mode pins (its pin table for the
# Orin NX/Nano carrier). Header pins 3/5 are I2C bus 7, 27/28 are I2C bus 1; SPI1 on
# 19/21/23/24/26 appears as /dev/spidev0.0 once enabled with jetson-io.
_JETSON_GPIO = frozenset({7, 11, 12, 13, 15, 16, 18, 19, 21, 22, 23, 24, 26, 29, 31, 32, 33,
                          35, 36, 37, 38, 40})
_JETSON_BUSES = BusPins(i2c={7: {"SDA": 3, "SCL": 5}, 1: {"SDA": 27, "SCL": 28}},
                        spi={0: {"MOSI": 19, "MISO": 21, "SCLK": 23, "CE0": 24, "CE1": 26}})

BOARDS: dict[str, Board] = {
    "pi4": Board("pi4", "Raspberry Pi 4 (also 400, CM4)", "RPi.GPIO", "RPi.GPIO", "pi4", "BCM",
                 _PI_GPIO, _PI_BUSES, ("pwm", "spi"), 1, _PI_PHYS),
    "pi5": Board("pi5", "Raspberry Pi 5 (also 500, CM5)", "RPi.GPIO", "rpi-lgpio", "pi5", "BCM",
                 _PI_GPIO, _PI_BUSES, ("spi",), 1, _PI_PHYS),
    "jetson-orin-nano": Board("jetson-orin-nano", "NVIDIA Jetson Orin Nano developer kit",
                              "Jetson.GPIO", "Jetson.GPIO", "jetson", "BOARD", _JETSON_GPIO,
                              _JETSON_BUSES, ("spi",), 7, {p: p for p in _JETSON_GPIO}),
    # The simulator accepts a Pi-style wiring so a sim profile is checked like a real one.
    "sim": Board("sim", "simulator (no hardware)", "", "", "sim", "BCM", _PI_GPIO, _PI_BUSES,
                 ("pwm", "spi", "sim"), 1, _PI_PHYS),
}
REAL_BOARDS = tuple(b for b in BOARDS if b != "sim")

# Device tree model prefixes -> board name. Order matters: the most specific first.
_MODEL_PREFIXES = (
    ("Raspberry Pi 4", "pi4"), ("Raspberry Pi 400", "pi4"), ("Raspberry Pi Compute Module 4", "pi4"),
    ("Raspberry Pi 5", "pi5"), ("Raspberry Pi 500", "pi5"), ("Raspberry Pi Compute Module 5", "pi5"),
)


def board_from_model(model: str) -> str:
    """Board name for a device tree model string; UnsupportedBoard otherwise."""
    model = model.strip("\x00 \n")
    for prefix, name in _MODEL_PREFIXES:
        if model.startswith(prefix):
            return name
    if "Jetson" in model and "Orin Nano" in model:
        return "jetson-orin-nano"
    raise UnsupportedBoard(
        f"unsupported board {model!r}; lanthorn drives {', '.join(BOARDS[b].title for b in REAL_BOARDS)}. "
        f"Use --sim to run the simulator, or --profile FILE to describe your wiring", model=model)


def detect_board(model_path: str | Path | None = None) -> str:
    """Read the device tree model and name the board (pi4, pi5, jetson-orin-nano)."""
    path = Path(DEVICE_TREE_MODEL if model_path is None else model_path)
    try:
        raw = path.read_bytes()
    except OSError:
        raise UnsupportedBoard(
            f"this machine is not a Raspberry Pi or Jetson (no {path}); use --sim to run the "
            f"simulator") from None
    return board_from_model(raw.decode("utf-8", "replace"))


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise UnsupportedBoard(f"unknown board {name!r} (known: {', '.join(BOARDS)})") from None
