"""`lanthorn params`: print the parameter table (the same one the console and docs use)."""
from __future__ import annotations

from pathlib import Path

from lanthorn.device.piece.params import markdown, text_table


def add_arguments(parser) -> None:
    parser.add_argument("--markdown", action="store_true",
                        help="print the Markdown reference (as committed in device/PARAMETERS.md)")
    parser.add_argument("--out", metavar="FILE", help="write to FILE instead of printing")


def run(args) -> int:
    text = markdown() if args.markdown else text_table() + "\n"
    if args.out:
        from lanthorn.device.storage.atomic import atomic_write_text
        atomic_write_text(Path(args.out), text)
    else:
        print(text, end="")
    return 0
