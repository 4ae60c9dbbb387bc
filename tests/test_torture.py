"""The torture campaigns of `lanthorn torture`, bounded (seconds each, fixed seeds): the same
code as the published full run (device/RELIABILITY.md), smaller budgets. Each must find
nothing, and must really have done what it counts (a campaign that did nothing finds
nothing too)."""
from __future__ import annotations

import pytest

from lanthorn.host.torture import BOUNDED, run_campaign, table
from lanthorn.host.torture.storage_faults import can_mount


def campaign(name, tmp_path):
    figures = run_campaign(name, BOUNDED[name], tmp_path / name, seed=0)
    assert figures["failures"] == [], figures["failures"]
    assert table({name: figures})[1].endswith("| 0")
    return figures


def test_console_fuzz(tmp_path):
    f = campaign("fuzz", tmp_path)
    assert f["bytes_fuzzed"] >= BOUNDED["fuzz"]["bytes"] and f["lines"] > 50
    assert f["answered"] == f["lines"] and f["unanswered"] == 0 and f["extra_answers"] == 0
    assert f["alive"] and f["params_changed_without_ok"] == []


def test_push_faults(tmp_path):
    f = campaign("push", tmp_path)
    assert f["pushes_corrupted"] == BOUNDED["push"]["pushes"] and f["same_process"]
    assert f["clean_pushes_ok"] == f["clean_pushes"] > 0
    locked = f["locked_signature_pushes"]   # a locked piece: foreign/unsigned/edited refused
    assert locked.pop("signed by the trusted key, installed") == 1
    assert sum(locked.values()) == BOUNDED["push"]["signed"]


def test_power_cuts(tmp_path):
    f = campaign("power", tmp_path)
    assert f["storage"]["kills"] == BOUNDED["power"]["storage_kills"]
    assert f["storage"]["unbootable"] == 0 and f["storage"]["corrupt_settings"] == 0
    assert f["piece"]["restarts"] == BOUNDED["power"]["piece_kills"]


def test_storage_faults(tmp_path):
    if not can_mount():
        pytest.skip("full and read-only cards are real tmpfs mounts: needs root (mount)")
    f = campaign("storage", tmp_path)
    assert f["not_run"] == [] and f["storage_faults"] >= 5


def test_sensor_faults(tmp_path):
    f = campaign("sensors", tmp_path)
    assert f["fault_episodes"] == BOUNDED["sensors"]["episodes"] and f["crashes"] == 0
    assert f["detect_s_max"] <= 1.0 and f["touches_lit_while_other_parts_failed"] > 0
    assert f["stuck_episodes"] > 0 and f["stuck_reported"] == f["stuck_episodes"]


def test_soak(tmp_path):
    f = campaign("soak", tmp_path)
    assert f["inferences"] > 1000 and f["fds"][0] == f["fds"][1]
    full = f["fullrate"]   # 100 Hz, 60 fps and the voice, for simulated minutes here
    assert full["sensor_hz"] == 100.0 and full["led_fps"] == 60.0 and full["phrases"] > 0
    assert full["fds"][0] == full["fds"][1] and full["threads"][0] == full["threads"][1]
    assert set(full["slope_per_hour_after_warmup"]) == {"rss_kb", "gc_objects", "hours"}


def test_crash_states(tmp_path):
    f = campaign("crash", tmp_path)
    assert f["crash_states"] > 100 and f["bad_states"] == 0
    assert set(f["scenarios"]) >= {"install with rollback slot", "presets", "lock", "unlock",
                                   "wrong PIN", "settings", "first take into the dataset"}


def test_lock(tmp_path):
    f = campaign("lock", tmp_path)
    assert f["writes_refused_while_locked"] == f["writes_tried"]
    assert f["guesses_sent"] > f["guesses_evaluated"] >= 2 and f["unlocked_with_right_pin"]


def test_supervisor_restart_and_watchdog(tmp_path):
    f = campaign("supervisor", tmp_path)
    assert f["unit"]["Restart"] == "on-failure" and f["restarts"] == 2
    assert len(f["watchdog_detect_s"]) == 1


def test_a_mistyped_campaign_is_one_line(capsys, tmp_path):
    from lanthorn.cli import main
    assert main(["torture", "fuzzz", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown campaign 'fuzzz'" in err[0] and "supervisor" in err[0]
    assert main(["torture", "--markdown", str(tmp_path / "R.md"), "--from",
                 str(tmp_path / "none.json")]) == 2
