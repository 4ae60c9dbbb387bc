"""Fake chips for the channel-part drivers, each behaving as its datasheet says.

They plug into :class:`hw_fakes.FakeSMBus`. Each fake holds a *physical* state (the
acceleration and rotation it feels, the voltages on its inputs) and fills its output
registers from it through its *own* register configuration, as the silicon does: a driver
that configures a range wrong reads wrong numbers. ``power_cycle()`` puts a chip back in
its power-on state, as an unplug/replug or a brown-out does.
"""
from __future__ import annotations

import types

from hw_fakes import FakeChip


def _counts(value, per_count):
    return max(-32768, min(32767, round(value / per_count)))


class FakeMPU6050(FakeChip):
    ACCEL_LSB_G = {0: 1 / 16384, 1: 1 / 8192, 2: 1 / 4096, 3: 1 / 2048}
    GYRO_LSB_DPS = {0: 1 / 131, 1: 1 / 65.5, 2: 1 / 32.8, 3: 1 / 16.4}

    def __init__(self, who_am_i=0x68):
        super().__init__()
        self.who_am_i = who_am_i
        self.motion = ((0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
        self.resets = 0
        self.power_cycle()

    def power_cycle(self):
        self.regs[:] = bytes(256)
        self.regs[0x75], self.regs[0x6B] = self.who_am_i, 0x40  # asleep

    def on_register_write(self, reg, value):
        if reg == 0x6B and value & 0x80:
            self.resets += 1
            self.power_cycle()
            return
        super().on_register_write(reg, value)
        self._measure()

    def feel(self, accel_g, gyro_dps):
        self.motion = (tuple(accel_g), tuple(gyro_dps))
        self._measure()

    def _measure(self):
        if self.regs[0x6B] & 0x40:
            return  # asleep: the data registers do not update
        a_lsb = self.ACCEL_LSB_G[self.regs[0x1C] >> 3 & 3]
        g_lsb = self.GYRO_LSB_DPS[self.regs[0x1B] >> 3 & 3]
        words = [_counts(v, a_lsb) for v in self.motion[0]] + [1000] \
            + [_counts(v, g_lsb) for v in self.motion[1]]
        for i, w in enumerate(words):
            self.regs[0x3B + 2 * i:0x3D + 2 * i] = (w & 0xFFFF).to_bytes(2, "big")


class FakeLSM6DS3(FakeChip):
    MG = {0b00: 0.061, 0b01: 0.488, 0b10: 0.122, 0b11: 0.244}
    MDPS = {0b00: 8.75, 0b01: 17.5, 0b10: 35.0, 0b11: 70.0}

    def __init__(self, who_am_i=0x69):
        super().__init__()
        self.who_am_i = who_am_i
        self.motion = ((0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
        self.resets = 0
        self.power_cycle()

    def power_cycle(self):
        self.regs[:] = bytes(256)
        self.regs[0x0F], self.regs[0x12] = self.who_am_i, 0x04  # IF_INC is on at reset

    def on_register_write(self, reg, value):
        if reg == 0x12 and value & 0x01:
            self.resets += 1
            self.power_cycle()
            return
        super().on_register_write(reg, value)
        self._measure()

    def feel(self, accel_g, gyro_dps):
        self.motion = (tuple(accel_g), tuple(gyro_dps))
        self._measure()

    def _measure(self):
        xl, g = self.regs[0x10], self.regs[0x11]
        if g >> 4:
            for i, v in enumerate(self.motion[1]):
                w = _counts(v, self.MDPS[g >> 2 & 3] / 1000)
                self.regs[0x22 + 2 * i:0x24 + 2 * i] = (w & 0xFFFF).to_bytes(2, "little")
        if xl >> 4:
            for i, v in enumerate(self.motion[0]):
                w = _counts(v, self.MG[xl >> 2 & 3] / 1000)
                self.regs[0x28 + 2 * i:0x2A + 2 * i] = (w & 0xFFFF).to_bytes(2, "little")


class FakeADS1115:
    """16-bit registers behind a pointer byte; a single-shot conversion is busy for
    ``busy_reads`` config reads, then OS reads 1 and the conversion register holds it.

    Busy counts reads, not time: a test on the real clock (where a loaded machine may
    oversleep the driver's timeout between two polls, when a real chip would long be done)
    uses ``busy_reads=0``; the timing tests use a fake clock."""

    FS = {0: 6.144, 1: 4.096, 2: 2.048, 3: 1.024, 4: 0.512, 5: 0.256, 6: 0.256, 7: 0.256}

    def __init__(self, volts=(0.0, 0.0, 0.0, 0.0), busy_reads=1):
        self.volts = list(volts)
        self.busy_reads = busy_reads
        self.stuck = False  # a chip that never finishes a conversion
        self.conversions: list[tuple[int, float]] = []  # (AIN, full scale) of each started
        self.power_cycle()

    def power_cycle(self):
        self.reg = {0: 0x0000, 1: 0x8583, 2: 0x8000, 3: 0x7FFF}
        self.pointer, self._busy = 0, 0

    def write(self, data: bytes):
        self.pointer = data[0] & 3
        if len(data) == 3:
            value = data[1] << 8 | data[2]
            if self.pointer == 1:
                self._configure(value)
            else:
                self.reg[self.pointer] = value

    def _configure(self, value):
        self.reg[1] = value & 0x7FFF
        if value & 0x8000 and value & 0x0100:  # OS=1 in single-shot mode: convert
            mux, pga = value >> 12 & 7, value >> 9 & 7
            fs = self.FS[pga]
            ain = mux - 4 if mux >= 4 else None  # single-ended AIN0..3 only in these tests
            self.conversions.append((ain, fs))
            self.reg[0] = _counts(self.volts[ain], fs / 32768) & 0xFFFF
            self._busy = self.busy_reads

    def read(self, n: int) -> bytes:
        value = self.reg[self.pointer]
        if self.pointer == 1:
            if self._busy or self.stuck:
                self._busy = max(self._busy - 1, 0)
            else:
                value |= 0x8000
        return value.to_bytes(2, "big")[:n]


def fake_sounddevice(open_error: str | None = None) -> types.ModuleType:
    """sounddevice's InputStream API: the test delivers blocks with ``stream.deliver``."""
    mod = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    class InputStream:
        instances: list = []

        def __init__(self, **kwargs):
            if open_error:
                raise PortAudioError(open_error)
            self.kwargs = kwargs
            self.active = False
            self.closed = False
            InputStream.instances.append(self)

        def start(self):
            self.active = True

        def stop(self):
            self.active = False

        def close(self):
            self.closed = True

        def deliver(self, block):
            import numpy as np
            block = np.asarray(block, np.float32).reshape(-1, 1)
            self.kwargs["callback"](block, len(block), None, None)

    mod.PortAudioError, mod.InputStream = PortAudioError, InputStream
    return mod
