"""Open an object's body from its hardware profile: the right backend for every part.

``open_body(profile)`` is the one place that maps a profile's part types and the board to
driver classes. On real hardware it checks the profile was written for this board (a Pi 4
profile on a Pi 5 would pick a LED driver that cannot work), opens the I2C buses and GPIO
pins once and shares them between parts, and opens each part on its own: a part that fails
to open is left as None with the reason in ``body.open_errors`` so the piece still runs
with what it has (the device loop retries; ``lanthorn selftest`` reports it).

With ``sim=True`` (or a profile whose backend is "sim") the simulator
(:func:`lanthorn.hardware.sim.open_sim_body`) builds the body instead; extra keyword
arguments (seed, script, clock, realtime, failures) go to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import channel_parts
from .board import UnsupportedBoard, detect_board, get_board
from .interfaces import Body, Part, PartError
from .profile import Profile, ProfileError

SIM_BACKEND = "sim"


class RealParts:
    """Shared resources of one opened body: buses by number and the pin factory."""

    def __init__(self, profile: Profile, pin_factory=None, bus_factory=None):
        self.profile = profile
        self.board = get_board(profile.board)
        self._pins = pin_factory
        self._bus_factory = bus_factory
        self._buses: dict[int, object] = {}

    def bus(self, number: int, part: str):
        if number not in self._buses:
            if self._bus_factory is not None:
                self._buses[number] = self._bus_factory(number)
            else:
                from .drivers.i2c import open_bus
                self._buses[number] = open_bus(number, part)[0]
        return self._buses[number]

    def pin(self, number: int | None):
        if number is None:
            return None
        if self._pins is None:
            from .gpio import pin_factory_for
            self._pins = pin_factory_for(self.board)
        return self._pins.pin(number)

    def open(self, role: str) -> Part:
        """Construct the driver for one part of the profile."""
        spec = self.profile.parts[role]
        p = self.profile
        if spec.type == "mpr121":
            from .drivers.mpr121 import MPR121
            return MPR121(self.bus(spec.bus, role), spec.address, spec.pads, spec.touch_threshold,
                          spec.release_threshold, irq=self.pin(spec.irq_pin), name=role)
        if spec.type == "vl53l0x":
            from .drivers.vl53l0x import VL53L0X
            return VL53L0X(self.bus(spec.bus, role), spec.address, spec.max_range_mm,
                           spec.timing_budget_ms, name=role)
        if spec.type == "bh1750":
            from .drivers.bh1750 import BH1750
            return BH1750(self.bus(spec.bus, role), spec.address, name=role)
        if spec.type == "veml7700":
            from .drivers.veml7700 import VEML7700
            return VEML7700(self.bus(spec.bus, role), spec.address, spec.gain, spec.integration_ms,
                            name=role)
        if spec.type == "ws2812" and spec.driver == "pwm":
            from .drivers.ws2812_pwm import Ws2812Pwm
            return Ws2812Pwm(spec.count, spec.pin, spec.order, spec.dma, spec.brightness,
                             p.led_cap_ma, name=role)
        if spec.type == "ws2812":
            from .drivers.ws2812_spi import Ws2812Spi
            bus = p.spi_bus if spec.spi_bus is None else spec.spi_bus
            return Ws2812Spi(spec.count, bus, spec.spi_device, spec.spi_hz, spec.order,
                             spec.brightness, p.led_cap_ma, name=role)
        if spec.type == "ssd1306":
            from .drivers.ssd1306 import Ssd1306
            return Ssd1306(spec.bus, spec.address, spec.width, spec.height, spec.rotate,
                           reset=self.pin(spec.reset_pin), name=role)
        if spec.type == "companion":
            return self._open_companion(role, spec)
        if channel_parts.is_channel_part(spec.type):  # an IMU, an ADC, GPIO inputs, a sound level
            return channel_parts.open_real(spec, self.bus, self.pin)
        raise ProfileError(f"{p.source}: no backend for {spec.label}")  # parse_profile prevents this

    def _open_companion(self, role, spec):
        try:
            from .companion import backend
        except ModuleNotFoundError:
            raise PartError(role, "the microcontroller companion backend is not installed in this "
                                  "version of lanthorn") from None
        factory = getattr(backend, "open_companion_part", None)
        if factory is None:
            raise PartError(role, "this lanthorn's companion backend cannot be opened from a profile")
        return factory(role, dict(spec.options), power_cap_ma=self.profile.led_cap_ma)

    def close(self) -> None:
        for bus in self._buses.values():
            close = getattr(bus, "close", None)
            if close:
                close()
        self._buses.clear()
        if self._pins is not None:
            self._pins.close()


def check_board(profile: Profile, model_path=None) -> str:
    """The detected board; ProfileError when the profile was written for another one."""
    try:
        board = detect_board(model_path)
    except UnsupportedBoard as exc:
        what = f"a {exc.model!r}" if exc.model else "not a Raspberry Pi or Jetson"
        raise UnsupportedBoard(f"{profile.source} is for {get_board(profile.board).title}, but this "
                               f"machine is {what}; add --sim to try the profile in the simulator") from None
    if board != profile.board:
        raise ProfileError(f"{profile.source}: this profile is for {get_board(profile.board).title} "
                           f"but this machine is a {get_board(board).title}; use the '{board}' "
                           f"profile (--profile {board}) or adapt yours")
    return board


@dataclass
class RealBody(Body):
    """A Body on real hardware; owns the shared buses and pins."""

    shared: RealParts | None = field(default=None, repr=False)

    def open_part(self, role: str) -> Part:
        """(Re)open one part, e.g. after it failed; raises PartError if it still fails."""
        old = self.part(role)
        if old is not None:
            old.close()
            setattr(self, role, None)
        assert self.shared is not None, "open_body gives a RealBody its shared parts"
        part = self.shared.open(role)
        setattr(self, role, part)
        self.open_errors.pop(role, None)
        return part

    def close(self) -> None:
        super().close()
        if self.shared is not None:
            self.shared.close()


def open_body(profile: Profile, sim: bool = False, *, board_check: bool = True,
              pin_factory=None, bus_factory=None, **sim_options) -> Body:
    """Open every part the profile lists. See the module docstring."""
    if sim or profile.backend == SIM_BACKEND:
        from .sim import open_sim_body
        return open_sim_body(profile, **sim_options)
    if sim_options:
        raise TypeError(f"options {sorted(sim_options)} only apply to the simulator")
    if board_check:
        check_board(profile)
    shared = RealParts(profile, pin_factory=pin_factory, bus_factory=bus_factory)
    body = RealBody(shared=shared, profile=profile)
    for role in profile.parts:
        try:
            setattr(body, role, shared.open(role))
        except PartError as exc:
            body.open_errors[role] = str(exc)
    return body
