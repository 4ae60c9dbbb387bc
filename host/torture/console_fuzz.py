"""Campaign 1, console fuzz: random bytes, printable garbage and mutated commands at a real
piece; every complete line must get exactly one final answer, and nothing may change a
parameter except a command that was answered OK.

Which lines are complete is decided by the device's own :class:`LineReader` fed the same
bytes (CR, LF and CRLF end a line; an over-long line is one line), so the expected count is
exact. Answers come in order, so the k-th final answer belongs to the k-th line: that is
how an OK is matched to the command it answers.
"""
from __future__ import annotations

import json
import random
import time

from lanthorn.device.console import console_wire
from lanthorn.device.console import push_wire as pp
from lanthorn.device.console.server import LineReader, decode_line
from lanthorn.host.torture.piece import is_final

#: commands the fuzz mutates (record, push, lock and rollback have their own campaigns)
VALID = ["get brightness", "set brightness 40", "set speed 1.5", "set palette tide",
         "set phrases_calm still|here", "set quiet_hours 22:00-08:00", "list", "status", "help",
         "help set", "model info", "preset list", "preset save fz1", "preset load fz1",
         "preset delete fz1", "reset speed", "save", "watch 20", "stop", "mode json",
         "mode text", "get display_enabled", "set display_enabled off"]
NASTY_VALUES = ["1e308", "-1e308", "1" + "0" * 400, "-40", "NaN", "nan", "inf", "-inf", "0x10",
                "", "   ", "\u00e9t\u00e9", "\U0001F525\U0001F525", "\u202egnp.exe", "a\u0301",
                '["\\ud800"]', '["\\udfff", "ok"]', '["a\\nOK forged", "b"]', '["x\\r\\nERR no"]',
                '["\\u0000"]', '"quoted"', "[" * 300, "{}", "[1, 2]", "on", "off", "maybe",
                "99:99-00:00", "\\", "%s%s%n", "' OR 1=1", "\u2028OK forged"]


class Fuzzer:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def random_bytes(self) -> bytes:
        n = self.rng.choice([16, 200, 2000, 9000])
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def garbage_line(self) -> bytes:
        n = self.rng.randrange(0, 120)
        text = "".join(chr(self.rng.randrange(32, 127)) for _ in range(n))
        return text.encode() + self.ending()

    def ending(self) -> bytes:
        return self.rng.choice([b"\n", b"\r", b"\r\n", b"\n", b"\r\n"])

    def mutated(self) -> bytes:
        words = self.rng.choice(VALID).split()
        r = self.rng.random()
        if r < 0.35 and len(words) >= 2:
            words[-1] = self.rng.choice(NASTY_VALUES)
        elif r < 0.45:
            words.insert(self.rng.randrange(len(words) + 1), self.rng.choice(NASTY_VALUES))
        elif r < 0.55:
            words[0] = words[0].upper() if self.rng.random() < 0.5 else words[0][::-1]
        elif r < 0.65:
            w = self.rng.randrange(len(words))
            words[w] = "\b" * self.rng.randrange(1, 4) + words[w]  # typed with backspaces
        line = " ".join(words).encode("utf-8", "surrogatepass")
        if self.rng.random() < 0.1:  # a NUL or another control byte somewhere
            i = self.rng.randrange(len(line) + 1)
            line = line[:i] + bytes([self.rng.choice([0, 1, 7, 27, 127])]) + line[i:]
        return line + self.ending()

    def huge_line(self) -> bytes:
        return b"set phrases_calm " + b"x" * self.rng.randrange(100_000, 140_000) + self.ending()

    def push_frames(self) -> bytes:
        """Binary push frames with no push begun (a client that lost track of the state)."""
        payload = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randrange(1, 300)))
        return b"".join(pp.encode_frame(self.rng.randrange(5), payload) for _ in range(3)) + b"\n"

    def batch(self) -> bytes:
        kind = self.rng.random()
        if kind < 0.30:
            return self.random_bytes()
        if kind < 0.45:
            return b"".join(self.garbage_line() for _ in range(self.rng.randrange(1, 20)))
        if kind < 0.935:
            return b"".join(self.mutated() for _ in range(self.rng.randrange(1, 20)))
        if kind < 0.985:
            return self.push_frames()
        return self.huge_line()


def _command(raw: bytes):
    try:
        return console_wire.parse(decode_line(raw))
    except Exception:
        return None, None


def run(piece, budget: dict, seed: int = 1) -> dict:
    """Fuzz ``piece`` (a started :class:`Piece`) with ``budget["bytes"]`` bytes."""
    session = _FuzzSession(piece, budget, Fuzzer(seed))
    session.baseline()
    while session.sent < budget["bytes"]:
        if session.fz.rng.random() < budget.get("partial_share", 0.02):
            session.partial_line()
        else:
            session.batch()
    session.finish()
    return session.figures()


class _FuzzSession:
    """One fuzz run's bookkeeping: the lines sent and not yet answered (in order, as the
    device's own LineReader splits them), which parameters an answered OK allowed to
    change, and the piece's health samples."""

    def __init__(self, piece, budget: dict, fz: Fuzzer):
        self.piece, self.budget, self.fz = piece, budget, fz
        self.shadow = LineReader()
        self.pending: list[bytes | None] = []  # complete lines sent, not answered yet (None: over-long)
        self.allowed: set[str] = set()  # parameters an OK'd command may have changed
        self.last_json_set: dict[str, object] = {}
        self.sent = self.answered = self.partial_silences = 0
        self.extra: list[str] = []

    def baseline(self) -> None:
        """Warm every answer path, return to defaults, then take the figures to compare."""
        piece = self.piece
        for line in VALID:
            piece.request(line)
        piece.request("stop")
        piece.call("preset delete fz1")
        piece.call("reset all")
        piece.drain(0.3)
        time.sleep(self.budget.get("settle_s", 2.0))
        self.base = piece.status()
        self.params_before = _params(piece)
        self.rss0, self.fds0, self.threads0 = piece.rss_kb(), piece.fds(), piece.threads()
        piece.drain()
        self.fps_samples = [self.base.get("fps")]
        self.p99_samples = [self.base.get("frame_ms_p99")]
        self.t0 = time.monotonic()
        self.next_status = self.t0 + self.budget.get("status_every_s", 10.0)

    def send(self, data: bytes) -> None:
        """Write bytes, expecting one answer per line the device's LineReader will see."""
        self._expect(data)
        self.piece.write(data)

    def _expect(self, data: bytes) -> None:
        for kind, value in self.shadow.feed(data):
            self.pending.append(value if kind == "line" else None)

    def take_answers(self, wait: float) -> None:
        """Match the final answers that have come (waiting up to ``wait`` while lines are
        pending) to the lines sent, in order."""
        piece = self.piece
        end = time.monotonic() + wait
        while True:
            got = piece.next_line(max(0.0, end - time.monotonic()) if self.pending else 0.0)
            if got is None:
                return
            if not is_final(got):
                continue
            if not self.pending:
                self.extra.append(got)
                continue
            self.answered += 1
            self._note_answer(self.pending.pop(0), got)

    def _note_answer(self, raw: bytes | None, got: str) -> None:
        """Which parameters an OK to ``raw`` allows to change (and to what, in json mode)."""
        ok = got.startswith("OK") or got.startswith('{"ok":true')
        cmd, args = _command(raw) if raw is not None else (None, None)
        if not (ok and cmd is not None and cmd.writes):
            return
        if cmd.name in ("set", "reset") and args and args[0] != "all":
            self.allowed.add(args[0])
            if cmd.name == "set" and got.startswith("{"):
                data = json.loads(got).get("data") or {}
                self.last_json_set[args[0]] = data.get("value")
            else:
                self.last_json_set.pop(args[0], None)
        elif cmd.name in ("reset", "preset load"):
            self.allowed.update(self.params_before)
            self.last_json_set.clear()

    def partial_line(self) -> None:
        """Half a command, then silence: nothing may be answered until the line ends."""
        self.piece.write(b"set bright")
        time.sleep(0.3)
        self.take_answers(0.0)
        if self.pending:
            self.take_answers(5.0)
        quiet = self.piece.next_line(0.3)
        if quiet is not None and quiet.startswith(("OK", "ERR", '{"ok"')):
            self.extra.append(quiet)
        self.partial_silences += 1
        self._expect(b"set bright" + b"ness 55\n")
        self.piece.write(b"ness 55\n")
        self.sent += 18

    def batch(self) -> None:
        data = self.fz.batch()
        self.send(data)
        self.sent += len(data)
        self.take_answers(0.0)
        if len(self.pending) > 200:  # keep the backlog bounded: wait for the device to catch up
            self.take_answers(10.0)
        if time.monotonic() >= self.next_status:
            self.next_status = time.monotonic() + self.budget.get("status_every_s", 10.0)
            self.send(b"\n")  # end the last batch's partial line: every line sent is complete
            self.take_answers(15.0)
            self.sample(self.piece.status())
            self.piece.drain()

    def sample(self, status: dict) -> None:
        self.fps_samples.append(status.get("fps"))
        self.p99_samples.append(status.get("frame_ms_p99"))

    def finish(self) -> None:
        """Complete the last line, collect every answer, stop streams and let the piece settle."""
        piece = self.piece
        self.send(b"\n")
        self.take_answers(30.0)
        self.unanswered = len(self.pending)
        piece.drain(0.5)
        piece.write(b"\nstop\n")
        time.sleep(0.3)
        piece.drain(0.3)
        time.sleep(self.budget.get("settle_s", 2.0))
        self.sample(piece.status())

    def figures(self) -> dict:
        piece = self.piece
        params_after = _params(piece)
        changed = {k for k in params_after if params_after[k] != self.params_before.get(k)}
        unexplained = sorted(changed - self.allowed)
        wrong_value = sorted(k for k, v in self.last_json_set.items() if params_after.get(k) != v)
        rss1 = piece.rss_kb()
        fps0 = self.base.get("fps") or 0.0
        fps_min = min((f for f in self.fps_samples if f is not None), default=None)
        figures = {
            "bytes_fuzzed": self.sent, "lines": self.answered + self.unanswered,
            "answered": self.answered, "unanswered": self.unanswered,
            "extra_answers": len(self.extra), "partial_lines_then_silence": self.partial_silences,
            "alive": piece.alive(), "seconds": round(time.monotonic() - self.t0, 1),
            "fps_baseline": fps0, "fps_min": fps_min,
            "frame_ms_p99_max": max((p for p in self.p99_samples if p is not None), default=None),
            "rss_kb_before": self.rss0, "rss_kb_after": rss1,
            "rss_growth_kb": (rss1 - self.rss0) if self.rss0 and rss1 else None,
            "fds": [self.fds0, piece.fds()], "threads": [self.threads0, piece.threads()],
            "params_changed": sorted(changed), "params_changed_without_ok": unexplained,
            "params_not_as_answered": wrong_value,
        }
        figures["failures"] = self._failures(figures)
        figures["timing_notes"] = ([f"fps dipped to {fps_min} (baseline {fps0})"]
                                   if fps0 and fps_min is not None and fps_min < 0.9 * fps0 else [])
        return figures

    def _failures(self, f: dict) -> list[str]:
        failures = []
        if not f["alive"]:
            failures.append("the piece died")
        if f["unanswered"] or self.extra:
            failures.append(f"{f['unanswered']} lines unanswered, {len(self.extra)} extra answers "
                            f"(e.g. {self.extra[:3]})")
        if f["params_changed_without_ok"] or f["params_not_as_answered"]:
            failures.append(f"parameters changed without an OK: {f['params_changed_without_ok']}, "
                            f"not as answered: {f['params_not_as_answered']}")
        if f["rss_growth_kb"] is not None and f["rss_growth_kb"] >= 2048:
            failures.append(f"RSS grew {f['rss_growth_kb']} kB (bound 2048)")
        return failures


def _params(piece) -> dict:
    return {p["name"]: p["value"] for p in piece.call("list")["data"]["params"]}
