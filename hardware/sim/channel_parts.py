"""Simulated channel parts: an IMU, an ADS1115, GPIO inputs and a sound level reading a
:class:`~.motion.Scene`, with each chip's noise, offsets, resolution and range.

* IMU (MPU-6050 / LSM6DS3): the scene's specific force and rotation rate, plus a per-axis
  offset (a few tens of mg, ~1 degree/s: what an uncalibrated chip shows), white noise near
  the datasheets' densities, a hand's tremor while the object is held up, quantised to the
  configured range's LSB and clipped at full scale (a hard knock saturates at +-2 g).
* ADS1115: each input by its ``kind``: a potentiometer's wiper (knob position x VDD), an LDR
  divider (LDR to VDD, 10 kΩ to GND) lit by the room and shadowed by a visitor, a piezo's
  peak-hold envelope of the knocks, a microphone module's envelope output following the
  room's sound level; 1 mV of noise, the range's LSB, never above VDD.
* PIR, button, reed switch (the scene's ``button`` is any contact: a button pressed, a
  reed switch's magnet near): the *real* :class:`~lanthorn.hardware.drivers.digital_in.DigitalInput`
  driver on a simulated pin, so the simulator debounces exactly as the object does. The PIR
  pin stays high while someone is near and ``hold_s`` after; the button pin (pull-up,
  pressed = low) chatters for ~3 ms at each change like a real contact.
* sound level: dBFS of an I2S/USB microphone (-26 dBFS at 94 dB SPL, an INMP441's
  sensitivity: dBFS = SPL - 120) with 0.5 dB of noise.

Every part fails on demand like the other simulated parts (``fail_after``).
"""
from __future__ import annotations

import zlib

import numpy as np

from ..channels import ChannelSensor
from ..gpio import Pin
from .parts import _Faults

ACCEL_NOISE_G = 0.004  # rms at 100 Hz: ~400 ug/sqrt(Hz) (MPU-6050), ~90 (LSM6DS3) -- the worse
GYRO_NOISE_DPS = 0.1
TREMOR_G = 0.012  # a hand holding the object up
ADC_NOISE_V = 0.001
LDR_FIXED_OHM = 10_000.0
MIC_SENSITIVITY_DBFS = -26.0  # at 94 dB SPL
BOUNCE_S = 0.003


class _Noise:
    """Standard normal draws from a generator seeded by the scene's seed and the part's name,
    taken from batches (a reading needs a handful; numpy per scalar would cost more than the
    physics)."""

    def __init__(self, scene, name: str):
        self._rng = np.random.default_rng([scene.seed, zlib.crc32(name.encode())])
        self._buf: list[float] = []

    def normal(self, sigma: float) -> float:
        if not self._buf:
            self._buf = self._rng.standard_normal(1024).tolist()[::-1]
        return sigma * self._buf.pop()

    def offsets(self, sigma: float, n: int) -> list[float]:
        return [self.normal(sigma) for _ in range(n)]


class SimIMU(_Faults, ChannelSensor):
    """A simulated 6-axis IMU: channels (ax, ay, az in g, gx, gy, gz in degrees/s)."""

    def __init__(self, spec, channels, scene, now):
        self.name, self.channels, self.scene = spec.role, channels, scene
        self._init_faults(now)
        self._noise = _Noise(scene, spec.role)
        self.accel_range = float(spec.options["accel_range_g"])
        self.gyro_range = float(spec.options["gyro_range_dps"])
        self.accel_offset = self._noise.offsets(0.02, 3)
        self.gyro_offset = self._noise.offsets(1.0, 3)

    def read(self) -> tuple[float, ...]:
        self._check()
        t = self._now()
        n = self._noise.normal
        a = [f + off + n(ACCEL_NOISE_G) for f, off in zip(self.scene.specific_force(t),
                                                          self.accel_offset, strict=True)]
        if self.scene.height.at(t)[0] > 0.01:
            a = [v + n(TREMOR_G) for v in a]
        w = [r + off + n(GYRO_NOISE_DPS)
             for r, off in zip(self.scene.rotation_rate(t), self.gyro_offset, strict=True)]
        return tuple(_quantise(v, self.accel_range) for v in a) \
            + tuple(_quantise(v, self.gyro_range) for v in w)


def _quantise(value: float, full_scale: float) -> float:
    """``value`` as a 16-bit signed register reports it at ``full_scale``."""
    lsb = full_scale / 32768.0
    return min(max(round(value / lsb), -32768), 32767) * lsb


class SimADS1115(_Faults, ChannelSensor):
    """A simulated ADS1115 with one channel per used input."""

    def __init__(self, spec, channels, scene, now, inputs):
        self.name, self.channels, self.scene = spec.role, channels, scene
        self._init_faults(now)
        self._noise = _Noise(scene, spec.role)
        self.vdd = float(spec.options["vdd"])
        self.inputs = inputs  # [(ain, name, kind, full-scale V)]

    def volts(self, kind: str, t: float) -> float:
        """The voltage on an input wired to ``kind`` at ``t`` (before noise)."""
        s, vdd = self.scene, self.vdd
        if kind == "potentiometer":
            return s.knob_position(t) * vdd
        if kind == "ldr":
            r_ldr = 20_000.0 * (max(s.lux(t), 0.05) / 10.0) ** -0.7
            return vdd * LDR_FIXED_OHM / (LDR_FIXED_OHM + r_ldr)
        if kind == "piezo":
            return min(0.6 * s.knock_envelope(t), vdd)
        if kind == "envelope":
            return min(0.02 + 3.0 * 10 ** ((s.sound_level_db(t) - 95.0) / 20.0), vdd)
        return vdd / 2.0

    def read(self) -> tuple[float, ...]:
        self._check()
        t = self._now()
        out = []
        for _, _, kind, fs in self.inputs:
            v = _quantise(self.volts(kind, t) + self._noise.normal(ADC_NOISE_V), fs)
            out.append(min(v, self.vdd))
        return tuple(out)


class ScenePin(Pin):
    """A GPIO input whose electrical level comes from the scene (``level(t) -> bool``)."""

    def __init__(self, level, now, name: str):
        # no factory and no pin number: the level is the scene's, and close() releases nothing
        self.name = name
        self._level, self._now = level, now

    def input(self, pull=None):
        self.pull = pull

    def output(self, initial=0):
        raise ValueError("a simulated input pin cannot be an output")

    def read(self) -> bool:
        return bool(self._level(self._now()))

    def write(self, value):
        raise ValueError("a simulated input pin cannot be written")

    def when_changed(self, edge, callback, bounce_ms=0):
        raise ValueError("the simulated inputs are polled, not interrupt-driven")

    def close(self):
        pass


def _bouncing(state, scene, rng_seed):
    """A contact's level: ``state(t)``, chattering for BOUNCE_S after each change."""
    def level(t):
        last = scene.button.last_change(t)
        if last is not None and 0 <= t - last < BOUNCE_S:
            n = int((t - last) / 0.0005)
            return bool(zlib.crc32(f"{rng_seed}:{last}:{n}".encode()) & 1)
        return state(t)
    return level


class SimDigital(_Faults, ChannelSensor):
    """The real debouncing driver on a scene pin, with the sim parts' fault injection."""

    def __init__(self, spec, channels, scene, now):
        from ..drivers.digital_in import DigitalInput
        o = spec.options
        self.name, self.channels = spec.role, channels
        self._init_faults(now)
        if spec.type == "pir":
            hold = float(o["hold_s"])
            electrical = lambda t: scene.present(t, hold)  # noqa: E731  active-high output
        else:
            pressed = _bouncing(scene.pressed, scene, scene.seed)
            electrical = (lambda t: not pressed(t)) if o["active_low"] else pressed
        pin = ScenePin(electrical, now, f"sim:{spec.role}")
        pull = None if o["pull"] == "none" else o["pull"]
        self.driver = DigitalInput(pin, pull, o["active_low"], o["debounce_ms"], channels,
                                   spec.role, clock=now)

    def read(self) -> tuple[float, ...]:
        self._check()
        return self.driver.read()


class SimSoundLevel(_Faults, ChannelSensor):
    def __init__(self, spec, channels, scene, now):
        self.name, self.channels, self.scene = spec.role, channels, scene
        self._init_faults(now)
        self._noise = _Noise(scene, spec.role)
        self.floor = float(spec.options["floor_db"])

    def read(self) -> tuple[float]:
        self._check()
        spl = self.scene.sound_level_db(self._now()) + self._noise.normal(0.5)
        dbfs = spl - 94.0 + MIC_SENSITIVITY_DBFS
        return (float(min(max(dbfs, self.floor), 0.0)),)


def open_sim_part(spec, channels, scene, now) -> ChannelSensor:
    """The simulated part for a profile's channel part (see channel_parts.open_sim)."""
    t = spec.type
    if t in ("mpu6050", "lsm6ds3"):
        return SimIMU(spec, channels, scene, now)
    if t == "ads1115":
        from ..channel_parts import ads_inputs
        return SimADS1115(spec, channels, scene, now, ads_inputs(spec.options))
    if t in ("pir", "button", "reed_switch"):
        return SimDigital(spec, channels, scene, now)
    if t == "sound_level":
        return SimSoundLevel(spec, channels, scene, now)
    raise KeyError(f"no simulated part for type {t!r}")


__all__ = ["SimADS1115", "SimDigital", "SimIMU", "SimSoundLevel", "ScenePin", "open_sim_part"]
