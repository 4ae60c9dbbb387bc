"""`lanthorn key new|show`: the artist's Ed25519 signing key (kept outside the repository).

``lanthorn quantize`` and ``lanthorn import`` sign with it by default; an object provisioned
with its public key (``lanthorn provision`` on the object, or the console's ``trust add``
while unlocked) then accepts pushes of those bundles while locked. Keep a backup of the
key file somewhere safe and offline; losing it is recoverable only with physical access to
each object (device/SIGNING.md).
"""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("new", "show"),
                        help="new: make a key; show: print the public key to provision")
    parser.add_argument("--key", metavar="PATH",
                        help="private key file (default: $LANTHORN_SIGNING_KEY or "
                             "~/.config/lanthorn/signing-key.pem)")
    parser.add_argument("--force", action="store_true", help="with new: replace an existing key")


def run(args) -> int:
    from lanthorn.device.engine import signing
    path = Path(args.key).expanduser() if args.key else signing.default_key_path()
    if args.action == "new":
        pub = signing.new_key(path, args.force)
        print(f"wrote {path} (private, mode 0600: back it up offline, never commit it)")
        print(f"public key {signing.key_text(pub)} (also in {path.with_suffix('.pub')})")
        print("install it on an object: 'lanthorn provision --trust KEY' there, or "
              "'trust add KEY' on its console while unlocked")
        return 0
    print(signing.key_text(signing.public_of(signing.load_key(path))))
    return 0
