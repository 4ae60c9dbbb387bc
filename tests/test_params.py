"""The parameter table: parsing, validation messages, thread-safety, persistence, docs."""
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lanthorn.device.piece.params import PARAMS, ParamError, ParamStore, markdown
from lanthorn.device.storage.storage import DataDir

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_names_unique():
    store = ParamStore()
    assert len(store.names()) == len(set(store.names())) == len(PARAMS)
    for p in PARAMS:
        assert p.check(p.default) == p.default
        assert p.parse(p.format(p.default)) == p.default  # text round trip


def test_set_text_and_range_message():
    store = ParamStore()
    assert store.set_text("brightness", "40") == 40 and store.get("brightness") == 40
    with pytest.raises(ParamError, match=r"brightness must be between 0 and 100 %, got 900"):
        store.set_text("brightness", "900")
    assert store.get("brightness") == 40  # the refused value changed nothing
    with pytest.raises(ParamError, match="whole number"):
        store.set_text("brightness", "40.5")
    with pytest.raises(ParamError, match="got bright"):
        store.set_text("brightness", "bright")


@pytest.mark.parametrize("name,text,expected", [
    ("speed", "2.5", 2.5), ("palette", "tide", "tide"), ("display_enabled", "off", False),
    ("quiet_hours", "22:00-08:00", "22:00-08:00"), ("quiet_hours", "off", "off"),
    ("phrases_calm", "hello | soft light|", ["hello", "soft light"]),
    ("phrases_shy", '["a", "b c"]', ["a", "b c"]),
])
def test_each_type_parses(name, text, expected):
    store = ParamStore()
    assert store.set_text(name, text) == expected and store.get(name) == expected


@pytest.mark.parametrize("name,text,fragment", [
    ("palette", "neon", "one of ember, tide"), ("quiet_hours", "25:00-08:00", "HH:MM-HH:MM"),
    ("quiet_mode", "nap", "dim, sleep"), ("display_enabled", "maybe", "on or off"),
    ("phrases_calm", "x" * 41, "longer than 40"), ("phrases_calm", "[1, 2", "malformed"),
    ("speed", "nan", "between 0.1 and 4 x"),
])
def test_bad_values_name_the_allowed_range(name, text, fragment):
    with pytest.raises(ParamError, match=fragment.replace("(", r"\(")):
        ParamStore().set_text(name, text)


def test_unknown_name_gets_a_hint():
    with pytest.raises(ParamError, match="did you mean brightness"):
        ParamStore().get("brightnes")


def test_version_counts_changes_only():
    store = ParamStore()
    v0 = store.version
    store.set("speed", 2.0)
    store.set("speed", 2.0)  # unchanged: the loop has nothing to notice
    assert store.version == v0 + 1
    store.reset()
    assert store.get("speed") == 1.0 and store.version == v0 + 2
    store.reset()
    assert store.version == v0 + 2


def test_concurrent_writers_and_readers_stay_consistent():
    store = ParamStore()
    errors = []

    def writer(k):
        for i in range(300):
            store.set("brightness", (i * k) % 101)

    def reader():
        for _ in range(300):
            snap = store.snapshot()
            if not 0 <= snap["brightness"] <= 100:
                errors.append(snap["brightness"])

    threads = [threading.Thread(target=writer, args=(k,)) for k in (1, 7)] + \
              [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_save_and_load_through_storage(tmp_path):
    dd = DataDir(tmp_path, loader=lambda p: p)
    store = ParamStore()
    store.set("brightness", 33)
    store.set("phrases_calm", ["one", "two"])
    store.save(dd)
    fresh = ParamStore()
    assert fresh.load(dd) == []
    assert fresh.get("brightness") == 33 and fresh.get("phrases_calm") == ["one", "two"]


def test_bad_saved_values_are_skipped_with_warnings():
    store = ParamStore()
    warnings = store.update_from_dict({"brightness": 900, "nonsense": 1, "speed": 2})
    assert store.get("brightness") == 60 and store.get("speed") == 2.0
    assert len(warnings) == 2 and any("900" in w for w in warnings)


def test_generated_docs_are_current():
    doc = (ROOT / "device" / "PARAMETERS.md").read_text(encoding="utf-8")
    assert doc == markdown(), "device/PARAMETERS.md is stale: run lanthorn params --markdown --out device/PARAMETERS.md"


def test_params_command_lists_table():
    out = subprocess.run([sys.executable, "-m", "lanthorn", "params"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "brightness" in out.stdout and "power_cap_ma" in out.stdout
    md = subprocess.run([sys.executable, "-m", "lanthorn", "params", "--markdown"],
                        capture_output=True, text=True)
    assert md.stdout == markdown()
