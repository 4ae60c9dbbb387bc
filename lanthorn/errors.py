"""The one exception type that means "a person can fix this".

Anything raised as :class:`UserError` reaches the command line as a single line on stderr
and exit code 2 (see :mod:`lanthorn.cli`); everything else is a bug and keeps its
traceback. Subclasses say which part of the system complained.
"""


class UserError(Exception):
    """A mistake in input, configuration or usage, with a message a person can act on."""

    exit_code = 2
