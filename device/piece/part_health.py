"""Part health: a part that fails degrades the piece, never stops it, and is tried again.

Every sensor and output is ``"ok"`` or ``"failed: why"`` (``status()["sensors"]``). A
failure (a :class:`~lanthorn.hardware.interfaces.PartError`, or any driver bug, which is
named by its exception type) marks the part failed, says so once on the console, and
schedules a retry ``retry_s`` later; until then the part is not used (the sampler imputes
its channel). At the retry the body re-opens the part when it can (a chip unplugged or
browned out comes back in its power-on state and must be configured again). A part that
failed to open at start is retried the same way.
"""
from __future__ import annotations

from typing import Callable

from lanthorn.hardware.interfaces import Part, PartError
from lanthorn.vocabulary import ROLES


def body_roles(body) -> tuple[str, ...]:
    """The classic roles, then any other part the body has (an IMU, a knob: by its name)."""
    roles = getattr(body, "roles", None)
    names = roles() if roles else [k for k, v in vars(body).items() if isinstance(v, Part)]
    return ROLES + tuple(r for r in names if r not in ROLES)


class PartHealth:
    """The health of a body's parts. ``say(text)`` tells the console; ``mark(kind, text)``
    writes the timeline; ``on_reopen(role)`` hears of a part re-opened (the LEDs need their
    brightness and power cap again). ``fault(part, what, detail, said)`` reports a failure
    or recovery (the piece's :meth:`~lanthorn.device.piece.loop_stats.Journal.fault`, which also
    writes the on-card fault log); without it, ``say`` and ``mark`` are used."""

    def __init__(self, body, retry_s: float, say: Callable[[str], None],
                 mark: Callable[[str, str], None],
                 on_reopen: Callable[[str], None] | None = None,
                 fault: Callable[..., None] | None = None):
        self.body = body
        self.retry_s = retry_s
        self.say, self.mark, self.on_reopen = say, mark, on_reopen
        self.fault = fault or self._say_and_mark
        self.state: dict[str, str] = {}
        self.retry_at: dict[str, float] = {}
        #: parts with a stuck channel (device/piece/stuck.py): role -> what is stuck
        self.stuck_now: dict[str, str] = {}
        self.stuck_retry_at: dict[str, float] = {}
        self.stuck_episodes = 0
        for role in body_roles(body):
            if getattr(body, role, None) is not None:
                self.state[role] = "ok"
            elif role in getattr(body, "open_errors", {}):
                self.state[role] = f"failed: {body.open_errors[role]}"
                self.retry_at[role] = 0.0

    def failed(self, role: str, exc: Exception, now: float) -> None:
        """``role`` failed with ``exc`` at ``now``: not used again before the retry."""
        was_ok = self.state.get(role) == "ok"
        if not isinstance(exc, PartError):  # a driver bug: say what kind, for the log
            exc = PartError(role, f"{type(exc).__name__}: {exc}")
        self.state[role] = f"failed: {exc}"
        self.retry_at[role] = now + self.retry_s
        if was_ok:
            self.fault(role, "failed", str(exc),
                       said=f"{role} failed: {exc}; keeps running without it, retrying every "
                            f"{self.retry_s:g} s")

    def _say_and_mark(self, part: str, what: str, detail: str = "", said: str | None = None):
        if said:
            self.say(said)
        self.mark("part", f"{part} {what}")

    def ok(self, role: str) -> None:
        """``role`` answered: healthy (and, if it was not, say it works again)."""
        if self.state.get(role, "ok") != "ok":
            self.fault(role, "recovered", "", said=f"{role} works again")
            self.state[role] = "ok"
            self.retry_at.pop(role, None)

    def usable(self, role: str, now: float):
        """The part if it should be used now: healthy, or failed and due for a retry (a
        part that failed is re-opened, when the body can); else None."""
        part = getattr(self.body, role, None)
        if self.state.get(role, "ok") == "ok":
            return part
        if now < self.retry_at.get(role, 0.0):
            return None
        self.retry_at[role] = now + self.retry_s
        reopen = getattr(self.body, "open_part", None)
        if reopen is None:
            return part  # (the simulator's parts need no re-initialisation)
        try:
            part = reopen(role)
        except Exception as exc:  # still broken: try again later
            self.state[role] = f"failed: {exc}"
            return None
        if self.on_reopen is not None:
            self.on_reopen(role)
        return part

    def use(self, role: str, now: float, action: Callable, default=None):
        """Call ``action(part)`` if the part is usable; returns its answer, or ``default``
        (the imputed value) when the part is not used now or failed (marked failed, never
        raised)."""
        part = self.usable(role, now)
        if part is None:
            return default
        try:
            answer = action(part)
        except Exception as exc:  # PartError, or a driver bug: degrade, never stop
            self.failed(role, exc, now)
            return default
        if self.state[role] != "ok":
            self.ok(role)
        return answer

    # --- stuck sensors (device/piece/stuck.py sees them; the remedy is the part's)
    def stuck(self, role: str, channels: list[str], why: str, now: float) -> None:
        """A channel of ``role`` stopped changing for longer than plausible: say so once,
        and apply the datasheet's remedy, re-initialising the part (an MPR121 re-opened is
        soft-reset and takes a fresh baseline from its first reading; a VL53L0X restarts
        its measurements). Its channels are imputed until they move again. A part already
        failed is not called stuck: its held or imputed values are still because it is out."""
        if self.state.get(role, "ok") != "ok":
            return
        self.stuck_now[role] = why
        self.stuck_episodes += 1
        self.stuck_retry_at[role] = now + self.retry_s
        self.fault(role, "stuck", why,
                   said=f"{role} stuck: {why}; re-initialising it, its reading is imputed "
                        "until it moves again")
        self.reinit(role, now)

    def retry_stuck(self, now: float) -> None:
        """While a part stays stuck, its remedy is tried again every ``retry_s`` (a drift
        that came back, a short that ended: the next re-baseline takes)."""
        for role in list(self.stuck_now):
            if now >= self.stuck_retry_at.get(role, 0.0):
                self.stuck_retry_at[role] = now + self.retry_s
                self.reinit(role, now)

    def unstuck(self, role: str, channels: list[str]) -> None:
        self.stuck_retry_at.pop(role, None)
        if self.stuck_now.pop(role, None) is not None:
            moving = ", ".join(channels)
            self.fault(role, "recovered", f"{moving} moving again",
                       said=f"{role} is no longer stuck ({moving} moving again)")

    def reinit(self, role: str, now: float) -> None:
        """Re-open a healthy part (its remedy for a stuck reading); a part that fails to
        re-open is failed, as any other part that stops answering."""
        reopen = getattr(self.body, "open_part", None)
        if reopen is None or self.state.get(role, "ok") != "ok":
            return
        try:
            reopen(role)
        except Exception as exc:
            self.failed(role, exc, now)
            return
        if self.on_reopen is not None:
            self.on_reopen(role)

    def report(self) -> dict[str, str]:
        """Every part's state for ``status``: ok, failed: why, or stuck: what."""
        return {role: (f"stuck: {self.stuck_now[role]}" if st == "ok" and role in self.stuck_now
                       else st) for role, st in self.state.items()}
