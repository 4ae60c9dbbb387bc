"""Inference: what a bound model sizes, what fits this object, and a model that keeps failing."""
from __future__ import annotations

import numpy as np
import pytest
from loop_helpers import FakeModel

from lanthorn.device.piece.behaviour import MoodEngine
from lanthorn.device.piece.frames import N_CHANNELS
from lanthorn.device.piece.inference import Inference, ModelMismatch, check_model_fits, refuse_unfit
from lanthorn.device.piece.loop_stats import Journal, Samples
from lanthorn.device.piece.params import ParamStore
from lanthorn.hardware.sim import SimClock

P = ParamStore().snapshot()


def inference():
    said = []
    inf = Inference(MoodEngine(()), MoodEngine(()).temperament, said.append, 4.0, 3)
    inf.infer_ms = Samples()
    return inf, said


def test_binding_sizes_the_window_and_history_by_the_model():
    inf, _ = inference()
    inf.bind(FakeModel(window=20, rate_hz=10.0), "given", None)
    assert inf.window.window == 20 and inf.rate == 10.0
    assert inf.history.frames.shape == (40, N_CHANNELS) and inf.name == "fake"
    inf.bind(None, None, None)                      # no model: the defaults, idle
    assert inf.model is None and inf.window.window == 50 and inf.labels == ()


def test_a_model_this_object_cannot_feed_is_not_bound():
    inf, said = inference()
    inf.bind(FakeModel(channels=("pad0", "humidity")), "given", None)
    assert inf.model is None and "humidity" in said[0]


def test_a_model_failing_max_errors_times_in_a_row_must_be_dropped():
    def broken(x):
        raise RuntimeError("arena overflow")
    inf, said = inference()
    inf.bind(FakeModel(broken), "given", None)
    inf.push(np.zeros(N_CHANNELS, np.float32), 0.0)
    journal = Journal(SimClock())
    assert [inf.run(0.0, P, journal) for _ in range(3)] == [False, False, True]
    assert "dropping the model" in said[-1]


def test_a_run_updates_probabilities_and_the_mood():
    eye = np.eye(9, dtype=np.float32)
    inf, _ = inference()
    inf.bind(FakeModel(lambda x: eye[4]), "given", None)   # stroke_cw, every time
    inf.push(np.zeros(N_CHANNELS, np.float32), 0.0)
    journal = Journal(SimClock())
    for i in range(100):
        inf.run(i * 0.04, P, journal)
    assert inf.inferences == 100 and inf.probs[4] == 1.0 and inf.mood.mood == "delighted"
    assert ("gesture", "stroke_cw") in [(e.kind, e.text) for e in journal.timeline]


def test_check_model_fits_runs_it_and_refuses_what_cannot_run_here():
    assert check_model_fits(FakeModel()) == 9
    with pytest.raises(ModelMismatch, match="9 labels but 3 outputs"):
        check_model_fits(FakeModel(lambda x: np.zeros(3, np.float32)))
    with pytest.raises(ModelMismatch, match="not finite"):
        check_model_fits(FakeModel(lambda x: np.full(9, np.nan, np.float32)))

    def explode(x):
        raise MemoryError("Unable to allocate 6.11 TiB")
    with pytest.raises(ModelMismatch, match="MemoryError"):
        refuse_unfit(FakeModel(explode))
