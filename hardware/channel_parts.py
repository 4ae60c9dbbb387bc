"""The one registry of channel parts: sensing parts that declare their own channels.

A *channel part* is any sensor the default piece does not know by role: an IMU, an ADC, a
PIR, a button or reed switch, a sound level. For each part type this module says, in one
place:

* its profile options (``OPTIONS[type]``, the same ``{option: (check, description,
  default)}`` shape as :data:`lanthorn.hardware.profile.PART_TYPES`, which takes them from
  here), and the value checks the options need (:func:`check_options`);
* the channels it declares (:func:`channels_for`): default names, unit, range, encoding and
  rate, all following the options (a range option changes the channel range; ``names`` or
  ``prefix`` rename the channels, so a body with two IMUs can have ``top_ax`` and ``base_ax``);
* how to open it on real hardware (:func:`open_real`, over the body's shared I2C buses and
  pin factory) and in the simulator (:func:`open_sim`, reading a
  :class:`lanthorn.hardware.sim.motion.Scene`).

Adding a kind of sensor means a driver, a sim part and an entry here; nothing in the device
core. Drivers and the simulator are imported only when a part is opened.

Example::

    [parts.imu]
    type = "mpu6050"
    accel_range_g = 4
    prefix = "bowl_"      # channels bowl_ax .. bowl_gz
    [parts.knob]
    type = "ads1115"
    inputs = ["knob", "ldr"]          # AIN0, AIN1
    kinds = ["potentiometer", "ldr"]
    gain = [4.096, 4.096]
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping

from .channels import Channel

REQUIRED = object()  # the option has no default (profile.py uses this same marker)


def _integer(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text(v):
    return isinstance(v, str)


def _names(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _number_or_numbers(v):
    return _number(v) or (isinstance(v, list) and all(_number(x) for x in v))


def _optional_device(v):
    return v is None or isinstance(v, str) or _integer(v)


_BUS = (_integer, "an I2C bus number", None)
_COMMON = {
    "names": (_names, 'a list of channel names like ["ax", "ay"]', None),
    "prefix": (_text, 'a text put before every default channel name, like "top_"', ""),
}

IMU_ODR_HZ = {"mpu6050": (4, 1000), "lsm6ds3": (12.5, 26, 52, 104, 208, 416, 833, 1660)}
ACCEL_RANGES_G = (2, 4, 8, 16)
GYRO_RANGES_DPS = (250, 500, 1000, 2000)
MPU_DLPF_HZ = (260, 184, 94, 44, 21, 10, 5)
ADS_GAINS_V = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)
ADS_DATA_RATES = (8, 16, 32, 64, 128, 250, 475, 860)
ADC_KINDS = ("voltage", "potentiometer", "ldr", "piezo", "envelope")
DIGITAL_PULLS = ("up", "down", "none")


def _imu_options(address, sample_rate):
    return {
        "address": (_integer, "an I2C address", address), "bus": _BUS,
        "accel_range_g": (_integer, "one of 2, 4, 8, 16 (g)", 4),
        "gyro_range_dps": (_integer, "one of 250, 500, 1000, 2000 (degrees/s)", 500),
        "sample_rate_hz": (_number, "the chip's output rate in Hz", sample_rate),
        "rate_hz": (_number, "how often the piece reads it, Hz", 100.0),
    }


def _digital_options(pull, active_low, debounce_ms, extra=None):
    opts = {
        "pin": (_integer, "a GPIO pin number", REQUIRED),
        "pull": (_text, 'pull resistor: "up", "down" or "none"', pull),
        "active_low": (lambda v: isinstance(v, bool), "true or false", active_low),
        "debounce_ms": (_number, "milliseconds the level must hold before it counts", debounce_ms),
        "rate_hz": (_number, "how often the piece reads it, Hz", 100.0),
    }
    return opts | (extra or {})


# type name -> {option: (check, description, default)}; the common options come after.
OPTIONS: dict[str, dict[str, tuple]] = {
    "mpu6050": _imu_options(0x68, 100) | {
        "dlpf_hz": (_integer, "the low-pass filter: 260, 184, 94, 44, 21, 10 or 5 Hz", 44)},
    "lsm6ds3": _imu_options(0x6A, 104),
    "ads1115": {
        "address": (_integer, "an I2C address 0x48..0x4B", 0x48), "bus": _BUS,
        "inputs": (_names, 'channel names for AIN0..AIN3 in order, "" for an unused input',
                   REQUIRED),
        "kinds": (_names, f"what is wired to each input: {', '.join(ADC_KINDS)}", None),
        "gain": (_number_or_numbers, "a full-scale voltage (6.144, 4.096, 2.048, 1.024, 0.512, "
                                     "0.256) or a list of them, one per input", 4.096),
        "data_rate": (_integer, "samples per second: 8, 16, 32, 64, 128, 250, 475 or 860", 860),
        "vdd": (_number, "the chip's supply in volts (inputs never exceed it)", 3.3),
        "rate_hz": (_number, "how often the piece reads it, Hz", 50.0),
    },
    "pir": _digital_options("none", False, 0, {
        "hold_s": (_number, "seconds the sensor holds its output after motion (its trimmer)", 2.5)}),
    "button": _digital_options("up", True, 20),
    "reed_switch": _digital_options("up", True, 5),
    "sound_level": {
        "device": (_optional_device, "an ALSA/PortAudio input device name or number", None),
        "samplerate": (_integer, "samples per second", 16000),
        "block_ms": (_number, "milliseconds of sound per level", 50),
        "floor_db": (_number, "the quietest level in dBFS (below reads as this)", -90.0),
        "rate_hz": (_number, "how often the piece reads it, Hz", 20.0),
    },
}
for _schema in OPTIONS.values():
    _schema.update(_COMMON)
TYPES: tuple[str, ...] = tuple(OPTIONS)

_DEFAULT_NAMES = {
    "mpu6050": ("ax", "ay", "az", "gx", "gy", "gz"),
    "lsm6ds3": ("ax", "ay", "az", "gx", "gy", "gz"),
    "pir": ("presence",), "button": ("button",), "reed_switch": ("reed",),
    "sound_level": ("sound",),
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _as_list(value, n):
    return list(value) if isinstance(value, list) else [value] * n


def ads_inputs(o: Mapping[str, Any]) -> list[tuple[int, str, str, float]]:
    """(AIN index, channel base name, kind, full-scale volts) of every used ADS1115 input."""
    n = len(o["inputs"])
    kinds = o["kinds"] if o["kinds"] is not None else ["voltage"] * n
    gains = _as_list(o["gain"], n)
    return [(i, name, kinds[i], float(gains[i])) for i, name in enumerate(o["inputs"]) if name]


def default_names(type_name: str, o: Mapping[str, Any]) -> tuple[str, ...]:
    if type_name == "ads1115":
        return tuple(name for _, name, _, _ in ads_inputs(o))
    return _DEFAULT_NAMES[type_name]


def check_options(type_name: str, o: Mapping[str, Any]) -> str | None:
    """What is wrong with a channel part's (defaulted) options, or None."""
    if type_name in ("mpu6050", "lsm6ds3"):
        return _check_imu(type_name, o)
    if type_name == "ads1115":
        msg = _check_ads(o)
        if msg:
            return msg
    if type_name in ("pir", "button", "reed_switch"):
        if o["pull"] not in DIGITAL_PULLS:
            return f'pull must be "up", "down" or "none", not {o["pull"]!r}'
        if not 0 <= o["debounce_ms"] <= 1000:
            return f"debounce_ms must be 0..1000, not {o['debounce_ms']}"
    if type_name == "sound_level" and not 5 <= o["block_ms"] <= 1000:
        return f"block_ms must be 5..1000, not {o['block_ms']}"
    if not 0 < o["rate_hz"] <= 1000:
        return f"rate_hz must be above 0 and at most 1000, not {o['rate_hz']}"
    return _check_names(type_name, o)


def _check_imu(type_name, o):
    if o["accel_range_g"] not in ACCEL_RANGES_G:
        return f"accel_range_g must be one of 2, 4, 8, 16, not {o['accel_range_g']}"
    if o["gyro_range_dps"] not in GYRO_RANGES_DPS:
        return f"gyro_range_dps must be one of 250, 500, 1000, 2000, not {o['gyro_range_dps']}"
    rates = IMU_ODR_HZ[type_name]
    if type_name == "mpu6050":
        if not rates[0] <= o["sample_rate_hz"] <= rates[1]:
            return f"sample_rate_hz must be 4..1000 for an MPU-6050, not {o['sample_rate_hz']}"
        if o["dlpf_hz"] not in MPU_DLPF_HZ:
            return f"dlpf_hz must be one of 260, 184, 94, 44, 21, 10, 5, not {o['dlpf_hz']}"
    elif o["sample_rate_hz"] not in rates:
        return (f"sample_rate_hz must be one of {', '.join(f'{r:g}' for r in rates)} for an "
                f"LSM6DS3, not {o['sample_rate_hz']}")
    if not 0 < o["rate_hz"] <= 1000:
        return f"rate_hz must be above 0 and at most 1000, not {o['rate_hz']}"
    return _check_names(type_name, o)


def _check_ads(o):
    n = len(o["inputs"])
    if not 1 <= n <= 4 or not any(o["inputs"]):
        return f"inputs must name 1 to 4 inputs (AIN0..AIN3), not {o['inputs']!r}"
    if o["kinds"] is not None:
        if len(o["kinds"]) != n:
            return f"kinds must have one entry per input ({n}), not {len(o['kinds'])}"
        bad = [k for k in o["kinds"] if k not in ADC_KINDS]
        if bad:
            return f"kind {bad[0]!r} is not one of {', '.join(ADC_KINDS)}"
    gains = _as_list(o["gain"], n)
    if len(gains) != n:
        return f"gain must be one number or one per input ({n}), not {len(gains)}"
    bad = [g for g in gains if float(g) not in ADS_GAINS_V]
    if bad:
        return f"gain {bad[0]} V is not an ADS1115 range (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)"
    if o["data_rate"] not in ADS_DATA_RATES:
        return f"data_rate must be one of 8, 16, 32, 64, 128, 250, 475, 860, not {o['data_rate']}"
    if not 2.0 <= o["vdd"] <= 5.5:
        return f"vdd must be 2.0..5.5 V (the ADS1115's supply range), not {o['vdd']}"
    if o["address"] not in (0x48, 0x49, 0x4A, 0x4B):
        return f"address must be 0x48..0x4B (ADDR to GND, VDD, SDA or SCL), not {o['address']:#04x}"
    return None


def _check_names(type_name, o):
    names = channel_names(type_name, o)
    if o["names"] is not None and len(o["names"]) != len(default_names(type_name, o)):
        return (f"names must list {len(default_names(type_name, o))} channel names "
                f"(for {', '.join(default_names(type_name, o))}), not {len(o['names'])}")
    for name in names:
        if not _NAME.match(name):
            return f"channel name {name!r} must be letters, digits and _ (not starting with a digit)"
    if len(set(names)) != len(names):
        return f"channel names repeat: {', '.join(names)}"
    return None


def channel_names(type_name: str, o: Mapping[str, Any]) -> tuple[str, ...]:
    """The names the part's channels get: ``names`` if given, else ``prefix`` + defaults."""
    if o.get("names") is not None:
        return tuple(o["names"])
    return tuple(o.get("prefix", "") + n for n in default_names(type_name, o))


def channels_for(spec) -> tuple[Channel, ...]:
    """The channels a part of the profile declares (``spec``: a profile PartSpec), in the
    order its ``read()`` returns them. Needs no hardware."""
    o, t = spec.options, spec.type
    names, rate = channel_names(t, o), float(o["rate_hz"])
    if t in ("mpu6050", "lsm6ds3"):
        g, dps = float(o["accel_range_g"]), float(o["gyro_range_dps"])
        units = [("g", g)] * 3 + [("dps", dps)] * 3
        return tuple(Channel(n, u, -r, r, "signed", rate) for n, (u, r) in zip(names, units, strict=True))
    if t == "ads1115":
        return tuple(Channel(n, "V", 0.0, min(fs, float(o["vdd"])), "linear", rate)
                     for n, (_, _, _, fs) in zip(names, ads_inputs(o), strict=True))
    if t in ("pir", "button", "reed_switch"):
        return (Channel(names[0], "on", 0.0, 1.0, "binary", rate),)
    if t == "sound_level":
        return (Channel(names[0], "dBFS", float(o["floor_db"]), 0.0, "linear", rate),)
    raise KeyError(f"{t!r} is not a channel part type (known: {', '.join(TYPES)})")


def is_channel_part(type_name: str) -> bool:
    return type_name in OPTIONS


def open_real(spec, bus: Callable[[int, str], Any], pin: Callable[[int], Any]):
    """Open the real driver for one channel part. ``bus(number, part)`` returns the shared
    smbus2 bus, ``pin(number)`` a :class:`lanthorn.hardware.gpio.Pin` (body.RealParts)."""
    o, t, name = spec.options, spec.type, spec.role
    chans = channels_for(spec)
    if t == "mpu6050":
        from .drivers.mpu6050 import MPU6050
        return MPU6050(bus(o["bus"], name), o["address"], o["accel_range_g"], o["gyro_range_dps"],
                       o["sample_rate_hz"], o["dlpf_hz"], channels=chans, name=name)
    if t == "lsm6ds3":
        from .drivers.lsm6ds3 import LSM6DS3
        return LSM6DS3(bus(o["bus"], name), o["address"], o["accel_range_g"], o["gyro_range_dps"],
                       o["sample_rate_hz"], channels=chans, name=name)
    if t == "ads1115":
        from .drivers.ads1115 import ADS1115
        ains = [(i, fs) for i, _, _, fs in ads_inputs(o)]
        return ADS1115(bus(o["bus"], name), o["address"], ains, o["data_rate"],
                       channels=chans, name=name)
    if t in ("pir", "button", "reed_switch"):
        from .drivers.digital_in import DigitalInput
        return DigitalInput(pin(o["pin"]), _pull(o), o["active_low"], o["debounce_ms"],
                            channels=chans, name=name)
    if t == "sound_level":
        from .drivers.sound_level import SoundLevel
        return SoundLevel(o["device"], o["samplerate"], o["block_ms"], o["floor_db"],
                          channels=chans, name=name)
    raise KeyError(f"{t!r} is not a channel part type (known: {', '.join(TYPES)})")


def _pull(o):
    return None if o["pull"] == "none" else o["pull"]


def open_sim(spec, scene, now: Callable[[], float] | None = None):
    """The simulated part for one channel part, reading ``scene`` (a sim.motion.Scene) at
    ``now()`` (default: the scene's own clock)."""
    from .sim.channel_parts import open_sim_part
    return open_sim_part(spec, channels_for(spec), scene, now or scene.now)
