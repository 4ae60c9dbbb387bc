"""The loop's figures and journal."""
from __future__ import annotations

import pytest

from lanthorn.device.piece.loop_stats import Journal, LoopStats, Samples
from lanthorn.hardware.sim import SimClock


def test_samples_keep_the_newest_and_summarise():
    s = Samples(4)
    assert s.summary() == {"n": 0} and s.percentile(50) is None
    for v in (100.0, 1.0, 2.0, 3.0, 4.0):
        s.add(v)
    assert sorted(s.values().tolist()) == [1.0, 2.0, 3.0, 4.0]   # 100 fell out
    assert s.summary()["n"] == 5 and s.summary()["max"] == 4.0


def test_a_frame_accounts_the_work_since_the_last_one_and_the_touch_latency():
    st = LoopStats()
    st.account(0.002, 0.001, False, None, None)          # a sample-only wake-up
    st.account(0.003, 0.002, True, 10.0, 9.99)           # the frame: both wake-ups' work
    assert st.frames_shown == 1
    assert st.frame_ms.values().tolist() == pytest.approx([5.0])
    assert st.frame_cpu_ms.values().tolist() == pytest.approx([3.0])
    assert st.frame_ms_speaking.n == 1 and st.latency_ms.values()[0] == pytest.approx(10.0)
    st.account(0.001, 0.001, False, 10.5, None)
    assert st.frame_ms.values()[-1] == pytest.approx(1.0) and st.frame_ms_speaking.n == 1
    assert st.fps() == pytest.approx(2.0)
    assert st.timings(2.0)["cpu_share"] == pytest.approx(0.002)


def test_the_journal_stamps_loop_time_and_logs_messages():
    clock = SimClock()
    logged = []
    j = Journal(clock, logged.append)
    clock.set(5.0)
    j.mark("part", "before the start")
    j.t_start = 5.0
    clock.set(7.5)
    j.mark("mood", "shy")
    j.say("hello")
    assert [(e.t, e.text) for e in j.timeline] == [(0.0, "before the start"), (2.5, "shy")]
    assert list(j.messages) == ["hello"] == logged
    assert j.timeline[-1].to_json() == {"t": 2.5, "kind": "mood", "text": "shy"}
