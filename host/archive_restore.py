"""``lanthorn archive restore BAG DIR``: the piece back from its bag, with no network.

1. ``archive verify`` (checksums, completeness, the models against their twins);
2. a fresh venv in ``DIR/venv``, installed with pip pointed at no index at all
   (``--no-index --find-links`` the bag's wheelhouse; every ``PIP_*`` setting and pip
   configuration file of this machine left out, so nothing else can be reached): the
   build tools first, then lanthorn from the archived source with the pinned requirements;
3. ``lanthorn selftest --sim`` on the restored install;
4. the archived models run on the restored install (loaded, one inference, one phrase);
5. the rebuild: ``make model`` from the archived source and data, its bundle compared
   byte for byte with the archived ones. Training needs torch, which only the host
   wheelhouse carries (``archive --with-host``); without it (and without
   ``--rebuild-python``) the rebuild is skipped and the report says why.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from lanthorn.errors import UserError
from lanthorn.host.archive_check import verify

RUN_BUNDLES = r"""
import sys, numpy as np
from lanthorn.device.engine.bundle import read_bundle
from lanthorn.device.engine.runtime import load
from lanthorn.device.piece.voice import is_voice, load_voice
for path in sys.argv[1:]:
    name = path.rsplit('/', 1)[-1]
    if is_voice(read_bundle(path)):
        v = load_voice(path)
        p = v.generate('calm', seed=0)
        print(f'{name}: voice {v.name} says {getattr(p, "text", p)!r}')
    else:
        m = load(path)
        probs = m(np.zeros(m.input_spec.shape, np.float32))
        print(f'{name}: {m.backend} engine, at rest it answers {m.labels[int(np.argmax(probs))]}')
"""


#: a source script run against the *installed* lanthorn: imported first, so the script's own
#: ``sys.path.insert(0, ROOT)`` (for a checkout) cannot shadow it with the bare source tree
RUN_SCRIPT = ("import sys, runpy, lanthorn.device, lanthorn.quantize, lanthorn.host; "
              "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def offline_env() -> dict:
    """This environment with pip unable to reach anything but what it is told."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _run(cmd: list, what: str, env=None, cwd=None) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd)
    if done.returncode:
        tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-4:])
        raise UserError(f"{what} failed: {tail}")
    return done.stdout


def install(bag: Path, venv: Path, m: dict) -> list[str]:
    """The fresh venv from the bag's device wheelhouse alone; returns report lines."""
    wh = bag / "data" / "wheelhouse" / "device"
    tarball = bag / "data" / "source" / str(m["source"].get("tarball"))
    if not tarball.is_file():
        raise UserError(f"{bag}: the bag holds no source to install")
    env = offline_env()
    _run([sys.executable, "-m", "venv", venv], "creating the venv")
    py = venv / "bin" / "python"
    pins = (wh / "requirements.txt").read_text().split()
    build = [p for p in pins if p.split("==")[0] in ("setuptools", "wheel")]
    pip = [py, "-m", "pip", "install", "-q", "--no-index", "--find-links", wh, "--no-compile"]
    _run(pip + build, "installing the build tools from the wheelhouse", env)
    _run(pip + ["--no-build-isolation", "-r", wh / "requirements.txt", tarball],
         "installing lanthorn from the bag", env)
    return [f"OK install: {venv} from {len(pins)} archived distributions and "
            f"{tarball.name}, with no package index"]


def rebuild_model(bag: Path, out: Path, m: dict, given: str | None) -> list[str]:
    """``make model`` from the archived source and data, on the restored install; the
    bundle compared with the archived ones. Skipped, with the reason, without torch."""
    python = out / "venv" / "bin" / "python"
    env, how = training_env(python, given)
    if env is None:
        return [f"SKIP rebuild: {how}"]
    built = out / "rebuild"
    src = out / "source"
    with tarfile.open(bag / "data" / "source" / m["source"]["tarball"]) as t:
        t.extractall(src, filter="data")
    root = src / m["source"]["prefix"]
    lines = []
    for script, args, made, slot in REBUILDS:
        # from the source's root, as 'make model' runs (the card names its data relative to
        # it); -P: that root's bare lanthorn/ folder must not shadow the installed package
        _run([python, "-P", "-c", RUN_SCRIPT, root / "scripts" / script, "--out", built / slot,
              *args], f"{script} from the archived source and data", env=env, cwd=root)
        lines.append(_compare(bag, m, built / slot / made, slot, script, how))
    return lines


#: (script, its arguments, the bundle it makes, the bag's slot): what 'make model' runs, on
#: the archived source's own data (data/temperament, data/voice: the bag's datasets/)
REBUILDS = (("make_model.py", ["--no-prune", "--quiet"], "temperament.lanthorn", "model"),
            ("make_voice.py", [], "voice.lanthorn", "voice"))


def _same_content(a: bytes, b: bytes) -> bool:
    """Equal but for the build record (what CPU, which versions built it), the one part two
    machines rebuilding the same model are expected to differ in, where the bundle format
    has one (device/engine/build_record.py); else the bytes alone decide."""
    try:
        from lanthorn.device.engine.bundle import reproducible_content
    except ImportError:  # a bundle format without a build record
        return False
    try:
        return reproducible_content(a) == reproducible_content(b)
    except Exception:
        return False


def _compare(bag: Path, m: dict, made: Path, slot: str, script: str, how: str) -> str:
    new = made.read_bytes()
    archived = {name: (bag / "data" / "models" / name).read_bytes() for name in m["models"]
                if name.startswith(slot + "-")}
    same = [name for name, raw in archived.items() if raw == new]
    if same:
        return f"OK rebuild {slot} ({how}): {script} reproduces {', '.join(same)} byte for byte"
    same = [name for name, raw in archived.items() if _same_content(raw, new)]
    if same:
        return (f"OK rebuild {slot} ({how}): {script} reproduces {', '.join(same)} byte for "
                "byte except the build record (which says where each was built)")
    return (f"DIFFERS rebuild {slot} ({how}): {script} gave a bundle ({len(new)} bytes) unlike "
            f"the archived {slot} (the object may run one trained elsewhere, or training is "
            f"not byte-reproducible on this CPU); kept as {made}")


TRAINING = ("torch", "onnx", "onnxruntime")


def training_env(venv_py: Path, given: str | None) -> tuple[dict | None, str]:
    """(environment for the restored venv's Python to train with, how) or (None, why not).
    The restored lanthorn always trains; torch comes from the venv (host wheelhouse) or is
    borrowed from ``given`` (its folders put after the venv's on PYTHONPATH)."""
    env = offline_env()
    probe = "import torch, onnx, onnxruntime"
    if subprocess.run([str(venv_py), "-c", probe], capture_output=True, env=env).returncode == 0:
        return env, "with the restored install"
    if not given:
        return None, ("training needs torch, which is in the host wheelhouse only (archive "
                      "--with-host), or give --rebuild-python")
    where = subprocess.run([given, "-c", "import os, " + ", ".join(TRAINING) + "; print("
                            "os.pathsep.join(sorted({os.path.dirname(os.path.dirname(m.__file__))"
                            f" for m in ({', '.join(TRAINING)})}})))"],
                           capture_output=True, text=True)
    if where.returncode:
        return None, f"--rebuild-python {given} cannot import {', '.join(TRAINING)}"
    env["PYTHONPATH"] = where.stdout.strip()
    return env, f"with the restored lanthorn, {', '.join(TRAINING)} borrowed from {given}"


def restore(bag: Path, out: Path, rebuild: bool = True, rebuild_python: str | None = None,
            say=lambda s: None) -> dict:
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; restore into a new folder")
    say("verify")
    checked = verify(bag)
    lines = list(checked["lines"])
    if not checked["ok"]:
        return {"ok": False, "lines": lines + ["restore stopped: the bag does not verify"]}
    m = checked["manifest"]
    from lanthorn.host.archive_wheels import same_platform, this_machine
    target = m["wheelhouse"].get("target") or {}
    if not same_platform(target):
        here = this_machine()
        raise UserError(f"the bag's device wheelhouse is for {target.get('machine')} Python "
                        f"{target.get('python')}, this is {here['machine']} Python "
                        f"{here['python']}: restore on the object (or a machine like it); "
                        "the bag verified")
    out.mkdir(parents=True, exist_ok=True)
    venv = out / "venv"
    say("a fresh venv from the wheelhouse, no index")
    lines += install(bag, venv, m)
    test = subprocess.run([str(venv / "bin" / "lanthorn"), "selftest", "--sim"],
                          capture_output=True, text=True, cwd=out)
    lines.append(("OK" if test.returncode == 0 else "FAIL") + " selftest --sim: "
                 + (test.stdout.strip().splitlines() or ["no output"])[-1])
    models = sorted((bag / "data" / "models").glob("*.lanthorn"))
    ran = _run([venv / "bin" / "python", "-c", RUN_BUNDLES, *models], "running the archived models",
               cwd=out)  # not beside a lanthorn checkout, whose package would shadow the restored one
    lines += [f"OK runs: {line}" for line in ran.strip().splitlines()]
    if rebuild:
        say("rebuild (make model from the archived data)")
        lines += rebuild_model(bag, out, m, rebuild_python)
    return {"ok": all(not ln.startswith("FAIL") for ln in lines), "lines": lines}
