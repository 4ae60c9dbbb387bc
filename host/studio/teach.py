"""The Teach view's work, as plain functions on a dataset folder and a models folder.

The web handlers only call these, so everything the studio does to the artist's data is
what the command-line tools do (the same dataset module, ``train``, ``quantize_model``),
and each step is testable without a browser.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from lanthorn.device.piece.frames import LABELS
from lanthorn.device.storage import dataset
from lanthorn.errors import UserError

STUDIO_SOURCE = "studio"


def dataset_summary(data: Path) -> dict:
    """Labels, channels and rate of the dataset, or why it cannot be read (or that it does
    not exist yet: the first take creates it)."""
    if not (Path(data) / dataset.MANIFEST).exists():
        return {"exists": False, "path": str(data), "labels": list(LABELS)}
    try:
        header, sources, _ = dataset.read_manifest(data)
    except dataset.DataError as exc:
        return {"exists": True, "path": str(data), "error": str(exc), "labels": []}
    return {"exists": True, "path": str(data), "labels": list(header["labels"]),
            "channels": list(header["channels"]), "rate_hz": header["rate_hz"],
            "sources": {k: s.to_json() for k, s in sources.items()}}


def list_sessions(data: Path) -> list[dict]:
    """Every session with its provenance: source (author, consent, licence...), file,
    length, frames per label and its main label."""
    ds = dataset.load_dataset(data)
    out = []
    for rec in ds.recordings:
        idx, cnt = np.unique(rec.labels, return_counts=True)
        counts = {ds.labels[i]: int(c) for i, c in zip(idx, cnt, strict=True)}
        fg = {k: v for k, v in counts.items() if k != ds.labels[0]}
        main = max(fg, key=fg.get) if fg else ds.labels[0]
        out.append({"source": rec.source, "session": rec.session,
                    "file": str(rec.path.relative_to(ds.path)), "frames": len(rec.frames),
                    "seconds": round(len(rec.frames) / ds.rate_hz, 2), "labels": counts,
                    "label": main, "provenance": ds.sources[rec.source].to_json()})
    return out


def session_plot(data: Path, source: str, session: str) -> dict:
    """A session's frames for the page's plot: channels, per-frame labels, rows [T][C]."""
    dataset.check_name("source", source)
    dataset.check_name("session", session)
    ds = dataset.load_dataset(data, sources=[source])
    for rec in ds.recordings:
        if rec.session == session:
            return {"channels": list(ds.channels), "rate_hz": ds.rate_hz,
                    "labels": [ds.labels[i] for i in rec.labels],
                    "rows": np.round(rec.frames.astype(np.float64), 4).tolist()}
    raise dataset.DataError(f"no session {session!r} in source {source!r}", data)


def save_take(data: Path, label: str, rows, done: dict, port: str, author: str = "",
              consent: str = "") -> dict:
    """Write a take recorded on the object into the dataset, as ``lanthorn record`` does:
    a new dataset gets the default labels (plus this one); the studio's takes are the
    source ``studio``, declared with who performed and how they consented."""
    data = Path(data)
    rate, channels = float(done["rate_hz"]), list(done["channels"])
    if not rows:
        raise UserError("the object sent no frames; nothing was saved")
    if not (data / dataset.MANIFEST).exists():
        labels = list(LABELS) + ([label] if label not in LABELS else [])
        dataset.create_dataset(data, rate, channels, labels)
    header, sources, _ = dataset.read_manifest(data)
    if list(header["channels"]) != channels:
        raise UserError(f"{data} has channels {', '.join(header['channels'])} but the object "
                        f"records {', '.join(channels)}; use another --data folder")
    if label not in header["labels"]:
        raise UserError(f"the dataset has no label {label!r}; add it first")
    if STUDIO_SOURCE not in sources:
        dataset.add_source(data, dataset.Source(
            STUDIO_SOURCE, author=author, consent=consent, date=time.strftime("%Y-%m-%d"),
            device=f"lanthorn studio on {port}", rate_hz=rate,
            notes="demonstrations recorded in lanthorn studio"))
    session = f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while (data / dataset.RECORDINGS / STUDIO_SOURCE / f"{session}.csv").exists():
        n += 1
        session = f"{label}-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    path = dataset.write_recording(data, STUDIO_SOURCE, session, rows, label, rate_hz=rate)
    return {"source": STUDIO_SOURCE, "session": session, "frames": len(rows),
            "file": str(path.relative_to(data))}


def quality_flags(bundle: Path) -> list[str]:
    """Why a model should not go to the object without a second thought: the quality gates
    its card carries (:mod:`lanthorn.quantize.quality`, the same ones ``lanthorn push``
    shows) that failed. Empty: it passes."""
    from lanthorn.device.engine.bundle import read_bundle
    from lanthorn.quantize import quality
    card = read_bundle(bundle).card or {}
    gates = (card.get("quality") or {}).get("gates")
    if gates is None:
        return ["its card carries no quality figures (made by an older lanthorn?)"]
    return [g["message"] for g in quality.failures(gates)]


def train_and_quantize(data: Path, models: Path, name: str, epochs: int | None = None,
                       on_progress: Callable[[str, float, str], None] | None = None) -> dict:
    """``lanthorn train`` then ``lanthorn quantize --report``, reporting progress as
    (stage, fraction 0..1, message). Returns the model's name, files, figures and flags."""
    import onnxruntime

    from lanthorn.host.train import train
    from lanthorn.quantize.quantizer import quantize_model
    onnxruntime.set_default_logger_severity(3)
    dataset.check_name("model", name)
    progress = on_progress or (lambda stage, frac, msg: None)
    models = Path(models)
    models.mkdir(parents=True, exist_ok=True)
    onnx = models / f"{name}.onnx"
    progress("train", 0.0, "loading the dataset")

    def on_epoch(h):
        progress("train", h["epoch"] / h["epochs"], f"epoch {h['epoch']}: loss {h['loss']:.3f}, "
                 f"validation accuracy {100 * h['val_accuracy']:.1f}%")

    patience = None if epochs is None else max(8, epochs // 4)  # None: from the data's size
    summary = train(data, onnx, epochs=epochs, patience=patience, progress=False,
                    log=lambda msg: progress("train", -1, str(msg).splitlines()[0]),
                    on_epoch=on_epoch)
    progress("train", 1.0, f"held-out test accuracy {100 * summary['test_accuracy']:.1f}%")
    steps = iter(range(1, 100))
    report_dir = models / f"{name}-report"

    def qlog(msg):
        progress("quantize", min(0.95, next(steps) / 8), str(msg).splitlines()[0])

    progress("quantize", 0.0, "calibrating")
    # the gates go into the card and are shown before a push, not enforced here
    result = quantize_model(onnx, data, models / f"{name}.lanthorn", report_dir=report_dir,
                            name=name, log=qlog)
    flags = quality_flags(result.out)
    progress("quantize", 1.0, f"int8 accuracy {100 * (result.final.int8_accuracy or 0):.1f}%")
    return {"name": name, "bundle": str(models / f"{name}.lanthorn"),
            "report": str(report_dir / "report.md"), "flags": flags,
            "float_accuracy": result.final.float_accuracy,
            "int8_accuracy": result.final.int8_accuracy, "sha256": result.sha256}


def list_models(models: Path) -> list[dict]:
    """Bundles the studio trained (newest first), with their quality flags."""
    from lanthorn.device.engine.bundle import BundleError
    out = []
    for b in sorted(Path(models).glob("*.lanthorn"), key=lambda p: p.stat().st_mtime,
                    reverse=True):
        try:
            flags = quality_flags(b)
        except BundleError as exc:
            flags = [f"not a usable bundle: {exc}"]
        out.append({"name": b.stem, "bundle": str(b), "flags": flags,
                    "report": (b.with_name(f"{b.stem}-report") / "report.md").exists()})
    return out
