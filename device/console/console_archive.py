"""The console's read-back commands, for an archive of the piece: ``model get``, ``preset
show``, ``settings saved``, ``version``, ``lockfile``, ``rejected`` and ``access PIN``.

Apart from the server because they are one concern, the object's state read back for a
conservator (``lanthorn archive`` is their client), and none of them changes anything.

The model and the voice are the artwork: on a locked object their bytes, the saved
settings and the presets are read only by a connection that gave the PIN (``access PIN``:
the lock stays on; it lasts until the port is reopened or :data:`ACCESS_S` passes) or after
``unlock PIN``. ``version``, ``status``, ``lockfile``, ``rejected`` and the fault log stay
readable: they are what a technician needs to see what is wrong.

``model get`` sends the installed bundle's bytes in the push's own frames
(:func:`lanthorn.device.console.push_wire.encode_frame`: sequence number, length, CRC-32), each
frame base64 on one line, a few frames between reads, so the loop never waits for it, a
typed line stops it, and a pulled cable (a write that fails) ends it; the final ``OK``
carries the size and SHA-256 of the whole file.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING

from lanthorn.device.console import console_wire as wire
from lanthorn.device.console.push_wire import DEFAULT_CHUNK, encode_frame
from lanthorn.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - names for type checkers only
    from lanthorn.device.console.server import ConsoleServer

ACCESS_S = 15 * 60.0     # how long 'access PIN' lets one connection read a locked object
FRAMES_PER_TICK = 4      # ~5.5 kB of base64 between reads: 0.5 s at 115200 baud
_GET = "model get"


class Sending:
    """``model get`` in progress: a few frames between reads, then the final answer."""

    name = _GET
    takes_bytes = False
    ends_when_unheard = True  # a write that fails (cable pulled) ends it: nobody is reading

    def __init__(self, data: bytes, info: dict, chunk: int = DEFAULT_CHUNK):
        self.data, self.info, self.chunk = data, info, chunk
        self.n = -(-len(data) // chunk)
        self.seq = 0

    def tick(self, server: "ConsoleServer") -> bool:
        stop = min(self.seq + FRAMES_PER_TICK, self.n)
        lines = []
        for seq in range(self.seq, stop):
            frame = encode_frame(seq, self.data[seq * self.chunk:(seq + 1) * self.chunk])
            text = base64.b64encode(frame).decode("ascii")
            lines.append(wire.event_line(server.mode, "chunk", "CHUNK " + text, data=text))
        self.seq = stop
        if self.seq >= self.n:
            lines += server.ok(_GET, f"sent {self.info['slot']} {self.info['which']} "
                               f"{self.info['name']} size={self.info['size']} "
                               f"sha256={self.info['sha256']}", data=self.info)
        server.send(lines)
        return self.seq < self.n

    def cancel(self, server: "ConsoleServer") -> None:
        server.send(wire.err_lines(server.mode, _GET, f"model get stopped at chunk {self.seq} "
                                   f"of {self.n}; run it again for the whole file"))

    def close(self) -> None:
        pass


def _bundle_file(app, slot: str, which: str) -> tuple[Path, str]:
    """(file, where it came from) of the slot's running bundle, or of its previous one."""
    sl = app.storage.slot(slot)
    if which == "previous":
        if not sl.previous_path.exists():
            raise UserError(f"there is no previous {slot} on the device")
        return sl.previous_path, "previous"
    info = app.model_info()
    source = (info.get("voice") or {}).get("source") if slot == "voice" else info.get("source")
    paths = {"current": sl.current_path, "previous": sl.previous_path, "shipped": sl.shipped}
    path = paths.get(source) if source is not None else None
    if source is None or path is None or not Path(path).exists():
        raise UserError(f"no {slot} file is running on the device ({source or 'none'})")
    return Path(path), source


def cmd_model_get(server: "ConsoleServer", name, args):
    words = [a.lower() for a in args]
    unknown = [a for a in words if a not in ("previous", "current", "voice", "model")]
    if unknown:
        raise UserError(f"model get {unknown[0]!r}: say 'model get [previous] [voice]'")
    slot = "voice" if "voice" in words else "model"
    which = "previous" if "previous" in words else "current"
    path, source = _bundle_file(server.app, slot, which)
    try:
        data = path.read_bytes()  # read once: a swap during the transfer cannot mix files
    except OSError as exc:
        raise UserError(f"cannot read the {slot}: {exc.strerror or exc}") from None
    send = Sending(data, {"slot": slot, "which": which, "source": source, "name": path.name,
                          "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                          "chunk": DEFAULT_CHUNK})
    send.info["chunks"] = send.n
    server.stream = send
    return [wire.event_line(server.mode, "sending", f"NOTE sending {slot} {which} "
                            f"({len(data)} bytes in {send.n} chunks); any line stops it",
                            data=send.info)]


def cmd_preset_show(server: "ConsoleServer", name, args):
    values = server.app.storage.load_preset(args[0])
    return server.ok(name, f"preset {args[0]}: {len(values)} values",
                     body=_value_lines(server, values), data={"name": args[0], "values": values})


def cmd_settings_saved(server: "ConsoleServer", name, args):
    settings, messages = server.app.storage.load_settings()
    saved = settings.get("params", {})
    saved = saved if isinstance(saved, dict) else {}
    body = _value_lines(server, saved) or ["(nothing saved: the piece starts on its defaults)"]
    return server.ok(name, f"{len(saved)} saved start-up values", body=body + messages,
                     data={"params": saved, "version": settings.get("version"),
                           "messages": messages})


def _value_lines(server: "ConsoleServer", values: dict) -> list[str]:
    out = []
    for key, value in sorted(values.items()):
        try:
            p = server.app.params.param(key)
            out.append(f"{p.name} = {p.format(value)} {p.unit}".rstrip())
        except Exception:  # a value this firmware does not know: shown as stored
            out.append(f"{key} = {json.dumps(value)} (not a parameter of this firmware)")
    return out


def version_info() -> dict:
    """lanthorn's version and the commit it was built from, Python and the machine: what a
    conservator needs to reinstall the same thing. The commit: ``LANTHORN_COMMIT``, else the
    clone lanthorn runs from (:func:`~lanthorn.device.engine.build_record.git_commit`), else
    ``lanthorn/commit.txt``, which ``git archive`` fills in (``export-subst``), so a copy
    installed from an archived source tarball still knows its commit."""
    import lanthorn
    from lanthorn.device.engine.build_record import git_commit
    commit, dirty = os.environ.get("LANTHORN_COMMIT") or None, None
    if not commit:
        commit, dirty = git_commit()
    stamped = Path(lanthorn.__file__).resolve().parent / "commit.txt"
    if not commit and stamped.is_file():
        text = stamped.read_text().strip()
        commit = text if re.fullmatch(r"[0-9a-f]{40}", text) else None
    return {"lanthorn": lanthorn.__version__, "commit": commit, "local_changes": dirty,
            "python": platform.python_version(), "implementation": platform.python_implementation(),
            "machine": platform.machine(), "system": platform.system()}


def cmd_version(server: "ConsoleServer", name, args):
    v = version_info()
    prof = getattr(server.app, "profile", None)  # the body's profile, when the runner says
    if prof is not None:
        v["profile"] = {"name": prof.name, "board": prof.board, "source": str(prof.source),
                        "parts": {role: part.type for role, part in prof.parts.items()}}
    return server.ok(name, f"lanthorn {v['lanthorn']} commit {v['commit'] or 'unknown'}",
                     body=[f"{k}: {val if not isinstance(val, dict) else wire.format_values(val)}"
                           for k, val in v.items()], data=v)


def cmd_lockfile(server: "ConsoleServer", name, args):
    lock = server.lock
    path = server.app.storage.lock_path
    state = "damaged" if lock.damaged else ("locked" if lock.locked else "unlocked")
    data = {"state": state, "file": path.name, "file_exists": path.exists(),
            "wrong_attempts": lock.failures, "stored": not lock.note}
    if path.exists():
        data["since"] = _utc(path.stat().st_mtime)
    body = [f"{k}: {v}" for k, v in data.items()]
    return server.ok(name, f"{state} (the PIN and its hash are never shown)", body=body, data=data)


def cmd_rejected(server: "ConsoleServer", name, args):
    folder = server.app.storage.rejected_dir
    items = []
    for p in sorted(folder.glob("*")) if folder.is_dir() else []:
        if p.name.endswith(".why.txt") or not p.is_file():
            continue
        note = p.with_name(p.name + ".why.txt")
        why = note.read_text(errors="replace").strip() if note.is_file() else ""
        items.append({"file": p.name, "size": p.stat().st_size, "why": why})
    body = [f"{x['file']} ({x['size']} bytes): {x['why'] or 'no note'}" for x in items]
    return server.ok(name, f"{len(items)} file(s) set aside", body=body, data={"rejected": items})


def cmd_access(server: "ConsoleServer", name, args):
    if args[0].lower() == "end":
        server.access_until = 0.0
        return server.ok(name, "access ended: a locked object's artwork needs the PIN again")
    if not server.lock.locked:
        raise UserError("not locked: everything is readable already")
    server.lock.check_pin(args[0])
    server.access_until = server.clock() + ACCESS_S
    return server.ok(name, f"this connection may read the model, voice, presets and saved "
                     f"settings for {ACCESS_S / 60:.0f} min; the lock stays on")


def may_read(server: "ConsoleServer") -> bool:
    """Whether the artwork may be read now: unlocked, or this connection gave the PIN."""
    return not server.lock.locked or server.clock() < getattr(server, "access_until", 0.0)


def _utc(t: float) -> str:
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


HANDLERS = {"model get": cmd_model_get, "preset show": cmd_preset_show,
            "settings saved": cmd_settings_saved, "version": cmd_version,
            "lockfile": cmd_lockfile, "rejected": cmd_rejected, "access": cmd_access}
