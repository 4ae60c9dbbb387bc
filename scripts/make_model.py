#!/usr/bin/env python3
"""Rebuild the shipped default model (``make model``): synth → train → quantize → bundle.

Steps, all seeded, all on the CPU:

1. the training data: ``data/temperament/``, honestly labelled synthetic sessions from the
   gesture simulator (``lanthorn data synth``, seed 0). It is committed, so the model can
   be rebuilt from exactly the data it was built from even when the simulator evolves;
   ``--resynth`` regenerates it from the seed (same simulator, same bytes);
2. ``lanthorn train``: the temperament 1-D CNN, held-out split by session, early stopping;
3. quantization with onnxruntime's ``quantize_static`` (QDQ, per-channel int8 weights with
   ``reduce_range`` so onnxruntime's x86 integers are exact, MinMax calibration on windows of
   the *training* sessions) and ``bundle_from_qdq``, with the labels, input spec, a model
   card and the provenance summary;
4. evaluation of the float model (onnxruntime) and of the bundle (lanthorn's own int8
   engine) on the held-out *test* sessions, and a check that the bundle's integers equal
   onnxruntime's on its QDQ twin.

Writes into ``--out`` (default ``device/models``): ``temperament.lanthorn`` (the bundle the
device runs), ``temperament.onnx`` (the float model, so the quantization step can be
re-checked without retraining: tests/test_default_model.py) and ``report.json``.
Intermediate files (the checkpoint) go to ``--work`` (default build/model).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "device" / "models"
#: the shipped training data (synthetic, gzip CSV recordings)
DATA = ROOT / "data" / "temperament"
NAME = "temperament"

#: The recipe of the shipped model. Changing any of these changes the bundle's bytes.
RECIPE = {"seed": 0, "minutes": 40.0, "session_seconds": 60.0, "epochs": 40, "patience": 8,
          "calibration_windows": 256, "calibration": "minmax"}

DESCRIPTION = ("how the lantern is being touched, from a 2 s window of its 12 touch pads, "
               "distance and light at 25 Hz")


def log(msg: str) -> None:
    print(f"[make model] {msg}", flush=True)


# ----------------------------------------------------------------------------- steps

def synth(data_dir: Path, recipe: dict) -> None:
    """(Re)generate the synthetic training data from the recipe's seed."""
    import shutil

    from lanthorn.host.data_cmd import synthesize
    if data_dir.exists():
        shutil.rmtree(data_dir)
    synthesize(data_dir, minutes=recipe["minutes"], seed=recipe["seed"],
               session_seconds=recipe["session_seconds"], compress=True, log=log)


def train_float(data_dir: Path, onnx_path: Path, recipe: dict, progress: bool = True) -> dict:
    from lanthorn.host.train import train
    return train(data_dir, onnx_path, seed=recipe["seed"], epochs=recipe["epochs"],
                 patience=recipe["patience"], progress=progress, log=log)


def splits_for(float_onnx: Path, data_dir: Path):
    """The same windows and held-out sessions training used (the spec is in the ONNX)."""
    import onnx
    from lanthorn.quantize.dataspec import prepare, spec_from_onnx
    spec = spec_from_onnx(onnx.load(str(float_onnx)))
    return prepare(data_dir, spec)


def calibration_feeds(splits, n: int) -> list[dict]:
    """``n`` training windows spread evenly over the training sessions."""
    X = splits.train.X
    idx = np.unique(np.linspace(0, len(X) - 1, min(n, len(X))).round().astype(int))
    return [{"window": X[i][None]} for i in idx]


def float_accuracy(float_onnx: Path, windows) -> tuple[float, np.ndarray]:
    import onnxruntime as ort
    from lanthorn.quantize.metrics import accuracy
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(float_onnx), so, providers=["CPUExecutionProvider"])
    pred = np.array([int(sess.run(None, {"window": x[None]})[0].argmax()) for x in windows.X])
    return accuracy(windows.y, pred), pred


def int8_accuracy(model, windows) -> tuple[float, np.ndarray]:
    """Accuracy of the bundle as the device runs it: frames (T, C) in, probabilities out."""
    from lanthorn.quantize.metrics import accuracy
    pred = np.array([int(model(x.T).argmax()) for x in windows.X])
    return accuracy(windows.y, pred), pred


def check_twin(model, bundle, windows, n: int = 64) -> int:
    """Every int8 output element equals onnxruntime's on the QDQ twin; returns elements checked."""
    from lanthorn.quantize.ort_oracle import ort_raw_int8, quantize_feed
    idx = np.linspace(0, len(windows.X) - 1, min(n, len(windows.X))).round().astype(int)
    feeds = [{"window": windows.X[i][None]} for i in idx]
    checked = 0
    for feed, ref in zip(feeds, ort_raw_int8(bundle, feeds)):
        ours = model.run_quantized(*quantize_feed(model, feed))
        if not np.array_equal(ours, ref):
            raise SystemExit(f"make model: the bundle's int8 outputs differ from onnxruntime's "
                             f"on its twin ({int((ours != ref).sum())} elements): not shipping it")
        checked += ours.size
    return checked


def tasting_notes(dataset) -> list[dict]:
    """What went into the model, per source, with its share of the training signal."""
    counts = dataset.frame_counts()
    frames = {s: sum(c.values()) for s, c in counts.items()}
    weighted = {s: frames.get(s, 0) * src.weight for s, src in dataset.sources.items()}
    total = sum(weighted.values()) or 1.0
    return [{"source": s, "author": src.author, "consent": src.consent, "licence": src.licence,
             "synthetic": src.synthetic, "device": src.device, "notes": src.notes,
             "weight": src.weight, "minutes": round(frames.get(s, 0) / dataset.rate_hz / 60, 2),
             "share": round(weighted[s] / total, 4)}
            for s, src in sorted(dataset.sources.items())]


def toolchain() -> dict:
    import onnx
    import onnxruntime
    import torch
    return {"torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def build_bundle(float_onnx: Path, data_dir: Path, out: Path, recipe: dict = RECIPE,
                 train_summary: dict | None = None) -> dict:
    """Quantize ``float_onnx`` on ``data_dir``'s training windows, write the bundle to
    ``out``, evaluate it, and return the figures. Deterministic: same inputs, same bytes."""
    import tempfile

    import onnx
    from lanthorn.device.bundle import InputSpec, read_bundle, write_bundle
    from lanthorn.device.graph import layer_macs
    from lanthorn.device.runtime import load
    from lanthorn.quantize.metrics import confusion
    from lanthorn.quantize.model_zoo import quantize_qdq
    from lanthorn.quantize.qdq_import import bundle_from_qdq

    s = splits_for(float_onnx, data_dir)
    spec = s.spec
    held = s.test if len(s.test) else s.val
    f_acc, f_pred = float_accuracy(float_onnx, held)
    with tempfile.TemporaryDirectory() as tmp:
        qdq = quantize_qdq(onnx.load(str(float_onnx)), Path(tmp) / "qdq.onnx",
                           calibration_feeds(s, recipe["calibration_windows"]))
        qdq_bytes = qdq.read_bytes()
    input_spec = InputSpec((spec.window, len(spec.channels)), channels=spec.channels,
                           rate_hz=spec.rate_hz, window=spec.window)
    # a first pass measures the int8 accuracy the card reports
    draft = bundle_from_qdq(qdq_bytes, labels=spec.labels, input_spec=input_spec)
    q_acc, q_pred = int8_accuracy(load(draft, backend="numpy"), held)
    macs = sum(layer_macs(layer, draft.graph) for layer in draft.graph.layers)
    card = {
        "name": NAME, "description": DESCRIPTION,
        "task": f"classify a {spec.window}-frame window ({spec.window / spec.rate_hz:g} s at "
                f"{spec.rate_hz:g} Hz) of {len(spec.channels)} channels into "
                f"{len(spec.labels)} gestures",
        "architecture": "1-D CNN: conv1d+ReLU blocks (BatchNorm folded), global average "
                        "pooling, dense, softmax",
        "macs": int(macs),
        "accuracy_float": round(f_acc, 4), "accuracy_int8": round(q_acc, 4),
        "evaluated_on": f"{len(held)} windows of {len(set(held.sessions.tolist()))} held-out "
                        f"sessions never seen in training or calibration",
        "quantization": "int8 per-channel weights (7-bit range), int8 activations, "
                        f"{recipe['calibration']} calibration on {recipe['calibration_windows']} "
                        "training windows (onnxruntime quantize_static, QDQ)",
        "intended_use": "the default lantern piece: drive mood and light from touch",
        "limitations": "trained only on simulated visitors; record real ones (lanthorn "
                       "console record, lanthorn data import) and retrain before a show",
        "rebuild": "make model (scripts/make_model.py)",
    }
    provenance = {"dataset": {"minutes": round(sum(len(r.frames) for r in s.dataset.recordings)
                                               / spec.rate_hz / 60, 2),
                              "sessions": len(s.dataset.recordings), "rate_hz": spec.rate_hz,
                              "split": {k: len(v) for k, v in s.sessions.items()}},
                  "sources": tasting_notes(s.dataset), "recipe": dict(recipe),
                  "toolchain": toolchain()}
    bundle = bundle_from_qdq(qdq_bytes, labels=spec.labels, input_spec=input_spec, card=card,
                             provenance=provenance)
    write_bundle(bundle, out)
    shipped = read_bundle(out)
    model = load(shipped, backend="numpy")
    checked = check_twin(model, shipped, held)
    n = len(spec.labels)
    return {
        "bundle": out.name, "sha256": shipped.sha256,
        "float": {"accuracy": f_acc, "confusion": confusion(held.y, f_pred, n).tolist(),
                  "onnx_bytes": float_onnx.stat().st_size},
        "int8": {"accuracy": q_acc, "confusion": confusion(held.y, q_pred, n).tolist(),
                 "bundle_bytes": out.stat().st_size,
                 "bundle_bytes_without_twin": out.stat().st_size - len(shipped.twin or b""),
                 "twin_bytes": len(shipped.twin or b""),
                 "matches_onnxruntime": {"elements_checked": checked, "mismatches": 0}},
        "accuracy_drop_points": round(100 * (f_acc - q_acc), 3),
        "size_ratio": round(float_onnx.stat().st_size / out.stat().st_size, 3),
        "size_ratio_without_twin": round(float_onnx.stat().st_size
                                         / (out.stat().st_size - len(shipped.twin or b"")), 3),
        "macs": int(macs),
        "held_out": {"windows": len(held), "sessions": sorted(set(held.sessions.tolist()))},
        "labels": list(spec.labels),
        **({"train": {k: train_summary[k] for k in ("best_epoch", "epochs_run", "val_accuracy",
                                                    "test_accuracy", "seconds")}}
           if train_summary else {}),
    }


def dumps(report: dict) -> str:
    """JSON with lists of numbers (confusion-matrix rows) kept on one line each."""
    import re
    text = json.dumps(report, indent=2)
    return re.sub(r"\[\s*([-0-9.e, \n]+?)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
                  text) + "\n"


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DEFAULT_OUT), help="where the shipped files go")
    p.add_argument("--work", default=str(ROOT / "build" / "model"),
                   help="intermediate files (the training checkpoint)")
    p.add_argument("--data", default=str(DATA), help="training data folder (default data/temperament)")
    p.add_argument("--resynth", action="store_true",
                   help="regenerate the training data from the seed first (overwrites --data)")
    p.add_argument("--requantize", action="store_true",
                   help="skip synth+train: re-quantize the committed float ONNX (fast)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data_dir = Path(args.data)
    if args.resynth or not data_dir.exists():
        synth(data_dir, RECIPE)
    float_onnx = out / f"{NAME}.onnx"
    summary = None
    if not args.requantize:
        summary = train_float(data_dir, work / f"{NAME}.onnx", RECIPE, progress=not args.quiet)
        float_onnx.write_bytes((work / f"{NAME}.onnx").read_bytes())
    elif not float_onnx.exists():
        raise SystemExit(f"make model: --requantize needs {float_onnx}")
    fig = build_bundle(float_onnx, data_dir, out / f"{NAME}.lanthorn", RECIPE, summary)
    fig["seconds"] = round(time.perf_counter() - t0, 1)
    report = {"model": NAME, "recipe": RECIPE, "unpruned": fig}
    (out / "report.json").write_text(dumps(report))
    log(f"float {100 * fig['float']['accuracy']:.2f}% → int8 "
        f"{100 * fig['int8']['accuracy']:.2f}% on {fig['held_out']['windows']} held-out windows; "
        f"bundle {fig['int8']['bundle_bytes']:,} bytes "
        f"({fig['int8']['bundle_bytes_without_twin']:,} without the QDQ twin) vs float ONNX "
        f"{fig['float']['onnx_bytes']:,}; {fig['macs']:,} MACs; {fig['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
