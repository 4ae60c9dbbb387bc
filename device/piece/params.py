"""The parameter table: every tweakable thing of the piece, declared exactly once.

An artist changes the object's character live over the serial console; a museum technician
reads the docs to know what each knob does. Both must see the same names, ranges, units and
defaults, so this one table drives the console (`list`, `get`, `set`, `help`), validation,
saved settings and presets, and the generated reference (`lanthorn params --markdown`,
committed as device/PARAMETERS.md and checked by a test).

:class:`ParamStore` holds the live values: thread-safe (the console thread writes, the loop
reads every frame), with a ``version`` counter the loop can compare cheaply each frame.
"""
from __future__ import annotations

import difflib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from lanthorn.errors import UserError
from lanthorn.vocabulary import MOODS, PALETTES


class ParamError(UserError):
    """A parameter name or value a person typed that cannot be used (the message says why)."""


IDLE_ANIMATIONS: tuple[str, ...] = ("breathe", "twinkle", "comet", "still", "off")

_TIME_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_MAX_PHRASES = 32
_MAX_PHRASE_CHARS = 40  # a 128x64 OLED shows about 2 lines of 21 characters


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be a stored value, or None. Lone surrogates (which JSON's
    ``"\\ud800"`` escapes can produce) cannot be written as UTF-8: accepted once, they broke
    every later answer and, once saved, every restart. Control characters (newlines above
    all) would let a value forge extra answer lines on a terminal."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains U+{ord(text[exc.start]):04X}, which is not a character (a lone surrogate)"
    for ch in text:
        if ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            return f"contains the control character U+{ord(ch):04X}"
    return None


@dataclass(frozen=True)
class Param:
    """One knob: its type decides how console text is parsed and how values are checked.

    ``type`` is one of: int, float, bool, choice, text, phrases (a list of short strings),
    timerange ("HH:MM-HH:MM" or "off"), moods (what gestures evoke: label → mood → weight).
    """

    name: str
    type: str
    default: Any
    description: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def range_text(self) -> str:
        """The allowed values in words, as used in error messages and docs."""
        unit = f" {self.unit}" if self.unit else ""
        if self.type in ("int", "float"):
            return f"between {_fmt_num(self.min)} and {_fmt_num(self.max)}{unit}"
        if self.type == "bool":
            return "on or off"
        if self.type == "choice":
            return "one of " + ", ".join(self.choices)
        if self.type == "timerange":
            return 'HH:MM-HH:MM (24 h, may wrap midnight) or "off"'
        if self.type == "phrases":
            return (f"up to {_MAX_PHRASES} phrases of at most {_MAX_PHRASE_CHARS} characters, "
                    'separated by "|" (or a JSON list)')
        if self.type == "moods":
            return ('GESTURE=MOOD[:WEIGHT][,MOOD[:WEIGHT]]; ... (weights 0..1, moods: '
                    + ", ".join(MOODS) + '), e.g. "wave=delighted; knock=shy:0.7,curious:0.3"; '
                    'a JSON object works too; "" = none')
        return "any text"

    def parse(self, text: str) -> Any:
        """Console text -> a checked value (raises ParamError naming the allowed range)."""
        text = text.strip()
        if self.type == "int":
            try:
                value: Any = int(text, 10)
            except ValueError:
                try:
                    as_float = float(text)
                except ValueError:
                    raise self._bad(text) from None
                if not as_float.is_integer():
                    raise ParamError(f"{self.name} must be a whole number {self.range_text()}, "
                                     f"got {text}") from None
                value = int(as_float)
        elif self.type == "float":
            try:
                value = float(text)
            except ValueError:
                raise self._bad(text) from None
        elif self.type == "bool":
            low = text.lower()
            if low in ("on", "true", "yes", "1"):
                value = True
            elif low in ("off", "false", "no", "0"):
                value = False
            else:
                raise self._bad(text)
        elif self.type == "moods":
            value = parse_moods(text, self.name)
        elif self.type == "phrases":
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ParamError(f"{self.name}: the JSON list is malformed ({exc.msg} at "
                                     f"character {exc.pos})") from None
            else:
                value = [p.strip() for p in text.split("|")] if text else []
                value = [p for p in value if p]
        else:
            value = text
        return self.check(value)

    def check(self, value: Any) -> Any:
        """A typed value (from settings, presets or parse) -> the canonical value, or ParamError."""
        t = self.type
        if t == "int":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (isinstance(value, float) and not value.is_integer()):
                raise self._bad(value)
            value = int(value)
        elif t == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise self._bad(value)
            value = float(value)
        elif t == "bool":
            if not isinstance(value, bool):
                raise self._bad(value)
        elif t == "choice":
            if value not in self.choices:
                raise self._bad(value)
        elif t == "timerange":
            if not isinstance(value, str) or not (value == "off" or _TIME_RANGE.match(value)):
                raise self._bad(value)
        elif t == "phrases":
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise ParamError(f"{self.name} must be a list of phrases: {self.range_text()}")
            if len(value) > _MAX_PHRASES:
                raise ParamError(f"{self.name} holds at most {_MAX_PHRASES} phrases, got {len(value)}")
            long = [p for p in value if len(p) > _MAX_PHRASE_CHARS or "|" in p]
            if long:
                raise ParamError(f"{self.name}: phrase {long[0]!r} is longer than "
                                 f"{_MAX_PHRASE_CHARS} characters or contains '|'")
            value = list(value)
            for phrase in value:
                why = text_problem(phrase)
                if why:
                    raise ParamError(f"{self.name}: phrase {ascii(phrase)} {why}")
        elif t == "text":
            if not isinstance(value, str):
                raise self._bad(value)
            why = text_problem(value)
            if why:
                raise ParamError(f"{self.name}: {ascii(value)} {why}")
        elif t == "moods":
            value = check_moods(value, self.name)
        if t in ("int", "float") and not (self.min <= value <= self.max):
            raise self._bad(value)
        return value

    def format(self, value: Any) -> str:
        """A value as console text that ``parse`` reads back to the same value."""
        if self.type == "bool":
            return "on" if value else "off"
        if self.type == "phrases":
            return "|".join(value)
        if self.type == "moods":
            return format_moods(value)
        if self.type == "float":
            return _fmt_num(value)
        return str(value)

    def describe(self) -> dict:
        """JSON-friendly declaration (the host client builds completion and help from it)."""
        d = {"name": self.name, "type": self.type, "default": self.default, "unit": self.unit,
             "description": self.description, "range": self.range_text()}
        if self.type in ("int", "float"):
            d["min"], d["max"] = self.min, self.max
        if self.choices:
            d["choices"] = list(self.choices)
        return d

    def _bad(self, got: Any) -> ParamError:
        shown = ascii(got) if isinstance(got, str) and text_problem(got) else \
            got if isinstance(got, str) else json.dumps(got, default=repr)
        return ParamError(f"{self.name} must be {self.range_text()}, got {shown}")


_GESTURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_MAX_MOOD_GESTURES = 32


def check_moods(value: Any, name: str = "gesture_moods") -> dict:
    """{gesture: {mood: weight 0..1}} checked (moods from :data:`MOODS`), or ParamError."""
    if not isinstance(value, dict) or len(value) > _MAX_MOOD_GESTURES:
        raise ParamError(f"{name} must map up to {_MAX_MOOD_GESTURES} gestures to moods")
    out = {}
    for gesture, moods in value.items():
        if not isinstance(gesture, str) or not _GESTURE_NAME.match(gesture):
            raise ParamError(f"{name}: {gesture!r} is not a gesture name (letters, digits, _ -)")
        if not isinstance(moods, dict) or not moods:
            raise ParamError(f"{name}: {gesture} must evoke at least one mood")
        good = {}
        for mood, w in moods.items():
            if mood not in MOODS:
                raise ParamError(f"{name}: {gesture} evokes unknown mood {mood!r} (moods: "
                                 f"{', '.join(MOODS)})")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
                raise ParamError(f"{name}: the weight of {mood} for {gesture} must be 0..1, "
                                 f"got {w!r}")
            good[mood] = float(w)
        out[gesture] = good
    return out


def parse_moods(text: str, name: str = "gesture_moods") -> dict:
    """``wave=delighted; knock=shy:0.7,curious:0.3`` (or a JSON object) → checked dict."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return check_moods(json.loads(text), name)
        except json.JSONDecodeError as exc:
            raise ParamError(f"{name}: the JSON object is malformed ({exc.msg})") from None
    out: dict = {}
    for item in filter(None, (t.strip() for t in text.split(";"))):
        gesture, eq, rest = item.partition("=")
        if not eq or not rest.strip():
            raise ParamError(f"{name}: {item!r} must be GESTURE=MOOD[:WEIGHT],... "
                             f"e.g. wave=delighted")
        moods = {}
        for part in filter(None, (t.strip() for t in rest.split(","))):
            mood, _, w = part.partition(":")
            try:
                moods[mood.strip()] = float(w) if w.strip() else 1.0
            except ValueError:
                raise ParamError(f"{name}: weight {w!r} of {mood.strip()} is not a number") from None
        out[gesture.strip()] = moods
    return check_moods(out, name)


def format_moods(value: dict) -> str:
    """The console text of a moods value (``parse_moods`` reads it back to the same)."""
    return "; ".join(f"{g}=" + ",".join(m if w == 1.0 else f"{m}:{_fmt_num(w)}"
                                        for m, w in moods.items())
                     for g, moods in value.items())


def _fmt_num(x: float | None) -> str:
    if x is None:
        return "?"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x)) if abs(x) >= 1 or x == 0 else repr(x)
    return f"{x:g}" if isinstance(x, float) else str(x)


_DEFAULT_PHRASES = {
    "calm": ["still here", "breathing slowly", "the room is quiet"],
    "curious": ["who is there?", "come closer", "I sense you"],
    "delighted": ["again!", "that tickles", "warm hands"],
    "shy": ["not so close", "hiding a little", "gently, please"],
    "agitated": ["too much!", "let me be", "easy now"],
}

#: The voice (lanthorn.device.piece.voice): when and how it generates phrases. The sampler's
#: defaults are also what the voice's tasting notes sample with.
VOICE_PARAMS: tuple[Param, ...] = (
    Param("voice_enabled", "bool", True, "let the voice model write the phrases (off: the "
          "phrase banks only)"),
    Param("voice_min_interval_s", "float", 3.0, "rate limit: minimum time between two "
          "generated phrases (a mood change waits for it)", "s", 0.5, 600.0),
    Param("voice_temperature", "float", 0.7, "sampling temperature: low = safe and repetitive, "
          "high = adventurous", "", 0.0, 2.0),
    Param("voice_top_k", "int", 6, "sample only among the k likeliest next characters "
          "(0 = all)", "", 0, 96),
    Param("voice_max_len", "int", 40, "longest phrase in characters (cut at a word)", "chars",
          4, 60),
    Param("voice_min_len", "int", 16, "shortest phrase in characters: the voice may not end a "
          "phrase sooner (a fragment of two words is always a corpus line's)", "chars", 0, 60),
    Param("voice_budget_ms", "float", 150.0, "time allowed per phrase; slower phrases are "
          "dropped for the phrase bank", "ms", 5.0, 2000.0),
    Param("voice_seed", "int", 0, "first seed of the voice's sampler (phrase n uses seed+n)",
          "", 0, 2**31 - 1),
)

#: The default piece's parameters, in the order `list` shows them.
PARAMS: tuple[Param, ...] = (
    Param("brightness", "int", 60, "overall LED brightness", "%", 0, 100),
    Param("power_cap_ma", "int", 1500, "LED current budget; frames are scaled down to stay under it",
          "mA", 100, 10000),
    Param("palette", "choice", "ember", "colour palette the moods are painted with",
          choices=PALETTES),
    Param("speed", "float", 1.0, "animation speed multiplier", "x", 0.1, 4.0),
    Param("touch_sensitivity", "float", 1.0, "gain on pad touch strength before the model",
          "x", 0.2, 5.0),
    Param("approach_sensitivity", "float", 1.0, "gain on the approach (distance) channel",
          "x", 0.2, 5.0),
    Param("confidence", "float", 0.6, "class probability needed before a gesture counts",
          "", 0.0, 1.0),
    Param("mood_decay_s", "float", 20.0, "time for a mood to fade back to calm", "s", 1.0, 600.0),
    Param("hysteresis", "float", 0.15, "extra evidence needed to switch mood (stops flicker)",
          "", 0.0, 0.5),
    *(Param(f"phrases_{mood}", "phrases", list(_DEFAULT_PHRASES[mood]),
            f"phrases shown on the display when {mood}") for mood in MOODS),
    Param("phrase_interval_s", "float", 8.0, "minimum time between two phrases", "s", 1.0, 600.0),
    Param("quiet_hours", "timerange", "off",
          "outside opening hours by the device clock, e.g. 22:00-08:00; off = always open"),
    Param("quiet_mode", "choice", "dim", "what to do during quiet hours", choices=("dim", "sleep")),
    Param("quiet_brightness", "int", 10, "brightness during quiet hours when quiet_mode is dim",
          "%", 0, 100),
    Param("idle_animation", "choice", "breathe", "animation when nobody is there (or no model)",
          choices=IDLE_ANIMATIONS),
    Param("display_contrast", "int", 160, "OLED contrast", "", 0, 255),
    Param("display_enabled", "bool", True, "show phrases on the OLED"),
    # --- stuck sensors (device/piece/stuck.py): a reading still for longer than plausible ---
    Param("stuck_touch_s", "float", 120.0,
          "a pad that reads touched without a break for longer than this is stuck (drifted "
          "baseline, shorted cable): reported, the touch controller re-baselined, the pad "
          "counted untouched until it lets go", "s", 2.0, 3600.0),
    Param("stuck_frozen_s", "float", 60.0,
          "a distance reading frozen to the bit this long, while other channels move, is "
          "stuck: reported, the sensor re-initialised, read as nothing in range until it "
          "changes", "s", 2.0, 3600.0),
    *(_TEACHING_PARAMS := (
        # --- teaching gestures and steadier recognition (issue 11) ---
        Param("gesture_moods", "moods", {},
              "what each gesture evokes, added to (or replacing) the piece's own table and "
              "the model card's: how a newly taught gesture feels, e.g. wave=delighted"),
        # 3 / 0.1 s, measured on the demo's visitor (seeds 0-2): 30/37 gestures recognised
        # against 28/37 with 5 / 0.2 s, read 0.1-0.2 s sooner, about as few flips
        Param("gesture_smoothing", "int", 3,
              "model outputs averaged before a gesture is recognised (temporal voting; 1 = "
              "none): fewer flips between look-alike gestures, a little more delay",
              "frames", 1, 25),
        Param("gesture_hold_s", "float", 0.1,
              "how long another gesture must lead before the recognised one changes "
              "(0 = at once)", "s", 0.0, 2.0),
    )),
    *VOICE_PARAMS,
)


class ParamStore:
    """The live parameter values: validated, thread-safe, persisted via storage.

    The loop reads values every frame (``get`` or ``snapshot``; cheap) or compares
    ``version`` to notice changes (it goes up once per store that changed something).
    """

    def __init__(self, table: tuple[Param, ...] = PARAMS, values: dict | None = None):
        self.table = tuple(table)
        self._by_name = {p.name: p for p in self.table}
        if len(self._by_name) != len(self.table):
            raise ValueError("duplicate parameter names in the table")
        self._values = {p.name: p.check(_copy(p.default)) for p in self.table}
        self._lock = threading.RLock()
        self.version = 0
        if values:
            self.update_from_dict(values)

    # --- reading
    def param(self, name: str) -> Param:
        """The declaration of ``name``; an unknown name gets a hint with the closest ones."""
        try:
            return self._by_name[name]
        except KeyError:
            # names are case-insensitive, like commands ("set Brightness 40" works)
            folded = self._by_name.get(name.lower()) if isinstance(name, str) else None
            if folded is not None:
                return folded
            near = difflib.get_close_matches(name, self._by_name, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(near)}?)" if near else " (try 'list')"
            raise ParamError(f"unknown parameter {name!r}{hint}") from None

    def names(self) -> list[str]:
        return [p.name for p in self.table]

    def get(self, name: str) -> Any:
        name = self.param(name).name
        with self._lock:
            return _copy(self._values[name])

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def snapshot(self) -> dict:
        """All values at once (a consistent copy)."""
        with self._lock:
            return {k: _copy(v) for k, v in self._values.items()}

    # --- writing
    def set(self, name: str, value: Any) -> Any:
        """Set from a typed value (settings, presets, code); returns the canonical value."""
        p = self.param(name)
        value = p.check(value)
        return self._store({p.name: value})[p.name]

    def set_text(self, name: str, text: str) -> Any:
        """Set from console text ("40", "on", "a|b|c", "22:00-08:00")."""
        p = self.param(name)
        return self._store({p.name: p.parse(text)})[p.name]

    def reset(self, name: str | None = None) -> None:
        """Back to the declared default (one parameter, or all with None)."""
        ps = self.table if name is None else (self.param(name),)
        self._store({p.name: _copy(p.default) for p in ps})

    def update_from_dict(self, values: dict, strict: bool = False) -> list[str]:
        """Apply saved values; unknown or invalid ones are skipped with a warning each
        (a settings file from an older piece must not stop the object starting)."""
        if not isinstance(values, dict):
            raise ParamError("parameter values must be a JSON object of name: value")
        good, warnings = {}, []
        for name, value in values.items():
            try:
                p = self.param(name)
                good[p.name] = p.check(value)
            except ParamError as exc:
                if strict:
                    raise
                warnings.append(f"ignored saved value: {exc}")
            except Exception as exc:  # a value of a shape no check foresaw: skip it too
                if strict:
                    raise ParamError(f"{name}: unusable value ({type(exc).__name__})") from None
                warnings.append(f"ignored saved value for {ascii(name)}: {type(exc).__name__}")
        self._store(good)
        return warnings

    def _store(self, values: dict) -> dict:
        with self._lock:
            changed = any(self._values[k] != v for k, v in values.items())
            self._values.update({k: _copy(v) for k, v in values.items()})
            if changed:
                self.version += 1
        return values

    # --- persistence (through device.storage.DataDir)
    def load(self, storage) -> list[str]:
        """Start-up values from the data dir's settings; returns warnings to show on the console."""
        settings, messages = storage.load_settings()
        saved = settings.get("params", {})
        if not isinstance(saved, dict):
            return messages + ["ignored saved parameters: not a JSON object"]
        return messages + self.update_from_dict(saved)

    def save(self, storage) -> None:
        """Make the current values the start-up values (atomic write)."""
        storage.update_settings("params", self.snapshot())


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return list(value) if isinstance(value, list) else value


# --- reference documentation (generated from the table; see device/PARAMETERS.md)

def markdown(table: tuple[Param, ...] = PARAMS) -> str:
    """The parameter reference as Markdown (committed as device/PARAMETERS.md)."""
    lines = [
        "# Parameters of the default piece",
        "",
        "<!-- generated by `lanthorn params --markdown`; do not edit by hand -->",
        "",
        "Change them live over the serial console (`set NAME VALUE`, `get NAME`, `list`),",
        "make them the start-up values with `save`, and keep sets of them as presets",
        "(`preset save NAME`, `preset load NAME`). Values outside the range are refused with",
        "`ERR` naming the range; the object keeps its current value.",
        "",
        "| name | type | default | allowed | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in table:
        default = p.format(p.default) if p.type != "phrases" else " \\| ".join(p.default)
        allowed = p.range_text().replace("|", "\\|")
        lines.append(f"| `{p.name}` | {p.type} | {default or '(empty)'} | {allowed} | "
                     f"{p.description} |")
    lines += [
        "",
        "## What a gesture feels like: `gesture_moods`",
        "",
        "Each recognised gesture adds charge to the moods it evokes (the piece's own table:",
        "a stroke delights, a palm makes it shy, an approach makes it curious). A model with a",
        "newly taught gesture can say what it evokes in its card (`lanthorn quantize ... --mood",
        "wave=delighted`); `gesture_moods` says it live and wins over both, gesture by gesture:",
        "",
        "```",
        "set gesture_moods wave=shy",
        "set gesture_moods wave=delighted; knock=shy:0.7,curious:0.3",
        'set gesture_moods {"wave": {"delighted": 1.0}}',
        "save",
        "```",
        "",
        "Weights are 0..1 (a missing weight is 1); gestures it does not name keep what the card",
        "and the piece say; `reset gesture_moods` forgets them. `lanthorn console PORT -c",
        "\"set gesture_moods wave=shy\"` does the same from a script.",
        "",
        "## Steady recognition: `gesture_smoothing`, `gesture_hold_s`",
        "",
        "The model answers 25 times a second and can hesitate between look-alikes (tap and",
        "double tap). `gesture_smoothing` averages its last outputs before a gesture is",
        "recognised; `gesture_hold_s` is how long a different reading must persist before the",
        "recognised gesture changes. `lanthorn demo` reports the resulting flicker (flips per",
        "second, how long each gesture held) in its summary.",
    ]
    return "\n".join(lines) + "\n"


def text_table(store: ParamStore | None = None) -> str:
    """A plain-text table for terminals (current values when a store is given)."""
    rows = []
    for p in (store.table if store else PARAMS):
        value = store.get(p.name) if store else p.default
        shown = p.format(value)
        if len(shown) > 36:
            shown = shown[:33] + "..."
        rows.append((p.name, f"{shown} {p.unit}".strip(), p.description))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows)
