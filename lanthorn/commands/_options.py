"""Options several commands share, declared once so their defaults and help cannot drift:
the serial line speed (:data:`lanthorn.vocabulary.BAUD`), the hardware profile (its help
lists the profiles that actually ship, from :func:`lanthorn.hardware.profile.shipped_profiles`)
the data directory (:mod:`lanthorn.device.storage.data_dir`) and signing a bundle that a command
writes (``quantize``, ``import``, ``voice quantize``)."""
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
    from lanthorn.device.storage.data_dir import DEFAULT_DATA_DIR_HELP
    parser.add_argument("--data-dir", metavar="DIR",
                        help=f"{what} (default: {DEFAULT_DATA_DIR_HELP})")


def gesture_list(text: str) -> list[str]:
    """``--sim-gestures wave,tap`` → ['wave', 'tap'] (an argparse type)."""
    return [g.strip() for g in text.split(",") if g.strip()]


def add_sim_gestures(parser, when: str = "", then: str = "") -> None:
    """--sim-gestures: the simulated visitor stays and performs only these gestures."""
    parser.add_argument("--sim-gestures", metavar="G,G", type=gesture_list, default=None,
                        help=f"{when}the visitor stays at the object and performs only these "
                             "gestures, over and over (e.g. 'wave', which the default piece "
                             f"does not know, taught to a model of your own{then})")


def add_provenance(parser, consent_example: str, made: str) -> None:
    """NAME and who made it, under what consent and licence, when: a declared source of a
    dataset or of the voice's corpus (the model card carries them)."""
    parser.add_argument("name", help="source name (letters, digits, . _ -)")
    parser.add_argument("--author", default="")
    parser.add_argument("--consent", default="",
                        help=f'how consent was given, e.g. "{consent_example}"')
    parser.add_argument("--licence", "--license", dest="licence", default="",
                        help="e.g. CC0-1.0, CC-BY-4.0, public-domain")
    parser.add_argument("--date", default="", help=f"when it was {made} (default today)")
    parser.add_argument("--notes", default="")


def add_signing_arguments(parser) -> None:
    """--sign-key / --no-sign, shared by quantize and import."""
    parser.add_argument("--sign-key", metavar="PATH",
                        help="Ed25519 key to sign the bundle with (default: the key 'lanthorn "
                             "key new' made, if there is one; a locked object installs only "
                             "signed bundles)")
    parser.add_argument("--no-sign", action="store_true", help="write the bundle unsigned")


def signing_key(args):
    """The key to sign with (loaded before any long work, so a bad key fails fast)."""
    from lanthorn.device.engine.signing import signing_key_for
    return signing_key_for(args.sign_key, args.no_sign)


def signed_note(bundle) -> str:
    from lanthorn.device.engine.signing import short_id
    return f", signed by {short_id(bundle.signature[0])}…" if bundle.signature else ", unsigned"
