"""Stuck sensors: a channel that stops changing for longer than its part can plausibly be
still.

In a gallery this is the common failure, and every read succeeds while it lasts: an MPR121
pad whose baseline drifted (or whose cable shorted) reads "touched" all day, a ranger's
reading freezes to the bit while everything around it moves. Nothing raises, so part health
(:mod:`lanthorn.device.piece.part_health`) never hears of it; this detector watches the values.

It works over a per-channel vector (the sample the sampler builds, any layout), so it does
not know pads from distances. Each channel has a *kind* and a *rest* value:

* ``"held"``: stuck when it stays at or above its ``active`` level (a pad touched) without a
  break for longer than ``held_s`` (parameter ``stuck_touch_s``);
* ``"frozen"``: stuck when it keeps exactly the same value, other than its rest value,
  for longer than ``frozen_s`` (parameter ``stuck_frozen_s``) while some other channel
  changed in that time (a still room is not a stuck sensor; a room where the light and the
  pads move around a bit-identical distance is);
* ``None``: never judged (a button may rest pressed; a steady lamp is steady).

A stuck channel is reported once (``on_stuck(part, channels, why)``), imputed with its rest
value (a pad untouched, nothing in range) so the piece stops believing someone is there, and
watched: when it moves again (a frozen one changes, a held one lets go) it is no longer
stuck, and once none of a part's channels is, ``on_recovered(part, channels)`` is called.
The part's own remedy (re-baselining the MPR121 by a soft reset, re-initialising a ranger)
is the caller's, in :meth:`PartHealth.stuck`. A sample with nothing stuck or about to be
allocates nothing (the hot path).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


class StuckDetector:
    """Watches one vector of channel values. ``parts[i]``: which part feeds channel i;
    ``kinds[i]``: "held", "frozen" or None; ``rest[i]``: its value when nothing happens (and
    what a stuck channel is imputed with); ``active[i]``: the level a "held" channel is
    "on" from; ``names[i]``: the channel's name, for the report."""

    def __init__(self, names: Sequence[str], parts: Sequence[str], kinds: Sequence[str | None],
                 rest: Sequence[float], active: Sequence[float],
                 on_stuck: Callable[[str, list[str], str], None],
                 on_recovered: Callable[[str, list[str]], None]):
        n = len(names)
        if not (len(parts) == len(kinds) == len(rest) == len(active) == n):
            raise ValueError("every channel needs a part, a kind, a rest and an active value")
        self.names, self.parts = tuple(names), tuple(parts)
        self.held = np.array([k == "held" for k in kinds])
        self.frozen = np.array([k == "frozen" for k in kinds])
        self.rest = np.asarray(rest, np.float32)
        self.active = np.asarray(active, np.float32)
        self.on_stuck, self.on_recovered = on_stuck, on_recovered
        self.last = np.full(n, np.nan, np.float32)
        self.t_changed = np.zeros(n, np.float64)   # when each channel last changed
        self.t_quiet = np.zeros(n, np.float64)     # when each held channel was last below active
        self.stuck = np.zeros(n, bool)
        self._changed = np.zeros(n, bool)
        self._work = np.zeros(n, bool)
        self._age = np.zeros(n, np.float64)
        self._new, self._free, self._frozen_now = (np.zeros(n, bool) for _ in range(3))
        self._by_part: dict[str, list[int]] = {}
        for i, p in enumerate(self.parts):
            self._by_part.setdefault(p, []).append(i)
        self.episodes = 0
        self._started = False

    def reset(self, part: str, now: float) -> None:
        """The part was re-opened: its channels start their stillness afresh."""
        for i in self._by_part.get(part, ()):
            self.t_changed[i] = self.t_quiet[i] = now

    def check(self, values: np.ndarray, now: float, held_s: float, frozen_s: float) -> None:
        """One sample at loop time ``now``: update, report, and impute in place."""
        if not self._started:
            np.copyto(self.last, values)
            self.t_changed[:] = self.t_quiet[:] = now
            self._started = True
        np.not_equal(values, self.last, out=self._changed)
        np.copyto(self.last, values)
        np.copyto(self.t_changed, now, where=self._changed)
        np.less(values, self.active, out=self._work)
        np.copyto(self.t_quiet, now, where=self._work)
        if self.stuck.any():
            self._recover(now)
        self._detect(now, held_s, frozen_s)
        if self.stuck.any():
            np.copyto(values, self.rest, where=self.stuck)

    def _detect(self, now: float, held_s: float, frozen_s: float) -> None:
        new, free = self._new, self._free
        np.logical_not(self.stuck, out=free)
        np.subtract(now, self.t_quiet, out=self._age)
        np.greater(self._age, held_s, out=new)
        new &= self.held
        new &= free
        np.subtract(now, self.t_changed, out=self._age)
        np.greater(self._age, frozen_s, out=self._frozen_now)
        self._frozen_now &= self.frozen
        self._frozen_now &= free
        if self._frozen_now.any():
            self._frozen_while_others_move(new)
        if new.any():
            self._report(new, held_s, frozen_s)

    def _frozen_while_others_move(self, new: np.ndarray) -> None:
        """Channels frozen past their limit, away from rest, while another one changed
        after they froze (rare: only at the moment a sensor is about to be called stuck)."""
        t = self.t_changed
        for i in np.flatnonzero(self._frozen_now):
            if self.last[i] == self.rest[i]:
                continue
            others = max((t[j] for j in range(t.shape[0]) if j != i), default=-math.inf)
            if others > t[i]:
                new[i] = True

    def _report(self, new: np.ndarray, held_s: float, frozen_s: float) -> None:
        for part, idx in self._by_part.items():
            hit = [i for i in idx if new[i]]
            if not hit:
                continue
            self.stuck[hit] = True
            self.episodes += 1
            names = [self.names[i] for i in hit]
            held = bool(self.held[hit[0]])
            kind, limit = ("held on", held_s) if held else ("frozen at one value", frozen_s)
            self.on_stuck(part, names, f"{', '.join(names)} {kind} for more than {limit:g} s")

    def _recover(self, now: float) -> None:
        moved = self.stuck & ((self.frozen & self._changed) | (self.held & self._work))
        if not moved.any():
            return
        self.stuck[moved] = False
        for part, idx in self._by_part.items():
            freed = [i for i in idx if moved[i]]
            if freed and not any(self.stuck[i] for i in idx):
                self.on_recovered(part, [self.names[i] for i in freed])

    def stuck_channels(self) -> list[str]:
        return [self.names[i] for i in np.flatnonzero(self.stuck)]
