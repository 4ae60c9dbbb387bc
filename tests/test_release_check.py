"""`lanthorn import` checks itself against onnxruntime's int8 QDQ path (issue 25).

The release check runs lanthorn's engines against the oracle on inputs generated over the
model's input range, refuses a real disagreement, records the oracle in the card, and says
in one line when stock onnxruntime on this CPU gives other numbers than its int8 QDQ path.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from lanthorn.device.engine.bundle import read_bundle
from lanthorn.device.engine.runtime import Model
from lanthorn.quantize.ort_oracle import quantize_feed
from lanthorn.quantize.qdq import quantize_qdq
from lanthorn.quantize.qdq_import import bundle_from_qdq
from lanthorn.quantize.release_check import (
    ReleaseCheckError,
    generated_feeds,
    release_check,
    stock_differs,
    stock_note,
)
from lanthorn.quantize.tiny_models import Net, random_inputs

ROOT = Path(__file__).resolve().parents[1]


def pooled(seed=0):
    """A conv + average pool: stock x86 onnxruntime runs the pool as uint8 (zero point
    + 128 added in float before rounding) and so rounds some averages differently."""
    n = Net("pooled", [1, 3, 12, 12], seed)
    n.conv(3, 16, 3, pad=1)
    n.relu()
    n.op("AveragePool", [n.cur], kernel_shape=[3, 3], strides=[3, 3])
    n.conv(16, 8, 1)
    return n.model(None)


def _import(q, out):
    return subprocess.run([sys.executable, "-m", "lanthorn", "import", str(q), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.parametrize("reduce_range", [True, False], ids=["7-bit", "full-range"])
def test_import_runs_the_check_records_the_oracle_and_notes_stock_onnxruntime(reduce_range,
                                                                              tmp_path):
    model = pooled()
    q = quantize_qdq(model, tmp_path / "q.onnx", random_inputs(model, 16, seed=1),
                     reduce_range=reduce_range)
    p = _import(q, tmp_path / "m.lanthorn")
    assert p.returncode == 0, p.stderr
    card = read_bundle(tmp_path / "m.lanthorn").card
    rec = card["oracle"]
    assert rec["onnxruntime"] == ort.__version__
    assert rec["options"] == {"session.qdqisint8allowed": "1"}
    assert rec["inputs"] >= 64 and rec["elements_equal"] > 0
    diff, total, _ = stock_differs(bundle_from_qdq(q), generated_feeds(bundle_from_qdq(q)))
    notes = [ln for ln in p.stdout.splitlines() if ln.startswith("note: stock onnxruntime")]
    if diff:        # whether stock differs is onnxruntime's business on this CPU: measured
        assert len(notes) == 1 and "session.qdqisint8allowed=1" in notes[0]
        assert f"{diff} of {total}" in notes[0]
        assert rec["stock_onnxruntime_differs"]["elements"] == diff
    else:
        assert not notes and "stock_onnxruntime_differs" not in rec


def test_the_note_names_the_saturation_and_both_options_where_it_applies(tmp_path):
    model = pooled()
    full = bundle_from_qdq(quantize_qdq(model, tmp_path / "f.onnx", random_inputs(model, 8),
                                        reduce_range=False))
    seven = bundle_from_qdq(quantize_qdq(model, tmp_path / "s.onnx", random_inputs(model, 8)))
    avx2 = {"avx2", "fma"}
    note = stock_note(full, 5, 700, 6, cpu="x86_64", flags=avx2)
    assert "saturates 16-bit pair sums" in note and "session.x64quantprecision=1" in note
    assert "\n" not in note and "5 of 700" in note and "6 LSB" in note
    for b, flags in ((seven, avx2), (full, avx2 | {"avx512_vnni"})):
        note = stock_note(b, 1, 10, 1, cpu="x86_64", flags=flags)
        assert "saturates" not in note and "session.qdqisint8allowed=1" in note


def test_generated_inputs_span_the_whole_input_range(tmp_path):
    model = pooled()
    b = bundle_from_qdq(quantize_qdq(model, tmp_path / "q.onnx", random_inputs(model, 8)))
    m = Model(b, "numpy")
    codes = np.concatenate([quantize_feed(m, f)[0].ravel() for f in generated_feeds(b, 8)])
    assert codes.min() == -128 and codes.max() == 127


def test_a_real_disagreement_is_refused(tmp_path):
    model = pooled()
    b = bundle_from_qdq(quantize_qdq(model, tmp_path / "q.onnx", random_inputs(model, 8)))
    release_check(b, log=lambda *_: None)            # exact as imported
    conv = next(la for la in b.graph.layers if la.op == "conv")
    conv.arrays["bias"] = conv.arrays["bias"] + 500  # the engine no longer computes the twin
    with pytest.raises(ReleaseCheckError, match="differs from onnxruntime's int8 QDQ path"):
        release_check(b, what="m.lanthorn", log=lambda *_: None)
