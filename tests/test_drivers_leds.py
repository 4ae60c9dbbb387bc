"""WS2812 drivers: SPI bit encoding (Pi 5, Jetson) and rpi_ws281x (Pi 4), against fakes."""
import errno
import sys

import numpy as np
import pytest
from hw_fakes import FakeSpi, fake_rpi_ws281x, io_error

from lanthorn.hardware.drivers import ws2812_spi
from lanthorn.hardware.drivers.ws2812_spi import Ws2812Spi, symbol_table
from lanthorn.hardware.interfaces import (
    LED_MA_IDLE_PER_PIXEL,
    LED_MA_PER_CHANNEL_FULL,
    PartError,
    estimate_current_ma,
    limit_frame,
)


def decode_spi(buf: bytes, hz: int, n_pixels: int) -> np.ndarray:
    """What a WS2812 would see: measure each high pulse, long = 1. Returns wire-order bytes."""
    bits = np.unpackbits(np.frombuffer(buf, np.uint8))
    per_bit = round(hz * 1.25e-6)
    assert bits[0] == 0  # starts low
    start = 8  # one leading low byte
    data = bits[start:start + n_pixels * 24 * per_bit].reshape(-1, per_bit)
    highs = data.sum(axis=1)
    # every symbol is a single high pulse followed by low
    for sym, h in zip(data, highs, strict=True):
        assert sym[:h].all() and not sym[h:].any()
    threshold = (round(hz * 0.35e-6) + round(hz * 0.8e-6)) / 2
    return np.packbits((highs > threshold).astype(np.uint8)).reshape(n_pixels, 3)


@pytest.mark.parametrize("hz", [2_400_000, 4_000_000, 6_400_000])
def test_spi_pulse_widths_within_ws2812_timing(hz):
    table = symbol_table(hz)
    tick_ns = 1e9 / hz
    bits = np.unpackbits(table, axis=1)
    per_bit = bits.shape[1] // 8
    zero, one = bits[0, :per_bit], bits[255, :per_bit]
    t0h, t1h = zero.sum() * tick_ns, one.sum() * tick_ns
    period = per_bit * tick_ns
    assert 200 <= t0h <= 500 and 580 <= t1h <= 1000, (t0h, t1h)
    assert 1000 <= period <= 1500


def test_spi_6_4mhz_is_one_byte_per_bit():
    table = symbol_table(6_400_000)
    assert table.shape == (256, 8)
    assert table[0].tolist() == [0xC0] * 8 and table[0xFF].tolist() == [0xF8] * 8
    assert table[0x80].tolist() == [0xF8] + [0xC0] * 7  # most significant bit first


def test_spi_frame_goes_out_grb_in_one_transfer_with_latch():
    spi = FakeSpi()
    strip = Ws2812Spi(4, spi=spi, hz=6_400_000, order="GRB")
    assert spi.max_speed_hz == 6_400_000 and spi.mode == 0
    frame = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3]], np.uint8)
    strip.show(frame)
    assert len(spi.transfers) == 1
    buf = spi.transfers[0]
    wire = decode_spi(buf, 6_400_000, 4)
    assert wire.tolist() == [[0, 255, 0], [255, 0, 0], [0, 0, 255], [2, 1, 3]]  # GRB
    latch_bytes = len(buf) - 1 - 4 * 24
    assert latch_bytes * 8 / 6.4e6 >= 280e-6 and not any(buf[-latch_bytes:])


def test_spi_other_orders_and_clock():
    spi = FakeSpi()
    strip = Ws2812Spi(2, spi=spi, hz=2_400_000, order="RGB")
    strip.show(np.array([[10, 20, 30], [40, 50, 60]], np.uint8))
    assert decode_spi(spi.transfers[0], 2_400_000, 2).tolist() == [[10, 20, 30], [40, 50, 60]]
    with pytest.raises(ValueError, match="2.4-6.4 MHz"):
        symbol_table(1_000_000)


def test_spi_applies_brightness_and_power_cap_before_encoding():
    spi = FakeSpi()
    strip = Ws2812Spi(24, spi=spi, power_cap_ma=600, brightness=1.0)
    sent = strip.show(np.full((24, 3), 255, np.uint8))
    assert estimate_current_ma(sent) <= 600
    wire = decode_spi(spi.transfers[-1], 6_400_000, 24)
    assert wire.tolist() == sent[:, [1, 0, 2]].tolist()


def test_spi_encoding_does_not_allocate_per_frame():
    import tracemalloc
    strip = Ws2812Spi(24, spi=FakeSpi())
    frame = np.random.default_rng(0).integers(0, 256, (24, 3), dtype=np.uint8)
    strip.encode(frame)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(50):
        strip.encode(frame)
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename")
                if s.size_diff > 0 and "ws2812_spi" in str(s.traceback))
    tracemalloc.stop()
    assert grown < 1024


def _float32_limit(frame, brightness, cap):
    """The power limit written as one float32 expression: the integers LedStrip.show must
    send (brightness, then one scale to the cap, then floor)."""
    out = np.asarray(frame, np.float32) * np.float32(brightness)
    if cap is not None:
        drive = out.sum() / 255.0 * LED_MA_PER_CHANNEL_FULL
        budget = max(cap - LED_MA_IDLE_PER_PIXEL * len(out), 0.0)
        if drive > budget:
            out = out * (budget / drive)
    return np.floor(np.clip(out, 0, 255)).astype(np.uint8)


def test_show_limits_into_its_buffers_bit_for_bit():
    """Frames of every brightness, over and under the cap, one after another on one strip:
    the in-place limit gives the float32 expression's integers, and a frame never keeps
    anything of the one before (the buffers are reused)."""
    rng = np.random.default_rng(7)
    strip = Ws2812Spi(30, spi=FakeSpi(), power_cap_ma=700)
    for k in range(400):
        frame = rng.integers(0, 256, (30, 3), dtype=np.uint8)
        if k % 3 == 0:
            frame //= np.uint8(rng.integers(1, 40))    # dim frames stay under the cap
        strip.brightness = float(rng.choice([1.0, 0.5, rng.random()]))
        strip.power_cap_ma = [700, None, 31, 0][k % 4]  # a cap below the idle draw: all dark
        want = _float32_limit(frame, strip.brightness, strip.power_cap_ma)
        sent = strip.show(frame)
        assert np.array_equal(sent, want) and np.array_equal(strip.last_frame, want)
        assert np.array_equal(limit_frame(frame, strip.brightness, strip.power_cap_ma), want)
        wire = decode_spi(strip._spi.transfers[-1], 6_400_000, 30)
        assert wire.tolist() == want[:, [1, 0, 2]].tolist()


def test_a_failed_write_keeps_last_frame_at_what_was_sent():
    spi = FakeSpi()
    strip = Ws2812Spi(3, spi=spi)
    strip.show(np.full((3, 3), 9, np.uint8))
    spi.fail = io_error(errno.EIO)
    with pytest.raises(PartError):
        strip.show(np.full((3, 3), 200, np.uint8))
    assert (strip.last_frame == 9).all()


class _NullSpi:
    """An SPI bus that takes the bytes and keeps nothing (FakeSpi records every transfer)."""
    max_speed_hz, mode = 0, 0

    def writebytes2(self, data):
        pass


def _worst_show_peak(kind: str, n: int, monkeypatch, tmp_path) -> int:
    """The largest traced-memory peak of one real ``show`` over many frames."""
    import tracemalloc

    from lanthorn.hardware.sim.parts import SimLeds
    monkeypatch.setattr(ws2812_spi, "SPIDEV_BUFSIZ", tmp_path / "no-spidev")  # any ring size
    cap = 20.0 * n                                # a third of full white: frames go over it
    strip = (SimLeds(n, lambda: 0.0, brightness=0.8, power_cap_ma=cap) if kind == "sim"
             else Ws2812Spi(n, spi=_NullSpi(), brightness=0.8, power_cap_ma=cap))
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (n, 3), dtype=np.uint8) // np.uint8(d) for d in (1, 2, 9, 255)]
    for f in frames:
        strip.show(f)
    tracemalloc.start()
    try:
        worst = 0
        for k in range(200):                    # over the cap, under it, dark: every branch
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            strip.show(frames[k % len(frames)])
            worst = max(worst, tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    return worst


@pytest.mark.parametrize("kind", ["sim", "spi"])
def test_real_show_allocates_no_array_per_frame(kind, monkeypatch, tmp_path):
    """The real ``LedStrip.show`` (limit, write, keep ``last_frame``; the SPI encoding too),
    not a fake. On a 2000-pixel ring a float32 (n, 3) temporary is 24 KB and a uint8 one
    6 KB; what may remain per frame are a few numpy scalars and the iterator of the cap's
    sum, the same for 24 pixels as for 2000."""
    small = _worst_show_peak(kind, 24, monkeypatch, tmp_path)
    large = _worst_show_peak(kind, 2000, monkeypatch, tmp_path)
    assert large < 2048 and large <= small + 256, (small, large)


def test_spi_write_error_and_close():
    spi = FakeSpi()
    strip = Ws2812Spi(3, spi=spi)
    spi.fail = io_error(errno.EIO)
    with pytest.raises(PartError, match="leds: SPI write failed"):
        strip.show(np.zeros((3, 3), np.uint8))
    spi.fail = None
    strip.show(np.full((3, 3), 9, np.uint8))
    strip.close()
    assert spi.closed and decode_spi(spi.transfers[-1], 6_400_000, 3).max() == 0  # turned off
    strip.close()


def test_spi_frame_over_spidev_bufsiz_is_refused(monkeypatch, tmp_path):
    f = tmp_path / "bufsiz"
    f.write_text("4096\n")
    monkeypatch.setattr(ws2812_spi, "SPIDEV_BUFSIZ", f)
    Ws2812Spi(160, spi=FakeSpi())  # fits
    with pytest.raises(PartError, match="spidev.bufsiz=65536"):
        Ws2812Spi(300, spi=FakeSpi())


def test_spi_missing_device_node(monkeypatch):
    import types

    class Dev:
        def open(self, bus, device):
            raise FileNotFoundError(2, "No such file")
    monkeypatch.setitem(sys.modules, "spidev", types.SimpleNamespace(SpiDev=Dev))
    with pytest.raises(PartError, match=r"/dev/spidev0.1 does not exist: enable SPI"):
        Ws2812Spi(3, bus=0, device=1)


# ------------------------------------------------------------------ rpi_ws281x (Pi 4)
def test_pwm_strip_configuration_and_pixels(monkeypatch):
    mod = fake_rpi_ws281x()
    monkeypatch.setitem(sys.modules, "rpi_ws281x", mod)
    from lanthorn.hardware.drivers.ws2812_pwm import Ws2812Pwm
    strip = Ws2812Pwm(3, pin=18, order="GRB", dma=10)
    lib = mod.PixelStrip.instances[-1]
    assert lib.args == dict(num=3, pin=18, freq_hz=800000, dma=10, invert=False, brightness=255,
                            channel=0, strip_type=mod.ws.WS2811_STRIP_GRB)
    strip.show(np.array([[255, 0, 0], [0, 128, 0], [1, 2, 3]], np.uint8))
    assert lib.shown[-1] == [mod.Color(255, 0, 0), mod.Color(0, 128, 0), mod.Color(1, 2, 3)]
    strip.close()
    assert lib.shown[-1] == [0, 0, 0] and lib.cleaned
    Ws2812Pwm(2, pin=13)
    assert mod.PixelStrip.instances[-1].args["channel"] == 1  # GPIO 13 is PWM1


def test_pwm_strip_leaves_no_exit_hook_that_would_segfault(monkeypatch):
    """rpi_ws281x registers an atexit cleanup per strip that calls ws2811_fini; after a failed
    begin() that segfaulted the process at exit (rc 139). The driver takes the hook back, after
    a failed start and after close()."""
    import atexit
    hooks = []

    def unregister(f):
        hooks[:] = [h for h in hooks if h != f]

    monkeypatch.setattr(atexit, "register", lambda f, *a, **k: hooks.append(f) or f)
    monkeypatch.setattr(atexit, "unregister", unregister)
    mod = fake_rpi_ws281x(begin_error=RuntimeError("ws2811_init failed with code -3 (Hardware revision is not supported)"))
    monkeypatch.setitem(sys.modules, "rpi_ws281x", mod)
    from lanthorn.hardware.drivers.ws2812_pwm import Ws2812Pwm
    with pytest.raises(PartError, match="Hardware revision"):
        Ws2812Pwm(24, pin=18)
    assert hooks == []
    mod.PixelStrip.instances[-1]._cleanup()  # even if something still called it: no fini
    mod = fake_rpi_ws281x()
    monkeypatch.setitem(sys.modules, "rpi_ws281x", mod)
    strip = Ws2812Pwm(3, pin=18)
    assert len(hooks) == 1
    strip.close()
    assert hooks == [] and mod.PixelStrip.instances[-1].cleaned


def test_pwm_strip_init_failure_says_root_and_audio(monkeypatch):
    mod = fake_rpi_ws281x(begin_error=RuntimeError("ws2811_init failed with code -5 (mmap() failed)"))
    monkeypatch.setitem(sys.modules, "rpi_ws281x", mod)
    from lanthorn.hardware.drivers.ws2812_pwm import Ws2812Pwm
    with pytest.raises(PartError, match=r"mmap\(\) failed.*root.*audio"):
        Ws2812Pwm(24, pin=18)
    monkeypatch.setitem(sys.modules, "rpi_ws281x", None)
    with pytest.raises(PartError, match="lanthorn\\[pi4\\]"):
        Ws2812Pwm(24, pin=18)
