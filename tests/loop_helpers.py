"""Shared by the loop/run/demo tests: a small real bundle and fake models with known answers."""
from __future__ import annotations

import hashlib

import numpy as np

from lanthorn.device.engine.bundle import InputSpec
from lanthorn.device.piece.frames import CHANNELS, LABELS


def build_zoo_bundle(directory, name: str = "zoo-cnn1d", seed: int = 0):
    """A real int8 bundle with the default piece's input and labels: the zoo's 1-D CNN
    quantized by onnxruntime and imported (random weights: it runs, it does not know)."""
    from lanthorn.device.engine.bundle import write_bundle
    from lanthorn.quantize.qdq_import import bundle_from_qdq
    from lanthorn.quantize.tiny_models import build
    _, qdq = build("cnn1d_14x50", directory, seed=seed)
    bundle = bundle_from_qdq(qdq, labels=LABELS,
                             input_spec={"shape": [50, 14], "channels": list(CHANNELS),
                                         "rate_hz": 25.0, "window": 50},
                             card={"name": name})
    path = directory / f"{name}.lanthorn"
    write_bundle(bundle, path)
    return path


class FakeModel:
    """The runtime Model's interface with a scripted answer: ``answer(window) -> probs``."""

    backend = "fake"

    def __init__(self, answer=None, labels=LABELS, channels=CHANNELS, window=50, rate_hz=25.0,
                 name="fake"):
        self.labels = tuple(labels)
        self.input_spec = InputSpec((window, len(channels)), channels=tuple(channels),
                                    rate_hz=rate_hz, window=window)
        self.card = {"name": name}
        self.sha256 = hashlib.sha256(name.encode()).hexdigest()
        self.answer = answer or (lambda x: np.eye(len(self.labels), dtype=np.float32)[0])
        self.calls = 0
        self.seen = None

    def __call__(self, x):
        self.calls += 1
        self.seen = x
        return self.answer(x)


def oracle_model(body, **kw):
    """A model that always knows: it answers the simulated visitor's honest label (so the
    loop's behaviour can be tested without a trained network)."""
    eye = np.eye(len(LABELS), dtype=np.float32) * 0.9 + 0.1 / len(LABELS)
    return FakeModel(lambda x: eye[LABELS.index(body.gesture_at())], name="oracle", **kw)


def quiet_body(n_pixels: int = 24):
    """A Body whose parts allocate nothing per call (a reading made once; the LEDs are a
    real :class:`LedStrip` whose ``show`` limits into its own buffers, with a ``_write`` that
    sends nowhere), so a test sees what the loop and the real show path allocate."""
    from lanthorn.hardware.interfaces import Body, DistanceSensor, LedStrip, LightSensor, TouchReading, TouchSensor

    class Touch(TouchSensor):
        name = "touch"
        reading = TouchReading(np.full(12, 500, np.uint16), np.full(12, 530, np.uint16), 0)

        def read(self):
            return self.reading

    class Ranger(DistanceSensor):
        name = "distance"

        def read_mm(self):
            return 400.0

    class Light(LightSensor):
        name = "light"

        def read_lux(self):
            return 120.0

    class Leds(LedStrip):
        name = "leds"

        def _write(self, frame):
            pass

    return Body(touch=Touch(), distance=Ranger(), light=Light(), leds=Leds(n_pixels))
