"""The behaviour: what the object *feels* (a mood with memory) and how it shows it.

The model only says, 25 times a second, how likely each gesture is right now. A piece that
flashed a new colour on every such guess would feel nervous and mechanical; a living
object remembers. So:

* :class:`MoodEngine` turns class probabilities into a mood. Each recognised gesture adds
  *charge* to the moods it evokes (a :class:`Temperament` table: a stroke delights, a palm
  makes it shy, an approach makes it curious); charge decays over ``mood_decay_s``; calm is
  the resting mood; switching mood needs ``hysteresis`` more charge than the current one
  (no flicker); many touches in quick succession build *arousal*, which makes it agitated.
* :class:`LightRenderer` turns the mood and the touches into LED frames: a palette colour
  per mood that cross-fades, breathing whose pace is the mood's, a glow under fingers that
  appears on the very next frame (touch-to-light latency is one frame, not one inference),
  ripples starting from the touched pad, and idle animations when no one is there or no
  model is loaded. Frames are written into a preallocated (N, 3) uint8 array; after
  construction no buffer is allocated per frame, only small numpy view and scalar objects
  (~1.5 KB a frame, the same for 24 or 2000 pixels: tested).
* :class:`PhraseBank` picks a short phrase for the OLED from the editable per-mood banks,
  no more often than ``phrase_interval_s``.
* :func:`quiet_now` decides, by the device clock, whether opening hours are over.
* :func:`render_oled` draws the words into a 128x64 mode-"1" PIL image (PIL imported
  lazily: this module is imported by the device at start).

Everything here is pure: time is passed in, parameters are passed in as a dict (a
``ParamStore.snapshot()``), so tests and the demo drive it deterministically.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lanthorn.vocabulary import MOODS as DEFAULT_MOODS  # the default piece's moods, spelled once

# What each gesture of the default piece evokes (weights per mood; a gesture's row sums to 1).
DEFAULT_GESTURE_MOODS: dict[str, dict[str, float]] = {
    "approach": {"curious": 1.0},
    "tap": {"curious": 0.7, "delighted": 0.3},
    "double_tap": {"delighted": 0.6, "curious": 0.4},
    "stroke_cw": {"delighted": 1.0},
    "stroke_ccw": {"delighted": 0.7, "calm": 0.3},
    "hold": {"calm": 0.6, "delighted": 0.4},
    "palm": {"shy": 0.7, "agitated": 0.3},
    "leave": {"shy": 0.6, "calm": 0.4},
}

# Per mood: breathing rate (Hz at speed 1), breathing depth (low, high level 0..1),
# ripple speed (rad/s), flicker (0..1). Slow and deep when calm, quick and restless when agitated.
@dataclass(frozen=True)
class MoodStyle:
    breath_hz: float
    low: float
    high: float
    ripple_speed: float
    flicker: float = 0.0


DEFAULT_STYLES: dict[str, MoodStyle] = {
    "calm": MoodStyle(0.12, 0.10, 0.35, 2.5),
    "curious": MoodStyle(0.30, 0.20, 0.55, 4.0),
    "delighted": MoodStyle(0.45, 0.35, 0.85, 5.5),
    "shy": MoodStyle(0.18, 0.04, 0.18, 2.0),
    "agitated": MoodStyle(0.90, 0.30, 0.90, 8.0, flicker=0.35),
}

# Palettes: per mood a (hue degrees, saturation) for the body colour; the accent (glow,
# ripples) is the same hue, lighter. "mono" is warm white throughout.
_PALETTE_HUES: dict[str, dict[str, tuple[float, float]]] = {
    "ember": {"calm": (28, 0.85), "curious": (45, 0.80), "delighted": (12, 0.75),
              "shy": (300, 0.45), "agitated": (0, 1.0)},
    "tide": {"calm": (200, 0.80), "curious": (175, 0.75), "delighted": (150, 0.65),
             "shy": (240, 0.55), "agitated": (265, 0.95)},
    "moss": {"calm": (110, 0.70), "curious": (80, 0.75), "delighted": (55, 0.70),
             "shy": (160, 0.45), "agitated": (25, 0.95)},
    "dusk": {"calm": (270, 0.60), "curious": (320, 0.60), "delighted": (340, 0.55),
             "shy": (230, 0.40), "agitated": (355, 0.95)},
    "mono": {m: (35, 0.15) for m in DEFAULT_MOODS},
}
_FALLBACK_HUE = (35, 0.3)  # an artist's own mood missing from a palette: soft warm white


@dataclass(frozen=True)
class Temperament:
    """The moods of a piece and what each gesture evokes. The default piece's is
    :data:`DEFAULT_TEMPERAMENT`; an artist's own piece can declare other moods and weights."""

    moods: tuple[str, ...] = DEFAULT_MOODS
    gesture_moods: dict = field(default_factory=lambda: dict(DEFAULT_GESTURE_MOODS))
    styles: dict = field(default_factory=lambda: dict(DEFAULT_STYLES))
    resting: str = "calm"
    agitated: str | None = "agitated"  # the mood that arousal (many quick touches) feeds
    touch_gestures: tuple[str, ...] = ("tap", "double_tap", "stroke_cw", "stroke_ccw", "hold",
                                       "palm")

    def style(self, mood: str) -> MoodStyle:
        return self.styles.get(mood, DEFAULT_STYLES["calm"])


DEFAULT_TEMPERAMENT = Temperament()


def temperament_for(card: dict | None, base: Temperament = DEFAULT_TEMPERAMENT) -> tuple[Temperament, list[str]]:
    """The temperament to use with a model: ``base``, with what the model's card says about
    its own gestures. An artist's model with other labels ("wave", "knock") declares in its
    card which moods they evoke::

        "temperament": {"gesture_moods": {"wave": {"delighted": 1.0}},
                        "touch_gestures": ["knock"]}

    Returns (temperament, warnings); unknown moods and bad weights are skipped with a
    warning (a card must never stop the piece)."""
    spec = (card or {}).get("temperament") if isinstance(card, dict) else None
    if not spec:
        return base, []
    warnings: list[str] = []
    if not isinstance(spec, dict):
        return base, ["the model card's temperament is not an object; using the default"]
    gesture_moods = dict(base.gesture_moods)
    for label, moods in (spec.get("gesture_moods") or {}).items():
        if not isinstance(moods, dict):
            warnings.append(f"temperament: {label!r} must map moods to weights; ignored")
            continue
        good = {}
        for mood, w in moods.items():
            if mood not in base.moods:
                warnings.append(f"temperament: {label!r} evokes unknown mood {mood!r} "
                                f"(moods: {', '.join(base.moods)}); ignored")
            elif not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 <= w <= 1:
                warnings.append(f"temperament: weight of {mood!r} for {label!r} must be 0..1; ignored")
            else:
                good[mood] = float(w)
        gesture_moods[str(label)] = good
    touch = spec.get("touch_gestures", base.touch_gestures)
    if not isinstance(touch, (list, tuple)) or not all(isinstance(x, str) for x in touch):
        warnings.append("temperament: touch_gestures must be a list of labels; ignored")
        touch = base.touch_gestures
    else:
        touch = tuple(dict.fromkeys(tuple(base.touch_gestures) + tuple(touch)))
    return Temperament(base.moods, gesture_moods, dict(base.styles), base.resting, base.agitated,
                       touch), warnings


def with_gesture_moods(base: Temperament, moods: dict | None) -> Temperament:
    """``base`` with the artist's ``gesture_moods`` parameter on top: each gesture named
    there evokes exactly the moods given (a taught gesture gets a feeling; a known one can
    be given another). Moods the piece does not have are skipped (the parameter table
    already refuses them)."""
    if not moods:
        return base
    table = dict(base.gesture_moods)
    for label, row in moods.items():
        table[str(label)] = {m: float(w) for m, w in row.items() if m in base.moods}
    return Temperament(base.moods, table, dict(base.styles), base.resting, base.agitated,
                       base.touch_gestures)


FLIP_GAP_S = 0.5   # another gesture this soon after the last one ended ...
FLIP_HOLD_S = 0.5  # ... when the last one held less than this: the model changed its mind


def flicker(log, seconds: float, background: str = "nobody") -> dict:
    """Flicker figures from ``[(t, recognised or None), ...]`` (every change, in order).

    A *flip* is a recognised gesture giving way, after holding less than
    :data:`FLIP_HOLD_S`, to a different gesture (not the background, not "unsure") within
    :data:`FLIP_GAP_S`: the model changing its mind (tap ↔ double tap seven times in
    0.8 s), not a visitor going on to something new. ``holds`` says how long each
    recognised gesture stayed recognised."""
    runs = []                                  # (label, start, end)
    for i, (t, label) in enumerate(log):
        end = log[i + 1][0] if i + 1 < len(log) else seconds
        if label is not None:
            runs.append((label, t, end))
    flips = 0
    last = None                                # (label, start, end) of the last gesture run
    for label, start, end in runs:
        if label == background:
            continue
        if (last is not None and label != last[0] and start - last[2] <= FLIP_GAP_S
                and last[2] - last[1] < FLIP_HOLD_S):
            flips += 1
        last = (label, start, end)
    holds: dict[str, list[float]] = {}
    for label, start, end in runs:
        holds.setdefault(label, []).append(end - start)
    per = {lab: {"n": len(v), "median_s": round(float(np.median(v)), 3),
                 "min_s": round(float(min(v)), 3), "total_s": round(float(sum(v)), 3)}
           for lab, v in sorted(holds.items())}
    every = [d for v in holds.values() for d in v]
    return {"changes": len(log), "changes_per_s": round(len(log) / seconds, 3) if seconds else None,
            "flips": flips, "flips_per_s": round(flips / seconds, 3) if seconds else None,
            "holds": per,
            "hold_s_median": round(float(np.median(every)), 3) if every else None,
            "holds_under_0_5_s": sum(1 for d in every if d < 0.5)}


def hsv_to_rgb(h_deg: float, s: float, v: float) -> np.ndarray:
    """One colour as float32 RGB 0..255 (used when palettes change, not per frame)."""
    h = (h_deg % 360.0) / 60.0
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    m = v - c
    return np.array([(r + m) * 255, (g + m) * 255, (b + m) * 255], np.float32)


def palette_colours(palette: str, moods: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(body, accent) colours, each float32 (n_moods, 3), for a palette name."""
    hues = _PALETTE_HUES.get(palette, _PALETTE_HUES["ember"])
    body = np.stack([hsv_to_rgb(*hues.get(m, _FALLBACK_HUE), 1.0) for m in moods])
    accent = np.stack([hsv_to_rgb(hues.get(m, _FALLBACK_HUE)[0], hues.get(m, _FALLBACK_HUE)[1] * 0.5,
                                  1.0) for m in moods])
    return body, accent


# ---------------------------------------------------------------------------------------
# Mood


@dataclass
class GestureEvent:
    """A gesture the model recognised (its onset), for the timeline and the console."""

    t: float
    label: str
    p: float


class MoodEngine:
    """Class probabilities over time → the current mood, with memory, hysteresis and decay.

    ``observe(probs, t, params)`` is called at the model's rate. It keeps a non-negative
    *charge* per mood: recognised gestures (probability ≥ ``confidence``) add charge to the
    moods they evoke at ``GAIN`` per second; charge decays with time constant
    ``mood_decay_s / 3`` (so a mood has mostly faded after ``mood_decay_s``); the resting
    mood never drops below ``REST``. The mood switches only when another mood's charge
    exceeds the current one's by ``hysteresis``.
    """

    GAIN = 1.0  # charge per second of a fully confident gesture
    REST = 0.25  # the resting mood's floor
    CAP = 1.5  # charge saturates: a long hold cannot make a mood last for ever
    AROUSAL_TAU_S = 6.0  # how long quick touches are remembered
    AROUSAL_THRESHOLD = 2.5  # about three touch gestures within a few seconds
    AROUSAL_GAIN = 0.8
    RELEASE_MARGIN = 0.2  # a recognised gesture ends below confidence - this
    TOUCH_GAP_S = 0.6  # touch gestures closer than this are one touch for arousal
    MAX_SMOOTHING = 25  # the most outputs temporal voting may average (1 s at 25 Hz)

    def __init__(self, labels: tuple[str, ...], temperament: Temperament = DEFAULT_TEMPERAMENT):
        self.temperament = temperament
        self.moods = temperament.moods
        self.rest_index = self.moods.index(temperament.resting)
        self.agitated_index = (self.moods.index(temperament.agitated)
                               if temperament.agitated in self.moods else -1)
        self.set_labels(labels)
        self.charge = np.zeros(len(self.moods), np.float64)
        self.mood_index = self.rest_index
        self.arousal = 0.0
        self._last_touch_t = -math.inf
        self.gesture: str | None = None  # the currently recognised gesture (None: unsure)
        self.gesture_p = 0.0
        self.last_t: float | None = None
        self.mood_since = 0.0
        self.changes = 0                 # how often the recognised gesture changed (flicker)

    def set_labels(self, labels: tuple[str, ...]) -> None:
        """A new model may have other labels: rebuild the label → mood weight table."""
        self.labels = tuple(labels)
        n = len(self.labels)
        self.weights = np.zeros((n, len(self.moods)), np.float64)
        for i, label in enumerate(self.labels):
            for mood, w in self.temperament.gesture_moods.get(label, {}).items():
                if mood in self.moods:
                    self.weights[i, self.moods.index(mood)] = w
        self._touch_mask = np.array([lab in self.temperament.touch_gestures for lab in self.labels],
                                    bool)
        self._gate = np.zeros(n, bool)
        self._gated = np.zeros(n, np.float64)
        self._evidence = np.zeros(len(self.moods), np.float64)
        # temporal voting: the last MAX_SMOOTHING probability vectors, newest last
        self._recent = np.zeros((self.MAX_SMOOTHING, n), np.float32)
        self._seen = 0
        self._smooth = np.zeros(n, np.float32)
        self._pending: str | None = None
        self._pending_since = 0.0
        self.gesture = None

    @property
    def mood(self) -> str:
        return self.moods[self.mood_index]

    def levels(self) -> np.ndarray:
        """Effective charge per mood (resting floor applied); a copy."""
        out = self.charge.copy()
        out[self.rest_index] = max(out[self.rest_index], self.REST)
        return out

    def observe(self, probs: np.ndarray, t: float, confidence: float = 0.6,
                mood_decay_s: float = 20.0, hysteresis: float = 0.15, smoothing: int = 1,
                hold_s: float = 0.0) -> GestureEvent | None:
        """Update with one probability vector at time ``t``; returns a GestureEvent on the
        onset of a newly recognised gesture (else None).

        ``smoothing``: the last this-many vectors are averaged first (temporal voting);
        ``hold_s``: a different recognition must persist this long before it replaces the
        current one. Both steady a model that flips between look-alikes (tap / double tap)
        on successive windows; both are parameters (``gesture_smoothing``,
        ``gesture_hold_s``)."""
        dt = 0.0 if self.last_t is None else min(max(t - self.last_t, 0.0), 1.0)
        self.last_t = t
        event = None
        if self.labels and probs.shape[0] >= len(self.labels):
            event = self._recognise(probs, t, confidence, smoothing, hold_s)
            np.dot(self._gated, self.weights, out=self._evidence)
        else:
            self._evidence.fill(0.0)
        self._feel(dt, t, mood_decay_s, hysteresis)
        return event

    def _recognise(self, probs: np.ndarray, t: float, confidence: float, smoothing: int,
                   hold_s: float) -> GestureEvent | None:
        """Temporal voting, the confidence gate, hysteresis and debounce: which gesture is
        recognised now (``self.gesture``); the onset of a new one is returned as an event."""
        p = self._smoothed(probs, smoothing)
        np.greater_equal(p, confidence, out=self._gate)
        np.multiply(p, self._gate, out=self._gated)
        best = int(p.argmax())
        recognised = self.labels[best] if self._gate[best] else None
        if recognised is None and self.gesture is not None:
            # hysteresis: the gesture under way stays recognised until its probability
            # falls clearly below the threshold (noise around it is not a new gesture)
            held = self.labels.index(self.gesture)
            if best == held and p[held] >= confidence - self.RELEASE_MARGIN:
                recognised = self.gesture
        if recognised != self.gesture and hold_s > 0.0:
            # debounce: the new reading must hold for hold_s before it is believed
            if recognised != self._pending:
                self._pending, self._pending_since = recognised, t
            if t - self._pending_since < hold_s:
                recognised = self.gesture
                if recognised is not None:
                    best = self.labels.index(recognised)
        else:
            self._pending = recognised
        self.gesture_p = float(p[best])
        return self._recognised(recognised, best, t)

    def _smoothed(self, probs: np.ndarray, smoothing: int) -> np.ndarray:
        """The mean of the last ``smoothing`` probability vectors (into a preallocated one)."""
        k = min(max(int(smoothing), 1), self.MAX_SMOOTHING)
        recent = self._recent
        recent[:-1] = recent[1:]
        recent[-1] = probs[:len(self.labels)]
        if self._seen == 0:
            recent[:] = probs[:len(self.labels)]   # no made-up history of zeros at the start
        self._seen += 1
        np.mean(recent[-k:], axis=0, out=self._smooth)
        return self._smooth

    def _recognised(self, recognised: str | None, best: int, t: float) -> GestureEvent | None:
        """Take ``recognised`` as the current gesture; touches feed arousal."""
        touching = recognised is not None and bool(self._touch_mask[best])
        event = None
        if recognised != self.gesture:
            self.changes += 1
            self.gesture = recognised
            if recognised is not None and recognised != "nobody":
                event = GestureEvent(t, recognised, float(self._smooth[best]))
                # one touch is one touch: the model changing its mind mid-gesture
                # (stroke <-> double tap) must not count as a flurry of touches
                if touching and t - self._last_touch_t > self.TOUCH_GAP_S:
                    self.arousal += 1.0
        if touching:
            self._last_touch_t = t
        return event

    def _feel(self, dt: float, t: float, mood_decay_s: float, hysteresis: float) -> None:
        """Charge the moods with the evidence, decay them, and switch mood with hysteresis."""
        self.arousal *= math.exp(-dt / self.AROUSAL_TAU_S)
        if self.agitated_index >= 0 and self.arousal > self.AROUSAL_THRESHOLD:
            self._evidence[self.agitated_index] += (self.arousal - self.AROUSAL_THRESHOLD) * self.AROUSAL_GAIN
        c = self.charge
        c += self._evidence * (self.GAIN * dt)
        c *= math.exp(-dt / max(mood_decay_s / 3.0, 1e-3))
        np.minimum(c, self.CAP, out=c)
        # effective level with the resting floor, without allocating
        cur = self.mood_index
        best_m, best_v = cur, self._level(cur)
        for m in range(len(self.moods)):
            v = self._level(m)
            if v > best_v:
                best_m, best_v = m, v
        if best_m != cur and best_v > self._level(cur) + hysteresis:
            self.mood_index = best_m
            self.mood_since = t

    def _level(self, m: int) -> float:
        v = float(self.charge[m])
        return max(v, self.REST) if m == self.rest_index else v


# ---------------------------------------------------------------------------------------
# Light


def ring_distance(a, b):
    """Angular distance on the ring (radians, 0..pi)."""
    d = np.abs((np.asarray(a) - np.asarray(b)) % (2 * math.pi))
    return np.minimum(d, 2 * math.pi - d)


def touch_hold(held: np.ndarray, pads: np.ndarray, onset: float, release: float,
               scratch: np.ndarray) -> None:
    """Update which pads are held, in place: a pad is held from the moment it reaches
    ``onset`` until it falls below ``release`` (so sensor noise near one threshold is not a
    stream of new touches)."""
    np.greater_equal(pads, release, out=scratch)
    np.logical_and(held, scratch, out=held)
    np.greater_equal(pads, onset, out=scratch)
    np.logical_or(held, scratch, out=held)


class LightRenderer:
    """Mood + touches → one LED frame, into a preallocated (n_pixels, 3) uint8 array.

    Pixel 0 sits at pad 0 and both go clockwise (the profile's ring order), so pad ``p`` is
    at angle ``2*pi*p/n_pads`` and pixel ``i`` at ``2*pi*i/n_pixels``.
    """

    MAX_RIPPLES = 8
    RIPPLE_WIDTH = 0.45  # radians
    RIPPLE_LIFE_S = 1.2
    GLOW_WIDTH = 0.30  # radians: a fingertip lights about one pad's worth of pixels
    GLOW_GAIN = 2.5  # a light fingertip (~40 counts, 0.4) already glows fully
    FADE_S = 0.8  # colour cross-fade between moods
    ONSET_LEVEL = 0.12  # pad strength (frames.py scale) that counts as a new touch
    RELEASE_LEVEL = 0.06  # ... and below which it has ended (hysteresis: noise is no new touch)

    def __init__(self, n_pixels: int, moods: tuple[str, ...] = DEFAULT_MOODS,
                 temperament: Temperament = DEFAULT_TEMPERAMENT, n_pads: int = 12, seed: int = 0):
        self.n = int(n_pixels)
        self.n_pads = int(n_pads)
        self.moods = moods
        self.temperament = temperament
        pix = np.arange(self.n) * (2 * math.pi / self.n)
        # a body without touch pads (a bowl, a plinth) has no ripples and no glow: the
        # (N, 0) weights make both nothing, the rest of the renderer is the same
        pads = np.arange(self.n_pads) * (2 * math.pi / max(self.n_pads, 1))
        self.pixel_angles = pix.astype(np.float32)
        self.pad_dist = ring_distance(pads[:, None], pix[None, :]).astype(np.float32)  # (pads, N)
        self.glow_weights = np.exp(-(self.pad_dist.T / self.GLOW_WIDTH) ** 2).astype(np.float32)  # (N, pads)
        self.palette = "ember"
        self.body, self.accent = palette_colours(self.palette, moods)   # (moods, 3) each
        self.colour = self.body[0].copy()
        self.accent_now = self.accent[0].copy()
        self.phase = 0.0
        self.comet = 0.0
        # ripple slots
        self.r_pad = np.zeros(self.MAX_RIPPLES, np.int64)
        self.r_t0 = np.full(self.MAX_RIPPLES, -1e9)
        self.r_strength = np.zeros(self.MAX_RIPPLES, np.float32)
        self._next_slot = 0
        self._held = np.zeros(self.n_pads, bool)
        self._still = np.zeros(self.n_pads, bool)
        self._pads = np.zeros(self.n_pads, np.float32)
        self._onset = np.zeros(self.n_pads, bool)
        # work buffers
        self._work = np.zeros((self.n, 3), np.float32)
        self._intensity = np.zeros(self.n, np.float32)
        self._tmp = np.zeros(self.n, np.float32)
        self._glow = np.zeros(self.n, np.float32)
        self._sparkle = np.zeros(self.n, np.float32)
        self._rng = np.random.default_rng(seed)
        self._twinkle = np.zeros(self.n, np.float32)
        self._tw_mask = np.zeros(self.n, bool)
        self.rest_index = moods.index(temperament.resting) if temperament.resting in moods else 0
        self._diff = np.zeros(3, np.float32)
        # per-channel column views: a broadcast (N,1)x(3,) multiply makes numpy allocate an
        # (N,3) buffer every call (measured); three 1-D multiplies into these views do not
        self._work_cols = [self._work[:, k] for k in range(3)]
        self.last_t: float | None = None

    def set_palette(self, name: str) -> None:
        if name != self.palette:
            self.palette = name
            self.body, self.accent = palette_colours(name, self.moods)

    def touch(self, pads: np.ndarray, t: float) -> int:
        """Feed the newest pad strengths (frames.py scale, ≥ 0). Starts a ripple from each
        pad that was just touched; returns how many started."""
        np.copyto(self._pads, pads[:self.n_pads], casting="unsafe")
        np.greater_equal(self._pads, self.ONSET_LEVEL, out=self._onset)
        started = 0
        for p in range(self.n_pads):
            if self._onset[p] and not self._held[p]:
                s = self._next_slot
                self.r_pad[s] = p
                self.r_t0[s] = t
                self.r_strength[s] = min(0.6 + float(self._pads[p]), 1.5)
                self._next_slot = (s + 1) % self.MAX_RIPPLES
                started += 1
        touch_hold(self._held, self._pads, self.ONSET_LEVEL, self.RELEASE_LEVEL, self._still)
        return started

    def render(self, out: np.ndarray, t: float, mood_index: int, params: dict,
               present: bool = True, have_model: bool = True) -> np.ndarray:
        """Draw one frame at time ``t`` into ``out`` (uint8 (N, 3)).

        ``present``: someone is there (not "nobody"); when nobody is and the mood is the
        resting one, or there is no model, the idle animation runs instead of breathing
        in the mood's colours. Ripples and the touch glow always show.
        """
        dt = 0.0 if self.last_t is None else min(max(t - self.last_t, 0.0), 0.5)
        self.last_t = t
        speed = float(params.get("speed", 1.0))
        self.set_palette(params.get("palette", "ember"))
        mood = self.moods[mood_index] if 0 <= mood_index < len(self.moods) else self.moods[0]
        style = self.temperament.style(mood)
        # cross-fade the body and accent colours towards the mood's
        k = 1.0 - math.exp(-dt / self.FADE_S)
        np.subtract(self.body[mood_index], self.colour, out=self._diff)
        self._diff *= k
        self.colour += self._diff
        np.subtract(self.accent[mood_index], self.accent_now, out=self._diff)
        self._diff *= k
        self.accent_now += self._diff
        self.phase = (self.phase + dt * style.breath_hz * speed) % 1.0
        work = self._work
        idle = (not have_model) or (not present and mood_index == self.rest_index)
        if idle:
            self._idle(params.get("idle_animation", "breathe"), dt, speed)
        else:
            breath = 0.5 - 0.5 * math.cos(2 * math.pi * self.phase)
            level = style.low + (style.high - style.low) * breath
            if style.flicker:
                level *= 1.0 - style.flicker * float(self._rng.random())
            work[:] = self.colour
            work *= level
        # touch glow: appears on the first frame after the reading
        np.dot(self.glow_weights, self._pads, out=self._glow)
        self._glow *= self.GLOW_GAIN
        np.minimum(self._glow, 1.0, out=self._intensity)
        self._ripples(t, style.ripple_speed * speed)
        # blend towards the full-brightness accent where touched or rippling, so a touch
        # shows however bright the mood's breathing is (a max() would hide it when bright)
        for k in range(3):
            col = self._work_cols[k]
            np.subtract(self.accent_now[k], col, out=self._tmp)
            self._tmp *= self._intensity
            col += self._tmp
        np.clip(work, 0.0, 255.0, out=work)
        np.copyto(out, work, casting="unsafe")
        return out

    def _ripples(self, t: float, speed: float) -> None:
        """Add every live ripple (a ring spreading from a touched pad) to the intensity."""
        for s in range(self.MAX_RIPPLES):
            age = t - float(self.r_t0[s])
            if age < 0.0 or age > self.RIPPLE_LIFE_S:
                continue
            np.subtract(self.pad_dist[self.r_pad[s]], age * speed, out=self._tmp)
            np.square(self._tmp, out=self._tmp)
            self._tmp *= -1.0 / (self.RIPPLE_WIDTH ** 2)
            np.exp(self._tmp, out=self._tmp)
            self._tmp *= float(self.r_strength[s]) * (1.0 - age / self.RIPPLE_LIFE_S)
            self._intensity += self._tmp
        np.minimum(self._intensity, 1.0, out=self._intensity)

    @staticmethod
    def _outer(levels: np.ndarray, colour: np.ndarray, cols: list) -> None:
        """cols[k][i] = levels[i] * colour[k], without a temporary (N, 3) buffer."""
        for k in range(3):
            np.multiply(levels, colour[k], out=cols[k])

    def _idle(self, kind: str, dt: float, speed: float) -> None:
        work = self._work
        colour = self.body[self.rest_index]
        if kind == "off":
            work.fill(0.0)
        elif kind == "still":
            work[:] = colour
            work *= 0.2
        elif kind == "twinkle":
            self._twinkle *= math.exp(-dt * 3.0 * speed)
            self._rng.random(dtype=np.float32, out=self._sparkle)
            # each pixel lights up about 1.2 times a second at speed 1, then fades
            np.less(self._sparkle, dt * 1.2 * speed, out=self._tw_mask)
            np.putmask(self._twinkle, self._tw_mask, 1.0)
            np.multiply(self._twinkle, 0.6, out=self._tmp)
            self._tmp += 0.05
            self._outer(self._tmp, colour, self._work_cols)
        elif kind == "comet":
            self.comet = (self.comet + dt * 0.6 * speed * 2 * math.pi) % (2 * math.pi)
            np.subtract(self.pixel_angles, self.comet, out=self._tmp)
            np.mod(self._tmp, 2 * math.pi, out=self._tmp)  # distance behind the head
            self._tmp *= -3.0
            np.exp(self._tmp, out=self._tmp)
            self._tmp *= 0.7
            self._tmp += 0.04
            self._outer(self._tmp, colour, self._work_cols)
        else:  # breathe
            breath = 0.5 - 0.5 * math.cos(2 * math.pi * self.phase)
            work[:] = colour
            work *= 0.05 + 0.25 * breath


# ---------------------------------------------------------------------------------------
# Words


class PhraseBank:
    """Picks the phrase to show: on a mood change at once (if ``phrase_interval_s`` allows),
    otherwise a new one from the same mood's bank every ``phrase_interval_s``. Cycles through
    a bank in order so every phrase the artist wrote gets shown."""

    def __init__(self):
        self.text = ""
        self.mood: str | None = None
        self.since = -1e9
        self._counter: dict[str, int] = {}

    def update(self, mood: str, t: float, params: dict) -> str | None:
        """Returns the new phrase when it changes, else None."""
        interval = float(params.get("phrase_interval_s", 8.0))
        changed_mood = mood != self.mood
        due = t - self.since >= interval
        if not (due or (changed_mood and t - self.since >= min(interval, 2.0))):
            return None
        bank = params.get(f"phrases_{mood}") or []
        self.mood = mood
        self.since = t
        if not bank:
            text = ""
        else:
            i = self._counter.get(mood, 0)
            self._counter[mood] = i + 1
            text = bank[i % len(bank)]
        if text == self.text:
            return None
        self.text = text
        return text


# ---------------------------------------------------------------------------------------
# Opening hours


def parse_timerange(value: str) -> tuple[int, int] | None:
    """'22:00-08:00' → (1320, 480) minutes after midnight; 'off' → None."""
    if not value or value == "off":
        return None
    a, b = value.split("-")
    ha, ma = a.split(":")
    hb, mb = b.split(":")
    return int(ha) * 60 + int(ma), int(hb) * 60 + int(mb)


def quiet_now(quiet_hours: str, minute_of_day: int) -> bool:
    """True when ``minute_of_day`` (0..1439, device local time) lies in the quiet hours.
    The range may wrap midnight ("22:00-08:00"); start == end means never quiet."""
    rng = parse_timerange(quiet_hours)
    if rng is None:
        return False
    start, end = rng
    if start == end:
        return False
    if start < end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end


def light_level(params: dict, quiet: bool) -> float:
    """LED brightness 0..1 to use now: the brightness parameter, or the quiet one at night
    (0 when quiet_mode is sleep). ``params`` is a full ``ParamStore.snapshot()`` (the
    defaults live in the parameter table, not here)."""
    if quiet:
        if params["quiet_mode"] == "sleep":
            return 0.0
        return min(float(params["quiet_brightness"]), float(params["brightness"])) / 100.0
    return float(params["brightness"]) / 100.0


# ---------------------------------------------------------------------------------------
# OLED


_FONT_CACHE: dict = {}


def _fonts():
    if not _FONT_CACHE:
        from PIL import ImageFont
        try:
            _FONT_CACHE["big"] = ImageFont.load_default(size=13)
            _FONT_CACHE["small"] = ImageFont.load_default(size=10)
        except TypeError:  # Pillow without FreeType: the built-in bitmap font
            _FONT_CACHE["big"] = _FONT_CACHE["small"] = ImageFont.load_default()
    return _FONT_CACHE["big"], _FONT_CACHE["small"]


def wrap_text(text: str, width_px: int, measure) -> list[str]:
    """Greedy word wrap by measured pixel width; over-long words are cut."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if measure(candidate) <= width_px:
            line = candidate
            continue
        if line:
            lines.append(line)
        while measure(word) > width_px and len(word) > 1:
            cut = len(word)
            while cut > 1 and measure(word[:cut]) > width_px:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines


def render_oled(text: str, mood: str = "", width: int = 128, height: int = 64,
                footer: str = ""):
    """The display picture: the mood name small at the top, the phrase centred and wrapped
    below (in the small font when the big one would need more lines than fit), an optional
    footer (e.g. "no model") at the bottom. Mode "1" PIL image."""
    from PIL import Image, ImageDraw
    big, small = _fonts()
    img = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(img)
    if mood:
        draw.text((2, 0), mood, font=small, fill=1)
        draw.line((0, 12, width - 1, 12), fill=1)
    room = height - 14 - (12 if footer else 0)
    font, line_h = big, 15
    lines = wrap_text(text, width - 4, lambda s: draw.textlength(s, font=big))
    if len(lines) * line_h > room:   # a long phrase (the voice's): the small font, whole
        font, line_h = small, 11
        lines = wrap_text(text, width - 4, lambda s: draw.textlength(s, font=small))
    lines = lines[:max(1, room // line_h)]
    top = 14 + max(0, (room - line_h * len(lines)) // 2)
    for i, line in enumerate(lines):
        w = draw.textlength(line, font=font)
        draw.text(((width - w) / 2, top + i * line_h), line, font=font, fill=1)
    if footer:
        draw.text((2, height - 11), footer, font=small, fill=1)
    return img
