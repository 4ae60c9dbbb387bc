"""Synthetic data for any body: the simulated visitor handles the object its profile
describes, and the device's own sampler makes the frames.

``lanthorn data synth --profile bowl`` (or a maker's profile with an IMU, a PIR, a knob, a
button) opens the simulated body, lets the :class:`~lanthorn.hardware.sim.body_visitor.BodyVisitor`
lift, tilt, shake, knock, approach, press and turn it, and reads it exactly as the running
piece does (:class:`lanthorn.device.piece.sampling.Sampler` at the device's sample rate, each
channel encoded by its part's declaration, samples averaged into frames by the same
pipeline). Each frame is labelled with what the visitor did at its last sample: the labels
are the simulator's exact gesture intervals, nothing guessed. A dataset's channels bind by
name: it may hold a subset of the body's channels, in any order.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lanthorn.device.storage import dataset as dsf
from lanthorn.device.storage.dataset import DataError, Source

SYNTH_SOURCE = "synthetic"


def body_dataset(root: Path, layout, gestures, rate_hz: float) -> tuple[list[int], tuple[str, ...]]:
    """Create the dataset from the body's layout if missing; else check it can take this
    body's data. Returns (index of each dataset channel in the body's frame, the gestures
    the visitor may perform: those the dataset has labels for)."""
    if not (root / dsf.MANIFEST).exists():
        dsf.create_dataset(root, rate_hz=rate_hz, channels=layout.names, labels=gestures,
                           units=dict(layout.units), ranges=dict(layout.ranges), ring=())
    header, _, _ = dsf.read_manifest(root)
    missing = layout.missing(header["channels"])
    if missing:
        raise DataError(f"this dataset has channel(s) {', '.join(missing)} the body does not have "
                        f"(it has {', '.join(layout.names)})", root / dsf.MANIFEST)
    can = [g for g in header["labels"] if g in gestures and g != "nobody"]
    if not can:
        raise DataError(f"the simulated visitor can perform none of this dataset's labels on this "
                        f"body (it performs {', '.join(gestures)}; the dataset has "
                        f"{', '.join(header['labels'])})", root)
    index = [layout.names.index(c) for c in header["channels"]]
    return index, ("nobody",) + tuple(can)


def session_frames(profile, seed: int, seconds: float, rate_hz: float, only) -> tuple:
    """(frames [F, C] in the body's channel order, a label per frame) of one simulated
    session, made by the device's sampler on the simulated body."""
    from lanthorn.device.piece.channel_layout import layout_for_profile
    from lanthorn.device.piece.frames import SAMPLE_HZ
    from lanthorn.device.piece.params import ParamStore
    from lanthorn.device.piece.part_health import PartHealth
    from lanthorn.device.piece.sampling import Sampler
    from lanthorn.device.piece.scheduler import Scheduler
    from lanthorn.hardware.body import open_body
    from lanthorn.hardware.sim import SimClock

    clock = SimClock()
    body = open_body(profile, sim=True, seed=seed, clock=clock, realtime=False,
                     gestures=[g for g in only if g != "nobody"])
    layout = layout_for_profile(profile)
    health = PartHealth(body, 5.0, lambda text: None, lambda kind, text: None)
    sampler = Sampler(body, health, Scheduler(clock), layout=layout)
    params = ParamStore().snapshot()
    n = int(seconds * rate_hz)
    frames = np.empty((n, layout.n), np.float32)
    labels = []
    sampler.start(0.0)
    i = 0
    for f in range(n):
        # as the device loop: samples at 100 Hz, a frame each 1/rate s (30 Hz frames mean
        # 3 or 4 samples each, in turn)
        while True:
            now = clock()
            sampler.take(now, params, now)
            clock.advance(1.0 / SAMPLE_HZ)
            i += 1
            if i / SAMPLE_HZ >= (f + 1) / rate_hz - 1e-9:
                break
        sampler.take_frame()
        frames[f] = sampler.frame
        labels.append(body.gesture_at(now))
    body.close()
    return frames, labels


def synthesize_body(out, profile, minutes: float = 6.0, seed: int = 0,
                    session_seconds: float = 60.0, source: str = SYNTH_SOURCE,
                    compress: bool = False, rate_hz: float = 25.0, log=print) -> list[Path]:
    """Write ``minutes`` of a simulated visitor handling ``profile``'s body."""
    from lanthorn.device.piece.channel_layout import layout_for_profile
    from lanthorn.hardware.sim.body_visitor import body_gestures
    if not (minutes > 0 and session_seconds > 0):
        raise DataError("--minutes and --session-seconds must be positive")
    layout = layout_for_profile(profile)
    gestures = body_gestures(profile)
    if len(gestures) < 2:
        raise DataError(f"{profile.source}: the simulated visitor has nothing to do with this "
                        f"body: its parts sense none of lift, tilt, shake, knock, approach, "
                        f"press, turn (an IMU, a PIR, a button or a potentiometer would)")
    root = Path(out)
    index, only = body_dataset(root, layout, gestures, rate_hz)
    header, sources, _ = dsf.read_manifest(root)
    # the visitor's rests are "nobody"; a dataset may call its "nothing happening" otherwise
    rest = "nobody" if "nobody" in header["labels"] else header["labels"][0]
    if source in sources and any((root / dsf.RECORDINGS / source).glob("*.csv*")):
        raise DataError(f"source {source!r} already has recordings here; choose another "
                        f"--out or --source", root)
    rate = float(header["rate_hz"])
    from lanthorn.device.piece.frames import SAMPLE_HZ
    if not 0 < rate <= SAMPLE_HZ:
        raise DataError(f"this dataset's rate {rate:g} Hz is above what a body is sampled at "
                        f"({SAMPLE_HZ:g} Hz)", root / dsf.MANIFEST)
    n = max(1, int(math.ceil(minutes * 60.0 / session_seconds)))
    dsf.add_source(root, Source(
        source, author="lanthorn body simulator (lanthorn.hardware.sim.body_visitor)",
        consent="not applicable: synthetic, no person recorded", licence="CC0-1.0", date="",
        device=f"simulated {', '.join(sorted({s.type for s in profile.parts.values()}))} "
               f"({profile.name})",
        notes=(f"lanthorn data synth --profile {profile.name} --minutes {minutes:g} --seed {seed} "
               f"--session-seconds {session_seconds:g}; labels are the simulator's exact gesture "
               f"intervals"), weight=1.0, synthetic=True), replace=True)
    seeds = np.random.SeedSequence(seed).generate_state(n)
    paths = []
    for i in range(n):
        frames, labels = session_frames(profile, int(seeds[i]), session_seconds, rate, only)
        labels = [rest if lab == "nobody" else lab for lab in labels]
        paths.append(dsf.write_recording(root, source, f"s{seed}-{i:03d}", frames[:, index],
                                         labels, rate_hz=rate, compress=compress))
    log(f"wrote {n} synthetic sessions ({n * session_seconds / 60:.1f} min of {rate:g} Hz frames "
        f"of {len(index)} channels, the visitor performing {', '.join(only)}) to {root}")
    return paths
