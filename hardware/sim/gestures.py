"""What a visitor does, as timed segments, and the scene those segments make at any time.

A :class:`Segment` is one labelled stretch of a visit: the gesture's name, its start and end
(the honest label interval: from the first movement that belongs to the gesture to the
last), where the visitor's body is (distance from the object, easing from ``body_mm[0]`` to
``body_mm[1]``; nan = nobody in front of the object), and the contacts of hand on ring.
Gaps between gestures are segments labelled ``"nobody"`` -- with the visitor standing there
or not.

:func:`plan` draws one gesture's random parameters (where on the ring, how fast, how long,
which hand) from a generator; :func:`scene` evaluates a list of segments at many sample
times at once, giving the per-sample contact geometry the physics turns into readings.

Angles are radians clockwise from pad 0 (pad i sits at ``i * 30°``), so a clockwise stroke
runs through increasing pad indices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lanthorn.errors import UserError
from lanthorn.vocabulary import LABELS

from .physics import N_PADS, PAD_PITCH

#: Every gesture the visitor can perform: the default piece's labels, in the model's order
#: (``lanthorn.vocabulary.LABELS``), so simulated data is labelled as the model expects.
GESTURES: tuple[str, ...] = LABELS
#: Gestures made with the hand on the ring (the visitor must be standing at the object).
TOUCH_GESTURES: tuple[str, ...] = ("tap", "double_tap", "stroke_cw", "stroke_ccw", "hold", "palm")
#: Gestures the simulator can perform that the default piece does not know: for trying out
#: teaching a new gesture (``lanthorn run --sim --sim-gestures wave``, then ``record``).
#: A *wave* is a fingertip swept back and forth over a few pads, three to five times.
TEACHABLE_GESTURES: tuple[str, ...] = ("wave",)

FAR_MM = 1400.0  # where an approach starts and a leave ends: beyond the sensor's range


class SimError(UserError):
    """A simulator script or option a person wrote is wrong (unknown gesture, overlap, ...)."""


@dataclass(frozen=True)
class Hand:
    """Size of the visitor's hand: how wide a fingertip and a palm are, how strongly they couple.

    ``finger_counts`` is the drop on a pad fully under the fingertip (MPR121 fingertip:
    roughly 10-80 counts), ``palm_counts`` the drop on a pad fully under the palm.
    """

    name: str
    finger_half_width_deg: float
    finger_counts: float
    palm_half_width_deg: float
    palm_counts: float


HANDS: dict[str, Hand] = {
    "small": Hand("small", 8.0, 42.0, 34.0, 120.0),  # a child's hand
    "medium": Hand("medium", 10.0, 58.0, 44.0, 150.0),
    "large": Hand("large", 12.5, 72.0, 54.0, 180.0),
}


def pick_hand(hand, rng: np.random.Generator) -> Hand:
    """A Hand from a name, a Hand, or None (a random one with a little individual variation)."""
    if isinstance(hand, Hand):
        return hand
    if hand is None:
        base = HANDS[("small", "medium", "medium", "large")[rng.integers(4)]]
        j = rng.uniform(0.9, 1.1, 4)
        return Hand(base.name, base.finger_half_width_deg * j[0], base.finger_counts * j[1],
                    base.palm_half_width_deg * j[2], base.palm_counts * j[3])
    if hand not in HANDS:
        raise SimError(f"unknown hand {hand!r}; choose one of {', '.join(HANDS)}")
    return HANDS[hand]


@dataclass(frozen=True)
class Contact:
    """One continuous touch: from ``on`` to ``off`` (s, absolute), sliding from angle a0 to a1."""

    on: float
    off: float
    a0: float
    a1: float
    half_width: float  # rad
    counts: float  # drop on a fully covered pad
    shade: float  # fraction of ambient light the hand blocks at full contact
    ramp: float = 0.04  # s for the fingertip to settle on / lift off the surface


@dataclass(frozen=True)
class Segment:
    """One labelled stretch of time; see the module docstring."""

    gesture: str
    start: float
    end: float
    body_mm: tuple[float, float] = (math.nan, math.nan)
    contacts: tuple[Contact, ...] = ()
    hand: str = ""
    options: dict = field(default_factory=dict, compare=False)

    @property
    def present(self) -> bool:
        return not (math.isnan(self.body_mm[0]) and math.isnan(self.body_mm[1]))


_OPTIONS = {"pad", "duration", "arc_deg", "hand", "speed", "body_mm"}


def plan(gesture: str, start: float, rng: np.random.Generator, hand=None, speed: float | None = None,
         body_mm: float | None = None, **options) -> Segment:
    """Draw one gesture beginning at ``start`` (s).

    Options (all optional): ``pad`` (where the touch starts, 0-11), ``duration`` (s, of the
    contact for tap/hold/palm, of the whole movement for approach/leave/stroke/nobody),
    ``arc_deg`` (stroke length), ``hand`` ("small"/"medium"/"large" or a Hand), ``speed``
    (1 = typical; 2 = twice as fast), ``body_mm`` (how far the visitor stands).
    """
    if gesture not in GESTURES + TEACHABLE_GESTURES:
        raise SimError(f"unknown gesture {gesture!r}; choose one of "
                       f"{', '.join(GESTURES + TEACHABLE_GESTURES)}")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise SimError(f"unknown option(s) {', '.join(sorted(unknown))} for gesture {gesture!r}; "
                       f"known: {', '.join(sorted(_OPTIONS))}")
    draw = _Visitor.draw(start, rng, hand, speed, body_mm, options)
    end, body, contacts = _MOVEMENTS[gesture](draw)
    return Segment(gesture, float(start), float(end), body, contacts, draw.hand.name,
                   dict(options, speed=draw.speed))


@dataclass(frozen=True)
class _Visitor:
    """This visitor, for one gesture: what every movement below draws its timing from.

    The draws happen in a fixed order (here, then in the movement), so a seed gives the same
    visit, and so the same simulated dataset, every time.
    """

    start: float
    rng: np.random.Generator
    hand: Hand
    speed: float
    close: float  # mm from the object while at it
    a_start: float  # rad, where the touch begins
    duration: float | None  # the ``duration`` option, if given
    ramp: float  # s for a fingertip to settle
    options: dict

    @classmethod
    def draw(cls, start, rng, hand, speed, body_mm, options) -> _Visitor:
        h = pick_hand(hand, rng)
        speed = float(speed) if speed is not None else float(rng.uniform(0.7, 1.4))
        if not speed > 0:
            raise SimError(f"speed must be positive, got {speed}")
        close = float(body_mm) if body_mm is not None else float(rng.uniform(180.0, 420.0))
        pad = options.get("pad")
        if pad is not None and not (isinstance(pad, (int, np.integer)) and 0 <= pad < N_PADS):
            raise SimError(f"pad must be an integer 0..{N_PADS - 1}, got {pad!r}")
        a_start = (pad * PAD_PITCH if pad is not None else rng.uniform(0.0, 2 * math.pi)) \
            + rng.normal(0.0, math.radians(3.0))
        dur = options.get("duration")
        if dur is not None and not float(dur) > 0:
            raise SimError(f"duration must be positive, got {dur!r}")
        ramp = float(rng.uniform(0.03, 0.06)) / speed ** 0.5
        return cls(float(start), rng, h, speed, close, a_start,
                   None if dur is None else float(dur), ramp, options)

    @property
    def standing(self) -> tuple[float, float]:
        return (self.close, self.close)

    def span(self, lo, hi) -> float:
        """A movement's length: the ``duration`` option, else drawn at this visitor's speed."""
        return self.duration if self.duration is not None else float(self.rng.uniform(lo, hi)) / self.speed

    def pause(self, lo, hi) -> float:
        """A short lead-in or lift-off, drawn at this visitor's speed."""
        return float(self.rng.uniform(lo, hi)) / self.speed

    def touch(self, lo, hi) -> float:
        """How long a brief touch lasts: the ``duration`` option, else drawn (speed-free)."""
        return self.duration if self.duration is not None else float(self.rng.uniform(lo, hi))

    def arc(self, lo_deg, hi_deg) -> float:
        """The ``arc_deg`` option or a drawn arc, in radians (the draw is made either way)."""
        arc = math.radians(float(self.options.get("arc_deg", self.rng.uniform(lo_deg, hi_deg))))
        if not arc > 0:
            raise SimError(f"arc_deg must be positive, got {self.options.get('arc_deg')!r}")
        return arc

    def finger(self, on, off, a0, a1) -> Contact:
        return Contact(on, off, a0, a1, math.radians(self.hand.finger_half_width_deg),
                       self.hand.finger_counts * float(self.rng.uniform(0.85, 1.15)), 0.08, self.ramp)


# Each movement: (end, body_mm from-to, contacts) for one visitor. Natural durations are at
# speed 1 (seconds); the visitor's speed factor divides them.

def _nobody(v: _Visitor):
    return v.start + v.span(1.5, 4.0), (math.nan, math.nan), ()


def _approach(v: _Visitor):
    return v.start + v.span(1.0, 2.5), (FAR_MM, v.close), ()


def _leave(v: _Visitor):
    return v.start + v.span(0.9, 2.2), (v.close, FAR_MM), ()


def _tap(v: _Visitor):
    on = v.start + v.pause(0.08, 0.2)
    off = on + v.touch(0.08, 0.2)
    end = off + v.pause(0.08, 0.2)
    return end, v.standing, (v.finger(on, off, v.a_start, v.a_start),)


def _double_tap(v: _Visitor):
    rng = v.rng
    on1 = v.start + v.pause(0.08, 0.2)
    off1 = on1 + float(rng.uniform(0.07, 0.15))
    on2 = off1 + v.pause(0.08, 0.22)
    off2 = on2 + float(rng.uniform(0.07, 0.15))
    a2 = v.a_start + rng.normal(0.0, math.radians(4.0))
    end = off2 + v.pause(0.08, 0.2)
    return end, v.standing, (v.finger(on1, off1, v.a_start, v.a_start), v.finger(on2, off2, a2, a2))


def _stroke(sign: float):
    def stroke(v: _Visitor):
        arc = v.arc(100.0, 300.0)
        deg_per_s = float(v.rng.uniform(250.0, 600.0)) * v.speed
        on = v.start + v.pause(0.05, 0.15)
        off = on + (v.duration if v.duration is not None else math.degrees(arc) / deg_per_s)
        end = off + v.pause(0.05, 0.15)
        return end, v.standing, (v.finger(on, off, v.a_start, v.a_start + sign * arc),)
    return stroke


def _hold(v: _Visitor):
    on = v.start + v.pause(0.08, 0.2)
    off = on + v.span(1.0, 2.5)
    end = off + v.pause(0.08, 0.2)
    wobble = v.rng.normal(0.0, math.radians(3.0))
    return end, v.standing, (v.finger(on, off, v.a_start, v.a_start + wobble),)


def _wave(v: _Visitor):
    """A fingertip swept there and back over a few pads, three to five times."""
    arc = v.arc(50.0, 80.0)
    sweep = v.pause(0.16, 0.26)  # one way across the arc
    t = v.start + v.pause(0.05, 0.15)
    a0 = v.a_start - arc / 2
    contacts = []
    for k in range(int(v.rng.integers(3, 6)) * 2):
        a1 = a0 + (arc if k % 2 == 0 else -arc)
        contacts.append(v.finger(t, t + sweep, a0, a1))
        t, a0 = t + sweep, a1
    return t + v.pause(0.05, 0.15), v.standing, tuple(contacts)


def _palm(v: _Visitor):
    on = v.start + v.pause(0.1, 0.25)
    off = on + v.span(0.6, 1.8)
    end = off + v.pause(0.1, 0.25)
    h = v.hand
    return end, v.standing, (Contact(on, off, v.a_start, v.a_start, math.radians(h.palm_half_width_deg),
                                     h.palm_counts * float(v.rng.uniform(0.85, 1.15)), 0.55,
                                     v.ramp * 2),)


_MOVEMENTS = {"nobody": _nobody, "approach": _approach, "leave": _leave, "tap": _tap,
              "double_tap": _double_tap, "stroke_cw": _stroke(1.0), "stroke_ccw": _stroke(-1.0),
              "hold": _hold, "wave": _wave, "palm": _palm}
assert set(_MOVEMENTS) == set(GESTURES + TEACHABLE_GESTURES)


def gap(start: float, end: float, body_mm: float) -> Segment:
    """A pause labelled "nobody": the visitor stands at ``body_mm`` (nan: nobody is there)."""
    return Segment("nobody", float(start), float(end), (float(body_mm), float(body_mm)))


def _smoothstep(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


@dataclass
class Scene:
    """Per-sample truth: contact geometry, body distance (nan = nobody), light blocked, label."""

    angle: np.ndarray
    half_width: np.ndarray
    pressure: np.ndarray
    counts: np.ndarray
    body_mm: np.ndarray
    shade: np.ndarray
    label: np.ndarray  # str per sample

    @classmethod
    def empty(cls, n: int) -> "Scene":
        z = np.zeros(n)
        return cls(z.copy(), np.full(n, 0.1), z.copy(), z.copy(), np.full(n, math.nan),
                   z.copy(), np.full(n, "nobody", dtype="<U10"))


def scene(segments, t) -> Scene:
    """Evaluate time-ordered, non-overlapping ``segments`` at sample times ``t`` (sorted, s)."""
    t = np.asarray(t, np.float64)
    out = Scene.empty(t.shape[0])
    for seg in segments:
        i0, i1 = np.searchsorted(t, [seg.start, seg.end])
        if i0 == i1:
            continue
        ts = t[i0:i1]
        out.label[i0:i1] = seg.gesture
        b0, b1 = seg.body_mm
        if seg.present:
            u = _smoothstep((ts - seg.start) / max(seg.end - seg.start, 1e-9))
            b0 = b1 if math.isnan(b0) else b0
            b1 = b0 if math.isnan(b1) else b1
            sway = 12.0 * np.sin(2 * math.pi * ts / 2.7 + seg.start)  # people do not stand still
            out.body_mm[i0:i1] = b0 + (b1 - b0) * u + sway
            close = np.clip(1.0 - out.body_mm[i0:i1] / 700.0, 0.0, 1.0)
            out.shade[i0:i1] = 0.15 * close
        for c in seg.contacts:
            j0, j1 = np.searchsorted(t, [c.on, c.off])
            if j0 == j1:
                continue
            tc = t[j0:j1]
            p = _smoothstep((tc - c.on) / c.ramp) * _smoothstep((c.off - tc) / c.ramp)
            prog = np.clip((tc - c.on) / max(c.off - c.on, 1e-9), 0.0, 1.0)
            prog = 0.7 * prog + 0.3 * _smoothstep(prog)  # speeds up, then slows to a stop
            out.angle[j0:j1] = (c.a0 + (c.a1 - c.a0) * prog) % (2 * math.pi)
            out.half_width[j0:j1] = c.half_width
            out.pressure[j0:j1] = p
            out.counts[j0:j1] = c.counts
            # the arm reaches in front of the distance sensor while the hand is on the ring
            out.body_mm[j0:j1] *= 1.0 - 0.3 * p
            out.shade[j0:j1] = np.maximum(out.shade[j0:j1], c.shade * p)
    return out
