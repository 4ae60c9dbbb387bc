"""Show what is inside a .lanthorn bundle: card, input spec, labels, layers, provenance.

The figures come from :func:`lanthorn.device.engine.describe.describe`; this prints them.
"""
from __future__ import annotations

import json


def add_arguments(parser):
    parser.add_argument("bundle", help="a .lanthorn file")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args) -> int:
    from lanthorn.device.engine.build_record import describe as build_lines
    from lanthorn.device.engine.bundle import read_bundle
    from lanthorn.device.engine.describe import describe
    d = describe(read_bundle(args.bundle))
    if args.json:
        print(json.dumps(d, indent=2, sort_keys=True))
        return 0
    card = d["card"]
    print(f"{args.bundle}")
    print(f"sha256    {d['file_sha256']}  (the file's, as sha256sum prints it)")
    print(f"internal digest {d['internal_digest']}  (in the bundle's prefix: signed, checked on push)")
    for line in build_lines(d["build"]):
        print(line)
    print(f"model     {card.get('name', '?')}" + (f" — {card['description']}" if card.get("description") else ""))
    for k, v in card.items():
        if k not in ("name", "description", "quality"):
            print(f"  {k}: {_readable(v)}")
    if card.get("quality"):
        from lanthorn.quantize.quality import card_lines
        print("quality")
        for line in card_lines(card):
            print(f"  {line}")
    spec = d["input_spec"]
    extra = []
    if spec["channels"]:
        extra.append(f"channels {', '.join(spec['channels'])}")
    if spec["rate_hz"]:
        extra.append(f"{spec['rate_hz']:g} Hz")
    if spec["window"]:
        extra.append(f"window {spec['window']}")
    print(f"input     {tuple(spec['shape'])} {spec['dtype']}" + (f"; {'; '.join(extra)}" if extra else ""))
    print(f"labels    {', '.join(d['labels']) if d['labels'] else '(none)'}")
    sig = d["signature"]
    print("signature " + ("none (unsigned)" if sig is None else f"{sig['key']} " + {
        True: "(valid)", False: "(INVALID: edited after signing)",
        None: "(not checked: needs the 'cryptography' package)"}[sig["valid"]]))
    print(f"size      {d['macs']:,} MACs, {d['param_bytes']:,} parameter bytes, "
          f"ONNX twin {d['twin_bytes']:,} bytes")
    print(f"{'layer':<28} {'op':<15} {'output':<16} {'MACs':>10} {'bytes':>9}")
    for x in d["layers"]:
        print(f"{x['name'][:28]:<28} {x['op']:<15} {str(tuple(x['output'])):<16} "
              f"{x['macs']:>10,} {x['param_bytes']:>9,}")
    if d["provenance"]:
        print("provenance")
        for k, v in d["provenance"].items():
            print(f"  {k}: {_readable(v)}")
    return 0


def _readable(v) -> str:
    """A card value as a person reads it: mappings as ``k=v; ...``, lists one item after
    another (a source: its name, author, consent, share), never a Python repr."""
    if isinstance(v, dict):
        return "; ".join(f"{k}={_readable(x)}" for k, x in v.items())
    if isinstance(v, list):
        if v and all(isinstance(x, dict) and "source" in x for x in v):
            return "".join(f"\n    {x['source']}: {x.get('author') or '?'}; consent "
                           f"{x.get('consent') or 'NONE'}; licence {x.get('licence') or '?'}"
                           + (f"; {100 * x['share']:.1f}% of the windows" if 'share' in x else "")
                           for x in v)
        return ", ".join(_readable(x) for x in v)
    return str(v)
