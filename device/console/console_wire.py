"""What travels on the serial console's wire as text: the command table and the line format
(answers, events), one place used by the device server, the host client (completion, help)
and the docs. Named for the wire, not "protocol", because three modules were called that;
the binary push framing beside it is :mod:`lanthorn.device.console.push_wire`, the companion
board's is :mod:`lanthorn.hardware.companion.wire`.

A person types into picocom, screen or the Arduino serial monitor; a program (the host
client) switches to ``mode json``. Both get exactly one final answer per command:

* text mode: zero or more body lines, then ``OK [message]`` or ``ERR <reason>``;
* json mode: one JSON object per line: ``{"ok": true, "cmd": ..., "message": ..., "data":
  ..., "line": ...}`` or ``{"ok": false, "cmd": ..., "error": ..., "line": ...}``, where
  ``line`` is the command line answered (absent on the final answer of a ``record``, a
  push or a ``model get``, which come later). Streaming lines (``watch`` samples, ``record`` frames, notices)
  are objects with an ``event`` key and no ``ok``. A ``watch`` sample also carries what a
  visitor sees (``leds``: the ring as hex, ``oled``: the display's words), for a picture of
  the object (the studio); a ``record`` frames event carries the live sample as ``now``.

Lines end with CR, LF or CRLF (whatever the terminal sends); the device does not echo.
Lines longer than :data:`MAX_LINE` bytes are refused whole. The push sub-protocol (binary
frames after ``push begin``) lives in :mod:`lanthorn.device.console.push_wire`; the server that
answers these lines is :mod:`lanthorn.device.console.server`.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from lanthorn.errors import UserError
from lanthorn.vocabulary import BAUD

MAX_LINE = 512  # bytes, without the line ending


class ProtocolError(UserError):
    """A console line that cannot be run as typed (the message says how to fix it)."""


@dataclass(frozen=True)
class Command:
    """One console command. ``args`` is the usage ("NAME VALUE"); a trailing ``VALUE...``
    takes the rest of the line verbatim (phrases contain spaces). ``writes`` marks commands
    refused while the exhibition lock is on; ``pin`` those that read the artwork (model and
    voice bytes, presets, saved settings), which a locked object answers only after the PIN
    (``access PIN`` or ``unlock PIN``)."""

    name: str
    args: str
    help: str
    writes: bool = False
    pin: bool = False

    @property
    def arg_names(self) -> list[str]:
        return self.args.split()

    def arity(self) -> tuple[int, int | None]:
        """(minimum, maximum or None for rest-of-line) number of arguments."""
        names = self.arg_names
        required = [a for a in names if not a.startswith("[")]
        if names and names[-1].endswith("..."):
            return len(required), None
        return len(required), len(names)

    def usage(self) -> str:
        return f"{self.name} {self.args}".strip()

    def describe(self) -> dict:
        return {"name": self.name, "args": self.args, "help": self.help, "writes": self.writes,
                "pin": self.pin}


COMMANDS: tuple[Command, ...] = (
    Command("help", "[NAME]", "list commands, or explain one command or parameter"),
    Command("list", "", "show every parameter with its value, unit and meaning"),
    Command("get", "NAME", "show one parameter's value"),
    Command("set", "NAME VALUE...", "change a parameter now (takes effect on the next frame; "
            "'save' keeps it across restarts)", writes=True),
    Command("reset", "NAME|all", "put a parameter (or all) back to its default", writes=True),
    Command("save", "", "make the current parameters the start-up values", writes=True),
    Command("preset save", "NAME", "store the current parameters as a named preset", writes=True),
    Command("preset load", "NAME", "apply a preset now ('save' keeps it across restarts)", writes=True),
    Command("preset list", "", "list saved presets"),
    Command("preset delete", "NAME", "delete a preset", writes=True),
    Command("preset show", "NAME", "show a preset's values without loading it", pin=True),
    Command("settings saved", "", "the saved start-up values (the live ones are 'list')",
            pin=True),
    Command("status", "", "frame rate, frame time p99, inference time, model, sensors, the body's "
                          "channels and whether they feed the model, uptime"),
    Command("log", "[N]", "the newest N lines (default 20) of the on-card fault log: parts "
            "failing and recovering, stuck sensors, a card that refuses writes"),
    Command("watch", "[HZ]", "stream sensor values and class probabilities (default 5 Hz, "
            "max 50) until any line or 'stop'"),
    Command("stop", "", "stop watch or record"),
    Command("record", "LABEL SECONDS", "record a demonstration of a gesture into the data "
            "dir's recordings (dataset format)", writes=True),
    Command("recordings", "", "list the takes kept on the device ('lanthorn fetch' pulls them)"),
    Command("recording get", "SESSION", "send one kept take's frames (used by 'lanthorn fetch')"),
    Command("model info", "", "the running model and voice: name, file sha256 and internal digest, labels, input, backend"),
    Command("model rollback", "[voice]", "go back to the previous model (or, with 'voice', the "
            "previous voice)", writes=True),
    Command("push begin", "SIZE SHA256 [CHUNK]", "start a binary model upload (used by "
            "'lanthorn push'; framed, CRC-checked, verified before the swap; while locked, "
            "only a bundle signed by a trusted key is installed)"),
    Command("trust list", "", "the public keys whose signed bundles a locked object installs"),
    Command("trust add", "KEY [NAME]", "trust a signing key (ed25519:HEX, from 'lanthorn key "
            "show')", writes=True),
    Command("trust remove", "KEY", "stop trusting a signing key", writes=True),
    Command("lock", "PIN", "exhibition lock: refuse every change until 'unlock PIN'"),
    Command("unlock", "PIN", "lift the exhibition lock (wrong PINs are slowed down)"),
    Command("model get", "[previous] [voice]", "send the running model's bundle (or the "
            "voice's, or the previous one) in CRC-checked chunks, base64 lines in the push's "
            "frames (used by 'lanthorn archive')", pin=True),
    Command("version", "", "lanthorn version, source commit, Python and machine"),
    Command("lockfile", "", "the exhibition lock as stored: locked or not, since when, wrong "
            "attempts (never the PIN or its hash)"),
    Command("rejected", "", "the files set aside in rejected/ and the note saying why"),
    Command("access", "PIN|end", "let this connection read a locked object's model, voice, "
            "presets and saved settings (the lock stays on; ends with 'access end', the next "
            "'mode', a reopened port or after 15 min)"),
    Command("mode", "text|json", "answer as text for people or one JSON object per line"),
)

BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}
#: first words that need a second one ("preset" -> save, load, list, delete)
GROUPS: dict[str, list[str]] = {}
for _c in COMMANDS:
    if " " in _c.name:
        _head, _tail = _c.name.split(" ", 1)
        GROUPS.setdefault(_head, []).append(_tail)


def parse(line: str) -> tuple[Command, list[str]]:
    """A typed line -> (command, arguments). Raises ProtocolError with a hint."""
    words = line.split()
    if not words:
        raise ProtocolError("empty line")
    head = words[0].lower()
    if head in GROUPS:
        if len(words) < 2 or words[1].lower() not in GROUPS[head]:
            got = f" {words[1]!r}" if len(words) > 1 else ""
            raise ProtocolError(f"{head}{got}: expected one of {', '.join(GROUPS[head])} "
                                f"(e.g. '{head} {GROUPS[head][0]}')")
        cmd, consumed = BY_NAME[f"{head} {words[1].lower()}"], 2
    elif head in BY_NAME:
        cmd, consumed = BY_NAME[head], 1
    else:
        near = difflib.get_close_matches(head, list(BY_NAME) + list(GROUPS), n=2, cutoff=0.6)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise ProtocolError(f"unknown command {words[0][:40]!r} ({hint}type 'help')")
    lo, hi = cmd.arity()
    if hi is None:
        # rest-of-line argument: split off the fixed ones, keep the rest verbatim
        parts = line.strip().split(None, consumed + lo - 1)
        args = parts[consumed:-1] + [_unquote(parts[-1])] if len(parts) == consumed + lo else []
    else:
        args = words[consumed:]
    if len(args) < lo or (hi is not None and len(args) > hi):
        raise ProtocolError(f"usage: {cmd.usage()}")
    return cmd, args


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def help_text(name: str | None = None) -> list[str]:
    """Body lines of ``help`` (all commands) or ``help CMD``."""
    if name:
        key = name.lower()
        if key in GROUPS:
            return [f"{BY_NAME[key + ' ' + t].usage():<28} {BY_NAME[key + ' ' + t].help}"
                    for t in GROUPS[key]]
        if key not in BY_NAME:
            return _param_help(name)
        c = BY_NAME[key]
        lines = [f"{c.usage()}: {c.help}"]
        if c.writes:
            lines.append("(refused while the exhibition lock is on)")
        if c.pin:
            lines.append("(needs the PIN while locked: 'access PIN' first)")
        return lines
    width = max(len(c.usage()) for c in COMMANDS)
    return [f"{c.usage():<{width}}  {c.help}" for c in COMMANDS] + \
        ["lines end with Enter (CR, LF or CRLF); answers end with OK or ERR <reason>"]


def _param_help(name: str) -> list[str]:
    """``help brightness``: a parameter explained (what it does, its range, its default,
    how to change it), or the error naming both lists to look in."""
    from lanthorn.device.piece.params import PARAMS

    p = next((p for p in PARAMS if p.name == name.lower()), None)
    if p is None:
        raise ProtocolError(f"no command or parameter {name!r} (type 'help' for the commands, "
                            f"'list' for the parameters)")
    default = p.format(p.default) or "(none)"
    return [f"{p.name}: {p.description}", f"takes {p.range_text()}; default {default}"
            + (f" {p.unit}" if p.unit and default != "(none)" else ""),
            f"change it: set {p.name} VALUE; now: get {p.name}"]


# --- answers

def json_line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def _jsonable(x: Any):
    """numpy scalars/arrays and other objects in app dicts become plain JSON."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def ok_lines(mode: str, cmd: str | None, message: str = "", body: list[str] | None = None,
             data: Any = None) -> list[str]:
    if mode == "json":
        obj = {"ok": True, "cmd": cmd, "message": message}
        if data is not None:
            obj["data"] = data
        return [json_line(obj)]
    return list(body or []) + [("OK " + message).rstrip()]


def err_lines(mode: str, cmd: str | None, reason: str) -> list[str]:
    reason = " ".join(str(reason).split()) or "error"
    if mode == "json":
        return [json_line({"ok": False, "cmd": cmd, "error": reason})]
    return [f"ERR {reason}"]


def tag_answer(lines: list[str], line: str) -> list[str]:
    """In json mode, the final answer carries the line it answers (``"line"``), so a client
    can tell it from a late answer to an earlier request."""
    if not lines:
        return lines
    try:
        obj = json.loads(lines[-1])
    except ValueError:
        return lines
    if isinstance(obj, dict) and "ok" in obj:
        obj["line"] = line.strip()
        return lines[:-1] + [json_line(obj)]
    return lines


def event_line(mode: str, event: str, text: str, data: Any = None) -> str:
    if mode == "json":
        obj = {"event": event}
        if data is not None:
            obj["data"] = data
        else:
            obj["text"] = text
        return json_line(obj)
    return text


def format_values(d: dict, digits: int = 3) -> str:
    """``name=value`` pairs for watch lines in text mode (nested dicts flattened)."""
    parts = []
    for k, v in d.items():
        if isinstance(v, dict):
            parts.append("| " + format_values(v, digits))
        elif isinstance(v, float):
            parts.append(f"{k}={v:.{digits}f}")
        elif isinstance(v, (list, tuple)):
            parts.append(f"{k}=" + ",".join(f"{x:.{digits}f}" if isinstance(x, float) else str(x)
                                             for x in v))
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


def markdown() -> str:
    """The console reference as Markdown (committed as device/CONSOLE.md, checked by a test)."""
    lines = [
        "# The serial console",
        "",
        "<!-- generated by `lanthorn console --markdown`; do not edit by hand -->",
        "",
        "Open the object's serial port in any terminal (picocom, screen, the Arduino serial",
        f"monitor; {BAUD} baud, 8N1) or run `lanthorn console PORT` for completion, history and",
        "live plots. Each line you send gets exactly one final answer: `OK [message]` or",
        "`ERR <reason>`, after any body lines (an empty line is answered `OK`). Lines may end",
        "with CR, LF or CRLF; the device does not echo. Lines longer than",
        f"{MAX_LINE} bytes, bytes that are not UTF-8 text and unknown commands are answered",
        "with `ERR` and change nothing. Control characters inside an answer are shown escaped",
        "(`\\n`), so a value can never add a line of its own. `mode json` switches to",
        "one JSON object per line (used by the host tools).",
        "",
        "Parameters (`NAME` below) are listed in [PARAMETERS.md](PARAMETERS.md).",
        "",
        "| command | what it does | while locked |",
        "| --- | --- | --- |",
    ]
    for c in COMMANDS:
        locked = "refused" if c.writes else ("PIN (`access PIN`)" if c.pin else "")
        lines.append(f"| `{c.usage()}` | {c.help} | {locked} |")
    lines += [
        "",
        "Models are sent with `lanthorn push BUNDLE --port PORT` (framed, CRC-32 per chunk,",
        "SHA-256 of the whole file, verified by loading before the swap; the old model stays",
        "as `previous` for `model rollback`; an interrupted push resumes). Demonstrations are",
        "pulled into a dataset with `lanthorn record PORT LABEL SECONDS --data DIR`.",
        "",
        "While locked, `push begin` is still answered, but the object installs only a bundle",
        "signed by one of its trusted keys (`trust list`) and says why it refuses any other;",
        "the running model keeps running. Keys, signing and recovering from a lost key:",
        "[SIGNING.md](SIGNING.md).",
        "",
        "The object's state reads back for an archive (`lanthorn archive`): `model get` sends",
        "a bundle's bytes as `CHUNK <base64>` lines (json mode: `chunk` events), each the",
        "push's frame (sequence, length, payload, CRC-32), then `OK` with the size and",
        "SHA-256 of the whole file; any line stops it. The model and the voice are the",
        "artwork: while locked, they, the presets and the saved settings are read only after",
        "`access PIN` (the lock stays on); `version`, `status`, `lockfile`, `rejected` and",
        "the fault log stay readable.",
    ]
    return "\n".join(lines) + "\n"
