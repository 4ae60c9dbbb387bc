"""The on-card fault log: one line per fault and per recovery, kept across power cuts.

A conservator who finds a piece misbehaving after a month wants to know what failed, when,
and whether it came back; the console's messages (the newest 50, in memory) are gone at the
next power cut. So every fault the piece reports (a part failing or recovering, a stuck
sensor, a model dropped, a card that refuses writes) goes through one function,
:meth:`FaultLog.record`, which appends one JSON line to ``DIR/faults.log``:

    {"t": "2026-12-08T01:02:03Z", "part": "touch", "what": "failed", "detail": "..."}

Why this shape:

* **Bounded**: at most ``max_bytes`` (and ``max_lines`` lines); past that the file is
  rewritten atomically (:mod:`lanthorn.device.storage.atomic`) with its newest half, oldest dropped,
  so months of a flapping cable cannot fill the card.
* **Power-cut safe**: each line is appended with one ``write`` and fsynced. A cut can leave
  only the last line torn (a prefix with no newline, or zeros); a line that does not parse
  is skipped on read, and the next append starts on a fresh line, so a torn line never
  swallows the one after it.
* **Never in the way**: a full or read-only card keeps the piece running; the log says once
  that it cannot store (``problem``, shown by ``status``) and keeps the unstored lines in
  memory for ``log``. With ``background()`` a thread does the fsync, so a slow card never
  holds up a frame (the loop only appends to a list).

Standard library only (the device layer's rule).
"""
from __future__ import annotations

import collections
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from lanthorn.device.storage.atomic import atomic_write_text, fsync_dir

MAX_BYTES = 64 * 1024
MAX_LINES = 1000
MEMORY_LINES = 200  # lines kept in memory when the card refuses them
DETAIL_CHARS = 200


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_lines(text: str) -> tuple[list[dict], int]:
    """(entries, torn): every well-formed line of a fault log's text, and how many were not
    (a torn last line, zeros a power cut left, a partial write on a full card)."""
    entries, torn = [], 0
    chunks = text.split("\n")
    if chunks and chunks[-1] == "":
        chunks.pop()
    elif chunks:  # no newline at the end: the last line was cut off while being written
        chunks.pop()
        torn += 1
    for chunk in chunks:
        if not chunk.strip("\x00 "):
            torn += 1 if chunk else 0
            continue
        try:
            obj = json.loads(chunk)
        except ValueError:
            torn += 1
            continue
        if isinstance(obj, dict) and {"t", "part", "what"} <= set(obj):
            entries.append(obj)
        else:
            torn += 1
    return entries, torn


def format_entry(entry: dict) -> str:
    """One log entry as a line for a person: ``TIME PART WHAT: DETAIL``."""
    detail = entry.get("detail") or ""
    return f"{entry['t']} {entry['part']} {entry['what']}" + (f": {detail}" if detail else "")


class FaultLog:
    """``DIR/faults.log`` (``path``), or an in-memory log when ``path`` is None (a piece
    without a data directory). ``clock`` gives wall time (the lines' timestamps)."""

    def __init__(self, path: str | os.PathLike | None, max_bytes: int = MAX_BYTES,
                 max_lines: int = MAX_LINES, clock: Callable[[], float] = time.time):
        self.path = Path(path) if path is not None else None
        self.max_bytes, self.max_lines, self.clock = max_bytes, max_lines, clock
        self.problem: str | None = None  # why lines are not being stored (status shows it)
        self.recorded = 0  # lines recorded since start (stored or not)
        self.unstored: collections.deque[dict] = collections.deque(maxlen=MEMORY_LINES)
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._needs_newline: bool | None = None  # learnt at the first append
        self._writing = False
        self._appends = 0

    # --- writing
    def record(self, part: str, what: str, detail: str = "") -> dict:
        """THE way a fault or a recovery is logged: one line, stored now (or by the
        background thread). Never raises: a card that refuses is noted in ``problem``."""
        entry = {"t": _stamp(self.clock()), "part": str(part), "what": str(what),
                 "detail": " ".join(str(detail).split())[:DETAIL_CHARS]}
        with self._cond:
            self.recorded += 1
            self._pending.append(entry)
            if self._thread is not None:
                self._cond.notify()
                return entry
        self._write_pending()
        return entry

    def background(self) -> "FaultLog":
        """Store lines from a daemon thread (the loop must not wait for an fsync)."""
        if self._thread is None and self.path is not None:
            self._closing = False
            self._thread = threading.Thread(target=self._run, name="lanthorn-faultlog",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait(0.5)
                if not self._pending and self._closing:
                    return
            self._write_pending()

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every recorded line has been stored (or refused); True when done."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._cond:
                if not self._pending and not self._writing:
                    return True
            if self._thread is None:
                self._write_pending()
            else:
                time.sleep(0.005)
        return False

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._write_pending()

    def _write_pending(self) -> None:
        with self._cond:
            batch, self._pending = self._pending, []
            self._writing = True
        try:
            if batch:
                self._store(batch)
        finally:
            with self._cond:
                self._writing = False

    def _store(self, batch: list[dict]) -> None:
        if self.path is None:
            self.unstored.extend(batch)
            return
        data = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in batch)
        try:
            self._append(self.path, data)
        except OSError as exc:
            self.unstored.extend(batch)
            why = exc.strerror or str(exc)
            if self.problem is None:
                self.problem = (f"cannot write the fault log {self.path.name} ({why}); "
                                "faults are kept in memory only ('log' shows them)")
            return
        self.problem = None

    def _append(self, path: Path, data: str) -> None:
        size = path.stat().st_size if path.exists() else 0
        if self._needs_newline is None:
            self._needs_newline = size > 0 and self._last_byte(path) != b"\n"
        if size + len(data) > self.max_bytes or self._line_count_over():
            self._compact(path, data)
            return
        raw = (("\n" if self._needs_newline else "") + data).encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            self._needs_newline = True  # until the whole line is known to be written
            written = os.write(fd, raw)
            if written != len(raw):
                raise OSError(28, "No space left on device (short write)")
            os.fsync(fd)
            self._needs_newline = False
        finally:
            os.close(fd)
        if size == 0:  # a new file: its name must survive the cut too
            fsync_dir(path.parent)

    @staticmethod
    def _last_byte(path: Path) -> bytes:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1)

    def _line_count_over(self) -> bool:
        self._appends += 1
        if self._appends % 50:  # counting lines reads the file: not at every append
            return False
        return len(self._read_entries()[0]) >= self.max_lines

    def _compact(self, path: Path, data: str) -> None:
        """Rewrite the file with its newest lines (at most half the bounds) plus ``data``."""
        entries, _ = self._read_entries()
        keep: list[str] = []
        budget = self.max_bytes // 2
        for e in reversed(entries[-(self.max_lines // 2):]):
            line = json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n"
            if budget - len(line) < 0:
                break
            budget -= len(line)
            keep.append(line)
        atomic_write_text(path, "".join(reversed(keep)) + data)
        self._needs_newline = False

    # --- reading
    def _read_entries(self) -> tuple[list[dict], int]:
        if self.path is None:
            return [], 0
        try:
            text = self.path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return [], 0
        except OSError:
            return [], 0
        return parse_lines(text)

    def entries(self, n: int | None = None) -> list[dict]:
        """The newest ``n`` entries (all with None), oldest first: the stored ones, then those
        the card refused and those not yet stored."""
        stored, _ = self._read_entries()
        with self._cond:
            extra = list(self.unstored) + list(self._pending)
        out = stored + extra  # (disjoint: a line is stored, refused or pending)
        return out if n is None else out[-n:] if n > 0 else []

    def summary(self) -> dict:
        """What ``status`` says of the log: how many lines it holds, and any problem."""
        stored, torn = self._read_entries()
        d: dict[str, int | str] = {"lines": len(stored) + len(self.unstored), "since_start": self.recorded}
        if torn:
            d["torn_skipped"] = torn
        if self.problem:
            d["problem"] = self.problem
        return d
