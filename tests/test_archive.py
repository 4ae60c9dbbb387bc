"""`lanthorn archive` end to end, over a pseudo-terminal cable: the real piece (`lanthorn run
--sim --serial PTY`, a separate process) with pushed models, saved values, a preset and the
exhibition lock; `lanthorn archive bag --port PTY --pin ...` reads it back into a BagIt bag
that bagit's own validate() accepts and that holds every part, the bundles byte-identical
to the ones pushed; `archive verify`; `archive restore` with pip pointed at no index.

No network: the device wheelhouse is repacked from this environment
(``--wheelhouse-from installed``: the simulated object is this machine's Python)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lanthorn.device.engine.bundle import Bundle
from lanthorn.device.storage.storage import SHIPPED_MODEL, SHIPPED_VOICE
from lanthorn.host.archive_session import _client
from lanthorn.host.studio.sim import SimPiece
from lanthorn.vocabulary import BAUD

PIN = "2468"
LANTHORN = [sys.executable, "-m", "lanthorn"]


def _second_model() -> bytes:
    """A valid bundle other than the shipped one: the same model under another name."""
    b = Bundle.from_bytes(SHIPPED_MODEL.read_bytes())
    b.card = dict(b.card, name="temperament-evening")
    return b.to_bytes()


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """(bag, the bytes pushed, the piece) after one archive of a prepared, locked piece."""
    tmp = tmp_path_factory.mktemp("archive")
    piece = SimPiece(tmp / "device-data").start()
    pushed = {"model-previous.lanthorn": SHIPPED_MODEL.read_bytes(),
              "model-current.lanthorn": _second_model(),
              "voice-current.lanthorn": SHIPPED_VOICE.read_bytes()}
    try:
        with _client(piece.port, BAUD, 30.0) as c:
            for name in ("model-previous.lanthorn", "model-current.lanthorn",
                         "voice-current.lanthorn"):
                c.push(pushed[name])
            c.call("set brightness 40")
            c.call("save")
            c.call("set brightness 70")
            c.call("preset save evening")
            c.call(f"lock {PIN}")
        # without the PIN a locked object gives nothing away, and nothing is written
        refused = subprocess.run(LANTHORN + ["archive", "nopin", "--port", piece.port],
                                 capture_output=True, text=True, cwd=tmp)
        done = subprocess.run(LANTHORN + ["archive", "bag", "--port", piece.port, "--pin", PIN,
                                          "--wheelhouse-from", "installed", "--demo-seconds", "3"],
                              capture_output=True, text=True, cwd=tmp, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        yield tmp / "bag", pushed, piece, refused
    finally:
        piece.stop()


def test_without_the_pin_a_locked_object_is_not_archived(archived):
    bag, pushed, piece, refused = archived
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("lanthorn archive: error: the object is locked")
    assert not (bag.parent / "nopin").exists()


def test_the_bag_validates_and_holds_every_part(archived):
    import bagit
    bag, pushed, piece, _ = archived
    b = bagit.Bag(str(bag))
    b.validate()  # bagit's own check: every checksum, the tag manifests, Payload-Oxum
    assert set(b.algorithms) == {"sha256", "sha512"}
    assert "README.txt" in (bag / "tagmanifest-sha256.txt").read_text()
    data = bag / "data"
    # the bundles read back are the bytes pushed
    for name, raw in pushed.items():
        assert (data / "models" / name).read_bytes() == raw, name
    m = json.loads((data / "archive.json").read_text())
    # the source at the commit the object runs, with its history
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()
    assert m["state_version"]["commit"] == head == (data / "source" / "COMMIT").read_text().strip()
    assert (data / "source" / m["source"]["tarball"]).stat().st_size > 100_000
    assert subprocess.run(["git", "bundle", "verify", str(data / "source" / "lanthorn.gitbundle")],
                          capture_output=True, cwd=Path(__file__).parent).returncode == 0
    pins = (data / "wheelhouse" / "device" / "requirements.txt").read_text()
    assert "numpy==" in pins and "luma-oled==" in pins and "torch" not in pins
    assert (data / "datasets" / "temperament" / "manifest.json").is_file()
    assert list((data / "datasets" / "voice").iterdir())
    assert (data / "docs" / "profile-sim.toml").is_file()
    assert (data / "docs" / "hardware-README.md").is_file()
    # the object's state as read back
    state = {p.stem: json.loads(p.read_text()) for p in (data / "state").glob("*.json")}
    assert state["settings_saved"]["params"]["brightness"] == 40
    assert state["presets"]["evening"]["values"]["brightness"] == 70
    assert state["lockfile"]["state"] == "locked"
    lock = json.loads((piece.data_dir / "lock.json").read_text())
    assert lock["hash"] not in json.dumps(state) and lock["salt"] not in json.dumps(state)
    assert "keys" in state["trust"] and "rejected" in state["rejected"]
    assert isinstance(state["log"]["entries"], list)  # the on-card fault log, all of it
    assert state["version"]["profile"]["board"] == "sim"
    assert (data / "behaviour" / "demo.gif").stat().st_size > 10_000
    assert "recognised" in (data / "behaviour" / "timeline.txt").read_text()
    readme = (bag / "README.txt").read_text()
    for heading in ("WHAT THE PIECE IS", "ITS PARTS", "HOW TO RESTORE IT",
                    "WHAT MAY BE REPLACED", "WHAT MAY NOT"):
        assert heading in readme
    assert "touch: mpr121" in readme


def test_the_lock_stays_on_after_the_archive(archived):
    bag, pushed, piece, _ = archived
    with _client(piece.port, BAUD, 10.0) as c:
        assert c.call("status")["locked"] is True
        ans = c.request("model get")
        assert not ans["ok"] and ans["error"].startswith("locked")


def test_verify_and_a_damaged_bag(archived, tmp_path):
    bag, *_ = archived
    ok = subprocess.run(LANTHORN + ["archive", "verify", str(bag)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    lines = ok.stdout.splitlines()
    assert lines[0].startswith("OK bagit: valid")
    assert any("model-current.lanthorn: temperament-evening loads; equals onnxruntime" in x
               for x in lines)
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(bag, bad)
    target = bad / "data" / "models" / "model-current.lanthorn"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 1
    target.write_bytes(bytes(raw))
    fail = subprocess.run(LANTHORN + ["archive", "verify", str(bad)], capture_output=True, text=True)
    assert fail.returncode == 1
    assert fail.stdout.splitlines()[0].startswith("FAIL bagit")
    assert "FAIL models/model-current.lanthorn" in fail.stdout


@pytest.mark.slow
def test_restore_with_no_index_installs_and_passes_selftest(archived, tmp_path):
    bag, *_ = archived
    done = subprocess.run(LANTHORN + ["archive", "restore", str(bag), str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    out = done.stdout
    assert "OK install:" in out and "with no package index" in out
    assert "OK selftest --sim: all required parts OK" in out
    assert "OK runs: model-current.lanthorn" in out and "OK runs: voice-current.lanthorn" in out
    # the restored lanthorn is the archived one, not this checkout
    where = subprocess.run([str(tmp_path / "r" / "venv" / "bin" / "python"), "-c",
                            "import lanthorn; print(lanthorn.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path).stdout
    assert str(tmp_path / "r" / "venv") in where
    # and knows the commit it was installed from (git archive stamps lanthorn/commit.txt)
    said = subprocess.run([str(tmp_path / "r" / "venv" / "bin" / "python"), "-c",
                           "from lanthorn.device.console.console_archive import version_info; "
                           "print(version_info()['commit'])"],
                          capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert said == (bag / "data" / "source" / "COMMIT").read_text().strip()
    # no torch in the device set: the rebuild says why it did not run
    assert "SKIP rebuild: training needs torch" in out


def test_a_cable_pulled_mid_model_get_leaves_the_piece_running(archived):
    import time

    import serial
    bag, pushed, piece, _ = archived
    with _client(piece.port, BAUD, 10.0) as c:
        before = c.call("status")["uptime_s"]
    term = serial.Serial(piece.port, BAUD, timeout=5)
    term.write(f"access {PIN}\nmodel get voice\n".encode())
    assert term.readline().startswith(b"OK this connection may read")
    assert term.readline().startswith(b"NOTE sending voice current")
    assert term.readline().startswith(b"CHUNK ")
    term.close()  # pulled: the rest of the voice goes nowhere
    time.sleep(3.0)
    with _client(piece.port, BAUD, 10.0) as c:
        st = c.call("status")
        assert st["uptime_s"] > before + 2.5 and st["locked"] is True
        assert c.call("model info")["name"] == "temperament-evening"
        assert not c.request("model get")["ok"]  # 'access' did not outlive the cable
    assert piece.starts == 1  # never restarted: it kept running all along
