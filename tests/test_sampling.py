"""The sampler: readings to one sample, failed parts imputed, impossible readings refused."""
from __future__ import annotations

import types

import numpy as np
import pytest

from lanthorn.device.piece.frames import N_PADS
from lanthorn.device.piece.params import ParamStore
from lanthorn.device.piece.part_health import PartHealth
from lanthorn.device.piece.sampling import NEUTRAL_LUX, ZERO_SCANS, Sampler, reading_number
from lanthorn.device.piece.scheduler import Scheduler
from lanthorn.hardware.interfaces import PartError, TouchReading
from lanthorn.hardware.sim import SimClock

P = ParamStore().snapshot()


def sampler_for(touch=None, distance=None, light=None):
    body = types.SimpleNamespace(touch=touch, distance=distance, light=light, leds=None,
                                 display=None, open_errors={})
    health = PartHealth(body, 5.0, lambda s: None, lambda k, t: None)
    s = Sampler(body, health, Scheduler(SimClock()))
    s.start(0.0)
    return s, health


def test_missing_parts_are_imputed_nobody_there_and_a_neutral_light():
    s, _ = sampler_for()
    out = s.read(0.0, P)
    assert not out[:N_PADS].any() and out[N_PADS] == 0.0
    assert s.last_lux == NEUTRAL_LUX and out[N_PADS + 1] > 0


def test_a_touch_onset_is_noted_once_until_released():
    base = np.full(N_PADS, 530, np.uint16)
    raw = base.copy()
    touch = types.SimpleNamespace(read=lambda: TouchReading(raw, base, 0))
    s, _ = sampler_for(touch=touch)
    s.take(0.0, P, clock_now=0.0)
    assert s.touch_onset_t is None
    raw[4] = 470                                    # 60 counts: a fingertip on pad 4
    s.take(0.01, P, clock_now=0.01)
    assert s.touch_onset_t == 0.01 and s.pads_now[4] == pytest.approx(0.6)
    s.touch_onset_t = None                          # shown by the renderer
    s.take(0.02, P, clock_now=0.02)
    assert s.touch_onset_t is None                  # still the same touch


def test_a_controller_reading_all_zero_is_failed_after_zero_scans():
    z = np.zeros(N_PADS, np.uint16)
    touch = types.SimpleNamespace(read=lambda: TouchReading(z, z, 0))
    s, health = sampler_for(touch=touch)
    for i in range(ZERO_SCANS):
        s.read(i * 0.01, P)
    assert "lost its configuration" in health.state["touch"]


@pytest.mark.parametrize("value", [None, "far", float("nan"), -3.0, True, np.array([1.0])])
def test_impossible_readings_fail_the_part(value):
    with pytest.raises(PartError):
        reading_number("light", value)
    assert reading_number("distance", None, allow_none=True) is None


def test_the_slow_sensors_are_read_at_their_own_pace():
    reads = []
    light = types.SimpleNamespace(read_lux=lambda: reads.append(1) or 300.0)
    s, _ = sampler_for(light=light)
    for i in range(100):                        # one second of 100 Hz samples
        s.read(i / 100, P)
    assert len(reads) == 10                     # LIGHT_HZ
