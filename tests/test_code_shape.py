"""The shape the redesign (issue 13) promised, checked so it cannot quietly regrow.

Why a test: a god class or a second spelling of the int8 rounding creeps back one
reasonable-looking edit at a time; these checks fail on the edit that does it, naming the
file and line, so the fix is made while the change is small.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("device", "hardware", "host", "quantize", "lanthorn")
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 60


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py")
                  if "__pycache__" not in p.parts)


@functools.lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    """Each file parsed once for all the checks here (parsing is most of their time)."""
    return ast.parse(path.read_text(encoding="utf-8"))


def _oversized(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(_tree(path)):
        lines = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
        if isinstance(node, ast.ClassDef) and lines > MAX_CLASS_LINES:
            found.append(f"{path.relative_to(root)}:{node.lineno} class {node.name} is {lines} lines")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and lines > MAX_FUNCTION_LINES:
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}() is {lines} lines")
    return found


def test_the_loop_is_small():
    lines = len((ROOT / "device" / "piece" / "loop.py").read_text(encoding="utf-8").splitlines())
    assert lines < 300, f"device/piece/loop.py has {lines} lines; its parts belong in their own modules"


def test_no_god_classes_or_long_functions_in_the_runtime():
    found = [msg for p in _python_files("device") for msg in _oversized(p)]
    assert not found, "split these along a real seam:\n" + "\n".join(found)


def test_no_god_classes_or_long_functions_anywhere_in_the_package():
    """The same rule for the drivers, the artist's tools, the quantizer, the commands and
    the scripts: the runtime was split first, the rest followed (tests are exempt: a test
    reads top to bottom as one story)."""
    found = [msg for p in _python_files(*LAYERS, "scripts", "firmware") for msg in _oversized(p)]
    assert not found, "split these along a real seam:\n" + "\n".join(found)


def test_commands_live_beside_the_dispatcher():
    stray = [str(p.relative_to(ROOT)) for f in ("device", "hardware", "host", "quantize")
             for p in (ROOT / f).rglob("*_cmd.py")]
    assert not stray, f"command modules belong in lanthorn/commands/: {stray}"


def test_the_rounding_constant_is_spelled_once():
    pattern = re.compile(r"12582912|1\.5\s*\*\s*2\s*\*\*\s*23|0x4B400000", re.IGNORECASE)
    where = [f"{p.relative_to(ROOT)}:{i}" for p in _python_files(*LAYERS)
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line)]
    assert all(w.startswith("device/engine/int8.py:") for w in where), where
    assert where, "device/engine/int8.py must define the rounding constant"


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, nodes) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def _vocabulary_copies(path: Path, root: Path = ROOT) -> list[str]:
    """Code (not prose) in ``path`` that re-spells a fact of lanthorn/vocabulary.py."""
    tree = _tree(path)
    prose = _docstrings(tree)
    rel = path.relative_to(root)   # once per file: per node it made this the slowest test
    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Constant) and id(node) not in prose:
            if node.value == 115200 and not isinstance(node.value, bool):
                what = "the baud rate"
            elif isinstance(node.value, str) and node.value.rstrip("/") == "/var/lib/lanthorn":
                what = "the system data directory"
        elif isinstance(node, (ast.Tuple, ast.List)):
            words = [e.value for e in node.elts if isinstance(e, ast.Constant)][:3]
            what = _LISTS.get(tuple(words))
        if what:
            found.append(f"{rel}:{node.lineno} {what}")
    return found


_LISTS = {("calm", "curious", "delighted"): "the mood list",
          ("nobody", "approach", "tap"): "the label list",
          ("touch", "distance", "light"): "the role list"}


def test_the_vocabulary_is_spelled_once():
    """The baud rate, the data directory, the moods, labels and roles are code only in
    lanthorn/vocabulary.py (prose may mention them)."""
    found = [msg for p in _python_files(*LAYERS) if p.name != "vocabulary.py"
             for msg in _vocabulary_copies(p)]
    assert not found, "import these from lanthorn.vocabulary:\n" + "\n".join(found)


def test_the_vocabulary_check_catches_a_copy(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Runs at 115200 baud (prose is fine)."""\nBAUD = 115200\n'
                     'MOODS = ("calm", "curious", "delighted")\nDIR = "/var/lib/lanthorn"\n',
                     encoding="utf-8")
    assert _vocabulary_copies(probe, root=tmp_path) == [
        "probe.py:2 the baud rate", "probe.py:3 the mood list",
        "probe.py:4 the system data directory"]


def test_the_size_check_catches_what_it_is_for(tmp_path):
    """The checker itself can fail: a 61-line function and a 251-line class are reported."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long_class = "\n".join(f"    y{i} = {i}" for i in range(MAX_CLASS_LINES))
    probe = tmp_path / "probe.py"
    probe.write_text(f"def long():\n{body}\n\nclass Big:\n{long_class}\n", encoding="utf-8")
    found = _oversized(probe, root=tmp_path)
    assert found == ["probe.py:1 long() is 61 lines", "probe.py:63 class Big is 251 lines"], found
