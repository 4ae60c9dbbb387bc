"""The multi-file operations the crash-state harness (:mod:`.crash_states`) replays: a model
install with its rollback slot, presets, settings, the exhibition lock, the device's first
take into its dataset, a fault-log line. Each boots the real storage loaders on a crash
state and says what is neither the old nor the new version.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

from lanthorn.host.torture.crash_states import Scenario, run_scenario

MAGIC = b"CRASHMDL"


def blob(name: str, size: int = 3000) -> bytes:
    """A checksummed stand-in bundle: the loader refuses any torn or mixed copy."""
    body = name.encode() + b"\n" + bytes(random.Random(name).randrange(256) for _ in range(size))
    return MAGIC + hashlib.sha256(body).digest() + body


class Blob:
    def __init__(self, data: bytes):
        self.name = data[40:].split(b"\n", 1)[0].decode()


def load_blob(path: str) -> Blob:
    data = Path(path).read_bytes()
    if data[:8] != MAGIC or hashlib.sha256(data[40:]).digest() != data[8:40]:
        raise ValueError("checksum mismatch")
    return Blob(data)


def _dd(root: Path):
    from lanthorn.device.storage.storage import DataDir
    return DataDir(root, loader=load_blob, shipped_model=None, shipped_voice=None)


def _files(state: Path, old: dict, new: dict, names) -> list[str]:
    """Each of ``names`` is its old or its new version (absent counts as a version)."""
    out = []
    for rel in names:
        p = state / rel
        got = p.read_bytes() if p.is_file() else None
        if got not in (old.get(rel), new.get(rel)):
            what = "missing" if got is None else f"{len(got)} bytes, neither old nor new"
            out.append(f"{rel} is {what}")
    return out


# --- the model slots: install with the rollback slot
def _install_prepare(root):
    dd = _dd(root)
    for name in ("P", "A"):
        src = dd.incoming_dir / f"{name}.lanthorn"
        src.write_bytes(blob(name))
        dd.install_model(src)


def _install_act(root):
    from lanthorn.device.storage.atomic import atomic_write_bytes
    dd = _dd(root)
    path = dd.incoming_dir / "B.lanthorn"  # what a finished push leaves: verified, synced
    atomic_write_bytes(path, blob("B"))
    dd.install_model(path)


def _install_check(state, old, new):
    out = _files(state, old, new, ["models/current.lanthorn", "models/previous.lanthorn"])
    model, source, _ = _dd(state).load_model()
    if model is None or model.name not in ("A", "B"):
        out.append(f"boots {getattr(model, 'name', None)} ({source}), not A (old) or B (new)")
    return out


# --- presets and settings
def _presets_prepare(root):
    _dd(root).save_preset("calm", {"brightness": 30})


def _presets_act(root):
    dd = _dd(root)
    dd.save_preset("calm", {"brightness": 70})
    dd.save_preset("evening", {"brightness": 10})
    dd.delete_preset("calm")


def _presets_check(state, old, new):
    out = []
    for name, allowed in (("calm", ({"brightness": 30}, {"brightness": 70}, None)),
                          ("evening", (None, {"brightness": 10}))):
        p = state / "presets" / f"{name}.json"
        try:
            got = json.loads(p.read_text()) if p.exists() else None
        except ValueError:
            got = "unreadable"
        if got not in allowed:
            out.append(f"preset {name} reads {got!r}")
    return out


def _settings_prepare(root):
    _dd(root).save_settings({"params": {"brightness": 30}})


def _settings_act(root):
    _dd(root).save_settings({"params": {"brightness": 80, "palette": "ember"}})


def _settings_check(state, old, new):
    out = _files(state, old, new, ["settings.json"])
    settings, messages = _dd(state).load_settings()
    if messages or settings.get("params", {}).get("brightness") not in (30, 80):
        out.append(f"settings load as {settings} ({messages})")
    return out


# --- the exhibition lock: lock, a wrong PIN (failure count saved), unlock
def _lock(root):
    """The lock on a clock where every look is 10 minutes later (no lockout waits)."""
    from lanthorn.device.console.exhibition_lock import ExhibitionLock
    ticks = iter(range(0, 10 ** 9, 600))
    return ExhibitionLock(_dd(root), clock=lambda: float(next(ticks)))


def _lock_act(root):
    _lock(root).lock("4711")


def _wrong_pin_act(root):
    from lanthorn.errors import UserError
    try:
        _lock(root).unlock("0000")
    except UserError:
        pass


def _lock_check(state, old, new):
    out = _files(state, old, new, ["lock.json"])
    st, _ = _dd(state).load_lock()
    want = {"locked" if old.get("lock.json") else "unlocked",
            "locked" if new.get("lock.json") else "unlocked"}
    if st not in want:
        out.append(f"the lock reads {st!r}, expected {' or '.join(sorted(want))}")
    return out


# --- the device's first take: dataset, its source, the recording and the manifest's pin
def _take_act(root):
    import numpy as np

    from lanthorn.device.console.console_record import RECORD_SOURCE, device_dataset
    from lanthorn.device.piece import frames
    from lanthorn.device.storage.dataset import write_recording
    dd = _dd(root)
    assert device_dataset(dd.recordings_dir, frames.DEFAULT_RATE_HZ, frames.CHANNELS, "tap", dd)[0]
    rows = np.random.default_rng(0).random((25, frames.N_CHANNELS)).round(3)
    write_recording(dd.recordings_dir, RECORD_SOURCE, "tap-1", rows, "tap")


def _take_check(state, old, new):
    from lanthorn.device.storage.dataset import DataError, load_dataset
    folder = state / "dataset"
    out = _files(state, old, new, ["dataset/recordings/device/tap-1.csv"])
    if not (folder / "manifest.json").exists():
        return out
    try:
        ds = load_dataset(folder)
    except (DataError, ValueError, OSError) as exc:
        return out + [f"the dataset does not load: {exc}"]
    if len(ds.recordings) not in (0, 1):
        out.append(f"{len(ds.recordings)} takes")
    pinned = json.loads((folder / "manifest.json").read_text()).get("sessions") or {}
    for key in pinned:  # the manifest must never name a take that is not there
        source, session = key.split("/", 1)
        if not (folder / "recordings" / source / f"{session}.csv").exists():
            out.append(f"the manifest pins {key} but its file is gone")
    return out


# --- the fault log: one line appended
def _log_prepare(root):
    from lanthorn.device.storage.fault_log import FaultLog
    FaultLog(root / "faults.log").record("touch", "failed", "old")


def _log_act(root):
    from lanthorn.device.storage.fault_log import FaultLog
    FaultLog(root / "faults.log").record("touch", "recovered", "new")


def _log_check(state, old, new):
    from lanthorn.device.storage.fault_log import FaultLog
    got = [e["detail"] for e in FaultLog(state / "faults.log").entries()]
    return [] if got in (["old"], ["old", "new"]) else [f"the fault log reads {got}"]


def _first_boot_act(root):
    _dd(root).save_preset("calm", {"brightness": 70})  # the folders are made at first boot


def _first_boot_check(state, old, new):
    p = state / "presets" / "calm.json"
    got = json.loads(p.read_text()) if p.exists() else None
    return [] if got in (None, {"brightness": 70}) else [f"preset calm reads {got!r}"]


SCENARIOS = (
    Scenario("first boot, then a preset", lambda r: None, _first_boot_act, _first_boot_check),
    Scenario("install with rollback slot", _install_prepare, _install_act, _install_check),
    Scenario("presets", _presets_prepare, _presets_act, _presets_check),
    Scenario("settings", _settings_prepare, _settings_act, _settings_check),
    Scenario("lock", lambda r: _dd(r), _lock_act, _lock_check),
    Scenario("wrong PIN", _lock_act, _wrong_pin_act, _lock_check),
    Scenario("unlock", _lock_act, lambda r: _lock(r).unlock("4711"), _lock_check),
    Scenario("first take into the dataset", lambda r: _dd(r), _take_act, _take_check),
    Scenario("fault log line", _log_prepare, _log_act, _log_check),
)


# --- a technician's visit: every operation above in one go, no restart in between
_DAY_FILES = ("models/current.lanthorn", "models/previous.lanthorn", "settings.json",
              "presets/calm.json", "presets/evening.json", "lock.json", "dataset/manifest.json",
              "dataset/recordings/device/tap-1.csv", "faults.log")


def _day_act(root):
    for step in (_install_act, lambda r: _dd(r).rollback(), _presets_act, _settings_act,
                 _lock_act, _wrong_pin_act, lambda r: _lock(r).unlock("4711"), _take_act,
                 _log_act):
        step(root)


def _day_check(state, old, new):
    out = []
    for rel in _DAY_FILES:  # each file is one of the versions it went through (or absent)
        p = state / rel
        if rel != "faults.log" and p.is_file() and p.read_bytes() not in DAY.history.get(rel, ()):
            out.append(f"{rel} is none of the versions it had")
    model, source, _ = _dd(state).load_model()
    if model is None or model.name not in ("A", "B"):
        out.append(f"boots {getattr(model, 'name', None)} ({source})")
    if _dd(state).load_lock()[0] == "damaged":
        out.append("the lock file is damaged")
    return out + _take_check(state, old, new)


def _day_prepare(root):
    _install_prepare(root)
    _presets_prepare(root)
    _settings_prepare(root)
    _log_prepare(root)


DAY = Scenario("a technician's visit (all of them in a row)", _day_prepare, _day_act, _day_check)
TEARS_FULL = (0.0, 0.25, 0.5, 0.75, 0.999)


def run(work: Path, budget: dict, seed: int = 8) -> dict:
    """Every scenario's crash states (``budget["bits"]``: all subsets of up to that many
    un-synced operations per crash point, a sample beyond; ``budget["full"]``: the
    technician's visit too, and contents torn at five places); figures per scenario."""
    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    full = budget.get("full", False)
    tears = TEARS_FULL if full else (0.5,)
    todo = SCENARIOS + ((DAY,) if full else ())
    per = {sc.name: run_scenario(sc, work, budget["bits"], seed, tears) for sc in todo}
    failures = [p for f in per.values() for p in f["problems"]]
    return {"crash_states": sum(f["states"] for f in per.values()),
            "bad_states": sum(f["bad_states"] for f in per.values()),
            "operations": len(per), "bits": budget["bits"], "scenarios": per,
            "seconds": round(time.monotonic() - t0, 1), "failures": failures}
