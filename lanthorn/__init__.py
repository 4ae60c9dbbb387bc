"""lanthorn: firmware and tooling for networkless art objects that carry a tiny int8 model.

Layers (dependencies point one way): ``lanthorn.host`` → ``lanthorn.quantize`` →
``lanthorn.device`` → ``lanthorn.hardware``. This top-level package holds only what every
layer shares: the version, the user-error type (``errors``), the default piece's vocabulary
(``vocabulary``: labels, moods, palettes, roles, data directory, baud) and, above every
layer, the command-line dispatcher (``cli``) with one thin module per command
(``lanthorn.commands``).
"""

__version__ = "0.3.0"
