"""The frame comes from the body: a profile's parts declare channels, one layout is built
from them, and the sampler, the model binding, status and selftest all follow it.

The default piece keeps its 14 channels, their encoding and order (its shipped model binds
unchanged); a body with an IMU, a PIR, a knob and a button gets exactly those channels; a
model that needs channels the body lacks is refused naming them, and says so in status.
"""
from __future__ import annotations

import types

import numpy as np
import pytest

from lanthorn.device.piece import frames as fr
from lanthorn.device.piece.behaviour import LightRenderer
from lanthorn.device.piece.channel_layout import build_layout, layout_for_profile
from lanthorn.device.piece.inference import ModelMismatch, check_model_fits
from lanthorn.device.piece.params import ParamStore
from lanthorn.device.piece.part_health import PartHealth
from lanthorn.device.piece.sampling import Sampler
from lanthorn.device.piece.scheduler import Scheduler
from lanthorn.hardware.channels import Channel, ChannelSensor
from lanthorn.hardware.interfaces import PartError
from lanthorn.hardware.profile import ProfileError, load_profile, parse_profile
from lanthorn.hardware.sim import SimClock

P = ParamStore().snapshot()
BOWL_CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz", "presence", "knob", "button")


def sim_profile(parts: dict, **top):
    return parse_profile({"board": "sim", "backend": "sim", "parts": parts,
                          "power": {"supply_ma": 2000, "led_cap_ma": 800}, **top}, "test.toml")


LEDS = {"type": "ws2812", "driver": "spi", "count": 16}


@pytest.mark.parametrize("name", ["sim", "pi4", "pi5", "jetson-orin-nano"])
def test_the_default_piece_keeps_its_14_channels_their_order_and_encoding(name):
    layout = layout_for_profile(load_profile(name))
    assert layout.names == fr.CHANNELS and layout.is_default
    assert layout.units == fr.DEFAULT_UNITS and layout.ranges == fr.DEFAULT_RANGES
    assert (layout.n_pads, layout.distance_at, layout.light_at) == (12, 12, 13)


def test_the_bowl_gets_exactly_the_channels_its_parts_declare():
    layout = layout_for_profile(load_profile("bowl-sim"))
    assert layout.names == BOWL_CHANNELS and layout.n_pads == 0
    assert layout.roles() == ("imu", "presence", "knob", "button")
    assert layout.ranges["ax"] == (-1.0, 1.0) and layout.ranges["knob"] == (0.0, 1.0)
    assert load_profile("bowl").model == load_profile("bowl-sim").model == "bowl"


def test_profiles_take_any_part_name_for_a_sensing_part_and_refuse_the_rest():
    p = sim_profile({"tilt_sensor": {"type": "mpu6050", "prefix": "t_"}, "leds": LEDS})
    assert layout_for_profile(p).names == ("t_ax", "t_ay", "t_az", "t_gx", "t_gy", "t_gz")
    with pytest.raises(ProfileError, match="unknown type 'mpu6050' for touch"):
        sim_profile({"touch": {"type": "mpu6050"}})
    with pytest.raises(ProfileError, match="unknown key 'lights' .did you mean 'light'"):
        sim_profile({"lights": {"type": "bh1750"}})
    with pytest.raises(ProfileError, match="a part name must be lower-case"):
        sim_profile({"My IMU": {"type": "mpu6050"}})
    with pytest.raises(ProfileError, match="unknown type 'mpu9999' for a sensing part"):
        sim_profile({"imu": {"type": "mpu9999"}})
    # two IMUs with the same channel names cannot share one frame: said, with the fix
    twins = sim_profile({"top": {"type": "mpu6050"},
                         "base": {"type": "lsm6ds3", "address": 0x6B}})
    with pytest.raises(ProfileError, match="ax, ay, az, gx, gy, gz appear twice.*'prefix'"):
        layout_for_profile(twins)
    with pytest.raises(ProfileError, match="'model' must name"):
        sim_profile({"leds": LEDS}, model=3)


class Inclinometer(ChannelSensor):
    """A test-only part: one signed angle and one binary level switch."""

    name = "incline"
    channels = (Channel("angle", "deg", -90.0, 90.0, "signed", 50.0),
                Channel("level", "on", 0.0, 1.0, "binary", 50.0))

    def __init__(self):
        self.value, self.broken = (0.0, False), False

    def read(self):
        if self.broken:
            raise PartError("incline", "no answer (test)")
        return self.value


def sampler_on(layout, **parts):
    body = types.SimpleNamespace(touch=None, distance=None, light=None, leds=None,
                                 display=None, open_errors={}, **parts)
    health = PartHealth(body, 5.0, lambda s: None, lambda k, t: None)
    clock = SimClock()
    s = Sampler(body, health, Scheduler(clock), layout=layout)
    s.start(0.0)
    return s, health


def test_a_new_kind_of_sensor_feeds_the_frame_with_signed_values_and_is_imputed_when_it_fails():
    part = Inclinometer()
    layout = build_layout(0, False, True, [("incline", part.channels)])
    assert layout.names == ("light", "angle", "level")
    s, health = sampler_on(layout, incline=part)
    part.value = (-45.0, True)
    out = s.read(0.0, P)
    assert out[1] == pytest.approx(-0.5) and out[2] == 1.0
    part.value = (200.0, 0)   # out of range: clipped to the declared range, not trusted
    assert s.read(0.05, P)[1] == pytest.approx(1.0)
    part.broken = True        # a failed part's channels hold their last good values
    out = s.read(0.1, P)
    assert out[1] == pytest.approx(1.0) and health.state["incline"].startswith("failed")
    part.broken, part.value = False, ("tilted",)   # nonsense fails the part, never the loop
    s.read(5.2, P)
    assert "not 2 readings" in health.state["incline"]


def test_the_general_path_encodes_the_classic_parts_exactly_as_the_default_piece():
    """Pads, distance and light in a body that also has an IMU: the same float32 values as
    frames.encode_into, bit for bit (the default piece's model would read them unchanged)."""
    rng = np.random.default_rng(0)
    part = Inclinometer()
    layout = build_layout(12, True, True, [("incline", part.channels)])
    assert not layout.is_default and layout.names[:14] == fr.CHANNELS
    for _ in range(50):
        pads = rng.uniform(0, 300, 12).astype(np.float32)
        mm, lux = float(rng.uniform(0, 1500)), float(rng.uniform(0, 5e4))
        s, _ = sampler_on(layout, incline=part)
        s.last_distance, s.last_lux = mm, lux
        s._encode_classic(pads)
        expect = fr.encode(pads, mm, lux)
        assert s.sample[:14].tobytes() == expect.tobytes()


class Named:
    """A bound model's view: an input spec naming its channels."""

    def __init__(self, channels):
        self.input_spec = types.SimpleNamespace(shape=(50, len(channels)), rate_hz=25.0,
                                                dtype="float32", channels=tuple(channels),
                                                scale=None)
        self.labels, self.card = ["a", "b"], {}

    def __call__(self, x):
        return np.array([0.5, 0.5], np.float32)


def test_a_model_binds_by_name_and_one_needing_channels_the_body_lacks_is_refused_naming_them():
    assert check_model_fits(Named(["knob", "ax"]), BOWL_CHANNELS) == 2   # any subset, any order
    with pytest.raises(ModelMismatch, match="channel.s. pad0, light this object does not have "
                                            r"\(it has ax, ay"):
        check_model_fits(Named(["pad0", "ax", "light"]), BOWL_CHANNELS)


def test_a_body_that_cannot_feed_the_shipped_model_says_so_in_status():
    from lanthorn.device.engine.runtime import load
    from lanthorn.device.piece.piece import Piece
    from lanthorn.device.storage.storage import SHIPPED_MODEL
    from lanthorn.hardware.body import open_body
    if not SHIPPED_MODEL.exists():
        pytest.skip("the shipped bundle is not built")
    only_light = sim_profile({"light": {"type": "bh1750"}, "leds": LEDS})
    clock = SimClock()
    body = open_body(only_light, sim=True, clock=clock, realtime=False)
    piece = Piece(body, clock=clock, model=load(str(SHIPPED_MODEL)), voice=None,
                  oled_thread=False, voice_thread=False)
    st = piece.status()
    assert st["channels"] == ["light"] and st["model"] is None
    assert st["model_fits"].startswith("no: the model reads channel(s) pad0") and \
        "(it has light)" in st["model_fits"]
    piece.run(1.0)   # and it runs: the idle animation, no crash
    assert piece.frames_shown > 30


def test_the_light_renderer_works_without_touch_pads():
    r = LightRenderer(24, n_pads=0)
    assert r.touch(np.zeros(0, np.float32), 0.0) == 0
    out = np.zeros((24, 3), np.uint8)
    for k in range(30):
        r.render(out, k / 60, 1, {"palette": "ember"})
    assert out.any()   # it breathes in the mood's colours; no ripples, no glow


def test_the_simulated_bowl_feels_its_visitor_and_runs_the_piece():
    from lanthorn.device.piece.piece import Piece
    from lanthorn.hardware.body import open_body
    clock = SimClock()
    body = open_body(load_profile("bowl-sim"), sim=True, seed=2, clock=clock, realtime=False,
                     script=[(0.5, "approach"), (2.5, "lift"), (6.0, "shake"), (8.0, "press")])
    piece = Piece(body, clock=clock, model=None, voice=None, oled_thread=False,
                  voice_thread=False)
    piece.run(10.0)
    frames, _ = piece.frames_since(-1.0)
    f = np.array(frames)
    t = np.arange(len(f)) / 25.0
    col = {c: f[:, i] for i, c in enumerate(BOWL_CHANNELS)}
    assert col["presence"][t < 0.4].max() == 0 and col["presence"][t > 1.5].min() == 1
    shaking, still = (t > 6.2) & (t < 6.8), (t > 1.5) & (t < 2.4)
    assert col["ax"][shaking].std() > 10 * col["ax"][still].std()
    assert col["button"][(t > 8.05) & (t < 8.2)].max() == 1 and col["button"][still].max() == 0
    assert body.gesture_at(6.5) == "shake" and body.gesture_at(1.0) == "approach"
    assert piece.status()["sensors"] == {"leds": "ok", "display": "ok", "imu": "ok",
                                         "presence": "ok", "knob": "ok", "button": "ok"}


def test_a_visitor_script_the_body_cannot_sense_is_refused():
    from lanthorn.hardware.body import open_body
    from lanthorn.hardware.sim import SimError
    egg = sim_profile({"imu": {"type": "mpu6050"}, "leds": LEDS})
    with pytest.raises(SimError, match="cannot sense 'press'"):
        open_body(egg, sim=True, realtime=False, script=[(0.0, "press")])


def test_data_synth_for_a_body_is_honestly_labelled_and_reproducible(tmp_path, capsys):
    from lanthorn.cli import main
    from lanthorn.device.storage.dataset import load_dataset
    for out in ("a", "b"):
        assert main(["data", "synth", "--out", str(tmp_path / out), "--profile", "bowl-sim",
                     "--minutes", "1", "--session-seconds", "30", "--seed", "4"]) == 0
    a = sorted((tmp_path / "a" / "recordings").rglob("*.csv*"))
    b = sorted((tmp_path / "b" / "recordings").rglob("*.csv*"))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    ds = load_dataset(tmp_path / "a")
    assert tuple(ds.channels) == BOWL_CHANNELS
    frames = np.concatenate([r.frames for r in ds.recordings])
    labels = np.concatenate([r.labels for r in ds.recordings])
    name = {lab: i for i, lab in enumerate(ds.labels)}
    sideways = frames[:, :2]   # ax, ay: a shake is sideways acceleration, rest is still
    if (labels == name["shake"]).any():
        assert sideways[labels == name["shake"]].std(0).min() > \
            5 * sideways[labels == name["nobody"]].std(0).max()
    presses = labels == name["press"]
    if presses.any():
        assert frames[presses, BOWL_CHANNELS.index("button")].mean() > 0.5


def test_selftest_checks_every_part_of_a_body_and_whether_it_can_feed_its_model(capsys):
    from lanthorn.cli import main
    assert main(["selftest", "--sim", "--profile", "bowl-sim"]) == 0
    out = capsys.readouterr().out
    for part in ("imu", "presence", "knob", "button"):
        line = next(row for row in out.splitlines() if row.startswith(part))
        assert " OK " in line, line
    assert "az=" in out and "model" in out


def test_a_body_of_channel_parts_allocates_only_small_objects_per_wake():
    """The loop on a body without pads, fed by a generic sensing part that allocates nothing
    (a reading made once): per wake-up, only small Python objects, never a buffer."""
    import tracemalloc

    from loop_helpers import FakeModel, quiet_body

    from lanthorn.device.piece.piece import Piece
    from lanthorn.hardware.interfaces import Body
    part = Inclinometer()
    part.value = (12.5, True)
    quiet = quiet_body(24)
    body = Body(leds=quiet.leds)
    body.incline = part
    layout = build_layout(0, False, False, [("incline", part.channels)])
    probs = np.array([0.9, 0.1], np.float32)
    clock = SimClock()
    piece = Piece(body, model=FakeModel(lambda x: probs, labels=("nobody", "tilted"),
                                        channels=("level", "angle")),
                  clock=clock, charge_compute=False, layout=layout, voice=None,
                  oled_thread=False, voice_thread=False)
    piece.start()
    clock.set(0.0)
    for _ in range(300):
        clock.set(piece.next_due())
        piece.step()
    worst = 0
    tracemalloc.start()
    try:
        for _ in range(600):
            clock.set(piece.next_due())
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            piece.step()
            worst = max(worst, tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    assert worst < 4096, worst
    assert piece.status()["model_fits"] == "yes" and piece.inferences > 50
    assert piece.latest()["values"] == {"angle": 0.1389, "level": 1.0}
