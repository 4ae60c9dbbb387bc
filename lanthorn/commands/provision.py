"""`lanthorn provision --trust KEY`: install the artist's public key on this object.

Run on the object itself (a shell needs physical access or its administrator): it writes
DATA/trusted_keys.json directly, whatever the exhibition lock says, because whoever can
run it can already replace every file. That is also the way back from a lost signing key
or a forgotten PIN (device/SIGNING.md). Over the cable, the console's ``trust add`` does
the same while the object is unlocked.
"""
from __future__ import annotations

from lanthorn.commands._options import add_data_dir


def add_arguments(parser) -> None:
    parser.add_argument("--trust", metavar="KEY",
                        help="public key to trust: ed25519:HEX as 'lanthorn key show' prints, "
                             "or a .pub file")
    parser.add_argument("--name", default="", help="a note saying whose key it is")
    parser.add_argument("--replace", action="store_true",
                        help="trust only this key from now on (recovery from a lost key)")
    parser.add_argument("--remove", metavar="KEY", help="stop trusting this key")
    add_data_dir(parser, "the object's data directory, as 'lanthorn run' chooses it")


def run(args) -> int:
    from lanthorn.device.engine import signing
    from lanthorn.device.storage.data_dir import data_dir_or_default
    from lanthorn.device.storage.storage import DataDir
    storage = DataDir(data_dir_or_default(args.data_dir))
    store = signing.TrustStore(storage.root)
    if args.remove:
        key = signing.read_public_key(args.remove)
        store.remove(key)
        print(f"no longer trusting {signing.short_id(key)}…")
    if args.trust:
        key = signing.read_public_key(args.trust)
        if args.replace:
            store.replace(key, args.name)
            print(f"trusting only {signing.short_id(key)}… now")
        else:
            added = store.add(key, args.name)
            print(f"{'trusting' if added else 'already trusted:'} {signing.short_id(key)}…")
    entries = store.entries()
    print(f"{store.path}: {len(entries)} trusted key(s)")
    for e in entries:
        print(f"  {e['key']}  {e['name']}".rstrip())
    return 0
