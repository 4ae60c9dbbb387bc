#!/usr/bin/env python3
"""Rebuild the shipped default voice (``make voice``, also run by ``make model``).

Steps, all seeded, all on the CPU, about half a minute:

1. the corpus: ``data/voice/`` — text written for this project (CC0-1.0, named in its
   manifest and in the bundle's card), three sources mixed by weight;
2. the sweep (:func:`lanthorn.host.voice_train.sweep`): each candidate MLP and epoch count
   trained on the same split and tasted by the tasting panel (corpus words, new phrases,
   corpus word pairs, complete phrases, mood legibility) with held-out perplexity and MACs
   per character; the rule (:func:`~lanthorn.host.voice_train.pick`) chooses;
3. ``lanthorn voice train``: the chosen one, seed 0;
4. ``lanthorn voice quantize``: int8 through onnxruntime's quantizer, checked element for
   element against onnxruntime on the twin, tasting notes in the card and the report.

Writes into ``--out`` (default ``device/models``): ``voice.lanthorn`` (what the device
speaks with), ``voice.onnx`` (the float model), ``voice-report.json`` and
``report/voice-report.md`` (the tasting notes: mix, perplexities, samples, verbatim overlap).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "device" / "models"
CORPUS = ROOT / "data" / "voice"
RECIPE = {"seed": 0, "holdout": 0.1}


def log(msg: str) -> None:
    print(f"[make voice] {msg}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DEFAULT_OUT), help="where the shipped files go")
    p.add_argument("--corpus", default=str(CORPUS), help="voice corpus (default data/voice)")
    p.add_argument("--no-sweep", action="store_true", help="train the default architecture "
                   "without measuring the candidates again")
    args = p.parse_args(argv)
    import onnxruntime
    onnxruntime.set_default_logger_severity(3)
    from lanthorn.device.storage.atomic import atomic_write_text
    from lanthorn.host import voice_train as vt
    from lanthorn.quantize.voice_quantize import quantize_voice
    out, corpus = Path(args.out).resolve(), Path(args.corpus).resolve()
    import os
    os.chdir(ROOT)   # the corpus is named relative to the repository in what is shipped
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    arch, epochs, rows = vt.DEFAULT_ARCH, vt.DEFAULT_EPOCHS, None
    if not args.no_sweep:
        log("tasting the candidates (the tasting panel, held-out perplexity, MACs per character)")
        rows = vt.sweep(corpus, seed=RECIPE["seed"], holdout=RECIPE["holdout"], log=log)
        best = vt.pick(rows)
        arch, epochs = vt.arch_of(best), best["epochs"]
        log(f"picked {arch.label()}, {epochs} epochs: {vt.PICK_RULE}")
    try:   # recorded in the model and the bundle: relative, so any clone builds the same bytes
        shown_corpus = corpus.resolve().relative_to(ROOT)
    except ValueError:
        shown_corpus = corpus
    train = vt.train_voice(shown_corpus, out / "voice.onnx", arch, epochs=epochs,
                           seed=RECIPE["seed"], holdout=RECIPE["holdout"], log=log)
    draft = out / "voice.draft.lanthorn"
    report = quantize_voice(out / "voice.onnx", shown_corpus, draft,
                            name="lantern-voice", seed=RECIPE["seed"], log=log,
                            card_extra={"rebuild": "make voice (scripts/make_voice.py)"})
    report.update(_kept(draft, out / "voice.lanthorn"))
    # no wall-clock figures in what is committed (make model && git status must be empty)
    train.pop("seconds", None)
    report.pop("seconds", None)
    for row in rows or ():
        row.pop("seconds", None)
    for key in ("phrase_ms", "seconds"):
        report.get("panel", {}).pop(key, None)
    report.update({"recipe": {**RECIPE, "epochs": epochs}, "sweep": rows,
                   "pick_rule": vt.PICK_RULE, "train": train, "bundle": "voice.lanthorn"})
    from lanthorn.quantize.voice_quantize import write_report
    write_report(report, out / "report", with_json=False)
    atomic_write_text(out / "voice-report.json", json.dumps(report, indent=2) + "\n")
    log(f"shipped {out / 'voice.lanthorn'} ({report['bundle_bytes']:,} bytes, "
        f"{report['macs_per_char']:,} MACs/char, licence {', '.join(report['licences'])}); "
        f"tasting notes in {out / 'report' / 'voice-report.md'} "
        f"({round(time.perf_counter() - t0, 1)} s)")
    return 0


def _kept(draft: Path, shipped: Path) -> dict:
    """Ship ``draft`` as ``shipped`` unless that already holds the same model (every byte
    but the build record: lanthorn.device.engine.bundle.keep_if_reproduced); the report's file
    figures then describe the file that is there."""
    from lanthorn.device.engine.build_record import build_record
    from lanthorn.device.engine.bundle import keep_if_reproduced, read_bundle
    how = keep_if_reproduced(draft, shipped)
    kept = read_bundle(shipped)
    if how == "reproduced":
        here = build_record()
        log(f"{shipped.name}: reproduced byte for byte except the build record: built here on "
            f"{here['cpu']} ({' '.join(here['cpu_features'])}); the committed file, built on "
            f"{kept.build.get('cpu', 'an unrecorded CPU')}, is kept")
    else:
        log(f"{shipped.name}: " + ("reproduced byte for byte" if how == "identical" else
                                  "written (it differs from the one that was there)"))
    return {"file_sha256": kept.file_sha256, "internal_digest": kept.sha256,
            "bundle_bytes": shipped.stat().st_size}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
