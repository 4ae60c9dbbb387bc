"""``lanthorn quantize MODEL.onnx --data DATA --out X.lanthorn``: float ONNX → int8 bundle.

Calibrates on the dataset's training sessions, measures float against int8 on its held-out
sessions, optionally prunes (structured channels and/or unstructured magnitude) and writes
a report a person can read. See :mod:`lanthorn.quantize.quantizer` for the steps.
"""
from __future__ import annotations

from lanthorn.commands._options import add_signing_arguments, signed_note, signing_key
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


def _fractions(text: str) -> tuple[float, ...]:
    return tuple(_fraction(t) for t in text.split(",") if t.strip())


def add_arguments(parser):
    parser.add_argument("model", help="float ONNX model (static shape, batch 1)")
    parser.add_argument("--data", required=True,
                        help="dataset folder (calibration: training sessions; accuracy: "
                             "held-out sessions), or an .npz with x [, y, x_test, y_test, labels]; "
                             "for a voice model (lanthorn voice train), its text corpus")
    parser.add_argument("--out", required=True, help="bundle to write (.lanthorn)")
    parser.add_argument("--calibration", choices=METHODS, default="minmax",
                        help="how activation ranges are chosen (default: minmax)")
    parser.add_argument("--prune-channels", type=_fraction, default=0.0, metavar="F",
                        help="remove this fraction of convolution channels (structured)")
    parser.add_argument("--prune-sparsity", type=_fraction, default=0.0, metavar="F",
                        help="zero this fraction of weights by magnitude (unstructured)")
    parser.add_argument("--sweep", type=_fractions, default=(), metavar="F,F,...",
                        help="also try these channel-pruning fractions for the report "
                             "(evaluated, not written), e.g. 0.25,0.5,0.75")
    parser.add_argument("--checkpoint", help="training checkpoint (.pt) to fine-tune from "
                        "after pruning (default: MODEL with .pt, if it exists)")
    parser.add_argument("--no-finetune", action="store_true",
                        help="prune the ONNX directly, even when a checkpoint is available")
    parser.add_argument("--epochs", type=int, default=20,
                        help="fine-tuning epochs after pruning (with a checkpoint)")
    parser.add_argument("--no-bias-correction", action="store_true",
                        help="do not fold the expected weight-rounding error into the biases")
    parser.add_argument("--calibration-windows", type=int, default=None, metavar="N",
                        help="windows handed to the calibrator (default 256)")
    parser.add_argument("--report", metavar="DIR", help="write report.md, report.json and plots")
    parser.add_argument("--name", help="model name for the model card (default: from --out)")
    add_signing_arguments(parser)
    parser.add_argument("--mood", action="append", default=[], metavar="GESTURE=MOOD[:W],...",
                        help="what a gesture evokes, written into the model card (repeatable), "
                             "e.g. --mood wave=delighted: a newly taught gesture drives the "
                             "piece's mood wherever the bundle goes (the console's "
                             "gesture_moods parameter can still change it live)")
    parser.add_argument("--force", action="store_true",
                        help="score and write even when a quality gate fails (held-out sessions "
                             "the model trained on, accuracy near chance, an int8 drop beyond "
                             "the limit, a held-out split missing a class); recorded in the card")


def run(args) -> int:
    from pathlib import Path

    import onnxruntime

    from lanthorn.errors import UserError
    from lanthorn.quantize.quantizer import quantize_model

    key = signing_key(args)
    # onnxruntime's graph optimiser logs warnings about the temporary models the quantizer
    # builds (unused initializers and the like) that say nothing to an artist; errors stay.
    onnxruntime.set_default_logger_severity(3)
    from lanthorn.quantize.voice_quantize import is_voice_onnx
    if is_voice_onnx(args.model):   # a voice from 'lanthorn voice train': --data is its corpus
        from lanthorn.quantize.voice_quantize import quantize_voice, tasting_markdown
        report = quantize_voice(args.model, args.data, args.out, name=args.name,
                                report_dir=args.report, signing_key=key)
        print(tasting_markdown(report), end="")
        from lanthorn.device.engine.bundle import read_bundle
        print(f"{args.out}{signed_note(read_bundle(args.out))[1:]}")
        return 0
    ckpt = args.checkpoint
    if args.no_finetune:
        if args.checkpoint:
            raise UserError("--no-finetune and --checkpoint contradict each other; choose one")
    elif ckpt is None and (args.prune_channels or args.prune_sparsity or args.sweep):
        guess = Path(args.model).with_suffix(".pt")
        ckpt = str(guess) if guess.is_file() else None
    if args.epochs < 0:
        raise UserError("--epochs must be 0 or more")
    if args.calibration_windows is not None and args.calibration_windows < 1:
        raise UserError("--calibration-windows must be at least 1")
    moods = {}
    if args.mood:
        from lanthorn.device.piece.params import ParamError, parse_moods
        try:
            moods = parse_moods("; ".join(args.mood), "--mood")
        except ParamError as exc:
            raise UserError(str(exc)) from None
    result = quantize_model(args.model, args.data, args.out, calibration=args.calibration,
                   prune_channels=args.prune_channels, prune_sparsity=args.prune_sparsity,
                   checkpoint=ckpt, report_dir=args.report,
                   bias_correction=not args.no_bias_correction,
                   n_calib=args.calibration_windows, name=args.name,
                   finetune_epochs=args.epochs, sweep=args.sweep, signing_key=key,
                   force=args.force, enforce=True, gesture_moods=moods)
    print(f"{args.out}{signed_note(result.bundle)[1:]}")
    return 0
