"""`lanthorn studio [--port DEV | --sim] [--data DIR] [--voice DIR]`: the artist's web page on this laptop.

Starts a local web server on 127.0.0.1 (never another address: the object stays
networkless and so does its studio), prints the page's address with its per-session token
and opens it in the browser. The studio talks to the object over the serial cable with the
same protocol as ``lanthorn console`` (with ``--sim``, to the simulated piece, started as
``lanthorn run --sim --serial`` on a pseudo-terminal).
"""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from lanthorn.commands._options import add_baud
from lanthorn.errors import UserError, install_hint


def add_arguments(parser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", help="serial port of the object, e.g. /dev/ttyACM0")
    where.add_argument("--sim", action="store_true",
                       help="no object at hand: start the simulated piece and talk to it")
    add_baud(parser)
    parser.add_argument("--data", default="lanthorn-data",
                        help="dataset folder the takes go into (default ./lanthorn-data; "
                             "created by the first take)")
    parser.add_argument("--voice", help="voice corpus folder for the Voice view (default: "
                                        "a voice/ folder beside --data, if there is one)")
    parser.add_argument("--models", help="where trained models and reports go "
                                         "(default: DATA/models)")
    parser.add_argument("--http-port", type=int, default=0,
                        help="port of the page on 127.0.0.1 (default: any free one)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: chosen from the dataset's size, as "
                             "'lanthorn train' does)")
    parser.add_argument("--no-browser", action="store_true",
                        help="only print the address; do not open a browser")
    parser.add_argument("--sim-data-dir", help="with --sim: the simulated object's own data "
                                               "directory (default: a fresh temporary one)")
    parser.add_argument("--profile", help="with --sim: the body to simulate (a shipped profile "
                                          "like bowl-sim, or a .toml); its own channels are "
                                          "plotted (default: the lantern)")


def run(args) -> int:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise UserError("the studio needs the Python package 'aiohttp': "
                        + install_hint("studio")) from None
    if not args.port and not args.sim:
        raise UserError("give the object's serial port (--port /dev/ttyACM0) or --sim")
    if args.profile and not args.sim:
        raise UserError("--profile is for --sim (a real object runs its own profile)")
    if args.profile:
        from lanthorn.hardware.profile import load_profile
        load_profile(args.profile)   # a mistake in it is said here, not in the sim's log
    if not 0 <= args.http_port < 65536:
        raise UserError(f"--http-port must be 0-65535, got {args.http_port}")
    return asyncio.run(_serve(args))


def voice_folder(given: str | None, data: Path) -> Path | None:
    """--voice, or a ``voice/`` folder beside the data folder if one exists, or none."""
    if given:
        return Path(given)
    beside = data.resolve().parent / "voice"
    return beside if beside.is_dir() else None


def _say(text: str) -> None:
    print(f"lanthorn studio: {text}", file=sys.stderr, flush=True)


async def _serve(args) -> int:
    from aiohttp import web

    from lanthorn.host.studio.link import DeviceLink
    from lanthorn.host.studio.server import Studio, make_app, new_token

    sim = None
    if args.sim:
        from lanthorn.host.studio.sim import SimPiece
        sim = SimPiece(args.sim_data_dir, log=_say, profile=args.profile).start()
        port, describe = sim.port, "the simulated piece"
    else:
        port, describe = args.port, args.port
    data = Path(args.data)
    models = Path(args.models) if args.models else data / "models"
    studio = Studio(None, data, models, new_token(), train_epochs=args.epochs,
                    voice=voice_folder(args.voice, data))
    studio.link = DeviceLink(port, args.baud, on_event=studio.emit, describe=describe)
    runner = web.AppRunner(make_app(studio), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", args.http_port)
        try:
            await site.start()
        except OSError as exc:
            raise UserError(f"cannot listen on 127.0.0.1:{args.http_port}: {exc.strerror}") from None
        studio.link.start()
        http_port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{http_port}/?token={studio.token}"
        print(url, flush=True)  # stdout: the address alone, for scripts and tests
        _say(f"serving {describe} at the address above (this computer only); Ctrl-C ends")
        if not args.no_browser:
            import webbrowser
            webbrowser.open(url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        _say("stopping")
    finally:
        await runner.cleanup()
        if studio.link is not None:
            await asyncio.get_running_loop().run_in_executor(None, studio.link.stop)
        if sim is not None:
            sim.stop()
    return 0
