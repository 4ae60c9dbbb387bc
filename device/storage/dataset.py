"""The dataset format: plain files an artist can read, diff and version.

An artist's choice of data is part of the artwork, so every recording says where it came
from. A dataset is a folder::

    DATA/
      manifest.json                 rate, channels, labels, and one entry per source
      recordings/<source>/<session>.csv   (or .csv.gz)

``manifest.json`` (written by this module, readable by hand)::

    {"format": "lanthorn-dataset", "version": 1,
     "rate_hz": 25.0, "channels": ["pad0", ..., "light"], "labels": ["nobody", ...],
     "sources": {"alice-2026-05": {"author": "Alice", "consent": "signed form, 2026-05-02",
                 "licence": "CC-BY-4.0", "date": "2026-05-02", "device": "lanthorn #3",
                 "notes": "evening, dim room", "weight": 1.0, "synthetic": false,
                 "rate_hz": 25.0}},
     "units": {"distance": "1 - mm/1200", ...}, "ranges": {"distance": [0, 1], ...},
     "ring": ["pad0", ..., "pad11"],
     "sessions": {"alice-2026-05/tap-1": {"split": "test", "label": "tap",
                                          "sha256": "...", "fixed": true}}}

``channels``, ``units``, ``ranges`` and ``ring`` declare the sensors: any channels at any
rate (an IMU's ``ax,ay,az,gx,gy,gz`` at 10 Hz is as good as the default piece's pads).
``ranges`` are the encoded values a channel may take (imports outside them are refused with
the line); ``ring`` names channels that sit in a ring around the object, in order, which is
what makes "turn the ring" a valid training augmentation -- no ring, no rotation.

``sessions`` pins each session's side of the held-out split (train / val / test) when it
first enters the dataset, so adding sessions never moves an old one (a model's held-out
score must never include what it trained on); it also keeps each session's content hash
(``sha256``, so an exact duplicate recording is refused) and its gesture (``label``; "*"
for a take of many gestures). ``fixed``
marks a side the artist chose (``--split test``: to reproduce a published split).

A recording is CSV with a header row, then one row per frame: ``session,label,<channel
columns in any order>``. A file may hold several sessions; a session is one continuous
take (the held-out split is made by session, so windows of one take never leak between
training and evaluation). Values are the encoded frames of :mod:`lanthorn.device.piece.frames`.

This module is numpy + standard library only because the device also records
demonstrations into this format (``record`` on the serial console).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from lanthorn.device.piece.frames import (
    CHANNELS,
    DEFAULT_RANGES,
    DEFAULT_RATE_HZ,
    DEFAULT_RING,
    DEFAULT_UNITS,
    DEFAULT_WINDOW,
    LABELS,
)
from lanthorn.device.storage.atomic import atomic_write_bytes, atomic_write_text, make_dirs
from lanthorn.errors import UserError

MANIFEST = "manifest.json"
RECORDINGS = "recordings"
FORMAT = "lanthorn-dataset"
VERSION = 1
SESSION_COLUMN = "session"
LABEL_COLUMN = "label"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: The sides of the held-out split, and the share of a gesture's sessions each aims for.
SIDES = ("train", "val", "test")
SIDE_TARGETS = {"train": 0.7, "val": 0.15, "test": 0.15}


class DataError(UserError):
    """Bad data, with the file (and line, when there is one) a person should look at."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None):
        self.file = None if file is None else str(file)
        self.line = line
        where = ""
        if self.file:
            where = self.file + (f" line {line}" if line is not None else "") + ": "
        super().__init__(where + message)


@dataclass
class Source:
    """Where a group of recordings came from, and on what terms.

    ``consent`` says HOW consent was given ("signed form 2026-05-02", "verbal, on video",
    "synthetic: no person involved"); empty means none is recorded and ``lanthorn data
    info`` warns about it. ``weight`` is the artist's say in how much this source counts in
    training (per window). ``rate_hz`` is the frame rate the recordings were made at.
    """

    name: str
    author: str = ""
    consent: str = ""
    licence: str = ""
    date: str = ""
    device: str = ""
    notes: str = ""
    weight: float = 1.0
    synthetic: bool = False
    rate_hz: float | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        del d["name"]
        return d


_SOURCE_FIELDS = {f.name for f in fields(Source)} - {"name"}


@dataclass
class Recording:
    """One session: frames float32 [T, C] and label indices int16 [T]."""

    source: str
    session: str
    path: Path
    frames: np.ndarray
    labels: np.ndarray

    @property
    def key(self) -> str:
        """Globally unique session id (sessions are named per source)."""
        return f"{self.source}/{self.session}"


@dataclass
class Windows:
    """Training examples: X float32 [N, C, T], y int64 [N], session ids [N], weights [N]."""

    X: np.ndarray
    y: np.ndarray
    sessions: np.ndarray
    weights: np.ndarray
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask) -> "Windows":
        return Windows(self.X[mask], self.y[mask], self.sessions[mask], self.weights[mask],
                       self.labels)


@dataclass
class Dataset:
    path: Path
    rate_hz: float
    channels: tuple[str, ...]
    labels: tuple[str, ...]
    sources: dict[str, Source]
    recordings: list[Recording] = field(default_factory=list)
    sessions: dict[str, dict] = field(default_factory=dict)   # manifest "sessions" (pins)
    units: dict[str, str] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    ring: tuple[str, ...] = ()

    def side(self, key: str) -> str | None:
        """The pinned side of session ``key`` ("train", "val", "test"), None if unpinned."""
        entry = self.sessions.get(key)
        return entry.get("split") if entry else None

    def windows(self, window: int = DEFAULT_WINDOW, hop: int = 5, label_at: str = "event",
                min_frames: int = 6, pad_short: bool = False) -> Windows:
        """Slide a ``window``-frame window with ``hop`` over every session.

        ``label_at`` says which label a window gets:

        * "event" (default): the gesture (any label but the first, the background label,
          "nobody" in the default piece) with the most frames in the window, if it has at
          least ``min_frames`` there; otherwise the background label. A 0.3 s tap is what
          a 2 s window containing it is about, even though most of its frames are quiet;
          this matches a model that pools over time.
        * "last": the label of the newest frame (what is happening right now);
        * "center" or "majority".

        Sessions shorter than a window give no examples, unless ``pad_short``: then a short
        take is preceded by its own first frame repeated (what the device's window holds
        just after it starts), so a dataset of short takes of varying length (one spoken
        vowel each) loses none. A window's sample weight is its source's weight.
        """
        if window < 1 or hop < 1:
            raise DataError(f"window ({window}) and hop ({hop}) must be at least 1")
        if label_at not in ("event", "last", "center", "majority"):
            raise DataError(f"label_at must be event, last, center or majority, not {label_at!r}")
        xs, ys, ss, ws = [], [], [], []
        n_labels = len(self.labels)
        for rec in self.recordings:
            frames, labels = rec.frames, rec.labels
            if len(frames) < window:
                if not pad_short or not len(frames):
                    continue
                extra = window - len(frames)
                frames = np.concatenate([np.repeat(frames[:1], extra, axis=0), frames])
                labels = np.concatenate([np.repeat(labels[:1], extra), labels])
            T = len(frames)
            starts = np.arange(0, T - window + 1, hop)
            # [N, T, C] view without copying, then [N, C, T]
            view = np.lib.stride_tricks.sliding_window_view(frames, window, axis=0)[starts]
            xs.append(np.ascontiguousarray(view, dtype=np.float32))
            if label_at == "last":
                y = labels[starts + window - 1]
            elif label_at == "center":
                y = labels[starts + window // 2]
            else:
                lab = np.lib.stride_tricks.sliding_window_view(labels, window)[starts]
                counts = np.stack([(lab == k).sum(axis=1) for k in range(n_labels)], axis=1)
                if label_at == "majority":
                    y = counts.argmax(axis=1)
                else:
                    fg = counts[:, 1:]
                    best = fg.argmax(axis=1)
                    y = np.where(fg[np.arange(len(fg)), best] >= min_frames, best + 1, 0)
            ys.append(y.astype(np.int64))
            ss.append(np.full(len(starts), rec.key, dtype=object))
            ws.append(np.full(len(starts), self.sources[rec.source].weight, np.float32))
        if not xs:
            C = len(self.channels)
            return Windows(np.zeros((0, C, window), np.float32), np.zeros(0, np.int64),
                           np.zeros(0, object), np.zeros(0, np.float32), self.labels)
        return Windows(np.concatenate(xs), np.concatenate(ys), np.concatenate(ss),
                       np.concatenate(ws), self.labels)

    def frame_counts(self) -> dict[str, dict[str, int]]:
        """Frames per source per label (for ``lanthorn data info``)."""
        out: dict[str, dict[str, int]] = {name: {} for name in self.sources}
        for rec in self.recordings:
            per = out.setdefault(rec.source, {})
            idx, cnt = np.unique(rec.labels, return_counts=True)
            for i, c in zip(idx, cnt, strict=True):
                per[self.labels[i]] = per.get(self.labels[i], 0) + int(c)
        return out


# ----------------------------------------------------------------------------- manifest

def _manifest_path(path: str | Path) -> Path:
    return Path(path) / MANIFEST


def check_name(kind: str, name: str, file=None) -> str:
    """A source, session or label name that is safe as a file or folder name, or DataError."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise DataError(f"{kind} name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                        f"(it becomes a folder or file name)", file)
    return name




def _line_of(text: str, needle: str) -> int | None:
    """1-based line where ``needle`` first appears in ``text`` (to point at a manifest entry)."""
    pos = text.find(needle)
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def _check_folder(path) -> None:
    """A dataset is a folder: a file given instead (a CSV) is told how to import it."""
    if Path(path).is_file():
        raise DataError(f"this is a file, not a dataset folder; a dataset is a folder with a "
                        f"{MANIFEST}: import the file into one with 'lanthorn data import "
                        f"{path} --data DIR --source NAME' (declare the source first: "
                        f"'lanthorn data add-source DIR NAME --author ... --consent ...')", path)
    if not Path(path).is_dir():
        raise DataError("no such dataset folder (create one with 'lanthorn data add-source' "
                        "or 'lanthorn data synth')", path)


def read_manifest(path: str | Path) -> tuple[dict, dict[str, Source], str]:
    """Parse and validate ``manifest.json``. Returns (header, sources, raw text)."""
    mpath = _manifest_path(path)
    _check_folder(path)
    if not mpath.exists():
        raise DataError(f"no {MANIFEST} here: not a lanthorn dataset", path)
    text = mpath.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg}", mpath, exc.lineno) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"'format' must be {FORMAT!r}", mpath)
    if raw.get("version") != VERSION:
        raise DataError(f"dataset format version {raw.get('version')!r} is not supported "
                        f"(this lanthorn reads version {VERSION})", mpath)
    rate = raw.get("rate_hz")
    if not isinstance(rate, (int, float)) or not rate > 0:
        raise DataError(f"'rate_hz' must be a positive number, not {rate!r}", mpath,
                        _line_of(text, '"rate_hz"'))
    for key in ("channels", "labels"):
        v = raw.get(key)
        if (not isinstance(v, list) or not v or not all(isinstance(s, str) and s for s in v)
                or len(set(v)) != len(v)):
            raise DataError(f"'{key}' must be a non-empty list of distinct names", mpath,
                            _line_of(text, f'"{key}"'))
        if set(v) & {SESSION_COLUMN, LABEL_COLUMN}:
            raise DataError(f"'{key}' may not use the reserved names session/label", mpath)
    sources: dict[str, Source] = {}
    for name, entry in (raw.get("sources") or {}).items():
        line = _line_of(text, json.dumps(name) + ":")
        if not isinstance(entry, dict):
            raise DataError(f"source {name!r} must be an object", mpath, line)
        check_name("source", name, mpath)
        unknown = set(entry) - _SOURCE_FIELDS
        if unknown:
            raise DataError(f"source {name!r} has unknown fields {sorted(unknown)} "
                            f"(known: {sorted(_SOURCE_FIELDS)})", mpath, line)
        try:
            src = Source(name=name, **entry)
            src.weight = float(src.weight)
            src.rate_hz = None if src.rate_hz is None else float(src.rate_hz)
        except (TypeError, ValueError):
            raise DataError(f"source {name!r}: weight and rate_hz must be numbers", mpath,
                            line) from None
        if not (math.isfinite(src.weight) and src.weight >= 0):
            raise DataError(f"source {name!r}: weight must be a number ≥ 0", mpath, line)
        if not isinstance(src.synthetic, bool):
            raise DataError(f"source {name!r}: synthetic must be true or false", mpath, line)
        if src.rate_hz is not None and not math.isclose(src.rate_hz, float(rate), rel_tol=1e-6):
            raise DataError(f"source {name!r} was recorded at {src.rate_hz:g} Hz but the dataset "
                            f"is {float(rate):g} Hz (resample it on import with --rate/--resample)",
                            mpath, line)
        sources[name] = src
    channels = tuple(raw["channels"])
    header = {"rate_hz": float(rate), "channels": channels, "labels": tuple(raw["labels"])}
    header.update(_read_layout(raw, channels, mpath, text))
    return header, sources, text


def _read_layout(raw: dict, channels: tuple[str, ...], mpath: Path, text: str) -> dict:
    """The optional sensor declarations and session pins of a manifest, checked."""
    default_piece = channels == CHANNELS
    units = raw.get("units", DEFAULT_UNITS if default_piece else {})
    ranges = raw.get("ranges", DEFAULT_RANGES if default_piece else {})
    ring = raw.get("ring", list(DEFAULT_RING) if default_piece else [])
    sessions = raw.get("sessions", {})
    if not isinstance(units, dict) or not all(isinstance(v, str) for v in units.values()) \
            or set(units) - set(channels):
        raise DataError("'units' must map channel names to text", mpath, _line_of(text, '"units"'))
    good_ranges = {}
    if not isinstance(ranges, dict) or set(ranges) - set(channels):
        raise DataError("'ranges' must map channel names to [low, high]", mpath,
                        _line_of(text, '"ranges"'))
    for ch, r in ranges.items():
        if (not isinstance(r, (list, tuple)) or len(r) != 2
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in r)
                or not r[0] < r[1]):
            raise DataError(f"range of {ch!r} must be [low, high] with low < high, not {r!r}",
                            mpath, _line_of(text, '"ranges"'))
        good_ranges[ch] = (float(r[0]), float(r[1]))
    if (not isinstance(ring, list) or len(set(ring)) != len(ring) or set(ring) - set(channels)
            or len(ring) == 1):
        raise DataError("'ring' must list at least two distinct channels, in order around "
                        "the ring", mpath, _line_of(text, '"ring"'))
    if not isinstance(sessions, dict) or not all(
            isinstance(v, dict) and v.get("split") in SIDES for v in sessions.values()):
        raise DataError(f"'sessions' must map source/session to {{\"split\": one of "
                        f"{', '.join(SIDES)}, ...}}", mpath, _line_of(text, '"sessions"'))
    return {"units": dict(units), "ranges": good_ranges, "ring": tuple(ring),
            "sessions": {k: dict(v) for k, v in sessions.items()}}


def _write_manifest(path: Path, header: dict, sources: dict[str, Source]) -> None:
    doc = {"format": FORMAT, "version": VERSION, "rate_hz": header["rate_hz"],
           "channels": list(header["channels"]), "labels": list(header["labels"])}
    for key in ("units", "ranges", "ring"):
        if header.get(key):
            doc[key] = ({k: list(v) for k, v in header[key].items()} if key == "ranges"
                        else header[key] if key == "units" else list(header[key]))
    doc["sources"] = {name: s.to_json() for name, s in sorted(sources.items())}
    doc["sessions"] = {k: header["sessions"][k] for k in sorted(header.get("sessions") or {})}
    atomic_write_text(_manifest_path(path), json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def create_dataset(path: str | Path, rate_hz: float = DEFAULT_RATE_HZ,
                   channels: Sequence[str] = CHANNELS, labels: Sequence[str] = LABELS,
                   units: dict | None = None, ranges: dict | None = None,
                   ring: Sequence[str] | None = None) -> Path:
    """Make an empty dataset folder (no-op check if one with the same spec exists).

    ``units``/``ranges``/``ring`` declare the sensors (see the module docstring); for the
    default piece's channels they default to its encoding and its ring of pads."""
    path = Path(path)
    channels, labels = tuple(channels), tuple(labels)
    if _manifest_path(path).exists():
        header, _, _ = read_manifest(path)
        if (not math.isclose(header["rate_hz"], float(rate_hz)) or header["channels"] != channels
                or header["labels"] != labels):
            raise DataError("a dataset with a different rate, channels or labels already "
                            "exists here", _manifest_path(path))
        return path
    default_piece = channels == CHANNELS
    header = {"rate_hz": float(rate_hz), "channels": channels, "labels": labels,
              "units": dict(units if units is not None else DEFAULT_UNITS if default_piece else {}),
              "ranges": dict(ranges if ranges is not None else DEFAULT_RANGES if default_piece else {}),
              "ring": tuple(ring if ring is not None else DEFAULT_RING if default_piece else ()),
              "sessions": {}}
    for k in ("units", "ranges"):
        unknown = set(header[k]) - set(channels)
        if unknown:
            raise DataError(f"{k} given for unknown channels {sorted(unknown)}")
    if set(header["ring"]) - set(channels) or len(header["ring"]) == 1:
        raise DataError(f"the ring {list(header['ring'])} must be two or more of the channels")
    make_dirs(path / RECORDINGS)  # durable names: a power cut must not lose the folder
    _write_manifest(path, header, {})
    return path


def add_label(path: str | Path, label: str) -> tuple[str, ...]:
    """Add a class to a dataset (teaching a new gesture starts here); returns the labels.

    Existing recordings keep their labels (the file stores names, not indices), so nothing
    else changes; the new class is appended, the background (first) label stays first."""
    path = Path(path)
    check_label(label)
    header, sources, _ = read_manifest(path)
    if label in header["labels"]:
        raise DataError(f"{path} already has a label {label!r}")
    header["labels"] = tuple(header["labels"]) + (label,)
    _write_manifest(path, header, sources)
    return header["labels"]


_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


def check_label(label: str) -> str:
    """A class name: a letter, then letters, digits, _ or - (it is a file and a console word)."""
    if not isinstance(label, str) or not _LABEL_RE.match(label) or label in (SESSION_COLUMN,
                                                                              LABEL_COLUMN):
        raise DataError(f"label {label!r} must be up to 32 letters, digits, _ or - "
                        f"(starting with a letter or digit)")
    return label


def add_source(path: str | Path, source: Source, replace: bool = False) -> Source:
    """Declare (or with ``replace``, update) a source's provenance in the manifest."""
    check_name("source", source.name)
    header, sources, _ = read_manifest(path)
    if source.name in sources and not replace:
        raise DataError(f"source {source.name!r} already exists (use --replace to update it)",
                        _manifest_path(path))
    if source.rate_hz is None:
        source.rate_hz = header["rate_hz"]
    source.weight = float(source.weight)
    if not (math.isfinite(source.weight) and source.weight >= 0):
        raise DataError(f"weight must be a number ≥ 0, not {source.weight}")
    if not math.isclose(source.rate_hz, header["rate_hz"], rel_tol=1e-6):
        raise DataError(f"source rate {source.rate_hz:g} Hz does not match the dataset's "
                        f"{header['rate_hz']:g} Hz", _manifest_path(path))
    sources[source.name] = source
    _write_manifest(Path(path), header, sources)
    return source


# ----------------------------------------------------------------------------- recordings

def _format_value(v: float) -> str:
    # 5 significant digits: far finer than the int8 input step, and a readable file
    s = f"{v:.5g}"
    return "0" if s == "-0" else s


def recording_csv(frames: np.ndarray, labels: Sequence[str], session: str,
                  channels: Sequence[str]) -> str:
    """The CSV text of one session (header + one row per frame)."""
    out = io.StringIO()
    out.write(",".join([SESSION_COLUMN, LABEL_COLUMN, *channels]) + "\n")
    for row, lab in zip(frames, labels, strict=True):
        out.write(session + "," + lab + "," + ",".join(_format_value(float(v)) for v in row) + "\n")
    return out.getvalue()


def write_recording(path: str | Path, source: str, session: str, frames,
                    labels: str | Sequence[str], rate_hz: float | None = None,
                    compress: bool = False, split: str | None = None,
                    allow_duplicate: bool = False) -> Path:
    """Write one session atomically to ``recordings/<source>/<session>.csv[.gz]``.

    ``frames`` float [T, C] in the dataset's channel order; ``labels`` one label for the
    whole take or one per frame. The source must already be declared in the manifest
    (provenance first). Refuses to overwrite an existing session, and refuses an exact
    duplicate of a recording already in the dataset (same frames and labels). The session's
    side of the held-out split is pinned in the manifest now (``split`` chooses it; default:
    see :func:`choose_side`) and never moves afterwards. ``allow_duplicate``: keep an exact
    duplicate anyway (a published archive can hold the same instance twice); it then goes
    to its twin's side, so the two can never sit on both sides of the split (unless
    ``split`` says otherwise), and ``data info`` lists the pair.
    """
    path = Path(path)
    header, sources, _ = read_manifest(path)
    frames, labels = _checked_take(path, header, sources, source, session, frames, labels,
                                   rate_hz, split)
    folder = path / RECORDINGS / source
    target = folder / (session + (".csv.gz" if compress else ".csv"))
    other = folder / (session + (".csv" if compress else ".csv.gz"))
    if target.exists() or other.exists():
        raise DataError(f"session {session!r} already exists for source {source!r}", target)
    if _unpinned_files(path, header):
        pin_sessions(path)   # an older dataset: pin what is there before adding to it
        header, sources, _ = read_manifest(path)
    key = f"{source}/{session}"
    entry = _session_entry(path, header, key, frames, labels, split, allow_duplicate)
    text = recording_csv(frames, labels, session, header["channels"])
    make_dirs(folder)  # its name durable before the manifest names the take
    if compress:
        # mtime=0: the same data gives the same bytes (reproducible, diff-friendly)
        atomic_write_bytes(target, gzip.compress(text.encode("utf-8"), 9, mtime=0))
    else:
        atomic_write_text(target, text)
    header["sessions"][key] = entry
    _write_manifest(path, header, sources)
    return target


def _checked_take(path: Path, header: dict, sources: dict, source: str, session: str, frames,
                  labels, rate_hz, split) -> tuple[np.ndarray, list[str]]:
    """A take's arguments checked against the manifest (write_recording's refusals):
    float64 frames [T, C] and one label per frame."""
    check_name("session", session)
    if source not in sources:
        raise DataError(f"source {source!r} is not declared in the manifest; declare it "
                        f"first with 'lanthorn data add-source'", _manifest_path(path))
    if rate_hz is not None and not math.isclose(float(rate_hz), header["rate_hz"], rel_tol=1e-6):
        raise DataError(f"frames at {float(rate_hz):g} Hz do not match the dataset's "
                        f"{header['rate_hz']:g} Hz", _manifest_path(path))
    frames = np.asarray(frames, dtype=np.float64)
    C = len(header["channels"])
    if frames.ndim != 2 or frames.shape[1] != C:
        raise DataError(f"frames must have shape (T, {C}), not {frames.shape}")
    if not np.isfinite(frames).all():
        raise DataError("frames contain NaN or infinity")
    if isinstance(labels, str):
        labels = [labels] * len(frames)
    labels = list(labels)
    if len(labels) != len(frames):
        raise DataError(f"{len(labels)} labels for {len(frames)} frames")
    unknown = sorted(set(labels) - set(header["labels"]))
    if unknown:
        raise DataError(f"unknown labels {unknown}; this dataset's labels are "
                        f"{', '.join(header['labels'])}")
    if split is not None and split not in SIDES:
        raise DataError(f"--split must be one of {', '.join(SIDES)}, not {split!r}")
    return frames, labels


def _session_entry(path: Path, header: dict, key: str, frames, labels, split,
                   allow_duplicate: bool) -> dict:
    """The manifest entry pinning a new session's side of the split (next to its twin's,
    if it is an exact duplicate that is allowed in)."""
    digest = session_digest(frames, labels, header["channels"])
    twin = next((k for k, e in header["sessions"].items() if e.get("sha256") == digest), None)
    if twin is not None and not allow_duplicate:
        raise DataError(f"this recording is identical to session {twin!r} already in the "
                        f"dataset (the same file imported twice?); nothing written", path)
    label_idx = np.array([header["labels"].index(x) for x in labels], np.int64)
    group = split_group(label_idx, header["labels"])
    if twin is not None and split is None:
        side = header["sessions"][twin]["split"]      # never on the other side of its twin
    elif split == "train":   # the training part of a published split: validation comes from it
        side = choose_side(header["sessions"], group, key, allowed=("train", "val"))
    else:
        side = split or choose_side(header["sessions"], group, key)
    entry = {"split": side, "label": group, "sha256": digest}
    if split is not None:
        entry["fixed"] = split
    return entry


# ----------------------------------------------------------------------------- the split

def session_digest(frames, labels: Sequence[str], channels: Sequence[str]) -> str:
    """SHA-256 of a session's content (frames as written, labels), not of its name: two
    imports of the same file give the same digest whatever they are called."""
    import hashlib
    body = recording_csv(np.asarray(frames, np.float64), list(labels), "", channels)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def main_label(label_idx: np.ndarray, n_labels: int) -> int:
    """A session's gesture: its most frequent label other than the background (the first
    label), or the background when it holds nothing else."""
    counts = np.bincount(np.asarray(label_idx, np.int64), minlength=n_labels)
    return int(counts[1:].argmax() + 1) if counts[1:].any() else 0


#: The split group of a session holding three or more gestures (a simulated or recorded
#: visit): such takes are dealt among themselves, not under one gesture.
MIXED = "*"


def split_group(label_idx: np.ndarray, labels: Sequence[str]) -> str:
    """What a session is dealt with: its gesture, or :data:`MIXED` for a many-gesture take."""
    present = set(np.unique(np.asarray(label_idx, np.int64)).tolist()) - {0}
    return MIXED if len(present) >= 3 else labels[main_label(label_idx, len(labels))]


def _key_hash(key: str) -> int:
    import hashlib
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def _deal(have: dict[str, int], key: str, allowed=SIDES) -> str:
    have = {side: have[side] for side in allowed}
    total = sum(SIDE_TARGETS[side] for side in allowed)
    n = sum(have.values()) + 1
    deficit = {side: SIDE_TARGETS[side] / total * n - have[side] for side in allowed}
    ranked = ("val", "test", "train") if _key_hash(key) % 2 == 0 else ("test", "val", "train")
    order = tuple(side for side in ranked if side in allowed)
    return max(order, key=lambda side: (round(deficit[side], 9), -order.index(side)))


def choose_side(pinned: dict[str, dict], group: str, key: str, allowed=SIDES) -> str:
    """The side of a new session of ``group`` (its gesture), decided once from what is pinned.

    A gesture's first take trains (every gesture must be learnable). Its second goes where
    the whole dataset is furthest below :data:`SIDE_TARGETS` (70/15/15); from the third on,
    where the gesture's own takes are. Ties: validation or test by the key's hash before
    training. A side the artist fixed counts like any other. ``allowed``: the sides this
    session may take (``--split train``: training or validation, never test; sessions
    pinned to test by the artist are then left out of the dealing). Deterministic: the same
    pins and key give the same side, and nothing already pinned ever moves."""
    mine = {side: 0 for side in SIDES}
    everyone = {side: 0 for side in SIDES}
    for e in pinned.values():
        if e["split"] not in allowed:
            continue
        everyone[e["split"]] += 1
        if e.get("label") == group:
            mine[e["split"]] += 1
    if mine["train"] == 0:
        return "train"
    if sum(mine.values()) < 2:
        return _deal(everyone, key, allowed) if sum(everyone.values()) >= 2 else "train"
    return _deal(mine, key, allowed)


def _unpinned_files(path: Path, header: dict) -> bool:
    """Whether recordings on disk may hold sessions the manifest has not pinned (cheap: by
    file name, the exact check happens in :func:`pin_sessions`)."""
    root = path / RECORDINGS
    if not root.is_dir():
        return False
    pinned = header.get("sessions") or {}
    for f in root.glob("*/*.csv*"):
        if f"{f.parent.name}/{f.name.split('.csv')[0]}" not in pinned:
            return True
    return False


def pin_sessions(path: str | Path, split_seed: int = 0) -> dict[str, dict]:
    """Pin every session not yet in the manifest's ``sessions`` (and return them all).

    A dataset from before pinning (no pins at all) is split once the way lanthorn always
    split it (:func:`split_by_session` over the default windows, ``split_seed``), so models
    trained on it keep their held-out sessions; after that, new sessions go through
    :func:`choose_side` in the order of their identity's hash. Also records each session's
    content hash, and refuses a dataset that holds the same recording twice."""
    path = Path(path)
    ds = load_dataset(path)
    header, sources, _ = read_manifest(path)
    pinned = header["sessions"]
    new = [r for r in ds.recordings if r.key not in pinned]
    if not new:
        return pinned
    if not pinned:
        w = ds.windows(DEFAULT_WINDOW, 3, "event", 6)
        if len(w):
            masks = split_by_session(w, seed=split_seed)
            for side, m in masks.items():
                for key in set(w.sessions[m].tolist()):
                    rec = next(r for r in new if r.key == key)
                    pinned[key] = {"split": side, "label": split_group(rec.labels, ds.labels)}
    for rec in sorted(new, key=lambda r: _key_hash(r.key)):
        label = split_group(rec.labels, ds.labels)
        entry = pinned.get(rec.key) or {"split": choose_side(pinned, label, rec.key),
                                        "label": label}
        entry["sha256"] = session_digest(rec.frames, [ds.labels[i] for i in rec.labels],
                                         ds.channels)
        pinned[rec.key] = entry
    _write_manifest(path, header, sources)
    return pinned


def duplicates(sessions: dict[str, dict]) -> list[tuple[str, str]]:
    """Pairs of sessions with identical content (for ``data info`` and the quality gates)."""
    first: dict[str, str] = {}
    out = []
    for key in sorted(sessions):
        d = sessions[key].get("sha256")
        if d is None:
            continue
        if d in first:
            out.append((first[d], key))
        else:
            first[d] = key
    return out


def _session_file(path: Path, source: str, session: str) -> Path:
    folder = path / RECORDINGS / source
    for f in sorted(folder.glob("*.csv*")) if folder.is_dir() else []:
        if f.name.split(".csv")[0] == session:
            return f
    # a hand-made file may hold several sessions: find the one that does
    header, _, _ = read_manifest(path)
    for f in sorted(folder.glob("*.csv*")) if folder.is_dir() else []:
        recs = read_recording_file(f, source, header["channels"], header["labels"])
        if any(r.session == session for r in recs):
            return f
    raise DataError(f"no session {session!r} in source {source!r}", path)


def _rewrite_file(path: Path, file: Path, source: str, keep: list, header: dict) -> None:
    """Write the sessions ``keep`` [(session, frames, label names)] back to ``file``."""
    if not keep:
        file.unlink()
        return
    text = "".join(recording_csv(f, labs, sess, header["channels"]).split("\n", 1)[1]
                   if i else recording_csv(f, labs, sess, header["channels"])
                   for i, (sess, f, labs) in enumerate(keep))
    if file.name.endswith(".gz"):
        atomic_write_bytes(file, gzip.compress(text.encode("utf-8"), 9, mtime=0))
    else:
        atomic_write_text(file, text)


def delete_session(path: str | Path, source: str, session: str) -> None:
    """Remove one session: its rows (its file, when it is the only session there) and its
    manifest entry. Other sessions keep their sides."""
    path = Path(path)
    file = _session_file(path, source, session)
    header, sources, _ = read_manifest(path)
    recs = read_recording_file(file, source, header["channels"], header["labels"])
    keep = [(r.session, r.frames, [header["labels"][i] for i in r.labels])
            for r in recs if r.session != session]
    _rewrite_file(path, file, source, keep, header)
    header["sessions"].pop(f"{source}/{session}", None)
    _write_manifest(path, header, sources)


def relabel_session(path: str | Path, source: str, session: str, label: str,
                    old: str | None = None) -> None:
    """Give a session's frames another label (all of them, or only those labelled ``old``).
    Its side stays pinned; its content hash and gesture are updated."""
    path = Path(path)
    file = _session_file(path, source, session)
    header, sources, _ = read_manifest(path)
    names = header["labels"]
    for x in (label, old):
        if x is not None and x not in names:
            raise DataError(f"unknown label {x!r} (labels: {', '.join(names)})")
    recs = read_recording_file(file, source, header["channels"], names)
    keep = []
    for r in recs:
        labs = [names[i] for i in r.labels]
        if r.session == session:
            labs = [label if (old is None or x == old) else x for x in labs]
            entry = header["sessions"].setdefault(f"{source}/{session}", {"split": "train"})
            entry["label"] = split_group(np.array([names.index(x) for x in labs]), names)
            entry["sha256"] = session_digest(r.frames, labs, header["channels"])
        keep.append((r.session, r.frames, labs))
    _rewrite_file(path, file, source, keep, header)
    _write_manifest(path, header, sources)


def _read_text(file: Path) -> str:
    try:
        if file.name.endswith(".gz"):
            return gzip.decompress(file.read_bytes()).decode("utf-8")
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read: {exc}", file) from None


def read_recording_file(file: Path, source: str, channels: Sequence[str],
                        labels: Sequence[str], display: str | None = None) -> list[Recording]:
    """Parse one recording file into its sessions, checking every row."""
    shown = display or str(file)
    text = _read_text(file)
    rows = csv.reader(io.StringIO(text))
    try:
        head = next(rows)
    except StopIteration:
        raise DataError("empty file (expected a header row)", shown, 1) from None
    head = [h.strip() for h in head]
    missing = [c for c in (SESSION_COLUMN, LABEL_COLUMN, *channels) if c not in head]
    if missing:
        raise DataError(f"header lacks columns {missing}", shown, 1)
    extra = sorted(set(head) - {SESSION_COLUMN, LABEL_COLUMN, *channels})
    if extra or len(set(head)) != len(head):
        raise DataError(f"header has unknown or repeated columns {extra or head}", shown, 1)
    s_col, l_col = head.index(SESSION_COLUMN), head.index(LABEL_COLUMN)
    c_cols = [head.index(c) for c in channels]
    label_index = {name: i for i, name in enumerate(labels)}
    n = len(head)
    sessions: dict[str, tuple[list, list]] = {}
    for row in rows:
        line = rows.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != n:
            raise DataError(f"ragged row: {len(row)} values, the header has {n}", shown, line)
        sess = row[s_col].strip()
        if not _NAME_RE.match(sess):
            raise DataError(f"bad session id {sess!r}", shown, line)
        lab = row[l_col].strip()
        if lab not in label_index:
            raise DataError(f"unknown label {lab!r} (this dataset's labels: "
                            f"{', '.join(labels)})", shown, line)
        try:
            vals = [float(row[c]) for c in c_cols]
        except ValueError:
            bad = next(c for c in c_cols if not is_number(row[c]))
            raise DataError(f"non-numeric value {row[bad].strip()!r} in column "
                            f"{head[bad]!r}", shown, line) from None
        if not all(math.isfinite(v) for v in vals):
            raise DataError("NaN or infinite value", shown, line)
        f_list, l_list = sessions.setdefault(sess, ([], []))
        f_list.append(vals)
        l_list.append(label_index[lab])
    return [Recording(source, s, file, np.asarray(f, np.float32).reshape(-1, len(channels)),
                      np.asarray(lab, np.int16)) for s, (f, lab) in sessions.items()]


def is_number(s: str) -> bool:
    """Whether a CSV cell reads as a number (the check behind every non-numeric error)."""
    try:
        float(s)
        return True
    except ValueError:
        return False


def load_dataset(path: str | Path, sources: Iterable[str] | None = None) -> Dataset:
    """Read and check a whole dataset (optionally only some sources)."""
    path = Path(path)
    header, declared, _ = read_manifest(path)
    ds = Dataset(path, header["rate_hz"], header["channels"], header["labels"], declared,
                 sessions=header["sessions"], units=header["units"], ranges=header["ranges"],
                 ring=header["ring"])
    rec_root = path / RECORDINGS
    wanted = None if sources is None else set(sources)
    seen: set[str] = set()
    if rec_root.is_dir():
        for folder in sorted(p for p in rec_root.iterdir() if not p.name.startswith(".")):
            rel = folder.relative_to(path)
            if not folder.is_dir():
                raise DataError("recordings must live in a folder per source "
                                "(recordings/<source>/<session>.csv)", rel)
            if folder.name not in declared:
                raise DataError(f"source {folder.name!r} is not declared in {MANIFEST}: say "
                                f"who made it and under what consent with 'lanthorn data "
                                f"add-source {path} {folder.name} ...'", rel)
            if wanted is not None and folder.name not in wanted:
                continue
            for file in sorted(folder.iterdir()):
                if file.name.startswith(".") or not file.name.endswith((".csv", ".csv.gz")):
                    continue
                for rec in read_recording_file(file, folder.name, ds.channels, ds.labels,
                                               display=str(file.relative_to(path))):
                    if rec.key in seen:
                        raise DataError(f"session {rec.session!r} appears in more than one "
                                        f"file of source {rec.source!r}",
                                        file.relative_to(path))
                    seen.add(rec.key)
                    ds.recordings.append(rec)
    if wanted is not None and wanted - set(declared):
        raise DataError(f"no such sources {sorted(wanted - set(declared))}", _manifest_path(path))
    return ds


def split_by_session(w: Windows, val: float = 0.15, test: float = 0.15,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Boolean masks "train", "val", "test" over ``w``, never splitting a session.

    Windows of one take are near-copies of each other, so a random split by window would
    measure memory, not skill. Sessions are grouped by their most common label (so every
    gesture is represented in each part when there are enough takes of it), shuffled with
    ``seed`` and dealt out in proportion. Deterministic: same data and seed, same split.
    """
    keys = sorted(set(w.sessions.tolist()))
    main_label = {}
    for k in keys:
        ys = w.y[w.sessions == k]
        main_label[k] = int(np.bincount(ys).argmax())
    rng = np.random.default_rng(seed)
    part = {}
    for lab in sorted(set(main_label.values())):
        group = [k for k in keys if main_label[k] == lab]
        group = [group[i] for i in rng.permutation(len(group))]
        n = len(group)
        n_test = int(round(n * test)) if n >= 3 else 0
        n_val = int(round(n * val)) if n >= 3 else 0
        if n >= 3:
            n_test, n_val = max(n_test, 1 if test > 0 else 0), max(n_val, 1 if val > 0 else 0)
        for i, k in enumerate(group):
            part[k] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    names = np.array([part[k] for k in w.sessions.tolist()]) if len(w) else np.zeros(0, str)
    return {p: names == p for p in ("train", "val", "test")}
