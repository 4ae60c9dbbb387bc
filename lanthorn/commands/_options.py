"""Options several commands share, declared once so their defaults and help cannot drift:
the serial line speed (:data:`lanthorn.vocabulary.BAUD`), the hardware profile (its help
lists the profiles that actually ship, from :func:`lanthorn.hardware.profile.shipped_profiles`)
and the data directory (:mod:`lanthorn.device.data_dir`)."""
from __future__ import annotations

from lanthorn.vocabulary import BAUD


def add_baud(parser, what: str = "baud rate") -> None:
    parser.add_argument("--baud", type=int, default=BAUD, help=f"{what} (default {BAUD})")


def add_profile(parser, default: str = "the detected board's") -> None:
    from lanthorn.hardware.profile import shipped_profiles
    names = ", ".join(shipped_profiles())
    parser.add_argument("--profile", metavar="FILE",
                        help=f"hardware profile (.toml path or a shipped name: {names}); "
                             f"default: {default}")


def add_data_dir(parser, what: str = "models, settings, presets and recordings") -> None:
    from lanthorn.device.data_dir import DEFAULT_DATA_DIR_HELP
    parser.add_argument("--data-dir", metavar="DIR",
                        help=f"{what} (default: {DEFAULT_DATA_DIR_HELP})")
