"""`lanthorn archive OUT --port PORT` (or `--sim`): one BagIt bag a conservator can restore
with no network; `lanthorn archive verify BAG`; `lanthorn archive restore BAG DIR`.

The bag holds the source at the object's commit, the wheelhouse for its board, the models
and voice read back from it, the data they were trained from, its state read back over the
console and a record of its behaviour, with README.txt, the identity report. The work is in
``lanthorn.host.archive_*``; this module parses the options and prints.
"""
from __future__ import annotations

import sys
from pathlib import Path

from lanthorn.commands._options import add_baud
from lanthorn.errors import UserError


def add_arguments(parser) -> None:
    parser.add_argument("what", nargs="+", metavar="OUT | verify BAG | restore BAG DIR",
                        help="a new folder for the bag; or 'verify BAG'; or 'restore BAG DIR'")
    parser.add_argument("--port", help="serial port of the object, e.g. /dev/ttyACM0")
    parser.add_argument("--sim", action="store_true",
                        help="archive a simulated piece (lanthorn run --sim on a pty cable)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="with --sim: the simulated piece's data dir (default: a fresh one, "
                             "the shipped model and voice)")
    parser.add_argument("--pin", help="the exhibition lock's PIN: a locked object's model, "
                                      "voice, presets and saved settings are read with it "
                                      "(the lock stays on)")
    parser.add_argument("--with-host", action="store_true",
                        help="add the host wheelhouse (training and quantizing: torch, ~300 MB)")
    parser.add_argument("--wheelhouse-from", default="index", metavar="index|installed|DIR",
                        help="where the wheels come from: the package index (default), this "
                             "environment's installed packages repacked (no network; same "
                             "Python and machine as the object only), or a folder of wheels")
    parser.add_argument("--demo-seconds", type=float, default=20.0,
                        help="length of the behaviour record (default 20 s)")
    parser.add_argument("--rebuild-python", metavar="PYTHON",
                        help="restore: run the rebuild with this Python (one with torch) when "
                             "the bag has no host wheelhouse")
    parser.add_argument("--no-rebuild", action="store_true", help="restore: skip the rebuild")
    add_baud(parser)


def run(args) -> int:
    what = args.what
    if what[0] == "verify":
        return _verify(what)
    if what[0] == "restore":
        return _restore(what, args)
    if len(what) != 1:
        raise UserError("usage: lanthorn archive OUT --port PORT | verify BAG | restore BAG DIR")
    if bool(args.port) == bool(args.sim):
        raise UserError("say where the object is: --port PORT, or --sim for a simulated piece")
    if not args.demo_seconds > 0:
        raise UserError(f"--demo-seconds must be positive, got {args.demo_seconds:g}")
    from lanthorn.host.archive_session import archive_object
    manifest = archive_object(Path(what[0]), args, _say)
    wh = manifest["wheelhouse"]["device"]
    print(f"wrote {what[0]}: models {', '.join(manifest['models'])}; device wheelhouse "
          f"{len(wh['files'])} files, {wh['bytes'] / 1e6:.1f} MB; source "
          f"{manifest['source'].get('commit') or '-'}; read README.txt first")
    for note in manifest["notes"]:
        print(f"note: {note}")
    return 0


def _say(text: str) -> None:
    print(f"archive: {text}", file=sys.stderr, flush=True)


def _verify(what) -> int:
    if len(what) != 2:
        raise UserError("usage: lanthorn archive verify BAG")
    from lanthorn.host.archive_check import verify
    report = verify(Path(what[1]))
    print("\n".join(report["lines"]))
    return 0 if report["ok"] else 1


def _restore(what, args) -> int:
    if len(what) != 3:
        raise UserError("usage: lanthorn archive restore BAG DIR")
    from lanthorn.host.archive_restore import restore
    report = restore(Path(what[1]), Path(what[2]), rebuild=not args.no_rebuild,
                     rebuild_python=args.rebuild_python, say=_say)
    print("\n".join(report["lines"]))
    return 0 if report["ok"] else 1
