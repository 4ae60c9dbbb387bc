"""Model frames: the twice-laid ring gives the newest window as one view; the console's
history keeps the last seconds with their times."""
from __future__ import annotations

import numpy as np
import pytest

from lanthorn.device.piece.frames import N_CHANNELS
from lanthorn.device.piece.model_frames import FrameHistory, FrameWindow


def frame(v):
    return np.full(N_CHANNELS, v, np.float32)


def test_the_newest_window_is_one_view_in_order():
    w = FrameWindow(4)
    for i in range(1, 11):
        w.push(frame(i))
        raw = w.raw()
        assert raw.base is w.ring and raw.shape == (4, N_CHANNELS)
        want = [max(1, v) for v in range(i - 3, i + 1)]  # the first frame fills the start
        assert raw[:, 0].tolist() == want


def test_the_model_reads_its_channels_in_its_order_and_scale_without_allocating():
    w = FrameWindow(3, channel_map=np.array([13, 0], np.intp), scale=[2.0, 0.5])
    f = np.arange(N_CHANNELS, dtype=np.float32)
    w.push(f)
    out = w.view()
    np.testing.assert_array_equal(out, np.tile([26.0, 0.0], (3, 1)))
    assert w.view() is out  # one preallocated array


def test_history_since_continues_where_it_left_off_and_wraps():
    h = FrameHistory(5)
    assert h.newest()[1] == 0.0 and h.since(-np.inf) == ([], -np.inf)
    for i in range(8):
        h.add(frame(i), i * 0.04)
    rows, t = h.since(-np.inf)
    assert [r[0] for r in rows] == [3, 4, 5, 6, 7] and t == pytest.approx(0.28)
    more, t2 = h.since(0.2)
    assert [r[0] for r in more] == [6, 7] and t2 == t
    newest, tn = h.newest()
    assert newest[0] == 7 and tn == pytest.approx(0.28)
    newest[0] = -1                      # a copy: the console cannot change the history
    assert h.newest()[0][0] == 7
