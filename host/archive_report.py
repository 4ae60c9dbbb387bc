"""README.txt, the identity report a conservator reads first: what the piece is, its parts,
how it behaves, how to restore it, and what may and may not be replaced.

Written from what the bag holds (the cards of the bundles read back, the profile the
object runs, the behaviour record), in plain text so it still reads in fifty years.
"""
from __future__ import annotations

import textwrap


def _wrap(text: str, indent: str = "", then: str | None = None) -> list[str]:
    return textwrap.wrap(" ".join(str(text).split()), 88, initial_indent=indent,
                         subsequent_indent=indent if then is None else then,
                         break_on_hyphens=False) or [indent.rstrip()]


def _parts(manifest: dict) -> list[str]:
    prof = (manifest["state_version"].get("profile") or {})
    parts = prof.get("parts") or {}
    if not parts:
        return ["  (the object did not name its parts; see docs/profile-*.toml)"]
    return [f"  - {role}: {kind}" for role, kind in parts.items()] + [
        f"  board: {prof.get('board')} (profile {prof.get('name')}, docs/profile-{prof.get('name')}.toml)"]


def _models(manifest: dict) -> list[str]:
    lines = []
    for fname, m in manifest["models"].items():
        card = m.get("card") or {}
        lines += [f"  - models/{fname}: {m.get('name')} ({m.get('kind')}), {m['size']} bytes,",
                  f"    sha256 {m['sha256']}"]
        if card.get("description"):
            lines += _wrap(card["description"], "    ")
    return lines


def _change() -> list[str]:
    """What may be replaced (acceptable change) and what may not: the artwork's identity."""
    return [
        "WHAT MAY BE REPLACED (acceptable change)",
        *_wrap("- A sensor, LED ring or display of the same kind (same part type and channels in "
               "the profile); a newer Raspberry Pi or a Jetson for which the profile is "
               "rewritten: the model binds to channels by name and every int8 engine gives "
               "identical integers, so the piece answers the same.", "  ", "    "),
        *_wrap("- The SD card, power supply, cable and enclosure fixings; the operating system, "
               "as long as the wheelhouse's Python version (or a rebuilt one) installs.", "  ", "    "),
        "",
        "WHAT MAY NOT",
        *_wrap("- The model and voice bundles (their bytes are the work; sha256 above), the "
               "training data and corpus in datasets/ (with their consent), the mapping of "
               "gestures to moods, light and words in the saved settings and presets, and "
               "the kinds of parts a visitor touches and sees. Retraining, a different "
               "sensor type or a different LED count changes the work: ask the artist or "
               "their estate.", "  ", "    "),
    ]


def identity_report(manifest: dict) -> str:
    """The text of README.txt for the bag described by ``manifest`` (data/archive.json)."""
    v = manifest["state_version"]
    current = manifest["models"].get("model-current.lanthorn", {})
    card = current.get("card") or {}
    labels = ", ".join(manifest.get("labels") or []) or "-"
    src = manifest["source"]
    out = [
        "IDENTITY REPORT - a lanthorn art object",
        "=" * 40,
        f"Archived {manifest['created']} from {manifest['origin']}.",
        f"Software: lanthorn {v.get('lanthorn')} at commit {src.get('commit') or 'unknown'};",
        f"the object ran Python {v.get('python')} on {v.get('machine')} ({v.get('system')}).",
        "",
        "WHAT THE PIECE IS",
        *_wrap(f"A networkless object that senses how a visitor touches and approaches it and "
               f"answers with light, motion on a ring of LEDs and short phrases on a small "
               f"display. Its character is a tiny int8 model, part of the artwork: "
               f"{card.get('description') or 'see models/cards.json'}. It recognises: {labels}."),
        "",
        "ITS PARTS",
        *_parts(manifest),
        "",
        "THE MODELS (the artwork; read back from the object, byte for byte)",
        *_models(manifest),
        "",
        "HOW IT BEHAVES",
        *_wrap("behaviour/timeline.txt and behaviour/demo.gif record the piece answering the "
               "scripted visitor (approach, taps, strokes, hold, palm, leave) on the archived "
               "model with the object's saved start-up values (state/settings_saved.json). "
               "It must answer within a frame and never freeze; state/log.json is its own "
               "record of faults and recoveries."),
        "",
        "HOW TO RESTORE IT",
        "  1. lanthorn archive verify BAG        (checksums, completeness, models vs their twins)",
        "  2. lanthorn archive restore BAG DIR   (a fresh install with no network, from",
        "     data/wheelhouse/device; selftest; the archived models run; rebuild check)",
        *_wrap("On the object by hand: python3 -m venv venv; venv/bin/pip install --no-index "
               "--find-links data/wheelhouse/device -r data/wheelhouse/device/requirements.txt "
               f"data/source/{src.get('tarball')}; copy models/model-current.lanthorn to "
               "DATA_DIR/models/current.lanthorn (and voice-current.lanthorn to "
               "voice-current.lanthorn); put back the saved values and presets from state/ "
               "with the console (set, save, preset save); see docs/device-SERVICE.md.", "     "),
        "",
        *_change(),
    ]
    if manifest.get("notes"):
        out += ["", "NOTES FROM THE ARCHIVING RUN"] + [ln for n in manifest["notes"]
                                                    for ln in _wrap(n, "  - ", "    ")]
    return "\n".join(out) + "\n"
