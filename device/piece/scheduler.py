"""Fixed-rate tasks on one clock: when the loop wakes, what is due, and how it waits.

The piece has a handful of periodic jobs (sample the sensors at 100 Hz, make a model frame
at the model's rate, draw the LEDs at 60 fps, read the slow ranger and light sensor at
their own pace, feed the watchdog, look at the quiet hours). Each is a :class:`Ticker`: a
period and the time it is next due. A ticker that fell far behind (a stall, a slow
frame) resynchronises to now instead of bursting to catch up, so a hiccup costs frames,
never a storm of them.

:class:`Scheduler` owns the one clock they all follow. With a real clock it sleeps until
the next wake-up; with the simulator's :class:`~lanthorn.hardware.sim.SimClock` (it has
``set``/``advance``) it jumps over idle time and, with ``charge_compute``, advances the clock
by the measured compute time of every task, so a 20 s demo runs in seconds yet reports this
machine's real frame times. Nothing here allocates per tick.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, Protocol, cast

#: slack for float time comparisons (a tick due at 0.03 is due at 0.0299999999)
EPS = 1e-9


class Ticker:
    """One fixed-rate task: ``due(now)`` says whether it runs now and, if so, schedules the
    next run one period later (or one period after now, when it fell behind)."""

    __slots__ = ("period", "next")

    def __init__(self, period: float):
        if not (period > 0 and math.isfinite(period)):
            raise ValueError(f"a ticker needs a positive period, not {period!r}")
        self.period = float(period)
        self.next = 0.0

    def start(self, now: float, phase: float = 0.0) -> None:
        """First due at ``now + phase``."""
        self.next = now + phase

    def due(self, now: float) -> bool:
        if now + EPS < self.next:
            return False
        self.next += self.period
        if self.next < now:  # fell far behind: resynchronise, do not burst
            self.next = now + self.period
        return True


class SimulatedClock(Protocol):
    """A clock the scheduler may move: ``hardware.sim``'s clocks have both methods."""

    def __call__(self) -> float: ...
    def set(self, t: float) -> None: ...
    def advance(self, dt: float) -> None: ...


class Scheduler:
    """The loop's clock and the tickers that wake it.

    ``clock``: zero-argument callable in seconds (default ``time.monotonic``); a clock with
    ``set`` and ``advance`` is simulated. ``charge_compute`` (simulated clocks only) lets the
    measured compute time pass on the clock."""

    def __init__(self, clock: Callable[[], float] | None = None, charge_compute: bool = True):
        self.clock = clock or time.monotonic
        self.simulated = hasattr(self.clock, "advance") and hasattr(self.clock, "set")
        self.charge_compute = charge_compute and self.simulated
        self._waking: list[Ticker] = []

    def every(self, period: float, wakes: bool = False) -> Ticker:
        """A new ticker; ``wakes``: the loop wakes up for it (the others are looked at
        whenever the loop is awake anyway)."""
        ticker = Ticker(period)
        if wakes:
            self._waking.append(ticker)
        return ticker

    def next_due(self) -> float:
        """When the loop must wake next."""
        return min(t.next for t in self._waking) if self._waking else math.inf

    def wait_until(self, due: float, stop: threading.Event) -> bool:
        """Let time pass until ``due``: jump a simulated clock, else sleep (interruptibly).
        Returns False when ``stop`` was set meanwhile."""
        if self.simulated:
            if due > self.clock():
                cast(SimulatedClock, self.clock).set(due)  # ``simulated`` checked both methods
            return not stop.is_set()
        wait = due - self.clock()
        return not (wait > 0 and stop.wait(wait))

    def charge(self, since: float) -> float:
        """Compute time since ``since`` (``perf_counter``); on a charged simulated clock it
        passes. Returns ``perf_counter()`` now, to chain measurements."""
        now = time.perf_counter()
        if self.charge_compute:
            cast(SimulatedClock, self.clock).advance(now - since)  # only simulated clocks charge
        return now
