"""lanthorn companion PORT: is the microcontroller on this port a working lanthorn companion?

What a maker runs right after flashing a Nano or Pico, before writing a profile: it says
HELLO and prints what the firmware reports (version, board, pads, LEDs, whether its MPR121
answered), the PING round trip and the companion's own counters. ``--watch S`` prints every
change of the touched pads for S seconds (touch each pad in turn to check the wiring);
``--leds`` walks one dim pixel round the ring so you can see pixel 0 and the direction.
Exit 0 when it answers; a port that is missing or silent is a one-line error (exit 2).
"""
from __future__ import annotations

from lanthorn.commands._options import add_baud
from lanthorn.errors import UserError
from lanthorn.hardware.companion import check
from lanthorn.hardware.companion.backend import CompanionLink
from lanthorn.hardware.interfaces import PartError


def add_arguments(parser) -> None:
    parser.add_argument("port", help="serial port of the companion, e.g. /dev/ttyUSB0 or /dev/ttyACM0")
    add_baud(parser)
    parser.add_argument("--watch", type=float, default=0.0, metavar="SECONDS",
                        help="print the touched pads whenever they change, for this long")
    parser.add_argument("--leds", action="store_true",
                        help="walk one dim pixel round the ring (pixel 0 first)")


def run(args) -> int:
    if args.watch < 0:
        raise UserError(f"--watch must be a number of seconds >= 0, not {args.watch}")
    try:
        link = CompanionLink(args.port, args.baud, name=f"companion on {args.port}")
    except PartError as exc:
        raise UserError(str(exc)) from None
    try:
        check.report(link)
        if args.watch:
            check.watch(link, args.watch)
        if args.leds:
            check.walk_leds(link)
        print("\n".join(check.status_lines(link)))
    except PartError as exc:
        raise UserError(str(exc)) from None
    finally:
        link.close()
    return 0
