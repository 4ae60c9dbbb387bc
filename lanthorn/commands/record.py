"""`lanthorn record PORT LABEL SECONDS --data DIR`: record a demonstration into a dataset."""
from __future__ import annotations

import sys
import time

from lanthorn.commands._options import add_baud
from lanthorn.device.storage.dataset import Source
from lanthorn.errors import UserError
from lanthorn.host import curate
from lanthorn.host.console_client import ConsoleClient


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
    parser.add_argument("--countdown", type=int, default=3, metavar="SECONDS",
                        help="count down this long before the take starts, to get in place "
                             "(default 3; 0: start at once)")
    add_baud(parser)


def run(args) -> int:
    if not 0.5 <= args.seconds <= 600:
        raise UserError(f"SECONDS must be between 0.5 and 600, got {args.seconds:g}")
    session = args.session or f"{args.label}-{time.strftime('%Y%m%d-%H%M%S')}"
    curate.check_take_target(args.data, args.label, session, args.source)
    if not 0 <= args.countdown <= 60:
        raise UserError(f"--countdown must be 0 to 60 seconds, got {args.countdown}")
    tty = sys.stderr.isatty()
    with ConsoleClient(args.port, args.baud, holder="lanthorn record") as client:
        countdown(args.countdown, args.label)    # the port is open: no surprise after it
        print(f"recording {args.label} for {args.seconds:g} s ...", file=sys.stderr, flush=True)
        # a live counter on a terminal; in a log (not a TTY) no carriage returns, one line
        rows, done = client.record(args.label, args.seconds, on_rows=(
            (lambda n: print(f"\r{n} frames", end="", file=sys.stderr, flush=True)) if tty
            else None))
        if tty:
            print(file=sys.stderr)
    rate = float(done["rate_hz"])
    given = Source(args.source, author=args.author, consent=args.consent, licence=args.licence,
                   date=time.strftime("%Y-%m-%d"), device=f"lanthorn console on {args.port}",
                   rate_hz=rate)
    path, source = curate.save_take(args.data, given, session, args.label, rows, rate,
                                    done["channels"], log=lambda t: print(t, file=sys.stderr))
    if not tty:
        print(f"{len(rows)} frames", file=sys.stderr)
    kept = (f"also kept on the device as {done['path']}" if done.get("path")
            else "not kept on the device")
    print(f"wrote {len(rows)} frames ({len(rows) / rate:.1f} s at {rate:g} Hz) of {args.label} "
          f"to {path} ({kept})")
    if not source.consent:
        print("note: no consent recorded for this source; add it with 'lanthorn data add-source "
              f"{args.data} {args.source} --consent ... --replace'", file=sys.stderr)
    return 0


def countdown(seconds: int, label: str, sleep=time.sleep) -> None:
    """``get ready to wave: 3 2 1 go``, one number a second, on stderr, so the performer
    is in place and moving when the first frame is kept."""
    if seconds <= 0:
        return
    print(f"get ready to {label}:", end="", file=sys.stderr, flush=True)
    for k in range(seconds, 0, -1):
        print(f" {k}", end="", file=sys.stderr, flush=True)
        sleep(1.0)
    print(" go", file=sys.stderr, flush=True)
