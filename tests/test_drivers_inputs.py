"""GPIO inputs (PIR, button, reed switch) and the sound level, on mock pins / a faked library."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hw_fakes import fake_gpio_module
from hw_fakes_channels import fake_sounddevice

from lanthorn.hardware.board import BOARDS
from lanthorn.hardware.drivers.digital_in import DigitalInput
from lanthorn.hardware.drivers.sound_level import SoundLevel, dbfs
from lanthorn.hardware.gpio import MockPinFactory, pin_factory_for
from lanthorn.hardware.interfaces import PartError


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def button(debounce_ms=20, pull="up", active_low=True):
    clock = Clock()
    pin = MockPinFactory().pin(17)
    return DigitalInput(pin, pull, active_low, debounce_ms, clock=clock, name="button"), pin, clock


def test_pull_up_active_low_button_reads_pressed_when_the_line_is_low():
    b, pin, clock = button(debounce_ms=0)
    assert (pin.mode, pin.pull) == ("in", "up") and b.read() == (0.0,)
    pin.drive(0)
    assert b.read() == (1.0,)
    pin.drive(1)
    assert b.read() == (0.0,)


def test_chatter_shorter_than_the_debounce_time_is_ignored():
    b, pin, clock = button(debounce_ms=20)
    levels = [0, 1, 0, 0, 1, 0] + [0] * 30  # a contact closing: bounces for 5 ms, then holds
    states = []
    for i, level in enumerate(levels):
        clock.t = i * 0.001
        pin.drive(level)
        states.append(b.read()[0])
    first = states.index(1.0)
    assert first == 4 + 1 + 20  # 20 ms after the last bounce (at 5 ms), not before
    assert set(states[first:]) == {1.0}
    # a 10 ms glitch while held is ignored too
    for _ in range(10):
        clock.t += 0.001
        pin.drive(1)
        assert b.read() == (1.0,)
    clock.t += 0.001
    pin.drive(0)
    assert b.read() == (1.0,)


def test_release_is_debounced_as_well():
    b, pin, clock = button(debounce_ms=10)
    pin.drive(0)
    assert b.read() == (0.0,)  # the line is polled: the change counts from this read
    clock.t = 0.0101
    assert b.read() == (1.0,)
    pin.drive(1)
    clock.t = 0.015
    assert b.read() == (1.0,)
    clock.t = 0.0251
    assert b.read() == (0.0,)


def test_pir_is_active_high_without_pull_on_the_real_gpio_library(monkeypatch):
    gpio = fake_gpio_module("RPi.GPIO")
    monkeypatch.setitem(sys.modules, "RPi", type(sys)("RPi"))
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    factory = pin_factory_for(BOARDS["pi5"])
    pir = DigitalInput(factory.pin(23), None, False, 0, name="presence")
    assert ("setup", (23, gpio.IN), {}) in gpio.calls
    gpio.levels[23] = 1
    assert pir.read() == (1.0,)
    gpio.levels[23] = 0
    assert pir.read() == (0.0,)
    reed = DigitalInput(factory.pin(27), "down", False, 5, name="reed")
    assert ("setup", (27, gpio.IN), {"pull_up_down": gpio.PUD_DOWN}) in gpio.calls
    reed.close()
    assert ("cleanup", (27,), {}) in gpio.calls
    factory.pin(27)  # released: another part may claim it


def test_dbfs_of_a_full_scale_sine_is_zero_and_silence_is_the_floor():
    t = np.arange(16000) / 16000
    sine = np.sin(2 * np.pi * 440 * t)
    rms = float(np.sqrt((sine ** 2).mean()))
    assert dbfs(rms, -90) == pytest.approx(0.0, abs=0.01)
    assert dbfs(rms * 10 ** (-26 / 20), -90) == pytest.approx(-26.0, abs=0.01)
    assert dbfs(0.0, -90) == -90 and dbfs(1e-9, -90) == -90


def test_sound_level_opens_a_mono_stream_and_reports_each_blocks_level():
    sd = fake_sounddevice()
    clock = Clock()
    part = SoundLevel("hw:1,0", 16000, 50, -90, clock=clock, module=sd, name="room")
    stream = sd.InputStream.instances[-1]
    assert stream.kwargs["device"] == "hw:1,0" and stream.kwargs["channels"] == 1
    assert stream.kwargs["samplerate"] == 16000 and stream.kwargs["blocksize"] == 800
    assert stream.active
    assert part.read() == (-90.0,)  # nothing heard yet
    t = np.arange(800) / 16000
    stream.deliver(0.1 * np.sin(2 * np.pi * 1000 * t))
    clock.t = 0.05
    assert part.read()[0] == pytest.approx(-20.0, abs=0.05)
    part.close()
    assert stream.closed and not stream.active


def test_a_silent_or_stopped_microphone_fails_the_part_and_a_reopen_recovers():
    sd = fake_sounddevice()
    clock = Clock()
    part = SoundLevel(None, 16000, 50, -90, clock=clock, module=sd)
    sd.InputStream.instances[-1].deliver(np.zeros(800))
    clock.t = 0.3
    assert part.read() == (-90.0,)
    clock.t = 0.9  # no block for 0.6 s (five blocks would be 0.25 s; at least 0.5 s)
    with pytest.raises(PartError, match="no sound from the microphone for 0.9 s"):
        part.read()
    sd.InputStream.instances[-1].stop()  # the device vanished: PortAudio stops the stream
    with pytest.raises(PartError, match="stream stopped"):
        part.read()
    part.close()
    again = SoundLevel(None, 16000, 50, -90, clock=clock, module=sd)
    sd.InputStream.instances[-1].deliver(np.full(800, 0.5))
    assert again.read()[0] == pytest.approx(20 * np.log10(0.5 * np.sqrt(2)), abs=0.01)


def test_a_microphone_that_cannot_be_opened_is_a_part_error():
    sd = fake_sounddevice(open_error="Error querying device -1")
    with pytest.raises(PartError, match=r"sound: cannot open the default input: Error querying "
                                         r"device -1; list the inputs with 'python3 -m sounddevice'"):
        SoundLevel(module=sd)


def test_the_real_sounddevice_library_without_an_input_device_is_a_part_error():
    """With PortAudio and sounddevice installed (the dev extra; Debian libportaudio2) but no
    capture device (this machine, CI), opening fails with the library's own error, named."""
    try:
        sd = pytest.importorskip("sounddevice", reason="the dev extra brings sounddevice")
    except OSError as exc:  # the module without PortAudio's C library
        pytest.skip(f"sounddevice cannot load PortAudio ({exc}): scripts/system-deps.sh installs it")
    if any(d["max_input_channels"] > 0 for d in sd.query_devices()):
        pytest.skip("not on this machine: it has a capture device; the missing-device path "
                    "ran on the faked library above")
    with pytest.raises(PartError, match="sound: cannot open the default input: .*"):
        SoundLevel()


def test_without_sounddevice_the_part_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(PartError, match=r"needs the sounddevice package: .*\[sound\]"):
        SoundLevel()
