"""train the temperament model on a dataset folder and export float ONNX + a checkpoint"""
from __future__ import annotations

import argparse

from lanthorn.errors import UserError


def _widths(text: str) -> tuple[int, ...]:
    try:
        w = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--widths takes comma-separated integers, not {text!r}") from None
    if not w or min(w) < 1:
        raise argparse.ArgumentTypeError("--widths must be positive integers")
    return w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="dataset folder (see 'lanthorn data')")
    parser.add_argument("--out", required=True, help="float ONNX to write (checkpoint: same name .pt)")
    parser.add_argument("--seed", type=int, default=0, help="same seed and data, same weights (default 0)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="at most this many epochs (default: from the dataset's size; 40 "
                             "for the default piece)")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop after this many epochs without a better held-out accuracy "
                             "(default: from the dataset's size; 8 for the default piece)")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default 0.003; 0.002 when fine-tuning)")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default: from the dataset's size; 64 for the default piece)")
    parser.add_argument("--force", action="store_true",
                        help="write the model and exit 0 even when a quality gate fails "
                             "(empty classes, a held-out split missing a class, accuracy near "
                             "chance); the failures are recorded in the model card")
    parser.add_argument("--widths", type=_widths, default=None,
                        help="channels of each conv block, e.g. 16,32,32 (default: the standard temperament, 88k MACs)")
    parser.add_argument("--window", type=int, default=None,
                        help="frames the model reads at once (default: from the dataset: 2 s "
                             "of frames (50 at 25 Hz), or half the shortest take when each take "
                             "is one labelled instance)")
    parser.add_argument("--hop", type=int, default=None,
                        help="frames between training windows (default: window / 16, 3 for the "
                             "default piece)")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="seed of the held-out split by session (default 0)")
    parser.add_argument("--from", dest="base", metavar="MODEL",
                        help="fine-tune this model (its .onnx or .pt checkpoint): its feature "
                             "layers kept, a class head with the dataset's new labels, a few "
                             "epochs (default: the shipped model, when the dataset is the default "
                             "piece's with more labels)")
    parser.add_argument("--full", action="store_true",
                        help="train from scratch, never fine-tune")
    parser.add_argument("--old-data", metavar="DIR",
                        help="the dataset the --from model was trained on (default for the "
                             "shipped model: data/temperament): a sample of it is mixed in and "
                             "its held-out sessions judge the old gestures' recall")
    parser.add_argument("--no-old-data", action="store_true",
                        help="do not mix the old model's training data in")
    parser.add_argument("--no-validation", action="store_true",
                        help="train on the validation sessions too (all of a published "
                             "training part), every epoch, the last one kept; the test "
                             "sessions still judge it")
    parser.add_argument("--summary", help="also write the training summary as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import json

    from lanthorn.host.train import train_dataset
    from lanthorn.quantize import quality
    from lanthorn.quantize.net import ArchConfig

    if any(v is not None and v < 1 for v in (args.epochs, args.patience, args.batch)) \
            or not (args.lr is None or args.lr > 0):
        raise UserError("--epochs, --patience, --batch and --lr must be positive")
    if args.hop is not None and args.hop < 1:
        raise UserError("--hop must be at least 1")
    if args.window is not None and args.window < 8:
        raise UserError("--window must be at least 8 frames")
    arch = ArchConfig()
    if args.widths is not None:
        if len(args.widths) != len(arch.widths):
            raise UserError(f"--widths needs {len(arch.widths)} values (one per conv block)")
        arch.widths = args.widths
    summary = train_dataset(args.data, args.out, arch=arch, window=args.window, hop=args.hop,
                            split_seed=args.split_seed, force=args.force, quiet=args.quiet,
                            say=(lambda *a: None) if args.quiet else print, seed=args.seed,
                            epochs=args.epochs, patience=args.patience, lr=args.lr,
                            batch=args.batch, base_from=args.base, full=args.full,
                            old_data=args.old_data, mix_old=not args.no_old_data,
                            no_validation=args.no_validation)
    if "window_search" in summary:
        ring = "ring rotation" if summary["data_spec"]["ring"] else "no ring declared: no rotation"
        print(f"held-out {summary['quality']['held_out']} accuracy "
              f"{100 * summary['test_accuracy']:.1f}% (window {summary['window_chosen']}; "
              f"{ring}); wrote {args.out}")
    if args.summary:
        from lanthorn.device.storage.atomic import atomic_write_bytes
        atomic_write_bytes(args.summary, json.dumps(summary, indent=2).encode())
    # written either way (to inspect it), but a failed gate is a non-zero exit
    quality.enforce(summary["quality"]["gates"], args.force,
                    what=f"{args.out} was written but is not fit to use: ")
    return 0
