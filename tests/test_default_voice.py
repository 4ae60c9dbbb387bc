"""The shipped default voice: rebuilt from data/voice by the recipe gives the same bytes on
any CPU (every byte but the bundle's build record, which names the CPU that built it); its
licence allows shipping and is named; the report carries the tasting notes."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from lanthorn.device.engine.bundle import read_bundle, reproducible_content
from lanthorn.device.storage.storage import SHIPPED_VOICE
from lanthorn.quantize.voice_corpus import SHIPPABLE_LICENCES, read_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_make_voice_rebuilds_the_shipped_voice_byte_for_byte(tmp_path):
    r = subprocess.run([sys.executable, "scripts/make_voice.py", "--no-sweep", "--out",
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "voice.onnx").read_bytes() == (SHIPPED_VOICE.parent / "voice.onnx").read_bytes()
    assert reproducible_content((tmp_path / "voice.lanthorn").read_bytes()) == \
        reproducible_content(SHIPPED_VOICE.read_bytes())


def test_the_shipped_voice_is_licensed_and_tasted():
    sources = read_manifest(ROOT / "data" / "voice")
    assert sources and all(s.licence in SHIPPABLE_LICENCES and s.consent for s in sources.values())
    card = read_bundle(SHIPPED_VOICE).card
    assert card["kind"] == "voice" and card["shippable"] and card["licence"] == "CC0-1.0"
    assert set(card["mix"]) == set(sources)
    report = json.loads((SHIPPED_VOICE.parent / "voice-report.json").read_text())
    assert report["internal_digest"] == read_bundle(SHIPPED_VOICE).sha256
    assert report["file_sha256"] == hashlib.sha256(SHIPPED_VOICE.read_bytes()).hexdigest()
    assert report["bundle_bytes"] == SHIPPED_VOICE.stat().st_size
    assert "seconds" not in report and "seconds" not in report["train"]  # compared: no timings
    assert report["matches_onnxruntime"]["mismatches"] == 0
    assert set(report["perplexity_int8"]) >= set(sources) | {"all"}
    assert {s["mood"] for s in report["samples"]} == set(card["voice"]["moods"])
    assert report["sweep"] and "longest_verbatim_chars" in report
    md = (SHIPPED_VOICE.parent / "report" / "voice-report.md").read_text()
    for needle in ("## The mix", "effective share", "Perplexity", "Samples from the int8 model",
                   "Longest verbatim overlap"):
        assert needle in md
