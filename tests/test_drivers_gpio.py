"""The pin factory over RPi.GPIO / rpi-lgpio / Jetson.GPIO (faked modules) and the mock."""
import sys

import pytest
from hw_fakes import fake_gpio_module

from lanthorn.hardware.board import BOARDS
from lanthorn.hardware.gpio import LibraryPinFactory, MockPinFactory, pin_factory_for
from lanthorn.hardware.interfaces import PartError


def test_pi_factory_uses_bcm_and_pulls(monkeypatch):
    gpio = fake_gpio_module("RPi.GPIO")
    monkeypatch.setitem(sys.modules, "RPi", type(sys)("RPi"))
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    factory = pin_factory_for(BOARDS["pi5"])
    assert isinstance(factory, LibraryPinFactory) and ("setmode", (gpio.BCM,), {}) in gpio.calls
    irq = factory.pin(4)
    irq.input(pull="up")
    assert ("setup", (4, gpio.IN), {"pull_up_down": gpio.PUD_UP}) in gpio.calls
    seen = []
    irq.when_changed("falling", seen.append, bounce_ms=5)
    assert ("add_event_detect", (4, gpio.FALLING), {"callback": seen.append, "bouncetime": 5}) in gpio.calls
    led = factory.pin(17)
    led.output(initial=1)
    led.write(0)
    assert ("output", (17, gpio.LOW), {}) in gpio.calls
    assert irq.read() is True  # the fake reads high by default
    with pytest.raises(PartError, match="already in use"):
        factory.pin(4)
    with pytest.raises(PartError, match="not a GPIO pin"):
        factory.pin(40)
    factory.close()
    assert ("remove_event_detect", (4,), {}) in gpio.calls and ("cleanup", (17,), {}) in gpio.calls


def test_jetson_factory_uses_board_numbering_without_pulls(monkeypatch):
    gpio = fake_gpio_module("Jetson.GPIO")
    monkeypatch.setitem(sys.modules, "Jetson", type(sys)("Jetson"))
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", gpio)
    factory = pin_factory_for(BOARDS["jetson-orin-nano"])
    assert ("setmode", (gpio.BOARD,), {}) in gpio.calls
    factory.pin(7).input(pull="up")
    assert ("setup", (7, gpio.IN), {}) in gpio.calls  # external pull-up, documented


def test_missing_gpio_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)
    with pytest.raises(PartError, match=r"rpi-lgpio package.*lanthorn\[pi5\]"):
        LibraryPinFactory(BOARDS["pi5"])


def test_mock_pins_edges():
    factory = MockPinFactory()
    pin = factory.pin(4)
    pin.input(pull="up")
    events = []
    pin.when_changed("falling", events.append)
    pin.drive(0)
    pin.drive(1)
    assert events == [4]
    with pytest.raises(PartError):
        pin.write(1)
    assert isinstance(pin_factory_for(BOARDS["sim"]), MockPinFactory)
