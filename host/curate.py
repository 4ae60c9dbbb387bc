"""Curating a dataset: synthetic visits, a maker's CSV imported, sources declared, balance.

The library behind ``lanthorn data`` (``lanthorn.commands.data`` parses and prints). The
dataset format itself (manifest, recordings, the pinned held-out split) is
:mod:`lanthorn.device.storage.dataset`; this module is what an artist does to one on a laptop:
synthesise the default piece's gestures with the simulator (exactly as the device makes its
frames), import CSV streams from other sensors (parsed, range-checked, split into sessions,
resampled, duplicates refused), declare who recorded what under which consent and licence,
and summarise the balance and provenance that training and the model card report.
"""
from __future__ import annotations

import argparse
import datetime
import io
import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lanthorn.device.piece.frames import (
    CHANNELS,
    DEFAULT_RANGES,
    DEFAULT_RATE_HZ,
    DEFAULT_UNITS,
    LABELS,
    N_PADS,
    RAW_RANGES,
    SAMPLE_HZ,
    encode_into,
    frames_from_samples,
)
from lanthorn.device.storage import dataset as dsf
from lanthorn.device.storage.dataset import DataError, Source, is_number
from lanthorn.words import plural

SYNTH_SOURCE = "synthetic"


def layout(channels, ring: str | None) -> dict:
    """create_dataset keywords from parsed ``--channels`` ([(name, unit, range)]) and
    ``--ring`` (None: the defaults)."""
    kw = {}
    if channels is not None:
        kw["channels"] = tuple(c[0] for c in channels)
        kw["units"] = {c[0]: c[1] for c in channels if c[1]}
        kw["ranges"] = {c[0]: c[2] for c in channels if c[2]}
        if kw["channels"] == CHANNELS:
            kw["units"] = {**DEFAULT_UNITS, **kw["units"]}
            kw["ranges"] = {**DEFAULT_RANGES, **kw["ranges"]}
    if ring is not None:
        kw["ring"] = tuple(t.strip() for t in ring.split(",") if t.strip())
    return kw


# ----------------------------------------------------------------------------- synth

def encode_trace(tr) -> np.ndarray:
    """Simulator readings → one frame per reading [T, C] through the device's encoder
    (for a trace already at the frame rate; synthetic datasets use :func:`trace_frames`)."""
    delta = tr.delta()
    out = np.empty((len(tr), len(CHANNELS)), np.float32)
    for i in range(len(tr)):
        d = float(tr.distance_mm[i])
        encode_into(out[i], delta[i], None if math.isnan(d) else d, float(tr.lux[i]))
    return out


def trace_frames(tr, frame_hz: float = DEFAULT_RATE_HZ) -> tuple[np.ndarray, list[str]]:
    """A simulator trace read at the device's sample rate → (frames, labels) made exactly as
    the device loop makes them (:func:`lanthorn.device.piece.frames.frames_from_samples`); each
    frame is labelled with what the visitor did at its last sample."""
    frames, ends = frames_from_samples(tr.delta(), tr.distance_mm, tr.lux, tr.rate_hz, frame_hz)
    return frames, [tr.labels[i] for i in ends]


def synthesize(out, minutes: float = 20.0, seed: int = 0, session_seconds: float = 60.0,
               source: str = SYNTH_SOURCE, compress: bool = False, log=print) -> list[Path]:
    """Write ``minutes`` of simulated visits as sessions of ``session_seconds``."""
    from lanthorn.hardware.sim import session

    if not (minutes > 0 and session_seconds > 0):
        raise DataError("--minutes and --session-seconds must be positive")
    n = max(1, int(math.ceil(minutes * 60.0 / session_seconds)))
    root = Path(out)
    if not (root / dsf.MANIFEST).exists():
        dsf.create_dataset(root)
    header, sources, _ = dsf.read_manifest(root)
    # an artist's dataset with more labels (a gesture being taught) still takes synthetic data
    if header["channels"] != CHANNELS or not math.isclose(header["rate_hz"], DEFAULT_RATE_HZ):
        raise DataError(f"synthetic data is the default piece's {len(CHANNELS)} channels at "
                        f"{DEFAULT_RATE_HZ:g} Hz; this dataset has {len(header['channels'])} "
                        f"at {header['rate_hz']:g} Hz (for another body, give its profile: "
                        f"--profile PROFILE)", root / dsf.MANIFEST)
    missing = [lab for lab in LABELS if lab not in header["labels"]]
    if missing:
        raise DataError(f"the simulator performs {', '.join(missing)}, which this dataset has "
                        f"no label for (add them with 'lanthorn data add-label')", root)
    if source in sources and any((root / dsf.RECORDINGS / source).glob("*.csv*")):
        raise DataError(f"source {source!r} already has recordings here; choose another "
                        f"--out or --source", root)
    notes = (f"lanthorn data synth --minutes {minutes:g} --seed {seed} --session-seconds "
             f"{session_seconds:g}; labels are the simulator's exact gesture intervals")
    dsf.add_source(root, Source(
        source, author="lanthorn gesture simulator (lanthorn.hardware.sim)",
        consent="not applicable: synthetic, no person recorded", licence="CC0-1.0",
        date="",  # no date: the same seed must give the same bytes
        device="simulated MPR121 + VL53L0X + BH1750", notes=notes, weight=1.0,
        synthetic=True), replace=True)
    paths = []
    seeds = np.random.SeedSequence(seed).generate_state(n)
    for i in range(n):
        # read at the device's 100 Hz and averaged into 25 Hz frames, as the device does
        tr = session(seed=int(seeds[i]), duration_s=session_seconds, rate_hz=SAMPLE_HZ)
        frames, labels = trace_frames(tr)
        paths.append(dsf.write_recording(root, source, f"s{seed}-{i:03d}", frames, labels,
                                         rate_hz=DEFAULT_RATE_HZ, compress=compress))
    log(f"wrote {n} synthetic sessions ({n * session_seconds / 60:.1f} min of {DEFAULT_RATE_HZ:g} Hz "
        f"frames, each the mean of {SAMPLE_HZ / DEFAULT_RATE_HZ:g} sensor reads as on the "
        f"device) to {root}")
    return paths


# ----------------------------------------------------------------------------- import

_SPLIT = re.compile(r"[,\t; ]+")


class _Columns(NamedTuple):
    """Where a row's values are: each channel's column, the label's and the session's (None:
    no such column), and how many values every row has."""
    channels: list[int]
    label: int | None
    session: int | None
    width: int


def parse_stream(path: Path, channels=CHANNELS, label: str | None = None,
                 labels=LABELS, skip=()) -> tuple[np.ndarray, list[str], list[str] | None, list[int]]:
    """Parse a maker's CSV: comma, tab, semicolon or space separated, optional header.

    Without a header the columns are the channels in order, plus an optional label column
    (first or last). With a header, columns are matched by name (``label``, ``session`` and
    ``t``/``time``/``timestamp`` are recognised; other unknown columns are an error unless
    named in ``skip``, which needs a header).
    Returns frames, labels, each row's session (None without a session column) and each
    row's line number in the file (for errors found later, e.g. out-of-range values).
    """
    rows = _data_rows(path)
    first_line, first = rows[0]
    if not all(is_number(t) for t in first) and any(t.strip('"') in channels for t in first):
        cols = _header_columns([t.strip('"') for t in first], channels, path, first_line, skip)
        rows = rows[1:]
    elif skip:
        raise DataError("--skip-columns names header columns, but this file has no header "
                        "row", path, first_line)
    else:
        cols = _headerless_columns(first, channels, labels, path, first_line)
    if cols.label is None and label is None:
        raise DataError("no label column: give every row's label with --label", path)
    frames, labs, sessions = _parse_rows(rows, cols, label, labels, path)
    return frames, labs, sessions, [line for line, _ in rows]


def _data_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, values) of each row that holds data: blank and ``#`` lines skipped, but
    counted, so an error names the line a person sees in their editor."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("not a text file", path) from None
    lines = text.splitlines()
    rows = [(i + 1, [t for t in _SPLIT.split(ln.strip()) if t != ""]) for i, ln in enumerate(lines)]
    rows = [(n, r) for n, r in rows if r and not r[0].startswith("#")]
    if not rows:
        raise DataError("no data rows", path)
    return rows


def _header_columns(head: list[str], channels, path: Path, line: int, skip=()) -> _Columns:
    """Columns by name. Every channel must be there, and nothing the import would silently
    drop: a misspelt channel is an error, not a column ignored."""
    missing = [c for c in channels if c not in head]
    if missing:
        raise DataError(f"header lacks columns {missing}", path, line)
    absent = [c for c in skip if c not in head]
    if absent:
        raise DataError(f"--skip-columns {', '.join(absent)}: no such column (the header: "
                        f"{', '.join(head)})", path, line)
    ignore = {"t", "time", "timestamp", "session", *skip}
    unknown = [h for h in head if h not in channels and h != "label" and h not in ignore]
    if unknown:
        raise DataError(f"unknown columns {unknown} (expected {', '.join(channels)}, label; "
                        f"--skip-columns {','.join(unknown)} leaves them out)", path, line)
    return _Columns([head.index(c) for c in channels],
                    head.index("label") if "label" in head else None,
                    head.index("session") if "session" in head else None, len(head))


def _headerless_columns(first: list[str], channels, labels, path: Path, line: int) -> _Columns:
    """Columns by position, from the first row: the channels in order, or one more value
    that is the label, first or last."""
    C, width = len(channels), len(first)
    if width == C:
        return _Columns(list(range(C)), None, None, width)
    if width != C + 1:
        raise DataError(f"{width} values, expected {C} channels ({', '.join(channels)}) "
                        f"optionally with a label column", path, line)
    # a label column first or last; numeric labels ("1", "2") are labels when the
    # other end is not one
    label_idx = C if first[-1].strip('"') in labels and (
        first[0].strip('"') not in labels or is_number(first[0])) else (
        0 if not is_number(first[0]) or first[0].strip('"') in labels else C)
    return _Columns([i for i in range(C + 1) if i != label_idx], label_idx, None, width)


def _parse_rows(rows, cols: _Columns, label: str | None, labels, path: Path):
    """(frames, labels, sessions or None) of the data rows; the first bad value refused with
    its line: a ragged row, a non-number, NaN or infinity, an unknown label."""
    frames = np.empty((len(rows), len(cols.channels)), np.float32)
    labs: list[str] = []
    sessions: list[str] | None = None if cols.session is None else []
    for k, (line, r) in enumerate(rows):
        if len(r) != cols.width:
            raise DataError(f"ragged row: {len(r)} values, expected {cols.width}", path, line)
        try:
            frames[k] = [float(r[i]) for i in cols.channels]
        except ValueError:
            bad = next(r[i] for i in cols.channels if not is_number(r[i]))
            raise DataError(f"non-numeric value {bad!r}", path, line) from None
        if not np.isfinite(frames[k]).all():
            raise DataError("NaN or infinite value", path, line)
        lab = label if cols.label is None else r[cols.label].strip('"')
        if lab not in labels:
            raise DataError(f"unknown label {lab!r} (labels: {', '.join(labels)})", path, line)
        labs.append(lab)
        if sessions is not None:
            sessions.append(r[cols.session].strip('"'))
    return frames, labs, sessions


def check_ranges(frames: np.ndarray, channels, ranges: dict, lines: list[int], path,
                 what: str = "encoded") -> None:
    """Refuse the first value outside its channel's declared range, naming line and column."""
    for c, ch in enumerate(channels):
        if ch not in ranges:
            continue
        lo, hi = ranges[ch]
        bad = np.flatnonzero((frames[:, c] < lo) | (frames[:, c] > hi))
        if len(bad):
            i = int(bad[0])
            hint = ""
            if what == "encoded" and tuple(channels) == CHANNELS:
                hint = (" (raw sensor readings -- counts, mm, lux? add --raw; the encoding is "
                        "in 'lanthorn data import --help' and DATA.md)")
            raise DataError(f"{ch} = {frames[i, c]:g} is outside its {what} range "
                            f"{lo:g}..{hi:g}{hint}; {len(bad)} value(s) of {ch} are", path,
                            lines[i])


def split_sessions(frames: np.ndarray, labels: list[str], sessions: list[str] | None):
    """[(session or None, frames, labels)]: one part per session, in order of appearance
    (a session's rows need not be contiguous), so no window ever straddles two takes."""
    if sessions is None:
        return [(None, frames, labels)]
    order = list(dict.fromkeys(sessions))
    keys = np.array(sessions, dtype=object)
    return [(s, frames[keys == s], [lab for lab, k in zip(labels, sessions, strict=True) if k == s])
            for s in order]


def encode_raw(values: np.ndarray) -> np.ndarray:
    """Rows of (12 pad deltas in counts, distance mm (≤0 = nothing in range), lux) → frames."""
    out = np.empty_like(values, dtype=np.float32)
    for i, row in enumerate(values):
        d = float(row[N_PADS])
        encode_into(out[i], row[:N_PADS], d if d > 0 else None, float(row[N_PADS + 1]))
    return out


def resample(frames: np.ndarray, labels: list[str], rate_in: float, rate_out: float):
    """Linear interpolation of the channels, nearest-sample labels."""
    T = len(frames)
    t_in = np.arange(T) / rate_in
    n_out = int(math.floor((T - 1) / rate_in * rate_out)) + 1
    t_out = np.arange(n_out) / rate_out
    out = np.stack([np.interp(t_out, t_in, frames[:, c]) for c in range(frames.shape[1])], 1)
    nearest = np.clip(np.rint(t_out * rate_in).astype(int), 0, T - 1)
    return out.astype(np.float32), [labels[i] for i in nearest]


def _plan_sessions(data, source: str, path: Path, parts, rate: float, rate_out: float,
                   session: str | None) -> list[tuple[str, np.ndarray, list[str]]]:
    """(name, frames, labels) per session to write: resampled to the dataset's rate, named
    after the file (or ``session``), numbered past the names the source already has."""
    resampling = not math.isclose(rate, rate_out, rel_tol=1e-6)
    base = session or re.sub(r"[^A-Za-z0-9._-]", "_", path.name.split(".")[0])[:48] or "import"
    existing = {p.name.split(".")[0] for p in (Path(data) / dsf.RECORDINGS / source).glob("*.csv*")}
    planned = []
    for value, f, labs in parts:
        if resampling:
            f, labs = resample(f, labs, rate, rate_out)
        name = base if value is None else f"{base}-{value}"
        if session is None and (name in existing or name in {p[0] for p in planned}):
            k = 2
            while f"{name}-{k}" in existing:
                k += 1
            name = f"{name}-{k}"
        planned.append((name, f, labs))
    return planned


def _duplicates(header: dict, source: str, planned, path: Path) -> list[tuple[str, str]]:
    """(session, its identical twin) pairs; DataError when every session is already here
    (the same file imported twice). Checked before anything is written."""
    digests, dups = {}, []
    for name, f, labs in planned:
        d = dsf.session_digest(f, labs, header["channels"])
        twin = next((k for k, e in header["sessions"].items() if e.get("sha256") == d),
                    None) or digests.get(d)
        if twin is not None:
            dups.append((name, twin))
        digests[d] = f"{source}/{name}"
    old = [t for _, t in dups if not t.startswith(f"{source}/") or
           t.split("/", 1)[1] not in {n for n, _, _ in planned}]
    if dups and len(old) == len(planned):
        raise DataError(f"session {dups[0][0]!r} is identical to session {dups[0][1]!r} already "
                        f"in the dataset (the same file imported twice?); nothing imported", path)
    for name, _ in dups:
        dsf.check_name("session", name, path)
    return dups


def _read_stream(header: dict, path: Path, label: str | None, raw: bool, skip=()):
    if label is not None and label not in header["labels"]:
        raise DataError(f"unknown --label {label!r} (labels: {', '.join(header['labels'])})")
    if not path.is_file():
        raise DataError("no such file", path)
    frames, labels, sessions, lines = parse_stream(path, header["channels"], label,
                                                   header["labels"], skip)
    if raw:
        if tuple(header["channels"]) != CHANNELS:
            raise DataError("--raw needs the default piece's channels")
        check_ranges(frames, header["channels"], RAW_RANGES, lines, path, "raw")
        frames = encode_raw(frames)
    else:
        check_ranges(frames, header["channels"], header["ranges"], lines, path)
    return frames, labels, sessions


def import_stream(data, source: str, file, label=None, raw=False, rate=None,
                  allow_resample=False, session=None, split=None, warn=print, log=print,
                  keep_duplicates=False, skip_columns=()):
    """Import a CSV stream into ``source`` of the dataset at ``data``: every check (declared
    source, labels, ranges, rate, duplicates) passes before anything is written. An
    identical take is refused, naming it, unless ``keep_duplicates`` (a published archive
    that holds one instance twice): then it is kept, flagged, on its twin's side.
    ``skip_columns``: header columns to leave out (a timestamp, a second sensor)."""
    path = Path(file)
    header, sources, _ = dsf.read_manifest(data)
    if source not in sources:
        raise DataError(f"source {source!r} is not declared; first say who recorded it "
                        f"and under what consent: lanthorn data add-source {data} "
                        f"{source} --author ... --consent ...", Path(data) / dsf.MANIFEST)
    frames, labels, sessions = _read_stream(header, path, label, raw, skip_columns)
    rate = header["rate_hz"] if rate is None else rate
    if not rate > 0:
        raise DataError(f"--rate must be positive, not {rate}")
    if not math.isclose(rate, header["rate_hz"], rel_tol=1e-6) and not allow_resample:
        raise DataError(f"the file is at {rate:g} Hz but the dataset is "
                        f"{header['rate_hz']:g} Hz; add --resample to convert it", path)
    planned = _plan_sessions(data, source, path, split_sessions(frames, labels, sessions),
                             rate, header["rate_hz"], session)
    dups = _duplicates(header, source, planned, path)
    if dups and not keep_duplicates:
        raise DataError(f"{plural(len(dups), 'session')} identical to another: "
                        + ", ".join(f"{n!r} = {t!r}" for n, t in dups[:5])
                        + ("..." if len(dups) > 5 else "") + "; nothing imported (a published "
                        "archive that holds an instance twice: --keep-duplicates)", path)
    for name, twin in dups:
        # a published archive can hold one instance twice: kept, flagged, on its twin's side
        warn(f"warning: session {name!r} is identical to {twin!r}; kept on the same side of "
             f"the split ('lanthorn data info' lists identical pairs)")
    for name, f, labs in planned:
        out = dsf.write_recording(data, source, name, f, labs, rate_hz=header["rate_hz"],
                                  split=split, allow_duplicate=True)
        log(f"imported {len(f)} frames ({len(f) / header['rate_hz']:.1f} s) as session "
            f"{name!r} of source {source!r}: {out}")


# ----------------------------------------------------------------------------- add-source

def parse_labels(text: str | None) -> tuple[str, ...]:
    """``--labels a,b,c`` → ('a', 'b', 'c'), checked; None → the default piece's labels."""
    if text is None:
        return LABELS
    labels = tuple(t.strip() for t in text.split(","))
    bad = [t for t in labels if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", t)]
    if bad or len(labels) < 2:
        raise DataError(f"--labels needs at least two names of letters, digits, _ or - "
                        f"(got {text!r})")
    if len(set(labels)) != len(labels):
        raise DataError(f"--labels has a repeated name: {text!r}")
    return labels


def declare_source(data, source: Source, labels: tuple[str, ...] | None, rate: float,
                   channels=None, ring: str | None = None, replace: bool = False):
    """Declare (or with ``replace`` update) a source, creating the dataset when there is
    none; ``labels``/``channels`` given for an existing dataset re-declare its layout."""
    if not (Path(data) / dsf.MANIFEST).exists():
        root = dsf.create_dataset(data, rate_hz=rate, labels=labels or LABELS,
                                  **layout(channels, ring))
    else:
        root = Path(data)
        header = dsf.read_manifest(root)[0]
        if labels is not None or channels is not None:
            dsf.create_dataset(root, rate_hz=header["rate_hz"],
                               labels=labels if labels is not None else header["labels"],
                               channels=(header["channels"] if channels is None
                                         else [c[0] for c in channels]))
    return root, dsf.add_source(root, source, replace=replace)


def today() -> str:
    return datetime.date.today().isoformat()


# ----------------------------------------------------------------------------- info

IMBALANCE_RATIO = 5.0


def summarize(data) -> dict:
    """The figures ``lanthorn data info`` shows (also used by the quantize report)."""
    ds = dsf.load_dataset(data)
    counts = ds.frame_counts()
    per_label = {lab: sum(c.get(lab, 0) for c in counts.values()) for lab in ds.labels}
    frames_per_source = {s: sum(c.values()) for s, c in counts.items()}
    weighted = {s: n * ds.sources[s].weight for s, n in frames_per_source.items()}
    total_w = sum(weighted.values()) or 1.0
    total = sum(per_label.values())
    sessions = {s: sum(1 for r in ds.recordings if r.source == s) for s in ds.sources}
    warnings = []
    present = {k: v for k, v in per_label.items() if v > 0}
    for lab, n in per_label.items():
        if n == 0:
            warnings.append(f"label {lab!r} has no examples")
    if present and max(present.values()) > IMBALANCE_RATIO * min(present.values()):
        lo = min(present, key=present.get)
        hi = max(present, key=present.get)
        warnings.append(f"class imbalance: {hi!r} has {present[hi] / present[lo]:.1f}x the frames "
                        f"of {lo!r} (training re-weights classes, but more {lo!r} data would help)")
    for a, b in dsf.duplicates(ds.sessions):
        warnings.append(f"sessions {a!r} and {b!r} are identical recordings (delete one)")
    unpinned = sum(1 for r in ds.recordings if r.key not in ds.sessions)
    if unpinned:
        warnings.append(f"{plural(unpinned, 'session')} not pinned to a side of the held-out split "
                        f"yet (the next 'lanthorn train' pins them)")
    for name, src in ds.sources.items():
        if not src.consent.strip() and not src.synthetic:
            warnings.append(f"source {name!r} has no consent recorded")
        if not src.licence.strip():
            warnings.append(f"source {name!r} has no licence")
        if frames_per_source.get(name, 0) == 0:
            warnings.append(f"source {name!r} has no recordings")
    return {
        "path": str(ds.path), "rate_hz": ds.rate_hz, "channels": list(ds.channels),
        "labels": list(ds.labels), "frames": total, "seconds": total / ds.rate_hz,
        "sessions": len(ds.recordings),
        "per_label": {lab: {"frames": n, "seconds": n / ds.rate_hz,
                            "share": n / total if total else 0.0} for lab, n in per_label.items()},
        "per_source": {s: {"frames": frames_per_source.get(s, 0),
                           "seconds": frames_per_source.get(s, 0) / ds.rate_hz,
                           "sessions": sessions.get(s, 0), "weight": ds.sources[s].weight,
                           "share_after_weights": weighted.get(s, 0) / total_w,
                           "per_label": counts.get(s, {}), **ds.sources[s].to_json()}
                       for s in ds.sources},
        "split": {side: sum(1 for r in ds.recordings if ds.side(r.key) == side)
                  for side in dsf.SIDES},
        "units": ds.units, "ranges": {k: list(v) for k, v in ds.ranges.items()},
        "ring": list(ds.ring),
        "warnings": warnings,
    }


def format_info(info: dict) -> str:
    """``lanthorn data info``'s text: totals, the split, channels, balance, sources, warnings."""
    out = io.StringIO()
    w = out.write
    w(f"dataset {info['path']}: {plural(info['sessions'], 'session')}, {info['frames']} frames "
      f"({info['seconds'] / 60:.1f} min at {info['rate_hz']:g} Hz), {len(info['channels'])} channels\n\n")
    sp = info["split"]
    w(f"held-out split (pinned per session): {sp['train']} train, {sp['val']} validation, "
      f"{sp['test']} test; " + (f"ring: {', '.join(info['ring'])}" if info["ring"]
                                else "no ring (no rotation in training)") + "\n")
    for ch in info["channels"]:
        if ch in info["units"] or ch in info["ranges"]:
            r = info["ranges"].get(ch)
            w(f"  {ch:<10} {info['units'].get(ch, '')}"
              + (f"  [{r[0]:g}..{r[1]:g}]" if r else "") + "\n")
    w("\nlabel          seconds   share\n")
    for lab, v in info["per_label"].items():
        bar = "#" * int(round(40 * v["share"]))
        w(f"{lab:<14}{v['seconds']:8.1f}  {100 * v['share']:5.1f}%  {bar}\n")
    w("\nsource               sessions  minutes  weight  share after weights  consent\n")
    for s, v in info["per_source"].items():
        consent = v["consent"] or ("(synthetic)" if v["synthetic"] else "NONE")
        w(f"{s:<21}{v['sessions']:8d}{v['seconds'] / 60:9.1f}{v['weight']:8.2f}"
          f"{100 * v['share_after_weights']:20.1f}%  {consent}\n")
    for warning in info["warnings"]:
        w(f"warning: {warning}\n")
    return out.getvalue()


# ----------------------------------------------------------------------------- a recorded take

def check_take_target(data, label: str, session: str, source: str) -> None:
    """Before a person performs, not after: the names are valid and the dataset (if there
    is one) knows the label."""
    dsf.check_name("session", session)
    dsf.check_name("label", label)
    dsf.check_name("source", source)
    if (Path(data) / dsf.MANIFEST).exists():
        header, _, _ = dsf.read_manifest(data)
        if label not in header["labels"]:
            raise DataError(f"{data} has no label {label!r} (its labels: "
                            f"{', '.join(header['labels'])}); to teach a new gesture, add it "
                            f"first: lanthorn data add-label {data} {label}")


def save_take(data, source: Source, session: str, label: str, rows, rate: float,
              channels, log=print) -> tuple[Path, Source]:
    """Write a take recorded on the object as a session of ``source`` (its author, consent and
    licence given now are recorded, never silently dropped), creating the dataset with the
    default labels plus ``label`` when there is none; returns the file and the source as kept."""
    if not (Path(data) / dsf.MANIFEST).exists():
        labels = list(LABELS) + ([label] if label not in LABELS else [])
        dsf.create_dataset(data, rate, channels, labels)
    header, sources, _ = dsf.read_manifest(data)
    if list(header["channels"]) != list(channels):
        raise DataError(f"{data} has channels {', '.join(header['channels'])} but the "
                        f"device records {', '.join(channels)}; use another --data folder")
    kept = sources.get(source.name)
    if kept is None:
        kept = dsf.add_source(data, source)
    else:
        given = {k: getattr(source, k) for k in ("author", "consent", "licence")
                 if getattr(source, k) and getattr(kept, k) != getattr(source, k)}
        if given:
            for k, v in given.items():
                setattr(kept, k, v)
            dsf.add_source(data, kept, replace=True)
            log(f"updated {', '.join(given)} of source {source.name!r}")
    path = dsf.write_recording(data, source.name, session, rows, label, rate_hz=rate)
    return path, kept


def parse_channels(text: str) -> list[tuple[str, str, tuple[float, float] | None]]:
    """``ax:g:-8..8,ay,...`` → [(name, unit, (low, high) or None)], checked (the ``--channels``
    of ``lanthorn data new``: argparse shows an ArgumentTypeError's message as it is)."""
    out = []
    for item in text.split(","):
        parts = item.strip().split(":")
        name = parts[0].strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,31}", name) or name in ("label", "session"):
            raise argparse.ArgumentTypeError(
                f"channel name {name!r} must be a letter then letters, digits, _ . or - "
                f"(and not 'label' or 'session')")
        unit = parts[1].strip() if len(parts) > 1 else ""
        rng = None
        if len(parts) > 2:
            m = re.fullmatch(r"\s*(-?[\d.eE+-]+)\s*\.\.\s*(-?[\d.eE+-]+)\s*", parts[2])
            try:
                rng = (float(m.group(1)), float(m.group(2))) if m else None
            except ValueError:
                rng = None
            if rng is None or not rng[0] < rng[1]:
                raise argparse.ArgumentTypeError(
                    f"range of channel {name!r} must be LOW..HIGH with LOW < HIGH, not {parts[2]!r}")
        if len(parts) > 3:
            raise argparse.ArgumentTypeError(f"too many ':' in channel {item!r} "
                                             f"(NAME[:UNIT[:LOW..HIGH]])")
        out.append((name, unit, rng))
    names = [c[0] for c in out]
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"--channels repeats a name: {text!r}")
    return out
