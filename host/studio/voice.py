"""The Voice view's work, as plain functions on a voice corpus folder and a models folder.

Like :mod:`.teach`, the web handlers only call these, and these only call what
``lanthorn voice info|train|quantize|taste`` call (the corpus module, ``train_voice``,
``quantize_voice`` and its tasting notes), so the studio's voice is the command line's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from lanthorn.errors import UserError

#: the studio's retrain: the default architecture, a few epochs (the artist can retrain)
STUDIO_EPOCHS = 10


def corpus_summary(corpus: Path | None) -> dict:
    """``voice info``'s figures per source, or why there are none (no --voice, no corpus
    yet, an unreadable manifest)."""
    from lanthorn.quantize.voice_corpus import MANIFEST, summarize
    if corpus is None:
        return {"exists": False, "path": None,
                "hint": "start the studio with --voice DIR (a voice corpus folder)"}
    if not (Path(corpus) / MANIFEST).exists():
        return {"exists": False, "path": str(corpus),
                "hint": f"no voice corpus in {corpus} yet: 'lanthorn voice add-source {corpus} "
                        f"NAME --author ... --licence ...'"}
    try:
        info = summarize(corpus)
    except UserError as exc:
        return {"exists": True, "path": str(corpus), "error": str(exc), "sources": {}}
    return {"exists": True, **info}


def set_weight(corpus: Path | None, name, weight) -> dict:
    """A slider moved: the source's new weight into the manifest; the new figures back."""
    from lanthorn.quantize.voice_corpus import check_name
    from lanthorn.quantize.voice_corpus import set_weight as write_weight
    if corpus is None:
        raise UserError("the studio has no voice corpus (start it with --voice DIR)")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise UserError(f"weight must be a number between 0 and 100, got {weight!r}")
    write_weight(corpus, check_name(name if isinstance(name, str) else ""), weight)
    return corpus_summary(corpus)


def train_and_quantize(corpus: Path, models: Path, name: str, epochs: int = STUDIO_EPOCHS,
                       on_progress: Callable[[str, float, str], None] | None = None) -> dict:
    """``voice train`` then ``voice quantize`` (signed with the default key if there is
    one, as the command signs), reporting (stage, fraction, message); returns the bundle
    and its tasting notes' sample phrases per mood, with their seeds."""
    import onnxruntime

    from lanthorn.device.storage import dataset
    from lanthorn.device.engine.signing import signing_key_for
    from lanthorn.host.voice_train import DEFAULT_ARCH, train_voice
    from lanthorn.quantize.voice_quantize import quantize_voice
    onnxruntime.set_default_logger_severity(3)
    dataset.check_name("voice", name)
    progress = on_progress or (lambda stage, frac, msg: None)
    key = signing_key_for(None)  # a bad default key fails before the work
    models = Path(models)
    models.mkdir(parents=True, exist_ok=True)
    onnx, bundle = models / f"{name}.onnx", models / f"{name}.lanthorn"
    progress("train", 0.0, "reading the corpus")
    figures = train_voice(corpus, onnx, DEFAULT_ARCH, epochs=epochs,
                          log=lambda msg: progress("train", -1, str(msg).splitlines()[0]))
    progress("train", 1.0, f"trained in {figures['seconds']} s")
    steps = iter(range(1, 100))
    progress("quantize", 0.0, "calibrating")
    report = quantize_voice(onnx, corpus, bundle, name=name,
                            report_dir=models / f"{name}-report", signing_key=key,
                            log=lambda msg: progress("quantize", min(0.95, next(steps) / 6),
                                                     str(msg).splitlines()[0]))
    progress("quantize", 1.0, f"{name}: {len(report['samples'])} sample phrases")
    return {"name": name, "bundle": str(bundle), "sha256": report.get("internal_digest"),
            "samples": samples_by_mood(report["samples"])}


def samples_by_mood(samples: list[dict]) -> dict[str, list[dict]]:
    """The tasting notes' samples grouped by mood: {mood: [{seed, text, nearest_source,
    verbatim_chars}]}."""
    out: dict[str, list[dict]] = {}
    for s in samples:
        out.setdefault(s["mood"], []).append(
            {k: s[k] for k in ("seed", "text", "nearest_source", "verbatim_chars")})
    return out
