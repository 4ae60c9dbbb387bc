"""``lanthorn archive verify BAG``: is the bag whole, and do its models still work?

Three checks, each a line ``OK ...`` or ``FAIL ...``: bagit's own ``validate()`` (every
payload file against the sha256 and sha512 manifests, the tag manifests, Payload-Oxum);
completeness (every part data/archive.json lists is there: source, wheelhouse, models,
datasets, state, behaviour, README.txt); and the models (their sha256 as read back from the
object; each loads with lanthorn's engine, and its integers equal onnxruntime's on its own
QDQ twin for a few seeded inputs, when onnxruntime is installed).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lanthorn.errors import UserError

STATE = ("version", "status", "model_info", "settings_saved", "presets", "lockfile",
         "trust", "rejected", "log")
TWIN_FEEDS = 4


def load_manifest(bag: Path) -> dict:
    path = bag / "data" / "archive.json"
    if not path.is_file():
        raise UserError(f"{bag}: not a lanthorn archive (no data/archive.json)")
    return json.loads(path.read_text())


def expected_files(m: dict) -> list[str]:
    """Paths (under data/, plus README.txt at the top) a complete bag must hold."""
    files = ["../README.txt", "archive.json"]
    src = m.get("source") or {}
    if src.get("tarball"):
        files += [f"source/{src['tarball']}", "source/COMMIT", f"source/{src['gitbundle']}"]
    for which, wh in (m.get("wheelhouse") or {}).items():
        if isinstance(wh, dict) and "files" in wh:
            files += [f"wheelhouse/{which}/{f}" for f in wh["files"]]
            files.append(f"wheelhouse/{which}/requirements.txt")
    files += [f"models/{f}" for f in m.get("models") or {}] + ["models/SHA256SUMS"]
    files += [f"datasets/{d}" for d in m.get("datasets") or {}]
    files += [f"docs/{d}" for d in m.get("docs") or []]
    files += [f"state/{s}.json" for s in STATE]
    files += [f"behaviour/{f}" for f in (m.get("behaviour") or {}).get("files", [])]
    return files


def _bagit(bag: Path) -> str:
    import bagit
    try:
        b = bagit.Bag(str(bag))
        b.validate()
    except bagit.BagError as exc:
        return f"FAIL bagit: {' '.join(str(exc).split())[:300]}"
    return (f"OK bagit: valid ({len(b.payload_entries())} payload files, "
            f"{', '.join(b.algorithms)} manifests)")


def _twin(bundle) -> str:
    """Our engines against onnxruntime on the bundle's twin (seeded random inputs)."""
    try:
        import onnx

        from lanthorn.quantize import tiny_models
        from lanthorn.quantize.ort_oracle import engines_vs_ort
    except ImportError as exc:
        return f"twin not checked ({exc.name} is not installed here)"
    if not bundle.twin:
        return "no twin in the bundle"
    vocab = next((int(layer.arrays["table"].shape[0]) for layer in bundle.graph.layers
                  if layer.op == "gather"), None)
    feeds = tiny_models.random_inputs(onnx.load_from_string(bundle.twin), TWIN_FEEDS, seed=0,
                                      vocab=vocab)
    checked, mismatch = engines_vs_ort(bundle, feeds)
    if mismatch:
        raise UserError(f"the {mismatch[0]} engine differs from onnxruntime on the twin "
                        f"({mismatch[1]} elements)")
    return f"equals onnxruntime on its twin ({checked} int8 elements)"


def check_model(path: Path, want: dict) -> str:
    from lanthorn.device.engine.bundle import read_bundle
    from lanthorn.device.engine.runtime import load
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != want.get("sha256"):
        return f"FAIL models/{path.name}: sha256 is not the one read back from the object"
    try:
        bundle = read_bundle(path)
        if want.get("kind") == "voice":
            from lanthorn.device.piece.voice import load_voice
            load_voice(path)
        else:
            load(bundle)
        twin = _twin(bundle)
    except Exception as exc:  # any failure to load or to agree is the verdict
        return f"FAIL models/{path.name}: {exc}"
    return f"OK models/{path.name}: {want.get('name')} loads; {twin}"


def verify(bag: Path) -> dict:
    """{"ok": bool, "lines": [...]} for the bag at ``bag``."""
    if not (bag / "bagit.txt").is_file():
        raise UserError(f"{bag}: not a BagIt bag (no bagit.txt)")
    lines = [_bagit(bag)]
    m = load_manifest(bag)
    missing = [f for f in expected_files(m) if not (bag / "data" / f).exists()]
    lines.append(f"FAIL complete: missing {', '.join(missing[:8])}" if missing else
                 f"OK complete: {len(expected_files(m))} listed parts present")
    if "model-current.lanthorn" not in (m.get("models") or {}):
        lines.append("FAIL models: the running model is not in the bag")
    for name, want in (m.get("models") or {}).items():
        if (bag / "data" / "models" / name).is_file():
            lines.append(check_model(bag / "data" / "models" / name, want))
    return {"ok": all(not ln.startswith("FAIL") for ln in lines), "lines": lines, "manifest": m}
