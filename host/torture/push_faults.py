"""Campaign 2, push faults: pushes damaged on the wire, cut, or carrying files whose checksums
are valid but whose content is not a usable model. After each, the piece must still be the
same process running a model it had before (or, where the transport repaired the damage,
exactly the model that was sent), and a clean push must then succeed.

Then the exhibition lock: the piece trusts one signing key and is locked; pushes of unsigned
bundles, bundles signed by another key, and bundles edited after signing (checksum recomputed,
so only the signature can tell) must all be refused with the old model still running, and a
bundle signed by the trusted key must be installed.
"""
from __future__ import annotations

import hashlib
import json
import random
import time

from lanthorn.device.console import push_wire as pp
from lanthorn.device.engine import bundle as bf
from lanthorn.device.storage.storage import SHIPPED_MODEL
from lanthorn.host.torture import bundles


def _flip(rng, p_frame: float, bits: int = 1):
    def damage(frame: bytes) -> bytes:
        if rng.random() >= p_frame:
            return frame
        b = bytearray(frame)
        for _ in range(bits):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    return damage


def _drop(rng, p_frame: float):
    def damage(frame: bytes) -> bytes:
        if rng.random() >= p_frame:
            return frame
        i = rng.randrange(len(frame))
        return frame[:i] + frame[i + rng.randrange(1, 40):]
    return damage


def _id(bundle_bytes: bytes) -> str:
    """The sha256 a device reports for a bundle: the digest in its prefix."""
    return bundle_bytes[32:64].hex()


#: the kinds of faulty push and how often each is drawn
KINDS = {"content bit flip": 2, "truncated": 2, "cut link": 1, "wire bit flips": 2,
         "wire drops": 1, "valid checksum, bad content": 6}


def run(piece, budget: dict, seed: int = 2) -> dict:
    rng = random.Random(seed)
    good_a = SHIPPED_MODEL.read_bytes()
    good_b = bundles.renamed(good_a, "temperament-b")
    shas = {_id(x): x for x in (good_a, good_b)}
    bad = dict(bundles.poisoned(good_a), **bundles.non_bundles(rng))
    pid = piece.proc.pid
    counts: dict[str, int] = {}
    failures: list[str] = []
    clean_ok = clean = 0
    t0 = time.monotonic()
    running = piece.model_sha()
    examples: dict[str, str] = {}
    for i in range(budget["pushes"]):
        kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
        counts[kind] = counts.get(kind, 0) + 1
        before = running
        target = good_b if running == _id(good_a) else good_a
        try:
            ok, answer, may = _faulty_push(piece, rng, kind, target, bad)
        except Exception as exc:  # the harness lost the conversation: that is a finding too
            ok, answer, may = False, f"harness: {type(exc).__name__}: {exc}", None
        examples.setdefault(kind, answer[:200])
        if not piece.alive() or piece.proc.pid != pid:
            failures.append(f"push {i} ({kind}): the piece died: {answer[:200]}")
            break
        running = piece.model_sha()
        if running not in (before, may):
            failures.append(f"push {i} ({kind}): running {running}, expected {before} or {may}: "
                            f"{answer[:200]}")
        if ok and may is None:
            failures.append(f"push {i} ({kind}) was installed: {answer[:200]}")
        if (i + 1) % budget.get("clean_every", 1) == 0:  # a clean push must then succeed
            clean += 1
            running, ok, answer = _clean_push(piece, good_b if running == _id(good_a) else good_a)
            if ok:
                clean_ok += 1
            else:
                failures.append(f"clean push after push {i} ({kind}) failed: {answer[:200]}")
    signed = _locked_pushes(piece, rng, budget.get("signed", 0), good_a, good_b, failures)
    running = piece.model_sha()
    rejected_kept = len(list((piece.data_dir / "rejected").glob("*"))) if \
        (piece.data_dir / "rejected").exists() else 0
    return {"pushes_corrupted": sum(counts.values()), "by_kind": counts,
            "clean_pushes": clean, "clean_pushes_ok": clean_ok, "locked_signature_pushes": signed,
            "alive": piece.alive(),
            "same_process": piece.alive() and piece.proc.pid == pid,
            "running_known_model": running in shas, "rejected_files": rejected_kept,
            "seconds": round(time.monotonic() - t0, 1), "example_answers": examples,
            "failures": failures, "timing_notes": []}


def _faulty_push(piece, rng, kind: str, target: bytes, bad: dict) -> tuple[bool, str, str | None]:
    """One faulty push of kind ``kind`` (``target``: the good bundle it damages); returns
    (installed, answer, the sha the piece may run afterwards besides the one it ran)."""
    if kind == "content bit flip":  # the file changed, its announced SHA-256 is the original's
        b = bytearray(target)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        ok, ans = push(piece, bytes(b), announce_sha=hashlib.sha256(target).hexdigest())
        return ok, ans, None
    if kind == "truncated":  # fewer bytes than announced, then the sender gives up
        cut = rng.randrange(1, len(target) // 1024 + 1)
        ok, ans = push(piece, target, cut_after=cut)
        return ok, ans, None
    if kind == "cut link":
        ok, ans = push(piece, target, cut_after=rng.randrange(0, 4))
        return ok, ans, None
    if kind in ("wire bit flips", "wire drops"):  # transport damage: CRC + resend repair it
        damage = _flip(rng, 0.3, rng.randrange(1, 4)) if kind == "wire bit flips" else _drop(rng, 0.2)
        ok, ans = push(piece, target, damage=damage)
        return ok, ans, _id(target)
    name = rng.choice(sorted(bad))
    ok, ans = push(piece, bad[name])
    return ok, f"[{name}] {ans}", _id(bad[name]) if name in bundles.MAY_RUN else None


def _clean_push(piece, target: bytes) -> tuple[str, bool, str]:
    """Push a good bundle: the sha the piece then runs, whether it is ``target``'s, the answer."""
    ok, answer = push(piece, target)
    running = piece.model_sha()
    return running, bool(ok and running == _id(target)), answer


def _locked_pushes(piece, rng, n: int, good_a: bytes, good_b: bytes, failures: list) -> dict:
    """n refused pushes to a locked piece that trusts key A, each followed by none; then one
    push signed by A that must be installed. Returns the counts by kind."""
    if n <= 0:
        return {}
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from lanthorn.device.engine import signing
    trusted, foreign = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    pin = "7391"
    for line in (f"trust add {signing.key_text(signing.public_of(trusted))} torture", f"lock {pin}"):
        answer = piece.call(line)
        if not answer.get("ok"):
            failures.append(f"locked pushes: {line.split()[0]} refused: {answer}")
            return {}
    counts: dict[str, int] = {}

    def edited_after_signing(data: bytes) -> bytes:
        signed = signing.sign_bundle_bytes(data, trusted)
        body, _ = bf.split_signature(signed)
        trailer = signed[len(body):]
        return bundles.renamed(body, f"edited-{rng.randrange(10**6)}") + trailer

    makers = {"unsigned": lambda d: d,
              "signed by another key": lambda d: signing.sign_bundle_bytes(d, foreign),
              "edited after signing": edited_after_signing}
    for i in range(n):
        running = piece.model_sha()
        target = good_b if running == _id(good_a) else good_a
        kind = rng.choice(sorted(makers))
        counts[kind] = counts.get(kind, 0) + 1
        ok, answer = push(piece, makers[kind](target))
        if ok or piece.model_sha() != running:
            failures.append(f"locked push {i} ({kind}) was installed: {answer[:200]}")
        if not piece.alive():
            failures.append(f"locked push {i} ({kind}): the piece died: {answer[:200]}")
            return counts
    running = piece.model_sha()
    target = good_b if running == _id(good_a) else good_a
    ok, answer = push(piece, signing.sign_bundle_bytes(target, trusted))
    counts["signed by the trusted key, installed"] = int(ok and piece.model_sha() == _id(target))
    if not counts["signed by the trusted key, installed"]:
        failures.append(f"locked: a push signed by the trusted key was refused: {answer[:200]}")
    for line in (f"unlock {pin}", f"trust remove {signing.key_text(signing.public_of(trusted))}"):
        if not piece.call(line).get("ok"):
            failures.append(f"locked pushes: {line.split()[0]} refused afterwards")
    return counts


def push(piece, data: bytes, announce_sha: str | None = None, damage=None,
         chunk: int = pp.DEFAULT_CHUNK, cut_after: int | None = None,
         timeout: float = 60.0) -> tuple[bool, str]:
    """Push ``data`` to ``piece`` (a started :class:`Piece`), announcing ``announce_sha``
    (default: its own). ``damage(frame)`` alters each frame on the wire; ``cut_after`` stops
    after that many frames and recovers the line the way ``lanthorn push`` does (abort
    frame + newline).
    Returns (installed, the device's final answer)."""
    sha = announce_sha or hashlib.sha256(data).hexdigest()
    obj = piece.call(f"push begin {len(data)} {sha} {chunk}", timeout)
    final = json.dumps(obj)
    if not obj.get("ok"):
        return False, obj.get("error", final)
    offset = int(obj["data"]["offset"])
    if (obj.get("message") or "").startswith("installed"):
        return True, final
    sent = [0]

    def write(frame: bytes) -> None:
        sent[0] += 1
        if cut_after is not None and sent[0] > cut_after:
            raise _Cut()
        piece.write(damage(frame) if damage else frame)

    sender = pp.PushSender(data, chunk, write, piece.next_line, ack_timeout=2.0, max_retries=6)
    try:
        verdict = sender.run(offset // chunk)
    except _Cut:
        piece.write(pp.abort_frame() + b"\n")  # what the client does on reconnecting
        final, _ = piece.wait_final(timeout)
        piece.drain(0.1)
        return False, final
    except pp.PushError as exc:  # the sender gave up; its abort frame may be damaged too
        piece.write(pp.abort_frame() + b"\n")
        piece.drain(0.5)
        return False, str(exc)
    if verdict is None:
        verdict, _ = piece.wait_final(timeout)
    try:
        obj = json.loads(verdict)
    except ValueError:
        return False, verdict
    return bool(obj.get("ok")), verdict


class _Cut(Exception):
    """The harness pulled the cable."""
