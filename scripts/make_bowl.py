#!/usr/bin/env python3
"""Rebuild the second shipped piece's model (``make model`` runs it after make_model.py):
the bowl (hardware/profiles/bowl-sim.toml: an MPU-6050, a PIR, a knob on an ADS1115, a
button, a ring of LEDs).

1. the training data: ``data/bowl/``, honestly labelled synthetic sessions of the simulated
   visitor handling the bowl (``lanthorn data synth --profile bowl-sim``, seed 0: the
   device's own sampler on the simulated body). Committed, so the model rebuilds from the
   data it was built from; ``--resynth`` regenerates it (same simulator, same bytes);
2. ``lanthorn train`` (seeded, held-out split by session) into ``bowl.onnx``;
3. ``lanthorn quantize`` with the bowl's gestures -> moods written into its card, checked
   element for element against onnxruntime on its QDQ twin before it is shipped.

Writes ``device/models/bowl.lanthorn``, ``bowl.onnx`` and ``bowl-report.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model as mm

ROOT = mm.ROOT
DATA = ROOT / "data" / "bowl"
PROFILE = "bowl-sim"
NAME = "bowl"
#: (no early stop: validation accuracy dips for a few epochs before it climbs to ~90 %; the
#: best epoch is kept. The batch is chosen from the dataset's size, as ``lanthorn train`` does.)
RECIPE = {"seed": 0, "minutes": 16.0, "session_seconds": 60.0, "epochs": 30, "patience": 30,
          "batch": None, "calibration": "minmax", "bias_correction": True}
#: What each of the bowl's gestures evokes (its temperament, in the card).
MOODS = "approach=curious; lift=delighted; tilt=curious; shake=agitated; knock=shy; " \
        "press=delighted; turn=calm; leave=calm"
CARD = {
    "description": "how the bowl is being handled, from a 2 s window of its IMU (accelerometer "
                   "and gyro), PIR, knob and button at 25 Hz",
    "intended_use": "the bowl piece: drive mood and light from being lifted, tilted, shaken, "
                    "knocked, approached, pressed and turned",
    "limitations": "trained only on the simulated visitor (hardware/sim/body_visitor.py); "
                   "record real handling (lanthorn record) and retrain before a show",
    "rebuild": "make model (scripts/make_bowl.py)",
}


def log(msg: str) -> None:
    print(f"[make bowl] {msg}", flush=True)


def synth(data_dir: Path) -> None:
    import shutil

    from lanthorn.hardware.profile import load_profile
    from lanthorn.host.body_synth import synthesize_body
    if data_dir.exists():
        shutil.rmtree(data_dir)
    synthesize_body(data_dir, load_profile(PROFILE), minutes=RECIPE["minutes"],
                    seed=RECIPE["seed"], session_seconds=RECIPE["session_seconds"],
                    compress=True, log=log)


def build(data_dir: Path, out_dir: Path) -> dict:
    from lanthorn.device.engine.bundle import keep_if_reproduced, read_bundle, write_bundle
    from lanthorn.device.piece.params import parse_moods
    from lanthorn.host.train import train
    from lanthorn.quantize.quantizer import quantize_model
    onnx_path, out = out_dir / f"{NAME}.onnx", out_dir / f"{NAME}.lanthorn"
    trained = train(data_dir, onnx_path, seed=RECIPE["seed"], epochs=RECIPE["epochs"],
                    patience=RECIPE["patience"], batch=RECIPE["batch"], progress=False, log=log)
    onnx_path.with_suffix(".pt").unlink(missing_ok=True)  # (no pruning here: no checkpoint kept)
    draft = out.with_name(out.stem + ".draft.lanthorn")
    try:
        r = quantize_model(onnx_path, data_dir, draft, calibration=RECIPE["calibration"],
                           bias_correction=RECIPE["bias_correction"], name=NAME, log=log,
                           gesture_moods=parse_moods(MOODS, "the bowl's moods"))
        bundle = read_bundle(draft)
        bundle.card.update(CARD)
        write_bundle(bundle, draft)
        checked = mm.check_twin(read_bundle(draft), mm.held_out_windows(onnx_path, data_dir))
        # the committed file stays when it holds the same model (all but its build record)
        mm.log_kept(keep_if_reproduced(draft, out), out, log)
    finally:
        draft.unlink(missing_ok=True)
    shipped = read_bundle(out)   # the figures describe the file shipped, kept or new
    fig = mm.figures(r.final, onnx_path.stat().st_size)
    fig.update({"bundle": out.name, "file_sha256": shipped.file_sha256,
                "internal_digest": shipped.sha256, "labels": list(shipped.labels),
                "channels": list(shipped.input_spec.channels),
                "matches_onnxruntime": {"elements_checked": checked, "mismatches": 0},
                "held_out": r.held_out, "recipe": RECIPE,
                "train_test_accuracy": trained.get("test_accuracy")})
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=mm.DEFAULT_OUT)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--resynth", action="store_true",
                    help="regenerate data/bowl from the simulator and the recipe's seed")
    args = ap.parse_args(argv)
    if args.resynth or not (args.data / "manifest.json").exists():
        synth(args.data)
    fig = build(args.data, args.out)
    report = args.out / f"{NAME}-report.json"
    report.write_text(json.dumps(fig, indent=2, default=str) + "\n")
    log(f"shipped {args.out / (NAME + '.lanthorn')} (sha256 {fig['file_sha256'][:16]}): float "
        f"{fig['float_accuracy']:.1%} -> int8 {fig['int8_accuracy']:.1%} on held-out sessions; "
        f"{report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
