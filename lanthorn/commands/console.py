"""`lanthorn console PORT`: talk to a running object (completion, history, live watch plots).

The terminal side (rendering, completion, watch panels, the prompt loop) is
:mod:`lanthorn.host.console_repl`; the serial side is :mod:`lanthorn.host.console_client`.
"""
from __future__ import annotations

from lanthorn.commands._options import add_baud
from lanthorn.errors import UserError


def add_arguments(parser) -> None:
    parser.add_argument("port", nargs="?",
                        help="serial port of the object, e.g. /dev/ttyACM0 or /dev/ttyUSB0")
    add_baud(parser)
    parser.add_argument("-c", "--command", action="append", metavar="LINE",
                        help="run this console line and exit (repeatable); e.g. -c 'get brightness'")
    parser.add_argument("--seconds", type=float, default=None,
                        help="with -c 'watch ...': stop watching after this many seconds")
    parser.add_argument("--markdown", action="store_true",
                        help="print the command reference as Markdown (device/CONSOLE.md) and exit")


def run(args) -> int:
    if args.markdown:
        from lanthorn.device.console.console_wire import markdown
        print(markdown(), end="")
        return 0
    if not args.port:
        raise UserError("give the serial PORT of the object (e.g. /dev/ttyACM0), or --markdown")
    from lanthorn.host import console_repl
    from lanthorn.host.console_client import ConsoleClient
    with ConsoleClient(args.port, args.baud, holder="lanthorn console") as client:
        for note in client.notices:
            print(f"NOTE {note}")
        commands = client.commands()
        if args.command:
            return 0 if console_repl.run_lines(client, args.command, commands, args.seconds) else 1
        console_repl.repl(client, commands, args.port)
    return 0
