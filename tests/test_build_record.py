"""The build record: what built a bundle is in it and shown by inspect, and it is the one
part a rebuild on another CPU may change (device/engine/bundle.py: reproducible_content)."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_bundle import tiny_bundle

from lanthorn import __version__
from lanthorn.device.engine import bundle as B
from lanthorn.device.engine.build_record import build_record
from lanthorn.device.storage.storage import SHIPPED_VOICE

ROOT = Path(__file__).resolve().parent.parent


def inspect(path) -> str:
    r = subprocess.run([sys.executable, "-m", "lanthorn", "inspect", str(path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_inspect_shows_what_built_the_shipped_voice_and_its_files_sha256():
    out = inspect(SHIPPED_VOICE).splitlines()
    file_sha = hashlib.sha256(SHIPPED_VOICE.read_bytes()).hexdigest()
    if shutil.which("sha256sum"):
        printed = subprocess.run(["sha256sum", str(SHIPPED_VOICE)], capture_output=True,
                                 text=True, check=True).stdout.split()[0]
        assert printed == file_sha
    assert out[1].split()[:2] == ["sha256", file_sha]
    shipped = B.read_bundle(SHIPPED_VOICE)
    assert out[2].split()[:3] == ["internal", "digest", shipped.sha256] and shipped.sha256 != file_sha
    rec = shipped.build           # the machine that built it, not this one
    assert rec["commit"] and len(rec["commit"]) == 40 and rec["cpu_features"]
    built_by = next(line for line in out if line.startswith("built by:"))
    assert f"lanthorn {rec['lanthorn']} (commit {rec['commit'][:12]}" in built_by
    for pkg in ("python", "numpy", "torch", "onnx", "onnxruntime"):
        assert rec[pkg] and f"{pkg} {rec[pkg]}" in built_by
    built_on = next(line for line in out if line.startswith("built on:"))
    assert rec["cpu"] in built_on and all(f in built_on.split() for f in rec["cpu_features"])
    assert "cpu-independent" in rec["torch_kernels"]


def test_a_written_bundle_records_this_process(tmp_path):
    b = tiny_bundle()
    B.write_bundle(b, tmp_path / "t.lanthorn")
    rec = B.read_bundle(tmp_path / "t.lanthorn").build
    pad = rec.pop("pad")   # the record has a fixed size: the file's does not depend on the CPU
    assert rec == json.loads(json.dumps(build_record())) and rec["lanthorn"] == __version__
    assert len(json.dumps(dict(rec, pad=pad), sort_keys=True, separators=(",", ":"))) == \
        B.BUILD_RECORD_BYTES
    short = tiny_bundle()
    short.build = {"cpu": "X"}
    assert len(short.to_bytes()) == len((tmp_path / "t.lanthorn").read_bytes())
    assert B.read_bundle(tmp_path / "t.lanthorn").file_sha256 == \
        hashlib.sha256((tmp_path / "t.lanthorn").read_bytes()).hexdigest()


def _with(build=None, card=None) -> bytes:
    b = tiny_bundle()
    b.build = dict(build_record(), **(build or {}))
    b.card.update(card or {})
    return b.to_bytes()


def test_reproducible_content_is_every_byte_but_the_build_record():
    base = _with()
    other_cpu = _with({"cpu": "Some Other CPU", "cpu_features": ["neon"], "commit": "0" * 40})
    assert other_cpu != base
    assert B.reproducible_content(other_cpu) == B.reproducible_content(base)
    assert B.content_sha256(other_cpu) == B.content_sha256(base)
    assert B.reproducible_content(_with(card={"name": "tinY"})) != B.reproducible_content(base)
    b = tiny_bundle()                    # one int8 weight: the data section is compared
    w = b.graph.layers[0].arrays["weight"].copy()
    w.flat[0] = 1 if w.flat[0] != 1 else 2
    b.graph.layers[0].arrays["weight"] = w
    b.build = build_record()
    assert B.reproducible_content(b.to_bytes()) != B.reproducible_content(base)
    with pytest.raises(B.BundleError):
        B.reproducible_content(base[:-1])


def test_make_model_keeps_a_committed_file_it_reproduces(tmp_path):
    committed, new = tmp_path / "m.lanthorn", tmp_path / "new.lanthorn"
    committed.write_bytes(_with({"cpu": "The CPU that built it"}))
    before = committed.read_bytes()
    new.write_bytes(before)
    assert B.keep_if_reproduced(new, committed) == "identical" and not new.exists()
    new.write_bytes(_with({"cpu": "This CPU"}))
    assert B.keep_if_reproduced(new, committed) == "reproduced" and not new.exists()
    assert committed.read_bytes() == before
    new.write_bytes(_with({"cpu": "This CPU"}, card={"name": "changed"}))
    fresh = new.read_bytes()
    assert B.keep_if_reproduced(new, committed) == "written" and committed.read_bytes() == fresh
    committed.write_bytes(b"not a bundle")
    new.write_bytes(fresh)
    assert B.keep_if_reproduced(new, committed) == "written" and committed.read_bytes() == fresh


def test_version_names_the_commit_from_a_clone():
    r = subprocess.run([sys.executable, "-m", "lanthorn", "--version"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(f"lanthorn {__version__}")
    if (ROOT / ".git").exists():
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        assert f"(commit {head[:12]}" in r.stdout


def test_the_version_is_one_and_real():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__ != "0.1.0"
    pins = (ROOT / "constraints.txt").read_text().splitlines()
    assert "torch==2.13.0" in pins
    for pkg in ("numpy", "onnx", "onnxruntime", "pillow", "pyserial", "pytest"):
        assert any(p.lower().startswith(f"{pkg}==") for p in pins), pkg
    assert "$(PIN)" in (ROOT / "Makefile").read_text()
