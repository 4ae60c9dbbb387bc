"""The studio's one connection to the object: a thread that owns the serial console.

Why one thread: a serial line carries one conversation. The thread keeps ``watch`` running
(the See view's live feed) and, between two watch lines, runs the jobs the web handlers
queue (``set``, ``record``, a push...) with the same :class:`ConsoleClient` as
``lanthorn console``: sending any line stops the device's watch, the answer comes back
(watch samples still in flight are passed on as events), then the watch is started again.

What can go wrong is shown, never hidden: a port that cannot be opened (unplugged, or held
by another program: which one is named), a device that stops answering (restarted: it came
back in text mode; or a cable pulled) -- the link says so in :attr:`state` and reconnects
every second until the object answers again, renegotiating json mode as
``ConsoleClient.connect`` does; a restart is recognised by the device's uptime going back.
"""
from __future__ import annotations

import concurrent.futures
import json
import queue
import threading
import time
from typing import Any, Callable

from lanthorn.host.console_client import ConsoleClient, ConsoleError, PortBusy
from lanthorn.vocabulary import BAUD

WATCH_HZ = 10
SILENCE_S = 2.5  # no watch sample for this long: ask whether the device is still there
RETRY_S = 1.0


class DeviceLink:
    """See the module docstring. ``on_event(dict)`` is called on the link thread with
    ``{"type": "watch"|"frames"|"link"|"notice", ...}``; keep it quick."""

    def __init__(self, port: str, baud: int = BAUD, on_event: Callable[[dict], None] = None,
                 describe: str | None = None):
        self.port, self.baud = port, baud
        self.describe = describe or port
        self.on_event = on_event or (lambda ev: None)
        self.client: ConsoleClient | None = None
        self.state: dict[str, Any] = {"state": "connecting", "detail": f"opening {self.describe}",
                                      "port": self.describe, "since": time.time()}
        self.model: dict | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sample = 0.0
        self._uptime: tuple[float, float] | None = None  # (device uptime, our monotonic time)
        self.restarts = 0

    # --- lifecycle
    def start(self) -> "DeviceLink":
        self._thread = threading.Thread(target=self._run, name="studio-link", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5.0)
        self._drop(None)

    @property
    def connected(self) -> bool:
        return self.state["state"] == "connected"

    # --- jobs (called from any thread)
    def submit(self, fn: Callable[[ConsoleClient], Any]) -> concurrent.futures.Future:
        """Run ``fn(client)`` on the link thread; the future holds its result or error."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if not self.connected:
            fut.set_exception(ConsoleError(f"the object is not connected: {self.state['detail']}"))
        else:
            self._jobs.put((fn, fut))
        return fut

    def run(self, fn: Callable[[ConsoleClient], Any], timeout: float = 30.0):
        return self.submit(fn).result(timeout)

    def call(self, line: str, timeout: float = 30.0):
        """One console line; its answer's data (ConsoleError with the device's reason)."""
        return self.run(lambda c: c.call(line, on_event=self._event), timeout)

    def model_changed(self, info: dict) -> None:
        """The object now runs ``info`` (a push, a rollback): the header's link line named
        the model it ran when the link opened, and must not keep the old name."""
        self.model = info
        if self.state["state"] == "connected":
            self._set_state("connected", f"connected on {self.describe} "
                            f"({info.get('name') or 'no model'})")

    # --- the thread
    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) == (self.state["state"], self.state["detail"]):
            return
        self.state = {"state": state, "detail": detail, "port": self.describe,
                      "since": time.time()}
        self.on_event({"type": "link", **self.state, "model": self.model})

    def _event(self, ev: dict) -> None:
        kind = ev.get("event")
        if kind == "watch":
            self._last_sample = time.monotonic()
            self.on_event({"type": "watch", "data": ev.get("data") or {}})
        elif kind == "frames":
            self._last_sample = time.monotonic()
            self.on_event({"type": "frames", "data": ev.get("data") or {}})
        elif kind == "notice":
            self.on_event({"type": "notice", "text": ev.get("text", "")})

    def _open(self) -> bool:
        try:
            client = ConsoleClient(self.port, self.baud, timeout=3.0, holder="lanthorn studio")
        except PortBusy as exc:  # names who holds it
            self._set_state("lost", f"{exc}; retrying every second")
            return False
        except ConsoleError as exc:
            self._set_state("lost", f"{exc}; retrying every second")
            return False
        self.client = client
        try:
            status = client.call("status")
            self.model = client.call("model info")
        except ConsoleError as exc:
            self._drop(f"{self.describe} answered, then stopped: {exc}")
            return False
        now = time.monotonic()
        up = float(status.get("uptime_s") or 0.0)
        restarted = (self._uptime is not None
                     and up + 1.0 < self._uptime[0] + (now - self._uptime[1]))
        self._uptime = (up, now)
        if restarted:
            self.restarts += 1
        for note in client.notices:
            self.on_event({"type": "notice", "text": note})
        what = (f"the object restarted (noticed at {time.strftime('%H:%M:%S')}); reconnected"
                if restarted else "connected")
        self._set_state("connected", f"{what} on {self.describe} "
                        f"({self.model.get('name') or 'no model'})")
        self._start_watch()
        return True

    def _start_watch(self) -> None:
        self.client.request(f"watch {WATCH_HZ}", on_event=self._event)
        self._last_sample = time.monotonic()

    def _drop(self, why: str | None) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
        if why:
            self._set_state("lost", why)
        while True:  # nobody will run the queued jobs on this connection
            try:
                _, fut = self._jobs.get_nowait()
            except queue.Empty:
                break
            fut.set_exception(ConsoleError(f"the object is not connected: {why}"))

    def _run(self) -> None:
        import serial
        while not self._stop.is_set():
            if self.client is None:
                try:
                    if not self._open():
                        self._stop.wait(RETRY_S)
                except (serial.SerialException, OSError, ConsoleError) as exc:
                    self._drop(f"{self.describe}: {exc}; retrying every second")
                    self._stop.wait(RETRY_S)
                continue
            try:
                self._step()
            except (serial.SerialException, OSError) as exc:
                self._drop(f"lost the cable to the object ({exc}); retrying every second")
                self._stop.wait(RETRY_S)
            except ConsoleError as exc:
                self._drop(f"the object stopped answering ({exc}): restarting or unplugged? "
                           "reconnecting")
            except Exception as exc:  # never let the studio lose its link thread
                self._drop(f"unexpected {type(exc).__name__}: {exc}; reconnecting")
                self._stop.wait(RETRY_S)

    def _step(self) -> None:
        import serial
        try:
            fn, fut = self._jobs.get_nowait()
        except queue.Empty:
            fn = None
        if fn is not None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                result = fn(self.client)
            except (serial.SerialException, OSError) as exc:
                fut.set_exception(ConsoleError(f"lost the cable to the object ({exc})"))
                raise
            except Exception as exc:  # the device's ERR, or a bug in fn: the link goes on
                fut.set_exception(exc)
                self._probe()  # was it the device that went away?
                return
            fut.set_result(result)
            self._start_watch()
            return
        line = self.client.read_line(0.05)
        if line and line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and "event" in obj:
                self._event(obj)
        if time.monotonic() - self._last_sample > SILENCE_S:
            self._probe()

    def _probe(self) -> None:
        """The device went quiet: still there (restart the watch) or gone (ConsoleError)."""
        st = self.client.call("status", timeout=2.0)
        now = time.monotonic()
        up = float(st.get("uptime_s") or 0.0)
        if self._uptime is not None and up + 1.0 < self._uptime[0] + (now - self._uptime[1]):
            raise ConsoleError("its uptime went back")
        self._uptime = (up, now)
        self._start_watch()
