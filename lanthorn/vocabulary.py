"""The default piece's vocabulary: the one place for the names every layer shares.

Gestures the default model knows (in its output order), the moods and palettes the
behaviour speaks in, the parts a body is made of, where the object keeps its state and the
serial line's speed. Each fact is spelled here once; the runtime (``lanthorn.device``), the
hardware layer and the artist's tools import it, so a renamed mood or a new part cannot drift
between the simulator, the profile checker, the console and the model's labels.

Standard library only, and a leaf module (it imports nothing of lanthorn), because the
hardware layer, the lowest one, reads it too. An artist's *own* piece may declare other
labels and moods in its bundle and parameters; these are the defaults the project ships.
"""
from __future__ import annotations

from pathlib import Path

#: The default piece's gestures, in the model's output order (the simulator performs the
#: same ones; ``lanthorn.device.piece.frames`` and ``lanthorn.hardware.sim`` import them from here).
LABELS: tuple[str, ...] = ("nobody", "approach", "tap", "double_tap", "stroke_cw",
                           "stroke_ccw", "hold", "palm", "leave")

#: The moods of the default temperament (``lanthorn.device.piece.behaviour``), in display order.
MOODS: tuple[str, ...] = ("calm", "curious", "delighted", "shy", "agitated")

#: LED palettes the ``palette`` parameter can name.
PALETTES: tuple[str, ...] = ("ember", "tide", "moss", "dusk", "mono")

#: Parts that are read (sensors) and parts that are driven, as a profile's ``[parts]`` names them.
SENSOR_ROLES: tuple[str, ...] = ("touch", "distance", "light")
OUTPUT_ROLES: tuple[str, ...] = ("leds", "display")
ROLES: tuple[str, ...] = SENSOR_ROLES + OUTPUT_ROLES

#: The pieces the repository ships, by name, and the simulator profile each runs on
#: (``lanthorn demo --piece NAME``): the default lantern, and a bowl that feels being
#: lifted, tilted, shaken and knocked, sees a visitor come near, and has a knob and a button.
PIECES: dict[str, str] = {"lantern": "sim", "bowl": "bowl-sim"}
DEFAULT_PIECE = "lantern"

#: Where an installed object keeps its models, parameters and recordings (systemd's
#: StateDirectory=lanthorn); on a laptop the user's XDG data folder is used instead.
SYSTEM_DATA_DIR = Path("/var/lib/lanthorn")
USER_DATA_SUBDIR = "lanthorn"

#: The serial console's and the companion link's line speed (8N1). Every port opener,
#: client and profile default takes it from here.
BAUD = 115200
