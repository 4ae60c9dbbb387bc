"""lanthorn selftest and open_body: the simulator, real backends on fakes, and every error exit."""
import subprocess
import sys
import types

import pytest
from hw_fakes import FakeChip, FakeMPR121, FakeSMBus, FakeSpi

from lanthorn.cli import main
from lanthorn.commands import selftest as selftest_cmd
from lanthorn.hardware import board as board_mod
from lanthorn.hardware import selftest
from lanthorn.hardware.body import RealBody, open_body
from lanthorn.hardware.gpio import MockPinFactory
from lanthorn.hardware.profile import PROFILE_DIR, ProfileError, load_profile

pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")  # inside luma.oled

try:
    import lanthorn.hardware.sim  # noqa: F401
    HAVE_SIM = True
except ModuleNotFoundError:
    HAVE_SIM = False
needs_sim = pytest.mark.skipif(not HAVE_SIM, reason="the simulator (hardware/sim) is not there")


@needs_sim
def test_selftest_sim_passes_with_every_part_ok():
    out = subprocess.run([sys.executable, "-m", "lanthorn", "selftest", "--sim"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for part in ("touch", "distance", "light", "leds", "display"):
        row = next(line for line in lines if line.startswith(part))
        assert " OK " in row, row
    assert "a finger on pad 0 registers" in out.stdout and "all required parts OK" in out.stdout


def test_duplicate_address_profile_exits_2_naming_both_parts(tmp_path):
    text = (PROFILE_DIR / "sim.toml").read_text().replace("address = 0x23", "address = 0x5A")
    bad = tmp_path / "clash.toml"
    bad.write_text(text)
    out = subprocess.run([sys.executable, "-m", "lanthorn", "selftest", "--profile", str(bad), "--sim"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "'touch' (mpr121)" in err and "'light' (bh1750)" in err and "0x5a" in err


def test_non_pi_without_sim_suggests_sim(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(board_mod, "DEVICE_TREE_MODEL", tmp_path / "absent")
    assert main(["selftest"]) == 2
    err = capsys.readouterr().err
    assert "not a Raspberry Pi or Jetson" in err and "--sim" in err
    (tmp_path / "model").write_bytes(b"Raspberry Pi 3 Model B Rev 1.2\x00")
    monkeypatch.setattr(board_mod, "DEVICE_TREE_MODEL", tmp_path / "model")
    assert main(["selftest"]) == 2
    assert "unsupported board 'Raspberry Pi 3 Model B Rev 1.2'" in capsys.readouterr().err


def test_profile_for_another_board_is_refused(monkeypatch, tmp_path, capsys):
    (tmp_path / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\x00")
    monkeypatch.setattr(board_mod, "DEVICE_TREE_MODEL", tmp_path / "model")
    with pytest.raises(ProfileError, match="profile is for Raspberry Pi 5.*this machine is a Raspberry Pi 4"):
        open_body(load_profile("pi5"))


def test_missing_profile_file_is_one_line(capsys, tmp_path):
    assert main(["selftest", "--profile", str(tmp_path / "nope.toml")]) == 2
    assert "profile file not found" in capsys.readouterr().err


@needs_sim
def test_sim_failure_of_a_required_part_exits_1(capsys):
    profile = load_profile("sim")
    body = open_body(profile, sim=True, realtime=False, failures={"touch": 0.0})
    rows = selftest.check_body(profile, body, sim=True)
    touch = rows[0]
    assert touch.part == "touch" and touch.result == "FAIL" and touch.required
    assert all(r.result == "OK" for r in rows[1:])


# ------------------------------------------------------------------ real backends on fake buses
@pytest.fixture
def fake_hardware(monkeypatch):
    """The pi5 default piece: MPR121, VL53L0X (library fake), VEML7700, SPI ring, SSD1306."""
    import smbus2
    mpr = FakeMPR121()
    veml = FakeChip()
    oled = FakeChip()
    bus = FakeSMBus({0x5A: mpr, 0x10: veml, 0x3C: oled, 0x29: FakeChip()}, label=1)
    monkeypatch.setattr(smbus2, "SMBus", lambda n: bus)  # luma.oled opens its own handle

    spi = FakeSpi()
    monkeypatch.setitem(sys.modules, "spidev", types.SimpleNamespace(SpiDev=lambda: spi))

    class Ranger:
        def __init__(self, i2c, address=41, io_timeout_s=0):
            self.measurement_timing_budget, self.data_ready = 0, True

        def start_continuous(self):
            pass

        def stop_continuous(self):
            pass

        range = property(lambda self: 640)
    monkeypatch.setitem(sys.modules, "adafruit_vl53l0x", types.SimpleNamespace(VL53L0X=Ranger))
    pins = MockPinFactory()
    mpr.set_scan(0, [600] * 12, [600] * 12)
    return types.SimpleNamespace(bus=bus, mpr=mpr, veml=veml, spi=spi, pins=pins)


def open_fake(fake, profile):
    return open_body(profile, board_check=False, pin_factory=fake.pins, bus_factory=lambda n: fake.bus)


def test_real_backends_on_fake_buses_pass_selftest(fake_hardware):
    fake_hardware.mpr.set_scan(0, [600] * 12, [600] * 12)
    fake_hardware.veml.regs[4] = 200
    profile = load_profile("pi5")
    body = open_fake(fake_hardware, profile)
    assert isinstance(body, RealBody) and not body.open_errors
    assert type(body.leds).__name__ == "Ws2812Spi" and type(body.light).__name__ == "VEML7700"
    assert 4 in fake_hardware.pins.pins  # the MPR121 IRQ pin was claimed
    rows = selftest.check_body(profile, body)
    assert [(r.part, r.result) for r in rows] == [(p, "OK") for p in
                                                 ("touch", "distance", "light", "leds", "display")]
    table = selftest.format_table(rows)
    assert "mpr121 i2c-1@0x5a" in table and "ws2812 spi0.0" in table and "640 mm" in table
    assert fake_hardware.spi.transfers  # the ring really got frames
    body.close()
    assert fake_hardware.spi.closed and not fake_hardware.pins.pins


def test_missing_required_part_fails_with_wiring_hint(fake_hardware, capsys):
    del fake_hardware.bus.devices[0x5A]  # no MPR121 answers
    fake_hardware.mpr.set_scan(0, [600] * 12, [600] * 12)
    profile = load_profile("pi5")
    body = open_fake(fake_hardware, profile)
    assert body.touch is None and "0x5a" in body.open_errors["touch"]
    rows = selftest.check_body(profile, body)
    assert rows[0].result == "FAIL" and "pull-ups" in rows[0].detail
    # reopening works once the chip answers again (the device loop's retry)
    fake_hardware.bus.devices[0x5A] = fake_hardware.mpr
    body.open_part("touch")
    assert body.touch is not None and "touch" not in body.open_errors


def test_touch_warnings_for_shorted_open_and_stuck_pads(fake_hardware):
    filtered = [0, 1023] + [600] * 10
    baseline = [0, 1020] + [600] * 10
    fake_hardware.mpr.set_scan(0b100, filtered, baseline)
    profile = load_profile("pi5")
    body = open_fake(fake_hardware, profile)
    result, detail = selftest.check_touch(body.touch, profile, body, lambda s: None, False)
    assert result == "WARN"
    assert "[0] read 0" in detail and "[1] read full scale" in detail and "[2] read as touched" in detail


def test_run_exit_code_and_table(monkeypatch, fake_hardware, capsys):
    profile = load_profile("pi5")
    monkeypatch.setattr(selftest_cmd, "choose_profile", lambda p, sim=False: profile)
    import lanthorn.hardware.body as body_mod
    monkeypatch.setattr(body_mod, "open_body", lambda p, **kw: open_fake(fake_hardware, p))
    fake_hardware.mpr.set_scan(0, [600] * 12, [600] * 12)
    assert main(["selftest", "--profile", "pi5"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["PART", "BACKEND", "RESULT", "DETAIL"]
    del fake_hardware.bus.devices[0x5A]
    assert main(["selftest", "--profile", "pi5"]) == 1
    assert "FAILED: required part(s) touch" in capsys.readouterr().out
