"""The data directory's small stores: saved parameters, the exhibition lock, presets.

Each is one file (or a folder of them) in the :class:`~lanthorn.device.storage.storage.DataDir`,
written atomically through it (a full or read-only card becomes a clear StorageError and a
line in ``status``) and read as if it may be bad: unreadable settings fall back to defaults
with the bad file set aside; a lock file that exists but cannot be read counts as locked
(a power cut or a bad card must never lift the exhibition lock); a corrupt preset is set
aside with a note. The stores share the data directory's lock, so the console thread and
the loop can use them together.
"""
from __future__ import annotations

import errno
import json
import re
from pathlib import Path
from typing import Any

from lanthorn.device.storage.atomic import fsync_dir
from lanthorn.errors import UserError

SETTINGS_VERSION = 1
_PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


class StorageError(UserError):
    """A storage request a person can fix (bad preset name, missing preset, ...)."""


#: what a card says when it cannot take a write: full (or over quota), read-only
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
CARD_ERRNOS = FULL_ERRNOS | {errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}


def card_refused(exc: OSError, what: str) -> str:
    """One line for a write the card refused: what could not be done, why in a person's
    words, and the way out. ``what`` is e.g. "write settings.json" or "keep the take"."""
    if exc.errno in FULL_ERRNOS:
        return (f"the card is full: could not {what}; free space on it (pull takes with "
                f"'lanthorn fetch' and delete them, 'preset delete NAME'); 'status' shows storage")
    if exc.errno == errno.EROFS:
        return (f"the card is read-only: could not {what}; a card that turns read-only is "
                f"failing: replace it (or remount it read-write); 'status' shows storage")
    return (f"the card refused: could not {what} ({exc.strerror or exc}); 'status' shows "
            "storage")


def why(exc: BaseException) -> str:
    """An exception as one short line for a message or a note."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _json_object(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


class SettingsFile:
    """DIR/settings.json: the saved parameters (and older pieces' lock record)."""

    def __init__(self, dd):
        self.dd, self.path = dd, dd.settings_path

    def load(self) -> tuple[dict, list[str]]:
        """(settings dict, messages). Corrupt settings: defaults ({}) + a warning, the bad
        file set aside in rejected/."""
        with self.dd._lock:
            if not self.path.exists():
                return {}, []
            try:
                return _json_object(self.path), []
            except (ValueError, UnicodeError, OSError, RecursionError) as exc:
                reason = f"settings.json is unreadable ({why(exc)}); using defaults"
                kept = self.dd.reject(self.path, reason)
                return {}, [f"{reason}; {self.dd._kept(kept)}" if kept is not None
                            else f"{reason}; the bad file could not be set aside"]

    def save(self, settings: dict) -> None:
        data = dict(settings, version=SETTINGS_VERSION)
        self.dd._write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def update(self, key: str, value: Any) -> None:
        """Read-modify-write one top-level key atomically."""
        with self.dd._lock:
            settings, _ = self.load()
            settings[key] = value
            self.save(settings)


def lock_record_ok(record) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("salt"), str)
            and isinstance(record.get("hash"), str))


class LockFile:
    """DIR/lock.json: the exhibition lock (a salted PIN hash), read fail-closed."""

    def __init__(self, dd):
        self.dd, self.path = dd, dd.lock_path

    def load(self) -> tuple[str, dict | None]:
        """("unlocked", None), ("locked", record) or ("damaged", None). A lock file that
        exists but cannot be read or parsed counts as locked. (Older pieces kept the record
        in settings.json under "lock"; it is still honoured when there is no lock file.)"""
        with self.dd._lock:
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                settings, _ = self.dd.settings.load() if self.dd.settings_path.exists() else ({}, [])
                legacy = settings.get("lock")
                return ("locked", legacy) if lock_record_ok(legacy) else ("unlocked", None)
            except (OSError, UnicodeError):
                return "damaged", None
            try:
                record = json.loads(text)
            except ValueError:
                return "damaged", None
            return ("locked", record) if lock_record_ok(record) else ("damaged", None)

    def save(self, record: dict) -> None:
        self.dd._write_text(self.path, json.dumps(record, sort_keys=True) + "\n")

    def clear(self) -> None:
        """Lift the lock on disk. Deleting needs no free space, so `unlock` works on a full
        card; a legacy record in settings.json is dropped too (best effort)."""
        dd = self.dd
        with dd._lock:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                reason = exc.strerror or str(exc)
                dd._problem(f"could not remove lock.json: {reason}")
                raise StorageError(card_refused(exc, "remove lock.json") +
                                   "; the lock stays on after a restart") from None
            fsync_dir(dd.root)
            if dd.settings_path.exists():
                settings, _ = dd.settings.load()
                if "lock" in settings:
                    settings.pop("lock")
                    try:
                        dd.settings.save(settings)
                    except StorageError:
                        pass


class PresetShelf:
    """DIR/presets/NAME.json: named sets of parameter values."""

    def __init__(self, dd):
        self.dd, self.folder = dd, dd.presets_dir

    def path(self, name: str) -> Path:
        if not _PRESET_NAME.match(name or ""):
            raise StorageError(f"preset name {name!r} must be 1-32 letters, digits, '-' or '_'")
        return self.folder / f"{name}.json"

    def save(self, name: str, values: dict) -> None:
        self.dd._write_text(self.path(name), json.dumps(values, indent=2, sort_keys=True) + "\n")

    def load(self, name: str) -> dict:
        path = self.path(name)
        if not path.exists():
            have = ", ".join(self.names()) or "none saved yet"
            raise StorageError(f"no preset named {name!r} (presets: {have})")
        try:
            return _json_object(path)
        except (ValueError, UnicodeError, OSError, RecursionError) as exc:
            kept = self.dd.reject(path, f"preset {name} is unreadable: {why(exc)}")
            raise StorageError(f"preset {name!r} is corrupt; {self.dd._kept(kept)}") from None

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json") if _PRESET_NAME.match(p.stem))

    def delete(self, name: str) -> None:
        path = self.path(name)
        if not path.exists():
            raise StorageError(f"no preset named {name!r}")
        try:
            path.unlink()
        except OSError as exc:
            self.dd._problem(f"could not delete presets/{name}.json: {exc.strerror or exc}")
            raise StorageError(card_refused(exc, f"delete preset {name!r}")) from None
        fsync_dir(self.folder)
