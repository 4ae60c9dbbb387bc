"""The exhibition lock: a PIN that makes the object refuse every change while it is shown.

Its own module (it was a class inside the console server) because it is a small state
machine with its own file, its own failure rules and its own tests, and because more than
the console asks it: pushes and signature checks ask ``locked`` too. The server only calls
``lock``, ``unlock`` and reads ``locked`` / ``note``.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import time
from typing import Callable

from lanthorn.errors import UserError

_PIN = re.compile(r"^[0-9A-Za-z]{4,16}$")
_LOCKOUT_CAP_S = 300.0


def _hash_pin(pin: str, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, 20000).hex()


class ExhibitionLock:
    """The PIN lock, kept in its own small file (``lock.json``: salted hash, never the PIN),
    apart from the parameters so that a damaged settings.json cannot lift it. It fails
    closed: a lock file that exists but cannot be read counts as locked (a person with a
    shell on the device deletes it to recover). Wrong PINs lock out further attempts for a
    time that doubles with each failure (1 s, 2 s, 4 s ... 5 min), without ever blocking the
    console thread. The failure count is saved too, so pulling the plug does not buy a fresh
    set of quick guesses. Unlocking deletes the file, which works even on a full card.

    ``locked`` is the one query other parts (push, signature checks) ask."""

    def __init__(self, storage, clock: Callable[[], float] = time.monotonic):
        self.storage, self.clock = storage, clock
        state, record = storage.load_lock()
        self.damaged = state == "damaged"
        self.record = record if state == "locked" else None
        failures = self.record.get("failures", 0) if self.record else 0
        self.failures = failures if isinstance(failures, int) and 0 < failures < 10**6 else 0
        self.blocked_until = self.clock() + self._delay() if self.failures else 0.0
        self.note = ""  # why the lock state could not be stored, if it could not

    def _delay(self) -> float:
        return min(2.0 ** (min(self.failures, 64) - 1), _LOCKOUT_CAP_S)

    @property
    def locked(self) -> bool:
        return self.record is not None or self.damaged

    def _store(self, record: dict) -> None:
        try:
            self.storage.save_lock(record)
            self.note = ""
        except UserError as exc:  # full or read-only card: the lock holds in memory
            self.note = str(exc)

    def lock(self, pin: str) -> None:
        if self.locked:
            raise UserError("already locked (unlock PIN first)")
        if not _PIN.match(pin):
            raise UserError("the PIN must be 4-16 letters or digits")
        salt = os.urandom(16)
        record = {"salt": salt.hex(), "hash": _hash_pin(pin, salt)}
        self._store(record)  # survives restarts and power cuts
        self.record = record

    def unlock(self, pin: str) -> None:
        if not self.locked:
            raise UserError("not locked")
        self.check_pin(pin)
        self.storage.clear_lock()
        self.record, self.failures, self.blocked_until, self.note = None, 0, 0.0, ""

    def check_pin(self, pin: str) -> None:
        """Raise unless ``pin`` is the lock's PIN, with the same slowing down of wrong PINs
        as ``unlock`` (``access PIN`` reads a locked object without lifting the lock)."""
        if self.damaged:
            raise UserError(f"the lock file {self.storage.lock_path} is damaged, so the lock "
                            "stays on; delete that file on the device to lift it")
        # callers check ``locked`` first, and locked but not damaged means a record is held
        assert self.record is not None, "check_pin on an unlocked lock"
        record = self.record
        wait = self.blocked_until - self.clock()
        if wait > 0:
            # rounded up: "try again in 0 s" while still refusing would be a lie
            raise UserError(f"too many wrong PINs; try again in {math.ceil(wait):d} s")
        try:
            good = hmac.compare_digest(_hash_pin(pin, bytes.fromhex(record["salt"])),
                                       record["hash"])
        except ValueError:  # a record whose salt is not hex: no PIN can match it
            good = False
        if not good:
            self.failures += 1
            delay = self._delay()
            self.blocked_until = self.clock() + delay
            self.record = dict(record, failures=self.failures)
            self._store(self.record)
            raise UserError(f"wrong PIN; next attempt allowed in {math.ceil(delay):d} s")
        if self.failures:  # the right PIN: the count of wrong ones starts again
            self.failures, self.blocked_until = 0, 0.0
            self.record = {k: v for k, v in record.items() if k != "failures"}
            self._store(self.record)
