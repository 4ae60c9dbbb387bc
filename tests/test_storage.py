"""Safe storage: model fallback chain, settings recovery, presets, and power cuts mid-write."""
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from console_fakes import fake_loader, make_fake_bundle

from lanthorn.device.storage.storage import DataDir, StorageError

TESTS = Path(__file__).resolve().parent


def _dd(path, shipped=None):
    return DataDir(path, loader=fake_loader, shipped_model=shipped)


def test_install_keeps_previous_and_loads_current(tmp_path):
    dd = _dd(tmp_path / "d")
    for name in ("one", "two"):
        src = tmp_path / f"{name}.lanthorn"
        src.write_bytes(make_fake_bundle(name))
        assert dd.install_model(src).name == name
    model, source, messages = dd.load_model()
    assert (model.name, source, messages) == ("two", "current", [])
    assert fake_loader(str(dd.previous_path)).name == "one"
    assert dd.rollback().name == "one" and dd.load_model()[0].name == "one"


def test_bad_new_model_is_refused_and_old_kept(tmp_path):
    dd = _dd(tmp_path / "d")
    good = tmp_path / "good.lanthorn"
    good.write_bytes(make_fake_bundle("good"))
    dd.install_model(good)
    bad = tmp_path / "bad.lanthorn"
    bad.write_bytes(make_fake_bundle("bad")[:-3] + b"xyz")
    with pytest.raises(StorageError, match="keeping the old one"):
        dd.install_model(bad)
    assert dd.load_model()[0].name == "good"


def test_corrupt_current_falls_back_to_previous_and_is_set_aside(tmp_path):
    dd = _dd(tmp_path / "d")
    for name in ("old", "new"):
        (tmp_path / name).write_bytes(make_fake_bundle(name))
        dd.install_model(tmp_path / name)
    dd.current_path.write_bytes(b"garbage")
    model, source, messages = dd.load_model()
    assert (model.name, source) == ("old", "previous")
    assert "current model failed to load" in messages[0]
    rejected = sorted(p.name for p in dd.rejected_dir.iterdir())
    assert any(n.endswith("current.lanthorn") for n in rejected)
    why = next(dd.rejected_dir.glob("*.why.txt")).read_text()
    assert "checksum mismatch" in why


def test_no_model_uses_shipped_then_none(tmp_path):
    shipped = tmp_path / "shipped.lanthorn"
    shipped.write_bytes(make_fake_bundle("shipped"))
    model, source, _ = _dd(tmp_path / "a", shipped).load_model()
    assert (model.name, source) == ("shipped", "shipped")
    model, source, messages = _dd(tmp_path / "b", tmp_path / "missing").load_model()
    assert model is None and source is None and "idle animation" in messages[-1]


def test_corrupt_settings_give_defaults_and_keep_the_bad_file(tmp_path):
    dd = _dd(tmp_path)
    dd.settings_path.write_text("{ not json", encoding="utf-8")
    settings, messages = dd.load_settings()
    assert settings == {} and "using defaults" in messages[0]
    kept = list(dd.rejected_dir.glob("*settings.json"))
    assert kept and kept[0].read_text() == "{ not json"
    dd.update_settings("params", {"brightness": 5})
    assert dd.load_settings()[0]["params"] == {"brightness": 5}


def test_presets(tmp_path):
    dd = _dd(tmp_path)
    dd.save_preset("evening", {"brightness": 20})
    assert dd.list_presets() == ["evening"] and dd.load_preset("evening") == {"brightness": 20}
    with pytest.raises(StorageError, match="no preset named 'morning'.*evening"):
        dd.load_preset("morning")
    with pytest.raises(StorageError, match="letters, digits"):
        dd.save_preset("../etc", {})
    dd.delete_preset("evening")
    assert dd.list_presets() == []


def test_unusable_data_dir_still_gives_a_piece_on_defaults(tmp_path):
    """A data dir that cannot be created (here: under a file; on a gallery, a read-only
    card) must not stop the piece: defaults in memory, the shipped model, and the reason in
    ``problems`` (shown by `status`); every write is a clear StorageError."""
    f = tmp_path / "file"
    f.write_text("x")
    dd = DataDir(f / "sub")
    assert any("cannot use data directory" in p for p in dd.problems)
    assert dd.load_settings() == ({}, [])
    model, source, _ = dd.load_model()
    assert source == "shipped" and model is not None
    with pytest.raises(StorageError, match="could not write settings.json"):
        dd.update_settings("params", {"brightness": 3})
    assert any("could not write settings.json" in p for p in dd.problems)


WRITER = textwrap.dedent("""
    import sys, itertools
    sys.path.insert(0, {tests!r})
    from console_fakes import fake_loader, make_fake_bundle
    from lanthorn.device.storage.storage import DataDir
    dd = DataDir({root!r}, loader=fake_loader, shipped_model=None)
    src = {root!r} + "/src.lanthorn"
    for i in itertools.count():
        with open(src, "wb") as f:
            f.write(make_fake_bundle(f"m{{i}}", size=2_000_000))  # big: kills land mid-write
        dd.install_model(src)
        dd.update_settings("params", {{"brightness": i % 101, "pad": "x" * 20000}})
        if i == 0:
            print("ready", flush=True)  # one good state exists from here on
""")


@pytest.mark.slow
def test_power_cut_mid_write_leaves_a_loadable_state(tmp_path):
    """SIGKILL a process that installs models and saves settings in a loop, many times
    at random moments: the data dir must always load a model and valid settings."""
    root = str(tmp_path / "d")
    import random
    rng = random.Random(7)
    last_seen, leftovers = -1, 0
    # Kill at random moments; keep going (bounded) until at least one kill has landed in
    # the middle of a write, so the test always exercises a real interrupted write.
    for attempt in range(60):
        if attempt >= 6 and leftovers > 0:
            break
        proc = subprocess.Popen([sys.executable, "-c", WRITER.format(tests=str(TESTS), root=root)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        dd = _dd(root)
        leftovers += dd.leftovers_removed  # > 0: the kill landed in the middle of a write
        model, source, messages = dd.load_model()
        assert model is not None and source == "current" and messages == [], messages
        settings, messages = dd.load_settings()
        assert messages == [] and 0 <= settings.get("params", {}).get("brightness", 0) <= 100
        # the file left behind by an interrupted write is never the current one
        assert not list(dd.rejected_dir.iterdir())
        last_seen = int(model.name[1:])
    assert last_seen >= 0
    assert leftovers > 0, "no kill landed mid-write; the test did not exercise a power cut"
