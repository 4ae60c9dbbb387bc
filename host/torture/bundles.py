"""Bundles for the push campaign: a second good model, and bad ones whose checksums are valid.

A transport check (CRC per chunk, SHA-256 of the file) only proves the bytes arrived as
sent; it says nothing about whether they make a model this object can run. These files
pass every checksum and are still unusable: the device must refuse each of them at
install time (or fall back at bind time) and keep the model it was running.
"""
from __future__ import annotations

import hashlib
import json
import struct

from lanthorn.device.engine import bundle as bf


def rewrite_header(data: bytes, mutate) -> bytes:
    """The bundle ``data`` with its JSON header changed by ``mutate(header) -> header`` and
    every length and checksum recomputed, so only the content is wrong."""
    _, version, reserved, hlen, dlen, _ = bf.PREFIX.unpack_from(data, 0)
    header = json.loads(data[bf.PREFIX.size:bf.PREFIX.size + hlen])
    body = data[bf.PREFIX.size + hlen:bf.PREFIX.size + hlen + dlen]
    header = mutate(header)
    text = header if isinstance(header, bytes) else json.dumps(header, sort_keys=True).encode()
    text += b" " * (-len(text) % bf.ALIGN)
    return _seal(version, reserved, text, body)


def _seal(version: int, reserved: int, header: bytes, body: bytes) -> bytes:
    head = struct.pack("<8sIIQQ", bf.BUNDLE_MAGIC, version, reserved, len(header), len(body))
    digest = hashlib.sha256(head + header + body).digest()
    return head + digest + header + body


def renamed(data: bytes, name: str) -> bytes:
    """A good bundle that differs from ``data`` only by its card name (another sha256)."""
    return rewrite_header(data, lambda h: dict(h, card=dict(h.get("card") or {}, name=name)))


def _spec(**changes):
    return lambda h: dict(h, input_spec=dict(h["input_spec"], **changes))


def _card(**changes):
    return lambda h: dict(h, card=dict(h.get("card") or {}, **changes))


#: name -> header mutation. Each leaves every checksum valid.
POISONED_HEADERS = {
    "rate negative": _spec(rate_hz=-25.0),
    "rate huge": _spec(rate_hz=1.2e9),
    "rate as text": _spec(rate_hz="fast"),
    "rate 1e-6 Hz": _spec(rate_hz=1e-6),
    "rate zero": _spec(rate_hz=0),
    "rate NaN": lambda h: dict(h, input_spec=dict(h["input_spec"], rate_hz=float("nan"))),
    "window negative": lambda h: dict(h, input_spec=dict(h["input_spec"],
                                                         shape=[-50, h["input_spec"]["shape"][1]])),
    "window huge": lambda h: dict(h, input_spec=dict(h["input_spec"],
                                                     shape=[10**9, h["input_spec"]["shape"][1]])),
    "shape 3-d": lambda h: dict(h, input_spec=dict(h["input_spec"],
                                                   shape=h["input_spec"]["shape"] + [2])),
    "unknown channel": lambda h: dict(h, input_spec=dict(
        h["input_spec"], channels=["warp_drive"] + list(h["input_spec"]["channels"])[1:])),
    "dtype int8": _spec(dtype="int8"),
    "card temperament list": _card(temperament=["calm", "shy"]),
    "card temperament junk": _card(temperament={"tap": 5, "hold": ["x"]}),
    "card as list": lambda h: dict(h, card=["not", "a", "dict"]),
    "labels too few": lambda h: dict(h, labels=list(h["labels"])[:2]),
    "labels not strings": lambda h: dict(h, labels=[{"x": 1}] * len(h["labels"])),
    "no graph": lambda h: {k: v for k, v in h.items() if k != "graph"},
    "arrays missing": lambda h: dict(h, arrays=[]),
    "array offset out of range": lambda h: dict(h, arrays=[dict(a, offset=a["offset"] + 10**9)
                                                           for a in h["arrays"]]),
    "array shape wrong": lambda h: dict(h, arrays=[dict(a, shape=[7, 7, 7]) for a in h["arrays"]]),
    "header not an object": lambda h: b"[1, 2, 3]",
    "header not JSON": lambda h: b"{\"graph\": ",
    "header not UTF-8": lambda h: b"\xff\xfe" + b"x" * 62,
    "surrogate label": lambda h: dict(h, labels=["\ud800"] + list(h["labels"])[1:]),
}


#: Odd but harmless: the model still runs (zero weights give a constant answer; labels and
#: temperaments are shown or ignored with a warning). The device may install these; the
#: strict validator of the bundle-trust work may refuse them. Every other variant must be
#: refused at install and set aside at boot.
MAY_RUN = {"labels not strings", "surrogate label", "data zeroed", "card temperament list",
           "card temperament junk"}


def poisoned(data: bytes) -> dict[str, bytes]:
    """Every poisoned variant of the good bundle ``data`` (valid checksums, bad content)."""
    out = {}
    for name, mutate in POISONED_HEADERS.items():
        try:
            out[name] = rewrite_header(data, mutate)
        except (ValueError, KeyError, TypeError, IndexError):
            pass  # (a header without that field: nothing to poison)
    _, version, reserved, hlen, dlen, _ = bf.PREFIX.unpack_from(data, 0)
    header = data[bf.PREFIX.size:bf.PREFIX.size + hlen]
    body = data[bf.PREFIX.size + hlen:]
    out["data zeroed"] = _seal(version, reserved, header, bytes(len(body)))
    out["data truncated"] = _seal(version, reserved, header, body[:len(body) // 2])
    out["newer format"] = _seal(bf.FORMAT_VERSION + 1, reserved, header, body)
    out["format 0"] = _seal(0, reserved, header, body)
    return out


def non_bundles(rng) -> dict[str, bytes]:
    """Files that are not bundles at all (announced with their own, valid, SHA-256)."""
    return {
        "random bytes": bytes(rng.getrandbits(8) for _ in range(3000)),
        "text file": b"this is not a model\n" * 100,
        "ONNX-looking": b"\x08\x07\x12\x04" + bytes(rng.getrandbits(8) for _ in range(500)),
        "magic only": bf.BUNDLE_MAGIC,
        "magic and zeros": b"".join([bf.BUNDLE_MAGIC, bytes(200)]),
        "json": json.dumps({"graph": [], "labels": []}).encode(),
    }
