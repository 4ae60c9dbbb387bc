"""`lanthorn fetch PORT --data DIR`: pull the takes recorded on the object into a dataset.

``record`` on the serial console (typed at picocom, say) keeps each take on the device, in
its data dir's dataset; this copies every take the local dataset does not have yet, with the
provenance a person gives here (the device cannot know who demonstrated or their consent).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from lanthorn.commands._options import add_baud
from lanthorn.device.storage import dataset
from lanthorn.errors import UserError
from lanthorn.host.console_client import ConsoleClient


def add_arguments(parser) -> None:
    parser.add_argument("port", help="serial port of the object, e.g. /dev/ttyACM0")
    parser.add_argument("--data", required=True, help="dataset folder (created if missing)")
    parser.add_argument("--source", default="device-recordings",
                        help="source name for the fetched takes (default: device-recordings)")
    parser.add_argument("--author", default="", help="who demonstrated")
    parser.add_argument("--consent", default="", help='how consent was given, e.g. "verbal, 2026-11-23"')
    parser.add_argument("--licence", default="", help="licence of the recordings")
    add_baud(parser)


def run(args) -> int:
    dataset.check_name("source", args.source)
    got, skipped = 0, []
    with ConsoleClient(args.port, args.baud, holder="lanthorn fetch") as client:
        takes = client.call("recordings")["takes"]
        if not takes:
            print(f"no takes kept on the device at {args.port}")
            return 0
        have = set()
        if (Path(args.data) / dataset.MANIFEST).exists():
            header, _, _ = dataset.read_manifest(args.data)
            have = {k.split("/", 1)[1] for k in header["sessions"] if k.startswith(args.source + "/")}
        for take in takes:
            if take["session"] in have:
                skipped.append(take["session"])
                continue
            rows: list = []
            ans = client.request(f"recording get {take['session']}",
                                 on_event=lambda ev, rows=rows: rows.extend(ev.get("data", {}).get("rows", []))
                                 if ev.get("event") == "frames" else None)
            if not ans.get("ok"):
                raise UserError(f"device: {ans.get('error')}")
            meta = ans["data"]
            labels = [lab for lab, n in meta["labels"] for _ in range(n)]
            if not (Path(args.data) / dataset.MANIFEST).exists():
                dataset.create_dataset(args.data, meta["rate_hz"], meta["channels"])
            header, sources, _ = dataset.read_manifest(args.data)
            if list(header["channels"]) != meta["channels"]:
                raise UserError(f"{args.data} has channels {', '.join(header['channels'])} but "
                                f"the device recorded {', '.join(meta['channels'])}")
            missing = sorted(set(labels) - set(header["labels"]))
            if missing:
                raise UserError(f"{args.data} has no label {', '.join(missing)}; add it with "
                                f"'lanthorn data add-label {args.data} {missing[0]}'")
            if args.source not in sources:
                dataset.add_source(args.data, dataset.Source(
                    args.source, author=args.author, consent=args.consent, licence=args.licence,
                    date=time.strftime("%Y-%m-%d"), device=f"recorded on the object at {args.port}",
                    rate_hz=meta["rate_hz"]))
            try:
                path = dataset.write_recording(args.data, args.source, meta["session"], rows,
                                               labels, rate_hz=meta["rate_hz"])
            except dataset.DataError as exc:
                print(f"skipped {meta['session']}: {exc}", file=sys.stderr)
                continue
            got += 1
            print(f"fetched {meta['session']}: {len(rows)} frames -> {path}")
    print(f"fetched {got} take{'s' if got != 1 else ''} into {args.data}"
          + (f"; {len(skipped)} already there" if skipped else ""))
    if got and not args.consent:
        print("note: no consent recorded for these takes; add it with 'lanthorn data "
              f"add-source {args.data} {args.source} --consent ... --replace'", file=sys.stderr)
    return 0
