"""A live window onto the simulated object, where the ring can be touched with the mouse.

:class:`LiveWindow` shows the same picture as the GIFs (:class:`.render.Renderer`) in a
pygame window and turns the mouse into a fingertip: pressing the button on the pad ring
puts a finger there, dragging moves it around the ring (a stroke, touching two pads partly
when between them, as a real finger does), releasing lifts it. The right button lays a
palm on the ring instead. Close the window or press Esc/q to stop.

It fails with a clear :class:`WindowUnavailable` (a UserError) when there is no display to
open a window on -- no X11/Wayland session, or SDL cannot open its video driver -- so a
command can tell the person to write a GIF instead. Headless tests run it with
``SDL_VIDEODRIVER=dummy`` and post synthetic mouse events.

pygame is imported when a window is created, not at module import.
"""
from __future__ import annotations

import os
import sys

from lanthorn.errors import UserError, install_hint

from .render import Renderer


class WindowUnavailable(UserError):
    """No display to open the live window on."""


HINT = "run without --window to write a GIF instead"


def _no_display_reason() -> str | None:
    """Why no window can open here, judged before SDL tries (None: worth trying)."""
    if os.environ.get("SDL_VIDEODRIVER"):
        return None  # the caller chose a driver (dummy, x11, wayland, kmsdrm, ...): let SDL try
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return "no display: neither DISPLAY nor WAYLAND_DISPLAY is set"
    return None


class LiveWindow:
    """A pygame window showing ``body`` (a SimBody), with mouse touch. See the module docstring."""

    def __init__(self, body, renderer: Renderer | None = None,
                 title: str = "lanthorn - simulated piece"):
        reason = _no_display_reason()
        if reason:
            raise WindowUnavailable(f"cannot open the live window: {reason}; {HINT}")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError:
            raise WindowUnavailable("the live window needs pygame: " + install_hint("sim")) from None
        self.pygame = pygame
        self.body = body
        self.renderer = renderer or Renderer()
        try:
            pygame.display.init()
            self.screen = pygame.display.set_mode(self.renderer.size)
        except pygame.error as exc:
            pygame.display.quit()
            raise WindowUnavailable(f"cannot open the live window: SDL says {exc!s}; {HINT}") from None
        pygame.display.set_caption(title)
        self.dragging = 0  # the mouse button held down (1 finger, 3 palm), 0 for none
        self.open = True

    # -- mouse and keys -------------------------------------------------------------------
    def poll(self) -> bool:
        """Handle pending events (mouse touch, quit). False once the person closed the window."""
        pg = self.pygame
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN
                                          and event.key in (pg.K_ESCAPE, pg.K_q)):
                self.open = False
            elif event.type == pg.MOUSEBUTTONDOWN and event.button in (1, 3):
                self.dragging = event.button
                self._hand(event.pos)
            elif event.type == pg.MOUSEMOTION and self.dragging:
                self._hand(event.pos)
            elif event.type == pg.MOUSEBUTTONUP and event.button == self.dragging:
                self.dragging = 0
                self.body.touch_at(None)
        return self.open

    def _hand(self, pos) -> None:
        """Finger (left button) or palm (right) on the ring under the mouse; lifted when the
        mouse leaves the ring."""
        self.body.touch_at(self.renderer.layout.angle_at(*pos), palm=self.dragging == 3)

    # -- picture ---------------------------------------------------------------------------
    def show(self, image) -> None:
        """Put an RGB PIL image of the renderer's size on the screen."""
        surface = self.pygame.image.frombytes(image.tobytes(), image.size, "RGB")
        self.screen.blit(surface, (0, 0))
        self.pygame.display.flip()

    def show_body(self, caption: str = ""):
        """Render the body as it is now and show it; returns the picture (e.g. for a GIF)."""
        picture = self.renderer.body_frame(self.body, caption)
        self.show(picture)
        return picture

    def close(self) -> None:
        if self.open or self.pygame.display.get_init():
            self.pygame.display.quit()
        self.open = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
