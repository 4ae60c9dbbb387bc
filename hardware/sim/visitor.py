"""The scripted visitor: synthetic sensor traces with honest labels, offline or live.

Offline API (stable; the data tools call it to write synthetic datasets)::

    from lanthorn.hardware.sim import simulate, session

    tr = simulate("stroke_cw", seed=3)                # one gesture with a little lead-in/out
    tr = simulate("tap", seed=3, rate_hz=25.0, duration_s=4.0, hand="small", pad=5)
    tr = session(seed=7, duration_s=600.0)            # 10 minutes of visitors, ~0.3 s to make
    tr = session(seed=7, duration_s=600.0, gestures={"tap": 2, "palm": 1})

Both return a :class:`SimTrace`, one row per sample at ``rate_hz``:

* ``t`` (s, float64, (T,)), ``rate_hz``
* ``raw``, ``baseline``: MPR121 counts, uint16 (T, 12); ``touched``: uint16 bitmask (T,)
  (bit i = pad i, by the chip's own thresholds); ``delta()``: baseline - raw, clipped ≥ 0,
  float32 (T, 12) -- the same as ``TouchReading.delta``
* ``distance_mm``: float32 (T,), **nan when nothing is in range** (the live sensor returns
  None); ``lux``: float32 (T,)
* ``labels``: the honest label per sample (str array, (T,)): the gesture the visitor is
  performing at that instant, ``"nobody"`` in the pauses between gestures and when the room
  is empty. ``label_indices(LABELS)`` maps them to class indices.
* ``segments``: the :class:`Segment` list behind it (gesture, start, end, hand, ...).

``simulate(gesture, seed, rate_hz=25.0, duration_s=None, hand=None, **options)``: options
are those of :func:`lanthorn.hardware.sim.gestures.plan` (pad, duration, arc_deg, speed,
body_mm). Without ``duration_s`` the trace is the gesture plus 0.3-1 s before and 0.5 s
after; a shorter ``duration_s`` cuts the gesture (labels stay honest).

``session(seed, duration_s, rate_hz=25.0, gestures=None)``: an empty room, then visitors one
after another: each approaches, performs one to five touch gestures with natural pauses,
and leaves. ``gestures`` picks the touch gestures: a sequence of names (uniform) or a dict
name -> weight; approach, leave and nobody always frame each visit. Every visitor has their
own hand and speed.

Same seed, same arguments -> identical arrays; the random streams for planning, the touch
chip, the distance sensor and the light sensor are independent children of the seed.

Live use goes through :class:`World` (see :mod:`.parts`): the same segments evaluated at
the clock's current time, plus pads pressed with the mouse.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from .gestures import (
    GESTURES,
    HANDS,
    TEACHABLE_GESTURES,
    TOUCH_GESTURES,
    Scene,
    Segment,
    SimError,
    gap,
    pick_hand,
    plan,
    scene,
)
from .physics import (
    N_PADS,
    RANGER_MAX_MM,
    RELEASE_THRESHOLD,
    TOUCH_THRESHOLD,
    LuxMeter,
    PadChip,
    Ranger,
    contact_coverage,
)


@dataclass
class SimTrace:
    """Simulated readings and the honest label timeline; see the module docstring."""

    t: np.ndarray
    rate_hz: float
    raw: np.ndarray
    baseline: np.ndarray
    touched: np.ndarray
    distance_mm: np.ndarray
    lux: np.ndarray
    labels: np.ndarray
    segments: list

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def delta(self) -> np.ndarray:
        """Baseline minus raw per pad, float32 (T, 12), clipped at 0 (as TouchReading.delta)."""
        return np.clip(self.baseline.astype(np.float32) - self.raw.astype(np.float32), 0, None)

    def touched_pads(self) -> np.ndarray:
        """Touch bits unpacked to bool (T, 12)."""
        return (self.touched[:, None] >> np.arange(N_PADS)) & 1 == 1

    def label_indices(self, labels=GESTURES) -> np.ndarray:
        """Labels as int64 indices into ``labels`` (default: the default model's labels)."""
        lookup = {name: i for i, name in enumerate(labels)}
        missing = set(np.unique(self.labels)) - set(lookup)
        if missing:
            raise SimError(f"labels {sorted(missing)} are not in the given label list")
        names, inverse = np.unique(self.labels, return_inverse=True)
        return np.array([lookup[n] for n in names], np.int64)[inverse]


def _streams(seed: int):
    """Independent generators for planning, touch chip, touch noise, distance and light."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]


class Sensors:
    """The three simulated chips of one object, seeded; shared by offline and live use."""

    def __init__(self, seed: int, touch_threshold: int = TOUCH_THRESHOLD,
                 release_threshold: int = RELEASE_THRESHOLD, max_range_mm: float = RANGER_MAX_MM):
        self.plan_rng, chip_rng, self.noise_rng, ranger_rng, lux_rng = _streams(seed)
        self.chip = PadChip(chip_rng, touch_threshold=touch_threshold,
                            release_threshold=release_threshold)
        self.ranger = Ranger(ranger_rng, max_range_mm)
        self.lux = LuxMeter(lux_rng)

    def touch(self, t, sc: Scene, extra_direct=None):
        direct = contact_coverage(sc.angle, sc.half_width, sc.pressure) * sc.counts[:, None]
        if extra_direct is not None:
            direct = direct + extra_direct
        signal = self.chip.signal(direct, sc.body_mm)
        noise = self.noise_rng.standard_normal((len(t), N_PADS))
        return self.chip.run(t, signal, noise)


def _trace(segments: list[Segment], duration_s: float, rate_hz: float, sensors: Sensors) -> SimTrace:
    if not rate_hz > 0 or not math.isfinite(rate_hz):
        raise SimError(f"rate_hz must be a positive number, got {rate_hz!r}")
    n = int(round(duration_s * rate_hz))
    if n < 1:
        raise SimError(f"duration_s={duration_s} at {rate_hz} Hz gives no samples")
    t = np.arange(n) / float(rate_hz)
    sc = scene(segments, t)
    raw, base, touched = sensors.touch(t, sc)
    dist = sensors.ranger.measure(sc.body_mm).astype(np.float32)
    lux = sensors.lux.measure(t, sc.shade).astype(np.float32)
    return SimTrace(t, float(rate_hz), raw, base, touched, dist, lux, sc.label, segments)


def simulate(gesture: str, seed: int = 0, rate_hz: float = 25.0, duration_s: float | None = None,
             hand=None, **options) -> SimTrace:
    """One gesture, framed by a short pause before and after. See the module docstring."""
    sensors = Sensors(seed)
    rng = sensors.plan_rng
    lead = float(rng.uniform(0.3, 1.0))
    seg = plan(gesture, lead, rng, hand=hand, **options)
    stands = seg.body_mm[0]  # where the visitor is before the gesture (nan: not there yet)
    after = seg.body_mm[1]
    total = duration_s if duration_s is not None else seg.end + 0.5
    segments = [gap(0.0, lead, stands), seg]
    if total > seg.end:
        segments.append(gap(seg.end, total, after))
    return _trace(segments, float(total), rate_hz, sensors)


def _weights(gestures) -> tuple[list[str], np.ndarray]:
    if gestures is None:
        names, w = list(TOUCH_GESTURES), np.ones(len(TOUCH_GESTURES))
    elif isinstance(gestures, dict):
        names, w = list(gestures), np.array([float(v) for v in gestures.values()])
    else:
        names = list(gestures)
        w = np.ones(len(names))
    known = GESTURES + TEACHABLE_GESTURES
    for name in names:
        if name not in known:
            raise SimError(f"unknown gesture {name!r}; choose from {', '.join(known)}")
    keep = [i for i, n in enumerate(names) if n in TOUCH_GESTURES + TEACHABLE_GESTURES]
    names, w = [names[i] for i in keep], w[keep]
    if not names or not (w >= 0).all() or w.sum() <= 0:
        raise SimError("session needs at least one touch gesture with a positive weight "
                       f"(from {', '.join(TOUCH_GESTURES)})")
    return names, w / w.sum()


def visit_segments(rng: np.random.Generator, start: float, choices, weights,
                   order=None) -> list[Segment]:
    """One visitor: the empty room before them, approach, touch gestures separated by
    pauses, leave. ``order`` fixes the gestures and keeps pauses short (the demo tour);
    otherwise one to five are drawn from ``choices`` with ``weights``."""
    hand = pick_hand(None, rng)
    speed = float(rng.uniform(0.7, 1.4))
    close = float(rng.uniform(180.0, 420.0))
    tour = order is not None
    if not tour:
        n = int(rng.integers(1, 6))
        order = [choices[i] for i in rng.choice(len(choices), size=n, p=weights)]
    empty = 1.0 if tour else float(rng.uniform(1.0, 6.0))
    segs = [gap(start, start + empty, math.nan)]
    segs.append(plan("approach", segs[-1].end, rng, hand=hand, speed=speed, body_mm=close))
    for name in list(order) + ["leave"]:
        pause = 0.6 if tour else float(rng.uniform(0.4, 2.5)) / speed
        segs.append(gap(segs[-1].end, segs[-1].end + pause, close))
        segs.append(plan(name, segs[-1].end, rng, hand=hand, speed=speed, body_mm=close))
    return segs


def session(seed: int = 0, duration_s: float = 60.0, rate_hz: float = 25.0,
            gestures=None) -> SimTrace:
    """Visitors one after another for ``duration_s``. See the module docstring."""
    if not duration_s > 0:
        raise SimError(f"duration_s must be positive, got {duration_s!r}")
    sensors = Sensors(seed)
    choices, weights = _weights(gestures)
    segments: list[Segment] = []
    while not segments or segments[-1].end < duration_s:
        start = segments[-1].end if segments else 0.0
        segments += visit_segments(sensors.plan_rng, start, choices, weights)
    return _trace(segments, duration_s, rate_hz, sensors)


TOUR_ORDER = ("tap", "double_tap", "stroke_cw", "stroke_ccw", "hold", "palm")


def tour_segments(rng: np.random.Generator, start: float = 0.0) -> list[Segment]:
    """The demo's visitor: empty room, approach, every touch gesture once in order, leave."""
    return visit_segments(rng, start, None, None, order=TOUR_ORDER)


def script_segments(script, rng: np.random.Generator) -> list[Segment]:
    """Segments from a script: a list of ``(start_s, gesture)`` or ``(start_s, gesture, options)``.

    Pauses are filled with "nobody": the visitor stays in front of the object after an
    approach or a touch gesture and before a touch gesture, and is gone otherwise.
    """
    planned: list[Segment] = []
    for k, entry in enumerate(script):
        if not isinstance(entry, (tuple, list)) or len(entry) not in (2, 3):
            raise SimError(f"script entry {k + 1} must be (start_s, gesture[, options]), got {entry!r}")
        start, name = float(entry[0]), entry[1]
        options = dict(entry[2]) if len(entry) == 3 and entry[2] else {}
        seg = plan(name, start, rng, **options)
        if planned and start < planned[-1].end:
            raise SimError(f"script entry {k + 1} ({name} at {start:.2f} s) starts before the "
                           f"previous gesture ({planned[-1].gesture}) ends at {planned[-1].end:.2f} s")
        if start < 0:
            raise SimError(f"script entry {k + 1} starts at a negative time ({start})")
        planned.append(seg)
    out: list[Segment] = []
    t = 0.0
    prev: Segment | None = None
    for seg in planned:
        if seg.start > t:
            out.append(gap(t, seg.start, _standing(prev, seg)))
        out.append(seg)
        t, prev = seg.end, seg
    return out


def _standing(prev: Segment | None, nxt: Segment | None) -> float:
    """Where the visitor stands in a pause between two scripted segments (nan: not there)."""
    if prev is not None and prev.gesture in TOUCH_GESTURES + TEACHABLE_GESTURES + ("approach",):
        return prev.body_mm[1]
    if nxt is not None and nxt.gesture in TOUCH_GESTURES + TEACHABLE_GESTURES + ("leave",):
        return nxt.body_mm[0]
    return math.nan


class World:
    """The live simulated scene: scripted segments plus pads pressed by hand (the mouse).

    Times are seconds since the body was opened. With ``script=None`` the visitor is endless:
    a tour of every gesture, then more tours with new random draws. A finite script ends in
    an empty room.
    """

    def __init__(self, seed: int = 0, script=None, gestures=None, **chip_settings):
        self.sensors = Sensors(seed, **chip_settings)
        self.endless = script is None
        # ``gestures``: the endless visitor stays at the object and performs only these,
        # over and over with short pauses -- a demonstration to ``record`` (teaching)
        self.demonstrate = _weights(gestures)[0] if gestures else None
        if self.endless:
            self.segments = self._more(0.0)
        else:
            self.segments = script_segments(script, self.sensors.plan_rng)
        self._end_cache: list[float] | None = None
        self.manual: dict[int, float] = {}  # pad -> strength (0..1) pressed by hand
        self.manual_counts = 60.0  # counts for strength 1: about a medium fingertip on a pad

    #: An endless visitor forgets gestures that ended this long ago: without it the plan grew
    #: by a tour every couple of minutes for as long as the piece ran (a soak found ~7,000
    #: more objects an hour). Longer than any demo, which reports the gestures it showed.
    KEEP_S = 900.0

    def _more(self, start: float) -> list[Segment]:
        """More of the endless visitor: a tour, or (``gestures``) one more demonstration."""
        rng = self.sensors.plan_rng
        if self.demonstrate is None:
            return tour_segments(rng, start)
        if start == 0.0:
            first = plan("approach", 0.0, rng, body_mm=300.0)
            return [first] + self._more(first.end)
        name = self.demonstrate[int(rng.integers(len(self.demonstrate)))]
        pause = gap(start, start + float(rng.uniform(0.3, 0.8)), 300.0)
        return [pause, plan(name, pause.end, rng, body_mm=300.0)]

    def _extend(self, t: float) -> None:
        if not self.endless or self.segments[-1].end > t + 5.0:
            return
        while self.segments[-1].end <= t + 5.0:
            self.segments += self._more(self.segments[-1].end)
        old = bisect.bisect_left([seg.end for seg in self.segments], t - self.KEEP_S)
        if old:
            del self.segments[:old]
        self._end_cache = None

    def segment_at(self, t: float) -> Segment | None:
        self._extend(t)
        # segments are time-ordered and do not overlap: bisect on the ends, so a window that
        # has been open for hours costs the same per read as one just opened
        i = bisect.bisect_right(self._ends, t)
        segments = self.segments
        if i < len(segments) and segments[i].start <= t < segments[i].end:
            return segments[i]
        return None

    @property
    def _ends(self) -> list[float]:
        if self._end_cache is None or len(self._end_cache) != len(self.segments):
            self._end_cache = [seg.end for seg in self.segments]
        return self._end_cache

    def gesture_at(self, t: float) -> str:
        """The honest label at time t: what the visitor is doing ("nobody" between gestures)."""
        seg = self.segment_at(t)
        return seg.gesture if seg is not None else "nobody"

    def script_end(self) -> float:
        return self.segments[-1].end if self.segments else 0.0

    def scene_at(self, t: float, hand=None) -> Scene:
        self._extend(t)
        seg = self.segment_at(t)
        sc = scene([seg] if seg is not None else [], np.array([t]))
        hand = self.manual if hand is None else hand
        if hand:  # someone at the object, reaching to the ring
            if math.isnan(sc.body_mm[0]):
                sc.body_mm[0] = 250.0
            # a hand over the ring shades the light sensor: a fingertip a little, a palm a lot
            sc.shade[0] = max(sc.shade[0], 0.1, 0.55 * min(1.0, sum(hand.values()) / 6.0))
        return sc

    # -- hand on the ring ---------------------------------------------------------------
    # The window's event loop may press pads while a device loop thread reads the sensors:
    # ``manual`` is replaced whole, never changed in place, so a reader sees a consistent hand.
    def press(self, pad: int, strength: float = 1.0) -> None:
        if not (isinstance(pad, (int, np.integer)) and 0 <= pad < N_PADS):
            raise SimError(f"pad must be an integer 0..{N_PADS - 1}, got {pad!r}")
        self.manual = {**self.manual, int(pad): float(np.clip(strength, 0.0, 1.0))}

    def touch_at(self, angle: float | None, palm: bool = False) -> None:
        """A fingertip (or with ``palm`` a whole palm) on the ring at ``angle`` (rad, clockwise
        from pad 0), replacing any pressed pads; None lifts it. Between two pads a finger
        touches both partly, as a real one does, so dragging around the ring makes a smooth
        stroke. Sizes and strengths are those of a medium hand (``HANDS["medium"]``)."""
        hand = HANDS["medium"]
        half_width_deg = hand.palm_half_width_deg if palm else hand.finger_half_width_deg
        strength = (hand.palm_counts if palm else hand.finger_counts) / self.manual_counts
        if angle is None:
            self.manual = {}
            return
        cover = contact_coverage(np.array([float(angle)]), np.array([math.radians(half_width_deg)]),
                                 np.ones(1))[0]
        self.manual = {int(pad): float(cover[pad]) * strength
                       for pad in np.nonzero(cover > 0.02)[0]}

    def release(self, pad: int | None = None) -> None:
        if pad is None:
            self.manual = {}
        else:
            self.manual = {k: v for k, v in self.manual.items() if k != int(pad)}

    # -- what the chips read at time t --------------------------------------------------
    def read_touch(self, t: float):
        hand = self.manual  # one consistent snapshot (see press)
        sc = self.scene_at(t, hand)
        extra = None
        if hand:
            extra = np.zeros((1, N_PADS))
            for pad, s in hand.items():
                extra[0, pad] += self.manual_counts * s
        raw, base, touched = self.sensors.touch(np.array([t]), sc, extra)
        return raw[0], base[0], int(touched[0])

    def read_distance(self, t: float) -> float | None:
        mm = float(self.sensors.ranger.measure(self.scene_at(t).body_mm)[0])
        return None if math.isnan(mm) else mm

    def read_lux(self, t: float) -> float:
        sc = self.scene_at(t)
        return float(self.sensors.lux.measure(np.array([t]), sc.shade)[0])

