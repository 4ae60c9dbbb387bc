"""Test doubles for the console/storage tests: a fake bundle format, a fake ConsoleApp and a
clock the test moves.

The fake bundle ("FAKEBNDL" + sha256(body) + body) lets storage and push be tested before
and independently of the real int8 bundle format; the integration tests use real bundles.
FakeApp implements :class:`lanthorn.device.console.console_app.ConsoleApp` (a test checks it, so the
fake cannot drift from the contract the real piece implements).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np

from lanthorn.device.piece.frames import CHANNELS
from lanthorn.device.piece.params import ParamStore
from lanthorn.device.storage.storage import DataDir
from lanthorn.errors import UserError

MAGIC = b"FAKEBNDL"


def make_fake_bundle(name: str, size: int = 0) -> bytes:
    period = bytes((i * 7) % 256 for i in range(256))
    body = json.dumps({"name": name}).encode() + b"\n" + (period * (size // 256 + 1))[:size]
    return MAGIC + hashlib.sha256(body).digest() + body


class FakeModel:
    def __init__(self, data: bytes):
        self.name = json.loads(data[40:].split(b"\n", 1)[0])["name"]
        self.sha256 = hashlib.sha256(data).hexdigest()


def fake_loader(path: str) -> FakeModel:
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC or hashlib.sha256(data[40:]).digest() != data[8:40]:
        raise UserError(f"{path}: not a valid bundle (checksum mismatch)")
    return FakeModel(data)


def model_name(model):
    """A fake model's name, or a real bundle's card name."""
    if model is None:
        return None
    return getattr(model, "name", None) or (getattr(model, "card", None) or {}).get("name")


class FakeClock:
    """Console time that moves only when the test says (shared by a ConsoleServer and a
    FakeApp), so lockouts, watch rates and takes need no real waiting."""

    def __init__(self, start: float = 1000.0):
        self.t = float(start)

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += float(dt)
        return self.t


class FakeApp:
    """The ConsoleApp protocol with a fake loop: frames (one value per frames.CHANNELS
    entry) advance with ``clock`` (wall time unless a test gives a FakeClock) at 25 Hz."""

    def __init__(self, data_dir, loader=fake_loader, clock=time.monotonic):
        self.storage = DataDir(data_dir, loader=loader, shipped_model=None)
        self.params = ParamStore()
        self.params.load(self.storage)
        self.model, self.source, self.messages = self.storage.load_model()
        self.clock = clock
        self.t0 = clock()
        self.lock = threading.Lock()

    def status(self) -> dict:
        return {"fps": 60.0, "frame_ms_p50": 1.2, "frame_ms_p99": 3.4, "infer_ms": 0.8,
                "model": model_name(self.model), "backend": "fake",
                "sensors": {"touch": "ok", "distance": "failed: no ack"},
                "uptime_s": round(self.clock() - self.t0, 2), "mood": "calm",
                "messages": self.messages}

    def model_info(self) -> dict:
        if self.model is None:
            return {"name": None, "messages": self.messages}
        return {"name": model_name(self.model), "sha256": self.model.sha256, "labels": ["nobody", "tap"],
                "input": {"channels": ["pad0", "light"], "rate_hz": 25.0, "window": 50},
                "backend": "fake", "source": self.source}

    def install_model(self, path: str) -> dict:
        model = self.storage.install_model(path)
        with self.lock:
            self.model, self.source = model, "current"
        return self.model_info()

    def rollback_model(self, slot: str = "model") -> dict:
        # as the piece does: previous, else the shipped default, through the DataDir
        return self.install_model(str(self.storage.rollback_target(slot)))

    def param_note(self, name: str, value) -> str | None:
        return None   # the fake body has no hardware limits to report

    def latest(self) -> dict:
        t = self.clock() - self.t0
        return {"t": round(t, 3), "values": {"pad0": round(abs(np.sin(t)), 3), "light": 0.4},
                "probs": {"nobody": 0.9, "tap": 0.1}, "mood": "calm"}

    def frames_since(self, t: float):
        now = self.clock()
        start = max(t, now - 5.0)
        n = int(round((now - start) * 25, 6))
        frames = [np.full(len(CHANNELS), i, np.float32) for i in range(n)]
        return frames, start + n / 25.0
