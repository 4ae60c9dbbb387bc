"""The parameters as the running loop sees them.

The console changes parameters on its own thread (:class:`~lanthorn.device.piece.params.ParamStore`
is thread-safe and counts changes in ``version``). The loop looks at that counter once per
wake-up, which costs nothing, and takes a fresh ``snapshot`` only when it moved, so a change
applies on the next frame and a frame never sees half a change. The quiet hours are looked
at once a second, by the device's clock of day.
"""
from __future__ import annotations

import time
from typing import Callable

from lanthorn.device.piece.behaviour import quiet_now


def _local_minute() -> int:
    t = time.localtime()
    return t.tm_hour * 60 + t.tm_min


class LiveParams:
    """``p``: the snapshot in use; ``quiet``: inside the quiet hours now."""

    def __init__(self, store, scheduler, minute_of_day: Callable[[], int] | None = None):
        self.store = store
        self.minute_of_day = minute_of_day or _local_minute
        self.p = store.snapshot()
        self.version = -1
        self.quiet = False
        self.quiet_tick = scheduler.every(1.0)

    def start(self, now: float) -> None:
        self.quiet_tick.start(now)

    def invalidate(self) -> None:
        """Apply everything again on the next wake-up (a re-opened LED strip)."""
        self.version = -1

    def refresh(self, now: float, journal) -> bool:
        """Take up parameter changes and the quiet hours; True when anything changed."""
        changed = self.store.version != self.version
        if changed:
            self.version = self.store.version
            self.p = self.store.snapshot()
        if self.quiet_tick.due(now):
            quiet = quiet_now(self.p["quiet_hours"], self.minute_of_day())
            if quiet != self.quiet:
                self.quiet = quiet
                changed = True
                journal.mark("part", "quiet hours" if quiet else "opening hours")
        return changed
