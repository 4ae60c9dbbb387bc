"""Quantize a float ONNX model to QDQ int8 with onnxruntime's own ``quantize_static``.

The one place lanthorn calls onnxruntime's quantizer: ``lanthorn quantize`` (an artist's
model), the voice, ``make model`` and the tiny test models all go through
:func:`quantize_qdq`, so every int8 model the engines import was made with the same
options (QDQ, per-channel, S8S8, dedicated Q/DQ pairs, 7-bit weights on request) and the
same operator list (:func:`op_types_to_quantize`). Host-side only: imports onnx and
onnxruntime lazily, inside the functions.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path


def op_types_to_quantize() -> list[str]:
    """The operators onnxruntime calibrates and wraps in Q/DQ for us: its own default (the
    operators in its registries) plus every elementwise activation the engine runs as a
    lookup table. Without the latter, an activation outside onnxruntime's registries (Erf,
    Tanh, Gelu, ...) stays in float between int8 layers and the model cannot be imported;
    with it, each gets its own Q/DQ pair and the engine's table gives onnxruntime's integers
    (tested per activation). A superset of the default, so other models are unchanged."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    from lanthorn.quantize.qdq_import import UNARY_LUT_OPS
    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry) | UNARY_LUT_OPS)


def quantize_qdq(float_model, out_path, calib_inputs, dedicated_pairs: bool = True,
                 reduce_range: bool = True, calibrate_method=None,
                 calibration_cache=None) -> Path:
    """Quantize a float ONNX model (ModelProto or path) with onnxruntime's quantize_static
    (QDQ, per-channel, S8S8) on ``calib_inputs`` (an iterable of {input name: array}).

    ``calibrate_method`` is onnxruntime's CalibrationMethod (default MinMax); this is the
    one quantize_static call in lanthorn (``lanthorn quantize`` goes through it too).
    ``calibration_cache`` (a JSON file from onnxruntime's save_tensors_data) supplies
    precomputed activation ranges instead of calibrating on ``calib_inputs``.

    ``dedicated_pairs`` (onnxruntime's ``DedicatedQDQPair`` option) gives every consumer of
    a tensor its own Q/DQ pair (same numbers). It does not change what onnxruntime runs:
    stock onnxruntime on x86 keeps the node groups around a tensor with two readers (a
    skip connection, a branch) in float with or without it, and its int8 QDQ path
    (``session.qdqisint8allowed=1``, lanthorn's oracle, the path taken on ARM) fuses every
    node group either way (measured; tests/test_import_branches.py).

    ``reduce_range`` (7-bit weights) is what onnxruntime recommends on x86 with AVX2: there
    stock onnxruntime runs int8 convolutions as u8 x s8 with VPMADDUBSW, whose int16 pair
    sums saturate for full-range weights, so its integers drift (we measured up to 42 LSB)
    from the exact int32 arithmetic lanthorn (and onnxruntime's int8 QDQ path) computes.
    Full-range weights are exact against the oracle too; ``lanthorn import`` says when
    stock onnxruntime on the CPU at hand differs."""
    import onnx
    from onnxruntime import quantization as ortq
    out_path = Path(out_path)

    class _Reader(ortq.CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib_inputs)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src = float_model
        if not isinstance(float_model, (str, Path)):
            src = Path(tmp) / "float.onnx"
            onnx.save(float_model, str(src))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_static nags about pre-processing via root logging
        try:
            ortq.quantize_static(
                str(src), str(out_path), _Reader(), quant_format=ortq.QuantFormat.QDQ,
                per_channel=True, activation_type=ortq.QuantType.QInt8,
                weight_type=ortq.QuantType.QInt8, reduce_range=bool(reduce_range),
                calibrate_method=calibrate_method or ortq.CalibrationMethod.MinMax,
                calibration_cache_path=str(calibration_cache) if calibration_cache else None,
                op_types_to_quantize=op_types_to_quantize(),
                extra_options={"DedicatedQDQPair": bool(dedicated_pairs)})
        finally:
            root.setLevel(level)
    return out_path
