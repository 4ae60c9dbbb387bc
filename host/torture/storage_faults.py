"""Campaign 3b, storage faults: a full card, a read-only card, a corrupt settings file, a
model deleted or poisoned under the piece. Each case starts a real piece on the prepared
data directory; it must come up with light (frames shown) and a console, run a model it
could load (or the idle animation), say in ``status`` what it could not write, and let
``unlock`` work (a full card must not keep an object locked).

Full and read-only cards are real filesystems: a 64 KiB tmpfs, remounted read-only. That
needs mount(2), i.e. root; without it those cases are reported as not run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from lanthorn.device.storage.storage import SHIPPED_MODEL


def _mount_tmpfs(path: Path, size: str = "64k") -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def _remount_ro(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(path: Path) -> None:
    """Fill the filesystem holding ``path`` to the last byte."""
    for name, block in (("filler", 4096), ("filler2", 1)):
        fd = os.open(path / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while True:
                os.write(fd, b"\0" * block)
        except OSError:
            pass
        finally:
            os.close(fd)


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


def _seed_dir(root: Path, settings: bytes | None = None, current: bytes | None = None,
              previous: bool = False) -> None:
    (root / "models").mkdir(parents=True, exist_ok=True)
    if settings is not None:
        (root / "settings.json").write_bytes(settings)
    if previous:
        shutil.copyfile(SHIPPED_MODEL, root / "models" / "previous.lanthorn")
    if current is not None:
        (root / "models" / "current.lanthorn").write_bytes(current)


CORRUPT_SETTINGS = b'{"params": {"brightness": 20}, "version'  # cut by a power failure


def cases(poisoned: dict[str, bytes]) -> list[tuple[str, bool, dict]]:
    """(name, needs a mount, how to prepare). ``poisoned`` are bad bundles for current."""
    c = [
        ("corrupt settings.json", False, {"settings": CORRUPT_SETTINGS}),
        ("settings with a lone surrogate", False,
         {"settings": b'{"params": {"phrases_calm": ["\\ud800"], "brightness": 30}, "version": 1}'}),
        ("settings nested 100000 deep", False, {"settings": b"[" * 100000}),
        ("lock.json damaged", False, {"lock": b'{"salt": "00'}),
        ("model file deleted while running", False,
         {"current": SHIPPED_MODEL.read_bytes(), "previous": True, "delete_current": True}),
        ("empty read-only data dir", True, {"ro": True}),
        ("read-only + corrupt settings.json", True, {"ro": True, "settings": CORRUPT_SETTINGS}),
        ("read-only + corrupt current model", True,
         {"ro": True, "current": b"LANTHRN\0garbage", "previous": True}),
        ("full + corrupt settings.json", True, {"full": True, "settings": CORRUPT_SETTINGS}),
        ("full: save, lock, unlock, preset delete", True, {"full": True, "lock_cycle": True}),
    ]
    for name, data in poisoned.items():
        c.append((f"poisoned current model at boot: {name}", False,
                  {"current": data, "previous": True}))
    return c


def run(work: Path, budget: dict, seed: int = 3) -> dict:
    from lanthorn.host.torture import bundles
    poisoned = bundles.poisoned(SHIPPED_MODEL.read_bytes())
    names = sorted(poisoned)[:budget.get("poisoned_boots", len(poisoned))]
    todo = cases({k: poisoned[k] for k in names})
    if budget.get("only"):
        todo = [c for c in todo if c[0] in budget["only"] or c[0].startswith("poisoned")]
    mount_ok = can_mount()
    results, failures, not_run = {}, [], []
    t0 = time.monotonic()
    for i, (name, needs_mount, how) in enumerate(todo):
        root = work / f"storage-{i}"
        mounted = needs_mount and mount_ok and _mount_tmpfs(root)
        if needs_mount and not mounted:
            not_run.append(name)
            continue
        piece = None
        try:
            piece = _boot(root, how, work / f"storage-{i}.log")
            results[name] = _observe(name, how, piece, failures)
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            if piece is not None:
                piece.close()
            if mounted:
                _umount(root)
    return {"storage_faults": len(results), "cases": results, "not_run": not_run,
            "seconds": round(time.monotonic() - t0, 1), "failures": failures}


def _boot(root: Path, how: dict, log_path: Path):
    """Prepare the data folder as the case says (damaged files, full, read-only), start a
    piece on it and, for "delete_current", delete its model and start it again."""
    from lanthorn.host.torture.piece import Piece
    _seed_dir(root, how.get("settings"), how.get("current"), how.get("previous", False))
    if "lock" in how:
        (root / "lock.json").write_bytes(how["lock"])
    if how.get("full"):
        _fill(root)
    if how.get("ro"):
        _remount_ro(root)
    piece = Piece(root, log_path=log_path).start(wait=60)
    if how.get("delete_current"):
        (root / "models" / "current.lanthorn").unlink(missing_ok=True)
        piece.kill()
        piece.start()
    time.sleep(0.5)
    return piece


def _observe(name: str, how: dict, piece, failures: list) -> dict:
    """What the piece says in this case (light, model, storage, lock), with a failure for
    every claim that does not hold."""
    st = piece.status()
    got = {"fps": st.get("fps"), "model": st.get("model"),
           "model_source": st.get("model_source"), "storage": st.get("storage"),
           "locked": st.get("locked")}
    if not st.get("fps"):
        failures.append(f"{name}: no light (fps {st.get('fps')})")
    if how.get("ro") or how.get("full"):
        st = _observe_unwritable(name, how, piece, got, failures)
    if how.get("lock_cycle"):
        steps = [piece.call("lock 4711"), piece.call("unlock 4711"), piece.call("preset list")]
        got["lock_cycle"] = [s.get("message") or s.get("error") for s in steps]
        if not all(s.get("ok") for s in steps):
            failures.append(f"{name}: lock/unlock on a full card: {got['lock_cycle']}")
    if "lock" in how:
        if not st.get("locked"):
            failures.append(f"{name}: a damaged lock file lifted the lock")
        if piece.call("set brightness 1").get("ok"):
            failures.append(f"{name}: a damaged lock file let a change through")
    if name.startswith("poisoned"):
        from lanthorn.host.torture import bundles
        variant = name.split(": ", 1)[1]
        allowed = ("previous", "current") if variant in bundles.MAY_RUN else ("previous",)
        if st.get("model_source") not in allowed:
            failures.append(f"{name}: running {st.get('model_source')}, expected "
                            f"{' or '.join(allowed)}")
    if name == "model file deleted while running" and st.get("model") is None:
        failures.append(f"{name}: no model after the restart")
    return got


def _observe_unwritable(name, how, piece, got, failures) -> dict:
    """A save on a read-only or full card must fail and the status must say so."""
    save = piece.call("save")
    got["save"] = save.get("error") or save.get("message")
    if save.get("ok") and how.get("ro"):
        failures.append(f"{name}: save on a read-only card answered OK")
    got["record"] = _record_typed(name, piece, failures)
    st = piece.status()
    if st.get("storage") == "ok":
        failures.append(f"{name}: status does not say what could not be written")
    got["storage"] = st.get("storage")
    return st


def _record_typed(name, piece, failures) -> str:
    """The issue's reproducer: ``record tap 1`` typed at a terminal on a card that cannot
    keep it answers one ERR naming the card, and the device log holds no traceback."""
    piece.drain()
    piece.request("mode text")
    final, before = piece.request("record tap 1", timeout=30)
    if before or not final.startswith("ERR the card is"):
        failures.append(f"{name}: record answered {before + [final]}")
    if "Traceback" in piece.log_path.read_text(errors="replace"):
        failures.append(f"{name}: a traceback in the device log")
    return final
