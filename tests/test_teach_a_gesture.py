"""Teach the piece a new gesture, end to end over a pty (the story in README):

    lanthorn data synth --out mydata ...              (the default piece's gestures)
    lanthorn data add-label mydata wave
    lanthorn record PORT wave 8 --data mydata         (a few takes, the visitor waving)
    lanthorn train mydata --out wave.onnx
    lanthorn quantize wave.onnx --data mydata --out wave.lanthorn
    lanthorn push wave.lanthorn --port PORT
    lanthorn console PORT -c "set gesture_moods wave=shy"

and the running piece, its simulated visitor waving at it, recognises `wave` and turns shy.
Everything is the real CLI in subprocesses; the object is `lanthorn run --sim` on the other
end of a pseudo-terminal cable, its visitor performing a gesture the default model has never
seen (`--sim-gestures wave`).
"""
import json
import subprocess
import sys
import time

import pytest

from lanthorn.host.console_client import ConsoleClient
from pty_link import PtyLink
from test_console_e2e import ROOT, SHIPPED, Device, wait_ready

pytestmark = pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped bundle is not built")


class WavingDevice(Device):
    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lanthorn", "run", "--sim", "--sim-gestures", "wave",
             "--serial", self.port, "--data-dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), cwd=ROOT)
        return self


def lanthorn(*args, timeout=600):
    r = subprocess.run([sys.executable, "-m", "lanthorn", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"lanthorn {' '.join(map(str, args))}:\n{r.stdout}\n{r.stderr}"
    return r


@pytest.mark.slow
def test_teach_the_piece_to_feel_a_wave(tmp_path):
    data = tmp_path / "mydata"
    # (a seed whose held-out sessions hold every default gesture: the quality gates check)
    lanthorn("data", "synth", "--out", data, "--minutes", "6", "--session-seconds", "30", "--seed", "1")
    r = lanthorn("data", "add-label", data, "wave")
    assert "added label 'wave'" in r.stdout
    link = PtyLink()
    device = WavingDevice(link.device, tmp_path / "device", tmp_path / "device.log").start()
    try:
        wait_ready(link.host, device)
        # demonstrate until the new gesture has takes on every side of the split
        for take in range(1, 8):
            lanthorn("record", link.host, "wave", "12", "--data", data, "--session", f"wave-{take}",
                     "--source", "my-hand", "--author", "the simulator",
                     "--consent", "synthetic: no person involved")
            sides = {v["split"] for k, v in json.loads((data / "manifest.json").read_text())
                     ["sessions"].items() if k.startswith("my-hand/")}
            if sides == {"train", "val", "test"}:
                break
        assert sides == {"train", "val", "test"}
        r = lanthorn("train", data, "--out", tmp_path / "wave.onnx", "--epochs", "25", "--quiet")
        # The takes are recorded in real time, so the data (and the int8 drop) differs a
        # little from run to run. When the int8 gate trips, do what its message tells the
        # artist: another calibration; if every one trips, go ahead knowingly with --force
        # (the gates themselves are tested in test_honest_data.py; this test is the story).
        force = []
        for calibration in ("minmax", "percentile", "entropy", None):
            args = ["quantize", tmp_path / "wave.onnx", "--data", data, "--out",
                    tmp_path / "wave.lanthorn"]
            args += ["--calibration", calibration] if calibration else ["--force"]
            q = subprocess.run([sys.executable, "-m", "lanthorn", *map(str, args)], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
            if q.returncode == 0:
                force = [] if calibration else ["--force"]
                break
            assert "not fit to push" in q.stderr, q.stdout + q.stderr  # a gate, not a crash
        assert q.returncode == 0, q.stdout + q.stderr
        r = lanthorn("push", tmp_path / "wave.lanthorn", "--port", link.host, "--quiet", *force)
        assert "installed wave" in r.stdout
        # before the artist says what a wave means, it drives no mood of its own ...
        r = lanthorn("console", link.host, "-c", "get gesture_moods")
        assert r.stdout.strip() == "OK (empty)" or r.stdout.strip().startswith("OK")
        lanthorn("console", link.host, "-c", "set gesture_moods wave=shy")
        r = lanthorn("console", link.host, "-c", "get gesture_moods")
        assert "wave=shy" in r.stdout
        seen_gestures, moods = set(), []
        end = time.monotonic() + 40
        with ConsoleClient(link.host, holder="test") as c:
            while time.monotonic() < end:
                st = c.call("status")
                seen_gestures.add(st["gesture"])
                moods.append(st["mood"])
                if "wave" in seen_gestures and st["mood"] == "shy":
                    break
                time.sleep(0.4)
        assert "wave" in seen_gestures, (seen_gestures, moods)
        assert moods[-1] == "shy", moods
    finally:
        device.stop()
        link.close()
