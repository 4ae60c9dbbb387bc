"""The live window, headless (SDL_VIDEODRIVER=dummy): mouse touch, quitting, no-display errors."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

pygame = pytest.importorskip("pygame")

from lanthorn.cli import main
from lanthorn.hardware.sim import open_sim_body
from lanthorn.hardware.sim.window import LiveWindow, WindowUnavailable


@pytest.fixture
def window(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    body = open_sim_body(realtime=False, script=[])
    win = LiveWindow(body)
    yield win
    win.close()


def _pad_pos(win, pad, offset=0.0):
    lay = win.renderer.layout
    x, y = lay.point(pad * math.pi / 6 + offset, (lay.pad_r0 + lay.pad_r1) / 2)
    return (int(round(x)), int(round(y)))


def _post(kind, **attrs):
    pygame.event.post(pygame.event.Event(kind, **attrs))


def _touched(win):
    win.body.clock.advance(0.04)
    return win.body.touch.read().pads()


def test_click_touches_the_pad_and_release_lifts_it(window):
    assert window.poll() and _touched(window) == []
    _post(pygame.MOUSEBUTTONDOWN, pos=_pad_pos(window, 3), button=1)
    assert window.poll()
    assert _touched(window) == [3]
    _post(pygame.MOUSEBUTTONUP, pos=_pad_pos(window, 3), button=1)
    window.poll()
    assert _touched(window) == []


def test_drag_around_the_ring_is_a_clockwise_stroke(window):
    _post(pygame.MOUSEBUTTONDOWN, pos=_pad_pos(window, 2), button=1)
    window.poll()
    seen = []
    for step in range(31):  # from pad 2 to pad 7, a little at a time
        _post(pygame.MOUSEMOTION, pos=_pad_pos(window, 2, step * math.radians(5)),
              rel=(0, 0), buttons=(1, 0, 0))
        window.poll()
        r = window.body.touch.read()
        window.body.clock.advance(0.04)
        if r.touched:
            d = r.delta()
            seen.append(np.angle((d * np.exp(1j * np.arange(12) * math.pi / 6)).sum()))
    ang = np.unwrap(seen)
    assert math.degrees(ang[-1] - ang[0]) > 120
    assert (np.diff(ang) > -math.radians(5)).all()
    # between two pads the finger touches both partly
    _post(pygame.MOUSEMOTION, pos=_pad_pos(window, 7, math.radians(15)), rel=(0, 0),
          buttons=(1, 0, 0))
    window.poll()
    assert _touched(window) == [7, 8]


def test_dragging_off_the_ring_lifts_the_finger(window):
    _post(pygame.MOUSEBUTTONDOWN, pos=_pad_pos(window, 0), button=1)
    window.poll()
    assert _touched(window) == [0]
    _post(pygame.MOUSEMOTION, pos=tuple(int(c) for c in window.renderer.layout.centre),
          rel=(0, 0), buttons=(1, 0, 0))
    window.poll()
    assert _touched(window) == []


def test_motion_without_button_does_not_touch(window):
    _post(pygame.MOUSEMOTION, pos=_pad_pos(window, 5), rel=(0, 0), buttons=(0, 0, 0))
    window.poll()
    assert _touched(window) == []
    _post(pygame.MOUSEBUTTONDOWN, pos=_pad_pos(window, 5), button=2)  # middle button: nothing
    window.poll()
    assert _touched(window) == []


def test_right_button_lays_a_palm(window):
    lux = window.body.light.read_lux()
    _post(pygame.MOUSEBUTTONDOWN, pos=_pad_pos(window, 5), button=3)
    window.poll()
    pads = _touched(window)
    assert len(pads) >= 3 and 5 in pads
    assert window.body.light.read_lux() < 0.7 * lux  # the palm shades the light sensor
    _post(pygame.MOUSEBUTTONUP, pos=_pad_pos(window, 5), button=1)  # another button: still down
    window.poll()
    assert _touched(window)
    _post(pygame.MOUSEBUTTONUP, pos=_pad_pos(window, 5), button=3)
    window.poll()
    assert _touched(window) == []


@pytest.mark.parametrize("event", [
    lambda: pygame.event.Event(pygame.QUIT),
    lambda: pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0, unicode="", scancode=0),
])
def test_closing_or_escape_stops(window, event):
    assert window.poll()
    pygame.event.post(event())
    assert not window.poll()


def test_window_shows_the_rendered_picture(window):
    frame = np.zeros((24, 3), np.uint8)
    frame[0] = (0, 0, 255)
    window.body.leds.show(frame)
    picture = window.show_body("hello")
    assert picture.size == window.renderer.size
    screen = pygame.display.get_surface()
    assert screen.get_size() == picture.size
    lay = window.renderer.layout
    x, y = (int(c) for c in lay.point(0.0, lay.led_r))
    assert tuple(screen.get_at((x, y)))[:3] == picture.getpixel((x, y))


def test_no_display_is_a_clear_error(monkeypatch):
    body = open_sim_body(realtime=False)
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(var, raising=False)
    if sys.platform.startswith("linux"):
        with pytest.raises(WindowUnavailable, match="neither DISPLAY nor WAYLAND_DISPLAY"):
            LiveWindow(body)
    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")
    with pytest.raises(WindowUnavailable, match="SDL says"):
        LiveWindow(body)


def test_missing_pygame_is_a_clear_error_with_the_install_line(monkeypatch):
    """Without pygame the window says how to install it (this was a NameError once)."""
    body = open_sim_body(realtime=False)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setitem(sys.modules, "pygame", None)   # import pygame -> ImportError
    with pytest.raises(WindowUnavailable, match=r"needs pygame: .*pip install"):
        LiveWindow(body)


def test_demo_window_without_display_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")
    assert main(["demo", "--window"]) == 2
    err = capsys.readouterr().err
    assert "cannot open the live window" in err and "without --window" in err
    assert len(err.strip().splitlines()) == 1


def test_demo_window_runs_headless(tmp_path):
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    out = subprocess.run([sys.executable, "-m", "lanthorn", "demo", "--window", "--seconds", "1",
                          "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "live in a window" in out.stdout and (tmp_path / "demo.gif").exists()
