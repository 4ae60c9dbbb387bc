"""What data a model is trained and judged on: one :class:`DataSpec` shared by all steps.

Everything that decides which windows a model sees (window, hop, labelling policy, the split
by session and its seed) is one spec, saved in the training checkpoint and in the ONNX
metadata, so ``lanthorn train``, ``lanthorn quantize`` and pruning evaluate on exactly the
same held-out sessions. numpy + stdlib (onnx imported only to read/write metadata).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from lanthorn.device.piece.frames import DEFAULT_WINDOW
from lanthorn.device.storage.dataset import (
    MIXED,
    SIDES,
    DataError,
    Dataset,
    Recording,
    Windows,
    load_dataset,
    pin_sessions,
)

#: ONNX metadata key holding the data spec (JSON); read by ``lanthorn quantize``.
META_KEY = "lanthorn.data_spec"
#: ONNX metadata key of what training saw and how it did (sessions of each side, quality
#: gates); ``quantize`` refuses to score a model on its own training sessions with it.
TRAINING_KEY = "lanthorn.training"


@dataclass
class DataSpec:
    window: int = DEFAULT_WINDOW
    hop: int = 3
    label_at: str = "event"
    min_frames: int = 6
    val: float = 0.15
    test: float = 0.15
    split_seed: int = 0
    # filled from the dataset:
    rate_hz: float = 0.0
    channels: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    ring: tuple[int, ...] = ()    # indices of the channels the dataset declares as a ring
    #: takes shorter than the window are front-padded with their first frame (datasets of
    #: one instance per take, of varying length), instead of giving no windows
    pad_short: bool = False
    #: per channel, what frames are multiplied by before the model (1 / the channel's peak
    #: in the training windows, set by ``train``): the int8 input has ONE scale for all
    #: channels, so an IMU's
    #: g and deg/s must arrive at similar magnitudes or the small one is rounded away
    #: (measured: int8 45 % against float 100 %). Travels in the bundle's input spec; the
    #: device loop applies it. Empty: frames go in as they are (models before this field).
    input_scale: tuple[float, ...] = ()

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> "DataSpec":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()})


@dataclass
class Splits:
    spec: DataSpec
    dataset: Dataset
    train: Windows
    val: Windows
    test: Windows
    sessions: dict[str, list[str]] = field(default_factory=dict)
    #: gestures held out in time within each take (too few takes to hold out by take),
    #: with how many takes each
    held_in_time: dict[str, int] = field(default_factory=dict)


def prepare(data_dir, spec: DataSpec | None = None) -> Splits:
    """Load the dataset and cut it into train/val/test windows by session."""
    spec = spec or DataSpec()
    ds = load_dataset(data_dir)
    if spec.labels and tuple(spec.labels) != ds.labels:
        raise DataError(f"the dataset's labels {list(ds.labels)} differ from the model's "
                        f"{list(spec.labels)}", data_dir)
    if spec.channels and tuple(spec.channels) != ds.channels:
        raise DataError(f"the dataset's channels differ from the model's {list(spec.channels)}",
                        data_dir)
    spec.rate_hz, spec.channels, spec.labels = ds.rate_hz, ds.channels, ds.labels
    spec.ring = tuple(ds.channels.index(c) for c in ds.ring)
    sides = session_sides(ds, spec.split_seed)
    held_in_time = {} if spec.pad_short else hold_out_in_time(ds, sides, spec.window)
    w = ds.windows(spec.window, spec.hop, spec.label_at, spec.min_frames, spec.pad_short)
    if len(w) == 0:
        raise DataError(f"no session is at least {spec.window} frames long: nothing to train on",
                        data_dir)
    if spec.input_scale:
        if len(spec.input_scale) != len(ds.channels):
            raise DataError(f"the model scales {len(spec.input_scale)} channels, the dataset "
                            f"has {len(ds.channels)}", data_dir)
        scale_windows(w.X, spec.input_scale)
    names = np.array([sides[k] for k in w.sessions.tolist()]) if len(w) else np.zeros(0, str)
    parts = {k: w.subset(names == k) for k in SIDES}
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise DataError("too few sessions to hold some out for validation: record or "
                        "synthesise at least 3 sessions per gesture", data_dir)
    sessions = {k: sorted(set(p.sessions.tolist())) for k, p in parts.items()}
    return Splits(spec, ds, parts["train"], parts["val"], parts["test"], sessions, held_in_time)


#: Held out in time: each held-out block's share of a take (validation, then test, at its
#: end), and the gap before each block, in windows.
BLOCK_SHARE = 0.2
BLOCK_GAP_WINDOWS = 0.5
#: The mark between a take's key and its block's side (``my-hand/wave-1@test``).
BLOCK_MARK = "@"


def hold_out_in_time(ds: Dataset, sides: dict[str, str], window: int) -> dict[str, int]:
    """Hold out a gesture with too few takes in time, within each take; returns {gesture:
    takes}. Changes ``ds.recordings`` and ``sides`` in place.

    The split is by take (pinned in the manifest) so that what judges a model never shares
    a take with what trained it. A gesture just being taught has two or three takes, not
    enough for one on every side: then each of its takes is cut in time instead -- the
    first part trains, then (after a gap of half a window, so no frame and no neighbouring
    instant is shared) the next :data:`BLOCK_SHARE` validates and the last one tests:
    blocked hold-out, the standard way to judge time series without leaking between
    neighbouring windows. It is honest about the gesture (the held-out frames were never
    trained on) but not about a new day or hand, so train says so, and from the moment the
    gesture's takes cover every side it is held out by take again. Only single-gesture takes
    (a visit of many gestures is dealt by take), never a take the artist pinned (``fixed``)
    or one too short for three blocks of a window each; one-instance-per-take datasets are
    never cut (a take is one instance)."""
    groups: dict[str, list[Recording]] = {}
    for r in ds.recordings:
        e = ds.sessions.get(r.key) or {}
        g = e.get("label")
        if g not in (None, MIXED, ds.labels[0]):
            groups.setdefault(g, []).append(r)
    held: dict[str, int] = {}
    for g, recs in groups.items():
        if {sides[r.key] for r in recs} >= set(SIDES) or any(
                ds.sessions[r.key].get("fixed") for r in recs):
            continue
        for r in recs:
            blocks = _time_blocks(len(r.frames), window)
            if blocks is None:
                continue
            ds.recordings.remove(r)
            del sides[r.key]
            for side, (a, b) in blocks.items():
                part = Recording(r.source, f"{r.session}{BLOCK_MARK}{side}", r.path,
                                 r.frames[a:b], r.labels[a:b])
                ds.recordings.append(part)
                sides[part.key] = side
            held[g] = held.get(g, 0) + 1
    return held


def _time_blocks(n: int, window: int) -> dict[str, tuple[int, int]] | None:
    """{side: (start, end)} frames of a take of ``n`` frames, or None when it is too short
    for a training block and two held-out blocks of a window each."""
    block = max(window, int(round(BLOCK_SHARE * n)))
    gap = int(round(BLOCK_GAP_WINDOWS * window))
    train_end = n - 2 * (block + gap)
    if train_end < window:
        return None
    val = train_end + gap
    return {"train": (0, train_end), "val": (val, val + block), "test": (n - block, n)}


def take_of(key: str) -> str:
    """The take a session key (or a block of one) belongs to."""
    return key.split(BLOCK_MARK, 1)[0]


def shares_frames(a: str, b: str) -> bool:
    """Whether sessions (or blocks) ``a`` and ``b`` can hold the same frames: the same
    take, unless both are different blocks of it."""
    if take_of(a) != take_of(b):
        return False
    return a == b or BLOCK_MARK not in a or BLOCK_MARK not in b


def scale_windows(X: np.ndarray, scale) -> np.ndarray:
    """Windows [N, C, T] multiplied in place by a per-channel ``scale`` (the spec's)."""
    if scale and len(X):
        X *= np.asarray(scale, np.float32)[None, :, None]
    return X


def auto_spec(ds: Dataset) -> tuple[list[int], str]:
    """The window lengths worth trying on this dataset, when the artist gave none: (windows,
    why). ``lanthorn train`` tries each (a small validation search) when there are several.

    * Each session one label throughout (one instance per take, as in published motion and
      gesture archives): the whole shortest take, and half of it (several windows a take:
      more examples, but a gesture told by *when* something happens needs the whole take).
    * Continuous recordings (a visit with many gestures): about 2 s of frames.
    Windows are at least 8 frames; the hop is window / 16."""
    lengths = [len(r.frames) for r in ds.recordings]
    if not lengths:
        return [DEFAULT_WINDOW], "no recordings yet"
    single = all(len(set(r.labels.tolist())) == 1 for r in ds.recordings)
    if single:
        # most of a take (its length at the first quartile); shorter takes are padded
        whole = max(8, min(int(np.percentile(lengths, 25)), 256))
        windows = list(dict.fromkeys([whole, max(8, whole // 2)]))
        return windows, (f"each take is one labelled instance ({min(lengths)}-{max(lengths)} "
                         f"frames; shorter ones padded with their first frame): trying windows "
                         f"of {' and '.join(map(str, windows))} frames")
    window = max(8, int(round(2.0 * ds.rate_hz)))
    why = f"window {window} frames (2 s at {ds.rate_hz:g} Hz)"
    short = sum(1 for n in lengths if n < window)
    if short:
        why += f"; {short} sessions shorter than that give no windows"
    return [window], why


def auto_fit(n_train: int) -> dict:
    """Batch, epochs and patience for ``n_train`` training windows, when not given.

    Small datasets need small batches and many epochs: the learning rate follows one cycle
    over all epochs, and stopping early while it is still high stops before the model
    settles (measured: 47 % → 95 % on a 40-take IMU set). A large dataset (the default
    piece: ~12 000 windows) keeps 64 / 40 / 8."""
    if n_train >= 8000:
        return {"batch": 64, "epochs": 40, "patience": 8}
    batch = 8 if n_train < 600 else 16 if n_train < 2500 else 32
    steps = max(1, -(-n_train // batch))
    epochs = int(min(200, max(40, -(-2500 // steps))))
    return {"batch": batch, "epochs": epochs, "patience": max(10, epochs // 2)}


def session_sides(ds: Dataset, split_seed: int = 0) -> dict[str, str]:
    """Each session's pinned side; sessions not pinned yet are pinned now (written to the
    manifest, so the next run sees the same split). A read-only dataset is split in memory
    the same way, with a warning that the pins could not be saved."""
    if all(r.key in ds.sessions for r in ds.recordings):
        return {r.key: ds.sessions[r.key]["split"] for r in ds.recordings}
    try:
        pinned = pin_sessions(ds.path, split_seed)
    except OSError as exc:
        raise DataError(f"cannot record the held-out split in the manifest ({exc}); make the "
                        f"dataset writable", ds.path) from None
    ds.sessions = pinned
    return {r.key: pinned[r.key]["split"] for r in ds.recordings}


def onnx_with_spec(onnx_bytes: bytes, spec: DataSpec, extra: dict | None = None) -> bytes:
    """Attach the data spec (labels, channels, rate, window) as ONNX metadata."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    del model.metadata_props[:]
    for k, v in {META_KEY: json.dumps(spec.to_json(), sort_keys=True), **(extra or {})}.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    return model.SerializeToString()


def spec_from_onnx(model) -> DataSpec | None:
    """The data spec a lanthorn-trained ONNX carries, or None for a foreign model."""
    for p in model.metadata_props:
        if p.key == META_KEY:
            try:
                return DataSpec.from_json(json.loads(p.value))
            except (ValueError, TypeError):
                return None
    return None
