"""The shipped default model of the default piece.

``temperament.lanthorn`` recognises how the lantern is being touched (nobody, approach, tap,
double tap, stroke clockwise/anticlockwise, hold, palm, leave) from a 2 s window of the 14
sensor channels at 25 Hz. It is rebuilt by ``make model`` (scripts/make_model.py) from
seeded synthetic data; ``report.json`` beside it holds the measured accuracies, sizes and
MACs, ``temperament.onnx`` the float model it was quantized from (so the build can be
checked for reproducibility without retraining). Standard library only.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

#: the default bundle the device loads when the artist has pushed none
DEFAULT_BUNDLE = HERE / "temperament.lanthorn"
#: the figures ``make model`` measured (float/int8 accuracy, bytes, MACs, pruned variant)
REPORT = HERE / "report.json"


def default_bundle() -> Path:
    """Path of the shipped bundle (raises FileNotFoundError if this install lacks it)."""
    if not DEFAULT_BUNDLE.is_file():
        raise FileNotFoundError(2, "the shipped default model is missing from this install",
                                str(DEFAULT_BUNDLE))
    return DEFAULT_BUNDLE
