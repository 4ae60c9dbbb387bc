"""The simulated object: a scripted visitor, virtual parts, and pictures of what it shows.

* :mod:`.visitor` -- ``simulate``/``session``: synthetic sensor traces with honest labels
  (offline, for training data), and the live ``World`` behind the virtual parts.
* :mod:`.gestures`, :mod:`.physics` -- what a visitor does and what the chips measure.
* :mod:`.parts` -- ``open_sim_body``: a :class:`~lanthorn.hardware.interfaces.Body` whose
  sensors read the visitor at the current (injectable) clock time.
* :mod:`.render`, :mod:`.window` -- the LED ring and OLED as images, animated GIFs and a live
  window where pads can be touched with the mouse (PIL, luma.emulator and pygame are
  imported only when used).

Imports only the standard library and numpy.
"""
from .gestures import GESTURES, HANDS, TOUCH_GESTURES, Hand, Segment, SimError
from .parts import SimBody, SimClock, open_sim_body
from .visitor import SimTrace, World, session, simulate

__all__ = ["GESTURES", "HANDS", "TOUCH_GESTURES", "Hand", "Segment", "SimBody", "SimClock",
           "SimError", "SimTrace", "World", "open_sim_body", "session", "simulate"]
