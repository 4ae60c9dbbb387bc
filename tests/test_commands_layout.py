"""The commands live in one package beside the dispatcher, thin, and the runtime never needs them.

Issue 13: every ``lanthorn`` subcommand is a module in ``lanthorn/commands/`` that parses
arguments, calls library code in the layer that owns the work, and prints. These checks read
the tree and fail on a ``*_cmd.py`` back in a layer, a COMMANDS entry outside the package, a
library module importing a command, or a command module grown fat again.
"""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from lanthorn.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
COMMANDS_DIR = ROOT / "lanthorn" / "commands"
LAYERS = ("device", "hardware", "host", "quantize")
#: a command module is argument declarations, calls and printing: this is a budget, not a
#: goal (the largest today is `data`, most of it the help text of its import format)
MAX_MODULE_LINES = 250
MAX_FUNCTION_LINES = 60


def _functions(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_command_module_left_in_a_layer():
    left = sorted(str(p.relative_to(ROOT)) for layer in LAYERS
                  for p in (ROOT / layer).rglob("*_cmd.py"))
    assert not left, f"commands belong in lanthorn/commands/: {left}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_a_module_of_the_commands_package(name):
    module_name, summary = COMMANDS[name]
    assert module_name.startswith("lanthorn.commands."), (name, module_name)
    module = importlib.import_module(module_name)
    assert Path(module.__file__).parent == COMMANDS_DIR
    assert callable(module.add_arguments) and callable(module.run), name
    assert module.__doc__ and summary


def test_every_commands_module_is_a_command():
    """No orphan: each module in the package is in COMMANDS, or is a shared helper (_name)."""
    listed = {m.rsplit(".", 1)[1] for m, _ in COMMANDS.values()}
    present = {p.stem for p in COMMANDS_DIR.glob("*.py") if p.stem != "__init__"}
    orphans = sorted(p for p in present - listed if not p.startswith("_"))
    assert not orphans, f"modules in lanthorn/commands/ that no command runs: {orphans}"


def test_command_modules_are_thin():
    fat = []
    for path in sorted(COMMANDS_DIR.glob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            fat.append(f"{path.name}: {lines} lines")
        fat += [f"{path.name}:{name}(): {n} lines" for name, n in _functions(path)
                if n > MAX_FUNCTION_LINES]
    assert not fat, ("a command parses, calls library code and prints; move the logic into "
                     f"its layer: {fat}")


def test_libraries_never_import_a_command():
    """The layers are libraries: a command may import any of them, never the reverse."""
    pattern = re.compile(r"^\s*(from\s+lanthorn\.commands|from\s+lanthorn\s+import\s+commands"
                         r"|import\s+lanthorn\.commands)", re.M)
    bad = sorted(str(p.relative_to(ROOT)) for layer in LAYERS for p in (ROOT / layer).rglob("*.py")
                 if pattern.search(p.read_text()))
    assert not bad, f"library modules importing lanthorn.commands: {bad}"


def _defaults(name: str) -> dict:
    from lanthorn.cli import _command_parser
    parser, _ = _command_parser(name)
    return {a.dest: a for a in parser._actions}


@pytest.mark.parametrize("name", ["run", "selftest"])
def test_profile_help_lists_every_shipped_profile(name):
    """The help is built from the profiles folder, so a new board (pi5-companion) shows."""
    from lanthorn.hardware.profile import shipped_profiles
    text = _defaults(name)["profile"].help
    assert shipped_profiles() and "pi5-companion" in shipped_profiles()
    assert all(p in text for p in shipped_profiles()), text


@pytest.mark.parametrize("name", ["run", "console", "push", "record", "fetch", "studio",
                                  "companion"])
def test_serial_commands_default_to_the_one_baud(name):
    from lanthorn.vocabulary import BAUD
    action = _defaults(name)["baud"]
    assert action.default == BAUD and str(BAUD) in action.help


def test_no_literal_baud_or_data_dir_in_commands():
    """115200 and /var/lib/lanthorn are spelled once, in lanthorn/vocabulary.py."""
    spelled = [f"{p.name}: {fact}" for p in COMMANDS_DIR.glob("*.py")
               for fact in ("115200", "/var/lib/lanthorn") if fact in p.read_text()]
    assert not spelled, spelled
