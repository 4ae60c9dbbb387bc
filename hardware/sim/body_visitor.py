"""The simulated visitor of a body that is not a ring of pads: lifts, tilts, shakes, knocks,
approaches, presses, turns the knob.

A :class:`BodyVisitor` plans a visit as labelled segments (the honest label interval: from
the first movement that belongs to the gesture to the last) and acts them out on the motion
:class:`~lanthorn.hardware.sim.motion.Scene` the simulated channel parts read (IMU, ADC,
PIR, button). It only performs what the body can sense (:func:`body_gestures`: an IMU feels
lift, tilt, shake and knock; a PIR sees an approach and a leave; a button is pressed; a
potentiometer is turned), someone walks up before handling the object when the body can see
them, and between gestures the visitor rests ("nobody", as the default piece's gaps are).

Endless (``script=None``) for ``lanthorn run --sim``: more of the visit is planned as the
clock goes on; or a script ``[(start_s, gesture, options), ...]`` for tests. Deterministic
given the seed.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from .gestures import SimError

#: Everything this visitor can do, in the label order a body's dataset uses.
BODY_GESTURES: tuple[str, ...] = ("nobody", "approach", "lift", "tilt", "shake", "knock",
                                  "press", "turn", "leave")
#: Gestures made with the object in hand (someone must be there).
HANDLING = ("lift", "tilt", "shake", "knock", "press", "turn")
#: The demo's first visit: walk up, every handling the body senses once in this order, leave.
TOUR = ("approach",) + HANDLING + ("leave",)
_IMU_TYPES = ("mpu6050", "lsm6ds3", "icm42688")


def pir_hold_s(profile) -> float:
    """How long the body's PIR keeps saying "someone" after they left (its hold time)."""
    holds = [float(s.options.get("hold_s") or 0.0) for s in getattr(profile, "parts", {}).values()
             if s.type == "pir"]
    return max(holds, default=0.0)


def body_gestures(profile) -> tuple[str, ...]:
    """The gestures a body's channel parts can sense, in :data:`BODY_GESTURES` order (just
    ``("nobody",)`` for a body with none of them)."""
    can = {"nobody"}
    for spec in getattr(profile, "parts", {}).values():
        t = spec.type
        if t in _IMU_TYPES:
            can |= {"lift", "tilt", "shake", "knock"}
        elif t == "pir":
            can |= {"approach", "leave"}
        elif t in ("button", "reed_switch"):
            can.add("press")
        elif t == "ads1115":
            kinds = spec.options.get("kinds") or []
            can |= {"turn"} if "potentiometer" in kinds else set()
            can |= {"knock"} if "piezo" in kinds else set()
    return tuple(g for g in BODY_GESTURES if g in can)


@dataclass(frozen=True)
class BodySegment:
    gesture: str
    start: float
    end: float


class _Act:
    """One gesture acted out on the scene from ``t``; returns its end (the label's)."""

    def __init__(self, scene, rng: np.random.Generator, hold_s: float = 0.0):
        self.scene, self.rng, self.hold_s = scene, rng, float(hold_s)

    def u(self, lo, hi) -> float:
        return float(self.rng.uniform(lo, hi))

    def nobody(self, t, opts):
        return t + float(opts.get("duration", self.u(0.6, 2.0)))

    def approach(self, t, opts):
        self.scene.approach(at=t + self.u(0.1, 0.4))
        return t + float(opts.get("duration", self.u(1.0, 1.6)))

    def leave(self, t, opts):
        """Walking out of the PIR's field (presence ends there); the gesture lasts until the
        PIR lets go after its hold time: that is when this body can know someone left."""
        gone = t + self.u(0.8, 1.4)
        self.scene.leave(at=gone)
        return gone + self.hold_s + float(opts.get("after", self.u(0.3, 0.6)))

    def lift(self, t, opts):
        up = self.u(0.5, 0.8)
        self.scene.lift(self.u(0.08, 0.2), up, at=t)
        down = t + up + self.u(0.4, 1.0)
        self.scene.put_down(up, at=down)
        return down + up

    def tilt(self, t, opts):
        move = self.u(0.4, 0.7)
        angle = self.u(0.3, 0.7) * (1 if self.rng.random() < 0.5 else -1)
        self.scene.tilt(angle, "x" if self.rng.random() < 0.5 else "y", move, at=t)
        back = t + move + self.u(0.3, 0.9)
        self.scene.level(move, at=back)
        return back + move

    def shake(self, t, opts):
        d = float(opts.get("duration", self.u(0.8, 1.4)))
        self.scene.shake(self.u(0.5, 1.2), d, self.u(4.0, 7.0), at=t)
        return t + d

    def knock(self, t, opts):
        n = int(self.rng.integers(1, 4))
        at = t
        for _ in range(n):
            self.scene.knock(self.u(1.5, 4.0), at=at)
            at += self.u(0.15, 0.3)
        return at + 0.1

    def press(self, t, opts):
        self.scene.press(at=t)
        up = t + float(opts.get("duration", self.u(0.3, 1.0)))
        self.scene.release(at=up)
        return up + 0.05

    def turn(self, t, opts):
        now = self.scene.knob_position(t)
        target = (now + self.u(0.3, 0.6)) % 1.0
        d = self.u(0.5, 1.0)
        self.scene.turn_knob(target, d, at=t)
        return t + d


class BodyVisitor:
    """Plans and acts a visit on ``scene`` (see the module docstring). ``gestures``: what
    the body senses (:func:`body_gestures`); ``only``: an endless visitor who performs just
    these (a demonstration to record)."""

    HORIZON_S = 5.0
    KEEP_S = 900.0

    def __init__(self, scene, gestures, seed: int = 0, script=None, only=None,
                 hold_s: float = 0.0):
        self.scene, self.gestures = scene, tuple(gestures)
        self.rng = np.random.default_rng([int(seed), 0xB0D1])
        self.act = _Act(scene, self.rng, hold_s)
        self.sees = "approach" in (only or self.gestures)
        self.present = not self.sees  # a body that cannot see arrivals: someone is always there
        choices = [g for g in (only or self.gestures) if g in HANDLING or g in ("approach", "leave")]
        bad = [g for g in (only or ()) if g not in self.gestures]
        if bad:
            raise SimError(f"this body cannot sense {', '.join(bad)} (it senses "
                           f"{', '.join(self.gestures)})")
        self.choices = choices if self.sees else [g for g in choices if g != "leave"]
        self.segments: list[BodySegment] = []
        self.endless = script is None
        # without ``only``, the endless visitor first tours every gesture (what the demo shows)
        self.tour = [g for g in TOUR if g in self.gestures and (self.sees or g in HANDLING)] \
            if only is None else []
        if script is not None:
            self._script(script)
        self._ends: list[float] = []

    def _add(self, gesture: str, t: float, opts=None) -> float:
        end = getattr(self.act, gesture)(t, opts or {})
        self.segments.append(BodySegment(gesture, t, end))
        if gesture == "approach":
            self.present = True
        elif gesture == "leave":
            self.present = False
        return end

    def _script(self, script) -> None:
        t = 0.0
        for entry in script:
            start, gesture, opts = (tuple(entry) + ({},))[:3]
            if gesture not in self.gestures:
                raise SimError(f"this body cannot sense {gesture!r} (it senses "
                               f"{', '.join(self.gestures)})")
            if float(start) < t:
                raise SimError(f"script gesture {gesture!r} at {start} s starts before the "
                               f"previous one ends ({t:.2f} s)")
            if float(start) > t:
                self.segments.append(BodySegment("nobody", t, float(start)))
            t = self._add(gesture, float(start), opts)

    def _more(self) -> None:
        t = self.segments[-1].end if self.segments else 0.0
        if self.tour:
            t = self._add("nobody", t, {"duration": self.act.u(0.4, 0.8)})
            self._add(self.tour.pop(0), t)
            return
        t = self._add("nobody", t)
        if not self.choices:
            return
        if not self.present:   # someone must come before anything else can happen
            pick = "approach"
        else:                  # at the object: handle it one way or another, or go
            here = [g for g in self.choices if g != "approach"] or ["nobody"]
            pick = here[int(self.rng.integers(len(here)))]
        self._add(pick, t)

    def extend(self, t: float) -> None:
        """Plan (and act on the scene) at least :data:`HORIZON_S` beyond ``t``."""
        if not self.endless:
            return
        grew = False
        while not self.segments or self.segments[-1].end <= t + self.HORIZON_S:
            self._more()
            grew = True
        if grew:
            old = bisect.bisect_left([s.end for s in self.segments], t - self.KEEP_S)
            del self.segments[:max(0, min(old, len(self.segments) - 4))]
            self._ends = [s.end for s in self.segments]

    def gesture_at(self, t: float) -> str:
        """The honest label at ``t``."""
        self.extend(t)
        if len(self._ends) != len(self.segments):
            self._ends = [s.end for s in self.segments]
        i = bisect.bisect_right(self._ends, t)
        if i >= len(self.segments) or self.segments[i].start > t:
            return "nobody"
        return self.segments[i].gesture

    def script_end(self) -> float:
        return self.segments[-1].end if self.segments else 0.0
