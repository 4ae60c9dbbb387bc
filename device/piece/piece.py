"""The running piece: one object that holds the loop's parts and answers the console.

:class:`Piece` builds the parts of a running artwork from a body (real or simulated) and
its data directory: the scheduler and its tickers, part health, the sampler, inference,
rendering, the live parameters, the figures and the journal, and the model slots (model
and voice). :class:`~lanthorn.device.piece.loop.Loop` drives them; the piece is what ``lanthorn
run``, the demo, the studio and the tests construct, ``run``, ``step`` and ``stop``.

It implements :class:`~lanthorn.device.console.console_app.ConsoleApp`, the declared contract the
serial console relies on (``status``, ``model_info``, ``install_model``, ``rollback_model``,
``latest``, ``frames_since``, ``params``, ``storage``): every method is safe to call from the
console thread while the loop runs. Installs and rollbacks verify and load a bundle once
(through :class:`~lanthorn.device.storage.storage.DataDir`) and the loop thread swaps it in on its
next wake-up; parameter changes apply on the next frame.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from lanthorn.device.piece import frames as fr
from lanthorn.device.piece.behaviour import DEFAULT_TEMPERAMENT, LightRenderer, MoodEngine, PhraseBank, Temperament
from lanthorn.device.piece.inference import Inference
from lanthorn.device.piece.live_params import LiveParams
from lanthorn.device.piece.loop import Loop
from lanthorn.device.piece.loop_stats import Journal, LoopStats
from lanthorn.device.piece.model_slots import ModelSlots
from lanthorn.device.piece.params import ParamStore
from lanthorn.device.piece.part_health import PartHealth
from lanthorn.device.piece.rendering import Rendering
from lanthorn.device.piece.sampling import Sampler
from lanthorn.device.piece.scheduler import Scheduler
from lanthorn.device.piece.voice import Speaker, VoiceWorker
from lanthorn.device.storage.fault_log import FaultLog

#: what ``set phrases_*`` answers while the voice speaks (the bank is not what is heard)
BANK_NOTE = "the voice is speaking; the bank speaks when voice_enabled is off or a phrase fails"

class Piece:
    """The running piece. See the module docstring.

    ``body``: a :class:`~lanthorn.hardware.interfaces.Body` (real or simulated).
    ``params``: the live :class:`ParamStore` (loaded from ``storage`` when not given).
    ``storage``: a :class:`~lanthorn.device.storage.storage.DataDir` or None (then ``model`` is used
    as given and ``install_model`` swaps in memory only).
    ``model``/``voice``: loaded ones, None for none, or left out to load them from storage.
    ``clock``: zero-argument callable in seconds; a SimClock (has ``set``/``advance``) makes
    the loop skip idle time instead of sleeping (and, with ``charge_compute``, charge the
    measured compute time to it, so simulated runs report this machine's frame times).
    """

    SENSOR_HZ = fr.SAMPLE_HZ
    LED_FPS = 60.0
    RETRY_S = 5.0
    MAX_MODEL_ERRORS = 3
    HISTORY_S = 120.0
    WATCHDOG_S = 2.0

    def __init__(self, body, params: ParamStore | None = None, storage=None, model=...,
                 *, clock: Callable[[], float] | None = None, charge_compute: bool = True,
                 sensor_hz: float = SENSOR_HZ, led_fps: float = LED_FPS,
                 temperament: Temperament = DEFAULT_TEMPERAMENT, oled_thread: bool = True,
                 minute_of_day: Callable[[], int] | None = None,
                 log: Callable[[str], None] | None = None, watchdog: Callable[[], None] | None = None,
                 seed: int = 0, voice=..., voice_thread: bool = True, layout=None):
        self.body, self.storage, self.watchdog = body, storage, watchdog
        # the frame comes from the body: its profile's channels (the default piece's 14
        # when the body carries no profile)
        self.layout = layout if layout is not None else self._layout_of(body)
        self.scheduler = sch = Scheduler(clock, charge_compute)
        self.clock = sch.clock
        faults = storage.faults if storage is not None else FaultLog(None)
        self.faults = faults.background() if oled_thread else faults
        self.journal = Journal(self.clock, log, self.faults)
        self.params = params or ParamStore()
        if storage is not None and params is None:
            for m in self.params.load(storage):
                self.journal.say(m)
        self.stats = LoopStats()
        self.live = LiveParams(self.params, sch, minute_of_day)
        self.parts = PartHealth(body, self.RETRY_S, self.journal.say, self.journal.mark,
                                on_reopen=lambda role: self.live.invalidate(),
                                fault=self.journal.fault)
        self.sampler = Sampler(body, self.parts, sch, layout=self.layout)
        n_pads = self.layout.n_pads
        self.mood = MoodEngine((), temperament)
        self.inference = Inference(self.mood, temperament, self.journal.say, self.HISTORY_S,
                                   self.MAX_MODEL_ERRORS, self.layout.names)
        self.inference.infer_ms = self.stats.infer_ms
        self.voice_worker = VoiceWorker(None, threaded=voice_thread)
        self.slots = ModelSlots(storage, self.inference, self.voice_worker, self.journal,
                                lambda: self.params.get("gesture_moods"))
        self.slots.boot(model, voice)
        self.speaker = Speaker(PhraseBank(), self.voice_worker, on_phrase=self._spoke)
        n_pixels = body.leds.n_pixels if body.leds is not None else 24
        self.rendering = Rendering(body, self.parts, self.speaker, self.journal,
                                   LightRenderer(n_pixels, temperament.moods, temperament,
                                                 n_pads, seed),
                                   oled_thread, self.RETRY_S, self.clock)
        self.sample_tick = sch.every(1.0 / float(sensor_hz), wakes=True)
        self.render_tick = sch.every(1.0 / float(led_fps), wakes=True)
        self.frame_tick = sch.every(1.0 / self.inference.rate)
        self.watchdog_tick = sch.every(self.WATCHDOG_S)
        self.loop = Loop(self)
        # the figures and records, by the names the demo, torture and tests read
        self.health, self.messages = self.parts.state, self.journal.messages
        self.timeline, self.gesture_log = self.journal.timeline, self.journal.gesture_log
        self.latency_ms, self.frame_ms = self.stats.latency_ms, self.stats.frame_ms
        self.frame_ms_speaking, self.voice_log = self.stats.frame_ms_speaking, self.stats.voice_log
        self.sensor_period, self.led_period = self.sample_tick.period, self.render_tick.period
        self.oled = self.rendering.oled

    model = property(lambda self: self.inference.model)
    model_source = property(lambda self: self.inference.source)
    labels = property(lambda self: self.inference.labels)
    t_start = property(lambda self: self.journal.t_start)
    frames_shown = property(lambda self: self.stats.frames_shown)
    inferences = property(lambda self: self.inference.inferences)
    phrase = property(lambda self: self.rendering.phrase)
    quiet = property(lambda self: self.live.quiet)
    voice_source = property(lambda self: self.slots.voice_source)
    step_lock = property(lambda self: self.loop.step_lock,
                         lambda self, lock: setattr(self.loop, "step_lock", lock))

    @staticmethod
    def _layout_of(body):
        """The body's layout; a hand-built body without a profile keeps the default
        piece's frame, its pads sized by the touch part (fewer than 12 on some bodies)."""
        from lanthorn.device.piece.channel_layout import build_layout, layout_for_body
        if getattr(body, "profile", None) is None and body.touch is not None:
            n_pads = getattr(body.touch, "n_pads", fr.N_PADS)
            if n_pads != fr.N_PADS:
                return build_layout(n_pads, True, True)
        return layout_for_body(body)

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Prepare the schedule (run calls it; tests may call step() after it)."""
        now = self.clock()
        self.journal.t_start = now
        for tick in (self.sample_tick, self.render_tick, self.live.quiet_tick):
            tick.start(now)
        self.sampler.start(now)
        self.watchdog_tick.period = self.WATCHDOG_S  # (run sets it from systemd's interval)
        self.watchdog_tick.start(now)
        self.loop._follow_model(now)
        self.timeline.clear()
        inf = self.inference
        self.journal.mark("model", f"model {inf.name} ({inf.source})" if inf.model is not None
                          else "no model: idle animation")

    def step(self) -> None:
        """Run whatever is due now (one wake-up)."""
        self.loop.step()

    def next_due(self) -> float:
        return self.scheduler.next_due()

    def run(self, seconds: float | None = None, on_step: Callable | None = None) -> None:
        """Run until :meth:`stop` (or for ``seconds`` on the loop's clock), then turn the
        LEDs off. ``on_step(piece)`` is called after every wake-up."""
        self.loop.run(seconds, on_step)

    def stop(self) -> None:
        """Ask the loop to finish (safe from any thread or a signal handler)."""
        self.loop.stop()

    def shutdown(self) -> None:
        """LEDs off, display blank, voice and OLED threads stopped."""
        self.voice_worker.close()
        self.rendering.shutdown(self.live.p)
        self.faults.close()

    # ------------------------------------------------------------------ ConsoleApp
    def status(self) -> dict:
        elapsed = self.journal.now() if self.t_start is not None else 0.0
        model = self.model
        return {**self.stats.timings(elapsed),
                "model": self.inference.name if model is not None else None,
                # "sha256" is the internal digest (the push protocol compares it)
                "sha256": getattr(model, "sha256", None),
                "file_sha256": getattr(model, "file_sha256", None),
                "internal_digest": getattr(model, "sha256", None),
                "backend": getattr(model, "backend", None),
                "model_source": self.model_source,
                "sensors": self.parts.report(),
                "channels": list(self.layout.names),
                "model_fits": self.model_fit(),
                "uptime_s": round(elapsed, 2),
                "mood": self.mood.mood, "gesture": self.mood.gesture, "phrase": self.phrase,
                "voice": self.voice_name,
                "voice_sha256": getattr(self.voice_worker.voice, "sha256", None),
                "voice_file_sha256": getattr(self.voice_worker.voice, "file_sha256", None),
                "voice_source": self.voice_source,
                "phrase_ms_p50": self.stats.phrase_ms.percentile(50),
                "phrase_ms_p99": self.stats.phrase_ms.percentile(99),
                "phrase_by": self.rendering.phrase_by,     # who said the phrase: voice or bank
                "voice_tries": self.voice_log[-1]["tries"] if self.voice_log else None,
                "voice_said": self.voice_log[-1] if self.voice_log else None,
                "quiet": self.quiet,
                "storage": list(getattr(self.storage, "problems", None) or []) or "ok",
                "fault_log": self.faults.summary(),
                "messages": list(self.messages)[-10:]}

    def model_fit(self) -> str:
        """Whether this body's parts feed the model: "yes", or why not (a model refused
        at start for channels the body lacks; the idle animation runs)."""
        if self.model is not None:
            return "yes"
        why = self.inference.unfit
        return f"no: {why}" if why else "no model"

    def param_note(self, name: str, value) -> str | None:
        """A word on a value the piece does not use as given (for the console's get/set
        answers): one the hardware overrides, or a phrase bank while the voice speaks."""
        voice_on = self.params.get("voice_enabled") and self.voice_worker.voice is not None
        return BANK_NOTE if name.startswith("phrases_") and voice_on else \
            self.rendering.param_note(name, value)

    def model_info(self) -> dict:
        return self.slots.model_info()

    def voice_info(self) -> dict:
        return self.slots.voice_info()

    def install_model(self, path: str) -> dict:
        """Verify and load the bundle at ``path`` once (a voice goes to the voice slot),
        make it current on disk and swap it in on the next frame; returns model_info.
        Raises UserError and changes nothing when it does not load or fit."""
        self.slots.install(path)
        return self.model_info()

    def rollback_model(self, slot: str = "model") -> dict:
        """Back to the previous bundle of ``slot`` ("model" or "voice"), else the shipped
        one; returns model_info. Raises UserError when there is nothing to go to."""
        self.slots.rollback(slot)
        return self.model_info()

    def latest(self) -> dict:
        frame, t = self.inference.history.newest()
        return {"t": round(t, 3),
                "values": {c: round(float(v), 4) for c, v in zip(self.layout.names, frame, strict=True)},
                "probs": {lab: round(float(p), 4)
                          for lab, p in zip(self.inference.labels, self.inference.probs, strict=True)},
                "mood": self.mood.mood, "gesture": self.mood.gesture, **self.shown()}

    def shown(self) -> dict:
        """What a visitor sees right now, for a picture of the object (the studio's See view)."""
        return self.rendering.shown(self.live.p, self.quiet, self.mood.mood, self.model is not None)

    def frames_since(self, t: float) -> tuple[list[np.ndarray], float]:
        """Model-rate frames (the layout's channel order) newer than ``t`` (seconds since start),
        and the time of the newest one (pass it back to continue)."""
        return self.inference.history.since(t)

    # ------------------------------------------------------------------ the voice, figures
    @property
    def voice_name(self) -> str | None:
        voice = self.voice_worker.voice
        return voice.name if voice is not None else None

    def _spoke(self, phrase, source: str) -> None:
        """The Speaker's report of each phrase it chose (the voice's, or the bank's)."""
        self.rendering.phrase_by = source
        if source == "voice":
            self.stats.phrase_ms.add(phrase.ms)
            self.voice_log.append({"t": round(self.journal.now(), 3), "voice": phrase.voice,
                                   "mood": phrase.mood, "seed": phrase.seed, "text": phrase.text,
                                   "ms": round(phrase.ms, 3), "chars": phrase.chars,
                                   "tries": phrase.tries})

    def summary(self) -> dict:
        """The measured figures (for the demo's summary.json)."""
        elapsed = self.journal.now() if self.t_start is not None else 0.0
        return {**self.stats.summary(elapsed, self.inferences),
                "backend": getattr(self.model, "backend", None), "model": self.inference.name,
                "sensors": self.parts.report(), "voice": self.voice_summary()}

    def voice_summary(self) -> dict:
        """What the voice said and how fast (the demo's summary)."""
        st = self.stats
        return {"name": self.voice_name, "source": self.voice_source,
                "phrases": len(self.voice_log), "fallbacks": self.speaker.failures,
                "phrase_ms": st.phrase_ms.summary(),
                "frame_ms_while_speaking": st.frame_ms_speaking.summary(),
                "frame_cpu_ms_while_speaking": st.frame_cpu_ms_speaking.summary(),
                "said": list(self.voice_log)}
