"""The device loop: the piece's heartbeat, from sensors through the model to light and words.

One thread runs three fixed-rate tasks on one clock:

* **sample** (about 100 Hz): read the pads, the distance and the light, encode one frame
  (:func:`lanthorn.device.frames.encode_into`) and add it to an accumulator; at the model's
  input rate the accumulated samples are averaged into one *model frame* and written into a
  ring buffer laid out twice over, so the newest window is always one contiguous view;
* **infer** (the model's rate, 25 Hz for the default piece): run the model on that window
  and let the :class:`~lanthorn.device.behaviour.MoodEngine` update the mood;
* **render** (60 fps): draw the LED frame (the touch glow comes from the newest *sample*,
  so a touch lights the ring on the next LED frame, not the next inference) and show it.

The OLED is slow (an I2C frame takes ~25 ms), so it has its own thread
(:class:`OledWorker`) fed with the latest text; the hot path never waits for it. Nothing in
the hot path allocates arrays: every buffer is made when a model is (re)bound.

Time comes from an injectable clock. With a real clock the loop sleeps between tasks; with
the simulator's :class:`~lanthorn.hardware.sim.SimClock` it jumps over the idle time and, with
``charge_compute=True``, advances the clock by the measured compute time of every task, so a
20 s demo runs in a few seconds yet the frame times and touch-to-light latency it reports
are those of this machine. With ``charge_compute=False`` runs are exactly reproducible.

Every part failure degrades, never stops, the piece: a :class:`PartError` marks the part
failed (``status()["sensors"]``), its channel is imputed (no touch, nothing in range, the
last good light level), and the part is retried every ``RETRY_S``. A model that does not
load was already set aside by :class:`~lanthorn.device.storage.DataDir`; a model that fails
while running is dropped, and with no model the built-in idle animation runs.

:class:`DeviceLoop` implements the console's ``ConsoleApp`` protocol (``status``,
``model_info``, ``install_model``, ``latest``, ``frames_since``); parameter changes made on
the console thread take effect on the loop's next frame (``ParamStore.version``).
"""
from __future__ import annotations

import collections
import contextlib
import gc
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lanthorn.device import frames as fr
from lanthorn.device.behaviour import (DEFAULT_TEMPERAMENT, LightRenderer, MoodEngine, PhraseBank,
                                       Temperament, light_level, quiet_now, render_oled,
                                       temperament_for, touch_hold, with_gesture_moods)
from lanthorn.device.params import ParamStore
from lanthorn.device.voice import Speaker, VoiceWorker, is_voice
from lanthorn.errors import UserError
from lanthorn.hardware.interfaces import PartError

SENSOR_ROLES = ("touch", "distance", "light")
ROLES = SENSOR_ROLES + ("leds", "display")
NEUTRAL_LUX = 150.0  # a lit gallery, used until the light sensor has answered once
MIN_MODEL_HZ = 0.5  # a model fed slower than this would hardly ever run
MAX_WINDOW = 4096  # frames in a model's input window
#: this many all-zero touch scans in a row (raw and baseline) mean a controller that lost
#: its configuration (a replug or brown-out puts an MPR121 back in stop mode): re-open it
ZERO_SCANS = 10


class ModelMismatch(UserError):
    """A model whose input does not fit this object's sensor frames."""


def model_channel_map(model) -> np.ndarray | None:
    """Indices into :data:`frames.CHANNELS` for each of the model's input channels, or None
    when the model reads the frames as they are. Raises ModelMismatch when it cannot be fed."""
    spec = model.input_spec
    shape = tuple(spec.shape)
    rate = spec.rate_hz
    if rate is not None:
        # whatever a bundle's header says: a rate this loop cannot feed (negative, text,
        # 1e-6 Hz that never runs, 1e11 Hz that allocates terabytes) is refused here
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or \
                not MIN_MODEL_HZ <= float(rate) <= DeviceLoop.SENSOR_HZ:
            raise ModelMismatch(f"the model's input rate {rate!r} Hz is not between "
                                f"{MIN_MODEL_HZ:g} and {DeviceLoop.SENSOR_HZ:g} Hz (this object "
                                "samples its sensors at 100 Hz)")
    if len(shape) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and
                                  0 < n <= MAX_WINDOW for n in shape):
        raise ModelMismatch(f"the model reads an input of shape {shape!r}; this object feeds "
                            f"windows of (1..{MAX_WINDOW} frames, channels)")
    if len(shape) != 2 or spec.dtype != "float32":
        raise ModelMismatch(f"the model reads {spec.dtype} of shape {shape}; this object feeds "
                            f"sensor windows of shape (window, channels)")
    channels = tuple(spec.channels)
    if not channels:
        if shape[1] != fr.N_CHANNELS:
            raise ModelMismatch(f"the model reads {shape[1]} unnamed channels; this object has "
                                f"{fr.N_CHANNELS} ({', '.join(fr.CHANNELS)})")
        return None
    missing = [c for c in channels if c not in fr.CHANNELS]
    if missing:
        raise ModelMismatch(f"the model reads channel(s) {', '.join(missing)} this object does not "
                            f"have (it has {', '.join(fr.CHANNELS)})")
    if len(channels) != shape[1]:
        raise ModelMismatch(f"the model names {len(channels)} channels but reads {shape[1]}")
    if spec.scale and (len(spec.scale) != shape[1]
                       or not all(math.isfinite(v) and v > 0 for v in spec.scale)):
        raise ModelMismatch(f"the model's input scale has {len(spec.scale)} factors for "
                            f"{shape[1]} channels (or a factor that is not positive)")
    if channels == fr.CHANNELS:
        return None
    return np.array([fr.CHANNELS.index(c) for c in channels], np.intp)


def check_model(model) -> int:
    """Verify a model can run on this object (input fits, labels match the output); returns
    the number of outputs. Runs it once on a neutral window, which also warms it up."""
    model_channel_map(model)
    labels = model.labels
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
        raise ModelMismatch("the model's labels are not a list of names")
    card = getattr(model, "card", None)
    if card is not None and not isinstance(card, dict):
        raise ModelMismatch(f"the model card is a {type(card).__name__}, not a table of fields")
    _, warnings = temperament_for(getattr(model, "card", None), DEFAULT_TEMPERAMENT)
    out = np.asarray(model(np.zeros(model.input_spec.shape, np.float32))).reshape(-1)
    if labels and out.shape[0] != len(labels):
        raise ModelMismatch(f"the model has {len(labels)} labels but {out.shape[0]} outputs")
    if not np.all(np.isfinite(out.astype(np.float64))):
        raise ModelMismatch("the model's outputs are not finite numbers")
    return int(out.shape[0])


def _checked_model(model) -> None:
    """check_model for the fall-back chain: any failure (not only a mismatch) refuses it."""
    try:
        check_model(model)
    except ModelMismatch:
        raise
    except Exception as exc:
        raise ModelMismatch(f"{type(exc).__name__}: {exc}") from None


def _number(role: str, value, allow_none: bool = False) -> float | None:
    """A driver's reading as a finite float, or PartError: a driver that returns None, a
    string or an array must degrade its part, not stop the loop."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PartError(role, f"the driver returned {type(value).__name__}, not a number")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise PartError(role, f"the driver returned an impossible value {value!r}")
    return value


class Samples:
    """A fixed-size ring of the newest float measurements (milliseconds), for p50/p99."""

    def __init__(self, n: int = 1024):
        self.buf = np.zeros(n, np.float64)
        self.n = 0

    def add(self, value: float) -> None:
        self.buf[self.n % self.buf.shape[0]] = value
        self.n += 1

    def values(self) -> np.ndarray:
        return self.buf[:min(self.n, self.buf.shape[0])].copy()

    def percentile(self, q: float) -> float | None:
        v = self.values()
        return round(float(np.percentile(v, q)), 3) if v.size else None

    def summary(self) -> dict:
        v = self.values()
        if not v.size:
            return {"n": 0}
        return {"n": int(self.n), "p50": round(float(np.percentile(v, 50)), 3),
                "p99": round(float(np.percentile(v, 99)), 3), "max": round(float(v.max()), 3),
                "mean": round(float(v.mean()), 3)}


@dataclass
class TimelineEntry:
    """Something worth telling a person: a recognised gesture, a mood change, a phrase
    shown, a part failing or recovering, a model change."""

    t: float
    kind: str  # "gesture" | "mood" | "phrase" | "part" | "model"
    text: str
    p: float | None = None
    by: str | None = None  # a phrase's author: "voice" (generated) or "bank"

    def to_json(self) -> dict:
        d = {"t": round(self.t, 3), "kind": self.kind, "text": self.text}
        if self.p is not None:
            d["p"] = round(self.p, 3)
        if self.by is not None:
            d["by"] = self.by
        return d


class OledWorker:
    """Draws the display off the hot path: ``submit`` only stores the newest request; a
    daemon thread renders it (PIL) and sends it (an I2C frame takes ~25 ms). A display that
    fails is reported through ``on_error`` and retried with the next request after
    ``retry_s``."""

    def __init__(self, display, on_error: Callable[[str], None], on_ok: Callable[[], None],
                 threaded: bool = True, retry_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.display = display
        self.clock = clock  # the loop's clock, so retries follow simulated time too
        self.on_error, self.on_ok = on_error, on_ok
        self.retry_s = retry_s
        self._cond = threading.Condition()
        self._pending = None
        self._shown = None
        self._failed_at: float | None = None
        self._stop = False
        self._busy = False  # a request is being drawn right now
        self._contrast: int | None = None  # last contrast sent
        self.frames = 0
        self.threaded = threaded
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="lanthorn-oled", daemon=True)
            self._thread.start()

    def submit(self, text: str, mood: str, footer: str, contrast: int, enabled: bool) -> None:
        request = (text, mood, footer, contrast, enabled) if enabled else ("", "", "", contrast, False)
        if request == self._shown and self._pending is None:
            return
        with self._cond:
            self._pending = request
            self._cond.notify()
        if not self.threaded:
            self._draw_pending()

    def flush(self, timeout: float = 2.0) -> None:
        """Wait until the newest request is on the display (the demo's GIF frames)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._pending is not None or self._busy) and self._failed_at is None \
                    and time.monotonic() < deadline:
                self._cond.wait(0.01)

    def _draw_pending(self) -> None:
        with self._cond:
            request, self._pending = self._pending, None
            self._busy = request is not None
        if request is None:
            return
        try:
            if self._failed_at is not None and self.clock() - self._failed_at < self.retry_s:
                with self._cond:  # keep it for the retry
                    self._pending = self._pending or request
                return
            text, mood, footer, contrast, _ = request
            image = render_oled(text, mood, self.display.width, self.display.height, footer)
            if contrast != self._contrast:
                self._set_contrast(contrast)
            self.display.show(image)
            self._shown = request
            self.frames += 1
            if self._failed_at is not None:
                self._failed_at = None
                self.on_ok()
        except Exception as exc:  # PartError, or a driver bug: degrade, never stop
            self._failed_at = self.clock()
            self.on_error(str(exc) if isinstance(exc, PartError) else f"{type(exc).__name__}: {exc}")
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _set_contrast(self, level: int) -> None:
        """Through the display's own ``contrast`` if it has one, else its luma device
        (the SSD1306 and simulated displays both sit on luma)."""
        target = self.display if callable(getattr(self.display, "contrast", None)) else \
            getattr(self.display, "device", None) or getattr(self.display, "_device", None)
        set_contrast = getattr(target, "contrast", None)
        if callable(set_contrast):
            try:
                set_contrast(int(level))
            except (OSError, ValueError):
                pass  # contrast is cosmetic; the next frame reports a real failure
        self._contrast = level

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
            self._draw_pending()
            if self._failed_at is not None:  # wait for the retry without spinning
                time.sleep(min(0.25, self.retry_s))

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


class DeviceLoop:
    """The running piece. See the module docstring.

    ``body``: a :class:`~lanthorn.hardware.interfaces.Body` (real or simulated).
    ``params``: the live :class:`ParamStore` (loaded from ``storage`` when given).
    ``storage``: a :class:`~lanthorn.device.storage.DataDir` or None (then ``model`` is used
    as given and ``install_model`` swaps in memory only).
    ``model``: a loaded model, None for "no model", or left out to load it from storage.
    ``clock``: zero-argument callable in seconds; a SimClock (has ``set``/``advance``) makes
    the loop skip idle time instead of sleeping.
    """

    SENSOR_HZ = fr.SAMPLE_HZ
    # The ranger and the light sensor are slow by nature (a VL53L0X measurement takes its
    # ~33 ms timing budget, a BH1750 high-resolution one 120 ms): read them at their own
    # pace and hold the last value in between, instead of asking 100 times a second.
    DISTANCE_HZ = fr.DISTANCE_HZ   # (why slower: see frames.py, shared with data synth)
    LIGHT_HZ = fr.LIGHT_HZ
    LED_FPS = 60.0
    RETRY_S = 5.0
    MAX_MODEL_ERRORS = 3
    HISTORY_S = 120.0
    WATCHDOG_S = 2.0
    GC_THRESHOLD = 700  # allocations between idle-time collections (Python's own default)
    FULL_GC_S = 60.0

    def __init__(self, body, params: ParamStore | None = None, storage=None, model=...,
                 *, clock: Callable[[], float] | None = None, charge_compute: bool = True,
                 sensor_hz: float = SENSOR_HZ, led_fps: float = LED_FPS,
                 temperament: Temperament = DEFAULT_TEMPERAMENT, oled_thread: bool = True,
                 minute_of_day: Callable[[], int] | None = None,
                 log: Callable[[str], None] | None = None, watchdog: Callable[[], None] | None = None,
                 seed: int = 0, voice=..., voice_thread: bool = True):
        self.body = body
        self.storage = storage
        self.params = params or ParamStore()
        self.messages: collections.deque[str] = collections.deque(maxlen=50)
        self._log = log
        if storage is not None and params is None:
            for m in self.params.load(storage):
                self._message(m)
        self.clock = clock or time.monotonic
        self.simulated = hasattr(self.clock, "advance") and hasattr(self.clock, "set")
        self.charge_compute = charge_compute and self.simulated
        self.sensor_period = 1.0 / float(sensor_hz)
        self.led_period = 1.0 / float(led_fps)
        self.temperament = temperament
        self.minute_of_day = minute_of_day or (lambda: (lambda t: t.tm_hour * 60 + t.tm_min)(time.localtime()))
        self.watchdog = watchdog
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards what the console thread reads
        self.timeline: collections.deque[TimelineEntry] = collections.deque(maxlen=2000)
        #: (t, recognised gesture or None) at every change: the flicker figures
        self.gesture_log: collections.deque[tuple] = collections.deque(maxlen=5000)

        # parts and their health
        self.health: dict[str, str] = {}
        self._retry_at: dict[str, float] = {}
        for role in ROLES:
            if getattr(body, role, None) is not None:
                self.health[role] = "ok"
            elif role in getattr(body, "open_errors", {}):
                self.health[role] = f"failed: {body.open_errors[role]}"
                self._retry_at[role] = 0.0
        self.n_pixels = body.leds.n_pixels if body.leds is not None else 24
        self.n_pads = getattr(body.touch, "n_pads", fr.N_PADS) if body.touch is not None else fr.N_PADS
        self._led_base = body.leds.brightness if body.leds is not None else 1.0
        self._led_cap = body.leds.power_cap_ma if body.leds is not None else None

        # sample buffers
        self._sample = np.zeros(fr.N_CHANNELS, np.float32)
        self._pad_delta = np.zeros(fr.N_PADS, np.float32)
        self._zero_pads = np.zeros(fr.N_PADS, np.float32)
        self._frames = fr.FramePipeline()      # the one way samples become model frames
        self._frame = np.zeros(fr.N_CHANNELS, np.float32)
        self._last_lux = NEUTRAL_LUX
        self._last_distance: float | None = None
        self.distance_period = 1.0 / self.DISTANCE_HZ
        self.light_period = 1.0 / self.LIGHT_HZ
        self._pads_now = np.zeros(fr.N_PADS, np.float32)
        self._touching = np.zeros(fr.N_PADS, bool)
        self._touch_scratch = np.zeros(fr.N_PADS, bool)
        self._touch_pending_t: float | None = None
        self._led_frame = np.zeros((self.n_pixels, 3), np.uint8)

        # behaviour
        self.renderer = LightRenderer(self.n_pixels, temperament.moods, temperament, self.n_pads, seed)
        self.phrases = PhraseBank()
        self.mood = MoodEngine((), temperament)
        self.phrase = ""
        self.quiet = False
        self._p = self.params.snapshot()
        self._p_version = -1
        self._next_quiet_check = -math.inf

        # timing
        self.frame_ms = Samples()  # wall time of each LED frame's work (what 60 fps needs)
        self.frame_cpu_ms = Samples()  # the same in this thread's CPU time (without preemption)
        self._cpu_since_show = 0.0
        self.infer_ms = Samples()
        self.latency_ms = Samples(256)
        self.sample_ms = Samples()
        self._show_times = Samples(120)
        self.frames_shown = 0
        self.inferences = 0
        self.busy_s = 0.0  # wall time spent in steps
        self.cpu_s = 0.0  # CPU time of the loop thread spent in steps
        self._busy_since_show = 0.0
        self.t_start: float | None = None
        self._next_watchdog = 0.0

        # the model (bound below; swapped only on the loop thread)
        self.model = None
        self.model_source: str | None = None
        self._wanted: tuple | None = None
        self._model_errors = 0
        self.frame_rate = fr.DEFAULT_RATE_HZ
        self.window = fr.DEFAULT_WINDOW
        if model is ...:
            if storage is not None:
                try:
                    model, source, msgs = storage.load_model(check=_checked_model)
                except Exception as exc:  # the boot path never crash-loops on stored state
                    model, source, msgs = None, None, [f"no model could be loaded: {exc}"]
                for m in msgs:
                    self._message(m)
            else:
                model, source = None, None
        else:
            source = "given" if model is not None else None
        self._bind(model, source)

        # the voice (a second model slot; generation runs on its own thread)
        self.voice_source: str | None = None
        if voice is ...:
            voice = None
            if storage is not None:
                try:
                    voice, self.voice_source, msgs = storage.load_model(slot="voice")
                except Exception as exc:  # the boot path never crash-loops on stored state
                    voice, msgs = None, [f"no voice could be loaded ({exc}); phrase banks"]
                for m in msgs:
                    self._message(m)
        elif voice is not None:
            self.voice_source = "given"
        self.voice_worker = VoiceWorker(voice, threaded=voice_thread)
        self.speaker = Speaker(self.phrases, self.voice_worker, on_phrase=self._spoke)
        self.phrase_ms = Samples(256)       # generation time of each voice phrase
        self.frame_ms_speaking = Samples()  # frame work time while a phrase was being made
        self.frame_cpu_ms_speaking = Samples()  # the same in the loop thread's CPU time
        self._speaking = False
        self._phrase_by = "bank"
        self.voice_log: collections.deque[dict] = collections.deque(maxlen=200)

        self.oled = None
        if body.display is not None:
            self.oled = OledWorker(body.display, self._display_failed, self._display_ok,
                                   threaded=oled_thread, retry_s=self.RETRY_S, clock=self.clock)

    # ------------------------------------------------------------------ model binding
    def _bind(self, model, source: str | None) -> None:
        """Make ``model`` the running one; if anything about it fails (whatever its header
        says), fall back: previous, then the shipped model, then the idle animation."""
        try:
            self._bind_now(model, source)
        except Exception as exc:
            self._message(f"model {_model_name(model)} ({source}) could not be started: "
                          f"{type(exc).__name__}: {exc}; falling back")
            self._fall_back(model, source)

    def _fall_back(self, failed, source: str | None) -> None:
        """Bind the next usable model after ``failed`` (from ``source``) failed."""
        model, new_source = None, None
        if self.storage is not None and source in ("current", "previous", "shipped"):
            path = {"current": self.storage.current_path,
                    "previous": self.storage.previous_path}.get(source)
            if path is not None and path.exists():  # not again at the next boot
                self.storage.reject(path, f"{source} model failed on this object")
            try:
                model, new_source, msgs = self.storage.load_model(
                    check=_checked_model, skip=("shipped",) if source == "shipped" else ())
            except Exception as exc:
                msgs = [f"no model could be loaded: {exc}"]
            for m in msgs:
                self._message(m)
        elif self.storage is not None:  # a model given in memory: back to what is on disk
            try:
                model, new_source, msgs = self.storage.load_model(check=_checked_model)
            except Exception:
                model, new_source = None, None
        if model is failed:
            model, new_source = None, None
        try:
            self._bind_now(model, new_source)
        except Exception as exc:
            self._message(f"fall-back model failed too ({exc}); idle animation")
            self._bind_now(None, None)

    def _bind_now(self, model, source: str | None) -> None:
        """Make ``model`` the running one: (re)allocate every buffer sized by it."""
        requested = model
        channel_map = None
        if model is not None:
            try:
                channel_map = model_channel_map(model)
            except ModelMismatch as exc:
                self._message(f"model not used: {exc}; running the idle animation")
                model, source = None, None
        spec = model.input_spec if model is not None else None
        self.frame_rate = float((spec.rate_hz if spec is not None else None) or fr.DEFAULT_RATE_HZ)
        self.window = int(spec.shape[0]) if spec is not None else fr.DEFAULT_WINDOW
        self.frame_period = 1.0 / self.frame_rate
        self._ring = np.zeros((2 * self.window, fr.N_CHANNELS), np.float32)
        self._ring_count = 0
        self._channel_map = channel_map
        # frames × the scale training used (bundle input spec), into a preallocated window
        self._in_scale = (np.asarray(spec.scale, np.float32) if spec is not None and spec.scale
                          else None)
        self._model_in = (np.zeros(spec.shape, np.float32)
                          if channel_map is not None or self._in_scale is not None else None)
        labels = tuple(model.labels) if model is not None else ()
        self.labels = labels
        self.probs = np.zeros(len(labels), np.float32)
        # the model's card may say which moods its own gestures evoke
        temperament, warnings = temperament_for(getattr(model, "card", None), self.temperament)
        for w in warnings:
            self._message(w)
        self._card_temperament = temperament
        self._moods_applied = self.params.get("gesture_moods")
        self.mood.temperament = with_gesture_moods(temperament, self._moods_applied)
        self.mood.set_labels(labels)
        n_hist = int(self.HISTORY_S * self.frame_rate)
        with self._lock:
            self.model, self.model_source = model, source
            self._hist = np.zeros((n_hist, fr.N_CHANNELS), np.float32)
            self._hist_t = np.full(n_hist, -math.inf)
            self._hist_n = 0
            if self._wanted is not None and self._wanted[0] is requested:
                self._wanted = None  # (a newer install that arrived meanwhile stays wanted)
        self._model_errors = 0
        self._model_name = _model_name(model)
        self._timeline("model", f"model {self._model_name} ({source})" if model is not None
                       else "no model: idle animation")

    # ------------------------------------------------------------------ messages
    def _message(self, text: str) -> None:
        self.messages.append(text)
        if self._log:
            self._log(text)

    def _timeline(self, kind: str, text: str, p: float | None = None, by: str | None = None) -> None:
        t = self.clock() - (self.t_start if self.t_start is not None else self.clock())
        self.timeline.append(TimelineEntry(t, kind, text, p, by))

    def _part_failed(self, role: str, exc: Exception) -> None:
        was_ok = self.health.get(role) == "ok"
        if not isinstance(exc, PartError):  # a driver bug: say what kind, for the log
            exc = PartError(role, f"{type(exc).__name__}: {exc}")
        self.health[role] = f"failed: {exc}"
        self._retry_at[role] = self.clock() + self.RETRY_S
        if was_ok:
            self._message(f"{role} failed: {exc}; keeps running without it, retrying every "
                          f"{self.RETRY_S:g} s")
            self._timeline("part", f"{role} failed")

    def _part_ok(self, role: str) -> None:
        if self.health.get(role, "ok") != "ok":
            self._message(f"{role} works again")
            self._timeline("part", f"{role} recovered")
        self.health[role] = "ok"
        self._retry_at.pop(role, None)

    def _display_failed(self, message: str) -> None:
        self._part_failed("display", PartError("display", message.split(": ", 1)[-1]))

    def _display_ok(self) -> None:
        self._part_ok("display")

    def _usable(self, role: str, now: float) -> object | None:
        """The part if it should be used now: healthy, or failed and due for a retry (a
        part that failed to open is reopened, when the body can)."""
        part = getattr(self.body, role, None)
        if self.health.get(role, "ok") == "ok":
            return part
        if now < self._retry_at.get(role, 0.0):
            return None
        self._retry_at[role] = now + self.RETRY_S
        reopen = getattr(self.body, "open_part", None)
        if reopen is None:
            return part  # (the simulator's parts need no re-initialisation)
        # re-open (and so re-initialise) a part that failed: a chip that was unplugged or
        # browned out comes back in its power-on state and must be configured again
        try:
            part = reopen(role)
        except Exception as exc:  # still broken: try again later
            self.health[role] = f"failed: {exc}"
            return None
        if role == "leds":
            self._p_version = -1  # a fresh strip: brightness and power cap again next frame
        return part

    def _check_touch(self, reading) -> None:
        """Refuse a scan that cannot be real: the wrong shape, or (ZERO_SCANS in a row)
        all-zero counts and baselines, which is what an MPR121 that came back from a
        replug or brown-out in its stop mode reports while every read succeeds."""
        raw, base = getattr(reading, "raw", None), getattr(reading, "baseline", None)
        if not (isinstance(raw, np.ndarray) and isinstance(base, np.ndarray)
                and raw.shape == base.shape == (self.n_pads,)):
            raise PartError("touch", f"the driver returned {type(reading).__name__}, not a "
                                     f"scan of {self.n_pads} pads")
        if raw.any() or base.any():
            self._zero_scans = 0
            return
        self._zero_scans += 1
        if self._zero_scans >= ZERO_SCANS:
            self._zero_scans = 0
            raise PartError("touch", "all pads read zero with a zero baseline: the controller "
                                     "lost its configuration (replugged or browned out); "
                                     "re-initialising")

    _zero_scans = 0

    # ------------------------------------------------------------------ the three tasks
    def _read_sensors(self, now: float) -> None:
        """One sample: read every sensor (imputing failed ones) into ``self._sample``."""
        p = self._p
        pads = self._zero_pads
        touch = self._usable("touch", now)
        if touch is not None:
            try:
                reading = touch.read()
                self._check_touch(reading)
                # counts are uint16: subtract in float (a raw above baseline must not wrap)
                np.copyto(self._pad_delta, reading.baseline, casting="unsafe")
                np.subtract(self._pad_delta, reading.raw, out=self._pad_delta, casting="unsafe")
                np.maximum(self._pad_delta, 0.0, out=self._pad_delta)
                self._pad_delta *= p["touch_sensitivity"]
                pads = self._pad_delta
                if self.health["touch"] != "ok":
                    self._part_ok("touch")
            except Exception as exc:  # PartError, or a driver bug: degrade, never stop
                self._part_failed("touch", exc)
        if now + 1e-9 >= self._next_distance:
            self._next_distance = max(self._next_distance + self.distance_period, now)
            ranger = self._usable("distance", now)
            if ranger is not None:
                try:
                    self._last_distance = _number("distance", ranger.read_mm(), allow_none=True)
                    if self.health["distance"] != "ok":
                        self._part_ok("distance")
                except Exception as exc:  # PartError, or a driver bug: degrade, never stop
                    self._last_distance = None  # imputed: nobody in range
                    self._part_failed("distance", exc)
        if now + 1e-9 >= self._next_light:
            self._next_light = max(self._next_light + self.light_period, now)
            light = self._usable("light", now)
            if light is not None:
                try:
                    self._last_lux = _number("light", light.read_lux())
                    if self.health["light"] != "ok":
                        self._part_ok("light")
                except Exception as exc:  # imputed: the last good level
                    self._part_failed("light", exc)
        s = fr.encode_into(self._sample, pads, self._last_distance, self._last_lux)
        gain = p["approach_sensitivity"]
        if gain != 1.0:
            s[fr.N_PADS] = min(s[fr.N_PADS] * gain, 1.0)

    def _sample_task(self, now: float) -> bool:
        """Sample, accumulate; returns True when a model frame was completed."""
        self._read_sensors(now)
        s = self._sample
        np.copyto(self._pads_now, s[:fr.N_PADS])
        # touch-to-light: remember when a new touch first shows in a reading
        onset = LightRenderer.ONSET_LEVEL
        if self._touch_pending_t is None:
            for i in range(self.n_pads):
                if self._pads_now[i] >= onset and not self._touching[i]:
                    self._touch_pending_t = self.clock()
                    break
        touch_hold(self._touching, self._pads_now, onset, LightRenderer.RELEASE_LEVEL,
                   self._touch_scratch)
        self._frames.add(s)
        if now + 1e-9 < self._next_model_frame:
            return False
        self._next_model_frame += self.frame_period
        if self._next_model_frame < now:  # fell far behind: resynchronise, do not burst
            self._next_model_frame = now + self.frame_period
        self._frames.take_into(self._frame)
        self._push_frame(now)
        return True

    def _push_frame(self, now: float) -> None:
        w = self.window
        i = self._ring_count % w
        if self._ring_count == 0:
            # the first window is the first frame repeated: the model never sees a made-up
            # jump from zeros (darkness, nobody) at start-up or after a model swap
            self._ring[:] = self._frame
        np.copyto(self._ring[i], self._frame)
        np.copyto(self._ring[i + w], self._frame)
        self._ring_count += 1
        with self._lock:
            j = self._hist_n % self._hist.shape[0]
            np.copyto(self._hist[j], self._ring[i])
            self._hist_t[j] = now - self.t_start
            self._hist_n += 1

    def _window(self) -> np.ndarray:
        w = self.window
        start = self._ring_count % w
        view = self._ring[start:start + w]
        if self._model_in is None:
            return view
        if self._channel_map is not None:
            np.take(view, self._channel_map, axis=1, out=self._model_in)
            view = self._model_in
        if self._in_scale is not None:
            np.multiply(view, self._in_scale, out=self._model_in)
        return self._model_in

    def _infer_task(self, now: float) -> None:
        model = self.model
        if model is None or self._ring_count < 1:
            return
        t0 = time.perf_counter()
        try:
            out = model(self._window())
        except Exception as exc:  # a model that breaks while running must not stop the piece
            self._model_errors += 1
            self._message(f"the model failed while running: {exc}")
            if self._model_errors >= self.MAX_MODEL_ERRORS:
                self._message("dropping the model after repeated failures; falling back")
                self._fall_back(model, self.model_source)
            return
        self.infer_ms.add((time.perf_counter() - t0) * 1e3)
        self.inferences += 1
        self._model_errors = 0
        np.copyto(self.probs, np.asarray(out).reshape(-1)[:self.probs.shape[0]], casting="unsafe")
        p = self._p
        before = self.mood.mood_index
        was = self.mood.gesture
        event = self.mood.observe(self.probs, now - self.t_start, p["confidence"],
                                  p["mood_decay_s"], p["hysteresis"], p["gesture_smoothing"],
                                  p["gesture_hold_s"])
        if self.mood.gesture != was:
            self.gesture_log.append((now - self.t_start, self.mood.gesture))
        if event is not None:
            self._timeline("gesture", event.label, event.p)
        if self.mood.mood_index != before:
            self._timeline("mood", self.mood.mood)

    def _render_task(self, now: float) -> None:
        t = now - self.t_start
        p = self._p
        self.renderer.touch(self._pads_now, t)
        present = self.mood.gesture not in (None, "nobody")
        self.renderer.render(self._led_frame, t, self.mood.mood_index, p, present=present,
                             have_model=self.model is not None)
        leds = self._usable("leds", now)
        if leds is not None:
            try:
                leds.show(self._led_frame)
                if self.health["leds"] != "ok":
                    self._part_ok("leds")
            except Exception as exc:  # PartError, or a driver bug: degrade, never stop
                self._part_failed("leds", exc)
        # words: off the hot path (the voice and OLED threads make and draw them)
        mood_name = self.mood.mood
        new = self.speaker.update(mood_name, t, p)
        if new is not None:
            self.phrase = new
            if new:
                self._timeline("phrase", new, by=self._phrase_by)
        if self.oled is not None:
            footer = "" if self.model is not None else "no model"
            sleeping = self.quiet and p["quiet_mode"] == "sleep"
            self.oled.submit(self.phrase, mood_name, footer, p["display_contrast"],
                             p["display_enabled"] and not sleeping)

    # ------------------------------------------------------------------ params
    def _apply_params(self, now: float) -> None:
        """Pick up parameter changes (cheap version check each frame) and the quiet hours
        (once a second, by the device clock)."""
        changed = self.params.version != self._p_version
        if changed:
            self._p_version = self.params.version
            self._p = self.params.snapshot()
            if self._p["gesture_moods"] != self._moods_applied:   # an artist taught a feeling
                self._moods_applied = self._p["gesture_moods"]
                self.mood.temperament = with_gesture_moods(self._card_temperament,
                                                           self._moods_applied)
                self.mood.set_labels(self.labels)
        if now >= self._next_quiet_check:
            self._next_quiet_check = now + 1.0
            quiet = quiet_now(self._p["quiet_hours"], self.minute_of_day())
            if quiet != self.quiet:
                self.quiet = quiet
                changed = True
                self._timeline("part", "quiet hours" if quiet else "opening hours")
        if changed and self.body.leds is not None:
            self.body.leds.brightness = self._led_base * light_level(self._p, self.quiet)
            cap = float(self._p["power_cap_ma"])
            self.body.leds.power_cap_ma = cap if self._led_cap is None else min(cap, self._led_cap)

    # ------------------------------------------------------------------ running
    #: Held around every step; the live window swaps in a real lock so the mouse (on the
    #: main thread) never changes the simulated world in the middle of a sensor read.
    step_lock = contextlib.nullcontext()

    def start(self) -> None:
        """Prepare the schedule (called by run; tests may call step() after it)."""
        now = self.clock()
        self.t_start = now
        self._next_sample = now
        self._next_render = now
        self._next_distance = now
        self._next_light = now
        self._next_model_frame = now + self.frame_period
        self._next_watchdog = now
        self.timeline.clear()
        self._timeline("model", f"model {self._model_name} ({self.model_source})"
                       if self.model is not None else "no model: idle animation")

    def stop(self) -> None:
        """Ask the loop to finish (safe from any thread or a signal handler)."""
        self._stop.set()

    def _charge(self, since: float) -> float:
        """Compute time since ``since`` (perf_counter); on a simulated clock, let it pass."""
        now = time.perf_counter()
        if self.charge_compute:
            self.clock.advance(now - since)
        return now

    def step(self) -> None:
        """Run whatever is due now (one wake-up of the loop)."""
        w0 = time.perf_counter()
        c0 = time.thread_time()
        now = self.clock()
        speaking = self.voice_worker.busy
        wanted = self._wanted
        if wanted is not None:
            self._bind(*wanted)
            with self._lock:
                if self._wanted is wanted:
                    self._wanted = None  # (also when it failed and a fall-back was bound)
            self._next_model_frame = now + self.frame_period
        self._apply_params(now)
        if now + 1e-9 >= self._next_sample:
            self._next_sample += self.sensor_period
            if self._next_sample < now:
                self._next_sample = now + self.sensor_period
            s0 = time.perf_counter()
            framed = self._sample_task(now)
            self.sample_ms.add((self._charge(s0) - s0) * 1e3)
            if framed:
                i0 = time.perf_counter()
                self._infer_task(self.clock())
                self._charge(i0)
        rendered = False
        if now + 1e-9 >= self._next_render:
            self._next_render += self.led_period
            if self._next_render < now:
                self._next_render = now + self.led_period
            r0 = time.perf_counter()
            self._render_task(self.clock())
            self._charge(r0)
            rendered = True
        busy = time.perf_counter() - w0
        self._speaking = self._speaking or speaking or self.voice_worker.busy
        self.busy_s += busy
        self._busy_since_show += busy
        cpu = time.thread_time() - c0
        self.cpu_s += cpu
        self._cpu_since_show += cpu
        if rendered:
            shown = self.clock()
            self.frame_ms.add(self._busy_since_show * 1e3)
            self.frame_cpu_ms.add(self._cpu_since_show * 1e3)
            if self._speaking:
                self.frame_ms_speaking.add(self._busy_since_show * 1e3)
                self.frame_cpu_ms_speaking.add(self._cpu_since_show * 1e3)
                self._speaking = False
            self._busy_since_show = 0.0
            self._cpu_since_show = 0.0
            self._show_times.add(shown)
            self.frames_shown += 1
            if self._touch_pending_t is not None:
                self.latency_ms.add((shown - self._touch_pending_t) * 1e3)
                self._touch_pending_t = None
        if self.watchdog is not None and now >= self._next_watchdog:
            self._next_watchdog = now + self.WATCHDOG_S
            self.watchdog()

    def next_due(self) -> float:
        return min(self._next_sample, self._next_render)

    def run(self, seconds: float | None = None, on_step: Callable[["DeviceLoop"], None] | None = None) -> None:
        """Run until :meth:`stop` (or for ``seconds`` on the loop's clock), then turn the
        LEDs off. ``on_step`` is called after every wake-up (the demo records from it)."""
        self.start()
        end = math.inf if seconds is None else self.t_start + float(seconds)
        # Python's cyclic garbage collector would otherwise run at arbitrary points, inside
        # a frame: freeze everything built at start-up (never scanned again), switch the
        # automatic collector off and collect in the idle time between frames instead.
        gc_was_enabled = gc.isenabled()
        gc.freeze()
        gc.disable()
        next_full_gc = self.clock() + self.FULL_GC_S
        try:
            while not self._stop.is_set():
                due = self.next_due()
                if due > end:
                    break
                if gc.get_count()[0] > self.GC_THRESHOLD:
                    if self.clock() >= next_full_gc:
                        next_full_gc = self.clock() + self.FULL_GC_S
                        gc.collect()
                    else:
                        gc.collect(1)
                if self.simulated:
                    if due > self.clock():
                        self.clock.set(due)
                else:
                    wait = due - self.clock()
                    if wait > 0 and self._stop.wait(wait):
                        break
                with self.step_lock:
                    self.step()
                if on_step is not None:
                    on_step(self)
        finally:
            gc.unfreeze()
            if gc_was_enabled:
                gc.enable()
            self.shutdown()

    def shutdown(self) -> None:
        """LEDs off, display blank, OLED thread stopped (every step tolerant of dead parts)."""
        if self.body.leds is not None:
            try:
                self.body.leds.off()
            except (PartError, OSError):
                pass
        self.voice_worker.close()
        if self.oled is not None:
            self.oled.submit("", "", "", int(self._p["display_contrast"]), False)
            self.oled.flush(1.0)
            self.oled.close()

    # ------------------------------------------------------------------ ConsoleApp protocol
    def status(self) -> dict:
        shows = self._show_times.values()
        fps = None
        if shows.size >= 2:
            span = shows.max() - shows.min()
            fps = round(float((shows.size - 1) / span), 2) if span > 0 else None
        elapsed = (self.clock() - self.t_start) if self.t_start is not None else 0.0
        model = self.model
        return {
            "fps": fps,
            "frame_ms_p50": self.frame_ms.percentile(50),
            "frame_ms_p99": self.frame_ms.percentile(99),
            "frame_cpu_ms_p99": self.frame_cpu_ms.percentile(99),
            "infer_ms": self.infer_ms.percentile(50),
            "infer_ms_p99": self.infer_ms.percentile(99),
            "touch_to_light_ms_p50": self.latency_ms.percentile(50),
            "cpu_share": round(self.cpu_s / elapsed, 4) if elapsed > 0 else None,
            "model": self._model_name if model is not None else None,
            "sha256": getattr(model, "sha256", None),
            "backend": getattr(model, "backend", None),
            "model_source": self.model_source,
            "sensors": dict(self.health),
            "uptime_s": round(elapsed, 2),
            "mood": self.mood.mood,
            "gesture": self.mood.gesture,
            "phrase": self.phrase,
            "voice": self.voice_name,
            "voice_sha256": getattr(self.voice_worker.voice, "sha256", None),
            "voice_source": self.voice_source,
            "phrase_ms_p50": self.phrase_ms.percentile(50),
            "phrase_ms_p99": self.phrase_ms.percentile(99),
            "phrase_by": self._phrase_by,
            "voice_said": self.voice_log[-1] if self.voice_log else None,
            "quiet": self.quiet,
            "storage": list(getattr(self.storage, "problems", None) or []) or "ok",
            "messages": list(self.messages)[-10:],
        }

    def param_note(self, name: str, value) -> str | None:
        """A word on a value the hardware overrides (for the console's get/set answers)."""
        if name == "power_cap_ma" and self._led_cap is not None and value > self._led_cap:
            return (f"the hardware profile caps the LEDs at {self._led_cap:g} mA, so "
                    f"{self._led_cap:g} mA applies")
        return None

    def model_info(self) -> dict:
        with self._lock:
            model, source = (self._wanted if self._wanted is not None
                             else (self.model, self.model_source))
        if model is None:
            return {"name": None, "source": None, "messages": list(self.messages)[-5:],
                    "voice": self.voice_info()}
        spec = model.input_spec
        card = model.card if isinstance(model.card, dict) else {}
        return {"name": _model_name(model), "sha256": model.sha256, "labels": list(model.labels),
                "input": {"channels": list(spec.channels) or list(fr.CHANNELS),
                          "rate_hz": spec.rate_hz or fr.DEFAULT_RATE_HZ, "window": spec.shape[0],
                          "shape": list(spec.shape)},
                "backend": model.backend, "source": source,
                "card": {k: card[k] for k in list(card)[:8] if isinstance(card[k], (str, int, float))},
                "voice": self.voice_info()}

    # ------------------------------------------------------------------ the voice
    @property
    def voice_name(self) -> str | None:
        voice = self.voice_worker.voice
        return voice.name if voice is not None else None

    def voice_info(self) -> dict:
        """The voice slot, for 'model info' (the second model the piece carries)."""
        voice = self.voice_worker.voice
        if voice is None:
            return {"name": None, "source": None}
        card = voice.model.card or {}
        return {"name": voice.name, "sha256": voice.sha256, "source": self.voice_source,
                "backend": voice.model.backend, "context": voice.spec.context,
                "characters": len(voice.spec.vocab), "moods": list(voice.spec.moods),
                "licence": card.get("licence"), "macs_per_char": card.get("macs_per_char")}

    def _spoke(self, phrase, source: str) -> None:
        """The Speaker's report of each phrase it chose (the voice's, or the bank's)."""
        self._phrase_by = source
        if source == "voice":
            self.phrase_ms.add(phrase.ms)
            self.voice_log.append({"t": round(self.clock() - (self.t_start or self.clock()), 3),
                                   "voice": phrase.voice, "mood": phrase.mood,
                                   "seed": phrase.seed, "text": phrase.text,
                                   "ms": round(phrase.ms, 3), "chars": phrase.chars})

    def install_voice(self, path: str) -> dict:
        """Verify a voice bundle (it loads, its card and graph agree, it speaks), make it the
        current voice on disk (the old one kept as previous) and speak with it from the next
        phrase on. Raises UserError and changes nothing when it does not fit."""
        from lanthorn.device.voice import load_voice
        try:
            candidate = load_voice(path)
        except Exception as exc:
            raise UserError(f"the new voice does not load, keeping the old one: {exc}") from None
        voice, source = candidate, "given"
        if self.storage is not None:
            voice, source = self.storage.install_model(path, slot="voice"), "current"
        self.voice_worker.set_voice(voice)
        self.voice_source = source
        self._message(f"new voice {voice.name} installed")
        self._timeline("model", f"voice {voice.name} ({source})")
        return self.model_info()

    def install_model(self, path: str) -> dict:
        """Verify a new bundle (it loads, fits this object's sensors, runs), make it current
        on disk (the old one kept as previous) and swap it in on the next frame. Raises
        UserError and changes nothing when it does not fit."""
        from lanthorn.device.runtime import load
        try:
            candidate = load(path)
        except UserError as exc:
            raise UserError(f"the new model does not load, keeping the old one: {exc}") from None
        except Exception as exc:
            raise UserError(f"the new model does not load, keeping the old one: {exc}") from None
        if is_voice(candidate):   # a voice bundle goes to the voice slot
            return self.install_voice(path)
        try:
            _checked_model(candidate)
        except ModelMismatch as exc:
            raise ModelMismatch(f"the new model does not fit this object, keeping the old one: "
                                f"{exc}") from None
        model, source = candidate, "given"
        if self.storage is not None:
            model, source = self.storage.install_model(path), "current"
        with self._lock:
            self._wanted = (model, source)
        self._message(f"new model {_model_name(model)} installed")
        return self.model_info()

    def rollback_model(self, slot: str = "model") -> dict:
        """ConsoleApp: back to the previous bundle of ``slot``, else the shipped one."""
        return self.install_model(str(self.storage.rollback_target(slot)))

    def latest(self) -> dict:
        with self._lock:
            n = self._hist_n
            if n:
                j = (n - 1) % self._hist.shape[0]
                frame, t = self._hist[j].copy(), float(self._hist_t[j])
            else:
                frame, t = np.zeros(fr.N_CHANNELS, np.float32), 0.0
        return {"t": round(t, 3),
                "values": {c: round(float(v), 4) for c, v in zip(fr.CHANNELS, frame)},
                "probs": {lab: round(float(p), 4) for lab, p in zip(self.labels, self.probs)},
                "mood": self.mood.mood, "gesture": self.mood.gesture, **self.shown()}

    def shown(self) -> dict:
        """What a visitor sees right now, for a picture of the object (the studio's See view):
        ``leds``, the ring as last sent to the strip (brightness and power cap applied), one
        ``rrggbb`` hex group per pixel; ``oled``, what the display was asked to draw (the
        same words ``render_oled`` makes its picture from, so a host can draw it again)."""
        strip = self.body.leds
        leds = strip.last_frame.tobytes().hex() if strip is not None else ""
        sleeping = self.quiet and self._p["quiet_mode"] == "sleep"
        return {"leds": leds,
                "oled": {"text": self.phrase, "mood": self.mood.mood,
                         "footer": "" if self.model is not None else "no model",
                         "on": bool(self._p["display_enabled"]) and not sleeping
                         and self.body.display is not None,
                         "contrast": int(self._p["display_contrast"])}}

    def frames_since(self, t: float) -> tuple[list[np.ndarray], float]:
        """Model-rate frames (frames.CHANNELS order) newer than ``t`` (seconds since start),
        and the time of the newest one (pass it back to continue)."""
        with self._lock:  # vectorised: the loop waits for this lock to push a frame
            n, size = self._hist_n, self._hist.shape[0]
            idx = np.arange(max(0, n - size), n) % size  # oldest first
            idx = idx[self._hist_t[idx] > t]
            rows = self._hist[idx]  # a copy (fancy indexing)
            newest = float(self._hist_t[idx[-1]]) if idx.size else t
        return list(rows), newest

    # ------------------------------------------------------------------ demo helpers
    def summary(self) -> dict:
        """The measured figures (for the demo's summary.json and `status`)."""
        elapsed = (self.clock() - self.t_start) if self.t_start is not None else 0.0
        return {"seconds": round(elapsed, 3), "frames": self.frames_shown,
                "inferences": self.inferences,
                "frame_ms": self.frame_ms.summary(), "frame_cpu_ms": self.frame_cpu_ms.summary(),
                "infer_ms": self.infer_ms.summary(),
                "sample_ms": self.sample_ms.summary(),
                "touch_to_light_ms": self.latency_ms.summary(),
                "cpu_share": round(self.cpu_s / elapsed, 4) if elapsed > 0 else None,
                "busy_share": round(self.busy_s / elapsed, 4) if elapsed > 0 else None,
                "backend": getattr(self.model, "backend", None), "model": self._model_name,
                "sensors": dict(self.health), "voice": self.voice_summary()}

    def voice_summary(self) -> dict:
        """What the voice said and how fast (the demo's summary)."""
        return {"name": self.voice_name, "source": self.voice_source,
                "phrases": len(self.voice_log), "fallbacks": self.speaker.failures,
                "phrase_ms": self.phrase_ms.summary(),
                "frame_ms_while_speaking": self.frame_ms_speaking.summary(),
                "frame_cpu_ms_while_speaking": self.frame_cpu_ms_speaking.summary(),
                "said": list(self.voice_log)}


def _model_name(model) -> str | None:
    if model is None:
        return None
    card = getattr(model, "card", None) or {}
    name = card.get("name") if isinstance(card, dict) else None
    return str(name or f"model-{str(getattr(model, 'sha256', '') or '')[:8]}")
