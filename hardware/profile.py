"""Hardware profiles: one TOML file describing one object's body.

A profile says which board the object runs on, which parts it has (touch, distance,
light, leds, display), where each part sits (I2C bus and address, SPI bus/device, GPIO
pins), the LED ring's size and colour order, the power budget, and which parts the piece
cannot do without. It is the single source of those facts: the drivers, the simulator,
``lanthorn selftest`` and the wiring tables in hardware/README.md all follow it.

Loading validates everything a maker can get wrong before any bus is opened, and every
problem is a :class:`ProfileError` naming the file, the section and what to change:
unknown keys (with a "did you mean"), an unknown board, a pin the board does not have or
that a bus already uses, two parts on one I2C address, an LED power cap over the supply,
a required part that is missing, a value of the wrong type.

Example (see hardware/profiles/ for the shipped ones)::

    board = "pi4"
    required = ["touch", "leds"]
    [buses]
    i2c = 1
    [power]
    supply_ma = 3000      # what the LED supply can deliver
    led_cap_ma = 1200     # the ring never draws more than this
    [parts.touch]
    type = "mpr121"
    address = 0x5A
    irq_pin = 4
    [parts.leds]
    type = "ws2812"
    driver = "pwm"
    pin = 18
    count = 24
"""
from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from lanthorn.errors import UserError
from lanthorn.vocabulary import BAUD, ROLES

from . import channel_parts as _channel_parts
from .board import BOARDS, Board
from .interfaces import LED_MA_IDLE_PER_PIXEL

PROFILE_DIR = Path(__file__).with_name("profiles")
BACKENDS = ("real", "sim")


class ProfileError(UserError):
    """A hardware profile that cannot describe a working object, with what to fix."""


_REQUIRED = _channel_parts.REQUIRED  # marks an option without default (one marker for both tables)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v):
    return isinstance(v, int) and not isinstance(v, bool)


# type name -> (roles it can fill, {option: (check, type description, default)}).
# "bus", "address" and pins ("*_pin", leds "pin") get the cross-part checks below.
_OPT_BUS = ("bus", (_integer, "an I2C bus number", None))
PART_TYPES: dict[str, tuple[tuple[str, ...], dict[str, tuple]]] = {
    "mpr121": (("touch",), dict([
        ("address", (_integer, "an I2C address like 0x5A", 0x5A)), _OPT_BUS,
        ("pads", (_integer, "a number of pads (1..12)", 12)),
        ("irq_pin", (_integer, "a GPIO pin number", None)),
        ("touch_threshold", (_integer, "a count (1..255)", 12)),
        ("release_threshold", (_integer, "a count (1..255)", 6)),
    ])),
    "vl53l0x": (("distance",), dict([
        ("address", (_integer, "an I2C address like 0x29", 0x29)), _OPT_BUS,
        ("max_range_mm", (_number, "millimetres", 1200)),
        ("timing_budget_ms", (_integer, "milliseconds (20..200)", 33)),
        ("xshut_pin", (_integer, "a GPIO pin number", None)),
    ])),
    "bh1750": (("light",), dict([
        ("address", (_integer, "an I2C address: 0x23 or 0x5C", 0x23)), _OPT_BUS,
    ])),
    "veml7700": (("light",), dict([
        ("address", (_integer, "an I2C address (always 0x10)", 0x10)), _OPT_BUS,
        ("gain", (_number, "one of 0.125, 0.25, 1, 2", 0.25)),
        ("integration_ms", (_integer, "one of 25, 50, 100, 200, 400, 800", 100)),
    ])),
    "ws2812": (("leds",), dict([
        ("count", (_integer, "a number of pixels", _REQUIRED)),
        ("driver", (lambda v: isinstance(v, str), '"pwm" (Pi 4 only) or "spi"', _REQUIRED)),
        ("order", (lambda v: isinstance(v, str), 'a colour order like "GRB"', "GRB")),
        ("pin", (_integer, "a GPIO pin number (pwm driver)", None)),
        ("spi_bus", (_integer, "an SPI bus number", None)),
        ("spi_device", (_integer, "an SPI chip-select number", 0)),
        ("spi_hz", (_integer, "an SPI clock in Hz (2400000..6400000)", 6_400_000)),
        ("brightness", (_number, "a number from 0 to 1", 1.0)),
        ("dma", (_integer, "a DMA channel (pwm driver)", 10)),
    ])),
    "ssd1306": (("display",), dict([
        ("address", (_integer, "an I2C address: 0x3C or 0x3D", 0x3C)), _OPT_BUS,
        ("width", (_integer, "pixels", 128)),
        ("height", (_integer, "pixels (32 or 64)", 64)),
        ("rotate", (_integer, "0, 1, 2 or 3 quarter turns", 0)),
        ("reset_pin", (_integer, "a GPIO pin number", None)),
    ])),
    # A microcontroller companion (firmware/) scanning the pads and driving the ring over serial.
    "companion": (("touch", "leds"), dict([
        ("port", (lambda v: isinstance(v, str), 'a serial port like "/dev/ttyACM0"', _REQUIRED)),
        ("baud", (_integer, "a baud rate", BAUD)),
        ("pads", (_integer, "a number of pads", 12)),
        ("count", (_integer, "a number of pixels", 24)),
        ("order", (lambda v: isinstance(v, str), 'a colour order like "GRB"', "GRB")),
        ("brightness", (_number, "a number from 0 to 1", 1.0)),
    ])),
}
# --- channel parts (an IMU, an ADC, GPIO inputs, a sound level): their options live in the one
# registry, hardware/channel_parts.py. They fill no fixed role: any part name
# ([parts.imu], [parts.knob], ...) may hold one, marked by the role ANY_PART.
ANY_PART = "*"
PART_TYPES.update({type_name: ((ANY_PART,), schema)
                   for type_name, schema in _channel_parts.OPTIONS.items()})
_PART_COMMON = ("type",)
_TOP_KEYS = ("name", "description", "board", "backend", "required", "buses", "power", "pins", "parts",
             "model")
_BUS_KEYS = ("i2c", "spi_bus", "spi_device")
_POWER_KEYS = ("supply_ma", "led_cap_ma")
I2C_ADDRESS_RANGE = range(0x08, 0x78)
PWM_LED_PINS = (18, 12, 13, 19, 21)  # rpi_ws281x: PWM0 (12/18), PWM1 (13/19), PCM (21)


@dataclass(frozen=True)
class PartSpec:
    """One part of the body as the profile describes it, with defaults filled in.

    Options are readable as attributes: ``profile.leds.count``, ``profile.touch.address``.
    ``bus`` is the part's I2C bus (the profile's default bus unless the part overrides it).
    """

    role: str
    type: str
    options: Mapping[str, Any]

    def __getattr__(self, key):
        try:
            return self.options[key]
        except KeyError:
            raise AttributeError(f"{self.role} ({self.type}) has no option {key!r}") from None

    def get(self, key, default=None):
        return self.options.get(key, default)

    @property
    def label(self) -> str:
        return f"'{self.role}' ({self.type})"


@dataclass(frozen=True)
class Profile:
    """A validated hardware profile. Build with :func:`load_profile` or :func:`parse_profile`."""

    name: str
    board: str
    backend: str
    source: str
    i2c_bus: int
    spi_bus: int
    spi_device: int
    supply_ma: float | None
    led_cap_ma: float | None
    required: tuple[str, ...]
    parts: Mapping[str, PartSpec]
    pins: Mapping[str, int] = field(default_factory=dict)  # extra named pins: status_led, ...
    description: str = ""
    #: the piece's own shipped model, used when the data directory holds none: a name in
    #: lanthorn/device/models ("bowl") or a .lanthorn path; None: the default piece's
    model: str | None = None

    @property
    def board_info(self) -> Board:
        return BOARDS[self.board]

    @property
    def is_sim(self) -> bool:
        return self.backend == "sim"

    def part(self, role: str) -> PartSpec | None:
        return self.parts.get(role)

    touch = property(lambda self: self.parts.get("touch"))
    distance = property(lambda self: self.parts.get("distance"))
    light = property(lambda self: self.parts.get("light"))
    leds = property(lambda self: self.parts.get("leds"))
    display = property(lambda self: self.parts.get("display"))


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(path_or_name: str | Path) -> Profile:
    """Load a profile from a TOML file, or a shipped one by name ("pi4", "pi5", "sim", ...)."""
    text = str(path_or_name)
    if isinstance(path_or_name, str) and "/" not in text and not text.endswith(".toml") \
            and not Path(text).exists():
        path = PROFILE_DIR / f"{text}.toml"
        if not path.is_file():
            raise ProfileError(f"no shipped profile named {text!r} (shipped: "
                               f"{', '.join(shipped_profiles())}); pass a .toml file path instead")
    else:
        path = Path(path_or_name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: profile file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    return parse_profile(data, source=str(path))


def choose_profile(path_or_name: str | Path | None, sim: bool = False) -> Profile:
    """The profile a command runs on (``--profile``/``--sim``): the one given, else the
    simulator's with ``sim``, else the shipped profile of the board this is running on
    (an unsupported board raises its clear error)."""
    if path_or_name:
        return load_profile(path_or_name)
    if sim:
        return load_profile("sim")
    from .board import detect_board
    return load_profile(detect_board())

def _unknown(source: str, where: str, key: str, known) -> ProfileError:
    hint = difflib.get_close_matches(key, list(known), n=1)
    did = f" (did you mean {hint[0]!r}?)" if hint else f" (known: {', '.join(known)})"
    return ProfileError(f"{source}: {where}: unknown key {key!r}{did}")


def _check_keys(source, where, table, known):
    if not isinstance(table, dict):
        raise ProfileError(f"{source}: {where} must be a table")
    for key in table:
        if key not in known:
            raise _unknown(source, where, key, known)


def parse_profile(data: Mapping[str, Any], source: str = "<profile>") -> Profile:
    """Validate a profile already parsed from TOML (tests build them as dicts)."""
    _check_keys(source, "top level", data, _TOP_KEYS)
    board_name = data.get("board")
    if board_name is None:
        raise ProfileError(f"{source}: missing 'board' (one of: {', '.join(BOARDS)})")
    if board_name not in BOARDS:
        raise ProfileError(f"{source}: unknown board {board_name!r} (supported: {', '.join(BOARDS)})")
    board = BOARDS[board_name]
    backend = data.get("backend", "sim" if board_name == "sim" else "real")
    if backend not in BACKENDS:
        raise ProfileError(f"{source}: backend must be one of {', '.join(BACKENDS)}, not {backend!r}")

    buses = data.get("buses", {})
    _check_keys(source, "[buses]", buses, _BUS_KEYS)
    for key, value in buses.items():
        if not _integer(value) or value < 0:
            raise ProfileError(f"{source}: [buses] {key} must be a bus number (0, 1, ...), not {value!r}")
    i2c_bus = buses.get("i2c", board.default_i2c_bus)
    spi_bus, spi_device = buses.get("spi_bus", 0), buses.get("spi_device", 0)

    parts = _parse_parts(source, data.get("parts", {}), i2c_bus)

    required = data.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ProfileError(f"{source}: 'required' must be a list of part names like [\"touch\", \"leds\"]")
    for role in required:
        if role not in parts and role not in ROLES:
            raise _unknown(source, "required", role, tuple(ROLES) + tuple(parts))
        if role not in parts:
            raise ProfileError(f"{source}: part {role!r} is required but the profile has no "
                               f"[parts.{role}] section; add it or remove it from 'required'")

    power = data.get("power", {})
    _check_keys(source, "[power]", power, _POWER_KEYS)
    for key, value in power.items():
        if not _number(value) or value <= 0:
            raise ProfileError(f"{source}: [power] {key} must be a positive number of mA, not {value!r}")
    supply, cap = power.get("supply_ma"), power.get("led_cap_ma")

    pins = data.get("pins", {})
    if not isinstance(pins, dict):
        raise ProfileError(f"{source}: [pins] must be a table of name = pin number")
    for key, value in pins.items():
        if not _integer(value):
            raise ProfileError(f"{source}: [pins] {key} must be a pin number, not {value!r}")

    profile = Profile(
        name=str(data.get("name", Path(source).stem)), board=board_name, backend=backend,
        source=source, i2c_bus=i2c_bus, spi_bus=spi_bus, spi_device=spi_device,
        supply_ma=supply, led_cap_ma=cap, required=tuple(required),
        parts=MappingProxyType(parts), pins=MappingProxyType(dict(pins)),
        description=str(data.get("description", "")), model=_model_key(source, data))
    _check_leds(profile, board)
    _check_i2c_addresses(profile)
    _check_pins(profile, board)
    return profile


_PART_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")


def _check_part_name(source: str, role: str) -> None:
    """A part's name is the maker's (``[parts.imu]``, ``[parts.knob]``): lower-case letters,
    digits and '_'; the five classic names keep their meaning."""
    if not _PART_NAME.match(role):
        raise ProfileError(f"{source}: [parts.{role}]: a part name must be lower-case letters, "
                           f"digits and '_' starting with a letter (like imu, knob, presence)")


def channel_types() -> tuple[str, ...]:
    """Part types that feed the frame through declared channels (a ChannelSensor: IMU, ADC,
    PIR, button, sound level): they may sit under any part name but the five classic ones."""
    return tuple(t for t, (roles, _) in PART_TYPES.items() if ANY_PART in roles)


def _fits(role: str) -> list[str]:
    if role in ROLES:
        return [t for t, (roles, _) in PART_TYPES.items() if role in roles]
    return list(channel_types())


def _check_type(source: str, where: str, role: str, type_name) -> str:
    """``type_name`` when it is a known type fit for ``role``; else a ProfileError saying why."""
    if type_name is None:
        raise ProfileError(f"{source}: {where}: missing 'type' (for {role}: {', '.join(_fits(role))})")
    if type_name in PART_TYPES and (role in PART_TYPES[type_name][0]
                                    or (role not in ROLES and ANY_PART in PART_TYPES[type_name][0])):
        return type_name
    if role in ROLES and type_name in channel_types():
        raise ProfileError(f"{source}: {where}: unknown type {type_name!r} for {role}: it is a "
                           f"sensing part with its own channels; name it after what it senses "
                           f"([parts.imu], [parts.knob])")
    if role not in ROLES and type_name in PART_TYPES:   # a classic part under a new name
        raise _unknown(source, "[parts]", role, PART_TYPES[type_name][0])
    what = f"for {role}" if role in ROLES else "for a sensing part"
    raise ProfileError(f"{source}: {where}: unknown type {type_name!r} {what} "
                       f"(supported: {', '.join(_fits(role)) or 'none'})")


def part_channels(spec: PartSpec):
    """The channels a generic sensing part declares (() for the classic parts and outputs),
    from the part type's entry in :mod:`.channel_parts`."""
    if spec.type not in channel_types():
        return ()
    from .channel_parts import channels_for
    return tuple(channels_for(spec))


def _model_key(source: str, data) -> str | None:
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ProfileError(f"{source}: 'model' must name the piece's shipped model (\"bowl\") or "
                           f"a .lanthorn file, not {model!r}")
    return model


def _parse_parts(source: str, parts_table, i2c_bus: int) -> dict[str, PartSpec]:
    if not isinstance(parts_table, dict):
        raise ProfileError(f"{source}: [parts] must be a table")
    for role in parts_table:
        _check_part_name(source, role)
    return {role: _parse_part(source, role, table, i2c_bus) for role, table in parts_table.items()}


def _parse_part(source: str, role: str, table, default_bus: int) -> PartSpec:
    where = f"[parts.{role}]"
    if not isinstance(table, dict):
        raise ProfileError(f"{source}: {where} must be a table")
    type_name = _check_type(source, where, role, table.get("type"))
    schema = PART_TYPES[type_name][1]
    _check_keys(source, where, table, _PART_COMMON + tuple(schema))
    options = {}
    for key, (check, what, default) in schema.items():
        if key in table:
            value = table[key]
            if not check(value):
                raise ProfileError(f"{source}: {where} {key} must be {what}, not {value!r}")
            options[key] = value
        elif default is _REQUIRED:
            raise ProfileError(f"{source}: {where}: missing {key!r} ({what})")
        else:
            options[key] = default
    if "bus" in schema and options["bus"] is None:
        options["bus"] = default_bus
    if "address" in options and options["address"] not in I2C_ADDRESS_RANGE:
        raise ProfileError(f"{source}: {where} address {options['address']:#04x} is outside the "
                           f"7-bit I2C range 0x08..0x77")
    _check_part_values(source, where, type_name, options)
    return PartSpec(role, type_name, MappingProxyType(options))


def _check_part_values(source, where, type_name, o):
    def bad(msg):
        return ProfileError(f"{source}: {where} {msg}")
    if _channel_parts.is_channel_part(type_name):
        msg = _channel_parts.check_options(type_name, o)
        if msg:
            raise bad(msg)
    if type_name == "mpr121":
        if not 1 <= o["pads"] <= 12:
            raise bad(f"pads must be 1..12 (an MPR121 has 12 electrodes), not {o['pads']}")
        for k in ("touch_threshold", "release_threshold"):
            if not 1 <= o[k] <= 255:
                raise bad(f"{k} must be 1..255, not {o[k]}")
        if o["release_threshold"] >= o["touch_threshold"]:
            raise bad("release_threshold must be below touch_threshold (hysteresis), "
                      f"got {o['release_threshold']} >= {o['touch_threshold']}")
    if type_name in ("ws2812", "companion"):
        if "count" in o and not 1 <= o["count"] <= 2000:
            raise bad(f"count must be 1..2000 pixels, not {o['count']}")
        order = o["order"].upper()
        if sorted(order) != ["B", "G", "R"]:
            raise bad(f"order must be a permutation of RGB like \"GRB\", not {o['order']!r}")
        o["order"] = order
        if not 0.0 <= o["brightness"] <= 1.0:
            raise bad(f"brightness must be between 0 and 1, not {o['brightness']}")
    if type_name == "ws2812":
        if o["driver"] not in ("pwm", "spi"):
            raise bad(f'driver must be "pwm" or "spi", not {o["driver"]!r}')
        if o["driver"] == "pwm" and o["pin"] is None:
            raise bad('uses driver "pwm" but has no pin (GPIO 18 on a Pi 4)')
        if not 2_400_000 <= o["spi_hz"] <= 6_400_000:
            raise bad(f"spi_hz must be 2400000..6400000, not {o['spi_hz']}")
    if type_name == "veml7700":
        if o["gain"] not in (0.125, 0.25, 1, 2):
            raise bad(f"gain must be one of 0.125, 0.25, 1, 2, not {o['gain']}")
        if o["integration_ms"] not in (25, 50, 100, 200, 400, 800):
            raise bad(f"integration_ms must be one of 25, 50, 100, 200, 400, 800, not {o['integration_ms']}")
    if type_name == "vl53l0x" and not 20 <= o["timing_budget_ms"] <= 200:
        raise bad(f"timing_budget_ms must be 20..200, not {o['timing_budget_ms']}")
    if type_name == "ssd1306":
        if (o["width"], o["height"]) not in ((128, 64), (128, 32), (96, 16)):
            raise bad(f"size {o['width']}x{o['height']} is not an SSD1306 size (128x64, 128x32, 96x16)")
        if o["rotate"] not in (0, 1, 2, 3):
            raise bad(f"rotate must be 0, 1, 2 or 3, not {o['rotate']}")


def _check_leds(p: Profile, board: Board) -> None:
    leds = p.leds
    if leds is None:
        return
    if leds.type == "ws2812" and p.backend == "real" and leds.driver not in board.led_drivers:
        raise ProfileError(f"{p.source}: [parts.leds] driver {leds.driver!r} does not work on "
                           f"{board.title}; use {' or '.join(repr(d) for d in board.led_drivers)}")
    if leds.type == "ws2812" and leds.driver == "pwm" and p.backend == "real" \
            and leds.pin not in PWM_LED_PINS:
        raise ProfileError(f"{p.source}: [parts.leds] pin {leds.pin} cannot drive WS2812 with "
                           f"rpi_ws281x; use GPIO 18 (header pin 12) or another PWM/PCM pin: "
                           f"{', '.join(str(x) for x in PWM_LED_PINS)}")
    if p.supply_ma is None or p.led_cap_ma is None:
        raise ProfileError(f"{p.source}: the LEDs need a power budget: add [power] supply_ma (what "
                           f"the LED supply delivers) and led_cap_ma (the most the ring may draw)")
    if p.led_cap_ma > p.supply_ma:
        raise ProfileError(f"{p.source}: LED power cap {p.led_cap_ma:g} mA is over the supply budget "
                           f"of {p.supply_ma:g} mA; lower [power] led_cap_ma or use a bigger supply")
    idle = leds.count * LED_MA_IDLE_PER_PIXEL
    if p.led_cap_ma <= idle:
        raise ProfileError(f"{p.source}: LED power cap {p.led_cap_ma:g} mA leaves nothing to light "
                           f"{leds.count} pixels (they idle at ~{idle:g} mA); raise [power] led_cap_ma")


def _check_i2c_addresses(p: Profile) -> None:
    seen: dict[tuple[int, int], PartSpec] = {}
    for part in p.parts.values():
        if "address" not in part.options:
            continue
        key = (part.bus, part.address)
        if key in seen:
            other = seen[key]
            raise ProfileError(f"{p.source}: parts {other.label} and {part.label} are both at I2C "
                               f"address {part.address:#04x} on bus {part.bus}; give one of them "
                               f"another address (or put it on another bus)")
        seen[key] = part


def _check_pins(p: Profile, board: Board) -> None:
    """Every pin exists on the board and has one job (buses in use count as jobs)."""
    users: dict[int, str] = {}

    def claim(pin: int, who: str):
        if pin not in board.gpio_pins:
            valid = ", ".join(str(x) for x in sorted(board.gpio_pins))
            raise ProfileError(f"{p.source}: {who}: pin {pin} is not a GPIO on {board.title} "
                               f"({board.numbering} numbering; valid: {valid})")
        if pin in users:
            raise ProfileError(f"{p.source}: pin {board.describe_pin(pin)} is used twice: by "
                               f"{users[pin]} and by {who}")
        users[pin] = who

    for bus in sorted({part.bus for part in p.parts.values() if "bus" in part.options}):
        lines = board.buses.i2c.get(bus)
        if lines is None:
            if p.backend == "real":
                known = ", ".join(str(b) for b in board.buses.i2c)
                raise ProfileError(f"{p.source}: I2C bus {bus} is not on the {board.title} header "
                                   f"(header buses: {known})")
            continue
        for line, pin in lines.items():
            if pin in board.gpio_pins:
                users[pin] = f"I2C bus {bus} {line}"
    leds = p.leds
    if leds is not None and leds.type == "ws2812":
        if leds.driver == "spi":
            spi_bus = p.spi_bus if leds.spi_bus is None else leds.spi_bus
            lines = board.buses.spi.get(spi_bus)
            if lines is None:
                raise ProfileError(f"{p.source}: [parts.leds] SPI bus {spi_bus} is not on the "
                                   f"{board.title} header")
            for line in ("MOSI", "SCLK", f"CE{leds.spi_device}"):
                if line in lines:
                    claim(lines[line], f"SPI bus {spi_bus} {line} (leds)")
        if leds.pin is not None and leds.driver == "pwm":
            claim(leds.pin, "[parts.leds] pin")
    for part in p.parts.values():
        for key, value in part.options.items():
            pin_key = key.endswith("_pin") or (key == "pin" and _channel_parts.is_channel_part(part.type))
            if pin_key and value is not None:
                claim(value, f"[parts.{part.role}] {key}")
    for name, pin in p.pins.items():
        claim(pin, f"[pins] {name}")
