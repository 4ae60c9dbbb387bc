"""Small voice corpora and a fast train → quantize for the voice tests (seconds, not minutes)."""
from __future__ import annotations

from pathlib import Path

from lanthorn.quantize.voice_corpus import TextSource, add_source

SOFT = ["la lune alla a la mer", "mon ami lui a menu", "une lame en aval", "la manne le matin",
        "il aimait la lumiere", "ma mere a mal a la main", "le nul lama allume", "mille ailes",
        "nous allons a la maison", "la laine est molle", "un ami une amie", "lent le long du lac",
        "la mule aime le melon", "mes mains en lumiere", "le moulin au loin", "l ame au lit"]
HARD = ["zig zag tok tik", "krax tzik krox", "tak tak zogg", "xyzt kzzt trak",
        "gzork tik tzak", "kxx zag trok", "ztok krik krak", "tzt tzt gok",
        "drak zkt vrok", "kzz kzz tok", "grr tak zzt", "trk trk kax",
        "zok zik zak", "vrt kkt zog", "kraz tz tz", "xok xak xik"]


def two_source_corpus(root: Path, hard_weight: float, moods: bool = False) -> Path:
    """Two clearly different sources: soft vowel-rich French-like words, hard consonants."""
    add_source(root, TextSource("soft", author="test", consent="written for the test",
                                licence="CC0-1.0", weight=1.0), replace=True)
    add_source(root, TextSource("hard", author="test", consent="written for the test",
                                licence="CC0-1.0", weight=hard_weight), replace=True)
    soft = [f"[calm] {t}" for t in SOFT] if moods else SOFT
    hard = [f"[agitated] {t}" for t in HARD] if moods else HARD
    (root / "sources" / "soft.txt").write_text("\n".join(soft) + "\n")
    (root / "sources" / "hard.txt").write_text("\n".join(hard) + "\n")
    return root


def small_voice(corpus: Path, out_dir: Path, epochs: int = 12, seed: int = 0, name="test-voice"):
    """(float onnx, bundle, quantize report) of a tiny voice trained on ``corpus``."""
    from lanthorn.host.voice_train import VoiceArch, train_voice
    from lanthorn.quantize.voice_quantize import quantize_voice
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path, bundle = out_dir / f"{name}.onnx", out_dir / f"{name}.lanthorn"
    quiet = lambda *a, **k: None  # noqa: E731
    train_voice(corpus, onnx_path, VoiceArch(4, 8, 48), epochs=epochs, seed=seed, holdout=0.0,
                log=quiet)
    report = quantize_voice(onnx_path, corpus, bundle, name=name, seed=seed, n_calib=128,
                            log=quiet)
    return onnx_path, bundle, report
