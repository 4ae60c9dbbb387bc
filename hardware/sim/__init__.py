"""The simulated object: a scripted visitor, virtual parts, and pictures of what it shows.

* :mod:`.visitor` -- ``simulate``/``session``: synthetic sensor traces with honest labels
  (offline, for training data), and the live ``World`` behind the virtual parts.
* :mod:`.gestures`, :mod:`.physics` -- what a visitor does and what the chips measure.
* :mod:`.parts` -- ``open_sim_body``: a :class:`~lanthorn.hardware.interfaces.Body` whose
  sensors read the visitor at the current (injectable) clock time.
* :mod:`.render`, :mod:`.window` -- the LED ring and OLED as images, animated GIFs and a live
  window where pads can be touched with the mouse (PIL, luma.emulator and pygame are
  imported only when used).

Showing a body (what ``lanthorn demo`` does; the command only wires these)::

    renderer, gif = Renderer(), GifRecorder(fps=12.5)
    gif.add(renderer.body_frame(body, caption="t = 1.00 s"))  # what its LEDs/OLED were sent
    gif.write("out/demo/demo.gif")
    with LiveWindow(body, renderer) as win:                     # WindowUnavailable if no display
        while win.poll():                                       # mouse -> body.touch_at(angle)
            ...                                                 # run the piece one tick
            win.show_body(caption)

Imports only the standard library and numpy.
"""
from .gestures import GESTURES, HANDS, TOUCH_GESTURES, Hand, Segment, SimError
from .parts import SimBody, SimClock, open_sim_body
from .render import GifRecorder, Renderer, RingLayout
from .visitor import SimTrace, World, session, simulate
from .window import LiveWindow, WindowUnavailable

__all__ = ["GESTURES", "HANDS", "TOUCH_GESTURES", "GifRecorder", "Hand", "LiveWindow", "Renderer",
           "RingLayout", "Segment", "SimBody", "SimClock", "SimError", "SimTrace", "WindowUnavailable",
           "World", "open_sim_body", "session", "simulate"]
