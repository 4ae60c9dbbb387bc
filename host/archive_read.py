"""The object's state read back over its serial console, for an archive.

Everything here goes through the console's read-only commands (device/CONSOLE.md):
``version``, ``status``, ``model info``, ``lockfile``, ``trust list``, ``rejected``, the
fault log (``log``), and, with the PIN on a locked object (``access PIN``: the lock stays
on), ``settings saved``, every ``preset show`` and the bundles' bytes (``model get``). What
the object cannot answer (an older firmware without ``log``) is recorded as such, never
invented.

A bundle arrives as the push's frames (CRC-32 each, :class:`~lanthorn.device.console.push_wire.
FrameDecoder`), base64 on json ``chunk`` events; the whole file is checked against the
size and SHA-256 the device sends last, and fetched again (up to :data:`TRIES` times) when
a chunk was damaged on the way.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from lanthorn.device.console.push_wire import FrameDecoder
from lanthorn.errors import UserError

TRIES = 3
LOG_LINES = 1000  # the whole on-card fault log (device/storage/fault_log.py keeps at most this many)
#: (file name in the bag, words after 'model get')
BUNDLES = (("model-current.lanthorn", ""), ("model-previous.lanthorn", "previous"),
           ("voice-current.lanthorn", "voice"), ("voice-previous.lanthorn", "previous voice"))


@dataclass
class ObjectState:
    """What was read back: ``state`` (name -> the command's data, or {"unavailable": why})
    and ``bundles`` (bag file name -> bytes, with ``bundle_info`` saying where each came
    from on the object)."""

    state: dict = field(default_factory=dict)
    bundles: dict = field(default_factory=dict)
    bundle_info: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def _ask(client, line: str, timeout: float | None = None) -> dict:
    """The data of one answer, or {"unavailable": the device's reason} on ERR."""
    ans = client.request(line, timeout=timeout)
    if not ans.get("ok"):
        return {"unavailable": ans.get("error") or "error"}
    return ans.get("data") if ans.get("data") is not None else {"message": ans.get("message")}


def fetch_bundle(client, words: str = "") -> tuple[bytes, dict]:
    """(file bytes, the device's final data) of ``model get WORDS``; UserError with the
    device's reason (no such file, locked) or after :data:`TRIES` damaged transfers."""
    line = f"model get {words}".strip()
    why = ""
    for _ in range(TRIES):
        frames: dict[int, bytes] = {}
        bad = [0]
        dec = FrameDecoder()

        # this take's buffers bound now, not looked up when an event arrives
        def on_event(ev, frames=frames, bad=bad, dec=dec):
            if ev.get("event") != "chunk":
                return
            try:
                raw = base64.b64decode(ev.get("data") or "", validate=True)
            except ValueError:
                bad[0] += 1
                return
            for kind, seq, payload in dec.feed(raw):
                if kind == "frame":
                    frames[seq] = payload
                else:
                    bad[0] += 1

        ans = client.request(line, on_event=on_event, timeout=30.0)
        if not ans.get("ok"):
            raise UserError(f"device: {ans.get('error')}")
        info = ans.get("data") or {}
        data = b"".join(frames.get(i, b"") for i in range(int(info.get("chunks") or 0)))
        if (len(data) == info.get("size") and hashlib.sha256(data).hexdigest() == info.get("sha256")
                and not bad[0]):
            return data, info
        why = (f"{bad[0]} damaged chunk(s), {len(frames)} of {info.get('chunks')} arrived, "
               f"{len(data)} of {info.get('size')} bytes")
    raise UserError(f"'{line}' did not arrive intact after {TRIES} tries ({why}); check the cable")


def read_state(client, pin: str | None = None) -> ObjectState:
    """Read the object's state and bundles through ``client`` (a ConsoleClient)."""
    out = ObjectState()
    s = out.state
    for key, line in (("version", "version"), ("status", "status"), ("model_info", "model info"),
                      ("lockfile", "lockfile"), ("trust", "trust list"),
                      ("rejected", "rejected"), ("log", f"log {LOG_LINES}")):
        s[key] = _ask(client, line)
    if "unavailable" in s["log"]:  # a firmware that keeps fewer lines: its default
        s["log"] = _ask(client, "log")
    locked = bool(s["status"].get("locked"))
    if locked:
        if not pin:
            raise UserError("the object is locked: its model, voice, presets and saved settings "
                            "are read only with the PIN; give --pin PIN (the lock stays on)")
        ans = client.request(f"access {pin}")
        if not ans.get("ok"):
            raise UserError(f"device refused the PIN: {ans.get('error')}")
    s["settings_saved"] = _ask(client, "settings saved")
    names = _ask(client, "preset list").get("presets") or []
    s["presets"] = {name: _ask(client, f"preset show {name}") for name in names}
    for fname, words in BUNDLES:
        try:
            data, info = fetch_bundle(client, words)
        except UserError as exc:
            out.notes.append(f"{fname}: not read back ({exc})")
            continue
        out.bundles[fname] = data
        out.bundle_info[fname] = info
    if locked:
        client.request("access end")  # the next one at the cable needs the PIN again
    if "model-current.lanthorn" not in out.bundles:
        raise UserError("the object's running model could not be read back: "
                        + "; ".join(out.notes))
    return out
