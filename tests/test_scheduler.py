"""The scheduler: fixed-rate tickers on one clock, resynchronising instead of bursting."""
from __future__ import annotations

import threading

import pytest

from lanthorn.device.piece.scheduler import Scheduler, Ticker
from lanthorn.hardware.sim import SimClock


def test_a_ticker_runs_at_its_rate_on_the_clock():
    t = Ticker(0.01)
    t.start(5.0)
    runs = [i / 1000 for i in range(5000, 5100) if t.due(i / 1000)]
    assert len(runs) == 10 and runs[0] == 5.0 and runs[1] == pytest.approx(5.01)


def test_a_ticker_that_fell_behind_resynchronises_instead_of_bursting():
    t = Ticker(0.01)
    t.start(0.0)
    assert t.due(0.0)
    assert t.due(1.0)           # a one-second stall: runs once ...
    assert not t.due(1.005)     # ... and not a hundred times to catch up
    assert t.next == pytest.approx(1.01)


def test_a_phase_delays_the_first_run():
    t = Ticker(0.04)
    t.start(2.0, phase=0.04)
    assert not t.due(2.0) and not t.due(2.039) and t.due(2.04)


@pytest.mark.parametrize("period", [0.0, -1.0, float("inf"), float("nan")])
def test_a_ticker_refuses_a_period_that_never_or_always_runs(period):
    with pytest.raises(ValueError, match="positive period"):
        Ticker(period)


def test_only_waking_tickers_decide_the_next_wake_up():
    s = Scheduler(SimClock())
    fast = s.every(0.01, wakes=True)
    slow = s.every(0.5, wakes=True)
    quiet = s.every(0.001)           # looked at when awake, never wakes the loop
    for t in (fast, slow, quiet):
        t.start(0.0)
    assert fast.due(0.0) and slow.due(0.0) and quiet.due(0.0)
    assert s.next_due() == pytest.approx(0.01)


def test_a_simulated_clock_jumps_to_the_wake_up_and_is_charged_compute():
    clock = SimClock()
    s = Scheduler(clock, charge_compute=True)
    assert s.simulated and s.charge_compute
    assert s.wait_until(3.0, threading.Event()) and clock() == 3.0
    import time
    t0 = time.perf_counter()
    sum(range(20000))
    s.charge(t0)
    assert clock() > 3.0              # the work's own time passed on the simulated clock


def test_without_charging_a_simulated_run_is_exactly_reproducible():
    clock = SimClock()
    s = Scheduler(clock, charge_compute=False)
    import time
    s.charge(time.perf_counter() - 1.0)
    assert clock() == 0.0


def test_a_real_clock_sleeps_and_a_stop_interrupts_the_wait():
    ticks = iter([0.0, 0.0])
    s = Scheduler(lambda: next(ticks, 0.0))
    assert not s.simulated and not s.charge_compute
    stop = threading.Event()
    stop.set()
    assert s.wait_until(60.0, stop) is False  # returns at once: asked to stop
