"""``lanthorn quantize MODEL.onnx --data DATA --out X.lanthorn``: float ONNX → int8 bundle.

Calibrates on the dataset's training sessions, measures float against int8 on its held-out
sessions, optionally prunes (structured channels and/or unstructured magnitude) and writes
a report a person can read. See :mod:`lanthorn.quantize.quantizer` for the steps.
"""
from __future__ import annotations

from lanthorn.quantize.calibrate import METHODS


def _fraction(text: str) -> float:
    import argparse
    try:
        f = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= f < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1)")
    return f


def add_arguments(parser):
    parser.add_argument("model", help="float ONNX model (static shape, batch 1)")
    parser.add_argument("--data", required=True,
                        help="dataset folder (calibration: training sessions; accuracy: "
                             "held-out sessions), or an .npz with x [, y, x_test, y_test, labels]")
    parser.add_argument("--out", required=True, help="bundle to write (.lanthorn)")
    parser.add_argument("--calibration", choices=METHODS, default="minmax",
                        help="how activation ranges are chosen (default: minmax)")
    parser.add_argument("--no-bias-correction", action="store_true",
                        help="do not fold the expected weight-rounding error into the biases")
    parser.add_argument("--calibration-windows", type=int, default=None, metavar="N",
                        help="windows handed to the calibrator (default 256)")
    parser.add_argument("--name", help="model name for the model card (default: from --out)")


def run(args) -> int:
    from lanthorn.errors import UserError
    from lanthorn.quantize.quantizer import quantize_model

    if args.calibration_windows is not None and args.calibration_windows < 1:
        raise UserError("--calibration-windows must be at least 1")
    quantize_model(args.model, args.data, args.out, calibration=args.calibration,
                   bias_correction=not args.no_bias_correction,
                   n_calib=args.calibration_windows, name=args.name)
    return 0
