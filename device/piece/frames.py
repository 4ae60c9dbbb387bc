"""Sensor frames: the one definition of what the model sees.

A *sample* is one float32 vector per sensor read built from the raw readings of the body:
the 12 pad touch strengths, approach and ambient light (:func:`encode_into`). A *frame* is
what the model reads: the samples of one frame period averaged (:class:`FramePipeline`:
100 Hz samples, the ranger read at 30 Hz and the light at 10 Hz and held in between,
averaged into 25 Hz frames). The device loop, the simulator's synthetic data
(``lanthorn data synth``) and recordings over serial (``record``, which takes the loop's
own frames) all make frames this one way, so a model trained on a laptop sees the same
noise and smoothing the object will feed it; CSV imports are frames already.

Scaling keeps every channel roughly in 0..1 for training; the int8 input quantization
then takes its scale from calibration data, not from these constants.
"""
from __future__ import annotations

import math

import numpy as np

from lanthorn.vocabulary import LABELS as LABELS  # re-exported: the default piece's gestures, model order

N_PADS = 12
CHANNELS: tuple[str, ...] = tuple(f"pad{i}" for i in range(N_PADS)) + ("distance", "light")
N_CHANNELS = len(CHANNELS)

#: Default input spec of the temperament model: about 2 s of frames at 25 Hz.
DEFAULT_RATE_HZ = 25.0
DEFAULT_WINDOW = 50

#: How often the body is read. The ranger and the light sensor are slow by nature (a
#: VL53L0X measurement takes its ~33 ms timing budget, a BH1750 high-resolution one 120 ms):
#: they are read at their own pace and their last value held in between.
SAMPLE_HZ = 100.0
DISTANCE_HZ = 30.0
LIGHT_HZ = 10.0

# An MPR121 electrode drops by roughly 10-80 counts under a fingertip; a palm can exceed 150.
PAD_FULL_SCALE_COUNTS = 100.0
PAD_MAX = 2.0
DISTANCE_RANGE_MM = 1200.0  # VL53L0X default-mode useful range indoors
LIGHT_DECADES = 4.0  # log10(1 + lux) / 4: 0 (dark) .. ~1 (10 000 lux, daylight)

#: What each encoded channel of the default piece means (``lanthorn data`` shows it; DATA.md).
DEFAULT_UNITS: dict[str, str] = {
    **{f"pad{i}": f"touch strength: pad delta counts / {PAD_FULL_SCALE_COUNTS:g}, 0..{PAD_MAX:g}"
       for i in range(N_PADS)},
    "distance": f"approach: 1 - mm / {DISTANCE_RANGE_MM:g}, 0 = nothing in range, 1 = touching",
    "light": f"ambient light: log10(1 + lux) / {LIGHT_DECADES:g}",
}
#: Encoded values each channel can take (an import outside them is refused, with its line).
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    **{f"pad{i}": (0.0, PAD_MAX) for i in range(N_PADS)},
    "distance": (0.0, 1.0),
    "light": (0.0, 1.5),   # 1.5 = 10^6 lux: brighter than direct sunlight
}
#: Raw sensor readings ``data import --raw`` accepts: pad deltas in counts (an MPR121 reads
#: 10 bits), distance in mm (0 or less: nothing in range; a VL53L0X reads up to ~8 m), lux.
RAW_RANGES: dict[str, tuple[float, float]] = {
    **{f"pad{i}": (0.0, 1023.0) for i in range(N_PADS)},
    "distance": (-1.0, 8190.0),
    "light": (0.0, 200000.0),
}
#: The pads sit in a ring, in this order (what makes ring rotation a valid augmentation).
DEFAULT_RING: tuple[str, ...] = tuple(f"pad{i}" for i in range(N_PADS))


def encode_into(out: np.ndarray, pad_delta: np.ndarray, distance_mm: float | None,
                lux: float) -> np.ndarray:
    """Write one frame into ``out`` (float32, shape (N_CHANNELS,)) without allocating.

    ``pad_delta`` is baseline minus raw count per pad (see TouchReading.delta);
    ``distance_mm`` is None when nothing is in range (encoded as 0: "far away");
    ``lux`` is ambient illuminance. Used in the device's hot path.
    """
    out_pads = out[:N_PADS]
    np.multiply(pad_delta, 1.0 / PAD_FULL_SCALE_COUNTS, out=out_pads, casting="unsafe")
    np.clip(out_pads, 0.0, PAD_MAX, out=out_pads)
    out[N_PADS] = encode_distance(distance_mm)
    out[N_PADS + 1] = encode_light(lux)
    return out


def encode_pads_into(out_pads: np.ndarray, pad_delta: np.ndarray) -> None:
    """The pads' part of :func:`encode_into`, for a body whose pads sit elsewhere or number
    fewer than 12 (the same arithmetic, into a view of the sample)."""
    np.multiply(pad_delta, 1.0 / PAD_FULL_SCALE_COUNTS, out=out_pads, casting="unsafe")
    np.clip(out_pads, 0.0, PAD_MAX, out=out_pads)


def encode_distance(distance_mm: float | None) -> float:
    """Approach: 0 when nothing is in range, 1 when touching (see :data:`DEFAULT_UNITS`)."""
    if distance_mm is None or not math.isfinite(distance_mm):
        return 0.0
    return min(max(1.0 - float(distance_mm) / DISTANCE_RANGE_MM, 0.0), 1.0)


def encode_light(lux: float) -> float:
    """Ambient light: ``log10(1 + lux) / LIGHT_DECADES``."""
    return math.log10(1.0 + max(float(lux), 0.0)) / LIGHT_DECADES


def encode(pad_delta, distance_mm: float | None, lux: float) -> np.ndarray:
    """One frame as a new float32 array (convenience for offline tools)."""
    return encode_into(np.empty(N_CHANNELS, np.float32), np.asarray(pad_delta, np.float32),
                       distance_mm, lux)


class FramePipeline:
    """Samples in, model frames out: the mean of the samples of one frame period.

    Averaging 4 samples per 25 Hz frame quarters the variance of the pads' read noise; a
    model trained on frames made any other way (one sample per frame, as synthetic data
    once was) sees noisier windows than the object feeds it. ``add`` and ``take_into``
    allocate nothing (the device's hot path)."""

    def __init__(self, n_channels: int = N_CHANNELS):
        self._acc = np.zeros(n_channels, np.float64)
        self.count = 0

    def add(self, sample: np.ndarray) -> None:
        self._acc += sample
        self.count += 1

    def take_into(self, out: np.ndarray) -> np.ndarray:
        """The frame (mean of the samples since the last one) into ``out``; starts afresh."""
        self._acc *= 1.0 / max(self.count, 1)
        np.copyto(out, self._acc, casting="unsafe")
        self._acc.fill(0.0)
        self.count = 0
        return out


def frames_from_samples(pad_delta: np.ndarray, distance_mm: np.ndarray, lux: np.ndarray,
                        sample_hz: float = SAMPLE_HZ, frame_hz: float = DEFAULT_RATE_HZ
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Readings at ``sample_hz`` → (frames [F, C] at ``frame_hz``, index of each frame's last
    sample), exactly as the device loop makes them: pads every sample, the ranger and the
    light sensor at :data:`DISTANCE_HZ` / :data:`LIGHT_HZ` with the last value held (a
    distance of NaN is "nothing in range"), samples averaged per frame period."""
    n = len(pad_delta)
    t = np.arange(n) / sample_hz
    # the index of the read each sample holds: the last one at or before it
    d_idx = np.minimum(np.searchsorted(t, np.floor(t * DISTANCE_HZ + 1e-9) / DISTANCE_HZ - 1e-9),
                       n - 1)
    l_idx = np.minimum(np.searchsorted(t, np.floor(t * LIGHT_HZ + 1e-9) / LIGHT_HZ - 1e-9), n - 1)
    pipe = FramePipeline()
    sample = np.empty(N_CHANNELS, np.float32)
    per = max(1, int(round(sample_hz / frame_hz)))
    n_frames = n // per
    out = np.empty((n_frames, N_CHANNELS), np.float32)
    ends = np.empty(n_frames, np.int64)
    for f in range(n_frames):
        for i in range(f * per, (f + 1) * per):
            d = float(distance_mm[d_idx[i]])
            encode_into(sample, pad_delta[i], None if math.isnan(d) else d, float(lux[l_idx[i]]))
            pipe.add(sample)
        pipe.take_into(out[f])
        ends[f] = (f + 1) * per - 1
    return out, ends
