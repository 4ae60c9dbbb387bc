"""The selftest's checks: exercise each part of a body and say, per part, OK, WARN or FAIL
with what to check (``lanthorn selftest`` prints them; ``lanthorn.commands.selftest``).

Touch pads must answer with plausible baselines (in the simulator a pad is pressed and must
register), distance and light must read plausible values, the LED ring and the display must
accept frames (the ring flashes a dim test pattern, the OLED shows "lanthorn selftest").
A check reports and never raises: a selftest that crashed half way would hide the rest.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from lanthorn.hardware.interfaces import Body, PartError, estimate_current_ma
from lanthorn.hardware.profile import Profile
from lanthorn.vocabulary import ROLES

MPR121_MAX = 1023
LUX_MAX = 200_000.0  # direct sunlight is ~100 000 lx


@dataclass
class Row:
    part: str
    backend: str
    result: str  # OK, WARN, FAIL
    detail: str
    required: bool


def failed_parts(rows: list[Row], required_only: bool = True) -> list[str]:
    """The parts whose check failed (only the required ones, unless told otherwise)."""
    return [r.part for r in rows if r.result == "FAIL" and (r.required or not required_only)]


def format_table(rows: list[Row]) -> str:
    head = ("PART", "BACKEND", "RESULT", "DETAIL")
    cells = [head] + [(r.part + ("" if r.required else " (optional)"), r.backend, r.result, r.detail)
                      for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells)


def backend_label(profile: Profile, role: str, sim: bool) -> str:
    spec = profile.parts[role]
    if sim:
        return f"sim {spec.type}"
    if "address" in spec.options:
        return f"{spec.type} i2c-{spec.bus}@{spec.address:#04x}"
    if spec.type == "ws2812" and spec.driver == "pwm":
        return f"ws2812 pwm GPIO{spec.pin}"
    if spec.type == "ws2812":
        bus = profile.spi_bus if spec.spi_bus is None else spec.spi_bus
        return f"ws2812 spi{bus}.{spec.spi_device}"
    return spec.type


def check_body(profile: Profile, body: Body, sim: bool = False) -> list[Row]:
    """One row per part in the profile, in the usual order."""
    rows = []
    wait = _sim_wait(body) if sim else time.sleep
    roles = [r for r in ROLES if r in profile.parts] + [r for r in profile.parts if r not in ROLES]
    for role in roles:
        required = role in profile.required
        label = backend_label(profile, role, sim)
        part = getattr(body, role, None)
        if part is None:
            reason = body.open_errors.get(role, "the body has no such part")
            rows.append(Row(role, label, "FAIL", f"did not open: {reason}", required))
            continue
        try:
            check = CHECKS.get(role, check_channels)
            result, detail = check(part, profile, body, wait, sim)
        except PartError as exc:
            result, detail = "FAIL", str(exc)
        except Exception as exc:  # a selftest reports, it does not crash half way
            result, detail = "FAIL", f"unexpected {type(exc).__name__}: {exc}"
        rows.append(Row(role, label, result, detail, required))
    return rows


def _sim_wait(body):
    clock = getattr(body, "clock", None)
    if clock is not None and hasattr(clock, "advance"):
        return clock.advance
    return time.sleep


def check_touch(touch, profile, body, wait, sim):
    readings = []
    for _ in range(5):
        readings.append(touch.read())
        wait(0.02)
    last = readings[-1]
    n = touch.n_pads
    if last.raw.shape != (n,) or last.baseline.shape != (n,):
        return "FAIL", f"expected {n} pads, got raw {last.raw.shape} baseline {last.baseline.shape}"
    shorted = [i for i in range(n) if last.raw[i] == 0 and last.baseline[i] == 0]
    saturated = [i for i in range(n) if last.raw[i] >= MPR121_MAX - 3]
    stuck = [i for i in last.pads()]
    lo, hi = int(last.baseline.min()), int(last.baseline.max())
    detail = f"{n} pads answer, baselines {lo}..{hi}"
    if len(shorted) + len(saturated) == n:
        return "FAIL", f"no pad reads plausibly ({detail}): check the electrode wiring and ground"
    problems = []
    if shorted:
        problems.append(f"pad(s) {shorted} read 0 (shorted to ground?)")
    if saturated:
        problems.append(f"pad(s) {saturated} read full scale (electrode not connected?)")
    if sim:
        body.press(0)
        wait(0.1)
        pressed = touch.read()
        body.release()
        wait(0.5)
        if not pressed.touched & 1:
            return "FAIL", f"{detail}; a finger on pad 0 did not register"
        detail += "; a finger on pad 0 registers"
    elif stuck:
        problems.append(f"pad(s) {stuck} read as touched (hands off during the test; "
                        f"else lower the sensitivity or check for a short)")
    irq_pending = getattr(touch, "irq_pending", None)
    if not sim and irq_pending is not None and irq_pending():
        problems.append("IRQ line stays low after a read (check the IRQ wire and its pull-up)")
    if problems:
        return "WARN", f"{detail}; " + "; ".join(problems)
    return "OK", detail


def check_distance(distance, profile, body, wait, sim):
    values = []
    for _ in range(6):
        values.append(distance.read_mm())
        wait(0.05)
    seen = [v for v in values if v is not None]
    if any(v < 0 or v > distance.max_range_mm for v in seen):
        return "FAIL", f"implausible distances {seen} mm"
    if not seen:
        return "OK", f"nothing in range (up to {distance.max_range_mm:g} mm)"
    return "OK", f"{seen[-1]:.0f} mm"


def check_light(light, profile, body, wait, sim):
    lux = light.read_lux()
    if not 0.0 <= lux <= LUX_MAX or not np.isfinite(lux):
        return "FAIL", f"implausible {lux} lx"
    return "OK", f"{lux:.0f} lx"


def check_leds(leds, profile, body, wait, sim):
    n = leds.n_pixels
    pattern = np.zeros((n, 3), np.uint8)
    for i in range(n):
        pattern[i, i % 3] = 40  # a dim red/green/blue chase: every channel of every pixel visible
    sent = leds.show(pattern)
    if sent.shape != (n, 3):
        return "FAIL", f"frame shape {sent.shape}, expected ({n}, 3)"
    wait(0.3)
    white = leds.show(np.full((n, 3), 255, np.uint8))
    drawn = estimate_current_ma(white)
    leds.off()
    detail = f"{n} pixels accept frames"
    if leds.power_cap_ma is not None:
        if drawn > leds.power_cap_ma + 1e-6:
            return "FAIL", f"{detail}, but full white draws {drawn:.0f} mA over the {leds.power_cap_ma:g} mA cap"
        detail += f"; full white capped at {drawn:.0f} mA (cap {leds.power_cap_ma:g} mA)"
    return "OK", detail


def check_display(display, profile, body, wait, sim):
    from PIL import Image, ImageDraw
    image = Image.new("1", (display.width, display.height))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, display.width - 1, display.height - 1), outline=1)
    draw.text((4, 4), "lanthorn selftest", fill=1)
    display.show(image)
    wait(0.3)
    display.show(Image.new("1", (display.width, display.height)))
    return "OK", f"{display.width}x{display.height} frame accepted"


def check_channels(part, profile, body, wait, sim):
    """A generic sensing part (IMU, ADC, PIR, button...): a few reads, each one reading per
    declared channel, finite and within the channel's range (a little slack for noise)."""
    channels = tuple(getattr(part, "channels", ()))
    if not channels:
        return "FAIL", f"{type(part).__name__} declares no channels"
    last = None
    for _ in range(5):
        last = tuple(part.read())
        if len(last) != len(channels):
            return "FAIL", f"read {len(last)} values for {len(channels)} channels"
        wait(0.02)
    out = []
    for c, v in zip(channels, last, strict=True):
        v = float(v)
        slack = 0.05 * (c.hi - c.lo)
        if not np.isfinite(v) or not c.lo - slack <= v <= c.hi + slack:
            return "FAIL", f"channel {c.name} reads implausible {v!r} {c.unit} (range {c.lo:g}..{c.hi:g})"
        out.append(f"{c.name}={v:.3g}{c.unit if c.unit not in ('', '1', 'on') else ''}")
    return "OK", ", ".join(out)


CHECKS = {"touch": check_touch, "distance": check_distance, "light": check_light,
          "leds": check_leds, "display": check_display}
