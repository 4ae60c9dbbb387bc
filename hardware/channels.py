"""Channels: what a sensing part tells the piece, declared by the part itself.

The body is data. Every sensing part declares the channels it feeds (name, unit, physical
range, encoding, rate), and everything that builds a model frame — the sampler, the model
binding, ``record``, the simulator's data writer, the studio's plots, ``selftest`` — is built
from that list rather than from a fixed 14-channel layout. A model binds to channels by name.

A :class:`ChannelSensor` is the generic part behind any new kind of sensor (an IMU, an ADC,
a PIR or a button, a sound level): ``read()`` returns one raw reading per declared channel,
in the channel's unit, and :meth:`Channel.encode` turns a raw reading into what the model
sees. The default piece's touch/distance/light parts keep their own interfaces
(:mod:`lanthorn.hardware.interfaces`) and their own encoding (``lanthorn.device.piece.frames``),
so its shipped model and data keep their bytes.

Encodings (the value the model sees, float32):

* ``"linear"``: ``(raw - lo) / (hi - lo)``: 0 at ``lo``, 1 at ``hi`` (a knob, a light level);
* ``"signed"``: ``raw / max(|lo|, |hi|)``: -1..1 around zero (accelerometer, gyro);
* ``"binary"``: 1.0 when ``raw`` is truthy, else 0.0 (PIR, button, reed switch);
* ``"log"``: ``log10(1 + max(raw, 0)) / log10(1 + hi)``: 0..1 for a quantity spanning decades
  (lux, sound pressure as a linear amplitude).

Readings outside ``lo..hi`` are clipped before encoding: a part that answers nonsense far out
of range is a fault the part itself must raise (:class:`~lanthorn.hardware.interfaces.PartError`).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

from .interfaces import Part

ENCODINGS = ("linear", "signed", "binary", "log")


@dataclass(frozen=True)
class Channel:
    """One value a part reports. ``lo``/``hi`` are the physical range in ``unit``."""

    name: str
    unit: str
    lo: float
    hi: float
    encoding: str = "linear"
    rate_hz: float = 100.0

    def __post_init__(self):
        if self.encoding not in ENCODINGS:
            raise ValueError(f"channel {self.name}: unknown encoding {self.encoding!r} "
                             f"(known: {', '.join(ENCODINGS)})")
        if not self.hi > self.lo:
            raise ValueError(f"channel {self.name}: range {self.lo}..{self.hi} is empty")
        if not self.rate_hz > 0:
            raise ValueError(f"channel {self.name}: rate must be above 0 Hz")

    @property
    def encoded_range(self) -> tuple[float, float]:
        """What :meth:`encode` can return (a dataset's declared range for this channel)."""
        return (-1.0, 1.0) if self.encoding == "signed" else (0.0, 1.0)

    def encode(self, raw: float) -> float:
        """The model's value for one raw reading (clipped to the declared range)."""
        if self.encoding == "binary":
            return 1.0 if raw else 0.0
        x = min(max(float(raw), self.lo), self.hi)
        if self.encoding == "linear":
            return (x - self.lo) / (self.hi - self.lo)
        if self.encoding == "signed":
            return x / max(abs(self.lo), abs(self.hi))
        return math.log10(1.0 + max(x, 0.0)) / math.log10(1.0 + self.hi)


class ChannelSensor(Part):
    """A sensing part that declares its channels and reads them all at once.

    Subclasses set :attr:`channels` (in the order :meth:`read` returns them) and implement
    :meth:`read`; a part that stops answering raises ``PartError`` like every other part.
    """

    channels: tuple[Channel, ...] = ()

    @abstractmethod
    def read(self) -> tuple[float, ...]:
        """One raw reading per channel, in each channel's unit."""

    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)
