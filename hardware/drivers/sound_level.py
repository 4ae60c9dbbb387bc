"""A sound level from an I2S or USB microphone, through PortAudio (the sounddevice package).

Why this library: ``sounddevice`` (python-sounddevice, PyPI, maintained, pure Python over
PortAudio's C library via CFFI) captures from any ALSA input: a USB microphone or an I2S MEMS
microphone (INMP441, SPH0645, ICS-43434) enabled with a device-tree overlay on a Pi, or the
Jetson's USB/I2S inputs. Its C side is Debian's and Raspberry Pi OS's ``libportaudio2``
(``sudo apt install libportaudio2``); the module is imported only when this part is opened.
Without a microphone, wire an analog microphone module's envelope output to an ADS1115
input (``kind = "envelope"``); see hardware/README.md.

The stream runs in PortAudio's thread: every block (``block_ms``) its callback computes
the block's RMS and keeps the level in dBFS, AES17 style (a full-scale sine reads 0 dBFS:
``20 log10(sqrt(2) * rms)``), floored at ``floor_db``. :meth:`read` returns the newest
level and never blocks. A microphone that stops delivering (unplugged, the stream died)
raises PartError; part health re-opens the part, which opens a new stream.
"""
from __future__ import annotations

import math
import time

from lanthorn.errors import install_hint

from ..channels import Channel, ChannelSensor
from ..interfaces import PartError

STALE_BLOCKS = 5  # no block for this many block times: the microphone is gone


def dbfs(rms: float, floor_db: float) -> float:
    """The RMS of samples in [-1, 1] as dBFS (a full-scale sine: 0 dBFS), floored."""
    if rms <= 0.0:
        return floor_db
    return max(20.0 * math.log10(math.sqrt(2.0) * rms), floor_db)


def _import_sounddevice(name: str):
    try:
        import sounddevice
    except ModuleNotFoundError:
        raise PartError(name, "needs the sounddevice package: " + install_hint("sound")) from None
    except OSError as exc:  # the module is there, PortAudio's C library is not
        raise PartError(name, f"sounddevice cannot load PortAudio ({exc}); install it with "
                              f"'sudo apt install libportaudio2'") from None
    return sounddevice


class SoundLevel(ChannelSensor):
    def __init__(self, device=None, samplerate: int = 16000, block_ms: float = 50.0,
                 floor_db: float = -90.0, channels: tuple[Channel, ...] | None = None,
                 name: str = "sound", clock=time.monotonic, module=None):
        self.name = name
        self.floor_db = float(floor_db)
        self.channels = channels or (Channel(name, "dBFS", self.floor_db, 0.0, "linear", 20.0),)
        self.block_s = float(block_ms) / 1000.0
        self._clock = clock
        self.level = self.floor_db
        self.blocks = 0
        self._last_block_t: float | None = None
        sd = module or _import_sounddevice(name)
        self._opened_t = clock()
        try:
            self._stream = sd.InputStream(device=device, channels=1, samplerate=int(samplerate),
                                          blocksize=max(int(samplerate * self.block_s), 1),
                                          dtype="float32", callback=self._on_block)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._stream = None
            what = "the default input" if device is None else f"input device {device!r}"
            raise PartError(name, f"cannot open {what}: {exc}; list the inputs with "
                                  f"'python3 -m sounddevice' and set device in the profile") from None

    def _on_block(self, indata, frames, time_info, status) -> None:
        """PortAudio's callback (its own thread): one block of samples -> the level."""
        samples = indata[:, 0]
        rms = math.sqrt(float((samples * samples).mean())) if len(samples) else 0.0
        self.level = dbfs(rms, self.floor_db)
        self.blocks += 1
        self._last_block_t = self._clock()

    def read(self) -> tuple[float]:
        now = self._clock()
        if self._stream is None or not self._stream.active:
            raise PartError(self.name, "the microphone stream stopped (unplugged?)")
        last = self._opened_t if self._last_block_t is None else self._last_block_t
        quiet_for = now - last
        if quiet_for > max(STALE_BLOCKS * self.block_s, 0.5):
            raise PartError(self.name, f"no sound from the microphone for {quiet_for:.1f} s "
                                       f"(unplugged, or another program holds it?)")
        return (self.level,)

    def close(self) -> None:
        stream, self._stream = getattr(self, "_stream", None), None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # a stream whose device vanished may fail to stop; it is gone
                pass
