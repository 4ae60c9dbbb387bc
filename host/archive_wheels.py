"""The wheelhouses an archive carries, so the piece reinstalls with no network.

The **device wheelhouse** is every distribution the object's board needs (lanthorn's own
dependencies and its board extra, ``pi5`` say), for the object's Python and machine; the
**host wheelhouse** (``archive --with-host``) adds the laptop's tools (training, quantizing:
torch). Where they come from (``--wheelhouse-from``):

* ``index``: ``pip download`` from the package index, for the object's platform (a Pi's
  ``aarch64`` from a laptop: binary wheels only, and the source-only packages, spidev and
  RPi.GPIO, as sdists that compile on the Pi), with the project's constraints file
  (``constraints.txt`` at the top of the source, when there is one);
* ``installed``: the distributions installed in *this* environment, repacked as wheels from
  their ``RECORD`` (no network, nothing downloaded; only when this machine's Python and
  platform are the object's, as for a simulated object);
* a folder of wheels: ``pip download --no-index --find-links DIR``.

A ``requirements.txt`` in each wheelhouse pins what is in it (``name==version``), which is
what ``archive restore`` installs.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as md
import io
import os
import platform
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from lanthorn.errors import UserError

#: boards whose extras (pyproject) are the device set; the simulator's extra also holds its
#: on-screen window (luma.emulator -> pygame), which no object runs: left out
BOARD_EXTRAS = {"pi4": "pi4", "pi5": "pi5", "jetson": "jetson", "sim": "sim"}
NOT_ON_THE_OBJECT = {"luma-emulator"}
SOURCE_ONLY = {"spidev", "rpi-gpio"}  # no wheels on the index: sdists, built on the object
#: lanthorn's own build at restore (--no-build-isolation): setuptools >= 70.1 builds wheels
#: itself, so pyproject's "wheel" is not needed
BUILD = ["setuptools>=70.1"]
#: glibc a Pi OS (Debian bookworm: 2.36) or JetPack offers, newest first, down to manylinux2014
GLIBC = [f"2_{minor}" for minor in range(36, 16, -1)]


def platforms(machine: str) -> list[str]:
    """pip's --platform tags for a Linux ``machine`` (aarch64 on a Pi)."""
    return [f"manylinux_{g}_{machine}" for g in GLIBC] + [f"manylinux2014_{machine}",
                                                         f"linux_{machine}"]


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def top_requirements(extras: list[str]) -> list[str]:
    """lanthorn's requirements with ``extras`` (markers evaluated for them), without the
    parts no object runs; ``lanthorn[x]`` inside an extra is followed."""
    from packaging.requirements import Requirement
    declared = md.requires("lanthorn") or []
    out, seen, todo = [], set(), list(extras) + [""]
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in declared:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                continue
            if req.marker is None and extra:
                continue  # the core requirements are taken once, with extra ""
            if canon(req.name) == "lanthorn":
                todo.extend(req.extras)
                continue
            if canon(req.name) not in NOT_ON_THE_OBJECT and str(req) not in out:
                out.append(str(Requirement(f"{req.name}{req.specifier}")))
    return out


def installed_closure(requirements: list[str]) -> list[md.Distribution]:
    """The installed distributions ``requirements`` need, dependencies included."""
    from packaging.requirements import Requirement
    found: dict[str, md.Distribution] = {}
    todo = [(Requirement(r), ()) for r in requirements]
    while todo:
        req, _ = todo.pop()
        key = canon(req.name)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            raise UserError(f"{req.name} is needed on the object but not installed here, so "
                            "it cannot be repacked; use --wheelhouse-from index or a folder") from None
        if req.specifier and not req.specifier.contains(dist.version, prereleases=True):
            raise UserError(f"{req.name} {dist.version} is installed here but the object needs "
                            f"{req.specifier}")
        first = key not in found
        found[key] = dist
        for text in ((dist.requires or []) if first else []):
            sub = Requirement(text)
            env = [{"extra": e} for e in (req.extras or [""])]
            if sub.marker is None or any(sub.marker.evaluate(e) for e in env):
                todo.append((sub, ()))
    return sorted(found.values(), key=lambda d: canon(d.metadata["Name"]))


def _tag(dist: md.Distribution) -> str:
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    if not tags:
        return "py3-none-any"
    parts = [t.split("-") for t in tags]
    return "-".join(".".join(sorted({p[i] for p in parts})) for i in range(3))


def repack(dist: md.Distribution, out: Path) -> Path:
    """One installed distribution as a wheel (its files from RECORD; console scripts are
    made again by pip from entry_points.txt, byte-code is left out)."""
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    files = [f for f in dist.files or [] if not str(f).startswith("..")
             and "__pycache__" not in f.parts and f.suffix != ".pyc"]
    info_dir = next(str(f.parent) for f in files if f.name == "METADATA"
                    and str(f.parent).endswith(".dist-info"))
    skip = {f"{info_dir}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    path = out / f"{name}-{dist.version}-{_tag(dist)}.whl"
    rows = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for f in files:
            arc = str(f).replace("\\", "/")
            if arc in skip:
                continue
            data = Path(dist.locate_file(f)).read_bytes()
            z.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            rows.append((arc, "sha256=" + digest.decode(), str(len(data))))
        rows.append((f"{info_dir}/RECORD", "", ""))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        z.writestr(f"{info_dir}/RECORD", buf.getvalue())
    return path


def this_machine() -> dict:
    return {"python": platform.python_version(), "machine": platform.machine(),
            "implementation": platform.python_implementation(), "system": platform.system()}


def same_platform(target: dict) -> bool:
    here = this_machine()
    return (target.get("machine") == here["machine"] and target.get("system") == here["system"]
            and str(target.get("python", "")).rsplit(".", 1)[0] == here["python"].rsplit(".", 1)[0])


def build_wheelhouse(out: Path, requirements: list[str], source: str, target: dict,
                     constraints: Path | None = None) -> dict:
    """Fill ``out`` with wheels for ``requirements`` (plus lanthorn's build requirements);
    returns {"files", "bytes", "pins", "from", "notes"}."""
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    reqs = requirements + BUILD
    if source == "installed":
        if not same_platform(target):
            raise UserError(f"--wheelhouse-from installed repacks this machine's packages "
                            f"({this_machine()['machine']}, Python {this_machine()['python']}), "
                            f"but the object runs {target.get('machine')} Python "
                            f"{target.get('python')}: use --wheelhouse-from index or a folder")
        for dist in installed_closure(reqs):
            repack(dist, out)
        notes.append("repacked from the installed environment (no network)")
    else:
        _pip_download(out, reqs, source, target, constraints, notes)
    pins = sorted(_pins(out))
    (out / "requirements.txt").write_text("".join(f"{p}\n" for p in pins))
    files = sorted(p for p in out.iterdir() if p.name != "requirements.txt")
    return {"files": [p.name for p in files], "bytes": sum(p.stat().st_size for p in files),
            "pins": pins, "from": source, "notes": notes}


def _pins(folder: Path) -> list[str]:
    """``name==version`` of every wheel and sdist in ``folder``."""
    out = []
    for p in folder.iterdir():
        if p.suffix == ".whl":
            name, version = p.name.split("-")[:2]
        elif p.name.endswith((".tar.gz", ".zip")):
            stem = p.name[:-7] if p.name.endswith(".tar.gz") else p.name[:-4]
            name, _, version = stem.rpartition("-")
        else:
            continue
        out.append(f"{canon(name)}=={version}")
    return out


def _pip_download(out, reqs, source, target, constraints, notes) -> None:
    base = [sys.executable, "-m", "pip", "download", "--dest", str(out), "--progress-bar", "off"]
    env = None  # the index as this machine's pip reaches it
    if source != "index":
        if not Path(source).is_dir():
            raise UserError(f"--wheelhouse-from {source}: not 'index', 'installed' or a folder")
        base += ["--no-index", "--find-links", str(Path(source).resolve())]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull  # that folder and nothing else
    if constraints is not None and constraints.is_file():
        base += ["--constraint", str(constraints)]
        notes.append(f"pinned by {constraints.name}")
    binary = [r for r in reqs if canon(re.split(r"[<>=!~; \[]", r)[0]) not in SOURCE_ONLY]
    sdists = [r for r in reqs if r not in binary]
    if same_platform(target):
        _run(base + binary + sdists, env)
        return
    machine = target.get("machine") or "aarch64"
    py = str(target.get("python") or "3.11").split(".")
    plat = sum((["--platform", p] for p in platforms(machine)), [])
    _run(base + ["--only-binary=:all:", "--python-version", f"{py[0]}.{py[1]}",
                 "--implementation", "cp", "--abi", f"cp{py[0]}{py[1]}", "--abi", "abi3",
                 "--abi", "none"] + plat + binary, env)
    if sdists:
        _run(base + ["--no-deps", "--no-binary=:all:"] + sdists, env)
        notes.append(f"{', '.join(sdists)}: source only, compiled on the object at restore "
                     "(needs gcc and the Python headers there)")


def _run(cmd: list[str], env: dict | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise UserError("pip download failed: " + " / ".join(tail))
