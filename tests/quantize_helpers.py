"""Shared, cheap inputs for the quantize/prune/report tests: a small simulated dataset and
a tiny temperament net trained for two epochs (float ONNX + checkpoint), built once per
test module."""
from __future__ import annotations

from pathlib import Path

from lanthorn.quantize import net as nets
from lanthorn.quantize.dataspec import DataSpec


def quiet(*_args, **_kw):
    pass


def make_data(root: Path, minutes: float = 2.0, seed: int = 1) -> Path:
    from lanthorn.host.curate import synthesize
    synthesize(root, minutes=minutes, session_seconds=20, seed=seed, log=quiet)
    return root


def make_model(data: Path, out: Path, widths=(8, 12, 16), epochs: int = 2) -> Path:
    """float ONNX at ``out`` and its checkpoint at ``out.with_suffix('.pt')``."""
    from lanthorn.host.train import train
    train(data, out, spec=DataSpec(hop=10), arch=nets.ArchConfig(widths=widths), seed=0,
          epochs=epochs, patience=epochs, progress=False, log=quiet)
    return out
