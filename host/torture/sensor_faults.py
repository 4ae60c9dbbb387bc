"""Campaign 4, sensor faults: the device loop on the simulated body, on the simulator's
clock (faster than real time, exactly reproducible), with faults injected into every part.

Fault kinds, each an *episode* with a start and an end: ``io`` (the bus does not answer:
PartError), ``bug`` (the driver raises something else), ``garbage`` (the driver returns a
wrong type or an impossible value), ``zeros`` (an MPR121 replugged or browned out: reads
succeed with all-zero counts until the part is re-initialised), ``stuck`` (the same reading
for a few seconds, too short to be judged), ``held`` (a pad reads touched for longer than
``stuck_touch_s``: a drifted baseline or a shorted cable) and ``frozen`` (the distance frozen
to the bit for longer than ``stuck_frozen_s``), and ``hang`` (each call stretches the bus by
up to 25 ms). A part re-opened by the loop (the body's ``open_part``, as on real hardware)
is re-initialised.

Measured: no exception ever leaves ``step()``; every detectable episode shows as a failed
part within 1 s; every part is "ok" again within the retry interval after its episode
ends; touches keep reaching the light while other parts are failing; every held pad and
frozen distance is reported stuck within its threshold (+0.5 s) and no longer stuck within
the retry interval after its episode ends.
"""
from __future__ import annotations

import math
import random
import time

import numpy as np

from lanthorn.hardware.interfaces import PartError, TouchReading

KINDS = {
    "touch": ("io", "bug", "garbage", "zeros", "stuck", "held", "hang"),
    "distance": ("io", "bug", "garbage", "stuck", "frozen", "hang"),
    "light": ("io", "bug", "garbage", "stuck", "hang"),
    "leds": ("io", "bug", "hang"),
    "display": ("io", "bug"),
}
DETECTABLE = {"io", "bug", "garbage", "zeros"}
#: stuck episodes, seen by the stuck detector: (kind -> its threshold parameter)
STUCK = {"held": "stuck_touch_s", "frozen": "stuck_frozen_s"}
STUCK_PARAMS = {"stuck_touch_s": 8.0, "stuck_frozen_s": 5.0}  # short, for simulated time
METHOD = {"touch": "read", "distance": "read_mm", "light": "read_lux", "leds": "show",
          "display": "show"}


class Injector:
    """Faults for one part: wraps its method on the instance."""

    def __init__(self, role: str, part, clock, rng: random.Random):
        self.role, self.part, self.clock, self.rng = role, part, clock, rng
        self.kind: str | None = None
        self.until = -math.inf
        self.calls = self.faulted_calls = 0
        self.stopped = False  # "zeros": the chip is in stop mode until re-initialised
        self._last = None
        self._real = getattr(part, METHOD[role])
        setattr(part, METHOD[role], self.call)

    def start(self, kind: str, until: float) -> None:
        self.kind, self.until = kind, until
        self.pad = self.rng.randrange(12)
        if kind == "zeros":
            self.stopped = True

    def reinit(self) -> None:
        """What re-opening the part does: a chip in stop mode is configured again (only
        once it is plugged back in, i.e. after the episode)."""
        if self.clock() >= self.until:
            self.stopped = False

    def call(self, *args):
        self.calls += 1
        now = self.clock()
        active = self.kind if now < self.until else None
        if active is None and self.kind != "zeros":
            self.kind = None
        if active or self.stopped:
            self.faulted_calls += 1
        if active == "io":
            raise PartError(self.role, "no answer on the bus (injected)")
        if active == "bug":
            raise self.rng.choice([ValueError("bad register"), TypeError("NoneType"),
                                   RuntimeError("driver bug"), KeyError(3), ZeroDivisionError()])
        if active == "hang":
            self.clock.advance(self.rng.uniform(0.001, 0.025))
        if active == "garbage":
            return self.rng.choice(self._garbage())
        if self.stopped:
            z = np.zeros(12, np.uint16)
            return TouchReading(z, z.copy(), 0)
        if active == "stuck" and self._last is not None:
            return self._last
        if active == "frozen":
            return 412.0  # to the millimetre, while everything else moves
        if active == "held":
            r = self._real(*args)
            raw = r.raw.copy()
            raw[self.pad] = max(int(r.baseline[self.pad]) - 60, 0)
            return TouchReading(raw, r.baseline, r.touched | (1 << self.pad))
        value = self._real(*args)
        self._last = value
        return value

    def _garbage(self):
        if self.role == "touch":
            return [None, "pads", np.zeros(5), TouchReading(np.zeros(3, np.uint16),
                                                            np.zeros(3, np.uint16), 0), 42]
        junk = ["far", float("nan"), -5.0, np.array([1.0, 2.0]), float("inf"), [], {}]
        # (None is a real answer of a ranger: nobody in range; of a light sensor it is junk)
        return junk if self.role == "distance" else junk + [None]


class FaultBody:
    """Wraps a simulated body so the loop re-opens (re-initialises) failed parts, as it
    does on real hardware."""

    def __init__(self, body, injectors: dict[str, Injector]):
        self._body, self.injectors = body, injectors

    def __getattr__(self, name):
        return getattr(self._body, name)

    def open_part(self, role: str):
        inj = self.injectors.get(role)
        if inj is not None:
            inj.reinit()
        return getattr(self._body, role)


def run(budget: dict, seed: int = 4) -> dict:
    """Inject ``budget["episodes"]`` fault episodes into the parts of a simulated piece,
    stepping its loop on a simulated clock, and measure detection and recovery."""
    campaign = _Campaign(seed, budget["episodes"])
    try:
        while campaign.unfinished():
            campaign.inject()
            if not campaign.step():
                break
            campaign.watch(campaign.clock())
    finally:
        campaign.loop.shutdown()
        campaign.body.close()
    return campaign.figures()


class _Campaign:
    """The piece under test, its injectors, and what is waiting to be seen: a fault not yet
    detected (pending_detect) or a part not yet recovered (pending_recover)."""

    def __init__(self, seed: int, target: int):
        from lanthorn.device.engine.runtime import load
        from lanthorn.device.piece.params import ParamStore
        from lanthorn.device.piece.piece import Piece
        from lanthorn.device.storage.storage import SHIPPED_MODEL
        from lanthorn.hardware.body import open_body
        from lanthorn.hardware.profile import load_profile

        self.rng = rng = random.Random(seed)
        self.body = open_body(load_profile("sim"), sim=True, seed=seed, realtime=False)
        self.clock = clock = self.body.clock
        self.injectors = {role: Injector(role, getattr(self.body, role), clock, rng) for role in KINDS}
        params = ParamStore()
        for name, value in STUCK_PARAMS.items():
            params.set(name, value)
        self.loop = Piece(FaultBody(self.body, self.injectors), params=params,
                          model=load(str(SHIPPED_MODEL)), clock=clock, charge_compute=False,
                          oled_thread=False, minute_of_day=lambda: 720, seed=seed)
        self.retry = self.loop.RETRY_S
        self.loop.start()
        self.target = target
        self.episodes = {role: 0 for role in KINDS}
        self.by_kind: dict[str, int] = {}
        self.pending_detect: dict[str, tuple[float, str, int]] = {}
        self.pending_recover: dict[str, float] = {}
        self.pending_stuck: dict[str, tuple[float, float]] = {}   # role -> (start, threshold)
        self.pending_unstuck: dict[str, float] = {}               # role -> episode end
        self.stuck_detect_s, self.stuck_recover_s = [], []
        self.next_fault = {role: clock() + rng.uniform(0.5, 3.0) for role in KINDS}
        self.detect_s, self.detect_display, self.recover_s, self.failures = [], [], [], []
        self.crashes = self.lat_before = self.touches_while_others_failed = 0
        self.t0_wall = time.monotonic()

    def unfinished(self) -> bool:
        return bool(sum(self.episodes.values()) < self.target or self.pending_recover
                    or self.pending_detect or self.pending_stuck or self.pending_unstuck)

    def inject(self) -> None:
        """Start a fault on each part whose next episode is due and that has recovered."""
        now, rng = self.clock(), self.rng
        for role, inj in self.injectors.items():
            if now >= self.next_fault[role] and sum(self.episodes.values()) < self.target and \
                    role not in self.pending_recover and role not in self.pending_detect and \
                    role not in self.pending_stuck and role not in self.pending_unstuck:
                kind = rng.choice(KINDS[role])
                length = rng.choice([0.05, 0.2, 0.5, 1.5, 4.0])
                if kind in STUCK:  # longer than the part may plausibly be still
                    threshold = STUCK_PARAMS[STUCK[kind]]
                    length = threshold + rng.uniform(1.0, 6.0)
                    self.pending_stuck[role] = (now, threshold)
                inj.start(kind, now + length)
                self.episodes[role] += 1
                self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
                if kind in DETECTABLE:
                    self.pending_detect[role] = (now, kind, inj.faulted_calls)
                # the next episode on this part only after it had time to recover
                self.next_fault[role] = now + length + self.retry + rng.uniform(0.5, 2.0)

    def step(self) -> bool:
        """One loop step at its next due time; False once it has crashed too often to go on."""
        clock = self.clock
        clock.set(max(clock(), self.loop.next_due()))
        try:
            self.loop.step()
        except Exception as exc:  # the finding this campaign exists for
            self.crashes += 1
            self.failures.append(f"step() raised {type(exc).__name__}: {exc} at t={clock():.2f}")
            if self.crashes > 20:
                return False
        return True

    def watch(self, now: float) -> None:
        self._watch_detection(now)
        self._watch_recovery(now)
        self._watch_stuck(now)
        health, latency = self.loop.health, self.loop.latency_ms
        if latency.n > self.lat_before:
            self.lat_before = latency.n
            if health.get("touch") == "ok" and any(
                    health.get(r) != "ok" for r in ("distance", "light", "leds", "display")):
                self.touches_while_others_failed += 1

    def _watch_detection(self, now: float) -> None:
        health = self.loop.health
        for role, (t_start, kind, calls0) in list(self.pending_detect.items()):
            inj = self.injectors[role]
            if health.get(role, "ok") != "ok":
                # from the first faulty call: the display is drawn only when its text changes
                (self.detect_display if role == "display" else self.detect_s).append(now - t_start)
                del self.pending_detect[role]
                self.pending_recover[role] = inj.until
            elif inj.faulted_calls == calls0 and now >= inj.until:
                del self.pending_detect[role]  # over before the part was used: nothing to see
            elif now - t_start > 1.0 and role != "display":
                self.failures.append(f"{role} {kind} fault at t={t_start:.2f} not detected within 1 s")
                del self.pending_detect[role]
                self.pending_recover[role] = inj.until
            elif now - t_start > 60.0:
                self.failures.append(f"{role} {kind} fault at t={t_start:.2f} never detected")
                del self.pending_detect[role]

    def _watch_recovery(self, now: float) -> None:
        health = self.loop.health
        for role, t_end in list(self.pending_recover.items()):
            if now >= t_end and health.get(role, "ok") == "ok":
                self.recover_s.append(now - t_end)
                del self.pending_recover[role]
            elif now - t_end > self.retry + 1.0:
                self.failures.append(f"{role} not ok {now - t_end:.1f} s after its fault ended "
                                     f"(health: {health.get(role)})")
                del self.pending_recover[role]

    def _watch_stuck(self, now: float) -> None:
        """A held pad or frozen distance: reported stuck within its threshold, and no longer
        stuck within the retry interval once the episode is over."""
        stuck = self.loop.parts.stuck_now
        for role, (t_start, threshold) in list(self.pending_stuck.items()):
            if role in stuck:
                self.stuck_detect_s.append(now - t_start)
                if now - t_start > threshold + 0.5:
                    self.failures.append(f"{role} stuck at t={t_start:.2f} reported only after "
                                         f"{now - t_start:.2f} s (threshold {threshold:g} s)")
                del self.pending_stuck[role]
                self.pending_unstuck[role] = self.injectors[role].until
            elif now - t_start > threshold + 1.0:
                self.failures.append(f"{role} stuck at t={t_start:.2f} not reported within "
                                     f"{threshold:g} s + 1 s")
                del self.pending_stuck[role]
        for role, t_end in list(self.pending_unstuck.items()):
            if now >= t_end and role not in stuck:
                self.stuck_recover_s.append(now - t_end)
                del self.pending_unstuck[role]
            elif now - t_end > self.retry + 1.0:
                self.failures.append(f"{role} still stuck {now - t_end:.1f} s after its "
                                     "episode ended")
                del self.pending_unstuck[role]

    def figures(self) -> dict:
        loop = self.loop

        def worst(xs):
            return round(max(xs), 3) if xs else None
        return {"fault_episodes": sum(self.episodes.values()), "episodes_by_part": self.episodes,
                "episodes_by_kind": self.by_kind,
                "faulted_calls": sum(i.faulted_calls for i in self.injectors.values()),
                "simulated_s": round(self.clock() - loop.t_start, 1), "crashes": self.crashes,
                "detect_s_max": worst(self.detect_s), "display_detect_s_max": worst(self.detect_display),
                "recover_s_max": worst(self.recover_s), "retry_interval_s": self.retry,
                "touch_to_light_ms": loop.latency_ms.summary(),
                "touches_lit_while_other_parts_failed": self.touches_while_others_failed,
                "stuck_episodes": len(self.stuck_detect_s),
                "stuck_reported": loop.parts.stuck_episodes,
                "stuck_detect_s_max": worst(self.stuck_detect_s),
                "stuck_recover_s_max": worst(self.stuck_recover_s),
                "stuck_thresholds_s": STUCK_PARAMS,
                "frames": loop.frames_shown, "wall_s": round(time.monotonic() - self.t0_wall, 1),
                "failures": self.failures}
