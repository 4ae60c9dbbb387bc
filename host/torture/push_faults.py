"""Campaign 2, push faults: pushes damaged on the wire, cut, or carrying files whose checksums
are valid but whose content is not a usable model. After each, the piece must still be the
same process running a model it had before (or, where the transport repaired the damage,
exactly the model that was sent), and a clean push must then succeed.
"""
from __future__ import annotations

import hashlib
import random
import time

from lanthorn.device.storage import SHIPPED_MODEL
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

    def attempt(kind: str) -> tuple[bool, str, str | None]:
        """One faulty push of kind ``kind``; returns (installed, answer, sha it should run)."""
        target = good_b if running == _id(good_a) else good_a
        if kind == "content bit flip":  # the file changed, its announced SHA-256 is the original's
            b = bytearray(target)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            ok, ans = piece.push(bytes(b), announce_sha=hashlib.sha256(target).hexdigest())
            return ok, ans, None
        if kind == "truncated":  # fewer bytes than announced, then the sender gives up
            cut = rng.randrange(1, len(target) // 1024 + 1)
            ok, ans = piece.push(target, cut_after=cut)
            return ok, ans, None
        if kind == "cut link":
            ok, ans = piece.push(target, cut_after=rng.randrange(0, 4))
            return ok, ans, None
        if kind in ("wire bit flips", "wire drops"):  # transport damage: CRC + resend repair it
            damage = _flip(rng, 0.3, rng.randrange(1, 4)) if kind == "wire bit flips" else _drop(rng, 0.2)
            ok, ans = piece.push(target, damage=damage)
            return ok, ans, _id(target)
        name = rng.choice(sorted(bad))
        ok, ans = piece.push(bad[name])
        return ok, f"[{name}] {ans}", _id(bad[name]) if name in bundles.MAY_RUN else None

    kinds = ["content bit flip", "truncated", "cut link", "wire bit flips", "wire drops",
             "valid checksum, bad content"]
    weights = [2, 2, 1, 2, 1, 6]
    n = budget["pushes"]
    examples: dict[str, str] = {}
    for i in range(n):
        kind = rng.choices(kinds, weights)[0]
        counts[kind] = counts.get(kind, 0) + 1
        before = running
        try:
            ok, answer, may = attempt(kind)
        except Exception as exc:  # the harness lost the conversation: that is a finding too
            ok, answer, may = False, f"harness: {type(exc).__name__}: {exc}", None
        examples.setdefault(kind, answer[:200])
        if not piece.alive() or piece.proc.pid != pid:
            failures.append(f"push {i} ({kind}): the piece died: {answer[:200]}")
            break
        now = piece.model_sha()
        if now not in (before, may):
            failures.append(f"push {i} ({kind}): running {now}, expected {before} or {may}: "
                            f"{answer[:200]}")
        if ok and may is None:
            failures.append(f"push {i} ({kind}) was installed: {answer[:200]}")
        running = now
        if (i + 1) % budget.get("clean_every", 1) == 0:  # a clean push must then succeed
            target = good_b if running == _id(good_a) else good_a
            clean += 1
            ok, answer = piece.push(target)
            running = piece.model_sha()
            if ok and running == _id(target):
                clean_ok += 1
            else:
                failures.append(f"clean push after push {i} ({kind}) failed: {answer[:200]}")
    rejected_kept = len(list((piece.data_dir / "rejected").glob("*"))) if \
        (piece.data_dir / "rejected").exists() else 0
    return {"pushes_corrupted": sum(counts.values()), "by_kind": counts,
            "clean_pushes": clean, "clean_pushes_ok": clean_ok, "alive": piece.alive(),
            "same_process": piece.alive() and piece.proc.pid == pid,
            "running_known_model": running in shas, "rejected_files": rejected_kept,
            "seconds": round(time.monotonic() - t0, 1), "example_answers": examples,
            "failures": failures, "timing_notes": []}
