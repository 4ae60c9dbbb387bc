"""Run the simulated artwork with a scripted visitor and write an animated GIF of it.

``lanthorn demo`` opens the simulated body (``hardware/profiles/sim.toml``), lets the
scripted visitor walk up, tap, double-tap, stroke both ways, hold, lay a palm on the ring
and leave, and records the LED ring and the OLED as ``OUT/demo.gif``. Simulated time runs
as fast as the machine allows (``--seconds`` of it), so the GIF plays at real speed.

INTERIM: until the device loop, model and behaviour are wired in here, the piece's reaction
is a simple built-in one -- a breathing glow that brightens as someone comes close, and a
ripple running around the ring from every pad as it is touched -- and the OLED shows what
the scripted visitor is doing (the simulator's honest label, not a recognition). The
command talks to the object only through the part interfaces; drawing and recording live
in ``lanthorn.hardware.sim.render``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from lanthorn.errors import UserError
from lanthorn.hardware.interfaces import PartError

SENSE_HZ = 25.0  # the model's input rate (device.frames.DEFAULT_RATE_HZ)


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds to run (default 16, one visitor's full tour; with "
                             "--window: until the window is closed)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"),
                        help="folder for demo.gif (default out/demo)")
    parser.add_argument("--seed", type=int, default=0, help="the visitor's seed (default 0)")
    parser.add_argument("--fps", type=float, default=12.5,
                        help="GIF frames per second (default 12.5)")
    parser.add_argument("--window", action="store_true",
                        help="show the piece live in a window, in real time; touch the pads "
                             "with the mouse (click = tap, drag around the ring = stroke)")
    parser.add_argument("--visitor", action="store_true",
                        help="with --window: let the scripted visitor walk up too "
                             "(without --window the visitor always comes)")


def run(args) -> int:
    seconds = args.seconds if args.seconds is not None else (None if args.window else 16.0)
    if seconds is not None and not (0 < seconds <= 600):
        raise UserError(f"--seconds must be between 0 and 600, got {seconds:g}")
    if not (0 < args.fps <= SENSE_HZ):
        raise UserError(f"--fps must be above 0 and at most {SENSE_HZ:g}, got {args.fps:g}")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder for demo.gif")
    try:
        from lanthorn.hardware.sim.render import GifRecorder, Renderer
        renderer = Renderer()
    except ImportError as exc:
        raise UserError(f"the demo needs the simulator extras ({exc.name} is missing): "
                        "pip install 'lanthorn[sim]'") from None
    from lanthorn.hardware.body import open_body
    from lanthorn.hardware.profile import load_profile

    profile = load_profile("sim")
    script = [] if args.window and not args.visitor else None  # the mouse is the visitor
    body = open_body(profile, sim=True, seed=args.seed, script=script, realtime=args.window)
    window = None
    if args.window:
        from lanthorn.hardware.sim.window import LiveWindow
        try:
            window = LiveWindow(body, renderer)
        except UserError:
            body.close()
            raise
    recorder = GifRecorder(fps=args.fps)
    piece = InterimPiece(body.leds.n_pixels if body.leds else 24)
    every = SENSE_HZ / args.fps
    next_frame = 0.0
    started = time.perf_counter()
    how = "live in a window (close it or press Esc to stop)" if window else "simulated"
    print(f"lanthorn demo: {'until closed' if seconds is None else f'{seconds:g} s'} of the "
          f"piece, {how} (seed {args.seed})", flush=True)
    k = 0
    try:
        while seconds is None or k < round(seconds * SENSE_HZ):
            tick = k / SENSE_HZ
            if window is not None:  # real time: wait for the tick, then look at the mouse
                time.sleep(max(0.0, tick - body.now()))
                if not window.poll():
                    break
            else:  # simulated time: as fast as the machine goes
                body.clock.set(tick)
            t = body.now()
            reading, distance, lux = _sense(body, piece)
            piece.update(t, reading, distance)
            _show(body, piece, t, reading, distance, lux)
            if window is not None:
                picture = window.show_body(_caption(body, t, reading))
            if k >= next_frame:
                if window is None:
                    picture = renderer.body_frame(body, caption=_caption(body, t, reading))
                recorder.add(picture)
                next_frame += every
            k += 1
    except KeyboardInterrupt:
        print("stopped")
    finally:
        if window is not None:
            window.close()
    ran = k / SENSE_HZ
    elapsed = time.perf_counter() - started
    _print_timeline(body, piece, ran)
    body.close()
    if not len(recorder):
        print("nothing recorded, so no GIF written")
        return 0
    path = recorder.write(args.out / "demo.gif")
    dropped = f", the last {recorder.dropped} frames not kept" if recorder.dropped else ""
    print(f"ran {ran:g} s of the piece in {elapsed:.1f} s; wrote {path} "
          f"({len(recorder)} frames{dropped}, {path.stat().st_size / 1024:.0f} KiB)")
    return 0


def _sense(body, piece):
    """Read the sensors; a part that fails is reported once and its reading left out."""
    reading = distance = lux = None
    for role, read in (("touch", lambda p: p.read()), ("distance", lambda p: p.read_mm()),
                       ("light", lambda p: p.read_lux())):
        part = getattr(body, role)
        if part is None:
            continue
        try:
            value = read(part)
        except PartError as exc:
            if role not in piece.failed:
                print(f"  ! {exc} -- carrying on without it")
            piece.failed.add(role)
            continue
        if role == "touch":
            reading = value
        elif role == "distance":
            distance = value
        else:
            lux = value
    return reading, distance, lux


def _show(body, piece, t, reading, distance, lux) -> None:
    label = body.gesture_at(t)
    if label == "nobody" and reading is not None and reading.touched:
        label = "touch"  # a hand the script does not know about: the mouse in the window
    for role, send in (("leds", lambda p: p.show(piece.leds(t))),
                       ("display", lambda p: p.show(piece.oled(label, distance, lux)))):
        part = getattr(body, role)
        if part is None or role in piece.failed:
            continue
        try:
            send(part)
        except PartError as exc:
            print(f"  ! {exc} -- carrying on without it")
            piece.failed.add(role)


def _caption(body, t, reading) -> str:
    pads = ",".join(map(str, reading.pads())) if reading is not None else "?"
    return f"t = {t:5.2f} s   visitor: {body.gesture_at(t)}\ntouched pads: {pads or '-'}"


def _print_timeline(body, piece, seconds) -> None:
    if not body.world.segments:
        pads = sorted({p for _, p in piece.touches})
        print(f"the piece felt {len(piece.touches)} touches"
              + (f" on pads {','.join(map(str, pads))}" if pads else ""))
        return
    print("timeline (what the scripted visitor did, and the pads the piece felt):")
    for seg in body.world.segments:
        if seg.start >= seconds:
            break
        pads = sorted({p for t, p in piece.touches if seg.start <= t < seg.end})
        felt = f"  pads {','.join(map(str, pads))}" if pads else ""
        print(f"  {seg.start:6.2f} s  {seg.gesture:<10}{felt}".rstrip())


class InterimPiece:
    """The interim reaction: breathing glow, brighter when near, ripples from touched pads."""

    def __init__(self, n_pixels: int):
        self.n = n_pixels
        self.ripples: list[tuple[float, float]] = []  # (start time, ring position in pixels)
        self.touches: list[tuple[float, int]] = []  # (time, pad) of every touch onset
        self.held = 0
        self.near = 0.0
        self.failed: set[str] = set()

    def update(self, t: float, reading, distance_mm) -> None:
        mask = reading.touched if reading is not None else 0
        for pad in range(12):
            if mask >> pad & 1 and not self.held >> pad & 1:
                self.ripples.append((t, pad * self.n / 12.0))
                self.touches.append((t, pad))
        self.held = mask
        target = 0.0 if distance_mm is None else max(0.0, 1.0 - distance_mm / 1200.0)
        self.near += 0.15 * (target - self.near)
        self.ripples = [(s, p) for s, p in self.ripples if t - s < 1.6]
        self.t = t

    def leds(self, t: float) -> np.ndarray:
        pos = np.arange(self.n, dtype=np.float64)
        breath = 0.12 + 0.08 * math.sin(2 * math.pi * t / 4.0) + 0.35 * self.near
        frame = np.outer(np.full(self.n, breath), [255, 120, 40])  # warm ember
        for s, p in self.ripples:
            age = t - s
            ring = np.minimum(np.abs(pos - p), self.n - np.abs(pos - p))  # ring distance
            front = np.exp(-((ring - age * 10.0) ** 2) / 2.0) * math.exp(-age * 2.0)
            frame += np.outer(front, [80, 170, 255])
        for pad in range(12):
            if self.held >> pad & 1:
                frame[int(pad * self.n / 12)] += (200, 220, 255)
        return np.clip(frame, 0, 255).astype(np.uint8)

    def oled(self, gesture: str, distance_mm, lux):
        from PIL import Image, ImageDraw, ImageFont
        img = Image.new("1", (128, 64))
        d = ImageDraw.Draw(img)
        d.text((0, 0), "lanthorn", fill=1, font=ImageFont.load_default(size=11))
        d.text((64, 30), gesture.replace("_", " "), fill=1, anchor="mm",
               font=ImageFont.load_default(size=18))
        dist = "--" if distance_mm is None else f"{distance_mm:.0f}mm"
        light = "--" if lux is None else f"{lux:.0f}lx"
        d.text((0, 52), f"{dist}  {light}", fill=1, font=ImageFont.load_default(size=11))
        return img
