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
                 "rate_hz": 25.0}}}

A recording is CSV with a header row, then one row per frame: ``session,label,<channel
columns in any order>``. A file may hold several sessions; a session is one continuous
take (the held-out split is made by session, so windows of one take never leak between
training and evaluation). Values are the encoded frames of :mod:`lanthorn.device.frames`.

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

from lanthorn.device.atomic import atomic_write_bytes, atomic_write_text
from lanthorn.device.frames import CHANNELS, DEFAULT_RATE_HZ, DEFAULT_WINDOW, LABELS
from lanthorn.errors import UserError

MANIFEST = "manifest.json"
RECORDINGS = "recordings"
FORMAT = "lanthorn-dataset"
VERSION = 1
SESSION_COLUMN = "session"
LABEL_COLUMN = "label"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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

    def windows(self, window: int = DEFAULT_WINDOW, hop: int = 5, label_at: str = "event",
                min_frames: int = 6) -> Windows:
        """Slide a ``window``-frame window with ``hop`` over every session.

        ``label_at`` says which label a window gets:

        * "event" (default): the gesture (any label but the first, the background label,
          "nobody" in the default piece) with the most frames in the window, if it has at
          least ``min_frames`` there; otherwise the background label. A 0.3 s tap is what
          a 2 s window containing it is about, even though most of its frames are quiet;
          this matches a model that pools over time.
        * "last": the label of the newest frame (what is happening right now);
        * "center" or "majority".

        Sessions shorter than a window give no examples. A window's sample weight is its
        source's weight.
        """
        if window < 1 or hop < 1:
            raise DataError(f"window ({window}) and hop ({hop}) must be at least 1")
        if label_at not in ("event", "last", "center", "majority"):
            raise DataError(f"label_at must be event, last, center or majority, not {label_at!r}")
        xs, ys, ss, ws = [], [], [], []
        n_labels = len(self.labels)
        for rec in self.recordings:
            T = len(rec.frames)
            if T < window:
                continue
            starts = np.arange(0, T - window + 1, hop)
            # [N, T, C] view without copying, then [N, C, T]
            view = np.lib.stride_tricks.sliding_window_view(rec.frames, window, axis=0)[starts]
            xs.append(np.ascontiguousarray(view, dtype=np.float32))
            if label_at == "last":
                y = rec.labels[starts + window - 1]
            elif label_at == "center":
                y = rec.labels[starts + window // 2]
            else:
                lab = np.lib.stride_tricks.sliding_window_view(rec.labels, window)[starts]
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
            for i, c in zip(idx, cnt):
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


_check_name = check_name  # the name host/record_cmd.py uses


def _line_of(text: str, needle: str) -> int | None:
    """1-based line where ``needle`` first appears in ``text`` (to point at a manifest entry)."""
    pos = text.find(needle)
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def read_manifest(path: str | Path) -> tuple[dict, dict[str, Source], str]:
    """Parse and validate ``manifest.json``. Returns (header, sources, raw text)."""
    mpath = _manifest_path(path)
    if not Path(path).is_dir():
        raise DataError("no such dataset folder (create one with 'lanthorn data add-source' "
                        "or 'lanthorn data synth')", path)
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
    header = {"rate_hz": float(rate), "channels": tuple(raw["channels"]),
              "labels": tuple(raw["labels"])}
    return header, sources, text


def _write_manifest(path: Path, header: dict, sources: dict[str, Source]) -> None:
    doc = {"format": FORMAT, "version": VERSION, "rate_hz": header["rate_hz"],
           "channels": list(header["channels"]), "labels": list(header["labels"]),
           "sources": {name: s.to_json() for name, s in sorted(sources.items())}}
    atomic_write_text(_manifest_path(path), json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def create_dataset(path: str | Path, rate_hz: float = DEFAULT_RATE_HZ,
                   channels: Sequence[str] = CHANNELS, labels: Sequence[str] = LABELS) -> Path:
    """Make an empty dataset folder (no-op check if one with the same spec exists)."""
    path = Path(path)
    if _manifest_path(path).exists():
        header, _, _ = read_manifest(path)
        if (not math.isclose(header["rate_hz"], float(rate_hz)) or header["channels"] != tuple(channels)
                or header["labels"] != tuple(labels)):
            raise DataError("a dataset with a different rate, channels or labels already "
                            "exists here", _manifest_path(path))
        return path
    path.mkdir(parents=True, exist_ok=True)
    (path / RECORDINGS).mkdir(exist_ok=True)
    _write_manifest(path, {"rate_hz": float(rate_hz), "channels": tuple(channels),
                           "labels": tuple(labels)}, {})
    return path


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
    for row, lab in zip(frames, labels):
        out.write(session + "," + lab + "," + ",".join(_format_value(float(v)) for v in row) + "\n")
    return out.getvalue()


def write_recording(path: str | Path, source: str, session: str, frames,
                    labels: str | Sequence[str], rate_hz: float | None = None,
                    compress: bool = False) -> Path:
    """Write one session atomically to ``recordings/<source>/<session>.csv[.gz]``.

    ``frames`` float [T, C] in the dataset's channel order; ``labels`` one label for the
    whole take or one per frame. The source must already be declared in the manifest
    (provenance first). Refuses to overwrite an existing session.
    """
    path = Path(path)
    header, sources, _ = read_manifest(path)
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
    folder = path / RECORDINGS / source
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (session + (".csv.gz" if compress else ".csv"))
    other = folder / (session + (".csv" if compress else ".csv.gz"))
    if target.exists() or other.exists():
        raise DataError(f"session {session!r} already exists for source {source!r}", target)
    text = recording_csv(frames, labels, session, header["channels"])
    if compress:
        # mtime=0: the same data gives the same bytes (reproducible, diff-friendly)
        atomic_write_bytes(target, gzip.compress(text.encode("utf-8"), 9, mtime=0))
    else:
        atomic_write_text(target, text)
    return target


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
    ds = Dataset(path, header["rate_hz"], header["channels"], header["labels"], declared)
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
