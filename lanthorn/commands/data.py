"""curate training data: synthesise, import CSV, declare sources, show what is in a dataset"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lanthorn.commands._options import add_provenance
from lanthorn.device.piece.frames import DEFAULT_RATE_HZ
from lanthorn.device.storage import dataset as dsf
from lanthorn.device.storage.dataset import DataError, Source
from lanthorn.host import curate
from lanthorn.host.curate import SYNTH_SOURCE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    _synth_arguments(sub)
    _import_arguments(sub)
    _source_arguments(sub)
    _dataset_arguments(sub)


def _synth_arguments(sub) -> None:
    p = sub.add_parser("synth", help="write honestly labelled synthetic data from the gesture simulator")
    p.add_argument("--out", required=True, help="dataset folder (created if missing)")
    p.add_argument("--minutes", type=float, default=20.0, help="total simulated time (default 20)")
    p.add_argument("--session-seconds", type=float, default=60.0,
                   help="length of each simulated session (default 60)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same data (default 0)")
    p.add_argument("--source", default=SYNTH_SOURCE, help=f"source name (default {SYNTH_SOURCE})")
    p.add_argument("--gzip", action="store_true", help="write .csv.gz recordings (smaller)")
    p.add_argument("--profile", help="a hardware profile (shipped name or .toml): the simulated "
                                     "visitor handles that body (lift, tilt, shake, knock, "
                                     "approach, press, turn) and its own channels are written; "
                                     "default: the default piece's ring of pads")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE_HZ,
                   help="with --profile, frames per second of a new dataset (default 25)")


def _import_arguments(sub) -> None:
    p = sub.add_parser("import", help="add a CSV stream (one sample per line) as a recording",
                       description=IMPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="CSV/TSV/space separated file, one frame per line")
    p.add_argument("--split", choices=dsf.SIDES,
                   help="pin the imported sessions to a side of the held-out split, to "
                        "reproduce a published train/test split: --split test for its test "
                        "part, --split train for its training part (validation sessions are "
                        "then taken from it, never from test); default: chosen once by "
                        "lanthorn and never moved")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--source", required=True, help="source (declared with 'data add-source')")
    p.add_argument("--label", help="label of every row (otherwise a label column is required)")
    p.add_argument("--rate", type=float, help="sample rate of the file in Hz (default: the dataset's)")
    p.add_argument("--resample", action="store_true",
                   help="resample to the dataset's rate when --rate differs")
    p.add_argument("--session", help="session id (default: from the file name)")
    p.add_argument("--raw", action="store_true",
                   help="values are sensor readings (12 pad deltas in counts, distance mm, lux) "
                        "rather than encoded frames")
    p.add_argument("--skip-columns", metavar="A,B", default="",
                   help="header columns to leave out (e.g. a second sensor's); any other "
                        "unknown column is refused")
    p.add_argument("--keep-duplicates", action="store_true",
                   help="keep a session identical to another (flagged, on its twin's side of "
                        "the split), as published archives sometimes hold one instance twice; "
                        "default: refused")


def _source_arguments(sub) -> None:
    p = sub.add_parser("add-source", help="declare who made recordings and under what consent")
    p.add_argument("data", help="dataset folder (created if missing)")
    add_provenance(p, "signed form 2026-05-02", "recorded")
    p.add_argument("--device", default="", help="which object or sensor recorded it")
    p.add_argument("--weight", type=float, default=1.0, help="how much it counts in training")
    p.add_argument("--synthetic", action="store_true", help="machine-made, no person involved")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE_HZ,
                   help="dataset frame rate when creating a new dataset (default 25)")
    p.add_argument("--labels", help="comma-separated class names when creating a new dataset "
                                    "(default: the default piece's; the first one is 'nothing "
                                    "happening')")
    p.add_argument("--replace", action="store_true", help="update an existing source")
    _layout_arguments(p)


def _dataset_arguments(sub) -> None:
    p = sub.add_parser("new", help="create an empty dataset for your own sensors: channels, "
                                   "units, ranges, rate and labels",
                       description=CHANNELS_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="dataset folder to create")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE_HZ,
                   help="frames per second (default 25)")
    p.add_argument("--labels", help="comma-separated class names; the first one is 'nothing "
                                    "happening' (default: the default piece's)")
    _layout_arguments(p)

    p = sub.add_parser("add-label", help="add a class (a new gesture to teach) to a dataset")
    p.add_argument("data", help="dataset folder")
    p.add_argument("label", help="the new class name, e.g. wave")

    p = sub.add_parser("info", help="counts per label and source, balance, provenance warnings")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")



IMPORT_HELP = """\
Add a CSV stream as one or more sessions of a dataset.

The file: one frame per line, comma/tab/semicolon/space separated; '#' lines are comments.
With a header row, columns are matched by name (the dataset's channels, plus 'label',
'session' and 't'/'time'/'timestamp'); without one, the columns are the channels in the
dataset's order, plus an optional label column first or last.

Values are ENCODED frames unless --raw. The default piece's encoding (device/piece/frames.py):
  pad0..pad11  touch strength = (baseline - raw count) / 100, clipped to 0..2
  distance     approach = 1 - mm / 1200, clipped to 0..1; 0 = nothing in range
  light        log10(1 + lux) / 4  (0 = dark, 1 = 10 000 lux)
With --raw (default piece only) give pad deltas in counts (0..1023), distance in mm
(0 or less: nothing in range) and lux; they are encoded as the device encodes them.
A dataset of your own sensors declares each channel's unit and range ('lanthorn data
new --channels ...'). Every value is checked against the declared range; the first one
outside it is refused with its line number (raw millimetres imported as encoded values, a
negative light level...). See DATA.md.
"""

CHANNELS_HELP = """\
Declare your sensors with --channels NAME[:UNIT[:LOW..HIGH]],...  e.g. an IMU at 10 Hz:

  lanthorn data new mydata --rate 10 --labels still,walk,run \\
      --channels ax:g:-8..8,ay:g:-8..8,az:g:-8..8,gx:dps:-2000..2000,gy:dps,gz:dps

UNIT is free text shown by 'data info'; LOW..HIGH is the range every imported value must
lie in (checked with line numbers). --ring a,b,c names channels that sit in a ring around
the object, in order: only then does training turn the ring as an augmentation.
"""


def _layout_arguments(p) -> None:
    p.add_argument("--channels", type=curate.parse_channels, default=None, metavar="NAME[:UNIT[:LO..HI]],...",
                   help="the dataset's channels when creating it (default: the default piece's "
                        "12 pads, distance and light)")
    p.add_argument("--ring", help="comma-separated channels that form a ring, in order (enables "
                                  "ring rotation in training; default: the default piece's pads)")


def run(args) -> int:
    return {"synth": synth_cmd, "import": import_cmd, "add-source": add_source_cmd,
            "info": info_cmd, "new": new_cmd, "add-label": add_label_cmd}[args.action](args)


def new_cmd(args) -> int:
    if (Path(args.data) / dsf.MANIFEST).exists():
        raise DataError("a dataset already exists here", Path(args.data) / dsf.MANIFEST)
    if not args.rate > 0:
        raise DataError(f"--rate must be positive, not {args.rate:g}")
    root = dsf.create_dataset(args.data, rate_hz=args.rate, labels=curate.parse_labels(args.labels),
                              **curate.layout(args.channels, args.ring))
    header, _, _ = dsf.read_manifest(root)
    print(f"created {root / dsf.MANIFEST}: {len(header['channels'])} channels "
          f"({', '.join(header['channels'])}) at {header['rate_hz']:g} Hz, labels "
          f"{', '.join(header['labels'])}" + (f", ring {', '.join(header['ring'])}"
                                              if header["ring"] else ", no ring"))
    print(f"next: lanthorn data add-source {args.data} NAME --author ... --consent ...")
    return 0


def add_label_cmd(args) -> int:
    labels = dsf.add_label(args.data, args.label)
    print(f"added label {args.label!r} to {args.data} (labels now: {', '.join(labels)})")
    print(f"next: demonstrate it, e.g. lanthorn record PORT {args.label} 10 --data {args.data}; "
          f"then train, and say what it feels like: lanthorn quantize ... --mood "
          f"{args.label}=delighted (or 'set gesture_moods {args.label}=delighted' on the console)")
    return 0


def synth_cmd(args) -> int:
    if args.profile:
        from lanthorn.device.piece.channel_layout import layout_for_profile
        from lanthorn.hardware.profile import load_profile
        from lanthorn.host.body_synth import synthesize_body
        profile = load_profile(args.profile)
        if not layout_for_profile(profile).is_default:
            synthesize_body(args.out, profile, args.minutes, args.seed, args.session_seconds,
                            args.source, args.gzip, args.rate)
            return 0
    curate.synthesize(args.out, args.minutes, args.seed, args.session_seconds, args.source,
                      args.gzip)
    return 0


def import_cmd(args) -> int:
    curate.import_stream(args.data, args.source, args.file, args.label, args.raw, args.rate,
                         args.resample, args.session, args.split,
                         warn=lambda text: print(text, file=sys.stderr),
                         keep_duplicates=args.keep_duplicates,
                         skip_columns=tuple(c.strip() for c in args.skip_columns.split(",")
                                            if c.strip()))
    return 0


def add_source_cmd(args) -> int:
    labels = curate.parse_labels(args.labels) if args.labels is not None else None
    root, src = curate.declare_source(
        args.data, Source(args.name, author=args.author, consent=args.consent,
                          licence=args.licence, date=args.date or curate.today(),
                          device=args.device, notes=args.notes, weight=args.weight,
                          synthetic=args.synthetic),
        labels, args.rate, args.channels, args.ring, args.replace)
    print(f"{'updated' if args.replace else 'declared'} source {src.name!r} in {root / dsf.MANIFEST}")
    if not src.consent and not src.synthetic:
        print("warning: no consent recorded for this source (--consent \"how it was given\")")
    return 0


def info_cmd(args) -> int:
    info = curate.summarize(args.data)
    print(json.dumps(info, indent=2) if args.json else curate.format_info(info),
          end="\n" if args.json else "")
    return 0
