"""Where the object keeps its state when nobody says: the one rule ``run``, ``provision``
and anything else that opens a :class:`lanthorn.device.storage.storage.DataDir` follows.

An installed object (systemd's ``StateDirectory=lanthorn``) uses
:data:`lanthorn.vocabulary.SYSTEM_DATA_DIR`; trying the piece out on a laptop, where that
folder does not exist or is not writable, falls back to the user's XDG data folder, so the
same command works in both places without a flag. ``$LANTHORN_DATA_DIR`` overrides both
(tests, a second piece on one machine).
"""
from __future__ import annotations

import os
from pathlib import Path

from lanthorn.vocabulary import SYSTEM_DATA_DIR, USER_DATA_SUBDIR

#: the help text commands show for their ``--data-dir`` default
DEFAULT_DATA_DIR_HELP = (f"$LANTHORN_DATA_DIR, {SYSTEM_DATA_DIR}, "
                         f"or ~/.local/share/{USER_DATA_SUBDIR}")


def default_data_dir() -> Path:
    """$LANTHORN_DATA_DIR, else the system data directory when it is usable (the installed
    service), else ~/.local/share/lanthorn (trying things out on a laptop)."""
    env = os.environ.get("LANTHORN_DATA_DIR")
    if env:
        return Path(env)
    if SYSTEM_DATA_DIR.is_dir() and os.access(SYSTEM_DATA_DIR, os.W_OK):
        return SYSTEM_DATA_DIR
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / USER_DATA_SUBDIR


def data_dir_or_default(given: str | os.PathLike | None) -> Path:
    """The folder a person named with ``--data-dir``, else :func:`default_data_dir`."""
    return Path(given) if given else default_data_dir()
