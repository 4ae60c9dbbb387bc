"""The second shipped piece, the bowl: its profile, data, model and demo.

An MPU-6050, a PIR, a knob on an ADS1115 and a button (hardware/profiles/bowl-sim.toml); its
model (device/models/bowl.lanthorn, trained on data/bowl by `make model`) reads exactly
those channels, and `lanthorn demo --piece bowl` shows the simulated visitor handling it with
the same figures as the default demo (the frame time is measured and reported, not asserted).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lanthorn.device.piece.channel_layout import layout_for_profile
from lanthorn.device.piece.inference import check_model_fits
from lanthorn.device.storage.storage import SHIPPED_MODEL, shipped_model_for
from lanthorn.hardware.profile import load_profile

BOWL = shipped_model_for(load_profile("bowl-sim"))
pytestmark = pytest.mark.skipif(not BOWL.is_file(), reason="the bowl's model is not built")


def test_the_bowl_model_reads_the_bowls_channels_and_not_the_lanterns():
    from lanthorn.device.engine.runtime import load
    model = load(str(BOWL))
    bowl = layout_for_profile(load_profile("bowl")).names
    assert tuple(model.input_spec.channels) == bowl
    assert check_model_fits(model, bowl) == len(model.labels) == 9
    assert model.card["temperament"]["gesture_moods"]["shake"] == {"agitated": 1.0}
    lantern = layout_for_profile(load_profile("sim")).names
    with pytest.raises(Exception, match="channel.s. ax, ay, az"):
        check_model_fits(model, lantern)
    if SHIPPED_MODEL.is_file():
        with pytest.raises(Exception, match="channel.s. pad0"):
            check_model_fits(load(str(SHIPPED_MODEL)), bowl)


def test_the_bowls_data_is_what_its_recipe_says():
    from lanthorn.device.storage.dataset import load_dataset
    report = json.loads(BOWL.with_name("bowl-report.json").read_text())
    ds = load_dataset(BOWL.parents[2] / "data" / "bowl")
    assert tuple(ds.channels) == tuple(report["channels"])
    assert sum(len(r.frames) for r in ds.recordings) == 16 * 60 * 25
    assert report["matches_onnxruntime"]["mismatches"] == 0


@pytest.mark.slow
def test_demo_piece_bowl_recognises_the_visitor_handling_it(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lanthorn", "demo", "--piece", "bowl", "--fps", "5",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["seconds"] == pytest.approx(30.0, abs=0.05) and s["model"]["name"] == "bowl"
    assert s["sensors"] == {r: "ok" for r in ("leds", "display", "imu", "presence", "knob",
                                              "button")}
    for key in ("frame_ms_p50", "frame_ms_p99", "frame_budget_ms", "fps"):
        assert isinstance(s[key], float), key
    assert isinstance(s["frame_p99_within_budget"], bool)
    # the tour: approach, lift, tilt, shake, knock, press, turn, leave, then more visits
    toured = [v["gesture"] for v in s["visitor"]][:8]
    assert toured == ["approach", "lift", "tilt", "shake", "knock", "press", "turn", "leave"]
    done, total = map(int, s["visitor_gestures_recognised"].split("/"))
    assert done >= total // 2, s["visitor"]   # a random model gets ~none
    assert {"agitated", "curious"} <= {m["mood"] for m in s["moods"]}
    for needle in ("[visitor: lift]", "recognised shake", "frame time: p50", "demo.gif"):
        assert needle in r.stdout
