"""The gesture simulator offline: reproducible, physically plausible, honestly labelled."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from lanthorn.device.piece.frames import LABELS
from lanthorn.hardware.sim import GESTURES, TOUCH_GESTURES, SimError, session, simulate
from lanthorn.hardware.sim.physics import N_PADS, PAD_ANGLES, contact_coverage, crosstalk_matrix

FIELDS = ("t", "raw", "baseline", "touched", "distance_mm", "lux", "labels")


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=f == "distance_mm")
               for f in FIELDS)


@pytest.mark.parametrize("gesture", GESTURES)
def test_same_seed_same_readings_other_seed_differs(gesture):
    a, b = simulate(gesture, seed=11), simulate(gesture, seed=11)
    assert _same(a, b)
    c = simulate(gesture, seed=12)
    assert len(a) != len(c) or not np.array_equal(a.raw, c.raw)


def test_session_is_reproducible_and_seeds_differ():
    a, b = session(seed=3, duration_s=60.0), session(seed=3, duration_s=60.0)
    assert _same(a, b)
    assert not np.array_equal(a.raw, session(seed=4, duration_s=60.0).raw)


def test_trace_shapes_and_types():
    tr = simulate("hold", seed=0, rate_hz=50.0, duration_s=4.0)
    n = len(tr)
    assert n == 200 and tr.rate_hz == 50.0
    assert np.allclose(np.diff(tr.t), 1 / 50.0)
    assert tr.raw.shape == tr.baseline.shape == (n, N_PADS) and tr.raw.dtype == np.uint16
    assert tr.raw.max() <= 1023
    assert tr.touched.shape == (n,) and tr.touched.dtype == np.uint16
    assert tr.distance_mm.dtype == np.float32 and tr.lux.dtype == np.float32
    assert tr.delta().dtype == np.float32 and (tr.delta() >= 0).all()
    assert tr.labels.shape == (n,)
    idx = tr.label_indices(LABELS)
    assert idx.dtype == np.int64 and set(LABELS[i] for i in idx) == set(tr.labels)


def _centroid_angles(tr) -> np.ndarray:
    """Angle of the delta-weighted centroid of touched samples (complex mean over the ring)."""
    d = tr.delta().astype(np.float64)
    on = tr.touched != 0
    z = (d[on] * np.exp(1j * PAD_ANGLES)).sum(axis=1)
    return np.angle(z)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gesture,sign", [("stroke_cw", 1), ("stroke_ccw", -1)])
def test_stroke_moves_the_touch_around_the_ring(gesture, sign, seed):
    tr = simulate(gesture, seed=seed, arc_deg=180.0, speed=0.8)
    ang = np.unwrap(_centroid_angles(tr))
    assert len(ang) >= 5
    travel = ang[-1] - ang[0]
    assert sign * travel > math.radians(90), math.degrees(travel)
    steps = np.diff(ang)
    assert (sign * steps > -math.radians(10)).all()  # never runs noticeably backwards


@pytest.mark.parametrize("seed", range(6))
def test_tap_touches_one_region_briefly(seed):
    tr = simulate("tap", seed=seed, pad=4)
    tp = tr.touched_pads()
    on = tp.any(axis=1)
    assert on.any() and on.sum() / tr.rate_hz <= 0.35  # a tap lasts a fraction of a second
    pads = set(np.nonzero(tp.any(axis=0))[0])
    assert pads <= {3, 4, 5} and 4 in pads
    # all touched samples are inside the labelled tap
    assert (tr.labels[on] == "tap").all()


@pytest.mark.parametrize("seed", range(4))
def test_double_tap_is_two_touches(seed):
    tr = simulate("double_tap", seed=seed, pad=8, hand="large")
    on = (tr.touched != 0).astype(int)
    rises = np.count_nonzero(np.diff(on) == 1) + on[0]
    assert rises == 2


@pytest.mark.parametrize("seed", range(4))
def test_palm_touches_many_pads_and_shades_the_light(seed):
    tr = simulate("palm", seed=seed, hand="large")
    most = tr.touched_pads().sum(axis=1).max()
    assert most >= 3
    finger = simulate("hold", seed=seed, hand="large")
    assert finger.touched_pads().sum(axis=1).max() <= 2
    during = tr.lux[tr.touched_pads().sum(axis=1) >= 3]
    assert during.min() < 0.7 * np.median(tr.lux[:5])


@pytest.mark.parametrize("seed", range(4))
def test_hold_stays_on_one_pad_long(seed):
    tr = simulate("hold", seed=seed, pad=2)
    on = tr.touched_pads()
    assert on.any(axis=1).sum() / tr.rate_hz >= 0.8
    assert set(np.nonzero(on.any(axis=0))[0]) <= {1, 2, 3}


@pytest.mark.parametrize("seed", range(4))
def test_approach_comes_closer_and_leave_goes_away(seed):
    tr = simulate("approach", seed=seed, body_mm=250.0)
    d = tr.distance_mm
    assert np.isnan(d[0])  # nobody there before
    seen = d[np.isfinite(d)]
    assert seen[-1] < 350 and np.median(seen[:3]) > seen[-1] + 300
    assert (tr.labels == "approach").sum() > 10
    lv = simulate("leave", seed=seed, body_mm=250.0)
    assert lv.distance_mm[0] < 350 and np.isnan(lv.distance_mm[-1])
    assert (tr.touched == 0).all() and (lv.touched == 0).all()


def test_nobody_is_quiet():
    tr = simulate("nobody", seed=5, duration_s=30.0)
    assert (tr.touched == 0).all() and np.isnan(tr.distance_mm).all()
    assert (tr.labels == "nobody").all()
    # noise stays well under the touch threshold, and the chip's baseline tracks the drift
    assert tr.delta().max() < 6


def test_baseline_tracks_slow_drift_without_false_touches():
    tr = simulate("nobody", seed=9, duration_s=900.0, rate_hz=5.0)
    raw = tr.raw.astype(float)
    assert (raw.max(axis=0) - raw.min(axis=0)).max() >= 5  # the electrodes drift ...
    assert np.abs(tr.baseline.astype(float) - raw).max() < 10  # ... and the baseline follows
    assert (tr.touched == 0).all()


def test_labels_are_honest():
    """Label boundaries are the planned segments; touches happen only inside touch gestures."""
    tr = session(seed=21, duration_s=300.0)
    for seg in tr.segments:
        inside = (tr.t >= seg.start) & (tr.t < seg.end)
        assert (tr.labels[inside] == seg.gesture).all()
    on = tr.touched != 0
    assert set(np.unique(tr.labels[on])) <= set(TOUCH_GESTURES)
    # every touch gesture in the session shows up in the touch bits
    for seg in tr.segments:
        if seg.gesture in TOUCH_GESTURES and seg.end < tr.t[-1]:
            inside = (tr.t >= seg.start) & (tr.t < seg.end)
            assert on[inside].any(), seg
    # nobody in front of the sensor while the room is empty
    empty = [s for s in tr.segments if s.gesture == "nobody" and not s.present]
    assert empty
    for seg in empty:
        inside = (tr.t >= seg.start) & (tr.t < seg.end)
        assert np.isnan(tr.distance_mm[inside]).all()


def test_cut_short_gesture_keeps_honest_labels():
    full = simulate("hold", seed=2)
    short = simulate("hold", seed=2, duration_s=1.0)
    assert len(short) == 25
    assert np.array_equal(short.labels, full.labels[:25])


def test_session_gesture_choice():
    tr = session(seed=1, duration_s=200.0, gestures={"palm": 1.0, "tap": 0.0})
    names = {s.gesture for s in tr.segments}
    assert "palm" in names and "tap" not in names
    assert {"approach", "leave", "nobody"} <= names
    tr = session(seed=1, duration_s=100.0, gestures=["stroke_cw"])
    assert {s.gesture for s in tr.segments} - {"approach", "leave", "nobody"} == {"stroke_cw"}


def test_hand_size_changes_contact():
    small = simulate("palm", seed=4, hand="small", pad=0)
    large = simulate("palm", seed=4, hand="large", pad=0)
    assert large.delta().max() > small.delta().max()


def test_ten_minutes_is_fast():
    t0 = time.perf_counter()
    tr = session(seed=0, duration_s=600.0)
    elapsed = time.perf_counter() - t0
    assert len(tr) == 15000
    print(f"10 min of 25 Hz session: {elapsed:.2f} s")
    assert elapsed < 10.0  # generous: measured ~0.5 s; this only catches a pathological slowdown


@pytest.mark.parametrize("call,match", [
    (lambda: simulate("juggle"), "unknown gesture 'juggle'"),
    (lambda: simulate("tap", pad=12), "pad must be an integer 0..11"),
    (lambda: simulate("tap", hand="huge"), "unknown hand 'huge'"),
    (lambda: simulate("tap", colour="red"), "unknown option"),
    (lambda: simulate("tap", speed=0), "speed must be positive"),
    (lambda: simulate("hold", duration=-1), "duration must be positive"),
    (lambda: simulate("tap", rate_hz=0), "rate_hz must be a positive"),
    (lambda: session(duration_s=0), "duration_s must be positive"),
    (lambda: session(gestures={"tap": -1}), "at least one touch gesture"),
    (lambda: session(gestures=["approach"]), "at least one touch gesture"),
    (lambda: session(gestures=["jump"]), "unknown gesture 'jump'"),
    (lambda: simulate("tap").label_indices(("nobody",)), "not in the given label list"),
])
def test_bad_arguments_are_clear_errors(call, match):
    with pytest.raises(SimError, match=match):
        call()


def test_contact_geometry():
    # a fingertip centred on pad 3 covers only pad 3; halfway between 3 and 4 covers both
    cov = contact_coverage(np.array([PAD_ANGLES[3], (PAD_ANGLES[3] + PAD_ANGLES[4]) / 2]),
                           np.full(2, math.radians(10)), np.ones(2))
    assert cov[0, 3] == pytest.approx(1.0) and cov[0].sum() == pytest.approx(1.0)
    assert cov[1, 3] == pytest.approx(cov[1, 4]) and cov[1, 3] > 0.2
    # crosstalk falls off with ring distance and wraps around
    x = crosstalk_matrix(0.05)
    assert x[0, 0] == 1 and x[0, 1] == x[0, 11] == pytest.approx(0.05)
    assert x[0, 1] > x[0, 2] > x[0, 3]
