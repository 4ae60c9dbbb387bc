"""Model frames on their way to the model: the input window and the recent history.

:class:`FrameWindow` keeps the newest ``window`` frames in a ring laid out twice over, so the
newest window is always one contiguous view (no copy per inference); when the model reads
other channels (or in another order) than the object's frames, or was trained on scaled
inputs (the bundle's input spec), the window is mapped and scaled into one preallocated
array. :class:`FrameHistory` keeps the last ``seconds`` of frames with their times for the
console (``latest`` for ``watch``, ``frames_since`` for ``record``); it is the only part
the console thread reads, so it has the lock. Both are sized when a model is bound and
allocate nothing per frame.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from lanthorn.device.piece import frames as fr


class FrameWindow:
    """The model's input window over a ring of frames (see the module docstring).
    ``channel_map``: indices into the body's frame per model channel (None: as they are);
    ``scale``: per-channel factors (None: none); ``n_channels``: the body's frame width."""

    def __init__(self, window: int, channel_map: np.ndarray | None = None, scale=None,
                 n_channels: int = fr.N_CHANNELS):
        self.window = int(window)
        self.ring = np.zeros((2 * self.window, n_channels), np.float32)
        self.count = 0
        self.channel_map = channel_map
        self.scale = np.asarray(scale, np.float32) if scale else None
        n_in = len(channel_map) if channel_map is not None else n_channels
        self._model_in = (np.zeros((self.window, n_in), np.float32)
                          if channel_map is not None or self.scale is not None else None)

    def push(self, frame: np.ndarray) -> np.ndarray:
        """Add the newest frame; returns its row in the ring."""
        w = self.window
        i = self.count % w
        if self.count == 0:
            # the first window is the first frame repeated: the model never sees a made-up
            # jump from zeros (darkness, nobody) at start-up or after a model swap
            self.ring[:] = frame
        np.copyto(self.ring[i], frame)
        np.copyto(self.ring[i + w], frame)
        self.count += 1
        return self.ring[i]

    def raw(self) -> np.ndarray:
        """The newest window of frames as the object makes them (a view)."""
        start = self.count % self.window
        return self.ring[start:start + self.window]

    def view(self) -> np.ndarray:
        """The newest window as the model reads it (its channels, its scale)."""
        view = self.raw()
        if self._model_in is None:
            return view
        if self.channel_map is not None:
            np.take(view, self.channel_map, axis=1, out=self._model_in)
            view = self._model_in
        if self.scale is not None:
            np.multiply(view, self.scale, out=self._model_in)
        return self._model_in


class FrameHistory:
    """The last ``n`` model frames with their loop times, for the console thread."""

    def __init__(self, n: int, n_channels: int = fr.N_CHANNELS):
        self.lock = threading.Lock()
        self.frames = np.zeros((max(1, int(n)), n_channels), np.float32)
        self.times = np.full(self.frames.shape[0], -math.inf)
        self.count = 0

    def add(self, frame: np.ndarray, t: float) -> None:
        with self.lock:
            j = self.count % self.frames.shape[0]
            np.copyto(self.frames[j], frame)
            self.times[j] = t
            self.count += 1

    def newest(self) -> tuple[np.ndarray, float]:
        """(a copy of the newest frame, its time); zeros and 0.0 before the first."""
        with self.lock:
            if not self.count:
                return np.zeros(self.frames.shape[1], np.float32), 0.0
            j = (self.count - 1) % self.frames.shape[0]
            return self.frames[j].copy(), float(self.times[j])

    def since(self, t: float) -> tuple[list[np.ndarray], float]:
        """Frames newer than ``t``, oldest first, and the time of the newest (pass it back
        to continue)."""
        with self.lock:  # vectorised: the loop waits for this lock to push a frame
            n, size = self.count, self.frames.shape[0]
            idx = np.arange(max(0, n - size), n) % size  # oldest first
            idx = idx[self.times[idx] > t]
            rows = self.frames[idx]  # a copy (fancy indexing)
            newest = float(self.times[idx[-1]]) if idx.size else t
        return list(rows), newest
