"""What the running piece measured and what it has to tell: figures, messages, the timeline.

* :class:`Samples`: a fixed ring of the newest measurements (milliseconds) for p50/p99,
  allocation-free to add to (the hot path adds several per frame).
* :class:`LoopStats`: every figure the loop keeps (frame work time in wall and CPU time,
  inference, sampling, touch-to-light latency, the frame rate, the share of a core, the
  voice's phrase times) and their summary for ``status`` and the demo's summary.json.
* :class:`Journal`: the console's messages (the newest 50, also sent to ``log``), the
  faults (:meth:`Journal.fault`, also into the on-card fault log) and the timeline (:class:`TimelineEntry`: gestures, moods, phrases, parts, models, with loop
  times) that the demo and the studio show.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Callable

import numpy as np


class Samples:
    """A fixed-size ring of the newest float measurements (milliseconds), for p50/p99."""

    def __init__(self, n: int = 1024):
        self.buf = np.zeros(n, np.float64)
        self.n = 0

    def add(self, value: float) -> None:
        self.buf[self.n % self.buf.shape[0]] = value
        self.n += 1

    def values(self) -> np.ndarray:
        return self.buf[:min(self.n, self.buf.shape[0])].copy()

    def percentile(self, q: float) -> float | None:
        v = self.values()
        return round(float(np.percentile(v, q)), 3) if v.size else None

    def summary(self) -> dict:
        v = self.values()
        if not v.size:
            return {"n": 0}
        return {"n": int(self.n), "p50": round(float(np.percentile(v, 50)), 3),
                "p99": round(float(np.percentile(v, 99)), 3), "max": round(float(v.max()), 3),
                "mean": round(float(v.mean()), 3)}


@dataclass
class TimelineEntry:
    """Something worth telling a person: a recognised gesture, a mood change, a phrase
    shown, a part failing or recovering, a model change."""

    t: float
    kind: str  # "gesture" | "mood" | "phrase" | "part" | "model"
    text: str
    p: float | None = None
    by: str | None = None  # a phrase's author: "voice" (generated) or "bank"

    def to_json(self) -> dict:
        d = {"t": round(self.t, 3), "kind": self.kind, "text": self.text}
        if self.p is not None:
            d["p"] = round(self.p, 3)
        if self.by is not None:
            d["by"] = self.by
        return d


class Journal:
    """Messages for the console and the timeline, stamped with loop time (seconds since
    ``t_start``, which the loop sets when it starts)."""

    def __init__(self, clock: Callable[[], float], log: Callable[[str], None] | None = None,
                 faults=None):
        self.clock, self.log = clock, log
        #: the on-card fault log (:class:`~lanthorn.device.storage.fault_log.FaultLog`), or None
        self.faults = faults
        self.t_start: float | None = None
        self.messages: collections.deque[str] = collections.deque(maxlen=50)
        self.timeline: collections.deque[TimelineEntry] = collections.deque(maxlen=2000)
        #: (t, recognised gesture or None) at every change: the flicker figures
        self.gesture_log: collections.deque[tuple] = collections.deque(maxlen=5000)

    def now(self) -> float:
        """Loop time: seconds since the start (0 before it)."""
        now = self.clock()
        return now - (self.t_start if self.t_start is not None else now)

    def say(self, text: str) -> None:
        self.messages.append(text)
        if self.log:
            self.log(text)

    def mark(self, kind: str, text: str, p: float | None = None, by: str | None = None) -> None:
        self.timeline.append(TimelineEntry(self.now(), kind, text, p, by))

    def fault(self, part: str, what: str, detail: str = "", said: str | None = None) -> None:
        """The one way a fault or a recovery is reported: ``said`` on the console (when
        given), ``PART WHAT`` on the timeline, and a line in the on-card fault log."""
        if said:
            self.say(said)
        self.mark("part", f"{part} {what}")
        if self.faults is not None:
            self.faults.record(part, what, detail)


class LoopStats:
    """The loop's figures. The loop calls :meth:`account` after every wake-up."""

    def __init__(self):
        self.frame_ms = Samples()  # wall time of each LED frame's work (what 60 fps needs)
        self.frame_cpu_ms = Samples()  # the same in the loop thread's CPU time
        self.infer_ms = Samples()
        self.latency_ms = Samples(256)  # touch-to-light
        self.sample_ms = Samples()
        self.show_times = Samples(120)
        self.phrase_ms = Samples(256)       # generation time of each voice phrase
        self.frame_ms_speaking = Samples()  # frame work time while a phrase was being made
        self.frame_cpu_ms_speaking = Samples()
        self.voice_log: collections.deque[dict] = collections.deque(maxlen=200)
        self.frames_shown = 0
        self.busy_s = 0.0  # wall time spent in steps
        self.cpu_s = 0.0  # CPU time of the loop thread spent in steps
        self._busy_since_show = 0.0
        self._cpu_since_show = 0.0
        self._speaking = False

    def account(self, busy: float, cpu: float, speaking: bool, shown_at: float | None,
                touch_at: float | None) -> None:
        """One wake-up's wall and CPU time; ``shown_at``: the clock when an LED frame was
        shown in it (None: none was); ``touch_at``: when the touch it shows began."""
        self._speaking = self._speaking or speaking
        self.busy_s += busy
        self._busy_since_show += busy
        self.cpu_s += cpu
        self._cpu_since_show += cpu
        if shown_at is None:
            return
        self.frame_ms.add(self._busy_since_show * 1e3)
        self.frame_cpu_ms.add(self._cpu_since_show * 1e3)
        if self._speaking:
            self.frame_ms_speaking.add(self._busy_since_show * 1e3)
            self.frame_cpu_ms_speaking.add(self._cpu_since_show * 1e3)
            self._speaking = False
        self._busy_since_show = self._cpu_since_show = 0.0
        self.show_times.add(shown_at)
        self.frames_shown += 1
        if touch_at is not None:
            self.latency_ms.add((shown_at - touch_at) * 1e3)

    def fps(self) -> float | None:
        shows = self.show_times.values()
        if shows.size < 2:
            return None
        span = shows.max() - shows.min()
        return round(float((shows.size - 1) / span), 2) if span > 0 else None

    def share(self, seconds: float, elapsed: float) -> float | None:
        return round(seconds / elapsed, 4) if elapsed > 0 else None

    def timings(self, elapsed: float) -> dict:
        """The timing part of ``status``."""
        return {"fps": self.fps(),
                "frame_ms_p50": self.frame_ms.percentile(50),
                "frame_ms_p99": self.frame_ms.percentile(99),
                "frame_cpu_ms_p99": self.frame_cpu_ms.percentile(99),
                "infer_ms": self.infer_ms.percentile(50),
                "infer_ms_p99": self.infer_ms.percentile(99),
                "touch_to_light_ms_p50": self.latency_ms.percentile(50),
                "cpu_share": self.share(self.cpu_s, elapsed)}

    def summary(self, elapsed: float, inferences: int) -> dict:
        """The measured figures (the demo's summary.json)."""
        return {"seconds": round(elapsed, 3), "frames": self.frames_shown,
                "inferences": inferences,
                "frame_ms": self.frame_ms.summary(), "frame_cpu_ms": self.frame_cpu_ms.summary(),
                "infer_ms": self.infer_ms.summary(), "sample_ms": self.sample_ms.summary(),
                "touch_to_light_ms": self.latency_ms.summary(),
                "cpu_share": self.share(self.cpu_s, elapsed),
                "busy_share": self.share(self.busy_s, elapsed)}
