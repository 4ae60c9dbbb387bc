"""Part health: a failing part degrades the piece, is said once, and is retried."""
from __future__ import annotations

import types

from lanthorn.device.piece.part_health import PartHealth
from lanthorn.hardware.interfaces import PartError


class Ranger:
    def __init__(self):
        self.broken = False

    def read_mm(self):
        if self.broken:
            raise PartError("distance", "no answer at 0x29")
        return 400.0


def health_of(body, **kw):
    said, marks = [], []
    h = PartHealth(body, 5.0, said.append, lambda kind, text: marks.append((kind, text)), **kw)
    return h, said, marks


def test_parts_present_are_ok_and_parts_that_failed_to_open_are_failed():
    body = types.SimpleNamespace(touch=object(), distance=None, light=None, leds=object(),
                                 display=None, open_errors={"light": "light: no answer at 0x23"})
    h, _, _ = health_of(body)
    assert h.state == {"touch": "ok", "leds": "ok", "light": "failed: light: no answer at 0x23"}


def test_a_failure_is_said_once_imputed_and_retried_after_retry_s():
    ranger = Ranger()
    body = types.SimpleNamespace(distance=ranger, open_errors={})
    h, said, marks = health_of(body)
    read = lambda r: r.read_mm()  # noqa: E731
    assert h.use("distance", 0.0, read) == 400.0
    ranger.broken = True
    assert h.use("distance", 1.0, read, default=None) is None
    assert h.state["distance"] == "failed: distance: no answer at 0x29"
    assert h.use("distance", 2.0, read, default=-1) == -1   # not tried before the retry
    assert h.use("distance", 6.0, read, default=-1) == -1   # tried at 6 s, still broken
    assert len(said) == 1 and "retrying every 5 s" in said[0]  # said once, not every retry
    ranger.broken = False
    assert h.use("distance", 8.0, read) is None               # next retry only at 11 s
    assert h.use("distance", 11.0, read) == 400.0 and h.state["distance"] == "ok"
    assert said[-1] == "distance works again"
    assert marks == [("part", "distance failed"), ("part", "distance recovered")]


def test_a_driver_bug_is_named_by_its_type():
    body = types.SimpleNamespace(touch=object(), open_errors={})
    h, said, _ = health_of(body)

    def boom(part):
        raise ValueError("unpack requires a buffer of 2 bytes")
    h.use("touch", 0.0, boom)
    assert h.state["touch"] == "failed: touch: ValueError: unpack requires a buffer of 2 bytes"


def test_a_retry_reopens_the_part_through_the_body_and_says_so():
    ranger = Ranger()
    ranger.broken = True
    fresh = Ranger()
    reopened = []
    body = types.SimpleNamespace(distance=ranger, open_errors={},
                                 open_part=lambda role: reopened.append(role) or fresh)
    h, _, _ = health_of(body, on_reopen=reopened.append)
    h.use("distance", 0.0, lambda r: r.read_mm())
    assert h.usable("distance", 1.0) is None
    assert h.usable("distance", 5.0) is fresh and reopened == ["distance", "distance"]


def test_a_reopen_that_fails_waits_for_the_next_retry():
    def refuse(role):
        raise PartError(role, "still unplugged")
    body = types.SimpleNamespace(leds=object(), open_errors={}, open_part=refuse)
    h, _, _ = health_of(body)
    h.failed("leds", PartError("leds", "spi write failed"), 0.0)
    assert h.usable("leds", 5.0) is None and "still unplugged" in h.state["leds"]
    assert h.retry_at["leds"] == 10.0
