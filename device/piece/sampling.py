"""Sampling: one read of every sensor becomes one *sample* (the body's channel layout).

The pads are read at every sample; the ranger and the light sensor are slow by nature
(a VL53L0X measurement takes its ~33 ms timing budget, a BH1750 high-resolution one 120 ms),
so they are read at their own pace (``frames.DISTANCE_HZ``, ``frames.LIGHT_HZ``) and their
last value held in between. A failed part's channel is imputed: no touch, nothing in
range, the last good light level (:class:`~lanthorn.device.piece.part_health.PartHealth` decides
when a failed part is tried again). Readings a driver cannot really have made (a string, a
NaN, a scan of the wrong shape, a controller that lost its configuration) fail the part.

The sampler also notices the *onset* of a touch (for the touch-to-light latency figure) and
keeps the newest pad strengths for the LED glow, which follows the newest sample, not the
next inference. Samples are averaged into model frames by :class:`frames.FramePipeline`,
the same way synthetic data and recordings are. Nothing here allocates per sample.
"""
from __future__ import annotations

import math

import numpy as np

from lanthorn.device.piece import frames as fr
from lanthorn.device.piece.behaviour import LightRenderer, touch_hold
from lanthorn.device.piece.stuck import StuckDetector
from lanthorn.hardware.interfaces import PartError

NEUTRAL_LUX = 150.0  # a lit gallery, used until the light sensor has answered once
#: this many all-zero touch scans in a row (raw and baseline) mean a controller that lost
#: its configuration (a replug or brown-out puts an MPR121 back in stop mode): re-open it
ZERO_SCANS = 10
STUCK_TOUCH_S, STUCK_FROZEN_S = 120.0, 60.0  # (the parameters' defaults, for bare callers)


def reading_number(role: str, value, allow_none: bool = False) -> float | None:
    """A driver's reading as a finite float, or PartError: a driver that returns None, a
    string or an array must degrade its part, not stop the loop."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PartError(role, f"the driver returned {type(value).__name__}, not a number")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise PartError(role, f"the driver returned an impossible value {value!r}")
    return value


class Sampler:
    """Sensors → one sample (``self.sample``) and, at the model's rate, one model frame.

    ``health``: the parts' :class:`PartHealth`; ``scheduler`` makes the slow sensors'
    tickers; ``layout``: the body's :class:`~lanthorn.device.piece.channel_layout.ChannelLayout`
    (the default piece's 14 channels when not given; ``n_pads`` then sizes its pads)."""

    def __init__(self, body, health, scheduler, n_pads: int = fr.N_PADS, layout=None):
        from lanthorn.device.piece.channel_layout import DEFAULT_LAYOUT, build_layout
        if layout is None:
            layout = DEFAULT_LAYOUT if n_pads == fr.N_PADS else build_layout(n_pads, True, True)
        self.body, self.health, self.layout = body, health, layout
        self.n_pads = n = layout.n_pads
        self.sample = np.zeros(layout.n, np.float32)
        self.frame = np.zeros(layout.n, np.float32)
        self.pipeline = fr.FramePipeline(layout.n)   # the one way samples become model frames
        self.pads_now = np.zeros(n, np.float32)
        self.touch_onset_t: float | None = None  # a new touch not yet shown on the LEDs
        self._pad_delta = np.zeros(n, np.float32)
        self._zero_pads = np.zeros(n, np.float32)
        self._touching = np.zeros(n, bool)
        self._scratch = np.zeros(n, bool)
        self._pads_out = self.sample[layout.pad_start:layout.pad_start + n]
        self._zero_scans = 0
        self.last_lux = NEUTRAL_LUX
        self.last_distance: float | None = None
        self.distance_tick = scheduler.every(1.0 / fr.DISTANCE_HZ)
        self.light_tick = scheduler.every(1.0 / fr.LIGHT_HZ)
        self.channel_parts = [ChannelReader(block, scheduler) for block in layout.blocks]
        self._params: dict = {}
        self._now = 0.0
        self.stuck = default_stuck_detector(health, lambda: self._now, layout)

    def start(self, now: float) -> None:
        self.distance_tick.start(now)
        self.light_tick.start(now)
        for reader in self.channel_parts:
            reader.tick.start(now)

    def read(self, now: float, params: dict) -> np.ndarray:
        """One sample: read every sensor (imputing failed ones) into ``self.sample``."""
        self._params = params
        if self.health.stuck_now:
            self.health.retry_stuck(now)
        lay, s = self.layout, self.sample
        if lay.n_pads:
            pads = self.health.use("touch", now, self._read_touch, self._zero_pads)
        if lay.distance_at is not None and self.distance_tick.due(now):
            self.last_distance = self.health.use("distance", now, self._read_distance)
        if lay.light_at is not None and self.light_tick.due(now):
            self.last_lux = self.health.use("light", now, self._read_light, self.last_lux)
        if lay.is_default:
            fr.encode_into(s, pads, self.last_distance, self.last_lux)
        else:
            self._encode_classic(pads if lay.n_pads else None)
        for reader in self.channel_parts:
            reader.read_into(s, now, self.health)
        if lay.distance_at is not None:
            gain = params["approach_sensitivity"]
            if gain != 1.0:
                s[lay.distance_at] = min(s[lay.distance_at] * gain, 1.0)
        self._now = now
        self.stuck.check(s, now, params.get("stuck_touch_s", STUCK_TOUCH_S),
                         params.get("stuck_frozen_s", STUCK_FROZEN_S))
        return s

    def _encode_classic(self, pads) -> None:
        """The classic parts of a body that is not the default piece's 14 channels: the same
        arithmetic as :func:`frames.encode_into`, at the layout's indices."""
        lay, s = self.layout, self.sample
        if pads is not None:
            fr.encode_pads_into(self._pads_out, pads)
        if lay.distance_at is not None:
            s[lay.distance_at] = fr.encode_distance(self.last_distance)
        if lay.light_at is not None:
            s[lay.light_at] = fr.encode_light(self.last_lux)

    def take(self, now: float, params: dict, clock_now: float) -> None:
        """Sample, note a touch onset (at ``clock_now``) and add to the frame pipeline."""
        s = self.read(now, params)
        np.copyto(self.pads_now, self._pads_out)
        onset = LightRenderer.ONSET_LEVEL
        if self.touch_onset_t is None:
            for i in range(self.n_pads):
                if self.pads_now[i] >= onset and not self._touching[i]:
                    self.touch_onset_t = clock_now
                    break
        touch_hold(self._touching, self.pads_now, onset, LightRenderer.RELEASE_LEVEL,
                   self._scratch)
        self.pipeline.add(s)

    def take_frame(self) -> np.ndarray:
        """The model frame: the mean of the samples since the last one (``self.frame``)."""
        return self.pipeline.take_into(self.frame)

    # --- the sensors
    def _read_touch(self, touch) -> np.ndarray:
        reading = touch.read()
        self._check_touch(reading)
        # counts are uint16: subtract in float (a raw above baseline must not wrap)
        np.copyto(self._pad_delta, reading.baseline, casting="unsafe")
        np.subtract(self._pad_delta, reading.raw, out=self._pad_delta, casting="unsafe")
        np.maximum(self._pad_delta, 0.0, out=self._pad_delta)
        self._pad_delta *= self._params["touch_sensitivity"]
        return self._pad_delta

    def _read_distance(self, ranger) -> float | None:
        return reading_number("distance", ranger.read_mm(), allow_none=True)

    def _read_light(self, light) -> float:
        lux = reading_number("light", light.read_lux())
        assert lux is not None, "without allow_none a None reading raises PartError"
        return lux

    def _check_touch(self, reading) -> None:
        """Refuse a scan that cannot be real: the wrong shape, or (ZERO_SCANS in a row)
        all-zero counts and baselines, which is what an MPR121 that came back from a
        replug or brown-out in its stop mode reports while every read succeeds."""
        raw, base = getattr(reading, "raw", None), getattr(reading, "baseline", None)
        if not (isinstance(raw, np.ndarray) and isinstance(base, np.ndarray)
                and raw.shape == base.shape == (self.n_pads,)):
            raise PartError("touch", f"the driver returned {type(reading).__name__}, not a "
                                     f"scan of {self.n_pads} pads")
        if raw.any() or base.any():
            self._zero_scans = 0
            return
        self._zero_scans += 1
        if self._zero_scans >= ZERO_SCANS:
            self._zero_scans = 0
            raise PartError("touch", "all pads read zero with a zero baseline: the controller "
                                     "lost its configuration (replugged or browned out); "
                                     "re-initialising")


class ChannelReader:
    """One generic sensing part (a ChannelSensor: IMU, ADC, PIR, button...) in the sample:
    read at its own rate, each raw value encoded by its Channel; a failed part's channels
    hold their last good values (a still IMU, a knob where it was), as the light does."""

    def __init__(self, block, scheduler):
        self.block, self.role = block, block.role
        self.start, self.channels = block.start, block.channels
        # before the first good read: 0 (no motion, the range's low end, not pressed)
        self.values = [0.0 for _ in block.channels]
        self.tick = scheduler.every(1.0 / block.rate_hz)

    def read_into(self, sample: np.ndarray, now: float, health) -> None:
        if self.tick.due(now):
            health.use(self.role, now, self._read)
        for k, v in enumerate(self.values):
            sample[self.start + k] = v

    def _read(self, part) -> None:
        raw = part.read()
        if not isinstance(raw, (tuple, list)) or len(raw) != len(self.channels):
            raise PartError(self.role, f"the driver returned {type(raw).__name__}, not "
                                       f"{len(self.channels)} readings")
        values = self.values
        for k, (c, r) in enumerate(zip(self.channels, raw, strict=True)):
            if isinstance(r, bool) and c.encoding == "binary":
                values[k] = 1.0 if r else 0.0
                continue
            if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(r):
                raise PartError(self.role, f"channel {c.name}: the driver returned {r!r}, "
                                           f"not a number")
            values[k] = c.encode(r)


def default_stuck_detector(health, now, layout) -> StuckDetector:
    """The stuck detector over a body's channels: each pad is stuck when held touched too
    long; the distance, and a generic part's continuous channels (an IMU axis, a knob), when
    frozen to the bit while the rest moves; the light level is not judged (a steadily lit
    gallery reads one lux value for hours), nor are binary inputs (a button may rest pressed,
    a PIR sees a busy room)."""
    n = layout.n
    parts: list[str] = [""] * n
    kinds: list[str | None] = [None] * n
    active = [math.inf] * n
    for i in range(layout.pad_start, layout.pad_start + layout.n_pads):
        parts[i], kinds[i], active[i] = "touch", "held", LightRenderer.ONSET_LEVEL
    if layout.distance_at is not None:
        parts[layout.distance_at], kinds[layout.distance_at] = "distance", "frozen"
    if layout.light_at is not None:
        parts[layout.light_at] = "light"
    for block in layout.blocks:
        for k, c in enumerate(block.channels):
            parts[block.start + k] = block.role
            kinds[block.start + k] = None if c.encoding == "binary" else "frozen"
    return StuckDetector(layout.names, parts, kinds, [0.0] * n, active,
                         on_stuck=lambda part, names, why: health.stuck(part, names, why, now()),
                         on_recovered=health.unstuck)
