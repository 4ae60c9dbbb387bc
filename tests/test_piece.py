"""The Piece: the façade the console talks to. It implements the declared ConsoleApp
protocol, loads a push once, and rolls either slot back through the data directory."""
from __future__ import annotations

import inspect
import shutil

import numpy as np
import pytest
from loop_helpers import FakeModel, quiet_body

from lanthorn.device.console.console_app import ConsoleApp
from lanthorn.device.piece.piece import Piece
from lanthorn.device.storage.storage import SHIPPED_MODEL, SHIPPED_VOICE, DataDir
from lanthorn.errors import UserError
from lanthorn.hardware.sim import SimClock


def piece(**kw):
    kw.setdefault("model", FakeModel())
    return Piece(quiet_body(), clock=SimClock(), charge_compute=False, oled_thread=False,
                 voice_thread=False, **kw)


def test_the_piece_is_a_console_app_with_the_declared_signatures():
    p = piece()
    assert isinstance(p, ConsoleApp)
    for name, member in vars(ConsoleApp).items():
        if name.startswith("_") or not callable(member):
            continue
        declared = inspect.signature(member)
        actual = inspect.signature(getattr(Piece, name))
        assert list(actual.parameters) == list(declared.parameters), name
        for pname, param in declared.parameters.items():
            assert actual.parameters[pname].default == param.default, (name, pname)
    for attr in ("params", "storage"):
        assert hasattr(p, attr)


def test_a_push_is_loaded_once(tmp_path, monkeypatch):
    from lanthorn.device.engine import runtime
    calls = []
    real = runtime.load
    monkeypatch.setattr(runtime, "load", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    data = DataDir(tmp_path / "data", shipped_model=None, shipped_voice=None)
    p = piece(storage=data, model=None, voice=None)
    src = tmp_path / "push.lanthorn"
    shutil.copy(SHIPPED_MODEL, src)
    info = p.install_model(str(src))
    assert info["name"] == "temperament" and len(calls) == 1
    calls.clear()
    shutil.copy(SHIPPED_VOICE, src)
    info = p.install_model(str(src))       # a voice bundle goes to the voice slot, loaded once
    assert info["voice"]["source"] == "current" and len(calls) == 1
    assert data.slots["voice"].current_path.read_bytes() == SHIPPED_VOICE.read_bytes()


def test_rollback_model_goes_back_to_previous_then_shipped(tmp_path):
    data = DataDir(tmp_path / "data")
    p = piece(storage=data, model=None, voice=None)
    p.start()
    with pytest.raises(UserError, match="no previous model"):
        p.rollback_model()                  # nothing pushed yet: nothing to go back to
    from loop_helpers import build_zoo_bundle
    zoo = build_zoo_bundle(tmp_path, name="zoo-a")
    p.install_model(str(zoo))
    p.step()
    assert p.status()["model"] == "zoo-a"
    info = p.rollback_model("model")        # previous is none: the shipped default
    assert info["name"] == "temperament" and info["source"] == "current"
    p.step()
    assert p.status()["model"] == "temperament" and p.model_source == "current"
    assert data.previous_path.read_bytes() == zoo.read_bytes()
    info = p.rollback_model()               # and back again: previous is zoo-a
    p.step()
    assert info["name"] == "zoo-a" and p.status()["model"] == "zoo-a"


def test_rollback_of_the_voice_slot(tmp_path):
    data = DataDir(tmp_path / "data")
    p = piece(storage=data, model=None)
    assert p.model_info()["voice"]["source"] == "shipped"
    shutil.copy(SHIPPED_VOICE, tmp_path / "v.lanthorn")
    p.install_model(str(tmp_path / "v.lanthorn"))
    info = p.rollback_model("voice")
    assert info["voice"]["name"] and info["voice"]["source"] == "current"
    assert any("rolled back" in m for m in p.messages)


def test_rollback_refuses_unknown_slots_and_a_piece_without_storage():
    p = piece()
    with pytest.raises(UserError, match="without a data directory"):
        p.rollback_model("model")
    with pytest.raises(UserError, match="say 'model' or 'voice'"):
        p.rollback_model("weights")


def test_a_rollback_target_that_does_not_fit_is_refused_and_the_model_stays(tmp_path):
    from lanthorn.device.engine.bundle import write_bundle
    from lanthorn.quantize.qdq_import import bundle_from_qdq
    from lanthorn.quantize.tiny_models import build
    _, q = build("mlp_25k", tmp_path)
    data = DataDir(tmp_path / "data", shipped_model=None)
    write_bundle(bundle_from_qdq(q), data.previous_path)   # a model for other inputs
    shutil.copy(SHIPPED_MODEL, data.current_path)
    p = piece(storage=data, model=...)
    p.start()
    with pytest.raises(UserError, match="keeping the old one"):
        p.rollback_model()
    p.step()
    assert p.status()["model"] == "temperament" and data.previous_path.exists()


def test_latest_and_frames_since_before_the_first_frame():
    p = piece()
    assert p.frames_since(-np.inf) == ([], -np.inf)
    latest = p.latest()
    assert latest["t"] == 0.0 and set(latest["values"]) and latest["mood"] == "calm"
