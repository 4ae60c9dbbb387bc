"""systemd's readiness and watchdog protocol (sd_notify), in the standard library only.

With ``Type=notify`` systemd waits for ``READY=1`` before it calls the piece started, and
with ``WatchdogSec=`` it restarts the piece when ``WATCHDOG=1`` stops arriving (a hung
loop, a wedged I2C bus). The messages go to the unix datagram socket named in
``$NOTIFY_SOCKET`` -- a local socket, not a network one (the device never opens those).
Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""
from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_s = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6
        self._sock = None
        self.ready_sent = False
        self.errors = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def feed_interval(self, default: float = 2.0) -> float:
        """How often to send WATCHDOG=1: half systemd's timeout (its own advice)."""
        return min(default, self.watchdog_s / 2) if self.watchdog_s else default

    def notify(self, message: str) -> bool:
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):  # abstract namespace
            addr = "\0" + addr[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # never block the loop: a receiver that does not drain its queue (a stuck
                # systemd, a test) costs a lost heartbeat, not a frozen piece
                self._sock.setblocking(False)
            self._sock.sendto(message.encode(), addr)
            return True
        except OSError:
            self.errors += 1  # systemd gone or socket removed: never fatal for the piece
            return False

    def ready(self, status: str = "") -> None:
        self.ready_sent = True
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        """Called from the loop thread: the first call also says READY."""
        if not self.ready_sent:
            self.ready("running")
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
