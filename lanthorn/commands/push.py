"""`lanthorn push BUNDLE --port PORT`: send a model to a running object and swap it in.

A voice bundle (card ``"kind": "voice"``) goes the same way and lands in the object's
voice slot; ``model info`` then reports it under ``voice`` and 'model rollback voice'
undoes it."""
from __future__ import annotations

import sys

from lanthorn.commands._options import add_baud
from lanthorn.device.console import push_wire as pp
from lanthorn.host.console_client import ConsoleClient, ConsoleError, read_bundle_file


def add_arguments(parser) -> None:
    parser.add_argument("bundle", help="the .lanthorn bundle to install")
    parser.add_argument("--port", required=True, help="serial port of the object, e.g. /dev/ttyACM0")
    add_baud(parser)
    parser.add_argument("--chunk", type=int, default=pp.DEFAULT_CHUNK,
                        help=f"bytes per frame, {pp.MIN_CHUNK}-{pp.MAX_CHUNK} (default {pp.DEFAULT_CHUNK})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--force", action="store_true",
                        help="install even when the model card records failed quality gates "
                             "(near chance, int8 drop, missing classes)")


def run(args) -> int:
    data, bundle_sha = read_bundle_file(args.bundle)  # a wrong file is refused before the cable is busy
    voice = _is_voice(data)
    if not pp.MIN_CHUNK <= args.chunk <= pp.MAX_CHUNK:
        raise ConsoleError(f"--chunk must be between {pp.MIN_CHUNK} and {pp.MAX_CHUNK}")
    from tqdm import tqdm
    # what the artist is about to install, in plain words, before it is sent: a failed gate
    # at once (no object needed to refuse it), else once the port is open, so that no
    # object there is one line, not a line after the figures
    failed = _show_quality(args, first=True)
    with ConsoleClient(args.port, args.baud, holder="lanthorn push") as client:
        if not failed:
            _show_quality(args)
        before = client.call("model info")
        if voice:
            before = before.get("voice") or {}
        bar = tqdm(total=len(data), unit="B", unit_scale=True, desc="push",
                   disable=args.quiet or None, file=sys.stderr, leave=True)

        def progress(done):
            bar.update(done - bar.n)

        try:
            result = client.push(data, args.chunk, progress)
        finally:
            bar.close()
        after = client.call("model info")  # what the object now really runs
        if voice:
            after = after.get("voice") or {}
    if after.get("sha256") != bundle_sha:
        raise ConsoleError("the device accepted the push but 'model info' reports "
                           f"{after.get('name')} ({str(after.get('sha256'))[:12]}); check 'status'")
    sent = len(data) - result["resumed_from"]
    secs = max(result["seconds"], 1e-9)
    line_rate = args.baud / 10.0  # 8N1: 10 bits on the wire per byte
    undo = "'model rollback voice'" if voice else "'model rollback'"
    if before.get("name") is None:
        was = "before: no voice, phrase banks" if voice else "before: no model, idle animation"
    elif before.get("source") == "shipped":
        was = f"was the shipped {before.get('name')}; {undo} returns to it"
    else:
        was = f"was {before.get('name')}, kept as previous for {undo}"
    print(f"installed {'voice ' if voice else ''}{after.get('name')} sha256={bundle_sha[:16]}... ({was})")
    print(f"sent {sent} bytes in {secs:.2f} s = {sent / secs / 1024:.1f} KiB/s"
          + (f", resumed at byte {result['resumed_from']}" if result["resumed_from"] else "")
          + f"; payload/wire {sent / max(result['wire_bytes'], 1):.1%}, "
          f"{result['resent_frames']} frames resent; on a real {args.baud} baud line this "
          f"push needs at least {result['wire_bytes'] / line_rate:.1f} s")
    return 0


def _show_quality(args, first: bool = False) -> bool:
    """The card's quality figures in plain words; a failed gate stops here (--force).
    ``first``: only when a gate failed (returns whether one did)."""
    from lanthorn.device.engine.bundle import read_bundle
    from lanthorn.quantize import quality
    card = read_bundle(args.bundle).card
    gates = (card.get("quality") or {}).get("gates") or []
    gates += ((card.get("quality") or {}).get("training") or {}).get("gates") or []
    failed = bool(quality.failures(gates))
    if first and not failed:
        return False
    for line in quality.card_lines(card):
        print(f"quality: {line}")
    quality.enforce(gates, args.force, what=f"{args.bundle} failed its quality gates: ")
    return failed


def _is_voice(data: bytes) -> bool:
    from lanthorn.device.engine.bundle import Bundle
    from lanthorn.device.piece.voice import is_voice
    return is_voice(Bundle.from_bytes(data))
