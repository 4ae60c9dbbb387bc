"""The physics of the simulated object: what each sensor would measure for a given scene.

A *scene* (see :mod:`.gestures`) says, per sample time, where a finger or palm touches the
ring, how hard, where the visitor's body is and how much of the light the hand covers. This
module turns a scene into the numbers the real chips produce, so the model trained on
synthetic data sees the same kind of signal as on the object:

* **MPR121 touch ring** (:class:`PadChip`): 12 electrodes evenly around the ring, pad 0 at
  the top, indices increasing clockwise (the LED ring's order). A contact covers an arc of
  the ring; each pad's drop in counts is proportional to how much of the contact (finger)
  or of the pad (palm) is covered. Electrode traces couple, so a touched pad leaks a few
  per cent into its neighbours, falling off with ring distance. A body standing close adds
  a small common-mode drop. Each electrode has its own idle level (electrode size and trace
  length differ), slow thermal/humidity drift, and sensor noise. The chip's baseline
  tracks the idle level slowly (fast when counts rise, slow when they fall, frozen while
  touched, reported with the register's 2-bit truncation), and the touch bits use the
  chip's touch/release thresholds with hysteresis -- exactly the behaviour that makes a
  long hold or a slow approach look the way it does on the real sensor.
* **VL53L0X distance** (:class:`Ranger`): millimetres with range-dependent noise, None
  beyond the useful range and more dropouts near its edge.
* **Ambient light** (:class:`LuxMeter`, BH1750-like): the room level with slow variation,
  shadowed by a person standing close and strongly by a palm over the sensor, quantised to
  the chip's resolution.

Everything random comes from a ``numpy.random.Generator`` handed in by the caller, so a seed
reproduces every count.
"""
from __future__ import annotations

import math

import numpy as np

N_PADS = 12
PAD_PITCH = 2.0 * math.pi / N_PADS
#: Angle of each pad's centre in radians, clockwise from the top.
PAD_ANGLES = np.arange(N_PADS) * PAD_PITCH
#: Half the angular width of one electrode (the rest of the pitch is the gap between pads).
PAD_HALF_WIDTH = math.radians(13.0)

# MPR121 defaults as set by the common drivers (Adafruit): touch at 12 counts below
# baseline, release at 6. Filtered data is 10-bit.
TOUCH_THRESHOLD = 12
RELEASE_THRESHOLD = 6
MAX_COUNT = 1023

# Baseline tracking rates (counts per second). The MPR121's filters follow rising data
# quickly (MHDR/NHDR) and falling data slowly (NCLF/FDLF), and hold while touched.
BASELINE_RISE_PER_S = 40.0
BASELINE_FALL_PER_S = 1.5

# VL53L0X in default mode: useful to about 1.2 m indoors.
RANGER_MAX_MM = 1200.0

# BH1750 in high-resolution mode: 1 count = 1/1.2 lux.
LUX_STEP = 1.0 / 1.2


def wrap_angle(a):
    """Angles folded into (-pi, pi]."""
    return (np.asarray(a) + math.pi) % (2.0 * math.pi) - math.pi


def crosstalk_matrix(coupling: float = 0.05, falloff_pads: float = 1.0) -> np.ndarray:
    """Circulant (12, 12) matrix: a pad's own signal on the diagonal, neighbours' leakage off it.

    Leakage into a pad k steps around the ring is ``coupling * exp(-(k - 1) / falloff)``:
    the direct neighbours get ``coupling``, farther pads exponentially less.
    """
    k = np.arange(N_PADS)
    ring = np.minimum(k, N_PADS - k)  # ring distance from pad 0
    row = np.where(ring == 0, 1.0, coupling * np.exp(-(ring - 1) / falloff_pads))
    return np.stack([np.roll(row, i) for i in range(N_PADS)])


def contact_coverage(angle, half_width, pressure) -> np.ndarray:
    """How strongly each pad is covered by one contact, 0..1, shape (T, 12).

    ``angle`` (rad, clockwise from pad 0), ``half_width`` (rad) and ``pressure`` (0..1) are
    arrays of shape (T,). A contact narrower than a pad (a fingertip) spreads its effect in
    proportion to the share of the finger over each pad, so a finger between two pads
    touches both at about half strength; a contact wider than a pad (a palm) fully covers
    the pads under it.
    """
    angle = np.asarray(angle, np.float64)[:, None]
    w = np.asarray(half_width, np.float64)[:, None]
    rel = wrap_angle(PAD_ANGLES[None, :] - angle)
    overlap = np.minimum(w, rel + PAD_HALF_WIDTH) - np.maximum(-w, rel - PAD_HALF_WIDTH)
    overlap = np.clip(overlap, 0.0, None) / np.minimum(2.0 * w, 2.0 * PAD_HALF_WIDTH)
    return overlap * np.asarray(pressure, np.float64)[:, None]


class PadChip:
    """A simulated MPR121 with 12 electrodes: true signal in, raw/baseline/touched out.

    ``signal`` is the drop in counts the scene causes on each pad (before noise and drift).
    The chip's own state (baseline, touch bits) evolves sample by sample in :meth:`run`,
    which serves both the offline simulator (many samples at once) and the live body (one
    sample per read).
    """

    def __init__(self, rng: np.random.Generator, noise_counts: float = 0.8,
                 drift_counts: float = 4.0, touch_threshold: int = TOUCH_THRESHOLD,
                 release_threshold: int = RELEASE_THRESHOLD):
        self.touch_threshold = int(touch_threshold)
        self.release_threshold = int(release_threshold)
        self.idle = 560.0 + rng.normal(0.0, 35.0, N_PADS)  # electrodes differ in size/traces
        self.noise_counts = float(noise_counts)
        # Drift: a few slow sinusoids per pad (periods of minutes) plus a common-mode part
        # (room temperature and humidity move every electrode together).
        self._drift_amp = drift_counts * rng.uniform(0.3, 1.0, (3, N_PADS))
        self._drift_period = rng.uniform(60.0, 900.0, (3, N_PADS))
        self._drift_phase = rng.uniform(0.0, 2.0 * math.pi, (3, N_PADS))
        self._common_amp = drift_counts * rng.uniform(0.5, 1.0)
        self._common_period = rng.uniform(300.0, 1800.0)
        self._common_phase = rng.uniform(0.0, 2.0 * math.pi)
        self.crosstalk = crosstalk_matrix(coupling=rng.uniform(0.03, 0.07))
        self._baseline: np.ndarray | None = None  # float, before register truncation
        self._touched = np.zeros(N_PADS, bool)

    def drift(self, t) -> np.ndarray:
        """Slow change of each electrode's idle level at times ``t`` (s), shape (T, 12)."""
        t = np.asarray(t, np.float64)[:, None, None]
        per_pad = (self._drift_amp * np.sin(2 * math.pi * t / self._drift_period
                                            + self._drift_phase)).sum(axis=1)
        common = self._common_amp * np.sin(2 * math.pi * t[:, :, 0] / self._common_period
                                           + self._common_phase)
        return per_pad + common

    def signal(self, direct: np.ndarray, body_mm) -> np.ndarray:
        """Count drop per pad from the direct contact drop (T, 12) and body distance (T,).

        Adds the electrode crosstalk and the body's common-mode proximity effect.
        """
        coupled = np.asarray(direct, np.float64) @ self.crosstalk.T
        # A body within ~40 cm adds a little capacitance to every electrode.
        near = np.nan_to_num(np.clip(1.0 - np.asarray(body_mm, np.float64) / 400.0, 0.0, 1.0))
        return coupled + 2.5 * near[:, None]

    def run(self, t: np.ndarray, signal: np.ndarray, noise: np.ndarray):
        """Advance the chip through samples at times ``t`` (T,), returning (raw, baseline, touched).

        ``noise`` is standard-normal (T, 12), drawn by the caller so that offline runs draw it
        in one block. raw and baseline are uint16 (T, 12), touched a uint16 bitmask (T,).
        """
        t = np.asarray(t, np.float64)
        raw_f = self.idle + self.drift(t) - signal + self.noise_counts * noise
        raw = np.clip(np.rint(raw_f), 0, MAX_COUNT).astype(np.uint16)
        n = len(t)
        base_out = np.empty((n, N_PADS), np.uint16)
        if self._baseline is None:  # powered up long ago in an empty room
            self._baseline = self.idle + self.drift(t[:1])[0]
            self._last_t = float(t[0])
        base, touched, last_t = self._baseline, self._touched, self._last_t
        on_at, off_at = self.touch_threshold, self.release_threshold
        rawf = raw.astype(np.float64)
        touched_all = np.empty((n, N_PADS), bool)
        dts = np.diff(t, prepend=last_t).clip(0.0, None)
        rise, fall = BASELINE_RISE_PER_S * dts, -BASELINE_FALL_PER_S * dts
        for i in range(n):  # sequential: each step depends on the last touch state
            r = rawf[i]
            step = np.minimum(np.maximum(r - base, fall[i]), rise[i])
            base = base + np.where(touched, 0.0, step)
            reported = np.floor(base * 0.25) * 4.0  # the register holds baseline >> 2
            delta = reported - r
            touched = np.where(touched, delta > off_at, delta >= on_at)
            base_out[i] = reported
            touched_all[i] = touched
        if n:
            last_t = float(t[-1])
        touched_out = (touched_all.astype(np.uint16) << np.arange(N_PADS, dtype=np.uint16)).sum(
            axis=1, dtype=np.uint16)
        self._baseline, self._touched, self._last_t = base, touched, last_t
        return raw, base_out, touched_out


class Ranger:
    """A simulated VL53L0X: true distance (mm, nan = nobody) to readings (mm, nan = none)."""

    def __init__(self, rng: np.random.Generator, max_range_mm: float = RANGER_MAX_MM):
        self.rng = rng
        self.max_range_mm = float(max_range_mm)

    def measure(self, true_mm) -> np.ndarray:
        true_mm = np.asarray(true_mm, np.float64)
        n = true_mm.shape[0]
        noise = self.rng.standard_normal(n)
        drop = self.rng.random(n)
        with np.errstate(invalid="ignore"):
            sigma = 3.0 + 0.012 * true_mm  # ranging error grows with distance
            out = np.rint(true_mm + sigma * noise)
            # near the edge of its range the sensor loses the target more and more often
            edge = np.clip((true_mm - 0.8 * self.max_range_mm) / (0.2 * self.max_range_mm), 0, 1)
            lost = (drop < 0.6 * edge) | ~(true_mm <= self.max_range_mm) | (out < 20)
        out[lost] = np.nan
        return out


class LuxMeter:
    """A simulated ambient light sensor in a room with slow changes, shadowed by the visitor."""

    def __init__(self, rng: np.random.Generator, room_lux: float | None = None):
        self.rng = rng
        self.room_lux = float(room_lux if room_lux is not None else rng.uniform(60.0, 450.0))
        self._period = rng.uniform(120.0, 600.0)
        self._phase = rng.uniform(0.0, 2.0 * math.pi)

    def measure(self, t, shade) -> np.ndarray:
        """Lux at times ``t`` given ``shade`` (T,): the fraction of light blocked, 0..1."""
        t = np.asarray(t, np.float64)
        room = self.room_lux * (1.0 + 0.06 * np.sin(2 * math.pi * t / self._period + self._phase))
        lux = room * (1.0 - np.asarray(shade, np.float64))
        lux *= 1.0 + 0.01 * self.rng.standard_normal(t.shape[0])
        return np.maximum(np.round(lux / LUX_STEP) * LUX_STEP, 0.0)
