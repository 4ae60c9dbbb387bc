"""A worker thread that serves the newest request, for work kept off the loop's hot path.

Drawing the OLED (~25 ms over I2C) and generating a voice phrase (tens of milliseconds) must
never hold up a frame, so each has a daemon thread of its own: the loop only stores a
request and notifies; the thread waits for one (or for ``close``) and serves it.
"""
from __future__ import annotations

import threading
from typing import Any


class RequestThread:
    """Base of the OLED and voice workers: ``_pending`` holds the newest request, ``_cond``
    guards it; subclasses serve it in :meth:`_serve_next`."""

    def _start_thread(self, threaded: bool, name: str) -> None:
        self._cond = threading.Condition()
        self._pending: Any = None  # each subclass's own request type; None: nothing waiting
        self._stop = False
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
            self._serve_next()

    def _serve_next(self) -> None:  # pragma: no cover - every worker defines it
        raise NotImplementedError

    def close(self) -> None:
        """Stop the thread (it finishes the request it is serving)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
