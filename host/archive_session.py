"""One archiving run: reach the object (a serial port, or a simulated piece started on a pty
cable, as ``lanthorn studio --sim`` does), read it back, write the bag."""
from __future__ import annotations

import time
from pathlib import Path

from lanthorn.host import archive_bag as ab


def _client(port: str, baud: int, wait_s: float):
    """A console client on ``port``, retried while a just-started piece comes up."""
    from lanthorn.host.console_client import ConsoleClient, ConsoleError, PortBusy
    end = time.monotonic() + wait_s
    while True:
        try:
            return ConsoleClient(port, baud, timeout=10.0, holder="lanthorn archive")
        except PortBusy:
            raise
        except ConsoleError:
            if time.monotonic() > end:
                raise
            time.sleep(0.5)


def archive_object(out: Path, args, say) -> dict:
    from lanthorn.host.archive_make import make_archive
    from lanthorn.host.archive_read import read_state
    sim = None
    if args.sim:
        from lanthorn.host.studio.sim import SimPiece
        sim = SimPiece(args.data_dir).start()
        port, origin, wait = sim.port, "a simulated piece (lanthorn run --sim)", 30.0
    else:
        port, origin, wait = args.port, f"the object on serial port {args.port}", 0.0
    try:
        say(f"reading the object back over {port}")
        with _client(port, args.baud, wait) as client:
            obj = read_state(client, args.pin)
    finally:
        if sim is not None:
            sim.stop()
    say(f"read back {len(obj.bundles)} bundle(s), {len(obj.state.get('presets') or {})} preset(s)")
    opts = ab.BagOptions(origin=origin, wheelhouse_from=args.wheelhouse_from,
                         with_host=args.with_host, demo_seconds=args.demo_seconds,
                         root=ab.source_root())
    return make_archive(out, obj, opts, say)
