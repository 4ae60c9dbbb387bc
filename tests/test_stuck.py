"""Stuck sensors: a pad held "touched" for minutes and a distance frozen to the bit while
the rest moves are reported once, handled (re-initialised, imputed) and their recovery
reported; a still room and a brief touch are not stuck."""
from __future__ import annotations

import numpy as np

from lanthorn.device.piece.frames import CHANNELS, N_PADS
from lanthorn.device.piece.params import ParamStore
from lanthorn.device.piece.piece import Piece
from lanthorn.device.piece.stuck import StuckDetector
from lanthorn.device.storage.storage import DataDir
from lanthorn.hardware.interfaces import TouchReading
from lanthorn.hardware.profile import load_profile
from lanthorn.hardware.sim import SimClock, open_sim_body


def detector(kinds, rest=None, active=None):
    n = len(kinds)
    events = []
    det = StuckDetector([f"c{i}" for i in range(n)], [f"p{i // 2}" for i in range(n)], kinds,
                        rest or [0.0] * n, active or [0.5] * n,
                        on_stuck=lambda part, names, why: events.append(("stuck", part, names, why)),
                        on_recovered=lambda part, names: events.append(("recovered", part, names)))
    return det, events


def test_a_channel_held_on_past_its_limit_is_stuck_once_imputed_and_recovers():
    det, events = detector(["held", "held"])
    rng = np.random.default_rng(0)
    t = 0.0
    for _ in range(1000):  # 10 s at 100 Hz: c0 held at 0.8 (with noise), c1 at rest
        v = np.array([0.8 + rng.normal(0, 0.01), 0.0], np.float32)
        det.check(v, t, held_s=5.0, frozen_s=60.0)
        t += 0.01
        if events:
            break
    assert events == [("stuck", "p0", ["c0"], "c0 held on for more than 5 s")]
    assert 5.0 < t <= 5.02 and v[0] == 0.0     # reported at its threshold, imputed as rest
    for _ in range(300):  # still held: reported once, not every sample
        det.check(np.array([0.8, 0.0], np.float32), t, 5.0, 60.0)
        t += 0.01
    assert len(events) == 1
    det.check(np.array([0.1, 0.0], np.float32), t, 5.0, 60.0)  # it lets go
    assert events[-1] == ("recovered", "p0", ["c0"]) and not det.stuck.any()


def test_a_brief_touch_is_not_stuck():
    det, events = detector(["held"])
    for i in range(2000):
        v = np.array([0.9 if (i // 100) % 2 else 0.0], np.float32)  # 1 s on, 1 s off
        det.check(v, i * 0.01, 5.0, 60.0)
    assert events == []


def test_frozen_while_others_move_is_stuck_a_still_room_is_not():
    det, events = detector(["frozen", "frozen", None])
    for i in range(1000):  # c0 frozen at 0.4; nothing else moves: a still room
        det.check(np.array([0.4, 0.2, 0.3], np.float32), i * 0.01, 120.0, 3.0)
    assert events == []
    det2, events2 = detector(["frozen", "frozen", None])
    for i in range(1000):  # c0 frozen while c2 (not judged itself) moves
        det2.check(np.array([0.4, 0.0, (i % 7) / 7], np.float32), i * 0.01, 120.0, 3.0)
    assert [e[:3] for e in events2] == [("stuck", "p0", ["c0"])]
    assert "frozen at one value for more than 3 s" in events2[0][3]
    det2.check(np.array([0.41, 0.0, 0.5], np.float32), 10.0, 120.0, 3.0)
    assert events2[-1] == ("recovered", "p0", ["c0"])


def test_the_rest_value_is_never_stuck():
    det, events = detector(["frozen", None], rest=[0.0, 0.0])
    for i in range(1000):  # nothing in range, for ever, while the light moves
        det.check(np.array([0.0, (i % 5) / 5], np.float32), i * 0.01, 120.0, 2.0)
    assert events == []


# --- the piece on the simulated body -------------------------------------------------

class StuckPad:
    """An MPR121 whose pad 3 reads touched (drifted baseline) until it is re-baselined,
    i.e. re-opened, after ``fixed_after`` (a cable short lasts; a drift is cured at once)."""

    def __init__(self, touch, clock, fixed_after=0.0):
        self.touch, self.clock, self.fixed_after = touch, clock, fixed_after
        self.on, self.reopened = False, 0

    def read(self):
        r = self.touch.read()
        if not self.on:
            return r
        raw = r.raw.copy()
        raw[3] = max(int(r.baseline[3]) - 60, 0)
        return TouchReading(raw, r.baseline, r.touched | (1 << 3))

    def __getattr__(self, name):
        return getattr(self.touch, name)


class FrozenRanger:
    def __init__(self, ranger):
        self.ranger, self.on = ranger, False

    def read_mm(self):
        return 412.0 if self.on else self.ranger.read_mm()

    def __getattr__(self, name):
        return getattr(self.ranger, name)


class Body:
    """The simulated body, with a stuck pad and a frozen ranger that a re-open cures
    (once ``cured`` says the fault is over), as re-baselining cures a drifted MPR121."""

    def __init__(self, seed=1):
        self.sim = open_sim_body(load_profile("sim"), seed=seed, clock=SimClock())
        self.clock = self.sim.clock
        self.touch = StuckPad(self.sim.touch, self.clock)
        self.distance = FrozenRanger(self.sim.distance)
        self.reopened: list[str] = []
        self.cured = False

    def open_part(self, role):
        self.reopened.append(role)
        if self.cured:
            getattr(self, role).on = False
        return getattr(self, role)

    def __getattr__(self, name):
        return getattr(self.sim, name)


def _piece(tmp_path, **params):
    body = Body()
    store = ParamStore()
    for k, v in params.items():
        store.set(k, v)
    piece = Piece(body, params=store, storage=DataDir(tmp_path, shipped_model=None),
                  clock=body.clock, charge_compute=False, oled_thread=False, voice_thread=False)
    return body, piece


def _until(piece, cond, limit_s):
    """Step the piece on its simulated clock until ``cond()`` (or ``limit_s``); the time it took."""
    clock = piece.clock
    t0 = clock()
    while not cond() and clock() - t0 < limit_s:
        clock.set(max(clock(), piece.next_due()))
        piece.step()
    return clock() - t0


def _start(piece, seconds=1.0):
    piece.start()
    _until(piece, lambda: False, seconds)


def test_a_stuck_pad_is_reported_within_its_threshold_handled_and_recovered(tmp_path):
    body, piece = _piece(tmp_path, stuck_touch_s=10.0)
    _start(piece)
    body.touch.on = True
    took = _until(piece, lambda: piece.parts.stuck_now, 30.0)
    assert 10.0 <= took <= 10.5, took
    st = piece.status()["sensors"]["touch"]
    assert st == "stuck: pad3 held on for more than 10 s"
    assert body.reopened == ["touch"]                      # re-baselined (soft reset, re-init)
    assert float(piece.sampler.sample[3]) == 0.0           # imputed: nobody is touching it
    body.touch.on = False                                  # the short ends
    _until(piece, lambda: not piece.parts.stuck_now, 5.0)
    assert piece.status()["sensors"]["touch"] == "ok"
    piece.faults.flush()
    log = [(e["part"], e["what"]) for e in piece.faults.entries()]
    assert log == [("touch", "stuck"), ("touch", "recovered")]
    said = [m for m in piece.messages if "stuck" in m]
    assert len(said) == 2 and "re-initialising" in said[0] and "no longer stuck" in said[1]


def test_a_frozen_distance_is_reported_and_recovered_after_a_reinit(tmp_path):
    body, piece = _piece(tmp_path, stuck_frozen_s=5.0)
    body.cured = True                       # a re-initialisation cures it
    _start(piece)
    body.distance.on = True
    took = _until(piece, lambda: not body.reopened == [], 30.0)
    assert 5.0 <= took <= 5.6, took
    assert body.reopened == ["distance"]
    _until(piece, lambda: not piece.parts.stuck_now, 5.0)
    piece.faults.flush()
    log = [(e["part"], e["what"], e["detail"]) for e in piece.faults.entries()]
    assert log[0][:2] == ("distance", "stuck") and "frozen at one value" in log[0][2]
    assert log[1][:2] == ("distance", "recovered")


def test_the_simulated_gallery_has_no_stuck_sensor_for_a_while(tmp_path):
    """False alarms: two simulated minutes of visitors, at thresholds far below the defaults."""
    body, piece = _piece(tmp_path, stuck_touch_s=10.0, stuck_frozen_s=5.0)
    _start(piece, 120.0)
    assert piece.parts.stuck_episodes == 0 and piece.faults.entries() == []
    assert CHANNELS[N_PADS] == "distance"
