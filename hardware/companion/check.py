"""Checking a companion on its port, as ``lanthorn companion PORT`` does right after flashing.

It says HELLO and reports what the firmware says (version, board, pads, LEDs, whether its
MPR121 answered), the PING round trip and the counters; it can watch the touched pads and
walk one dim pixel round the ring, so a maker checks the wiring before writing a profile.
Output goes through ``say`` (``print`` by default): the command prints it.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from lanthorn.hardware.companion import wire as P
from lanthorn.hardware.companion.backend import CompanionLeds, CompanionLink, CompanionTouch
from lanthorn.hardware.interfaces import PartError

#: how long each pixel of the LED walk stays lit
LED_STEP_S = 0.15


def status_lines(link: CompanionLink) -> list[str]:
    """The companion's own counters and the host side's."""
    s = link.status()
    return [f"  status: {'live' if s.mode == P.MODE_LIVE else 'idle'}, up {s.uptime_ms / 1000:.1f} s, "
            f"brightness {s.brightness}, power cap {s.power_cap_ma or 'none'} mA, "
            f"{s.rx_frames} frames in, {s.rx_errors} bad, {s.seq_gaps} lost, "
            f"{s.sensor_errors} failed pad scans",
            f"  host side: {link.rx_frames} frames in, {link.rx_errors} bad, {link.seq_gaps} lost"
            + (f", last companion error: {link.last_error}" if link.last_error else "")]


def report(link: CompanionLink, say=print) -> None:
    """What the firmware says it is and has, and the PING round trip."""
    i = link.info
    say(f"companion on {link.port_name}: lanthorn firmware {i.firmware_version}, protocol "
          f"{i.protocol}, {i.board_name}")
    chip = "MPR121 answering" if i.touch_ok else "MPR121 NOT answering: check SDA/SCL, 3.3 V, ADDR"
    say(f"  {i.n_pads} pads at {i.pad_rate_hz} Hz ({chip}), {i.n_leds} LEDs, "
          f"idle animation after {i.idle_timeout_ms} ms of silence")
    rtts = [link.ping() for _ in range(10)]
    say(f"  ping {statistics.median(rtts) * 1000:.1f} ms (median of 10, max {max(rtts) * 1000:.1f})")


def watch(link: CompanionLink, seconds: float, say=print) -> None:
    """Every change of the touched pads for ``seconds`` (touch each pad in turn)."""
    touch = CompanionTouch(link, link.info.n_pads, name="touch")
    say(f"  watching the pads for {seconds:g} s: touch each one in turn")
    start, last = time.monotonic(), None
    while time.monotonic() - start < seconds:
        try:
            r = touch.read()
        except PartError as exc:
            say(f"  {time.monotonic() - start:6.2f} s  {exc}")
            time.sleep(0.5)
            continue
        if r.touched != last:
            last = r.touched
            pads = ", ".join(f"{p} (-{int(r.delta()[p])})" for p in r.pads()) or "none"
            say(f"  {time.monotonic() - start:6.2f} s  touched: {pads}")
        time.sleep(0.01)
    link.stream(0)


def walk_leds(link: CompanionLink, say=print) -> None:
    """One dim pixel round the ring, pixel 0 first, so the maker sees where it starts."""
    n = link.info.n_leds
    leds = CompanionLeds(link, n, name="leds")
    say(f"  walking one pixel round {n} LEDs: pixel 0 should sit at pad 0, then clockwise")
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
