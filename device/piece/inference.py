"""Inference: the bound model, run on the newest window, and what its answer does to the mood.

Binding a model (:meth:`Inference.bind`) checks that this object can feed it
(:func:`model_channel_map`: its rate, window, channels and input scale) and sizes every
buffer by it: the input window, the history the console reads, the probabilities. A model
that does not fit runs nobody: the idle animation runs instead and the console says why.
:func:`check_model_fits` is the full pre-flight of a candidate (it also runs it once on a
neutral window, which warms it up); :class:`~lanthorn.device.piece.model_slots.ModelSlots`
uses it for every model it loads, so the fall-back chain only ever binds a model that runs.

:meth:`Inference.run` runs the model at the model's rate and lets the
:class:`~lanthorn.device.piece.behaviour.MoodEngine` update the mood. A model that raises while
running is counted; after ``max_errors`` in a row it must be dropped (the caller falls back).
"""
from __future__ import annotations

import math
import time

import numpy as np

from lanthorn.device.piece import frames as fr
from lanthorn.device.piece.behaviour import DEFAULT_TEMPERAMENT, temperament_for, with_gesture_moods
from lanthorn.device.piece.model_frames import FrameHistory, FrameWindow
from lanthorn.errors import UserError

MIN_MODEL_HZ = 0.5  # a model fed slower than this would hardly ever run
MAX_WINDOW = 4096  # frames in a model's input window


class ModelMismatch(UserError):
    """A model whose input does not fit this object's sensor frames."""


def model_channel_map(model, channels: tuple[str, ...] = fr.CHANNELS) -> np.ndarray | None:
    """Indices into the body's frame (``channels``: its layout's names, the default piece's
    when not given) for each of the model's input channels, or None when the model reads
    the frames as they are. Raises ModelMismatch when it cannot be fed."""
    spec = model.input_spec
    shape = tuple(spec.shape)
    rate = spec.rate_hz
    if rate is not None:
        # whatever a bundle's header says: a rate this loop cannot feed (negative, text,
        # 1e-6 Hz that never runs, 1e11 Hz that allocates terabytes) is refused here
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or \
                not MIN_MODEL_HZ <= float(rate) <= fr.SAMPLE_HZ:
            raise ModelMismatch(f"the model's input rate {rate!r} Hz is not between "
                                f"{MIN_MODEL_HZ:g} and {fr.SAMPLE_HZ:g} Hz (this object "
                                "samples its sensors at 100 Hz)")
    if len(shape) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and
                                  0 < n <= MAX_WINDOW for n in shape):
        raise ModelMismatch(f"the model reads an input of shape {shape!r}; this object feeds "
                            f"windows of (1..{MAX_WINDOW} frames, channels)")
    if spec.dtype != "float32":
        raise ModelMismatch(f"the model reads {spec.dtype} of shape {shape}; this object feeds "
                            f"sensor windows of shape (window, channels)")
    return _channels_of(spec, shape, tuple(channels))


def _channels_of(spec, shape, body: tuple[str, ...]) -> np.ndarray | None:
    channels = tuple(spec.channels)
    has = ", ".join(body) or "no sensing channels"
    if not channels:
        if shape[1] != len(body):
            raise ModelMismatch(f"the model reads {shape[1]} unnamed channels; this object has "
                                f"{len(body)} ({has})")
        return None
    missing = [c for c in channels if c not in body]
    if missing:
        raise ModelMismatch(f"the model reads channel(s) {', '.join(missing)} this object does not "
                            f"have (it has {has})")
    if len(channels) != shape[1]:
        raise ModelMismatch(f"the model names {len(channels)} channels but reads {shape[1]}")
    if spec.scale and (len(spec.scale) != shape[1]
                       or not all(math.isfinite(v) and v > 0 for v in spec.scale)):
        raise ModelMismatch(f"the model's input scale has {len(spec.scale)} factors for "
                            f"{shape[1]} channels (or a factor that is not positive)")
    if channels == body:
        return None
    return np.array([body.index(c) for c in channels], np.intp)


def check_model_fits(model, channels: tuple[str, ...] = fr.CHANNELS) -> int:
    """Whether a model can run on *this object* (not whether it is well formed, which the
    bundle reader checks, nor whether it matches onnxruntime, which the quantizer's release
    check does): its input fits the sensor frames, its labels match its output, it runs to
    finite numbers on a neutral window (which also warms it up). Returns the number of
    outputs; raises ModelMismatch. ``channels``: the body's frame (its layout's names)."""
    model_channel_map(model, channels)
    labels = model.labels
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
        raise ModelMismatch("the model's labels are not a list of names")
    card = getattr(model, "card", None)
    if card is not None and not isinstance(card, dict):
        raise ModelMismatch(f"the model card is a {type(card).__name__}, not a table of fields")
    temperament_for(card, DEFAULT_TEMPERAMENT)
    out = np.asarray(model(np.zeros(model.input_spec.shape, np.float32))).reshape(-1)
    if labels and out.shape[0] != len(labels):
        raise ModelMismatch(f"the model has {len(labels)} labels but {out.shape[0]} outputs")
    if not np.all(np.isfinite(out.astype(np.float64))):
        raise ModelMismatch("the model's outputs are not finite numbers")
    return int(out.shape[0])


def refuse_unfit(model, channels: tuple[str, ...] = fr.CHANNELS) -> None:
    """:func:`check_model_fits` for the fall-back chain: any failure (not only a mismatch,
    whatever a poisoned header makes the model do) refuses it, as a ModelMismatch."""
    try:
        check_model_fits(model, channels)
    except ModelMismatch:
        raise
    except Exception as exc:
        raise ModelMismatch(f"{type(exc).__name__}: {exc}") from None


def model_name(model) -> str | None:
    """The name a person knows a model by: its card's, else its hash's first digits."""
    if model is None:
        return None
    card = getattr(model, "card", None) or {}
    name = card.get("name") if isinstance(card, dict) else None
    return str(name or f"model-{str(getattr(model, 'sha256', '') or '')[:8]}")


class Inference:
    """The running model and its buffers. ``mood``: the piece's MoodEngine; ``say``: the
    console's messages; ``history_s``: how much the console can look back; ``channels``:
    the body's frame (its layout's names)."""

    def __init__(self, mood, temperament, say, history_s: float, max_errors: int,
                 channels: tuple[str, ...] = fr.CHANNELS):
        self.mood, self.temperament, self.say = mood, temperament, say
        self.channels = tuple(channels)
        self.unfit: str | None = None  # why the last model offered could not be fed, if so
        self.history_s, self.max_errors = history_s, max_errors
        self.model = None
        self.source: str | None = None
        self.name: str | None = None
        self.errors = 0
        self.infer_ms = None  # a loop_stats.Samples, set by the piece
        self.inferences = 0
        self.moods_applied = None
        self._card_temperament = temperament

    def bind(self, model, source: str | None, gesture_moods) -> None:
        """Make ``model`` the running one: (re)allocate every buffer sized by it. A model
        this object cannot feed is not used (idle animation); anything else raises."""
        channel_map = None
        if model is not None:
            try:
                channel_map = model_channel_map(model, self.channels)
            except ModelMismatch as exc:
                self.say(f"model not used: {exc}; running the idle animation")
                self.unfit = str(exc)
                model, source = None, None
            else:
                self.unfit = None
        spec = model.input_spec if model is not None else None
        self.rate = float((spec.rate_hz if spec is not None else None) or fr.DEFAULT_RATE_HZ)
        window = FrameWindow(int(spec.shape[0]) if spec is not None else fr.DEFAULT_WINDOW,
                             channel_map, spec.scale if spec is not None else None,
                             n_channels=len(self.channels))
        labels = tuple(model.labels) if model is not None else ()
        probs = np.zeros(len(labels), np.float32)
        # the model's card may say which moods its own gestures evoke
        temperament, warnings = temperament_for(getattr(model, "card", None), self.temperament)
        for w in warnings:
            self.say(w)
        self.window, self.labels, self.probs = window, labels, probs
        self._card_temperament = temperament
        self.set_gesture_moods(gesture_moods, force=True)
        self.history = FrameHistory(int(self.history_s * self.rate), len(self.channels))
        self.model, self.source, self.name = model, source, model_name(model)
        self.errors = 0

    def set_gesture_moods(self, moods, force: bool = False) -> None:
        """The artist's ``gesture_moods`` parameter on top of the card's temperament."""
        if force or moods != self.moods_applied:
            self.moods_applied = moods
            self.mood.temperament = with_gesture_moods(self._card_temperament, moods)
            self.mood.set_labels(self.labels)

    def push(self, frame: np.ndarray, t: float) -> None:
        """A new model frame at loop time ``t``: into the window and the history."""
        self.history.add(self.window.push(frame), t)

    def run(self, t: float, p: dict, journal) -> bool:
        """Run the model on the newest window and update the mood (the ``journal`` hears of
        recognised gestures and mood changes). Returns True when the model failed too often and must be dropped."""
        model = self.model
        if model is None or self.window.count < 1:
            return False
        t0 = time.perf_counter()
        try:
            out = model(self.window.view())
        except Exception as exc:  # a model that breaks while running must not stop the piece
            self.errors += 1
            self.say(f"the model failed while running: {exc}")
            if self.errors >= self.max_errors:
                self.say("dropping the model after repeated failures; falling back")
                journal.fault("model", "dropped", f"{self.name}: {exc}")
                return True
            return False
        self.infer_ms.add((time.perf_counter() - t0) * 1e3)
        self.inferences += 1
        self.errors = 0
        np.copyto(self.probs, np.asarray(out).reshape(-1)[:self.probs.shape[0]], casting="unsafe")
        self._observe(t, p, journal)
        return False

    def _observe(self, t: float, p: dict, journal) -> None:
        mood = self.mood
        before, was = mood.mood_index, mood.gesture
        event = mood.observe(self.probs, t, p["confidence"], p["mood_decay_s"], p["hysteresis"],
                             p["gesture_smoothing"], p["gesture_hold_s"])
        if mood.gesture != was:
            journal.gesture_log.append((t, mood.gesture))
        if event is not None:
            journal.mark("gesture", event.label, event.p)
        if mood.mood_index != before:
            journal.mark("mood", mood.mood)
