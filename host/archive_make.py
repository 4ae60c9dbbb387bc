"""The archive's order of work: read the object back, lay out the payload, make the bag.

Kept apart from the pieces (host/archive_read.py, _wheels, _bag, _report) so each stays
small and this one says, in one place, what a bag is made of and in which order.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from lanthorn.errors import UserError
from lanthorn.host import archive_bag as ab
from lanthorn.host import archive_wheels as aw

CHECKSUMS = ["sha256", "sha512"]


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists; choose a new folder for the bag (nothing was written)")


def _wheelhouses(data: Path, version: dict, opts: ab.BagOptions, say) -> dict:
    """The device wheelhouse (the object's board extra) and, on request, the host's."""
    board = (version.get("profile") or {}).get("board") or "sim"
    extra = aw.BOARD_EXTRAS.get(board)
    if extra is None:
        raise UserError(f"the object's board {board!r} has no extra in pyproject "
                        f"({', '.join(aw.BOARD_EXTRAS)})")
    constraints = opts.root / "constraints.txt" if opts.root is not None else None
    target = {k: version.get(k) for k in ("python", "machine", "system", "implementation")}
    say(f"device wheelhouse for {board} ({target['machine']}, Python {target['python']}) "
        f"from {opts.wheelhouse_from}")
    out = {"board": board, "extra": extra, "target": target,
           "device": aw.build_wheelhouse(data / "wheelhouse" / "device",
                                         aw.top_requirements([extra]), opts.wheelhouse_from,
                                         target, constraints)}
    if opts.with_host:
        say(f"host wheelhouse from {opts.wheelhouse_from}")
        out["host"] = aw.build_wheelhouse(data / "wheelhouse" / "host",
                                          aw.top_requirements(["host"]), opts.wheelhouse_from,
                                          aw.this_machine(), constraints)
    return out


def lay_out(data: Path, obj, opts: ab.BagOptions, say) -> dict:
    """Write the payload into ``data``; returns the manifest (data/archive.json)."""
    version = obj.state.get("version") or {}
    say("source")
    source = ab.add_source(data / "source", opts.root, version.get("commit"), opts.notes)
    models = ab.add_models(data / "models", obj)
    cards = json.loads((data / "models" / "cards.json").read_text())
    for fname, m in models.items():
        m["card"] = {k: v for k, v in (cards[fname]["card"] or {}).items()
                     if isinstance(v, (str, int, float))}
    tarball = data / "source" / source["tarball"] if source.get("tarball") else None
    datasets = ab.add_datasets(data / "datasets", tarball, source.get("prefix", ""), opts.notes)
    for fname, c in cards.items():  # a model trained on other data: say so, never pretend
        named = (c.get("provenance") or {}).get("dataset")
        if named and named not in datasets:
            opts.notes.append(f"{fname} was trained on dataset {named!r}, which is not in the "
                              "source; add that folder (with its manifest) to the archive by hand")
    docs = ab.add_docs(data / "docs", opts.root, version.get("profile"))
    state = ab.add_state(data / "state", obj)
    wheels = _wheelhouses(data, version, opts, say)
    say(f"behaviour record ({opts.demo_seconds:g} s of the piece on the archived model)")
    saved = (obj.state.get("settings_saved") or {}).get("params") or {}
    behaviour = ab.add_behaviour(data / "behaviour", data / "models", saved,
                                 opts.demo_seconds, opts.seed)
    info = (obj.state.get("model_info") or {})
    manifest = {"format": "lanthorn-archive/1", "created": ab.stamp(), "origin": opts.origin,
                "state_version": version, "source": source, "models": models,
                "labels": info.get("labels") or [], "datasets": datasets, "docs": docs,
                "state": state, "wheelhouse": wheels, "behaviour": behaviour,
                "notes": opts.notes + obj.notes}
    (data / "archive.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def bag_info(manifest: dict) -> dict:
    v = manifest["state_version"]
    cur = manifest["models"].get("model-current.lanthorn", {})
    return {"Source-Organization": "lanthorn art object",
            "External-Description": f"lanthorn piece running {cur.get('name')} "
                                    f"({cur.get('sha256', '')[:16]}), archived from {manifest['origin']}",
            "External-Identifier": f"sha256:{cur.get('sha256')}",
            "Lanthorn-Version": str(v.get("lanthorn")),
            "Lanthorn-Commit": str(manifest["source"].get("commit")),
            "Object-Board": str(manifest["wheelhouse"]["board"]),
            "Object-Python": str(v.get("python")), "Object-Machine": str(v.get("machine"))}


def make_archive(out: Path, obj, opts: ab.BagOptions, say: Callable[[str], None]) -> dict:
    """Write the bag for ``obj`` (an ObjectState read back) at ``out``; returns the manifest."""
    import bagit

    from lanthorn.host.archive_report import identity_report
    out = Path(out).resolve()  # git -C writes relative to the clone, not here
    _check_out(out)
    work = out.parent / f".{out.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        manifest = lay_out(work, obj, opts, say)
        say("bag: sha256 + sha512 manifests")
        bag = bagit.make_bag(str(work), bag_info(manifest), checksums=CHECKSUMS)
        (work / "README.txt").write_text(identity_report(manifest))
        bag.save(manifests=False)  # the tag manifests now cover README.txt too
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest
