"""Trains two tiny models (the gesture CNN and the voice MLP) in this process and prints
one JSON line: the kernel dispatch torch ran with and the sha256 of every trained weight.

Run as a subprocess by tests/test_cpu_independent.py with different dispatch hints in the
environment; the lanthorn modules it imports fix (or, with LANTHORN_NATIVE_KERNELS=1, leave)
torch's CPU kernels before torch is imported, exactly as ``lanthorn train`` does.
"""
import hashlib
import json

import numpy as np

from lanthorn.quantize import determinism  # net fixes the kernels, then imports torch
from lanthorn.quantize import net as nets


def gesture_weights() -> bytes:
    """A few epochs of the default architecture (conv1d, batch norm, AdamW, one-cycle) on
    seeded random windows: enough steps for a last-bit difference to show in every weight."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 14, 50)).astype(np.float32)
    y = rng.integers(0, 9, size=96).astype(np.int64)
    X[np.arange(96), y % 14] += 1.5     # something to learn
    nets.set_deterministic(0)   # seeds the initial weights too
    net = nets.TemperamentNet(nets.ArchConfig())
    nets.fit(net, X, y, np.ones(96, np.float32), X[:32], y[:32], epochs=3, batch=32,
             patience=10, seed=0, progress=False, ring=range(12))
    return b"".join(v.detach().numpy().tobytes() for v in net.state_dict().values())


def voice_weights() -> bytes:
    """The voice's fit (embedding, two Linear layers, Adam, cosine schedule) on seeded tokens."""
    from lanthorn.device.piece.voice import VoiceSpec
    from lanthorn.host import voice_train as vt

    spec = VoiceSpec("\nabcdefgh ", ("calm", "bright"), 4)
    rng = np.random.default_rng(1)
    x = rng.integers(0, spec.n_tokens, size=(600, spec.input_len)).astype(np.int64)
    y = (x[:, -1] % len(spec.vocab)).astype(np.int64)
    net = vt.fit(spec, vt.VoiceArch(4, 8, 32), x, y, np.ones(600, np.float32), epochs=3, seed=0)
    return b"".join(v.detach().numpy().tobytes() for v in net.state_dict().values())


if __name__ == "__main__":
    gesture, voice = gesture_weights(), voice_weights()
    print(json.dumps({"dispatch": determinism.dispatch(),
                      "gesture": hashlib.sha256(gesture).hexdigest(),
                      "voice": hashlib.sha256(voice).hexdigest()}))
