"""The device loop: the piece's heartbeat, from sensors through the model to light and words.

One thread wakes at the :class:`~lanthorn.device.piece.scheduler.Scheduler`'s fixed-rate ticks
(one clock) and runs what is due:

* **sample** (about 100 Hz): the :class:`~lanthorn.device.piece.sampling.Sampler` reads the body
  into one sample; at the model's input rate the samples are averaged into one *model frame*
  (:class:`lanthorn.device.piece.frames.FramePipeline`) that goes into the model's window and the
  console's history (:mod:`lanthorn.device.piece.model_frames`);
* **infer** (each new model frame, 25 Hz for the default piece): the
  :class:`~lanthorn.device.piece.inference.Inference` runs the model and updates the mood;
* **render** (60 fps): :class:`~lanthorn.device.piece.rendering.Rendering` draws and shows the
  LED frame and hands the words to the OLED's own thread.

Before those, a model installed from the console is swapped in
(:class:`~lanthorn.device.piece.model_slots.ModelSlots`) and parameter changes are taken up
(:class:`~lanthorn.device.piece.live_params.LiveParams`); after them the figures are accounted
(:class:`~lanthorn.device.piece.loop_stats.LoopStats`) and the watchdog fed. Parts that fail
degrade through :class:`~lanthorn.device.piece.part_health.PartHealth`. The loop allocates no
buffers per wake-up (every buffer is made when a model is bound), and Python's cyclic
garbage collector runs in the idle time between wake-ups, never inside a frame.

:class:`Loop` drives the parts a :class:`~lanthorn.device.piece.piece.Piece` holds; the piece is
what run/demo/the console construct and talk to.
"""
from __future__ import annotations

import contextlib
import gc
import math
import threading
import time
from typing import Callable


class Loop:
    """The wake-ups of one piece (see the module docstring). ``piece`` holds the parts:
    ``scheduler``, ``sampler``, ``inference``, ``rendering``, ``slots``, ``live``,
    ``stats``, ``journal``, ``voice_worker``, the tickers and ``watchdog``."""

    GC_THRESHOLD = 700  # allocations between idle-time collections (Python's own default)
    FULL_GC_S = 60.0

    def __init__(self, piece):
        self.piece = piece
        self.stop_event = threading.Event()
        #: Held around every step; the live window swaps in a real lock so the mouse (on
        #: the main thread) never changes the simulated world in the middle of a sensor read.
        self.step_lock = contextlib.nullcontext()

    def step(self) -> None:
        """Run whatever is due now (one wake-up of the loop)."""
        pc = self.piece
        w0, c0 = time.perf_counter(), time.thread_time()
        clock = pc.scheduler.clock
        now = clock()
        speaking = pc.voice_worker.busy
        if pc.slots.swap_wanted():
            self._follow_model(now)
        if pc.live.refresh(now, pc.journal):
            pc.inference.set_gesture_moods(pc.live.p["gesture_moods"])
            pc.rendering.apply_light(pc.live.p, pc.live.quiet)
        if pc.sample_tick.due(now):
            s0 = time.perf_counter()
            framed = self._sample(now)
            pc.stats.sample_ms.add((pc.scheduler.charge(s0) - s0) * 1e3)
            if framed:
                i0 = time.perf_counter()
                self._infer()
                pc.scheduler.charge(i0)
        shown_at = touch_at = None
        if pc.render_tick.due(now):
            r0 = time.perf_counter()
            self._render(clock())
            pc.scheduler.charge(r0)
            shown_at, touch_at = clock(), pc.sampler.touch_onset_t
            pc.sampler.touch_onset_t = None
        pc.stats.account(time.perf_counter() - w0, time.thread_time() - c0,
                         speaking or pc.voice_worker.busy, shown_at, touch_at)
        if pc.watchdog is not None and pc.watchdog_tick.due(now):
            pc.watchdog()

    def _follow_model(self, now: float) -> None:
        """A model was (re)bound: model frames at its rate, the first one period from now."""
        tick = self.piece.frame_tick
        tick.period = 1.0 / self.piece.inference.rate
        tick.start(now, tick.period)

    def _sample(self, now: float) -> bool:
        """One sample; True when it completed a model frame (pushed to window and history)."""
        pc = self.piece
        pc.sampler.take(now, pc.live.p, pc.scheduler.clock())
        if not pc.frame_tick.due(now):
            return False
        pc.inference.push(pc.sampler.take_frame(), now - pc.journal.t_start)
        return True

    def _infer(self) -> None:
        pc = self.piece
        inf = pc.inference
        if inf.run(pc.journal.now(), pc.live.p, pc.journal):
            pc.slots.fall_back(inf.model, inf.source)
            self._follow_model(pc.scheduler.clock())

    def _render(self, now: float) -> None:
        pc = self.piece
        pc.rendering.render(now, now - pc.journal.t_start, pc.live.p, pc.mood,
                            pc.inference.model is not None, pc.live.quiet, pc.sampler.pads_now)

    def stop(self) -> None:
        """Ask the loop to finish (safe from any thread or a signal handler)."""
        self.stop_event.set()

    def run(self, seconds: float | None = None, on_step: Callable | None = None) -> None:
        """Start, then wake and step until :meth:`stop` (or for ``seconds`` on the loop's
        clock), then shut the piece down (LEDs off). ``on_step(piece)`` is called after
        every wake-up (the demo records from it)."""
        pc = self.piece
        pc.start()
        end = math.inf if seconds is None else pc.journal.t_start + float(seconds)
        # Python's cyclic garbage collector would otherwise run at arbitrary points, inside
        # a frame: freeze everything built at start-up (never scanned again), switch the
        # automatic collector off and collect in the idle time between frames instead.
        gc_was_enabled = gc.isenabled()
        gc.freeze()
        gc.disable()
        next_full_gc = pc.scheduler.clock() + self.FULL_GC_S
        try:
            while not self.stop_event.is_set():
                due = pc.scheduler.next_due()
                if due > end:
                    break
                if gc.get_count()[0] > self.GC_THRESHOLD:
                    if pc.scheduler.clock() >= next_full_gc:
                        next_full_gc = pc.scheduler.clock() + self.FULL_GC_S
                        gc.collect()
                    else:
                        gc.collect(1)
                if not pc.scheduler.wait_until(due, self.stop_event):
                    break
                with self.step_lock:
                    self.step()
                if on_step is not None:
                    on_step(pc)
        finally:
            gc.unfreeze()
            if gc_was_enabled:
                gc.enable()
            pc.shutdown()

