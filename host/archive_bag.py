"""``lanthorn archive OUT``: one BagIt bag (RFC 8493) holding everything a conservator needs
to keep, understand and restore the piece.

Payload (``data/``)::

    archive.json          what is where (read by 'archive verify' and 'archive restore')
    source/               lanthorn-COMMIT.tar.gz (git archive of the commit the object runs),
                          COMMIT, lanthorn.gitbundle (the history, when run from a clone)
    wheelhouse/device/    wheels for the object's board and Python (+ requirements.txt)
    wheelhouse/host/      the laptop's tools (torch...), with --with-host
    models/               the bundles read back from the object (current and previous, model
                          and voice), SHA256SUMS, cards.json (their cards and provenance)
    datasets/             the training data and the voice corpus, with their sources'
                          provenance and consent (manifest.json, sources.json), DATA.md
    docs/                 the hardware profile, the wiring and console docs
    state/                the object's state read back: saved settings, presets, lock
                          state, trusted keys, rejected notes, fault log, version, status
    behaviour/            the piece answering the scripted visitor on the archived model:
                          timeline.txt, summary.json, demo.gif

and ``README.txt`` beside ``bag-info.txt``: the identity report (host/archive_report.py).
The bag is written into a hidden folder next to OUT and renamed when complete, so an
interrupted archive never leaves something that looks like a bag.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from lanthorn.errors import UserError

DOCS = ("README.md", "DATA.md", "hardware/README.md", "device/CONSOLE.md",
        "device/PARAMETERS.md", "device/RELIABILITY.md", "device/SERVICE.md",
        "device/SIGNING.md")
DATASETS = {"temperament": "data/temperament", "voice": "data/voice"}


@dataclass
class BagOptions:
    origin: str                    # "serial port /dev/ttyACM0" or "a simulated piece"
    wheelhouse_from: str = "index"
    with_host: bool = False
    demo_seconds: float = 20.0
    seed: int = 0
    root: Path | None = None       # the lanthorn source clone (None: not run from one)
    notes: list = field(default_factory=list)


def source_root() -> Path | None:
    """The git clone this lanthorn runs from, or None (installed from a wheel)."""
    import lanthorn
    root = Path(lanthorn.__file__).resolve().parent.parent
    return root if (root / ".git").exists() and (root / "pyproject.toml").is_file() else None


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"git {' '.join(args[:2])} failed: {done.stderr.strip()[:200]}")
    return done.stdout.strip()


def add_source(folder: Path, root: Path | None, device_commit: str | None, notes: list) -> dict:
    """The source at the commit the object runs: a git archive, the id, a git bundle."""
    folder.mkdir(parents=True)
    if root is None:
        notes.append("not run from a git clone: the bag holds no source; archive from a "
                     "clone of the repository at the object's commit")
        return {"commit": device_commit, "tarball": None}
    head = _git(root, "rev-parse", "HEAD")
    commit = device_commit or head
    if subprocess.run(["git", "-C", str(root), "cat-file", "-e", f"{commit}^{{commit}}"],
                      capture_output=True).returncode:
        notes.append(f"the object's commit {commit} is not in this clone; the source is "
                     f"this clone's HEAD {head}")
        commit = head
    if device_commit is None:
        notes.append(f"the object did not say its commit; the source is this clone's HEAD {head}")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    if dirty and commit == head:
        notes.append("this clone has uncommitted changes; the source is the commit, without them")
    short = commit[:12]
    tarball = folder / f"lanthorn-{short}.tar.gz"
    _git(root, "archive", "--format=tar.gz", f"--prefix=lanthorn-{short}/", "-o",
         str(tarball), commit)
    (folder / "COMMIT").write_text(commit + "\n")
    ref = "HEAD" if commit == head else "--all"
    _git(root, "bundle", "create", str(folder / "lanthorn.gitbundle"), ref)
    return {"commit": commit, "tarball": tarball.name, "gitbundle": "lanthorn.gitbundle",
            "prefix": f"lanthorn-{short}"}


def add_models(folder: Path, obj) -> dict:
    """The bundles as read back, their sha256, and their cards (with provenance)."""
    from lanthorn.device.engine.bundle import Bundle
    folder.mkdir(parents=True)
    out, sums, cards = {}, [], {}
    for name, data in obj.bundles.items():
        (folder / name).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        sums.append(f"{sha}  {name}\n")
        bundle = Bundle.from_bytes(data)
        cards[name] = {"card": bundle.card, "provenance": getattr(bundle, "provenance", None)}
        out[name] = {"sha256": sha, "size": len(data), "from": obj.bundle_info[name],
                     "name": (bundle.card or {}).get("name"),
                     "kind": (bundle.card or {}).get("kind", "model")}
    (folder / "SHA256SUMS").write_text("".join(sums))
    (folder / "cards.json").write_text(json.dumps(cards, indent=2, default=str) + "\n")
    return out


def add_datasets(folder: Path, tarball: Path | None, prefix: str, notes: list) -> dict:
    """The training data and voice corpus at the archived commit (taken from the source
    tarball, so they are the very bytes a rebuild trains on), with their provenance."""
    import tarfile
    folder.mkdir(parents=True)
    if tarball is None:
        notes.append("no source, so no datasets: add data/temperament and data/voice by hand")
        return {}
    out = {}
    with tarfile.open(tarball) as t:
        members = t.getmembers()
        for name, rel in DATASETS.items():
            inside = [m for m in members if m.isfile() and m.name.startswith(f"{prefix}/{rel}/")]
            if not inside:
                notes.append(f"dataset {name}: {rel} is not in the source")
                continue
            for m in inside:
                target = folder / name / m.name[len(f"{prefix}/{rel}/"):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(t.extractfile(m).read())
            out[name] = {"from": rel, "files": len(inside), "bytes": sum(m.size for m in inside),
                         "provenance": sorted(m.name.rsplit("/", 1)[1] for m in inside
                                              if m.name.endswith(".json"))[:5]}
    return out


def add_docs(folder: Path, root: Path | None, profile: dict | None) -> list[str]:
    """The profile the object runs and the docs to wire, run and service it."""
    from lanthorn.hardware.profile import PROFILE_DIR
    folder.mkdir(parents=True)
    written = []
    for rel in DOCS if root is not None else ():
        if (root / rel).is_file():
            target = folder / rel.replace("/", "-")
            shutil.copyfile(root / rel, target)
            written.append(target.name)
    name = (profile or {}).get("name")
    shipped = PROFILE_DIR / f"{name}.toml"
    if name and shipped.is_file():
        shutil.copyfile(shipped, folder / f"profile-{name}.toml")
        written.append(f"profile-{name}.toml")
    else:  # the object did not say (or runs its own): every shipped profile
        for p in sorted(PROFILE_DIR.glob("*.toml")):
            shutil.copyfile(p, folder / f"profile-{p.name}")
            written.append(f"profile-{p.name}")
    return written


def add_state(folder: Path, obj) -> list[str]:
    folder.mkdir(parents=True)
    for key, value in obj.state.items():
        (folder / f"{key}.json").write_text(json.dumps(value, indent=2, default=str) + "\n")
    return sorted(f"{k}.json" for k in obj.state)


def add_behaviour(folder: Path, models: Path, saved: dict, seconds: float, seed: int) -> dict:
    """The piece answering the scripted visitor on the archived model and voice, with the
    object's saved start-up values (``lanthorn demo``'s run, on the simulated body)."""
    from lanthorn.host import demo as d
    folder.mkdir(parents=True)
    voice = models / "voice-current.lanthorn"
    demo = d.open_demo(models / "model-current.lanthorn", voice if voice.is_file() else None,
                       not voice.is_file(), seed)
    skipped = demo.loop.params.update_from_dict(saved) if saved else []
    recorder, wall, _ = d.run_demo(demo, seconds, 12.5)
    summary = d.build_summary(demo.loop, demo.body, demo.model, demo.model_note, wall)
    demo.body.close()
    lines = d.report_lines(summary)
    d.write_outputs(summary, recorder, folder)
    summary["gif"] = "demo.gif"
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (folder / "timeline.txt").write_text(
        f"lanthorn demo on the archived model, {seconds:g} s, visitor seed {seed}"
        + (f"; saved values not applied: {'; '.join(skipped)}" if skipped else "")
        + "\n\n" + "\n".join(lines) + "\n")
    return {"seconds": seconds, "seed": seed, "files": ["timeline.txt", "summary.json", "demo.gif"]}


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
