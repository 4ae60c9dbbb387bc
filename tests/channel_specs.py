"""Build channel-part specs for tests the way a profile builds them (validated, defaults filled)."""
from __future__ import annotations

from lanthorn.hardware import profile as P


def spec(type_name: str, name: str = "part", **table):
    """The PartSpec a profile's ``[parts.<name>]`` table ``{type=type_name, **table}`` gives."""
    return P._parse_part("test.toml", name, {"type": type_name, **table}, 1)
