"""A model push as the console runs it: ``push begin``, the binary frames, the verdict; and
the trusted signing keys (``trust list/add/remove``) a locked object asks for.

Apart from the server because a push is its own conversation with its own failure rules:
space is checked before the first byte, frames go to
:class:`~lanthorn.device.console.push_wire.PushReceiver` (the framing shared with the host), a
silent sender times out, and the finished file is installed through the piece's
``install_model`` (:class:`~lanthorn.device.console.console_app.ConsoleApp`), which verifies and
loads it before the swap. While the exhibition lock is on, only a bundle signed by a
trusted key is installed (see SIGNING.md). Whatever goes wrong, the answer says so and the
old model keeps running; a refused file is deleted.
"""
from __future__ import annotations

import errno
import os
import shutil
from typing import TYPE_CHECKING

from lanthorn.device.console import console_wire as wire
from lanthorn.device.console.push_wire import BUSY, IDLE_TIMEOUT_S, PushError, PushReceiver, check_begin
from lanthorn.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - names for type checkers only
    from lanthorn.device.console.server import ConsoleServer

SPACE_MARGIN = 1 << 20  # keep 1 MiB free for settings and logs after a push
_CMD = "push begin"     # the command every answer of a push belongs to


class Push:
    """A push in progress: the server hands it every byte read until it is over."""

    name = "push"
    takes_bytes = True

    def __init__(self, rx: PushReceiver):
        self.rx = rx

    def feed(self, server: "ConsoleServer", data: bytes) -> bool:
        """Frames in, ACK/NAK lines out; False once the push is over (its answer sent)."""
        try:
            replies = self.rx.feed(data)
        except OSError as exc:  # the data partition is full or failing
            self.close()
            refused = server.app.storage.refused(exc, "store the push")
            server.send(wire.err_lines(server.mode, _CMD, f"{refused}; the old model keeps "
                                       "running"))
            return False
        server.send(replies)
        self.answer_typed(server)
        if self.rx.aborted:
            self.close()
            server.send(wire.err_lines(server.mode, _CMD, "push aborted by the sender; "
                                       "the old model keeps running"))
            return False
        if self.rx.complete:
            server.send(self.finish(server))
            return False
        return True

    def answer_typed(self, server: "ConsoleServer") -> None:
        """Each line typed during the push gets its one answer now (the push goes on)."""
        typed, self.rx.typed = self.rx.typed, []
        for line in typed:
            server.handled += 1
            answer = wire.err_lines(server.mode, None, f"{BUSY} ({self.rx.received} bytes "
                                    f"of {self.rx.size})")
            server.send(wire.tag_answer(answer, line) if server.mode == "json" else answer)

    def tick(self, server: "ConsoleServer") -> bool:
        if self.rx.idle_for() <= IDLE_TIMEOUT_S:
            return True
        self.close()
        server.send(wire.err_lines(server.mode, _CMD, f"push timed out (no data for "
                                   f"{IDLE_TIMEOUT_S:.0f} s); the old model keeps running; "
                                   "run the push again to resume"))
        return False

    def finish(self, server: "ConsoleServer") -> list[str]:
        """The whole file is here: check it, install it, and say what happened."""
        try:
            path = self.rx.finish()
        except PushError as exc:
            return wire.err_lines(server.mode, _CMD, str(exc))
        try:
            if server.lock.locked:
                check_signed(server.app, path)
            info = server.app.install_model(str(path))
        except Exception as exc:  # refused by verification: the app keeps its old model
            return wire.err_lines(server.mode, _CMD, f"{exc}")
        finally:
            if path.exists():
                path.unlink()  # refused: do not keep a bad file around
        return server.ok(_CMD, f"installed {info.get('name')} sha256={info.get('sha256')}",
                         data=info)

    def close(self) -> None:
        self.rx.close()


def cmd_push_begin(server: "ConsoleServer", name, args):
    size, sha, chunk = check_begin(args[0], args[1], args[2] if len(args) > 2 else None)
    if server.lock.locked and not _trust(server.app).keys():
        raise UserError("locked: no signing key is trusted, so no push can be installed; "
                        "'unlock PIN' first, or provision a key (see SIGNING.md)")
    incoming = server.app.storage.incoming_dir
    if _read_only(incoming):  # say so now, not "not enough space" or half-way through
        refused = server.app.storage.refused(OSError(errno.EROFS, os.strerror(errno.EROFS)),
                                             "store the push")
        raise UserError(f"{refused}; the old model keeps running")
    free = shutil.disk_usage(incoming).free
    if free < size + SPACE_MARGIN:  # refuse now rather than fail half-way through
        raise UserError(f"not enough space on the device for a {size} byte model "
                        f"({free} bytes free); the old model keeps running")
    try:
        rx = PushReceiver(incoming, size, sha, chunk, clock=server.clock)
    except OSError as exc:
        raise UserError(f"{server.app.storage.refused(exc, 'store the push')}; the old model "
                        "keeps running") from None
    push = Push(rx)
    answer = server.ok(name, f"push ready chunk={chunk} offset={rx.resumed_from}",
                       data={"chunk": chunk, "offset": rx.resumed_from})
    if rx.complete:  # everything was already here from an interrupted push
        server.send(answer)
        server.send(push.finish(server))
        return []
    server.stream = push
    return answer


def _read_only(folder) -> bool:
    """Whether ``folder`` is on a filesystem mounted read-only (a card that failed)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def check_signed(app, path) -> None:
    """A locked object installs only bundles signed by a key it trusts."""
    from lanthorn.device.engine.bundle import read_bundle
    from lanthorn.device.engine.signing import SignatureError, check_trusted
    try:
        check_trusted(read_bundle(path), _trust(app).keys())
    except SignatureError as exc:
        raise UserError(f"refused: this object is locked and installs only bundles signed "
                        f"by a trusted key; {exc}; the old model keeps running") from None


# --- trusted signing keys (device/engine/signing.py; the lock decides whether they are needed)
def _trust(app):
    from lanthorn.device.engine.signing import TrustStore
    return TrustStore(app.storage.root)


def cmd_trust_list(server: "ConsoleServer", name, args):
    entries = _trust(server.app).entries()
    body = [f"{e['key']}  {e['name']}".rstrip() for e in entries] or ["(no trusted keys)"]
    return server.ok(name, f"{len(entries)} trusted key(s)", body=body,
                     data={"keys": entries, "locked": server.lock.locked})


def cmd_trust_add(server: "ConsoleServer", name, args):
    from lanthorn.device.engine.signing import parse_public_key, short_id
    key = parse_public_key(args[0])
    added = _trust(server.app).add(key, args[1] if len(args) > 1 else "")
    return server.ok(name, f"{'trusting' if added else 'already trusted:'} {short_id(key)}…")


def cmd_trust_remove(server: "ConsoleServer", name, args):
    from lanthorn.device.engine.signing import parse_public_key, short_id
    key = parse_public_key(args[0])
    _trust(server.app).remove(key)
    return server.ok(name, f"no longer trusting {short_id(key)}…")


HANDLERS = {"push begin": cmd_push_begin, "trust list": cmd_trust_list,
            "trust add": cmd_trust_add, "trust remove": cmd_trust_remove}
