"""Campaign 1, console fuzz: random bytes, printable garbage and mutated commands at a real
piece; every complete line must get exactly one final answer, and nothing may change a
parameter except a command that was answered OK.

Which lines are complete is decided by the device's own :class:`LineReader` fed the same
bytes (CR, LF and CRLF end a line; an over-long line is one line), so the expected count is
exact. Answers come in order, so the k-th final answer belongs to the k-th line: that is
how an OK is matched to the command it answers.
"""
from __future__ import annotations

import random
import time

from lanthorn.device import console_wire
from lanthorn.device import push_wire as pp
from lanthorn.device.console import LineReader, decode_line
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
    fz = Fuzzer(seed)
    shadow = LineReader()
    for line in VALID:  # warm every answer path before the baseline
        piece.request(line)
    piece.request("stop")
    piece.call("preset delete fz1")
    piece.call("reset all")
    piece.drain(0.3)
    time.sleep(budget.get("settle_s", 2.0))
    base = piece.status()
    params_before = {p["name"]: p["value"] for p in piece.call("list")["data"]["params"]}
    rss0, fds0, threads0 = piece.rss_kb(), piece.fds(), piece.threads()
    piece.drain()

    pending: list[bytes | None] = []  # complete lines sent, not answered yet (None: over-long)
    allowed: set[str] = set()  # parameters an OK'd command may have changed
    last_json_set: dict[str, object] = {}
    sent = lines = answered = 0
    extra: list[str] = []
    fps_samples = [base.get("fps")]
    p99_samples = [base.get("frame_ms_p99")]
    partial_silences = 0
    t0 = time.monotonic()
    next_status = t0 + budget.get("status_every_s", 10.0)

    def take_answers(wait: float) -> None:
        nonlocal answered
        end = time.monotonic() + wait
        while True:
            got = piece.next_line(max(0.0, end - time.monotonic()) if pending else 0.0)
            if got is None:
                return
            if not is_final(got):
                continue
            if not pending:
                extra.append(got)
                continue
            raw = pending.pop(0)
            answered += 1
            ok = got.startswith("OK") or got.startswith('{"ok":true')
            cmd, args = _command(raw) if raw is not None else (None, None)
            if ok and cmd is not None and cmd.writes:
                if cmd.name in ("set", "reset") and args and args[0] != "all":
                    allowed.add(args[0])
                    if cmd.name == "set" and got.startswith("{"):
                        import json
                        data = json.loads(got).get("data") or {}
                        last_json_set[args[0]] = data.get("value")
                    else:
                        last_json_set.pop(args[0], None)
                elif cmd.name in ("reset", "preset load"):
                    allowed.update(params_before)
                    last_json_set.clear()

    while sent < budget["bytes"]:
        if fz.rng.random() < budget.get("partial_share", 0.02):
            # half a command, then silence: nothing may be answered until the line ends
            piece.write(b"set bright")
            time.sleep(0.3)
            take_answers(0.0)
            if pending:
                take_answers(5.0)
            quiet = piece.next_line(0.3)
            if quiet is not None and quiet.startswith(("OK", "ERR", '{"ok"')):
                extra.append(quiet)
            data = b"ness 55\n"
            partial_silences += 1
            for kind, value in shadow.feed(b"set bright" + data):
                pending.append(value if kind == "line" else None)
                lines += 1
            piece.write(data)
            sent += 18
            continue
        data = fz.batch()
        for kind, value in shadow.feed(data):
            pending.append(value if kind == "line" else None)
            lines += 1
        piece.write(data)
        sent += len(data)
        take_answers(0.0)
        if len(pending) > 200:  # keep the backlog bounded: wait for the device to catch up
            take_answers(10.0)
        if time.monotonic() >= next_status:
            next_status = time.monotonic() + budget.get("status_every_s", 10.0)
            _flush_line(piece, shadow, pending, take_answers)
            take_answers(15.0)
            st = piece.status()
            fps_samples.append(st.get("fps"))
            p99_samples.append(st.get("frame_ms_p99"))
            piece.drain()
    _flush_line(piece, shadow, pending, take_answers)
    take_answers(30.0)
    unanswered = len(pending)
    piece.drain(0.5)
    piece.write(b"\nstop\n")
    time.sleep(0.3)
    piece.drain(0.3)
    time.sleep(budget.get("settle_s", 2.0))
    end = piece.status()
    fps_samples.append(end.get("fps"))
    p99_samples.append(end.get("frame_ms_p99"))
    params_after = {p["name"]: p["value"] for p in piece.call("list")["data"]["params"]}
    changed = {k for k in params_after if params_after[k] != params_before.get(k)}
    unexplained = sorted(changed - allowed)
    wrong_value = sorted(k for k, v in last_json_set.items() if params_after.get(k) != v)
    rss1 = piece.rss_kb()
    fps0 = base.get("fps") or 0.0
    fps_min = min((f for f in fps_samples if f is not None), default=None)
    figures = {
        "bytes_fuzzed": sent, "lines": answered + unanswered, "answered": answered, "unanswered": unanswered,
        "extra_answers": len(extra), "partial_lines_then_silence": partial_silences,
        "alive": piece.alive(), "seconds": round(time.monotonic() - t0, 1),
        "fps_baseline": fps0, "fps_min": fps_min,
        "frame_ms_p99_max": max((p for p in p99_samples if p is not None), default=None),
        "rss_kb_before": rss0, "rss_kb_after": rss1,
        "rss_growth_kb": (rss1 - rss0) if rss0 and rss1 else None,
        "fds": [fds0, piece.fds()], "threads": [threads0, piece.threads()],
        "params_changed": sorted(changed), "params_changed_without_ok": unexplained,
        "params_not_as_answered": wrong_value,
    }
    failures = []
    if not figures["alive"]:
        failures.append("the piece died")
    if unanswered or extra:
        failures.append(f"{unanswered} lines unanswered, {len(extra)} extra answers "
                        f"(e.g. {extra[:3]})")
    if unexplained or wrong_value:
        failures.append(f"parameters changed without an OK: {unexplained}, not as answered: "
                        f"{wrong_value}")
    if figures["rss_growth_kb"] is not None and figures["rss_growth_kb"] >= 2048:
        failures.append(f"RSS grew {figures['rss_growth_kb']} kB (bound 2048)")
    timing = []
    if fps0 and fps_min is not None and fps_min < 0.9 * fps0:
        timing.append(f"fps dipped to {fps_min} (baseline {fps0})")
    figures["failures"], figures["timing_notes"] = failures, timing
    return figures


def _flush_line(piece, shadow, pending, take_answers) -> None:
    """End whatever partial line the last batch left, so every line sent is complete."""
    for kind, value in shadow.feed(b"\n"):
        pending.append(value if kind == "line" else None)
    piece.write(b"\n")
