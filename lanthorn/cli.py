"""The ``lanthorn`` command: a table of subcommands, each a thin module in ``lanthorn.commands``.

Each command module provides ``add_arguments(parser)`` and ``run(args) -> int``, plus a
one-line module docstring used as its help summary. Modules are imported only when their
command runs, so ``lanthorn selftest`` on a Raspberry Pi never imports onnx or torch.

Errors a person can fix (:class:`lanthorn.errors.UserError`, missing files, bad
permissions) are printed as one line on stderr with a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from lanthorn import __version__
from lanthorn.errors import UserError, install_hint

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "selftest": ("lanthorn.commands.selftest", "check every part of the object and print a table"),
    "companion": ("lanthorn.commands.companion", "check a microcontroller companion on a serial port: version, pads, LEDs, link"),
    "params": ("lanthorn.commands.params", "list the piece's parameters (--markdown for the docs)"),
    "import": ("lanthorn.commands.import_qdq", "convert an onnxruntime-quantized QDQ ONNX model into a .lanthorn bundle"),
    "provision": ("lanthorn.commands.provision", "install the artist's public signing key on this object (trusted while locked)"),
    "inspect": ("lanthorn.commands.inspect", "show a bundle's model card, layers, MACs, input spec and provenance"),
    "export-c": ("lanthorn.commands.export_c", "write a bundle as C for a microcontroller: weights in flash, static arena, test vectors"),
    "run": ("lanthorn.commands.run", "run the piece: device loop, behaviour and (with --serial) the console"),
    "install-service": ("lanthorn.commands.service", "write the systemd unit that runs the piece at power-up (watchdog, no network)"),
    "demo": ("lanthorn.commands.demo", "run the simulated artwork and write a GIF"),
    "console": ("lanthorn.commands.console", "talk to a running object over serial: completion, history, live watch plots"),
    "push": ("lanthorn.commands.push", "send a .lanthorn model to a running object over serial and swap it in (old one kept)"),
    "record": ("lanthorn.commands.record", "record a demonstrated gesture from a running object into a dataset"),
    "torture": ("lanthorn.commands.torture", "fault-injection campaigns against a running piece (console fuzz, pushes, power cuts, storage, sensors, soak, lock) with figures"),
    "archive": ("lanthorn.commands.archive", "write one BagIt bag of the piece (source, wheelhouse, models read back, data, state, behaviour) to restore it with no network; verify, restore"),
    "fetch": ("lanthorn.commands.fetch", "pull the takes recorded on an object (console 'record') into a dataset"),
    "bench": ("lanthorn.commands.bench", "int8 engine latency vs onnxruntime (float, QDQ), exactness and device memory, in one run"),
    "data": ("lanthorn.commands.data", "curate training data: synthesise, import CSV, declare sources, show balance and provenance"),
    "train": ("lanthorn.commands.train", "train the temperament model on a dataset and export float ONNX + checkpoint"),
    "key": ("lanthorn.commands.key", "make or show the Ed25519 key that signs your bundles (kept outside the repo)"),
    "voice": ("lanthorn.commands.voice", "the voice: curate text (add-source, import, info), train, quantize, taste"),
    "quantize": ("lanthorn.commands.quantize", "float ONNX → int8 .lanthorn bundle: calibrate, bias-correct, prune, report"),
    "studio": ("lanthorn.commands.studio", "a local web page to see, tune, teach and push the piece (127.0.0.1 only)"),
}


# Commands that run the device. The model is batch-1 and single-threaded; OpenBLAS (numpy's
# BLAS) would otherwise start one busy-waiting worker thread per core at import, which on a
# 4-core Pi takes CPU from the loop, the display and the serial console for nothing. The
# variables only take effect before numpy is first imported, hence here, before the command
# module is; setdefault keeps a value the person set on purpose.
DEVICE_COMMANDS = ("run", "demo", "torture")


def _single_threaded_numpy() -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanthorn",
        description="Firmware and tools for networkless art objects with a tiny int8 model.")
    parser.add_argument("--version", action="version", version=f"lanthorn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, summary) in COMMANDS.items():
        sub.add_parser(name, help=summary, add_help=False)
    return parser


def _command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    module_name, summary = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"lanthorn {name}", description=summary)
    module.add_arguments(parser)
    return parser, module


def version_line() -> str:
    """``lanthorn 0.3.0`` and, run from a clone, the commit beside it (and whether tracked
    files differ from it): the version alone does not say which code this is."""
    from lanthorn.device.engine.build_record import git_commit
    commit, dirty = git_commit()
    if not commit:
        return f"lanthorn {__version__}"
    return f"lanthorn {__version__} (commit {commit[:12]}{', with local changes' if dirty else ''})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        print(version_line())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.print_usage(sys.stderr)
        print(f"lanthorn: error: unknown command {name!r} (try 'lanthorn --help')", file=sys.stderr)
        return 2
    if name in DEVICE_COMMANDS:
        _single_threaded_numpy()
    else:   # before any command imports torch: training's kernels are fixed at its import
        from lanthorn.quantize import determinism
        determinism.apply()
    try:
        parser, module = _command_parser(name)
        args = parser.parse_args(rest)
        code = int(module.run(args) or 0)
        # Output shorter than the pipe buffer is still buffered here: flush it now, so a
        # reader that has gone (`| head -1`) is met below and not by the interpreter's exit.
        sys.stdout.flush()
        return code
    except UserError as exc:
        print(f"lanthorn {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"lanthorn {name}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lanthorn {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`lanthorn inspect X | head`): that is not an error. Point
        # stdout at /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("lanthorn"):
            raise  # our own module missing is a packaging bug, not a user mistake
        print(f"lanthorn {name}: error: this command needs the Python package {exc.name!r}; "
              f"{install_hint('host')}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
