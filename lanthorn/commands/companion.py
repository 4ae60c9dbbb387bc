"""lanthorn companion PORT: is the microcontroller on this port a working lanthorn companion?

What a maker runs right after flashing a Nano or Pico, before writing a profile: it says
HELLO and prints what the firmware reports (version, board, pads, LEDs, whether its MPR121
answered), the PING round trip and the companion's own counters. ``--watch S`` prints every
change of the touched pads for S seconds (touch each pad in turn to check the wiring);
``--leds`` walks one dim pixel round the ring so you can see pixel 0 and the direction.
Exit 0 when it answers; a port that is missing or silent is a one-line error (exit 2).
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from lanthorn.errors import UserError

from lanthorn.hardware.interfaces import PartError
from lanthorn.hardware.companion import protocol as P
from lanthorn.hardware.companion.backend import CompanionLeds, CompanionLink, CompanionTouch
from lanthorn.commands._options import add_baud

LED_STEP_S = 0.15


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
        _report(link)
        if args.watch:
            _watch(link, args.watch)
        if args.leds:
            _walk_leds(link)
        s = link.status()
        print(f"  status: {'live' if s.mode == P.MODE_LIVE else 'idle'}, up {s.uptime_ms / 1000:.1f} s, "
              f"brightness {s.brightness}, power cap {s.power_cap_ma or 'none'} mA, "
              f"{s.rx_frames} frames in, {s.rx_errors} bad, {s.seq_gaps} lost, "
              f"{s.sensor_errors} failed pad scans")
        print(f"  host side: {link.rx_frames} frames in, {link.rx_errors} bad, {link.seq_gaps} lost"
              + (f", last companion error: {link.last_error}" if link.last_error else ""))
    except PartError as exc:
        raise UserError(str(exc)) from None
    finally:
        link.close()
    return 0


def _report(link: CompanionLink) -> None:
    i = link.info
    print(f"companion on {link.port_name}: lanthorn firmware {i.firmware_version}, protocol "
          f"{i.protocol}, {i.board_name}")
    chip = "MPR121 answering" if i.touch_ok else "MPR121 NOT answering: check SDA/SCL, 3.3 V, ADDR"
    print(f"  {i.n_pads} pads at {i.pad_rate_hz} Hz ({chip}), {i.n_leds} LEDs, "
          f"idle animation after {i.idle_timeout_ms} ms of silence")
    rtts = [link.ping() for _ in range(10)]
    print(f"  ping {statistics.median(rtts) * 1000:.1f} ms (median of 10, max {max(rtts) * 1000:.1f})")


def _watch(link: CompanionLink, seconds: float) -> None:
    touch = CompanionTouch(link, link.info.n_pads, name="touch")
    print(f"  watching the pads for {seconds:g} s: touch each one in turn")
    start, last = time.monotonic(), None
    while time.monotonic() - start < seconds:
        try:
            r = touch.read()
        except PartError as exc:
            print(f"  {time.monotonic() - start:6.2f} s  {exc}")
            time.sleep(0.5)
            continue
        if r.touched != last:
            last = r.touched
            pads = ", ".join(f"{p} (-{int(r.delta()[p])})" for p in r.pads()) or "none"
            print(f"  {time.monotonic() - start:6.2f} s  touched: {pads}")
        time.sleep(0.01)
    link.stream(0)


def _walk_leds(link: CompanionLink) -> None:
    n = link.info.n_leds
    leds = CompanionLeds(link, n, name="leds")
    print(f"  walking one pixel round {n} LEDs: pixel 0 should sit at pad 0, then clockwise")
    frame = np.zeros((n, 3), np.uint8)
    for i in range(n):
        frame[:] = 0
        frame[i] = (40, 40, 40)
        leds.show(frame)
        t = time.monotonic() + LED_STEP_S
        while time.monotonic() < t:
            link.poll()
            time.sleep(0.005)
    leds.off()
    link.flush()
