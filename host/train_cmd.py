"""train the temperament model on a dataset folder and export float ONNX + a checkpoint"""
from __future__ import annotations

import argparse

from lanthorn.errors import UserError


def _widths(text: str) -> tuple[int, ...]:
    try:
        w = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--widths takes comma-separated integers, not {text!r}")
    if not w or min(w) < 1:
        raise argparse.ArgumentTypeError("--widths must be positive integers")
    return w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="dataset folder (see 'lanthorn data')")
    parser.add_argument("--out", required=True, help="float ONNX to write (checkpoint: same name .pt)")
    parser.add_argument("--seed", type=int, default=0, help="same seed and data, same weights (default 0)")
    parser.add_argument("--epochs", type=int, default=40, help="at most this many epochs (default 40)")
    parser.add_argument("--patience", type=int, default=8,
                        help="stop after this many epochs without a better held-out accuracy (default 8)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 0.003)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--widths", type=_widths, default=None,
                        help="channels of each conv block, e.g. 16,32,32 (default: the standard temperament, 88k MACs)")
    parser.add_argument("--window", type=int, default=None,
                        help="frames the model reads at once (default 50: 2 s at 25 Hz)")
    parser.add_argument("--hop", type=int, default=None, help="frames between training windows (default 3)")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="seed of the held-out split by session (default 0)")
    parser.add_argument("--summary", help="also write the training summary as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import json

    from lanthorn.host.train import train
    from lanthorn.quantize.dataspec import DataSpec
    from lanthorn.quantize.net import ArchConfig

    if args.epochs < 1 or args.patience < 1 or args.batch < 1 or not args.lr > 0:
        raise UserError("--epochs, --patience, --batch and --lr must be positive")
    spec = DataSpec()
    if args.hop is not None:
        if args.hop < 1:
            raise UserError("--hop must be at least 1")
        spec.hop = args.hop
    if args.window is not None:
        if args.window < 8:
            raise UserError("--window must be at least 8 frames")
        spec.window = args.window
    if args.split_seed is not None:
        spec.split_seed = args.split_seed
    arch = ArchConfig()
    if args.widths is not None:
        if len(args.widths) != len(arch.widths):
            raise UserError(f"--widths needs {len(arch.widths)} values (one per conv block)")
        arch.widths = args.widths
    summary = train(args.data, args.out, spec=spec, arch=arch, seed=args.seed,
                    epochs=args.epochs, patience=args.patience, lr=args.lr, batch=args.batch,
                    progress=not args.quiet)
    if args.summary:
        from lanthorn.device.atomic import atomic_write_bytes
        atomic_write_bytes(args.summary, json.dumps(summary, indent=2).encode())
    return 0
