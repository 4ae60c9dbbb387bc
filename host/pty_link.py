"""A null-modem cable made of two pseudo-terminal pairs: the simulated piece on one end
(``lanthorn studio --sim``), the host tools on the other; also the console tests' cable.

``os.openpty()`` gives one tty path (the slave) and a master fd; pyserial needs a path on
BOTH ends, so two pairs are joined by two forwarding threads (one per direction, so a full
buffer one way never stalls the other). Each end is a real tty that pyserial opens by
name, exactly like /dev/ttyACM0 or /dev/ttyGS0. A ``damage`` hook can alter bytes on the
way from the host end to the device end (line noise, a pulled cable). With ``baud`` the
link paces each direction like a real 8N1 line (10 bits a byte), which a pty alone does not.

The slave fds stay open here, so a device process that dies and restarts on ``device``
finds the same path and the host end never sees a hang-up.
"""
from __future__ import annotations

import os
import select
import threading
import time
import tty


class PtyLink:
    def __init__(self, damage=None, baud: int | None = None):
        self._fds = []
        self._m_host, s_host = self._pair()
        self._m_dev, s_dev = self._pair()
        self.host, self.device = os.ttyname(s_host), os.ttyname(s_dev)
        self.damage = damage  # bytes -> bytes, applied host -> device
        self.baud = baud
        self.to_device = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._pump, args=(self._m_host, self._m_dev, True), daemon=True),
            threading.Thread(target=self._pump, args=(self._m_dev, self._m_host, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pair(self):
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or CR/LF translation before pyserial opens it
        self._fds += [master, slave]
        return master, slave

    def _pump(self, src, dst, to_device):
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(src, 65536)
            except OSError:
                return
            if to_device:
                self.to_device += len(data)
                if self.damage:
                    data = self.damage(data)
            if self.baud:
                self._paced_write(dst, data)
                continue
            view = memoryview(data)
            while view and not self._stop.is_set():
                try:
                    n = os.write(dst, view)
                except BlockingIOError:
                    continue
                except OSError:
                    return
                view = view[n:]

    def _paced_write(self, dst, data, slice_=32):
        """Deliver ``data`` no faster than the baud rate, a few bytes at a time."""
        t = time.monotonic()
        for i in range(0, len(data), slice_):
            part = data[i:i + slice_]
            t += len(part) * 10.0 / self.baud
            delay = t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            view = memoryview(part)
            while view and not self._stop.is_set():
                try:
                    view = view[os.write(dst, view):]
                except OSError:
                    return

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(1.0)
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
