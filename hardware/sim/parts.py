"""Virtual parts: the part interfaces backed by the simulated visitor, on an injectable clock.

``open_sim_body(profile=None, seed=0, script=None, clock=None, realtime=True, failures=None)``
returns a :class:`SimBody`. Its sensors read the visitor at the clock's current time (seconds
since the body was opened); its LEDs and display keep what they were last sent, so a
renderer or a test can look at them.

* ``clock``: any zero-argument callable returning seconds. Default: ``time.monotonic`` when
  ``realtime``, else a :class:`SimClock` that only moves when told (``body.clock.advance``),
  so tests and the demo run faster than real time and are deterministic.
* ``script``: ``[(start_s, gesture, options), ...]`` (see :func:`.visitor.script_segments`),
  or None for an endless visitor touring every gesture.
* ``failures``: ``{"touch": 3.0, ...}`` makes that part raise
  :class:`~lanthorn.hardware.interfaces.PartError` from 3 s on; or call
  ``body.touch.fail_after(3.0, until=5.0)`` for an intermittent fault. The device loop
  must keep the piece running through exactly this.
* ``body.press(pad)`` / ``body.release(pad)``: a hand on the ring (the live window's mouse).

The profile (``lanthorn.hardware.profile.Profile``, e.g. ``load_profile("sim")``) supplies
the LED count, brightness and power cap, the touch thresholds, the distance range and the
display size; parts the profile leaves out are None in the body, as on a real object.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from lanthorn.vocabulary import ROLES

from ..interfaces import Body, Display, DistanceSensor, LedStrip, LightSensor, PartError, TouchReading, TouchSensor
from .gestures import SimError
from .physics import N_PADS, RANGER_MAX_MM, RELEASE_THRESHOLD, TOUCH_THRESHOLD
from .visitor import World

if TYPE_CHECKING:  # annotations only: both import this module's neighbours lazily
    from .body_visitor import BodyVisitor
    from .motion import Scene


class SimClock:
    """A clock for simulated time: starts at ``start`` and moves only by :meth:`advance`."""

    def __init__(self, start: float = 0.0):
        self.t = float(start)

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        if dt < 0:
            raise ValueError(f"time cannot go backwards (advance by {dt})")
        self.t += float(dt)
        return self.t

    def set(self, t: float) -> None:
        if t < self.t:
            raise ValueError(f"time cannot go backwards ({t} < {self.t})")
        self.t = float(t)


class _Faults:
    """Failure injection shared by every simulated part: fail from ``t`` (until ``until``)."""

    name: str  # every part that mixes this in has one (interfaces.Part)

    def _init_faults(self, now) -> None:
        self._now = now
        self._faults: list[tuple[float, float, str]] = []

    def fail_after(self, t: float, until: float | None = None,
                   message: str = "no answer on the bus (simulated fault)") -> None:
        """From simulated time ``t`` (s since open) on, every access raises PartError."""
        self._faults.append((float(t), float("inf") if until is None else float(until), message))

    def heal(self) -> None:
        """Remove all injected faults."""
        self._faults.clear()

    def _check(self) -> None:
        now = self._now()
        for start, until, message in self._faults:
            if start <= now < until:
                raise PartError(self.name, f"{message} at t={now:.2f} s")


class SimTouch(_Faults, TouchSensor):
    """12 simulated MPR121 electrodes around the ring."""

    def __init__(self, world: World, now, name: str = "touch"):
        self.name, self.world, self.n_pads = name, world, N_PADS
        self.last_reading: TouchReading | None = None  # for the renderer's lit pads
        self._init_faults(now)

    def read(self) -> TouchReading:
        self._check()
        raw, base, touched = self.world.read_touch(self._now())
        self.last_reading = TouchReading(raw, base, touched)
        return self.last_reading


class SimDistance(_Faults, DistanceSensor):
    """A simulated VL53L0X looking out from the object at whoever comes close."""

    def __init__(self, world: World, now, name: str = "distance", max_range_mm: float = RANGER_MAX_MM):
        self.name, self.world, self.max_range_mm = name, world, float(max_range_mm)
        self._init_faults(now)

    def read_mm(self) -> float | None:
        self._check()
        return self.world.read_distance(self._now())


class SimLight(_Faults, LightSensor):
    """A simulated ambient light sensor, shadowed by the visitor's body and hand."""

    def __init__(self, world: World, now, name: str = "light"):
        self.name, self.world = name, world
        self._init_faults(now)

    def read_lux(self) -> float:
        self._check()
        return self.world.read_lux(self._now())


class SimLeds(_Faults, LedStrip):
    """A virtual LED ring: keeps the last (limited) frame for the renderer; counts frames."""

    def __init__(self, n_pixels: int, now, brightness: float = 1.0,
                 power_cap_ma: float | None = None, name: str = "leds"):
        super().__init__(n_pixels, brightness, power_cap_ma)
        self.name = name
        self.frames_shown = 0
        self._init_faults(now)

    def _write(self, frame: np.ndarray) -> None:
        self._check()
        self.frames_shown += 1


class SimDisplay(_Faults, Display):
    """A virtual 128x64 1-bit OLED behind luma's device API (``luma.core.device.dummy``).

    The real SSD1306 backend hands images to a luma.oled device; this one hands them to
    luma's dummy device, which keeps the displayed image (``.image``) exactly as a luma
    device would have received it (after luma's rotation/preprocessing).
    """

    def __init__(self, now, width: int = 128, height: int = 64, name: str = "display"):
        self.name, self.width, self.height = name, int(width), int(height)
        self._device = None
        self.frames_shown = 0
        self._init_faults(now)

    @property
    def device(self):
        """The luma device (created on first use: luma is imported only when needed)."""
        if self._device is None:
            from luma.core.device import dummy
            self._device = dummy(width=self.width, height=self.height, mode="1")
        return self._device

    @property
    def image(self):
        """The last displayed mode-"1" PIL image, or None before the first frame."""
        return None if self._device is None else self._device.image

    def _write(self, image) -> None:
        self._check()
        self.device.display(image)
        self.frames_shown += 1


@dataclass
class SimBody(Body):
    """A Body whose parts are simulated, plus the visitor's world and the clock."""

    world: World | None = field(default=None, repr=False)
    clock: Callable[[], float] | None = None
    t0: float = 0.0
    #: the motion scene its channel parts read and the visitor who handles it (None for a
    #: body with only the classic parts)
    scene: Scene | None = field(default=None, repr=False)
    visitor: BodyVisitor | None = field(default=None, repr=False)

    def now(self) -> float:
        """Seconds since the body was opened, on its clock."""
        assert self.clock is not None, "open_sim_body gives the body its clock"
        return float(self.clock()) - self.t0

    @property
    def _world(self) -> World:
        assert self.world is not None, "open_sim_body gives the body its visitor's world"
        return self.world

    def gesture_at(self, t: float | None = None) -> str:
        """What the scripted visitor is doing at ``t`` (default: now) -- the honest label:
        the handling visitor's gesture on a body with channel parts, else the ring's."""
        t = self.now() if t is None else t
        if self.visitor is not None:
            gesture = self.visitor.gesture_at(t)
            if gesture != "nobody" or self.touch is None:
                return gesture
        return self._world.gesture_at(t)

    def press(self, pad: int, strength: float = 1.0) -> None:
        """Put a fingertip on pad ``pad`` (held until released)."""
        self._world.press(pad, strength)

    def touch_at(self, angle: float | None, palm: bool = False) -> None:
        """A fingertip (or palm) at ``angle`` (rad, clockwise from pad 0) -- the mouse in the
        live window; None lifts it."""
        self._world.touch_at(angle, palm)

    def release(self, pad: int | None = None) -> None:
        """Lift the finger from ``pad``, or from every pad."""
        self._world.release(pad)


def _opt(spec, key, default):
    if spec is None:
        return default
    value = spec.get(key, default) if hasattr(spec, "get") else getattr(spec, key, default)
    return default if value is None else value


def open_sim_body(profile=None, seed: int = 0, script=None, clock=None, realtime: bool = True,
                  failures: dict | None = None, gestures=None) -> SimBody:
    """Open the simulated object. See the module docstring."""
    if clock is None:
        clock = time.monotonic if realtime else SimClock()
    elif not callable(clock):
        raise SimError(f"clock must be a callable returning seconds, got {clock!r}")
    parts = getattr(profile, "parts", None)
    present = set(ROLES) if profile is None else {r for r in ROLES if parts and r in parts}
    spec = {r: (parts.get(r) if parts else None) for r in ROLES}
    script, gestures, body_script, body_only = _split_visit(profile, script, gestures)

    world = World(seed, script, gestures,
                  touch_threshold=_opt(spec["touch"], "touch_threshold", TOUCH_THRESHOLD),
                  release_threshold=_opt(spec["touch"], "release_threshold", RELEASE_THRESHOLD),
                  max_range_mm=_opt(spec["distance"], "max_range_mm", RANGER_MAX_MM))
    body = SimBody(world=world, clock=clock, t0=float(clock()), profile=profile)
    now = body.now
    if "touch" in present:
        body.touch = SimTouch(world, now)
    if "distance" in present:
        body.distance = SimDistance(world, now, max_range_mm=world.sensors.ranger.max_range_mm)
    if "light" in present:
        body.light = SimLight(world, now)
    if "leds" in present:
        body.leds = SimLeds(int(_opt(spec["leds"], "count", 24)), now,
                            brightness=float(_opt(spec["leds"], "brightness", 1.0)),
                            power_cap_ma=getattr(profile, "led_cap_ma", None))
    if "display" in present:
        body.display = SimDisplay(now, _opt(spec["display"], "width", 128),
                                  _opt(spec["display"], "height", 64))
    _open_channel_parts(body, profile, seed, body_script, body_only)
    for role, t in (failures or {}).items():
        part = body.part(role)
        if part is None:
            raise SimError(f"cannot inject a failure into {role!r}: the body has "
                           f"{', '.join(body.parts()) or 'no parts'}")
        assert isinstance(part, _Faults), "every simulated part mixes in _Faults"
        part.fail_after(float(t))
    return body


def _channel_specs(profile) -> list:
    from ..profile import channel_types
    kinds = channel_types()
    return [spec for spec in getattr(profile, "parts", {}).values() if spec.type in kinds]


def _split_visit(profile, script, gestures):
    """(ring script, ring gestures, body script, body gestures): a body with channel parts
    and no pads gives the whole visit to the handling visitor (the ring's stays away); with
    both, each visitor takes the gestures only it knows."""
    from .body_visitor import BODY_GESTURES
    from .gestures import GESTURES, TEACHABLE_GESTURES
    if not _channel_specs(profile):
        return script, gestures, None, None
    ring = set(GESTURES + TEACHABLE_GESTURES)
    if "touch" not in getattr(profile, "parts", {}):
        return [], None, script, gestures
    ring_only = [e for e in script if e[1] in ring] if script is not None else None
    body_only = [e for e in script if e[1] not in ring] if script is not None else None
    g_ring = [g for g in gestures if g in ring] if gestures else None
    g_body = [g for g in gestures if g in BODY_GESTURES and g not in ring] if gestures else None
    return ring_only, g_ring or None, body_only, g_body or None


def _open_channel_parts(body: SimBody, profile, seed: int, script, only) -> None:
    """The body's channel parts (IMU, ADC, PIR, button...) on a motion scene that a
    :class:`~.body_visitor.BodyVisitor` acts on; each part reads the scene at the body's
    time, the visitor planning ahead of it."""
    specs = _channel_specs(profile)
    if not specs:
        return
    from ..channel_parts import open_sim
    from .body_visitor import BodyVisitor, body_gestures, pir_hold_s
    from .motion import Scene
    body.scene = scene = Scene(now=body.now, seed=seed)
    body.visitor = visitor = BodyVisitor(scene, body_gestures(profile), seed, script, only,
                                         hold_s=pir_hold_s(profile))

    def now() -> float:
        t = body.now()
        visitor.extend(t)
        return t

    for spec in specs:
        setattr(body, spec.role, open_sim(spec, scene, now))
