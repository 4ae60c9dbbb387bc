"""The crash-state harness itself: what it takes as guaranteed, and that it finds a write
that is not power-cut safe (so a clean result means something). The campaign over the
project's own multi-file operations runs in tests/test_torture.py::test_crash_states."""
from __future__ import annotations

import os

from lanthorn.device.storage.atomic import atomic_write_text
from lanthorn.host.torture.crash_states import Op, Scenario, _guaranteed, recording, run_scenario


def test_only_synced_data_and_synced_directory_changes_are_guaranteed():
    ops = [Op("create", "a.tmp", inode=1), Op("data", "a.tmp", inode=1, content=b"x"),
           Op("fsync", "a.tmp", inode=1, content=b"xy"), Op("rename", "a.tmp", "a", inode=1),
           Op("fsync_dir", "."), Op("unlink", "b")]
    assert _guaranteed(ops, 3) == {1, 2}           # the name of a.tmp is not yet sure
    assert _guaranteed(ops, 5) == {0, 1, 2, 3, 4}  # the directory sync makes both names sure
    assert 5 not in _guaranteed(ops, 6)            # an unlink after the last sync may be lost


def test_the_recorder_sees_the_atomic_recipe(tmp_path):
    with recording(tmp_path) as rec:
        atomic_write_text(tmp_path / "settings.json", "{}\n")
    assert [o.kind for o in rec.ops] == ["create", "data", "fsync", "rename", "fsync_dir"]
    assert rec.ops[2].content == b"{}\n" and rec.ops[3].dst == "settings.json"


def _in_place(root):
    with open(root / "settings.json", "w") as f:   # truncate, then write: no temp, no fsync
        f.write('{"brightness": 80}\n')


def _check(state, old, new):
    got = (state / "settings.json").read_bytes() if (state / "settings.json").exists() else None
    return [] if got in (old.get("settings.json"), new.get("settings.json")) else [f"{got!r}"]


def test_a_write_in_place_is_caught(tmp_path):
    def prepare(root):
        (root / "settings.json").write_text('{"brightness": 30}\n')
    f = run_scenario(Scenario("in place", prepare, _in_place, _check), tmp_path, bits=4)
    assert f["bad_states"] > 0 and "b''" in " ".join(f["problems"]) or "torn" in str(f)


def test_the_atomic_recipe_survives_every_state(tmp_path):
    def prepare(root):
        atomic_write_text(root / "settings.json", '{"brightness": 30}\n')

    def act(root):
        atomic_write_text(root / "settings.json", '{"brightness": 80}\n')
    f = run_scenario(Scenario("atomic", prepare, act, _check), tmp_path, bits=4)
    assert f["bad_states"] == 0 and f["states"] >= 5 and f["ops"] == 5
    assert not os.listdir(tmp_path / "atomic-live") == []
