"""The device's data directory: models, settings, presets, rejected files and recordings.

A piece runs unattended for months; its power is cut every evening. So every write here
goes through :mod:`lanthorn.device.storage.atomic` (temporary file, fsync, rename, fsync of the
directory), and every read assumes the file may be bad: a model that does not load is set
aside in ``rejected/`` (with a note saying why) and the previous one is used; settings that
do not parse fall back to defaults, again keeping the bad file for a person to look at.

Layout::

    DIR/models/current.lanthorn     the model the loop runs
    DIR/models/previous.lanthorn    the one before (rollback target)
    DIR/models/voice-current.lanthorn   the voice the piece speaks with (second slot)
    DIR/models/voice-previous.lanthorn  the voice before (rollback target)
    DIR/models/incoming/            a push in progress (partial file, for resume)
    DIR/settings.json               saved parameters
    DIR/lock.json                   the exhibition lock (salted PIN hash; read fail-closed)
    DIR/presets/NAME.json           named sets of parameter values
    DIR/faults.log                  the on-card fault log (device/storage/fault_log.py; 'log' shows it)
    DIR/rejected/                   bad files set aside: TIMESTAMP-NAME + TIMESTAMP-NAME.why.txt
    DIR/dataset/                    demonstrations recorded on the device (dataset format;
                                    'lanthorn fetch PORT --data DIR' pulls them)

With no model in the directory at all, the shipped default bundle
(``lanthorn/device/models/temperament.lanthorn``) is used; likewise the shipped voice
(``voice.lanthorn``). The two slots share one mechanism (load with fall-back, verified
install, rollback), parametrised by the slot's name: ``"model"`` (the gesture model) and
``"voice"``.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lanthorn.device.storage.atomic import atomic_write_text, fsync_dir, make_dirs
from lanthorn.device.storage.fault_log import FaultLog
from lanthorn.device.storage.stores import (  # noqa: F401
    SETTINGS_VERSION,
    LockFile,
    PresetShelf,
    SettingsFile,
    StorageError,
    card_refused,
)
from lanthorn.device.storage.stores import why as _why

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models" / "temperament.lanthorn"
SHIPPED_VOICE = Path(__file__).resolve().parents[1] / "models" / "voice.lanthorn"


def shipped_model_for(profile) -> Path:
    """The shipped fall-back model of the piece a profile describes: its ``model`` (a name
    in lanthorn/device/models, or a path relative to the profile), else the default piece's."""
    name = getattr(profile, "model", None)
    if not name:
        return SHIPPED_MODEL
    if name.endswith(".lanthorn") or "/" in name:
        path = Path(name)
        return path if path.is_absolute() else Path(profile.source).parent / path
    return SHIPPED_MODEL.parent / f"{name}.lanthorn"
SLOTS = ("model", "voice")


def _default_loader(path: str):
    from lanthorn.device.engine.runtime import load  # lazily: storage must import without the engine
    return load(path)


def _default_voice_loader(path: str):
    from lanthorn.device.piece.voice import load_voice  # lazily, as above
    return load_voice(path)


class Slot:
    """Where one kind of model lives: its current and previous files, how it is loaded and
    verified, and the shipped fall-back."""

    def __init__(self, name: str, current: Path, previous: Path, loader, shipped: Path | None):
        self.name, self.current_path, self.previous_path = name, current, previous
        self.loader, self.shipped = loader, shipped


class ModelFiles:
    """The model slots' files: load with fall-back, verified install, rollback. Mixed into
    :class:`DataDir`, whose folders, lock, ``reject`` and ``problems`` it uses."""

    if TYPE_CHECKING:  # what DataDir provides (declared for the type checker only)
        models_dir: Path
        incoming_dir: Path
        slots: dict[str, Slot]
        _lock: threading.RLock

        def reject(self, path: Path, reason: str) -> Path | None: ...
        def _kept(self, kept: Path | None) -> str: ...
        def _problem(self, text: str) -> None: ...

    # --- models
    def slot(self, name: str = "model") -> Slot:
        if name not in self.slots:
            raise StorageError(f"unknown model slot {name!r} (slots: {', '.join(self.slots)})")
        return self.slots[name]

    def load_model(self, check: Callable[[Any], Any] | None = None, skip: tuple = (),
                   slot: str = "model"):
        """(model or None, source, messages): current, else previous, else the shipped bundle.

        A file that fails to load, or that ``check(model)`` refuses (it does not fit or run
        on this object), is set aside in rejected/ with the reason, and the next one tried;
        whatever its header says, the answer is always a model that passed or None. Sources
        named in ``skip`` are passed over (a model that just failed while running).
        ``source`` is "current", "previous", "shipped" or None; with None the loop runs its
        built-in idle animation and shows ``messages`` on the console.
        """
        messages: list[str] = []
        sl = self.slot(slot)
        what = "model" if slot == "model" else slot
        with self._lock:
            for source, path in (("current", sl.current_path), ("previous", sl.previous_path)):
                if source in skip or not path.exists():
                    continue
                try:
                    model = sl.loader(str(path))
                    if check is not None:
                        check(model)
                    return model, source, messages
                except Exception as exc:  # any failure means this file is unusable
                    reason = f"{source} {what} failed to load: {_why(exc)}"
                    kept = self.reject(path, reason)
                    messages.append(f"{reason}; {self._kept(kept)}")
            if "shipped" not in skip and sl.shipped is not None and sl.shipped.exists():
                try:
                    model = sl.loader(str(sl.shipped))
                    if check is not None:
                        check(model)
                    if messages:
                        messages.append(f"using the shipped default {what}")
                    return model, "shipped", messages
                except Exception as exc:
                    messages.append(f"the shipped default {what} failed to load: {_why(exc)}")
            messages.append("no usable model: running the built-in idle animation "
                            "(push one with 'lanthorn push')" if slot == "model" else
                            f"no usable {what}: the phrase banks speak instead")
            return None, None, messages

    def install_model(self, new_path: str | os.PathLike, slot: str = "model",
                      check: Callable[[Any], Any] | None = None, loaded: Any = None):
        """Verify ``new_path`` by loading it (and ``check(model)``), then make it current;
        the old current becomes previous. Returns the loaded model, loaded once: the
        caller binds it. ``loaded``: the model the caller already loaded and verified from
        this very file (the piece loads a push once, to see which slot it is for). Raises
        UserError (and changes nothing) if the file does not load or pass ``check``.

        Every step keeps a loadable current on disk: previous is replaced through a hard
        link (or copy) of current first, then the new file is renamed over current.
        """
        new_path = Path(new_path)
        sl = self.slot(slot)
        model = loaded
        if model is None:
            try:
                model = sl.loader(str(new_path))
                if check is not None:
                    check(model)
            except Exception as exc:
                raise StorageError(f"the new {slot} does not load, keeping the old one: "
                                   f"{_why(exc)}") from None
        with self._lock:
            self._swap_in(sl, new_path)
        return model

    def _swap_in(self, sl: Slot, new_path: Path) -> None:
        """Rename ``new_path`` over the slot's current (the old current kept as previous)."""
        slot = sl.name
        if sl.current_path.exists() and _same_file_bytes(new_path, sl.current_path):
            # re-pushing the running model: nothing to swap, and the rollback slot must
            # keep the model before it (not become a second copy of this one)
            if new_path.resolve().parent == self.incoming_dir.resolve():
                new_path.unlink(missing_ok=True)
            return
        staged = self.models_dir / ".staged.lanthorn"
        tmp_prev = self.models_dir / ".previous.tmp"
        try:
            ours = new_path.resolve().parent in (self.models_dir.resolve(),
                                                 self.incoming_dir.resolve())
            names = {p.name for s in self.slots.values()
                     for p in (s.current_path, s.previous_path)}
            if not ours or new_path.name in names:
                shutil.copyfile(new_path, staged)  # same filesystem for an atomic rename
                with open(staged, "rb+") as f:
                    os.fsync(f.fileno())
                new_path = staged
            if sl.current_path.exists():
                if tmp_prev.exists():
                    tmp_prev.unlink()
                try:
                    os.link(sl.current_path, tmp_prev)
                except OSError:
                    shutil.copyfile(sl.current_path, tmp_prev)
                os.replace(tmp_prev, sl.previous_path)
            os.replace(new_path, sl.current_path)
        except OSError as exc:  # full or read-only card: the old files are all still there
            for leftover in (staged, tmp_prev):
                try:
                    leftover.unlink()
                except OSError:
                    pass
            why = exc.strerror or str(exc)
            self._problem(f"could not store a new {slot}: {why}")
            raise StorageError(card_refused(exc, f"store the new {slot}") +
                               f"; the old {slot} keeps running") from None
        fsync_dir(self.models_dir)

    def rollback_target(self, slot: str = "model") -> Path:
        """What 'model rollback' goes back to: previous, else (after the first push replaced
        the shipped default) the shipped bundle. Raises StorageError when there is none."""
        sl = self.slot(slot)
        if sl.previous_path.exists():
            return sl.previous_path
        if sl.shipped is not None and sl.shipped.exists() and sl.current_path.exists():
            return sl.shipped
        raise StorageError(f"there is no previous {slot} to roll back to")

    def rollback(self, slot: str = "model", check: Callable[[Any], Any] | None = None):
        """Make the rollback target (:meth:`rollback_target`: previous, else the shipped
        bundle) current again, the technician's "undo" of a push; returns the model, loaded
        and checked once. Raises StorageError when there is nothing to go back to."""
        with self._lock:
            return self.install_model(self.rollback_target(slot), slot, check=check)


class DataDir(ModelFiles):
    """One data directory. Thread-safe for the console thread and the loop together.

    ``loader(path) -> model`` loads and verifies a bundle (default: the int8 runtime);
    ``shipped_model`` is the fall-back bundle used when the directory holds no model.
    """

    def __init__(self, path: str | os.PathLike, loader: Callable[[str], Any] | None = None,
                 shipped_model: str | os.PathLike | None = SHIPPED_MODEL,
                 voice_loader: Callable[[str], Any] | None = None,
                 shipped_voice: str | os.PathLike | None = SHIPPED_VOICE):
        self.root = Path(path)
        self.models_dir = self.root / "models"
        self.current_path = self.models_dir / "current.lanthorn"
        self.previous_path = self.models_dir / "previous.lanthorn"
        self.incoming_dir = self.models_dir / "incoming"
        self.settings_path = self.root / "settings.json"
        self.presets_dir = self.root / "presets"
        self.rejected_dir = self.root / "rejected"
        # demonstrations recorded on the device, as a dataset (DIR/dataset/manifest.json,
        # DIR/dataset/recordings/<source>/...); 'lanthorn fetch' pulls them to a laptop.
        # Older devices kept it in DIR/recordings (whose recordings/ then doubled the name).
        legacy = self.root / "recordings"
        self.recordings_dir = legacy if (legacy / "manifest.json").exists() else self.root / "dataset"
        self.loader = loader or _default_loader
        self.shipped_model = Path(shipped_model) if shipped_model else None
        self.lock_path = self.root / "lock.json"
        self.slots = {
            "model": Slot("model", self.current_path, self.previous_path, self.loader,
                          self.shipped_model),
            "voice": Slot("voice", self.models_dir / "voice-current.lanthorn",
                          self.models_dir / "voice-previous.lanthorn",
                          voice_loader or _default_voice_loader,
                          Path(shipped_voice) if shipped_voice else None)}
        self._lock = threading.RLock()
        self.settings = SettingsFile(self)
        self.lock_file = LockFile(self)
        self.presets = PresetShelf(self)
        #: one line per fault and recovery, kept across power cuts (``log`` on the console)
        self.faults = FaultLog(self.root / "faults.log")
        #: what could not be written or set aside (shown by `status`): the piece runs on
        #: whatever it could read, on defaults in memory when it could read nothing
        self.problems: list[str] = []
        try:
            for d in (self.models_dir, self.incoming_dir, self.presets_dir, self.rejected_dir,
                      self.recordings_dir):
                make_dirs(d)  # (names synced: a preset saved into presets/ must survive)
        except OSError as exc:  # read-only, full, or not ours: run anyway, say so
            self._problem(f"cannot use data directory {self.root}: {exc.strerror or exc}; "
                          "running on what it holds (or on defaults), changes are not kept")
        self.leftovers_removed = self._remove_leftovers()

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)
            del self.problems[:-10]
            self.faults.record("storage", "problem", text)

    #: a partial push older than this is not going to be resumed: boot deletes it
    STALE_PART_S = 24 * 3600.0

    def _remove_leftovers(self) -> int:
        """Delete what power cuts leave behind: temporary files that were never renamed into
        place (nothing refers to them) and partial pushes too old to be resumed. Returns how
        many were removed. Months of nightly power cuts must not fill the card."""
        n = 0
        now = time.time()
        for d in (self.root, self.models_dir, self.presets_dir, self.incoming_dir):
            try:
                found = list(d.glob(".*.tmp")) + list(d.glob(".staged.lanthorn"))
                if d == self.incoming_dir:
                    found += [p for p in d.glob("*.part")
                              if now - p.stat().st_mtime > self.STALE_PART_S]
                    found += list(d.glob("*.lanthorn"))  # verified but never installed
            except OSError:
                continue
            for p in found:
                try:
                    p.unlink()
                    n += 1
                except OSError:
                    pass
        return n

    # --- rejected files
    def reject(self, path: Path, reason: str) -> Path | None:
        """Move a bad file into rejected/ with a note saying why; returns its new path, or
        None when it cannot be moved (read-only or full storage: it stays where it is, is
        skipped again at the next start, and `status` says so)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.rejected_dir / f"{stamp}-{path.name}"
        n = 1
        while target.exists():
            n += 1
            target = self.rejected_dir / f"{stamp}-{n}-{path.name}"
        with self._lock:
            try:
                os.replace(path, target)
            except OSError as exc:
                self._problem(f"cannot set aside {path.name} ({exc.strerror or exc}); "
                              "it is skipped at every start")
                return None
            try:
                atomic_write_text(target.with_name(target.name + ".why.txt"), reason.rstrip() + "\n")
            except OSError:
                pass  # the file is aside; the note is a courtesy
            fsync_dir(path.parent)
        return target

    def _kept(self, kept: Path | None) -> str:
        return (f"set aside as {kept.relative_to(self.root)}" if kept is not None
                else "it could not be set aside")

    # --- settings, the exhibition lock, presets: their own small stores (device/storage/stores.py)
    def load_settings(self) -> tuple[dict, list[str]]:
        """(settings dict, messages); corrupt settings: defaults ({}) + a warning."""
        return self.settings.load()

    def save_settings(self, settings: dict) -> None:
        self.settings.save(settings)

    def update_settings(self, key: str, value: Any) -> None:
        """Read-modify-write one top-level key of settings.json atomically."""
        self.settings.update(key, value)

    def load_lock(self) -> tuple[str, dict | None]:
        """("unlocked", None), ("locked", record) or ("damaged", None): read fail-closed."""
        return self.lock_file.load()

    def save_lock(self, record: dict) -> None:
        self.lock_file.save(record)

    def clear_lock(self) -> None:
        self.lock_file.clear()

    def save_preset(self, name: str, values: dict) -> None:
        self.presets.save(name, values)

    def load_preset(self, name: str) -> dict:
        return self.presets.load(name)

    def list_presets(self) -> list[str]:
        return self.presets.names()

    def delete_preset(self, name: str) -> None:
        self.presets.delete(name)

    def _write_text(self, path: Path, text: str) -> None:
        """An atomic write that a full or read-only card turns into a clear StorageError
        (the old file stays as it was) and a line in `status`."""
        with self._lock:
            try:
                atomic_write_text(path, text)
            except OSError as exc:
                why = exc.strerror or str(exc)
                self._problem(f"could not write {path.relative_to(self.root)}: {why}")
                raise StorageError(card_refused(exc, f"write {path.relative_to(self.root)}") +
                                   "; the change holds until the next restart") from None

    def refused(self, exc: OSError, what: str) -> StorageError:
        """A write the card refused anywhere else (a take, a trusted key): noted for
        ``status`` (and the fault log), and the one-line error for the person."""
        self._problem(f"could not {what}: {exc.strerror or exc}")
        return StorageError(card_refused(exc, what))


def _same_file_bytes(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes (sizes first; models are small)."""
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False
