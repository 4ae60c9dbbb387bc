"""The parts of an object, as small interfaces every backend implements.

Modelled on gpiozero and luma: the device code talks to a :class:`TouchSensor`,
:class:`DistanceSensor`, :class:`LightSensor`, :class:`LedStrip` and :class:`Display`, and
never knows whether an MPR121 on a Raspberry Pi, a microcontroller companion, or the
simulator sits behind it. Backends subclass these and implement the ``_``-prefixed hooks.

Failure contract: a part that stops answering raises :class:`PartError` (with the part's
name and what to check). The device loop catches it, reports it on the console, imputes
the channel and keeps the piece running.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


class PartError(OSError):
    """A part did not answer or answered nonsense. ``part`` names it for the maker."""

    def __init__(self, part: str, message: str):
        super().__init__(f"{part}: {message}")
        self.part = part


class Part(ABC):  # noqa: B024  (the base of every part ABC; it has nothing abstract itself)
    """Anything with a name that can be closed. ``name`` is the profile's name for the part."""

    name: str = "part"

    def close(self) -> None:  # noqa: B027  (a part with nothing to release keeps this no-op)
        """Release the bus or pins. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass(frozen=True)
class TouchReading:
    """One scan of a capacitive touch sensor.

    ``raw`` are the filtered electrode counts (MPR121: 10-bit, *lower* when touched),
    ``baseline`` the sensor's slowly tracking idle level, ``touched`` a bitmask with bit i
    set when pad i is touched (as the chip's own thresholds decide).
    """

    raw: np.ndarray  # uint16, shape (n_pads,)
    baseline: np.ndarray  # uint16, shape (n_pads,)
    touched: int

    def pads(self) -> list[int]:
        """Indices of touched pads."""
        return [i for i in range(len(self.raw)) if self.touched >> i & 1]

    def delta(self) -> np.ndarray:
        """Baseline minus raw as float32: how strongly each pad is being touched (≥0)."""
        return np.clip(self.baseline.astype(np.float32) - self.raw.astype(np.float32), 0, None)


class TouchSensor(Part):
    """A ring of capacitive pads (12 on the default piece)."""

    n_pads: int = 12

    @abstractmethod
    def read(self) -> TouchReading:
        """Scan all pads once. Raises PartError when the sensor does not answer."""


class DistanceSensor(Part):
    """Approach sensing: how far the nearest thing is."""

    max_range_mm: float = 1200.0

    @abstractmethod
    def read_mm(self) -> float | None:
        """Distance in millimetres, or None when nothing is in range."""


class LightSensor(Part):
    """Ambient light, so the piece can dim itself in a dark room."""

    @abstractmethod
    def read_lux(self) -> float:
        """Illuminance in lux (≥ 0)."""


# WS2812B datasheet-typical draw: ~1 mA quiescent per pixel plus up to ~20 mA per colour
# channel at full duty (a white pixel at 255,255,255 ≈ 60 mA). Used to keep the ring
# within the supply's budget.
LED_MA_PER_CHANNEL_FULL = 20.0
LED_MA_IDLE_PER_PIXEL = 1.0


def estimate_current_ma(frame: np.ndarray) -> float:
    """Estimated supply current (mA) of a WS2812 frame of uint8 RGB values, shape (N, 3)."""
    frame = np.asarray(frame)
    return float(frame.astype(np.float64).sum() / 255.0 * LED_MA_PER_CHANNEL_FULL
                 + LED_MA_IDLE_PER_PIXEL * frame.shape[0])


_ZERO, _FULL = np.array(0, np.float32), np.array(255, np.float32)
_ZERO.flags.writeable = _FULL.flags.writeable = False


def limit_frame(frame: np.ndarray, brightness: float, power_cap_ma: float | None) -> np.ndarray:
    """Apply global brightness, then scale down so the frame's current stays within the cap.

    This is the one place the power budget is enforced: every LedStrip backend shows only
    what this returns, so no animation, parameter or bug can overload the supply. Returns a
    new uint8 array; :meth:`LedStrip.show` uses :func:`limit_frame_into` with its own
    buffers instead (the same arithmetic, no allocation per frame).
    """
    frame = np.asarray(frame)
    return limit_frame_into(np.empty(frame.shape, np.uint8), frame, brightness, power_cap_ma,
                            np.empty(frame.shape, np.float32))


def limit_frame_into(out: np.ndarray, frame: np.ndarray, brightness: float,
                     power_cap_ma: float | None, scratch: np.ndarray) -> np.ndarray:
    """:func:`limit_frame` into ``out`` (uint8) through ``scratch`` (float32), both of the
    frame's shape; returns ``out``. In-place float32 arithmetic, so the integers are the
    ones the float32 expression ``floor(clip(frame * brightness * scale, 0, 255))`` gives.

    Allocates no array: what remains per call are a few numpy scalars and the iterator of
    the cap's sum (under 1 KB, whatever the ring's size)."""
    np.copyto(scratch, frame, casting="unsafe")
    scratch *= np.float32(brightness)
    if power_cap_ma is not None:
        idle = LED_MA_IDLE_PER_PIXEL * scratch.shape[0]
        drive = scratch.sum() / 255.0 * LED_MA_PER_CHANNEL_FULL
        budget = max(float(power_cap_ma) - idle, 0.0)
        if drive > budget:
            scratch *= budget / drive
    # clip (as 0-d arrays: a Python number would be converted each call), then floor, not
    # round: rounding up could push the frame back over the cap
    np.maximum(scratch, _ZERO, out=scratch)
    np.minimum(scratch, _FULL, out=scratch)
    np.floor(scratch, out=scratch)
    np.copyto(out, scratch, casting="unsafe")
    return out


class LedStrip(Part):
    """N RGB pixels with a global brightness (0..1) and a power cap in mA.

    ``show(frame)`` takes uint8 RGB of shape (n_pixels, 3) in ring order (pixel 0 at pad 0,
    clockwise); backends handle the wire colour order (GRB for WS2812). It runs on the
    device loop's hot path, 60 times a second: it limits the frame into buffers made here
    once, so showing a frame allocates no array.
    """

    def __init__(self, n_pixels: int, brightness: float = 1.0, power_cap_ma: float | None = None):
        self.n_pixels = int(n_pixels)
        self.brightness = float(brightness)
        self.power_cap_ma = power_cap_ma
        self.last_frame = np.zeros((self.n_pixels, 3), np.uint8)  # what was actually sent
        self._limited = np.zeros((self.n_pixels, 3), np.uint8)    # being sent
        self._scratch = np.zeros((self.n_pixels, 3), np.float32)

    def show(self, frame: np.ndarray) -> np.ndarray:
        """Limit and send ``frame``; returns :attr:`last_frame`, the strip's own buffer of
        what was sent (overwritten by the next show: copy it to keep it). A write that
        fails (PartError) leaves :attr:`last_frame` at the frame before."""
        frame = np.asarray(frame)
        if frame.shape != (self.n_pixels, 3):
            raise ValueError(f"{self.name}: frame shape {frame.shape}, expected ({self.n_pixels}, 3)")
        limit_frame_into(self._limited, frame, self.brightness, self.power_cap_ma, self._scratch)
        self._write(self._limited)
        np.copyto(self.last_frame, self._limited)
        return self.last_frame

    def off(self) -> None:
        self.show(np.zeros((self.n_pixels, 3), np.uint8))

    @abstractmethod
    def _write(self, frame: np.ndarray) -> None:
        """Send an already limited uint8 (n_pixels, 3) RGB frame to the pixels."""


class Display(Part):
    """A 1-bit display (128x64 SSD1306 on the default piece) taking a PIL image."""

    width: int = 128
    height: int = 64

    def show(self, image) -> None:
        """Show a PIL image of the display's size (converted to mode "1")."""
        if image.size != (self.width, self.height):
            raise ValueError(f"{self.name}: image size {image.size}, expected {(self.width, self.height)}")
        self._write(image.convert("1"))

    @abstractmethod
    def _write(self, image) -> None:
        """Send a mode-"1" PIL image of the display's size."""


@dataclass
class Body:
    """All the parts of one object, opened from a hardware profile.

    Any part may be None when the profile does not have it (a piece without a display), or
    when it failed to open: then ``open_errors[role]`` says why (a dead part degrades the
    piece, it never stops it; the device loop can retry with ``body.open_part``).
    """

    touch: TouchSensor | None = None
    distance: DistanceSensor | None = None
    light: LightSensor | None = None
    leds: LedStrip | None = None
    display: Display | None = None
    open_errors: dict[str, str] = field(default_factory=dict)
    #: the hardware profile it was opened from (None for a body assembled by hand); any
    #: other sensing part the profile names (``imu``, ``knob``) is an attribute of that name
    profile: object = field(default=None, repr=False)

    def parts(self) -> dict[str, Part]:
        return {k: v for k, v in vars(self).items() if isinstance(v, Part)}

    def part(self, role: str) -> Part | None:
        """The part the profile calls ``role`` (None when absent or it failed to open)."""
        part = getattr(self, role, None)
        return part if isinstance(part, Part) else None

    def roles(self) -> tuple[str, ...]:
        """Every part name this body has or tried to open (profile order when known)."""
        names = list(getattr(self.profile, "parts", None) or ())
        names += [r for r in (*self.parts(), *self.open_errors) if r not in names]
        return tuple(names)

    def close(self) -> None:
        for part in self.parts().values():
            part.close()
