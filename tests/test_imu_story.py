"""The IMU story, end to end over a pty, with no code change (issue 23's must-show):

    lanthorn data new egg --channels ax:...,gz:... --labels nobody,lift,tilt,shake,knock
    lanthorn data synth --out egg --profile egg.toml       (the simulated visitor handles it)
    lanthorn train egg --out egg.onnx
    lanthorn quantize egg.onnx --data egg --out egg.lanthorn --mood shake=agitated
    lanthorn run --sim --profile egg.toml --serial PTY      (the object, on the other end)
    lanthorn push egg.lanthorn --port PTY
    lanthorn console PTY -c status                          (the model runs; a shake agitates it)
    lanthorn record PTY shake 3 --data egg                  (a take with the egg's channels)

The body is a maker's own profile (a wooden egg with an MPU-6050 and a ring of LEDs) that no
file of lanthorn names: its frame comes from the profile's parts. Before the push, the
shipped default model cannot be fed by this body and ``status`` says so, naming the channels
it lacks; after it, the recognised gesture changes the mood. Everything is the real CLI in
subprocesses.
"""
import subprocess
import sys
import time

import pytest
from pty_link import PtyLink
from test_console_e2e import ROOT, Device, wait_ready

from lanthorn.host.console_client import ConsoleClient

EGG = """\
# A maker's own object: a wooden egg with an MPU-6050 inside and a ring of LEDs.
name = "egg"
board = "sim"
backend = "sim"
required = ["imu"]
[power]
supply_ma = 2000
led_cap_ma = 800
[parts.imu]
type = "mpu6050"
accel_range_g = 2
gyro_range_dps = 250
[parts.leds]
type = "ws2812"
driver = "spi"
count = 16
"""
CHANNELS = ("ax:g/2:-1..1,ay:g/2:-1..1,az:g/2:-1..1,"
            "gx:dps/250:-1..1,gy:dps/250:-1..1,gz:dps/250:-1..1")


class EggDevice(Device):
    def __init__(self, port, data_dir, log, profile):
        super().__init__(port, data_dir, log)
        self.profile = profile

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lanthorn", "run", "--sim", "--profile", str(self.profile),
             "--serial", self.port, "--data-dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), cwd=ROOT)
        return self


def lanthorn(*args, timeout=600):
    r = subprocess.run([sys.executable, "-m", "lanthorn", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"lanthorn {' '.join(map(str, args))}:\n{r.stdout}\n{r.stderr}"
    return r


@pytest.mark.slow
def test_an_imu_body_learns_to_feel_a_shake_with_no_code_change(tmp_path):
    profile = tmp_path / "egg.toml"
    profile.write_text(EGG)
    data = tmp_path / "egg"
    lanthorn("data", "new", data, "--rate", "25", "--labels", "nobody,lift,tilt,shake,knock",
             "--channels", CHANNELS, "--ring", "")
    r = lanthorn("data", "synth", "--out", data, "--profile", profile, "--minutes", "4",
                 "--session-seconds", "30", "--seed", "1")
    assert "6 channels" in r.stdout and "shake" in r.stdout
    lanthorn("train", data, "--out", tmp_path / "egg.onnx", "--epochs", "12", "--quiet")
    lanthorn("quantize", tmp_path / "egg.onnx", "--data", data, "--out", tmp_path / "egg.lanthorn",
             "--mood", "shake=agitated")

    link = PtyLink()
    device = EggDevice(link.device, tmp_path / "device", tmp_path / "device.log", profile).start()
    try:
        wait_ready(link.host, device)
        with ConsoleClient(link.host, holder="test") as c:
            st = c.call("status")
        # the shipped default model reads pads this egg does not have: refused, and said
        assert st["model"] is None and st["channels"] == ["ax", "ay", "az", "gx", "gy", "gz"]
        assert st["model_fits"].startswith("no:") and "pad0" in st["model_fits"], st["model_fits"]
        r = lanthorn("push", tmp_path / "egg.lanthorn", "--port", link.host, "--quiet")
        assert "installed" in r.stdout
        seen, moods = set(), []
        end = time.monotonic() + 60
        with ConsoleClient(link.host, holder="test") as c:
            while time.monotonic() < end:
                st = c.call("status")
                seen.add(st["gesture"])
                moods.append(st["mood"])
                if "shake" in seen and st["mood"] == "agitated":
                    break
                time.sleep(0.3)
        assert st["model_fits"] == "yes" and st["model"] is not None, st
        assert "shake" in seen and moods[-1] == "agitated", (seen, moods)
        assert seen & {"lift", "tilt", "knock"}, seen  # it tells other handlings apart too
        # and a take recorded from the egg lands in the dataset with the egg's own channels
        lanthorn("record", link.host, "shake", "3", "--data", data, "--session", "my-shake",
                 "--source", "my-hands", "--author", "the simulator",
                 "--consent", "synthetic: no person involved")
        take = next((data / "recordings" / "my-hands").glob("my-shake.csv*"))
        assert take.read_text().splitlines()[0].endswith(",ax,ay,az,gx,gy,gz")
    finally:
        device.stop()
        link.close()
