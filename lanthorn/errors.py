"""The one exception type that means "a person can fix this".

Anything raised as :class:`UserError` reaches the command line as a single line on stderr
and exit code 2 (see :mod:`lanthorn.cli`); everything else is a bug and keeps its
traceback. Subclasses say which part of the system complained.
"""


class UserError(Exception):
    """A mistake in input, configuration or usage, with a message a person can act on."""

    exit_code = 2


def install_hint(extra: str) -> str:
    """How to add an extra's packages, said one way everywhere.

    lanthorn is not on a package index: a bare ``pip install 'lanthorn[pi4]'`` finds nothing
    there, so the hint names what a maker actually has, a clone or the sdist. ``extra="board"``
    is for parts every board uses (I2C, the OLED): the maker picks their board's extra."""
    if extra == "board":
        return ("reinstall lanthorn with your board's extra ([pi4], [pi5] or [jetson]) in its venv: "
                "pip install '/path/to/lanthorn[pi5]' (a clone or the sdist; README, Installing by role)")
    return (f"reinstall lanthorn with the [{extra}] extra in its venv: "
            f"pip install '/path/to/lanthorn[{extra}]' (a clone or the sdist; README, Installing by role)")
