"""Atomic file replacement: the one way lanthorn writes a file that must survive a power cut.

A gallery's power goes off whenever the building closes. A file written in place can be
left half-written; a file written with this module is either the old version or the new
one, never a mix. The recipe (POSIX): write a temporary file in the SAME directory, flush
and fsync it, rename it over the target (atomic on one filesystem), then fsync the
directory so the rename itself is on disk.

Used by the dataset format (recordings, manifest), device storage (models, presets) and
anything else that persists state. Standard library only.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename/creation inside ``directory`` durable. A no-op where unsupported."""
    try:
        fd = os.open(os.fspath(directory), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows cannot open directories; rename is still atomic there
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (tmpfs on old kernels, network mounts) refuse; nothing to do
    finally:
        os.close(fd)


def make_dirs(path: str | os.PathLike) -> None:
    """``mkdir -p`` whose new directories survive a power cut: each one created is made
    durable by an fsync of its parent (a file synced into a directory whose own name was
    never synced can vanish with it; the crash-state harness found a take lost that way
    while the manifest, synced, still named it)."""
    path = Path(path)
    missing = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            continue
        fsync_dir(d.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = None):
    """Open a temporary file that replaces ``path`` only if the ``with`` block succeeds.

    ``mode`` is "w" (text) or "wb" (binary). On an exception the temporary file is removed
    and the old ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    f: IO[Any]  # bytes or text, as ``mode`` says
    try:
        if mode == "wb":
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions a normal open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically and durably (newlines written as given)."""
    with atomic_open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
