"""The behaviour: mood with memory/hysteresis/decay, light, phrases, quiet hours, OLED text."""
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from lanthorn.device.piece import behaviour as bh
from lanthorn.device.piece.behaviour import (
    DEFAULT_MOODS,
    LightRenderer,
    MoodEngine,
    PhraseBank,
    light_level,
    quiet_now,
    render_oled,
    wrap_text,
)
from lanthorn.device.piece.frames import LABELS
from lanthorn.device.piece.params import IDLE_ANIMATIONS, MOODS, PALETTES, PARAMS, ParamStore

DT = 1 / 25


def params(**over):
    p = ParamStore().snapshot()
    p.update(over)
    return p


def onehot(label, p=0.9):
    v = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1), np.float32)
    v[LABELS.index(label)] = p
    return v


def feed(m, label, seconds, t0, p=0.9, **kw):
    probs = onehot(label, p)
    events, t = [], t0
    for _ in range(int(round(seconds / DT))):
        t += DT
        ev = m.observe(probs, t, **kw)
        if ev:
            events.append(ev)
    return events, t


# --- the table and the behaviour agree --------------------------------------------------

def test_behaviour_reads_only_declared_params():
    names = {p.name for p in PARAMS}
    for key in ("brightness", "palette", "speed", "confidence", "mood_decay_s", "hysteresis",
                "phrase_interval_s", "quiet_hours", "quiet_mode", "quiet_brightness",
                "idle_animation", *(f"phrases_{m}" for m in DEFAULT_MOODS)):
        assert key in names
    assert set(MOODS) == set(DEFAULT_MOODS)
    assert set(PALETTES) <= set(bh._PALETTE_HUES)


# --- mood ---------------------------------------------------------------------------------

def test_starts_calm_and_strokes_delight():
    m = MoodEngine(LABELS)
    assert m.mood == "calm"
    events, _ = feed(m, "stroke_cw", 2.0, 0.0)
    assert m.mood == "delighted"
    assert [e.label for e in events] == ["stroke_cw"]  # one event per onset, not per frame


def test_mood_decays_back_to_calm():
    m = MoodEngine(LABELS)
    _, t = feed(m, "stroke_cw", 2.0, 0.0, mood_decay_s=5.0)
    assert m.mood == "delighted"
    _, t = feed(m, "nobody", 3.0, t, mood_decay_s=5.0)
    assert m.mood == "delighted"  # memory: it does not forget at once
    _, t = feed(m, "nobody", 10.0, t, mood_decay_s=5.0)
    assert m.mood == "calm"


def test_unsure_model_does_not_move_mood():
    m = MoodEngine(LABELS)
    events, _ = feed(m, "palm", 5.0, 0.0, p=0.5)  # under the confidence threshold
    assert events == [] and m.mood == "calm" and m.gesture is None


def test_hysteresis_stops_flicker():
    """Two moods fed alternately in short bursts: with hysteresis it switches far less."""
    def switches(h):
        m = MoodEngine(LABELS)
        _, t = feed(m, "approach", 1.5, 0.0, hysteresis=h)
        n, last = 0, m.mood
        for i in range(40):
            _, t = feed(m, "stroke_cw" if i % 2 else "approach", 0.2, t, hysteresis=h)
            n += m.mood != last
            last = m.mood
        return n
    assert switches(0.4) < switches(0.0)
    assert switches(0.4) <= 2


def test_many_quick_touches_agitate():
    m = MoodEngine(LABELS)
    t = 0.0
    for _ in range(8):
        _, t = feed(m, "tap", 0.3, t)
        _, t = feed(m, "nobody", 0.7, t)
    assert m.mood == "agitated"


def test_model_changing_its_mind_mid_touch_is_one_touch():
    """A stroke the model keeps relabelling (stroke <-> double tap) is not a flurry."""
    m = MoodEngine(LABELS)
    t = 0.0
    for _ in range(4):
        _, t = feed(m, "nobody", 2.0, t)
        for _ in range(6):
            _, t = feed(m, "stroke_cw", 0.16, t)
            _, t = feed(m, "double_tap", 0.08, t)
    assert m.mood == "delighted"


def test_palm_makes_shy():
    m = MoodEngine(LABELS)
    feed(m, "palm", 2.0, 0.0)
    assert m.mood == "shy"


def test_other_labels_and_empty_model():
    m = MoodEngine(("yes", "no"))
    events, _ = feed_generic(m, np.array([0.95, 0.05], np.float32), 1.0)
    assert [e.label for e in events] == ["yes"] and m.mood == "calm"  # evokes nothing known
    m.set_labels(())
    m.observe(np.zeros(0, np.float32), 5.0)
    assert m.mood == "calm"


def feed_generic(m, probs, seconds, t=0.0):
    events = []
    for _ in range(int(seconds / DT)):
        t += DT
        ev = m.observe(probs, t)
        if ev:
            events.append(ev)
    return events, t


def test_observe_does_not_allocate_in_steady_state():
    m = MoodEngine(LABELS)
    probs = onehot("hold")
    t = 0.0
    for _ in range(50):
        t += DT
        m.observe(probs, t)
    tracemalloc.start()
    try:
        snap0 = tracemalloc.take_snapshot()
        for _ in range(500):
            t += DT
            m.observe(probs, t)
        snap1 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
    assert grown < 4096  # nothing per frame (500 frames would be far more)


# --- light --------------------------------------------------------------------------------

def test_touch_glow_appears_on_next_frame_at_the_pad():
    r = LightRenderer(24)
    out = np.zeros((24, 3), np.uint8)
    p = params()
    r.render(out, 0.0, 0, p, present=False)
    quiet = out.astype(int).sum(axis=1).max()
    pads = np.zeros(12, np.float32)
    pads[3] = 0.8  # pad 3 sits at 90 degrees -> pixel 6 of 24
    assert r.touch(pads, 0.02) == 1
    r.render(out, 0.02, 0, p, present=True)
    brightness = out.astype(int).sum(axis=1)
    assert brightness[6] == brightness.max() and brightness[5] == brightness[7]  # centred on pad 3
    assert brightness[6] > 2 * quiet
    assert brightness[18] < brightness[6] / 2  # the opposite side stays dark
    assert r.touch(pads, 0.04) == 0  # a held pad is not a new onset


@pytest.mark.parametrize("palette", PALETTES)
def test_touch_shows_even_when_the_mood_is_bright(palette):
    """Delighted breathes bright: the finger's glow must still stand out, in every palette."""
    r = LightRenderer(24)
    out = np.zeros((24, 3), np.uint8)
    p = params(palette=palette)
    delighted = DEFAULT_MOODS.index("delighted")
    pads = np.zeros(12, np.float32)
    pads[3] = 0.4  # a light fingertip (~40 counts)
    for i in range(300):  # settle into the mood; sample the brightest breath
        r.touch(pads, i / 60)
        r.render(out, i / 60, delighted, p, present=True)
        lit, far = out[6].astype(int), out[18].astype(int)
        assert lit.sum() >= far.sum() + 20 or np.abs(lit - far).sum() >= 40, (i, lit, far)


def test_ripple_travels_outwards_from_the_pad():
    r = LightRenderer(48)
    out = np.zeros((48, 3), np.uint8)
    p = params(idle_animation="off")
    pads = np.zeros(12, np.float32)
    pads[0] = 0.5
    r.touch(pads, 0.0)
    r.touch(np.zeros(12, np.float32), 0.01)  # released at once: only the ripple remains
    peaks = []
    for t in (0.05, 0.25, 0.45):
        r.render(out, t, 0, p, present=False, have_model=False)
        b = out.astype(int).sum(axis=1)
        peaks.append(int(np.argmax(b[:24])))  # clockwise half
    assert peaks[0] < peaks[1] < peaks[2]
    r.render(out, 3.0, 0, p, present=False, have_model=False)
    assert out.max() == 0  # ripple over, idle animation off


@pytest.mark.parametrize("kind", IDLE_ANIMATIONS)
def test_idle_animations(kind):
    r = LightRenderer(24)
    out = np.zeros((24, 3), np.uint8)
    p = params(idle_animation=kind)
    frames = []
    for i in range(60):
        r.render(out, i / 60, 0, p, present=False, have_model=False)
        frames.append(out.copy())
    frames = np.stack(frames)
    if kind == "off":
        assert frames.max() == 0
    else:
        assert frames.max() > 0
    if kind in ("twinkle", "comet"):
        assert len({f.tobytes() for f in frames}) > 10  # it moves


def test_breathing_follows_mood_pace():
    """Agitated breathes much faster than calm: count brightness peaks over 10 s."""
    def peaks(mood):
        r = LightRenderer(12)
        out = np.zeros((12, 3), np.uint8)
        p = params()
        levels = []
        for i in range(600):
            r.render(out, i / 60, DEFAULT_MOODS.index(mood), p, present=True)
            levels.append(int(out[0].sum()))
        s = np.convolve(levels, np.ones(9) / 9, mode="same")
        return sum(1 for i in range(1, len(s) - 1) if s[i] > s[i - 1] and s[i] >= s[i + 1]
                   and s[i] > np.median(s))
    assert peaks("agitated") > 2 * peaks("calm")


def test_palette_changes_colour():
    def colour(palette):
        r = LightRenderer(12)
        out = np.zeros((12, 3), np.uint8)
        for i in range(120):
            r.render(out, i / 60, 0, params(palette=palette), present=True)
        return out[0].astype(int)
    ember, tide = colour("ember"), colour("tide")
    assert ember[0] > ember[2] and tide[2] > tide[0]


def test_render_does_not_allocate_in_steady_state():
    r = LightRenderer(24)
    out = np.zeros((24, 3), np.uint8)
    p = params()
    pads = np.zeros(12, np.float32)
    t = 0.0
    for i in range(120):
        t += 1 / 60
        pads[i // 10 % 12] = 0.5 if i % 10 < 5 else 0.0
        r.touch(pads, t)
        r.render(out, t, 2, p, present=True)
    tracemalloc.start()
    try:
        snap0 = tracemalloc.take_snapshot()
        for i in range(600):
            t += 1 / 60
            pads[i // 10 % 12] = 0.5 if i % 10 < 5 else 0.0
            r.touch(pads, t)
            r.render(out, t, 2, p, present=True)
        snap1 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
    assert grown < 4096


# --- words --------------------------------------------------------------------------------

def test_phrase_bank_cycles_and_waits():
    pb = PhraseBank()
    p = params(phrase_interval_s=5.0, phrases_calm=["a", "b"], phrases_shy=["s"])
    assert pb.update("calm", 0.0, p) == "a"
    assert pb.update("calm", 1.0, p) is None  # too soon
    assert pb.update("calm", 5.0, p) == "b"
    assert pb.update("calm", 10.0, p) == "a"  # every phrase gets shown, in order
    assert pb.update("shy", 11.0, p) is None  # a mood change still waits a little
    assert pb.update("shy", 12.0, p) == "s"


def test_phrase_bank_empty_bank_clears_text():
    pb = PhraseBank()
    assert pb.update("calm", 0.0, params(phrases_calm=["hello"])) == "hello"
    assert pb.update("shy", 10.0, params(phrases_shy=[])) == ""


# --- quiet hours --------------------------------------------------------------------------

@pytest.mark.parametrize("spec,minute,quiet", [
    ("22:00-08:00", 23 * 60, True), ("22:00-08:00", 3 * 60, True),
    ("22:00-08:00", 8 * 60, False), ("22:00-08:00", 12 * 60, False),
    ("09:00-17:30", 17 * 60 + 29, True), ("09:00-17:30", 17 * 60 + 30, False),
    ("10:00-10:00", 600, False), ("off", 0, False),
])
def test_quiet_now(spec, minute, quiet):
    assert quiet_now(spec, minute) is quiet


def test_light_level():
    assert light_level(params(brightness=60), quiet=False) == pytest.approx(0.6)
    assert light_level(params(brightness=60, quiet_brightness=10), quiet=True) == pytest.approx(0.1)
    assert light_level(params(brightness=5, quiet_brightness=10), quiet=True) == pytest.approx(0.05)
    assert light_level(params(quiet_mode="sleep"), quiet=True) == 0.0


# --- OLED ---------------------------------------------------------------------------------

def test_render_oled_draws_text():
    img = render_oled("come closer", "curious", footer="no model")
    assert img.size == (128, 64) and img.mode == "1"
    px = np.array(img, dtype=bool)
    assert px[:12].any() and px[16:50].any() and px[53:].any()
    assert not render_oled("", "").getbbox()


def test_wrap_text_fits_width_and_cuts_long_words():
    measure = lambda s: 6 * len(s)  # noqa: E731 - a fixed-width font
    lines = wrap_text("a phrase that is rather long for the screen " + "x" * 40, 120, measure)
    assert all(measure(line) <= 120 for line in lines)
    assert "".join(lines).replace(" ", "").endswith("x" * 40)
    assert math.isclose(len(lines[-1]), 40 - 20)


@pytest.mark.parametrize("idle", [None, "breathe", "twinkle", "comet"])
def test_render_allocates_no_buffers_per_frame(idle):
    """Transient allocations per frame do not grow with the ring: a 2000-pixel ring (a
    float32 (N, 3) temporary would be 24 KB) allocates only small view/scalar objects."""
    r = LightRenderer(2000)
    out = np.zeros((2000, 3), np.uint8)
    p = params(idle_animation=idle or "breathe")
    present = idle is None
    pads = np.zeros(12, np.float32)
    pads[4] = 0.7
    r.touch(pads, 0.0)  # a ripple and a glow are being drawn
    for i in range(10):
        r.render(out, i / 60, 3, p, present=present, have_model=present)
    tracemalloc.start()
    try:
        worst = 0
        for i in range(10, 70):
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            r.render(out, i / 60, 3, p, present=present, have_model=present)
            worst = max(worst, tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    assert worst < 8 * 1024, worst


def test_a_models_card_maps_its_own_gestures_to_moods():
    card = {"temperament": {"gesture_moods": {"wave": {"delighted": 0.8, "curious": 0.2},
                                              "knock": {"grumpy": 1.0, "shy": 2.0}},
                            "touch_gestures": ["knock"]}}
    t, warnings = bh.temperament_for(card)
    assert t.gesture_moods["wave"] == {"delighted": 0.8, "curious": 0.2}
    assert t.gesture_moods["tap"] == bh.DEFAULT_GESTURE_MOODS["tap"]  # defaults kept
    assert t.gesture_moods["knock"] == {} and "knock" in t.touch_gestures
    assert any("unknown mood 'grumpy'" in w for w in warnings)
    assert any("must be 0..1" in w for w in warnings)
    m = MoodEngine(("nobody", "wave"), t)
    for i in range(50):
        m.observe(np.array([0.05, 0.95], np.float32), i * DT)
    assert m.mood == "delighted"
    assert bh.temperament_for({"name": "x"}) == (bh.DEFAULT_TEMPERAMENT, [])
    assert bh.temperament_for({"temperament": 3})[1]


def test_temporal_voting_and_hold_stop_look_alike_flips():
    """A model that alternates tap / double tap on successive windows (what the demo saw):
    without smoothing every window is a new gesture; with the default voting and hold the
    recognised gesture stays put."""
    import numpy as np

    from lanthorn.device.piece.behaviour import MoodEngine, flicker
    from lanthorn.device.piece.frames import LABELS
    tap, dt = LABELS.index("tap"), LABELS.index("double_tap")

    def run(smoothing, hold_s):
        eng = MoodEngine(LABELS)
        log = []
        for i in range(40):                      # 1.6 s at 25 Hz
            p = np.full(len(LABELS), 0.01, np.float32)
            p[tap if i % 2 else dt] = 0.7
            p[dt if i % 2 else tap] = 0.22
            was = eng.gesture
            eng.observe(p, i / 25, smoothing=smoothing, hold_s=hold_s)
            if eng.gesture != was:
                log.append((i / 25, eng.gesture))
        return flicker(log, 1.6)

    raw, smooth = run(1, 0.0), run(5, 0.2)
    assert raw["flips"] >= 30
    assert smooth["flips"] == 0 and smooth["changes"] <= 1


def test_gesture_moods_parameter_gives_a_taught_gesture_a_feeling():
    import numpy as np

    from lanthorn.device.piece.behaviour import DEFAULT_TEMPERAMENT, MoodEngine, with_gesture_moods
    labels = ("nobody", "tap", "wave")
    eng = MoodEngine(labels, with_gesture_moods(DEFAULT_TEMPERAMENT, {"wave": {"shy": 1.0}}))
    p = np.array([0.05, 0.05, 0.9], np.float32)
    for i in range(100):
        eng.observe(p, i / 25)
    assert eng.gesture == "wave" and eng.mood == "shy"
    plain = MoodEngine(labels)
    for i in range(100):
        plain.observe(p, i / 25)
    assert plain.mood == "calm"                 # untaught: a new class drives no mood
