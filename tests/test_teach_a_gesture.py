"""Teach the piece a new gesture, end to end over a pty: README's recipe, word for word:

    lanthorn data synth --out mydata --minutes 6 --session-seconds 30 --seed 1
    lanthorn data add-label mydata wave
    lanthorn record PORT wave 12 --data mydata --session wave-1 ...   (three takes)
    lanthorn train mydata --out wave.onnx              (fine-tunes the shipped model)
    lanthorn quantize wave.onnx --data mydata --out wave.lanthorn --mood wave=shy
    lanthorn push wave.lanthorn --port PORT
    lanthorn console PORT -c "set gesture_moods wave=shy"

and the running piece, its simulated visitor waving at it, recognises `wave` and turns shy,
while every gesture it knew keeps its recall within the gate. Everything is the real CLI in
subprocesses; the object is `lanthorn run --sim` on the other end of a pseudo-terminal
cable, its visitor performing a gesture the default model has never seen
(`--sim-gestures wave`).
"""
import subprocess
import sys
import time

import pytest
from pty_link import PtyLink
from test_console_e2e import ROOT, SHIPPED, Device, wait_ready

from lanthorn.host.console_client import ConsoleClient

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
    lanthorn("data", "synth", "--out", data, "--minutes", "6", "--session-seconds", "30", "--seed", "1")
    r = lanthorn("data", "add-label", data, "wave")
    assert "added label 'wave'" in r.stdout
    link = PtyLink()
    device = WavingDevice(link.device, tmp_path / "device", tmp_path / "device.log").start()
    try:
        wait_ready(link.host, device)
        # three takes, as README says: too few to hold one out, so each is held out in time
        lanthorn("record", link.host, "wave", "12", "--data", data, "--session", "wave-1",
                 "--source", "me", "--consent", "my own hand")
        for take in (2, 3):
            lanthorn("record", link.host, "wave", "12", "--data", data, "--session",
                     f"wave-{take}", "--source", "me")
        t0 = time.perf_counter()
        r = lanthorn("train", data, "--out", tmp_path / "wave.onnx")
        print(f"train: {time.perf_counter() - t0:.1f} s (fine-tuning the shipped model)")
        assert "fine-tuning the shipped model" in r.stdout
        assert "held out in time within each take" in r.stdout and "wave (3 takes)" in r.stdout
        gates = {g["name"]: g for g in training_gates(tmp_path / "wave.onnx")}
        # every old gesture kept its recall (on the shipped model's own held-out sessions)
        assert gates["recall"]["ok"] and "every one of the 9 gestures" in gates["recall"]["message"]
        assert gates["held_out_classes"]["ok"], gates
        lanthorn("quantize", tmp_path / "wave.onnx", "--data", data, "--out",
                 tmp_path / "wave.lanthorn", "--mood", "wave=shy")
        r = lanthorn("push", tmp_path / "wave.lanthorn", "--port", link.host)
        assert "installed wave" in r.stdout
        # nothing set live yet: the card's moods (quantize --mood) are all the piece has
        r = lanthorn("console", link.host, "-c", "get gesture_moods")
        assert r.stdout.strip() == "OK", r.stdout
        lanthorn("console", link.host, "-c", "set gesture_moods wave=shy")
        r = lanthorn("console", link.host, "-c", "get gesture_moods")
        assert r.stdout.strip() == "OK wave=shy", r.stdout
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


def training_gates(onnx_path) -> list[dict]:
    """The quality gates ``train`` recorded in the model it wrote."""
    import onnx

    from lanthorn.quantize.quantizer import training_record
    return training_record(onnx.load(str(onnx_path)))["gates"]
