"""Fake buses and libraries for register-level tests of the real hardware drivers.

FakeSMBus speaks the smbus2 API (byte/word/block calls and i2c_rdwr with real
smbus2.i2c_msg objects) to fake chips that behave like an I2C register file with an
auto-incrementing pointer, logging every transaction so tests can check exactly what a
driver wrote and when.
"""
from __future__ import annotations

import ctypes
import errno
import os
import types


def io_error(code=errno.EREMOTEIO):
    return OSError(code, os.strerror(code))


class FakeChip:
    """A register file: a write sets the pointer then writes bytes; reads auto-increment."""

    def __init__(self, registers: dict[int, int] | None = None):
        self.regs = bytearray(256)
        for reg, value in (registers or {}).items():
            self.regs[reg] = value
        self.pointer = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.pointer = data[0]
        for value in data[1:]:
            self.on_register_write(self.pointer, value)
            self.pointer = (self.pointer + 1) & 0xFF

    def on_register_write(self, reg: int, value: int) -> None:
        self.regs[reg] = value

    def read(self, n: int) -> bytes:
        out = bytes(self.regs[(self.pointer + i) & 0xFF] for i in range(n))
        self.pointer = (self.pointer + n) & 0xFF
        return out


class FakeSMBus:
    def __init__(self, devices: dict[int, FakeChip] | None = None, label="fake"):
        self.devices = dict(devices or {})
        self.log: list[tuple[str, int, bytes]] = []  # ("w", addr, bytes) / ("r", addr, bytes read)
        self.fail: OSError | None = None
        self.closed = False
        self.label = label

    # -- transport
    def _chip(self, addr):
        if self.fail is not None:
            raise self.fail
        if addr not in self.devices:
            raise io_error()  # nobody acknowledges the address
        return self.devices[addr]

    def _write(self, addr, data):
        chip = self._chip(addr)
        self.log.append(("w", addr, bytes(data)))
        chip.write(bytes(data))

    def _read(self, addr, n):
        chip = self._chip(addr)
        data = chip.read(n)
        self.log.append(("r", addr, data))
        return data

    # -- smbus2 API
    def write_byte(self, addr, value):
        self._write(addr, [value])

    def read_byte(self, addr):
        return self._read(addr, 1)[0]

    def write_byte_data(self, addr, reg, value):
        self._write(addr, [reg, value])

    def read_byte_data(self, addr, reg):
        self._write(addr, [reg])
        return self._read(addr, 1)[0]

    def write_word_data(self, addr, reg, value):
        self._write(addr, [reg, value & 0xFF, value >> 8])

    def read_word_data(self, addr, reg):
        self._write(addr, [reg])
        lo, hi = self._read(addr, 2)
        return lo | hi << 8

    def write_i2c_block_data(self, addr, reg, data):
        assert len(data) <= 32, "SMBus block transfers carry at most 32 bytes"
        self._write(addr, [reg, *data])

    def read_i2c_block_data(self, addr, reg, length):
        assert length <= 32, "SMBus block transfers carry at most 32 bytes"
        self._write(addr, [reg])
        return list(self._read(addr, length))

    def i2c_rdwr(self, *msgs):
        from smbus2.smbus2 import I2C_M_RD
        for msg in msgs:
            if msg.flags & I2C_M_RD:
                data = self._read(msg.addr, msg.len)
                ctypes.memmove(msg.buf, data, msg.len)
            else:
                self._write(msg.addr, bytes(msg))

    def close(self):
        self.closed = True

    # -- helpers for assertions
    def register_writes(self, addr) -> list[tuple[int, int]]:
        """Every (register, value) written to ``addr``, pointer-expanded, in order."""
        out = []
        for kind, a, data in self.log:
            if kind == "w" and a == addr and len(data) > 1:
                out += [((data[0] + i) & 0xFF, v) for i, v in enumerate(data[1:])]
        return out

    def writes(self, addr) -> list[bytes]:
        return [data for kind, a, data in self.log if kind == "w" and a == addr]


class FakeMPR121(FakeChip):
    """Soft reset restores CONFIG2's reset value 0x24, as the real chip does."""

    def __init__(self):
        super().__init__({0x5D: 0x24})
        self.scan = None

    def on_register_write(self, reg, value):
        if reg == 0x80 and value == 0x63:
            self.regs[:] = bytes(256)
            self.regs[0x5D] = 0x24
            if self.scan:  # the electrodes still measure what they measure
                self.set_scan(*self.scan)
        else:
            super().on_register_write(reg, value)

    def set_scan(self, touched: int, filtered, baseline10):
        self.scan = (touched, filtered, baseline10)
        self.regs[0] = touched & 0xFF
        self.regs[1] = touched >> 8
        for i, v in enumerate(filtered):
            self.regs[0x04 + 2 * i] = v & 0xFF
            self.regs[0x05 + 2 * i] = v >> 8
        for i, v in enumerate(baseline10):
            self.regs[0x1E + i] = v >> 2


class FakeBH1750(FakeChip):
    """Opcodes only; a 2-byte read returns the current measurement, big endian."""

    def __init__(self, counts=0):
        super().__init__()
        self.opcodes: list[int] = []
        self.counts = counts

    def write(self, data):
        self.opcodes += list(data)

    def read(self, n):
        return bytes([self.counts >> 8, self.counts & 0xFF])[:n]


class FakeSpi:
    """spidev.SpiDev stand-in recording every transfer."""

    def __init__(self):
        self.max_speed_hz = 0
        self.mode = None
        self.transfers: list[bytes] = []
        self.fail: OSError | None = None
        self.closed = False

    def open(self, bus, device):
        self.opened = (bus, device)

    def writebytes2(self, data):
        if self.fail is not None:
            raise self.fail
        self.transfers.append(bytes(memoryview(data)))

    def close(self):
        self.closed = True


def fake_rpi_ws281x(begin_error: Exception | None = None) -> types.ModuleType:
    """A module with rpi_ws281x's PixelStrip/ws API, recording pixels and shows.

    Like the real library (rpi_ws281x 5.0), each PixelStrip registers its own ``_cleanup``
    with :mod:`atexit`, and that cleanup calls ``ws2811_fini`` on its struct: here a cleanup
    of a strip whose begin() never succeeded raises, where the real one segfaults."""
    import atexit
    mod = types.ModuleType("rpi_ws281x")
    ws = types.SimpleNamespace(WS2811_STRIP_RGB=0x100800, WS2811_STRIP_GRB=0x081000,
                               WS2811_STRIP_BRG=0x001008, WS2811_STRIP_RBG=0x100008,
                               WS2811_STRIP_GBR=0x080010, WS2811_STRIP_BGR=0x000810)

    class PixelStrip:
        instances: list = []

        def __init__(self, num, pin, freq_hz=800000, dma=10, invert=False, brightness=255,
                     channel=0, strip_type=None, gamma=None):
            self.args = dict(num=num, pin=pin, freq_hz=freq_hz, dma=dma, invert=invert,
                             brightness=brightness, channel=channel, strip_type=strip_type)
            self.pixels = [0] * num
            self.shown: list[list[int]] = []
            self.cleaned = False
            self.initialised = False
            self._leds = object()  # the C struct
            PixelStrip.instances.append(self)
            atexit.register(self._cleanup)

        def begin(self):
            if begin_error is not None:
                raise begin_error
            self.initialised = True

        def setPixelColor(self, n, color):
            self.pixels[n] = color

        def show(self):
            self.shown.append(list(self.pixels))

        def _cleanup(self):
            if self._leds is not None:
                if not self.initialised:
                    raise RuntimeError("ws2811_fini on a never-initialised struct (segfault)")
                self._leds = None
            self.cleaned = True

    def Color(red, green, blue, white=0):
        return (white << 24) | (red << 16) | (green << 8) | blue

    mod.PixelStrip, mod.Color, mod.ws = PixelStrip, Color, ws
    return mod


def fake_gpio_module(name="RPi.GPIO") -> types.ModuleType:
    """The RPi.GPIO / Jetson.GPIO function API, recording calls."""
    mod = types.ModuleType(name)
    mod.BCM, mod.BOARD = 11, 10
    mod.IN, mod.OUT, mod.HIGH, mod.LOW = 1, 0, 1, 0
    mod.PUD_UP, mod.PUD_DOWN, mod.PUD_OFF = 22, 21, 20
    mod.RISING, mod.FALLING, mod.BOTH = 31, 32, 33
    mod.calls = []
    mod.levels = {}

    def record(fname):
        def f(*args, **kwargs):
            mod.calls.append((fname, args, kwargs))
            if fname == "input":
                return mod.levels.get(args[0], 1)
            if fname == "output":
                mod.levels[args[0]] = args[1]
        return f

    for fname in ("setmode", "setwarnings", "setup", "input", "output", "add_event_detect",
                  "remove_event_detect", "cleanup"):
        setattr(mod, fname, record(fname))
    return mod
