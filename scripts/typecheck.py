#!/usr/bin/env python3
"""Type-check lanthorn's layers with mypy (``make test`` and ``make lint`` run it).

Why a script: the layers are folders at the top of the repository (device/, hardware/, ...)
installed as subpackages of ``lanthorn`` by setup.py's package_dir, and mypy cannot follow
setuptools' editable-install finder. So this lays out the package as it is imported — a tree
of symbolic links under ``build/typecheck/lanthorn`` — and runs mypy there with the settings
in pyproject.toml ([tool.mypy]). Arguments are the packages to check (default: the ones
pyproject names); nothing is copied, so line numbers and paths in the report are the real ones.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"device": "device", "hardware": "hardware", "host": "host", "quantize": "quantize"}
DEFAULT = ("lanthorn.device", "lanthorn.hardware")


def shadow_tree() -> Path:
    """build/typecheck/lanthorn: lanthorn/'s files plus one link per layer folder."""
    top = ROOT / "build" / "typecheck"
    pkg = top / "lanthorn"
    pkg.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in (ROOT / "lanthorn").iterdir() if p.name != "__pycache__"}
    wanted.update({name: ROOT / folder for name, folder in LAYERS.items()})
    for old in pkg.iterdir():   # a module removed from lanthorn/ leaves a dangling link
        if old.is_symlink() and old.name not in wanted:
            old.unlink()
    for name, target in wanted.items():
        link = pkg / name
        if not link.is_symlink():
            link.symlink_to(target)
    return top


def main(argv: list[str]) -> int:
    packages = argv or list(DEFAULT)
    top = shadow_tree()
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    for p in packages:
        cmd += ["-p", p]
    env = dict(os.environ, MYPYPATH=str(top))
    return subprocess.call(cmd, cwd=top, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
