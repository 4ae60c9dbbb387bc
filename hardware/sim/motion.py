"""A small physical scene for a body with an IMU, an ADC, GPIO inputs and a sound level.

The simulated visitor (``.visitor``) acts on a :class:`Scene` -- lifts the object, tilts it,
shakes it, knocks on it, walks up to it and away, presses its button, turns its knob, makes
the room loud -- and the simulated parts (``.channel_parts``) read the scene's physical state
at their clock time, with their own noise, as the real chips would measure it.

Every action is stamped with a time (``at=``; default: the scene's clock ``now()``) and
changes the state smoothly from that moment on: orientation, height and knob position move
along a raised-cosine ramp (so the accelerometer sees the ramp's real acceleration and the
gyro the rate of turn), a shake is a decaying oscillation, a knock a sharp ringing impulse.
Actions must come in time order. The scene holds no randomness; the parts draw their noise
from generators seeded by the scene's ``seed`` and their name, so a seed reproduces every
reading.

Conventions: the IMU's z axis points up out of the object at rest (an accelerometer at rest
reads +1 g on z), roll turns about x, pitch about y (radians). Height in metres, the knob
0..1 (its travel), the room sound level in dB SPL.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable

G = 9.80665  # m/s^2 per g
QUIET_ROOM_DB = 38.0  # a hushed gallery, dB SPL


@dataclass(frozen=True)
class _Ramp:
    """A raised-cosine move from v0 to v1 over [t0, t0 + T]."""

    t0: float
    v0: float
    v1: float
    T: float

    def at(self, t: float) -> tuple[float, float, float]:
        """(value, first derivative, second derivative) at ``t`` (t >= t0)."""
        if t >= self.t0 + self.T:
            return self.v1, 0.0, 0.0
        s = (t - self.t0) / self.T
        d = self.v1 - self.v0
        w = math.pi / self.T
        return (self.v0 + d * (1.0 - math.cos(math.pi * s)) / 2.0,
                d * w / 2.0 * math.sin(math.pi * s),
                d * w * w / 2.0 * math.cos(math.pi * s))


class _Track:
    """A quantity moved by ramps (orientation, height, knob, sound level)."""

    def __init__(self, rest: float):
        self.rest = rest
        self._t0: list[float] = []
        self._ramps: list[_Ramp] = []

    def at(self, t: float) -> tuple[float, float, float]:
        i = bisect.bisect_right(self._t0, t) - 1
        return (self.rest, 0.0, 0.0) if i < 0 else self._ramps[i].at(t)

    def move(self, t: float, target: float, duration: float) -> None:
        if self._t0 and t < self._t0[-1]:
            raise ValueError(f"scene actions must come in time order ({t:.3f} s is before "
                             f"{self._t0[-1]:.3f} s)")
        value = self.at(t)[0]
        self._t0.append(t)
        self._ramps.append(_Ramp(t, value, float(target), max(float(duration), 1e-3)))


class _Intervals:
    """On/off state over time (presence, the button): a sorted list of switch times."""

    def __init__(self):
        self._t: list[float] = []
        self._on: list[bool] = []

    def set(self, t: float, on: bool) -> None:
        if self._t and t < self._t[-1]:
            raise ValueError(f"scene actions must come in time order ({t:.3f} s)")
        self._t.append(t)
        self._on.append(bool(on))

    def at(self, t: float) -> bool:
        i = bisect.bisect_right(self._t, t) - 1
        return False if i < 0 else self._on[i]

    def last_change(self, t: float) -> float | None:
        i = bisect.bisect_right(self._t, t) - 1
        return None if i < 0 else self._t[i]


@dataclass(frozen=True)
class Burst:
    """A shake (an oscillation with a smooth envelope) or a knock (an impulse that rings)."""

    t0: float
    duration: float
    amplitude: float  # g
    hz: float


class _Bursts:
    """Bursts in time order; :meth:`near` finds those that can still matter at ``t`` by
    bisection, so a reading costs the same after an hour of visitors as after a minute."""

    def __init__(self):
        self.items: list[Burst] = []
        self._t0: list[float] = []
        self._longest = 0.0

    def add(self, burst: Burst) -> None:
        if self._t0 and burst.t0 < self._t0[-1]:
            raise ValueError(f"scene actions must come in time order ({burst.t0:.3f} s)")
        self.items.append(burst)
        self._t0.append(burst.t0)
        self._longest = max(self._longest, burst.duration)

    def near(self, t: float, span: float | None = None) -> list[Burst]:
        """Bursts that started in (t - span, t]; span defaults to the longest burst."""
        lo = bisect.bisect_left(self._t0, t - (self._longest if span is None else span))
        hi = bisect.bisect_right(self._t0, t)
        return self.items[lo:hi]

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


class Scene:
    """The physical state the simulated channel parts measure. ``now``: the clock used when
    an action or a reading gives no time."""

    KNOCK_RING_HZ = 180.0
    KNOCK_DECAY_S = 0.012

    def __init__(self, now: Callable[[], float] | None = None, seed: int = 0,
                 room_lux: float = 150.0):
        self.now = now or (lambda: 0.0)
        self.seed = int(seed)  # the parts' noise generators derive from it
        self.roll, self.pitch = _Track(0.0), _Track(0.0)
        self.height, self.knob = _Track(0.0), _Track(0.2)
        self.sound_db = _Track(QUIET_ROOM_DB)
        self.presence, self.button = _Intervals(), _Intervals()
        self.room_lux = float(room_lux)
        self.shakes, self.knocks = _Bursts(), _Bursts()

    def _t(self, at):
        return float(self.now() if at is None else at)

    # --- what a visitor does
    def lift(self, height: float = 0.15, duration: float = 0.7, at=None) -> None:
        """Raise the object ``height`` m off its plinth (``height=0`` puts it down)."""
        self.height.move(self._t(at), height, duration)

    def put_down(self, duration: float = 0.7, at=None) -> None:
        self.lift(0.0, duration, at)

    def tilt(self, angle: float, axis: str = "x", duration: float = 0.6, at=None) -> None:
        """Tilt to ``angle`` rad about ``axis`` ("x": roll, "y": pitch); 0 sets it level."""
        if axis not in ("x", "y"):
            raise ValueError(f"tilt axis must be 'x' or 'y', not {axis!r}")
        (self.roll if axis == "x" else self.pitch).move(self._t(at), angle, duration)

    def level(self, duration: float = 0.6, at=None) -> None:
        t = self._t(at)
        self.roll.move(t, 0.0, duration)
        self.pitch.move(t, 0.0, duration)

    def shake(self, amplitude: float = 0.8, duration: float = 1.0, hz: float = 5.0, at=None) -> None:
        """Shake it: ``amplitude`` g of sideways acceleration at ``hz`` for ``duration`` s."""
        self.shakes.add(Burst(self._t(at), float(duration), float(amplitude), float(hz)))

    def knock(self, strength: float = 3.0, at=None) -> None:
        """A knuckle on the object: a ``strength`` g impulse that rings for a few ms."""
        self.knocks.add(Burst(self._t(at), 6 * self.KNOCK_DECAY_S, float(strength),
                              self.KNOCK_RING_HZ))

    def approach(self, at=None) -> None:
        self.presence.set(self._t(at), True)

    def leave(self, at=None) -> None:
        self.presence.set(self._t(at), False)

    def press(self, at=None) -> None:
        self.button.set(self._t(at), True)

    def release(self, at=None) -> None:
        self.button.set(self._t(at), False)

    def turn_knob(self, position: float, duration: float = 0.5, at=None) -> None:
        """Turn the knob to ``position`` (0..1 of its travel)."""
        self.knob.move(self._t(at), min(max(float(position), 0.0), 1.0), duration)

    def make_noise(self, db: float, duration: float = 0.3, at=None) -> None:
        """The room's sound level moves to ``db`` dB SPL (38 is a hushed gallery, 70 talk)."""
        self.sound_db.move(self._t(at), db, duration)

    # --- what the parts measure
    def specific_force(self, t: float) -> tuple[float, float, float]:
        """What an ideal accelerometer reads (g, body frame): gravity turned by the tilt,
        plus the lift's acceleration, a shake and knocks."""
        phi, theta = self.roll.at(t)[0], self.pitch.at(t)[0]
        up = (-math.sin(theta), math.sin(phi) * math.cos(theta), math.cos(phi) * math.cos(theta))
        lift = 1.0 + self.height.at(t)[2] / G  # vertical acceleration, along world up
        sx, sy = self._shake(t)
        k = self._knock(t)
        return (up[0] * lift + sx, up[1] * lift + sy, up[2] * lift + k)

    def rotation_rate(self, t: float) -> tuple[float, float, float]:
        """What an ideal gyro reads (degrees/s): the rate of tilt plus a shake's wobble."""
        d_phi, d_theta = self.roll.at(t)[1], self.pitch.at(t)[1]
        sx, sy = self._shake(t)
        wobble = 40.0  # degrees/s of wobble per g of shake: a hand shakes by turning too
        return (math.degrees(d_phi) + wobble * sy, math.degrees(d_theta) - wobble * sx,
                0.3 * wobble * sx)

    def _shake(self, t: float) -> tuple[float, float]:
        x = y = 0.0
        for b in self.shakes.near(t):
            if t < b.t0 + b.duration:
                s = (t - b.t0) / b.duration
                env = b.amplitude * math.sin(math.pi * s) ** 2
                phase = 2 * math.pi * b.hz * (t - b.t0)
                x += env * math.sin(phase)
                y += 0.35 * env * math.sin(phase + 1.1)
        return x, y

    def _knock(self, t: float) -> float:
        return sum(b.amplitude * math.exp(-(t - b.t0) / self.KNOCK_DECAY_S)
                   * math.cos(2 * math.pi * b.hz * (t - b.t0))
                   for b in self.knocks.near(t) if t < b.t0 + b.duration)

    def knock_envelope(self, t: float, decay_s: float = 0.06) -> float:
        """A peak-hold of the knocks (g), as a piezo's diode-and-capacitor envelope holds it."""
        return sum(b.amplitude * math.exp(-(t - b.t0) / decay_s)
                   for b in self.knocks.near(t, 8 * decay_s) if t < b.t0 + 8 * decay_s)

    def present(self, t: float, hold_s: float = 0.0) -> bool:
        """Someone is near, or left less than ``hold_s`` ago (a PIR's hold time)."""
        if self.presence.at(t):
            return True
        left = self.presence.last_change(t)
        return left is not None and hold_s > 0 and t - left < hold_s and self._was_on(left)

    def _was_on(self, t_change: float) -> bool:
        return self.presence.at(t_change - 1e-9)

    def pressed(self, t: float) -> bool:
        return self.button.at(t)

    def knob_position(self, t: float) -> float:
        return self.knob.at(t)[0]

    def lux(self, t: float) -> float:
        """The light on the object: the room, shadowed by someone standing close."""
        return self.room_lux * (0.55 if self.presence.at(t) else 1.0)

    def sound_level_db(self, t: float) -> float:
        """dB SPL at the object: the room plus knocks (a knock is loud, briefly)."""
        room = self.sound_db.at(t)[0]
        k = self.knock_envelope(t, decay_s=0.03)
        if k <= 0:
            return room
        return 10 * math.log10(10 ** (room / 10) + 10 ** ((70 + 6 * math.log2(1 + k)) / 10))
