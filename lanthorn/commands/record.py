"""`lanthorn record PORT LABEL SECONDS --data DIR`: record a demonstration into a dataset."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from lanthorn.device import dataset
from lanthorn.device.frames import LABELS
from lanthorn.errors import UserError
from lanthorn.host.console_client import ConsoleClient
from lanthorn.commands._options import add_baud


def add_arguments(parser) -> None:
    parser.add_argument("port", help="serial port of the object, e.g. /dev/ttyACM0")
    parser.add_argument("label", help="the gesture being demonstrated (a new dataset takes the "
                                      "default labels plus this one)")
    parser.add_argument("seconds", type=float, help="how long to record")
    parser.add_argument("--data", required=True, help="dataset folder (created if missing)")
    parser.add_argument("--source", default="demonstrations",
                        help="source name in the manifest (default: demonstrations)")
    parser.add_argument("--author", default="", help="who demonstrated (new source only)")
    parser.add_argument("--consent", default="",
                        help='how consent was given, e.g. "verbal, 2026-11-23" (new source only)')
    parser.add_argument("--licence", default="", help="licence of the recordings (new source only)")
    parser.add_argument("--session", help="session name (default: LABEL-DATE-TIME)")
    add_baud(parser)


def run(args) -> int:
    if not 0.5 <= args.seconds <= 600:
        raise UserError(f"SECONDS must be between 0.5 and 600, got {args.seconds:g}")
    session = args.session or f"{args.label}-{time.strftime('%Y%m%d-%H%M%S')}"
    dataset._check_name("session", session)
    dataset._check_name("label", args.label)
    dataset._check_name("source", args.source)
    manifest = Path(args.data) / dataset.MANIFEST
    if manifest.exists():  # check before the person performs, not after
        header, _, _ = dataset.read_manifest(args.data)
        if args.label not in header["labels"]:
            raise UserError(f"{args.data} has no label {args.label!r} (its labels: "
                            f"{', '.join(header['labels'])}); to teach a new gesture, add it "
                            f"first: lanthorn data add-label {args.data} {args.label}")
    tty = sys.stderr.isatty()
    with ConsoleClient(args.port, args.baud, holder="lanthorn record") as client:
        print(f"recording {args.label} for {args.seconds:g} s ...", file=sys.stderr, flush=True)
        # a live counter on a terminal; in a log (not a TTY) no carriage returns, one line
        rows, done = client.record(args.label, args.seconds, on_rows=(
            (lambda n: print(f"\r{n} frames", end="", file=sys.stderr, flush=True)) if tty
            else None))
        if tty:
            print(file=sys.stderr)
    rate, channels = float(done["rate_hz"]), done["channels"]
    if not manifest.exists():
        labels = list(LABELS) + ([args.label] if args.label not in LABELS else [])
        dataset.create_dataset(args.data, rate, channels, labels)
    header, sources, _ = dataset.read_manifest(args.data)
    if list(header["channels"]) != list(channels):
        raise UserError(f"{args.data} has channels {', '.join(header['channels'])} but the "
                        f"device records {', '.join(channels)}; use another --data folder")
    if args.source not in sources:
        dataset.add_source(args.data, dataset.Source(
            args.source, author=args.author, consent=args.consent, licence=args.licence,
            date=time.strftime("%Y-%m-%d"), device=f"lanthorn console on {args.port}",
            rate_hz=rate))
    else:
        # provenance given for an existing source is recorded, not silently dropped
        src = sources[args.source]
        given = {k: v for k, v in (("author", args.author), ("consent", args.consent),
                                   ("licence", args.licence)) if v and getattr(src, k) != v}
        if given:
            for k, v in given.items():
                setattr(src, k, v)
            dataset.add_source(args.data, src, replace=True)
            print(f"updated {', '.join(given)} of source {args.source!r}", file=sys.stderr)
    path = dataset.write_recording(args.data, args.source, session, rows, args.label, rate_hz=rate)
    if not tty:
        print(f"{len(rows)} frames", file=sys.stderr)
    kept = (f"also kept on the device as {done['path']}" if done.get("path")
            else "not kept on the device")
    print(f"wrote {len(rows)} frames ({len(rows) / rate:.1f} s at {rate:g} Hz) of {args.label} "
          f"to {path} ({kept})")
    if not args.consent and not sources.get(args.source, dataset.Source("x")).consent:
        print("note: no consent recorded for this source; add it with 'lanthorn data add-source "
              f"{args.data} {args.source} --consent ... --replace'", file=sys.stderr)
    return 0
