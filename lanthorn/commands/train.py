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
    parser.add_argument("--epochs", type=int, default=None,
                        help="at most this many epochs (default: from the dataset's size; 40 "
                             "for the default piece)")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop after this many epochs without a better held-out accuracy "
                             "(default: from the dataset's size; 8 for the default piece)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 0.003)")
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
    parser.add_argument("--summary", help="also write the training summary as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from lanthorn.device.dataset import load_dataset
    from lanthorn.host.train import train
    from lanthorn.quantize import quality
    from lanthorn.quantize.dataspec import DataSpec, auto_spec, prepare
    from lanthorn.quantize.net import ArchConfig

    if any(v is not None and v < 1 for v in (args.epochs, args.patience, args.batch)) \
            or not args.lr > 0:
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
    say = (lambda *a: None) if args.quiet else print

    def spec_for(window: int | None) -> DataSpec:
        spec = DataSpec()
        if args.split_seed is not None:
            spec.split_seed = args.split_seed
        if window is not None:
            spec.window, spec.hop = window, max(1, window // 16)
        if args.hop is not None:
            spec.hop = args.hop
        spec.pad_short = pad_short
        return spec

    windows = [args.window]
    ds = load_dataset(args.data)
    # one labelled instance per take: short takes are padded rather than dropped
    pad_short = bool(ds.recordings) and all(len(set(r.labels.tolist())) == 1
                                            for r in ds.recordings)
    if args.window is None:
        windows, why = auto_spec(ds)
        say(f"for this dataset: {why}")

    def fit(window, out, quiet_log):
        splits = prepare(args.data, spec_for(window))
        # refuse before the minutes of training: a class without examples cannot be learnt
        quality.enforce(quality.class_gates(splits.spec.labels, splits.train.y, None),
                        args.force)
        import copy
        return train(args.data, out, spec=splits.spec, arch=copy.deepcopy(arch), seed=args.seed,
                     epochs=args.epochs, patience=args.patience, lr=args.lr, batch=args.batch,
                     progress=not args.quiet, splits=splits, force=args.force,
                     log=(lambda *a: None) if quiet_log else print)

    if len(windows) == 1:
        summary = fit(windows[0], args.out, False)
    else:
        # a small validation search: one short model per candidate window, chosen on the
        # validation sessions only (the test sessions judge the winner, never choose it)
        with tempfile.TemporaryDirectory() as tmp:
            tried = []
            for w in windows:
                got = fit(w, Path(tmp) / f"w{w}.onnx", True)
                tried.append((got["val_accuracy"], w, got))
                say(f"  window {w}: validation accuracy {100 * got['val_accuracy']:.1f}%")
            # a tie goes to the longer window: it sees more of each take (losses of
            # different windows are not comparable; measured on GunPoint: 150 frames 100 %,
            # 75 frames 95 %, both 100 % on the 9 validation takes)
            best = max(tried, key=lambda t: (t[0], t[1]))
            say(f"chose window {best[1]} frames (best on the validation sessions)")
            summary = best[2]
            summary["window_search"] = {str(w): round(a, 4) for a, w, _ in tried}
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / f"w{best[1]}.onnx", out)
            shutil.copyfile(Path(tmp) / f"w{best[1]}.pt", out.with_suffix(".pt"))
        print(f"held-out {summary['quality']['held_out']} accuracy "
              f"{100 * summary['test_accuracy']:.1f}% (window {best[1]}; "
              f"{'ring rotation' if summary['data_spec']['ring'] else 'no ring declared: no rotation'}"
              f"); wrote {args.out}")
    if args.summary:
        from lanthorn.device.atomic import atomic_write_bytes
        atomic_write_bytes(args.summary, json.dumps(summary, indent=2).encode())
    # written either way (to inspect it), but a failed gate is a non-zero exit
    quality.enforce(summary["quality"]["gates"], args.force,
                    what=f"{args.out} was written but is not fit to use: ")
    return 0
