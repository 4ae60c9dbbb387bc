"""Rendering: the LED ring at 60 fps on the loop thread, the words on the OLED off it.

:class:`Rendering` draws one LED frame per render tick (the
:class:`~lanthorn.device.piece.behaviour.LightRenderer`: the mood's palette and breathing, the
glow under a finger from the newest *sample*, so a touch lights the ring on the next LED
frame, not the next inference) and shows it; it asks the
:class:`~lanthorn.device.piece.voice.Speaker` for the phrase of the moment and hands the words to
the display. It also applies the light parameters (brightness, the quiet hours' level, the
power cap, never above the hardware profile's cap) to the strip.

The OLED is slow (an I2C frame takes ~25 ms), so it has its own thread
(:class:`OledWorker`) fed with the newest words; the hot path never waits for it. A part
that fails here (the strip, the display) degrades through
:class:`~lanthorn.device.piece.part_health.PartHealth` like any sensor.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from lanthorn.device.piece.behaviour import LightRenderer, light_level, render_oled
from lanthorn.device.piece.worker import RequestThread
from lanthorn.hardware.interfaces import PartError


class OledWorker(RequestThread):
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
        self._shown: tuple[str, str, str, int, bool] | None = None  # (text, mood, footer, contrast, enabled)
        self._failed_at: float | None = None
        self._busy = False  # a request is being drawn right now
        self._contrast: int | None = None  # last contrast sent
        self.frames = 0
        self.threaded = threaded
        self._start_thread(threaded, "lanthorn-oled")

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

    def _serve_next(self) -> None:
        self._draw_pending()
        if self._failed_at is not None:  # wait for the retry without spinning
            time.sleep(min(0.25, self.retry_s))


class Rendering:
    """The LED frame, the phrase and the display. ``health``: the parts' health;
    ``speaker``: who picks the words; ``journal``: where phrases go on the timeline."""

    def __init__(self, body, health, speaker, journal, renderer: LightRenderer,
                 oled_thread: bool, retry_s: float, clock):
        self.body, self.health, self.speaker, self.journal = body, health, speaker, journal
        self.renderer = renderer
        leds = body.leds
        self.n_pixels = leds.n_pixels if leds is not None else 24
        self.led_base = leds.brightness if leds is not None else 1.0
        self.led_cap = leds.power_cap_ma if leds is not None else None
        self.led_frame = np.zeros((self.n_pixels, 3), np.uint8)
        self.phrase = ""
        self.phrase_by = "bank"
        self.oled = None
        if body.display is not None:
            self.oled = OledWorker(body.display, self._display_failed,
                                   lambda: health.ok("display"), threaded=oled_thread,
                                   retry_s=retry_s, clock=clock)

    def _display_failed(self, message: str) -> None:
        self.health.failed("display", PartError("display", message.split(": ", 1)[-1]),
                           self.journal.clock())

    def render(self, now: float, t: float, p: dict, mood, have_model: bool, quiet: bool,
               pads_now: np.ndarray) -> None:
        """One LED frame at clock ``now`` (loop time ``t``), shown; then the words."""
        self.renderer.touch(pads_now, t)
        present = mood.gesture not in (None, "nobody")
        self.renderer.render(self.led_frame, t, mood.mood_index, p, present=present,
                             have_model=have_model)
        self.health.use("leds", now, self._show)
        # words: off the hot path (the voice and OLED threads make and draw them)
        new = self.speaker.update(mood.mood, t, p)
        if new is not None:
            self.phrase = new
            if new:
                self.journal.mark("phrase", new, by=self.phrase_by)
        if self.oled is not None:
            self.oled.submit(self.phrase, mood.mood, "" if have_model else "no model",
                             p["display_contrast"], self.display_on(p, quiet))

    def _show(self, leds) -> None:
        leds.show(self.led_frame)

    def display_on(self, p: dict, quiet: bool) -> bool:
        return bool(p["display_enabled"]) and not (quiet and p["quiet_mode"] == "sleep")

    def apply_light(self, p: dict, quiet: bool) -> None:
        """Brightness (the quiet hours' level at night) and the power cap, to the strip."""
        leds = self.body.leds
        if leds is None:
            return
        leds.brightness = self.led_base * light_level(p, quiet)
        cap = float(p["power_cap_ma"])
        leds.power_cap_ma = cap if self.led_cap is None else min(cap, self.led_cap)

    def param_note(self, name: str, value) -> str | None:
        """A word on a value the hardware overrides (for the console's get/set answers)."""
        if name == "power_cap_ma" and self.led_cap is not None and value > self.led_cap:
            return (f"the hardware profile caps the LEDs at {self.led_cap:g} mA, so "
                    f"{self.led_cap:g} mA applies")
        return None

    def shown(self, p: dict, quiet: bool, mood: str, have_model: bool) -> dict:
        """What a visitor sees right now: ``leds``, the ring as last sent to the strip
        (brightness and power cap applied), one ``rrggbb`` group per pixel; ``oled``, what
        the display was asked to draw (the words ``render_oled`` draws its picture from)."""
        strip = self.body.leds
        return {"leds": strip.last_frame.tobytes().hex() if strip is not None else "",
                "oled": {"text": self.phrase, "mood": mood, "by": self.phrase_by,
                         "footer": "" if have_model else "no model",
                         "on": self.display_on(p, quiet) and self.body.display is not None,
                         "contrast": int(p["display_contrast"])}}

    def shutdown(self, p: dict) -> None:
        """LEDs off, display blank, OLED thread stopped (each tolerant of dead parts)."""
        if self.body.leds is not None:
            try:
                self.body.leds.off()
            except (PartError, OSError):
                pass
        if self.oled is not None:
            self.oled.submit("", "", "", int(p["display_contrast"]), False)
            self.oled.flush(1.0)
            self.oled.close()
