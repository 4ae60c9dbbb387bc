"""Pictures of the simulated object and the GIF recorder."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lanthorn.hardware.sim import SimError, open_sim_body
from lanthorn.hardware.sim.render import OLED_OFF, OLED_ON, GifRecorder, OledPanel, Renderer, RingLayout


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


def _pixel(img, xy):
    return np.asarray(img.convert("RGB"))[int(xy[1]), int(xy[0])]


def test_frame_size_and_layout(renderer):
    img = renderer.frame(np.zeros((24, 3), np.uint8))
    assert img.mode == "RGB" and img.size == renderer.size
    ow, oh = renderer.oled.size
    assert (ow, oh) == (384, 192)
    assert renderer.size[0] >= renderer.layout.size + ow and renderer.size[1] >= oh


def test_lit_led_glows_at_its_place(renderer):
    lay = renderer.layout
    leds = np.zeros((24, 3), np.uint8)
    leds[6] = (255, 0, 0)  # pixel 6 = 90 degrees clockwise from the top: the right side
    img = renderer.frame(leds)
    right = _pixel(img, lay.point(math.pi / 2, lay.led_r))
    left = _pixel(img, lay.point(3 * math.pi / 2, lay.led_r))
    assert right[0] > 200 and right[0] > 3 * right[2]
    assert left[0] < 60


def test_touched_pads_are_highlighted(renderer):
    lay = renderer.layout
    mid = (lay.pad_r0 + lay.pad_r1) / 2
    img = renderer.frame(np.zeros((24, 3), np.uint8), touched_mask=1 << 4)
    # sample a pad's area off its number label
    on = _pixel(img, lay.point(4 * math.pi / 6 + 0.12, mid))
    off = _pixel(img, lay.point(5 * math.pi / 6 + 0.12, mid))
    assert on.mean() > 200 and off.mean() < 100


def test_pad_hit_testing_matches_the_drawing():
    lay = RingLayout(360)
    mid = (lay.pad_r0 + lay.pad_r1) / 2
    for i in range(12):
        assert lay.pad_at(*lay.point(i * math.pi / 6, mid)) == i
        assert lay.pad_at(*lay.point(i * math.pi / 6 + 0.2, mid)) == i
    assert lay.pad_at(*lay.centre) is None  # the middle is not a pad
    assert lay.pad_at(0, 0) is None


def test_oled_goes_through_luma_emulator_with_pixel_look():
    panel = OledPanel(scale=3)
    from luma.emulator.device import emulator
    assert isinstance(panel.device, emulator)
    img = Image.new("1", (128, 64))
    ImageDraw.Draw(img).rectangle((10, 20, 19, 29), fill=1)
    out = np.asarray(panel.render(img))
    assert out.shape == (192, 384, 3)
    assert tuple(out[20 * 3, 10 * 3]) == OLED_ON  # a lit OLED pixel
    assert tuple(out[20 * 3 + 2, 10 * 3]) == OLED_OFF  # the gap between pixels
    assert tuple(out[5, 5]) == OLED_OFF
    assert panel.device._last_image is not None
    dark = np.asarray(panel.render(None))
    assert (dark == OLED_OFF).all()


def test_body_frame_shows_what_the_body_was_sent(renderer):
    body = open_sim_body(realtime=False, script=[])
    body.press(0)
    body.clock.advance(0.04)
    body.touch.read()
    frame = np.zeros((24, 3), np.uint8)
    frame[0] = (0, 0, 255)
    body.leds.show(frame)
    img = Image.new("1", (128, 64), 1)
    body.display.show(img)
    pic = renderer.body_frame(body, caption="t = 0.04 s")
    lay = renderer.layout
    assert _pixel(pic, lay.point(0.0, lay.led_r))[2] > 150  # blue LED at the top
    ox, oy = renderer.oled_xy
    assert tuple(_pixel(pic, (ox + 1, oy + 1))) == OLED_ON  # an all-white display
    assert _pixel(pic, lay.point(0.15, (lay.pad_r0 + lay.pad_r1) / 2)).mean() > 200  # pad 0 lit


def test_gif_has_the_frames_and_timing(tmp_path, renderer):
    rec = GifRecorder(fps=12.5)
    for k in range(6):
        leds = np.zeros((24, 3), np.uint8)
        leds[k * 4] = (255, 255, 255)
        rec.add(renderer.frame(leds, touched_mask=1 << (2 * k)))
    path = rec.write(tmp_path / "sub" / "anim.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6 and gif.size == renderer.size
        assert gif.info["duration"] == 80 and gif.info["loop"] == 0
        gif.seek(3)
        lay = renderer.layout
        lit = np.asarray(gif.convert("RGB"))
        x, y = lay.point(2 * math.pi * 12 / 24, lay.led_r)
        assert lit[int(y), int(x)].mean() > 150
    assert not list(tmp_path.glob("sub/.*.tmp"))


def test_gif_recorder_errors(tmp_path):
    with pytest.raises(SimError, match="no frames"):
        GifRecorder().write(tmp_path / "x.gif")
    with pytest.raises(SimError, match="frame rate must be positive"):
        GifRecorder(fps=0)
    rec = GifRecorder(max_frames=2)
    for _ in range(3):
        rec.add(Image.new("RGB", (8, 8)))
    assert len(rec) == 2 and rec.dropped == 1
    (tmp_path / "file").write_text("")
    with pytest.raises(SimError, match="cannot write the GIF"):
        rec.write(tmp_path / "file" / "x.gif")

# `lanthorn demo` itself (now the real device loop) is tested in tests/test_demo.py.
