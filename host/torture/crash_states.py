"""Crash states, not only kills: every state a power cut may leave on the card, booted.

A SIGKILL keeps the kernel's page cache; a real power cut also loses every write not yet on
the card, and the card may have kept later writes and lost earlier ones. So, as ALICE (OSDI
2014) and CrashMonkey (OSDI 2018) do, this harness records what each multi-file operation
asks of the filesystem, then builds the states a crash may leave and boots the storage
loaders on each:

1. **Record.** The operation runs for real in a scratch data directory while the calls the
   project's storage layer makes (``os.open`` creating a file, ``open`` for writing,
   ``fsync``, ``rename``/``replace``, ``link``, ``unlink``, ``mkdir``) are logged, with the
   file's content at each fsync and rename (:class:`Recorder`). Paths are mirrored onto
   inodes, so a hard link and a rename are the same file.
2. **Crash.** For every crash point (after each call) the persisted state is: what the
   POSIX rules guarantee (a file's content as of its last ``fsync``; a name created,
   renamed or removed in a directory once that directory was fsynced), plus any subset of
   the operations not yet guaranteed (lost or kept independently, i.e. reordered), and
   each un-synced content also torn (half of it reached the card; in the full run also
   none, a quarter, three quarters, all but a byte) (:func:`crash_states`). All subsets up
   to ``2**bits`` per point, a seeded sample beyond.
3. **Boot and check.** Each state is written to a fresh directory, the storage loaders run
   on it (models with fall-back, settings, presets, the lock, the dataset), and every file
   must be its old or its new version; a loader that fails counts too.

``make test`` runs it bounded (a few bits per point); ``lanthorn torture crash`` in full.
"""
from __future__ import annotations

import builtins
import contextlib
import io
import itertools
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Op:
    """One filesystem call as it matters after a crash. ``kind``: create, data (a content
    the file had, not yet synced), fsync (the content made durable), rename, link, unlink,
    mkdir, fsync_dir. ``path``/``dst`` relative to the data directory."""

    kind: str
    path: str
    dst: str = ""
    inode: int = -1
    content: bytes = b""

    def directories(self) -> tuple[str, ...]:
        """The directories whose entries this operation changes."""
        if self.kind in ("create", "unlink", "mkdir"):
            return (_parent(self.path),)
        if self.kind in ("rename", "link"):
            return tuple({_parent(self.path), _parent(self.dst)})
        return ()


def _parent(rel: str) -> str:
    return os.path.dirname(rel) or "."  # (the data directory itself is ".", as its fsync)


class Recorder:
    """Logs the storage layer's filesystem calls under ``root`` (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.ops: list[Op] = []
        self.inodes: dict[str, int] = {}
        self._next = itertools.count(1)
        self._seen: dict[int, bytes] = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_file():
                self.inodes[self._rel(p)] = next(self._next)
                self._seen[self.inodes[self._rel(p)]] = p.read_bytes()
        self.initial = dict(self.inodes)  # the files before the operation: path -> inode
        #: every content each path held at some moment of the operation (old included)
        self.history: dict[str, set] = {rel: {self._seen[i]} for rel, i in self.inodes.items()}

    def _rel(self, p) -> str | None:
        p = os.path.abspath(os.fspath(p))
        root = str(self.root)
        return os.path.relpath(p, root) if p == root or p.startswith(root + os.sep) else None

    def _content(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except OSError:
            return b""

    def _data(self, rel: str) -> None:
        """The file's content now, if it changed since last logged (an un-synced write)."""
        ino = self.inodes.get(rel)
        if ino is None:
            return
        now = self._content(rel)
        if self._seen.get(ino) != now:
            self._seen[ino] = now
            self._held(ino, now)
            self.ops.append(Op("data", rel, inode=ino, content=now))

    def _held(self, ino: int, content: bytes) -> None:
        for rel, i in self.inodes.items():
            if i == ino:
                self.history.setdefault(rel, set()).add(content)

    def created(self, p) -> None:
        rel = self._rel(p)
        if rel is not None and rel not in self.inodes:
            self.inodes[rel] = ino = next(self._next)
            self._seen[ino] = b""
            self.ops.append(Op("create", rel, inode=ino))

    def _fd_path(self, fd: int) -> str | None:
        try:
            return self._rel(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return None

    def before_fsync(self, fd: int) -> None:
        """What was written since the file was last logged, not yet synced: a crash just
        before this fsync may lose it, keep it, or tear it."""
        rel = self._fd_path(fd)
        if rel is not None and rel in self.inodes:
            self._data(rel)

    def fsync(self, fd: int) -> None:
        rel = self._fd_path(fd)
        if rel is None:
            return
        if os.path.isdir(self.root / rel):
            self.ops.append(Op("fsync_dir", rel))
        elif rel in self.inodes:
            ino, now = self.inodes[rel], self._content(rel)
            self._seen[ino] = now
            self._held(ino, now)
            self.ops.append(Op("fsync", rel, inode=ino, content=now))

    def before(self, p) -> None:
        """About to rename or remove ``p``: log its content first, if it changed."""
        rel = self._rel(p)
        if rel is not None:
            self._data(rel)

    def moved(self, src, dst, link: bool = False) -> None:
        s, d = self._rel(src), self._rel(dst)
        if s is None or d is None or s not in self.inodes:
            return
        ino = self.inodes[s]
        if not link:
            del self.inodes[s]
        self.inodes[d] = ino
        self.history.setdefault(d, set()).add(self._seen.get(ino, b""))
        self.ops.append(Op("link" if link else "rename", s, d, inode=ino))

    def removed(self, p) -> None:
        rel = self._rel(p)
        if rel is not None and rel in self.inodes:
            del self.inodes[rel]
            self.ops.append(Op("unlink", rel))

    def made_dir(self, p) -> None:
        rel = self._rel(p)
        if rel is not None:
            self.ops.append(Op("mkdir", rel))

    def finish(self) -> list[Op]:
        """Content written but never synced nor renamed (logged last)."""
        for rel in list(self.inodes):
            self._data(rel)
        return self.ops


@contextlib.contextmanager
def recording(root: Path):
    """Run the ``with`` block with the filesystem calls under ``root`` logged; yields the
    :class:`Recorder` (its ``ops`` complete after the block)."""
    rec = Recorder(root)
    real = {n: getattr(os, n) for n in ("open", "fsync", "replace", "rename", "link",
                                        "unlink", "remove", "mkdir")}
    real_open = builtins.open

    def os_open(p, flags, *a, **k):
        existed = os.path.exists(p)
        fd = real["open"](p, flags, *a, **k)
        if flags & os.O_CREAT and not existed:
            rec.created(p)
        return fd

    def py_open(p, mode="r", *a, **k):
        existed = isinstance(p, (str, os.PathLike)) and os.path.exists(p)
        f = real_open(p, mode, *a, **k)
        if isinstance(p, (str, os.PathLike)) and set(mode) & set("wax") and not existed:
            rec.created(p)
        return f

    def fsync(fd):
        rec.before_fsync(fd)
        real["fsync"](fd)
        rec.fsync(fd)

    def mover(name, link=False):
        def call(src, dst, *a, **k):
            rec.before(src)
            real[name](src, dst, *a, **k)
            rec.moved(src, dst, link)
        return call

    def remover(name):
        def call(p, *a, **k):
            rec.before(p)
            real[name](p, *a, **k)
            rec.removed(p)
        return call

    def mkdir(p, *a, **k):
        real["mkdir"](p, *a, **k)
        rec.made_dir(p)
    patches = {"open": os_open, "fsync": fsync, "replace": mover("replace"),
               "rename": mover("rename"), "link": mover("link", True),
               "unlink": remover("unlink"), "remove": remover("remove"), "mkdir": mkdir}
    try:
        for n, f in patches.items():
            setattr(os, n, f)
        builtins.open = io.open = py_open
        yield rec
    finally:
        for n, f in real.items():
            setattr(os, n, f)
        builtins.open = io.open = real_open
        rec.finish()


# --- the states a crash may leave ---------------------------------------------------------

def _guaranteed(ops: list[Op], k: int) -> set[int]:
    """Indices of the first ``k`` operations that the POSIX rules make durable by then: a
    content at its fsync (data the same inode had before that fsync are superseded), a
    directory change once its directory was fsynced afterwards."""
    sure: set[int] = set()
    for i in range(k):
        op = ops[i]
        if op.kind in ("fsync", "fsync_dir"):
            sure.add(i)
        elif op.kind == "data":
            if any(ops[j].kind == "fsync" and ops[j].inode == op.inode for j in range(i + 1, k)):
                sure.add(i)  # superseded by a synced content: nothing of it left to lose
        elif op.kind in ("create", "rename", "link", "unlink", "mkdir"):
            dirs = op.directories()
            if all(any(ops[j].kind == "fsync_dir" and ops[j].path == d for j in range(i + 1, k))
                   for d in dirs):
                sure.add(i)
    return sure


def crash_states(ops: list[Op], bits: int, rng: random.Random, tears=(0.5,)):
    """Yield (crash point, kept op indices, tear) for every state considered; ``tear`` is
    None or (op index, fraction of its content that reached the card)."""
    for k in range(len(ops) + 1):
        sure = _guaranteed(ops, k)
        loose = [i for i in range(k) if i not in sure]
        if len(loose) <= bits:
            subsets = itertools.chain.from_iterable(
                itertools.combinations(loose, r) for r in range(len(loose) + 1))
        else:
            picks = [tuple(i for i in loose if rng.random() < 0.5) for _ in range(2 ** bits)]
            subsets = [tuple(loose[:r]) for r in range(len(loose) + 1)] + picks
        for subset in subsets:
            yield k, sure | set(subset), None
        for i in loose:  # a content lost part-way: the file holds a prefix of it
            if ops[i].kind in ("data", "fsync") and ops[i].content:
                for frac in tears:
                    yield k, sure | set(loose), (i, frac)


def materialise(initial: dict[str, bytes], inodes: dict[str, int], dirs: set[str],
                ops: list[Op], kept: set[int], k: int, torn: tuple | None, out: Path) -> None:
    """Write the persisted state (``initial`` files, on the recorder's ``inodes``, then the
    kept ops among the first ``k``, in order) into the empty directory ``out``."""
    entries = dict(inodes)  # path -> inode
    content = {inodes[rel]: data for rel, data in initial.items() if rel in inodes}
    dirs = set(dirs)
    for i in range(k):
        op = ops[i]
        if i not in kept:
            continue
        if op.kind == "mkdir":
            dirs.add(op.path)
        elif op.kind == "create":
            entries[op.path] = op.inode
            content.setdefault(op.inode, b"")
        elif op.kind in ("rename", "link") and op.path in entries:
            entries[op.dst] = entries[op.path]
            if op.kind == "rename":
                del entries[op.path]
        elif op.kind == "unlink":
            entries.pop(op.path, None)
        elif op.kind in ("data", "fsync"):
            cut = len(op.content)
            if torn and torn[0] == i:
                before = content.get(op.inode, b"")
                cut = int(cut * torn[1])
                if op.content.startswith(before):  # an append tears only what it added
                    cut = max(cut, len(before))
            content[op.inode] = op.content[:cut]
    for d in sorted(dirs):
        (out / d).mkdir(parents=True, exist_ok=True)
    for rel, ino in entries.items():
        parent = os.path.dirname(rel)
        if parent and parent not in dirs and not (out / parent).is_dir():
            continue  # the directory it was made in did not survive
        (out / rel).write_bytes(content.get(ino, b""))


def snapshot(root: Path) -> tuple[dict[str, bytes], set[str]]:
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    dirs = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}
    return files, dirs


@dataclass
class Scenario:
    """A multi-file operation: ``prepare(root)`` makes the old state, ``act(root)`` the
    change, ``check(root, old, new) -> problems`` boots the loaders on a crash state."""

    name: str
    prepare: object
    act: object
    check: object
    history: dict | None = None


def run_scenario(sc: Scenario, work: Path, bits: int, seed: int = 0, tears=(0.5,)) -> dict:
    """Record ``sc``, build its crash states, check each; returns the figures."""
    root = work / f"{sc.name}-live"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    sc.prepare(root)
    old_files, old_dirs = snapshot(root)
    with recording(root) as rec:
        sc.act(root)
    ops = rec.ops
    sc.history = rec.history  # (a check may accept any version a file went through)
    new_files, _ = snapshot(root)
    rng = random.Random(seed)
    seen, problems, tried = set(), [], 0
    for k, kept, torn in crash_states(ops, bits, rng, tears):
        key = (k, frozenset(kept), torn)
        if key in seen:
            continue
        seen.add(key)
        state = work / f"{sc.name}-state"
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir()
        materialise(old_files, rec.initial, old_dirs, ops, kept, k, torn, state)
        tried += 1
        for p in sc.check(state, old_files, new_files):
            problems.append(f"{sc.name}: crash after op {k} of {len(ops)} "
                            f"(kept {sorted(kept)}, torn {torn}): {p}")
    shutil.rmtree(work / f"{sc.name}-state", ignore_errors=True)
    return {"ops": len(ops), "states": tried, "bad_states": len(problems),
            "op_kinds": sorted({o.kind for o in ops}), "problems": problems[:20]}
