"""The device loop on the REAL drivers (pi5 profile: MPR121, VL53L0X, VEML7700, SPI WS2812,
SSD1306) over register-level fake buses: a touch reaches the ring, a chip that stops
answering degrades the piece and is used again when it answers, a chip missing at start is
opened later."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from hw_fakes import FakeChip, FakeMPR121, FakeSMBus, FakeSpi
from loop_helpers import FakeModel

from lanthorn.device.piece.piece import Piece
from lanthorn.hardware.body import RealBody, open_body
from lanthorn.hardware.gpio import MockPinFactory
from lanthorn.hardware.profile import load_profile
from lanthorn.hardware.sim import SimClock

pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")  # luma.oled

IDLE = [600] * 12


@pytest.fixture
def hw(monkeypatch):
    import smbus2
    mpr = FakeMPR121()
    bus = FakeSMBus({0x5A: mpr, 0x10: FakeChip(), 0x3C: FakeChip(), 0x29: FakeChip()}, label=1)
    monkeypatch.setattr(smbus2, "SMBus", lambda n: bus)  # luma.oled opens its own handle
    spi = FakeSpi()
    monkeypatch.setitem(sys.modules, "spidev", types.SimpleNamespace(SpiDev=lambda: spi))

    class Ranger:  # the Adafruit driver's interface
        def __init__(self, i2c, address=41, io_timeout_s=0):
            self.measurement_timing_budget, self.data_ready = 0, True

        def start_continuous(self):
            pass

        def stop_continuous(self):
            pass

        range = property(lambda self: 640)
    monkeypatch.setitem(sys.modules, "adafruit_vl53l0x", types.SimpleNamespace(VL53L0X=Ranger))
    mpr.set_scan(0, IDLE, IDLE)
    return types.SimpleNamespace(bus=bus, mpr=mpr, spi=spi, pins=MockPinFactory())


def open_loop(hw):
    body = open_body(load_profile("pi5"), board_check=False, pin_factory=hw.pins,
                     bus_factory=lambda n: hw.bus)
    assert isinstance(body, RealBody)
    clock = SimClock()
    loop = Piece(body, model=FakeModel(), clock=clock, charge_compute=False, oled_thread=False)
    loop.start()
    return loop, body, clock


def run_for(loop, clock, seconds):
    end = clock() + seconds
    while loop.next_due() <= end:
        clock.set(loop.next_due())
        loop.step()


def test_a_touch_on_the_chip_lights_the_ring(hw):
    loop, body, clock = open_loop(hw)
    run_for(loop, clock, 1.0)
    sent = len(hw.spi.transfers)
    touched = list(IDLE)
    touched[3] = 540  # 60 counts under the baseline: a fingertip on pad 3
    hw.mpr.set_scan(1 << 3, touched, IDLE)
    run_for(loop, clock, 1 / 60)
    b = body.leds.last_frame.astype(int).sum(axis=1)
    assert b[6] == b.max() and b[6] > 2 * np.median(b)  # pad 3 = pixel 6 of 24
    assert len(hw.spi.transfers) > sent  # frames went out on the SPI bus
    run_for(loop, clock, 0.1)
    assert loop.latest()["values"]["pad3"] == pytest.approx(0.6, abs=0.02)  # what the model sees
    loop.shutdown()
    body.close()


def test_unplugged_chip_degrades_and_comes_back(hw):
    loop, body, clock = open_loop(hw)
    run_for(loop, clock, 0.5)
    del hw.bus.devices[0x5A]  # the MPR121 stops answering (a loose cable)
    run_for(loop, clock, 1.0)
    st = loop.status()
    assert st["sensors"]["touch"].startswith("failed: ") and "0x5a" in st["sensors"]["touch"]
    frames = loop.frames_shown
    hw.bus.devices[0x5A] = hw.mpr  # plugged back in
    run_for(loop, clock, 6.0)  # retried every 5 s
    assert loop.status()["sensors"]["touch"] == "ok"
    assert loop.frames_shown - frames >= 359  # the ring never stopped
    loop.shutdown()
    body.close()


def test_chip_missing_at_start_is_opened_later(hw):
    del hw.bus.devices[0x5A]
    loop, body, clock = open_loop(hw)
    assert body.touch is None and loop.status()["sensors"]["touch"].startswith("failed")
    run_for(loop, clock, 1.0)
    hw.bus.devices[0x5A] = hw.mpr
    run_for(loop, clock, 6.0)
    assert body.touch is not None and loop.status()["sensors"]["touch"] == "ok"
    loop.shutdown()
    body.close()
