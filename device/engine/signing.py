"""Signed bundles and the object's trusted keys: who may change the model of a locked object.

The SHA-256 inside a bundle only detects damage: anyone can edit a bundle and recompute it.
A signature says who made it. The artist's laptop holds an Ed25519 private key (``lanthorn
key new``; kept outside the repository, by default in ``~/.config/lanthorn``), ``lanthorn
quantize`` and ``lanthorn import`` sign what they write, and the object keeps the public
keys it trusts in ``DATA/trusted_keys.json`` (``lanthorn provision`` on the object, or the
console's ``trust add`` while unlocked). A locked object installs a pushed bundle only if it
is signed by one of those keys (see :meth:`lanthorn.device.console.console_push.Push.finish`);
unlocked, signatures are shown but not required, so a studio workflow needs no keys at all.

Signature layout: the bundle's bytes (unchanged, checksum included) followed by a
104-byte trailer ``b"LKSIG\\0\\1\\0" | public key (32) | signature (64)``. The signature is
Ed25519 over ``DOMAIN + sha256`` (the bundle's own digest, which covers every other
byte), so the trailer is never part of what it signs and a bundle is signed in one pass.

Implementation: the ``cryptography`` package (OpenSSL's Ed25519), imported lazily. It is a
dependency of the host extra and of every board extra (pi4, pi5, jetson): a well-kept
implementation beats a hand-written one for a security check, and it ships wheels for
aarch64. Without it a locked object refuses every push (fail closed) and says what to
install; nothing else on the device needs it.
"""
from __future__ import annotations

import json
import os
import re
import struct
import time
from pathlib import Path

from lanthorn.device.storage.atomic import atomic_write_bytes, atomic_write_text
from lanthorn.errors import UserError, install_hint

TRAILER_MAGIC = b"LKSIG\x00\x01\x00"
TRAILER = struct.Struct("<8s32s64s")          # 104 bytes after the bundle
DOMAIN = b"lanthorn bundle signature v1\x00"
KEY_PREFIX = "ed25519:"
TRUST_FILE = "trusted_keys.json"
MAX_TRUSTED = 32
_KEY_TEXT = re.compile(r"^ed25519:([0-9a-f]{64})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")


class SignatureError(UserError):
    """A bundle a locked object must not install (unsigned, foreign key, bad signature)."""


class KeyError_(UserError):
    """A key file or key text that cannot be used."""


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise UserError("checking or making signatures needs the Python package "
                        f"'cryptography': {install_hint('board')}, or the [host] extra on a "
                        "laptop") from None
    return ed25519, serialization, InvalidSignature


def key_text(public: bytes) -> str:
    """The printable form of a public key: ``ed25519:`` and 64 hex digits."""
    return KEY_PREFIX + public.hex()


def short_id(public: bytes) -> str:
    return KEY_PREFIX + public.hex()[:16]


def parse_public_key(text: str) -> bytes:
    """32 raw bytes from ``ed25519:HEX`` (or the contents of a ``.pub`` file)."""
    m = _KEY_TEXT.match(str(text).strip().lower())
    if not m:
        raise KeyError_(f"not a lanthorn public key: {str(text).strip()[:40]!r} (expected "
                        f"'ed25519:' and 64 hex digits, as 'lanthorn key show' prints)")
    return bytes.fromhex(m.group(1))


def read_public_key(arg: str) -> bytes:
    """A public key given as text or as the path of a file holding it."""
    p = Path(arg)
    if not arg.strip().lower().startswith(KEY_PREFIX) and p.is_file():
        return parse_public_key(p.read_text(encoding="utf-8", errors="replace"))
    return parse_public_key(arg)


# --------------------------------------------------------------------------- laptop side

def default_key_path() -> Path:
    """Where ``lanthorn key new`` puts the signing key: $LANTHORN_SIGNING_KEY, else
    $XDG_CONFIG_HOME/lanthorn/signing-key.pem (~/.config by default): outside any repo."""
    env = os.environ.get("LANTHORN_SIGNING_KEY")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "lanthorn" / "signing-key.pem"


def new_key(path: Path, force: bool = False) -> bytes:
    """Create an Ed25519 private key at ``path`` (PEM, mode 0600); return its public key."""
    ed25519, serialization, _ = _crypto()
    path = Path(path)
    if path.exists() and not force:
        raise KeyError_(f"{path} already exists; keep it (it is what your objects trust) or "
                        f"pass --force to replace it")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, pem)
    os.chmod(path, 0o600)
    pub = public_of(key)
    atomic_write_text(path.with_suffix(".pub"), key_text(pub) + "\n")
    return pub


def load_key(path: Path):
    """The private key in ``path`` (PEM written by :func:`new_key`)."""
    ed25519, serialization, _ = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyError_(f"no signing key at {path}; make one with 'lanthorn key new'") from None
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"{path} is not an unencrypted Ed25519 private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyError_(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def public_of(key) -> bytes:
    _, serialization, _ = _crypto()
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def sign_bundle_bytes(data: bytes, key) -> bytes:
    """``data`` (a bundle, signed or not) with a fresh signature trailer by ``key``."""
    from lanthorn.device.engine.bundle import split_signature  # (bundle imports us not)
    body, _ = split_signature(data)
    digest = body[32:64]
    return body + TRAILER.pack(TRAILER_MAGIC, public_of(key), key.sign(DOMAIN + digest))


def signing_key_for(path: str | None, no_sign: bool = False):
    """The key quantize/import sign with: ``path`` if given, else the default key if it
    exists, else None (the bundle is written unsigned, which an unlocked object accepts)."""
    if no_sign:
        return None
    if path:
        return load_key(Path(path))
    default = default_key_path()
    return load_key(default) if default.exists() else None


# --------------------------------------------------------------------------- device side

def verify(public: bytes, signature: bytes, digest: bytes) -> bool:
    ed25519, _, invalid = _crypto()
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature, DOMAIN + digest)
    except invalid:
        return False
    except ValueError:
        return False
    return True


def check_trusted(bundle, trusted: list[bytes]) -> bytes:
    """Raise SignatureError unless ``bundle`` carries a valid signature by a key in
    ``trusted``; return that key."""
    sig = getattr(bundle, "signature", None)
    if sig is None:
        raise SignatureError("the bundle is unsigned (sign it: 'lanthorn key new', then "
                             "'lanthorn quantize' or 'lanthorn import' again)")
    public, signature = sig
    if public not in trusted:
        raise SignatureError(f"the bundle is signed by {short_id(public)}…, which this object "
                             f"does not trust ({len(trusted)} trusted key(s))")
    if not verify(public, signature, bytes.fromhex(bundle.sha256)):
        raise SignatureError(f"the bundle's signature by {short_id(public)}… does not match "
                             f"its content (edited after signing)")
    return public


class TrustStore:
    """The public keys an object trusts, in ``DATA/trusted_keys.json`` (atomic writes).

    Fail closed: a missing file trusts nobody; an unreadable one too (a locked object then
    refuses every push until a technician re-provisions, see device/SIGNING.md)."""

    def __init__(self, root: str | os.PathLike):
        self.path = Path(root) / TRUST_FILE

    def entries(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            keys = data["keys"]
            out = []
            for e in keys:
                parse_public_key(e["key"])
                out.append({"key": e["key"], "name": str(e.get("name", "")),
                            "added": str(e.get("added", ""))})
            return out
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError, UserError, UnicodeDecodeError, OSError):
            return []     # fail closed: nothing is trusted until re-provisioned

    def keys(self) -> list[bytes]:
        return [parse_public_key(e["key"]) for e in self.entries()]

    def _save(self, entries: list[dict]) -> None:
        atomic_write_text(self.path, json.dumps({"version": 1, "keys": entries}, indent=2) + "\n")

    def add(self, public: bytes, name: str = "") -> bool:
        """Trust ``public``; False if it already was."""
        if name and not _NAME.match(name):
            raise KeyError_(f"key name {name!r} must be 1-64 letters, digits, ' ', '.', '_', "
                            f"'@' or '-'")
        entries = self.entries()
        if any(e["key"] == key_text(public) for e in entries):
            return False
        if len(entries) >= MAX_TRUSTED:
            raise KeyError_(f"already {MAX_TRUSTED} trusted keys; remove one first")
        entries.append({"key": key_text(public), "name": name,
                        "added": time.strftime("%Y-%m-%d %H:%M:%S")})
        self._save(entries)
        return True

    def remove(self, public: bytes) -> None:
        entries = self.entries()
        keep = [e for e in entries if e["key"] != key_text(public)]
        if len(keep) == len(entries):
            raise KeyError_(f"{short_id(public)}… is not a trusted key")
        self._save(keep)

    def replace(self, public: bytes, name: str = "") -> None:
        """Trust only ``public`` (a technician recovering from a lost key)."""
        self._save([])
        self.add(public, name)
