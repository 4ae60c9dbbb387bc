"""Campaign 6, the exhibition lock: after ``lock`` every change is refused (set, reset,
save, presets, push, record, rollback) while reading still works; a brute force of the PIN
over the console is slowed down as documented (the wait doubles after each wrong PIN: 1 s,
2 s, 4 s ... 5 min), also across a power cut; the right PIN then opens it.
"""
from __future__ import annotations

import random
import time

WRITES = ["set brightness 5", "reset all", "save", "preset save locked", "preset delete x",
          "preset load x", "record tap 1", "model rollback", "push begin 100 " + "a" * 64]


def run(piece, budget: dict, seed: int = 6) -> dict:
    rng = random.Random(seed)
    failures = []
    pin = "".join(rng.choice("0123456789") for _ in range(6))
    t0 = time.monotonic()
    if not piece.call(f"lock {pin}").get("ok"):
        failures.append("lock was refused")
    refused = _writes_refused(piece, failures)
    tried, evaluated, gaps, cut_done = _brute_force(piece, rng, pin, budget, failures)
    if not piece.status().get("locked"):
        failures.append("the lock was lifted by the brute force or the power cut")
    opened = _open_after_the_wait(piece, pin, evaluated)
    if not opened:
        failures.append("the right PIN did not open the lock after the wait")
    elif not piece.call("set brightness 61").get("ok"):
        failures.append("set refused after unlock")
    return {"writes_refused_while_locked": refused, "writes_tried": len(WRITES),
            "guesses_sent": tried, "guesses_evaluated": evaluated,
            "gaps_between_evaluated_guesses_s": gaps, "power_cut_during_brute_force": cut_done,
            "brute_force_s": budget["brute_s"], "unlocked_with_right_pin": opened,
            "seconds": round(time.monotonic() - t0, 1), "failures": failures}


def _writes_refused(piece, failures: list) -> int:
    """Every change refused as locked, reading still answered; how many were refused."""
    refused = 0
    for line in WRITES:
        ans = piece.call(line)
        if ans.get("ok") or "locked" not in (ans.get("error") or ""):
            failures.append(f"{line!r} while locked: {ans}")
        else:
            refused += 1
    if not piece.call("get brightness").get("ok"):
        failures.append("reading refused while locked")
    return refused


def _brute_force(piece, rng, pin: str, budget: dict, failures: list):
    """Wrong PINs for budget["brute_s"] seconds, as fast as the console answers, with a power
    cut after the second evaluated guess; each evaluated guess must have waited the
    documented 1, 2, 4, ... s (minus timer slack). (sent, evaluated, gaps, cut done)."""
    tried = evaluated = 0
    evaluated_at = []
    end = time.monotonic() + budget["brute_s"]
    cut_done = False
    while time.monotonic() < end:
        guess = "".join(rng.choice("0123456789") for _ in range(6))
        if guess == pin:
            continue
        ans = piece.call(f"unlock {guess}")
        tried += 1
        if ans.get("ok"):
            failures.append(f"wrong PIN {guess} unlocked the piece")
            break
        if (ans.get("error") or "").startswith("wrong PIN"):
            evaluated += 1
            evaluated_at.append(time.monotonic())
        if not cut_done and evaluated >= 2 and budget.get("power_cut", True):
            piece.kill()  # a power cut must not buy a fresh set of quick guesses
            piece.start()
            cut_done = True
    gaps = [round(b - a, 2) for a, b in zip(evaluated_at, evaluated_at[1:], strict=False)]
    for k, gap in enumerate(gaps, start=1):
        need = min(2.0 ** (k - 1), 300.0)
        if gap < need - 0.25:
            failures.append(f"guess {k + 1} was evaluated {gap} s after guess {k} (wait {need} s)")
    return tried, evaluated, gaps, cut_done


def _open_after_the_wait(piece, pin: str, evaluated: int) -> bool:
    """The right PIN opens the lock once the wait the wrong guesses earned is over."""
    wait = min(2.0 ** (max(evaluated, 1) - 1), 300.0)
    deadline = time.monotonic() + wait + 5
    while time.monotonic() < deadline:
        if piece.call(f"unlock {pin}").get("ok"):
            return True
        time.sleep(0.5)
    return False
