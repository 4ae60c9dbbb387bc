"""Pictures of the simulated object: the LED ring with its pads, the OLED, and animated GIFs.

:func:`render_frame` draws what a visitor would see -- the 24-pixel WS2812 ring (with glow)
around the 12 touch pads, touched pads lit, and the 128x64 OLED as a pixel panel -- side by
side in one RGB PIL image. The same picture feeds :class:`GifRecorder` (``lanthorn demo``)
and the live window (:mod:`.window`), so what a test checks is what a person sees.

The OLED goes through **luma.emulator** (:class:`OledPanel`): the image the device sent to
the display is handed to a luma emulator device exactly as the real SSD1306 backend hands it
to ``luma.oled``, and the emulator's own scaling turns it into the panel picture. So the
display code path in the demo is the luma display API of the real object.

Why :class:`GifRecorder` writes with Pillow's ``save_all`` and not luma.emulator's
``gifanim``: gifanim records only the display (not the ring beside it), writes its file from
an ``atexit`` hook and calls ``sys.exit`` when it has enough frames -- fine for a luma
example script, wrong for a library whose caller decides when and where the file goes.
Frames are palette-quantized as they arrive, so a long run stays small in memory.

:class:`RingLayout` is the one place that knows where pads and pixels sit in the picture;
the window uses it to turn a mouse position into a pad.

PIL, luma and pygame are imported only when these functions run (pygame only because
luma.emulator is built on it; no window is opened here).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gestures import SimError
from .physics import N_PADS

BACKGROUND = (12, 12, 16)
PAD_IDLE = (52, 52, 62)
PAD_TOUCHED = (235, 235, 245)
OLED_ON = (205, 235, 255)  # the common white/ice-blue SSD1306 panel
OLED_OFF = (6, 8, 14)
TEXT = (150, 150, 165)


@dataclass(frozen=True)
class RingLayout:
    """Geometry of the ring picture: a square of ``size`` pixels, centre at its middle.

    Pad i sits at ``i * 30°`` clockwise from the top (the order of the MPR121 electrodes and of
    the LED ring: pixel 0 at pad 0), pads between ``pad_r0`` and ``pad_r1`` from the centre,
    LEDs on a circle of radius ``led_r``.
    """

    size: int = 360

    @property
    def centre(self) -> tuple[float, float]:
        return (self.size / 2.0, self.size / 2.0)

    @property
    def led_r(self) -> float:
        return self.size * 0.40

    @property
    def pad_r0(self) -> float:
        return self.size * 0.20

    @property
    def pad_r1(self) -> float:
        return self.size * 0.33

    def point(self, angle: float, r: float) -> tuple[float, float]:
        """Picture coordinates of polar (angle clockwise from the top, radius)."""
        cx, cy = self.centre
        return (cx + r * math.sin(angle), cy - r * math.cos(angle))

    def angle_at(self, x: float, y: float, slack: float = 0.25) -> float | None:
        """Ring angle (rad, clockwise from pad 0) of picture point (x, y) when it is on the
        pad ring, else None. ``slack`` widens the ring radially (as a fraction of its width)
        so a finger-sized click near the edge still counts."""
        cx, cy = self.centre
        dx, dy = x - cx, y - cy
        r = math.hypot(dx, dy)
        w = self.pad_r1 - self.pad_r0
        if not (self.pad_r0 - slack * w <= r <= self.pad_r1 + slack * w):
            return None
        return math.atan2(dx, -dy) % (2 * math.pi)

    def pad_at(self, x: float, y: float, slack: float = 0.25) -> int | None:
        """The pad nearest to picture point (x, y) on the pad ring, or None."""
        angle = self.angle_at(x, y, slack)
        if angle is None:
            return None
        return int(round(angle / (2 * math.pi / N_PADS))) % N_PADS


class OledPanel:
    """The OLED as a visitor sees it, rendered by a luma.emulator device.

    ``scale`` screen pixels per display pixel; a thin dark gap between pixels gives the
    panel's dot look. ``render(image)`` takes the mode-"1" image the display holds.
    """

    def __init__(self, width: int = 128, height: int = 64, scale: int = 3):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        from luma.emulator.device import emulator

        class _Snapshot(emulator):
            """A luma emulator device that keeps the rendered picture instead of showing it."""

            def __init__(self, width, height, scale):
                super().__init__(width, height, 0, "1", "identity", scale)
                self.picture = None

            def display(self, image):
                assert image.size == self.size
                self._last_image = image
                surface = self.to_surface(self.preprocess(image), alpha=self._contrast)
                raw = self._pygame.image.tostring(surface, "RGB", False)
                self.picture = np.frombuffer(raw, np.uint8).reshape(
                    surface.get_height(), surface.get_width(), 3)

        self.width, self.height, self.scale = int(width), int(height), int(scale)
        self.device = _Snapshot(self.width, self.height, self.scale)
        # one row/column of every scale x scale cell is the dark gap between OLED pixels
        grid = np.ones((self.height * self.scale, self.width * self.scale), bool)
        if self.scale >= 3:
            grid[self.scale - 1::self.scale, :] = False
            grid[:, self.scale - 1::self.scale] = False
        self._grid = grid

    @property
    def size(self) -> tuple[int, int]:
        return (self.width * self.scale, self.height * self.scale)

    def render(self, image=None):
        """RGB PIL image of the panel showing ``image`` (None: a panel that is off)."""
        from PIL import Image
        if image is None:
            on = np.zeros((self.height * self.scale, self.width * self.scale), bool)
        else:
            self.device.display(image.convert("1"))
            on = self.device.picture[:, :, 0] > 127
        on &= self._grid
        out = np.empty(on.shape + (3,), np.uint8)
        out[:] = OLED_OFF
        out[on] = OLED_ON
        return Image.fromarray(out, "RGB")


class Renderer:
    """Draws the whole object: ring on the left, OLED on the right, a caption underneath.

    Create once and call :meth:`frame` per picture: fonts, the luma emulator device and the
    static layout are made only once.
    """

    def __init__(self, ring_size: int = 360, oled_scale: int = 3, width: int = 128,
                 height: int = 64):
        from PIL import ImageFont
        self.layout = RingLayout(ring_size)
        self.oled = OledPanel(width, height, oled_scale)
        ow, oh = self.oled.size
        self.margin = 16
        self.oled_xy = (ring_size + self.margin, (ring_size - oh) // 2 - 10)
        self.size = (ring_size + ow + 2 * self.margin, ring_size)
        self.font = ImageFont.load_default(size=14) if hasattr(ImageFont, "truetype") else None

    def ring(self, leds, touched_mask: int):
        """The ring picture: LED colours (N, 3) uint8 with glow, pads lit when touched."""
        from PIL import Image, ImageChops, ImageDraw, ImageFilter
        lay = self.layout
        s = lay.size
        leds = np.asarray(leds, np.uint8).reshape(-1, 3)
        n = len(leds)
        glow = Image.new("RGB", (s, s), (0, 0, 0))
        g = ImageDraw.Draw(glow)
        for j in range(n):
            x, y = lay.point(2 * math.pi * j / n, lay.led_r)
            r = s * 0.05
            g.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in leds[j]))
        glow = glow.filter(ImageFilter.GaussianBlur(s * 0.03))
        base = Image.new("RGB", (s, s), BACKGROUND)
        d = ImageDraw.Draw(base)
        half = 360.0 / N_PADS / 2 - 3  # degrees, leaving a gap between pads
        for i in range(N_PADS):
            on = bool(touched_mask >> i & 1)
            # PIL angles: degrees clockwise from 3 o'clock; ours are clockwise from 12
            a = i * 360.0 / N_PADS - 90.0
            box = (s / 2 - lay.pad_r1, s / 2 - lay.pad_r1, s / 2 + lay.pad_r1, s / 2 + lay.pad_r1)
            d.pieslice(box, a - half, a + half, fill=PAD_TOUCHED if on else PAD_IDLE)
        r0 = lay.pad_r0
        d.ellipse((s / 2 - r0, s / 2 - r0, s / 2 + r0, s / 2 + r0), fill=BACKGROUND)
        for i in range(N_PADS):
            x, y = lay.point(2 * math.pi * i / N_PADS, (lay.pad_r0 + lay.pad_r1) / 2)
            on = bool(touched_mask >> i & 1)
            d.text((x, y), str(i), fill=(20, 20, 20) if on else TEXT, anchor="mm", font=self.font)
        out = ImageChops.add(base, glow)
        d = ImageDraw.Draw(out)
        for j in range(n):  # the LED chips themselves, on top of their glow
            x, y = lay.point(2 * math.pi * j / n, lay.led_r)
            r = s * 0.018
            c = tuple(int(v) for v in np.maximum(leds[j], 30))
            d.ellipse((x - r, y - r, x + r, y + r), fill=c)
        return out

    def frame(self, leds, touched_mask: int = 0, oled_image=None, caption: str = ""):
        """The whole picture as an RGB PIL image of :attr:`size`."""
        from PIL import Image, ImageDraw
        out = Image.new("RGB", self.size, BACKGROUND)
        out.paste(self.ring(leds, touched_mask), (0, 0))
        ox, oy = self.oled_xy
        ow, oh = self.oled.size
        d = ImageDraw.Draw(out)
        d.rectangle((ox - 6, oy - 6, ox + ow + 5, oy + oh + 5), fill=(28, 28, 34))  # bezel
        out.paste(self.oled.render(oled_image), (ox, oy))
        if caption:
            for k, line in enumerate(caption.splitlines()):
                d.text((ox, oy + oh + 16 + 18 * k), line, fill=TEXT, font=self.font)
        return out

    def body_frame(self, body, caption: str = ""):
        """Picture of a body: what its LEDs and display were last sent, its touched pads."""
        leds = body.leds.last_frame if body.leds is not None else np.zeros((24, 3), np.uint8)
        image = body.display.image if body.display is not None else None
        reading = getattr(body.touch, "last_reading", None)
        touched = reading.touched if reading is not None else 0
        return self.frame(leds, touched, image, caption)


class GifRecorder:
    """Collects RGB frames and writes one looping animated GIF. See the module docstring.

    ``fps`` sets each frame's duration (GIF timing has 10 ms steps, so 12.5 and 25 fps are
    exact). ``max_frames`` bounds memory: frames past it are dropped and counted.
    """

    def __init__(self, fps: float = 12.5, max_frames: int = 2000):
        if not fps > 0:
            raise SimError(f"GIF frame rate must be positive, got {fps!r}")
        self.fps = float(fps)
        self.max_frames = int(max_frames)
        self.frames: list = []
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.frames)

    def add(self, image) -> None:
        from PIL import Image
        if len(self.frames) >= self.max_frames:
            self.dropped += 1
            return
        self.frames.append(image.convert("RGB").quantize(
            colors=255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))

    def write(self, path) -> Path:
        """Write the GIF (atomically: a reader never sees half a file). Returns the path."""
        if not self.frames:
            raise SimError("no frames were recorded, so there is no GIF to write")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            self.frames[0].save(tmp, format="GIF", save_all=True, append_images=self.frames[1:],
                                duration=round(1000.0 / self.fps), loop=0, optimize=True,
                                disposal=1)
            os.replace(tmp, path)
        except OSError as exc:
            raise SimError(f"cannot write the GIF {path}: {exc.strerror or exc}") from None
        return path
