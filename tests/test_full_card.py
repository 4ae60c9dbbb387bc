"""Every console command that writes, on a full and on a read-only card: one clear ERR line
that names the problem and the way out, never a traceback in the device log.

Two kinds of card. ``tmpfs``: a real 64 KiB tmpfs filled to the last byte, or remounted
read-only (needs root for mount(2); skipped otherwise). ``injected``: the same refusals
raised in-process by every call that creates or changes a file under the card (os.open for
writing, open(), rename, link, unlink, mkdir), so the test runs everywhere.
"""
from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import os
import shutil
import subprocess

import pytest

from lanthorn.device.console.console_record import device_dataset
from lanthorn.device.console.exhibition_lock import ExhibitionLock
from lanthorn.device.console.server import ConsoleServer
from lanthorn.device.engine.signing import TrustStore
from lanthorn.device.piece.frames import CHANNELS, DEFAULT_RATE_HZ, LABELS
from lanthorn.device.storage.storage import DataDir
from tests.console_fakes import FakeApp, FakeClock, fake_loader, make_fake_bundle

KEY = "ed25519:" + "11" * 32
OTHER_KEY = "ed25519:" + "22" * 32
FULL, RO = "full", "read-only"


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


class Port:
    def __init__(self):
        self.out = bytearray()

    def write(self, data):
        self.out += data

    def read(self, n):
        return b""

    def lines(self):
        return self.out.decode().splitlines()


def _seed(root):
    """a/: a piece with two models, a preset, a trusted key and its recordings started;
    b/: a locked piece; d/: a fresh data dir (the issue's reproducer)."""
    a = DataDir(root / "a", loader=fake_loader, shipped_model=None)
    for name in ("one", "two"):
        src = root / f"{name}.bin"
        src.write_bytes(make_fake_bundle(name))
        a.install_model(src)
        src.unlink()
    a.save_preset("calm", {"brightness": 30})
    TrustStore(a.root).add(bytes.fromhex("11" * 32))
    assert device_dataset(a.recordings_dir, DEFAULT_RATE_HZ, CHANNELS, "tap", a)[0]
    ExhibitionLock(DataDir(root / "b", loader=fake_loader, shipped_model=None)).lock("4711")
    DataDir(root / "d", loader=fake_loader, shipped_model=None)


def _fill(path):
    for name, block in (("filler", 4096), ("filler2", 1)):
        fd = os.open(path / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while True:
                os.write(fd, b"\0" * block)
        except OSError:
            pass
        finally:
            os.close(fd)


def _refuse(monkeypatch, root, kind):
    """Raise the card's errno from every call that would create or change a file under
    ``root`` (a full card still deletes and renames: that needs no space)."""
    code = errno.ENOSPC if kind == FULL else errno.EROFS
    inside = lambda p: os.path.abspath(os.fspath(p)).startswith(str(root))  # noqa: E731

    def fail(p):
        raise OSError(code, os.strerror(code), os.fspath(p))
    real = {n: getattr(os, n) for n in ("open", "replace", "rename", "link", "unlink", "mkdir")}
    real_open = builtins.open
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def os_open(p, flags, *a, **k):
        if flags & writes and inside(p):
            fail(p)
        return real["open"](p, flags, *a, **k)

    def py_open(p, mode="r", *a, **k):
        if isinstance(p, (str, os.PathLike)) and set(mode) & set("wax+") and inside(p):
            fail(p)
        return real_open(p, mode, *a, **k)

    def guarded(name, frees_space):
        def call(p, *a, **k):
            if inside(p) and not (kind == FULL and frees_space):
                fail(p)
            return real[name](p, *a, **k)
        return call
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", py_open)
    monkeypatch.setattr(io, "open", py_open)
    for name, frees in (("replace", True), ("rename", True), ("link", True), ("unlink", True),
                        ("mkdir", False)):
        monkeypatch.setattr(os, name, guarded(name, frees))


@contextlib.contextmanager
def a_card(tmp_path, monkeypatch, how, kind):
    root = tmp_path / "card"
    root.mkdir()
    if how == "tmpfs":
        if not can_mount():
            pytest.skip("a real full or read-only card is a tmpfs mount: needs root")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)], check=True)
    try:
        _seed(root)
        if how == "tmpfs":
            if kind == FULL:
                _fill(root)
            else:
                subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        else:
            _refuse(monkeypatch, root, kind)
        yield root
    finally:
        monkeypatch.undo()
        if how == "tmpfs":
            subprocess.run(["umount", "-l", str(root)], check=False)


def _server(root, sub, clock):
    app = FakeApp.__new__(FakeApp)  # the fake piece, on the data dir as it is now
    FakeApp.__init__(app, root / sub, clock=clock)
    logged: list[str] = []
    return ConsoleServer(Port(), app, clock=clock, log=logged.append), app, logged


#: (data dir, command, what a full card answers, what a read-only card answers):
#: "card" = one ERR naming the card; "ok"; "ok-card": OK that says it could not be kept;
#: "either": OK or ERR-card, as the filesystem allows (a rollback needs no new blocks)
COMMANDS = [
    ("a", "save", "card", "card"),
    ("a", "preset save evening", "card", "card"),
    ("a", "model rollback", "either", "card"),
    ("a", f"trust add {OTHER_KEY}", "card", "card"),
    ("a", f"trust remove {KEY}", "card", "card"),
    ("a", "lock 4711", "ok-card", "ok-card"),          # the lock holds until a restart
    ("a", "push begin 4000 " + hashlib.sha256(b"x").hexdigest(), "space", "card"),
    ("a", "set brightness 50", "ok", "ok"),           # memory only: nothing to write
    ("a", "reset all", "ok", "ok"),
    ("d", "record tap 1", "card", "card"),             # the reproducer
    ("a", "preset delete calm", "ok", "card"),  # deleting frees a full card: last but one
    ("b", "unlock 4711", "ok", "card"),
]


def _check(answer: list[str], want: str, kind: str, logged: list[str], cmd: str):
    assert len(answer) == 1, (cmd, answer)
    line = answer[0]
    assert not any("Traceback" in x for x in logged), (cmd, logged)
    card = f"the card is {kind}"
    if want == "ok":
        assert line.startswith("OK"), (cmd, line)
    elif want == "ok-card":
        assert line.startswith("OK") and card in line, (cmd, line)
    elif want == "space":
        assert line.startswith(("ERR not enough space on the device", f"ERR {card}")), (cmd, line)
    elif want == "either":
        assert line.startswith("OK") or line.startswith(f"ERR {card}"), (cmd, line)
    else:
        assert line.startswith(f"ERR {card}: could not ") and "'status' shows storage" in line, \
            (cmd, line)


@pytest.mark.parametrize("how", ["injected", "tmpfs"])
@pytest.mark.parametrize("kind", [FULL, RO])
def test_every_writing_command_answers_one_clear_line(tmp_path, monkeypatch, how, kind):
    with a_card(tmp_path, monkeypatch, how, kind) as root:
        for sub, cmd, full, ro in COMMANDS:
            clock = FakeClock()
            server, app, logged = _server(root, sub, clock)
            want = full if kind == FULL else ro
            _check(server.handle_line(cmd), want, kind, logged, cmd)
            if want == "card":
                assert any("could not" in p for p in app.storage.problems), cmd
            assert server.stream is None or cmd.startswith("record")


@pytest.mark.parametrize("how", ["injected", "tmpfs"])
@pytest.mark.parametrize("kind", [FULL, RO])
def test_a_take_on_a_card_that_cannot_keep_it_ends_with_one_err(tmp_path, monkeypatch, how, kind):
    """The recordings were started while there was room; the take itself cannot be kept."""
    with a_card(tmp_path, monkeypatch, how, kind) as root:
        clock = FakeClock()
        server, app, logged = _server(root, "a", clock)
        assert server.handle_line("record tap 1")[0].startswith("NOTE recording tap")
        for _ in range(20):
            clock.advance(0.2)
            server.tick()
        assert server.stream is None
        answer = server.ser.lines()
        assert len(answer) == 1 and answer[0].startswith(f"ERR the card is {kind}: could not "
                                                         "keep the take of tap")
        assert answer[0].endswith("nothing was saved")
        assert not any("Traceback" in x for x in logged)
        assert any("could not keep the take" in p for p in app.storage.problems)
        assert any(e["part"] == "storage" for e in app.storage.faults.entries())


def test_a_take_in_json_mode_on_a_read_only_card_is_streamed_and_says_why(tmp_path, monkeypatch):
    """A host client records to its laptop: the take still streams, and the start says why
    the device does not keep its own copy."""
    import json
    with a_card(tmp_path, monkeypatch, "injected", RO) as root:
        clock = FakeClock()
        server, app, _ = _server(root, "d", clock)
        server.mode = "json"
        start = json.loads(server.handle_line("record tap 1")[0])
        assert start["data"]["kept_on_device"] is False
        assert start["data"]["not_kept_because"].startswith("the card is read-only")
        assert set(LABELS) >= {"tap"}
