"""The systemd unit's restart and watchdog semantics, proven under kills and a hang.

A small supervisor that honours what ``lanthorn install-service`` writes: ``Type=notify``
(started = READY=1 received on ``$NOTIFY_SOCKET``, within ``TimeoutStartSec``),
``WatchdogSec`` (no WATCHDOG=1 for that long: SIGABRT, then SIGKILL, as systemd does),
``Restart=on-failure`` with ``RestartSec`` (a death by signal or a watchdog timeout is a
failure; a clean exit is not) and ``StartLimitBurst`` per ``StartLimitIntervalSec``. The
values are read from the generated unit text, so a change there is tested here.

The piece is a real ``lanthorn run --sim --serial`` process; it is killed with SIGKILL at
random instants and frozen once with SIGSTOP (a hung loop: the watchdog must fire).
"""
from __future__ import annotations

import os
import random
import signal
import socket
import tempfile
import time
from pathlib import Path


def unit_settings() -> dict[str, str]:
    from lanthorn.device.service.service import unit_text
    from lanthorn.vocabulary import SYSTEM_DATA_DIR
    text = unit_text("lanthorn", SYSTEM_DATA_DIR, None, "/dev/ttyGS0", [])
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def _seconds(v: str) -> float:
    return float(v.rstrip("s"))


class Supervisor:
    def __init__(self, piece, unit: dict[str, str], watchdog_s: float | None = None):
        self.piece, self.unit = piece, unit
        assert unit["Type"] == "notify" and unit["Restart"] == "on-failure"
        # (the bounded test may shorten the unit's WatchdogSec to keep the suite quick)
        self.watchdog_s = watchdog_s or _seconds(unit["WatchdogSec"])
        self.restart_s = _seconds(unit["RestartSec"])
        self.start_timeout = _seconds(unit.get("TimeoutStartSec", "90"))
        self.burst = int(unit.get("StartLimitBurst", "5"))
        self.burst_interval = _seconds(unit.get("StartLimitIntervalSec", "10"))
        self.dir = tempfile.mkdtemp(prefix="lanthorn-notify-")
        self.address = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        piece.env.update(NOTIFY_SOCKET=self.address, WATCHDOG_USEC=str(int(self.watchdog_s * 1e6)))
        self.starts: list[float] = []
        self.events: list[tuple[str, float]] = []
        self.watchdog_pings = 0

    def _recv(self) -> str | None:
        try:
            return self.sock.recv(4096).decode()
        except (socket.timeout, BlockingIOError):
            return None

    def start(self) -> float:
        """Start the piece; returns the seconds until READY=1. Honours the start limit."""
        now = time.monotonic()
        recent = [t for t in self.starts if now - t < self.burst_interval]
        if len(recent) >= self.burst:
            raise RuntimeError(f"start limit hit ({self.burst} starts in {self.burst_interval:g} s)")
        self.starts.append(now)
        self.piece.start(wait=0)
        end = now + self.start_timeout
        while time.monotonic() < end:
            msg = self._recv()
            if msg and "READY=1" in msg:
                return time.monotonic() - now
            if not self.piece.alive():
                raise RuntimeError(f"exited with {self.piece.proc.returncode} before READY")
        raise RuntimeError("no READY=1 within TimeoutStartSec")

    def watch(self, seconds: float) -> str:
        """Supervise for up to ``seconds``: returns "running", "exited:CODE", "signal:NAME" or
        "watchdog" (no WATCHDOG=1 for WatchdogSec: aborted and killed)."""
        last = time.monotonic()
        end = last + seconds
        while time.monotonic() < end:
            msg = self._recv()
            if msg and "WATCHDOG=1" in msg:
                self.watchdog_pings += 1
                last = time.monotonic()
            rc = self.piece.proc.poll()
            if rc is not None:
                return f"signal:{signal.Signals(-rc).name}" if rc < 0 else f"exited:{rc}"
            if time.monotonic() - last > self.watchdog_s:
                self.piece.proc.send_signal(signal.SIGABRT)
                try:
                    self.piece.proc.wait(2)
                except Exception:
                    self.piece.proc.kill()
                    self.piece.proc.wait(5)
                return "watchdog"
        return "running"

    def should_restart(self, outcome: str) -> bool:
        """Restart=on-failure: an unclean exit code, a signal, or a watchdog timeout."""
        return outcome == "watchdog" or outcome.startswith("signal:") or \
            (outcome.startswith("exited:") and outcome != "exited:0")

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.address)
            os.rmdir(self.dir)
        except OSError:
            pass


def run(work: Path, budget: dict, seed: int = 7) -> dict:
    from lanthorn.host.torture.piece import Piece
    rng = random.Random(seed)
    unit = unit_settings()
    piece = Piece(work / "supervised-data", log_path=work / "supervised.log")
    sup = Supervisor(piece, unit, budget.get("watchdog_s"))
    failures = []
    times = {"ready": [], "restart": [], "hang_detect": [], "console": []}
    faults = {"kill": 0, "hang": 0}
    t0 = time.monotonic()
    try:
        times["ready"].append(sup.start())
        plan = ["kill"] * budget["kills"] + ["hang"] * budget["hangs"]
        rng.shuffle(plan)
        for what in plan:
            state = sup.watch(rng.uniform(0.5, 2.0))
            if state != "running":
                failures.append(f"the piece stopped on its own before a {what}: {state}")
            t_fault = time.monotonic()
            # SIGSTOP: a hung loop, no more heartbeats
            piece.proc.send_signal(signal.SIGKILL if what == "kill" else signal.SIGSTOP)
            faults[what] += 1
            outcome = sup.watch(sup.watchdog_s * 3)
            if what == "hang":
                if outcome != "watchdog":
                    failures.append(f"a frozen piece was not caught by the watchdog: {outcome}")
                else:
                    times["hang_detect"].append(time.monotonic() - t_fault)
            if not sup.should_restart(outcome):
                failures.append(f"after a {what} the unit would not restart ({outcome})")
                break
            if not _restarted(sup, piece, what, t_fault, times, failures):
                break
        # a clean stop (SIGTERM) is not a failure: on-failure does not restart it
        rc = piece.stop()
        if sup.should_restart(f"exited:{rc}"):
            failures.append(f"SIGTERM ended the piece with {rc}: the unit would restart it")
    finally:
        piece.close()
        sup.close()

    def worst(xs):
        return round(max(xs), 2) if xs else None
    return {"unit": {k: unit[k] for k in ("Type", "Restart", "RestartSec", "WatchdogSec",
                                           "StartLimitBurst", "StartLimitIntervalSec")},
            "watchdog_s_used": sup.watchdog_s, "sigkills": faults["kill"], "hangs": faults["hang"],
            "restarts": len(times["ready"]) - 1, "ready_s_max": worst(times["ready"]),
            "fault_to_ready_s_max": worst(times["restart"]),
            "ready_to_console_s_max": worst(times["console"]),
            "watchdog_detect_s": [round(x, 2) for x in times["hang_detect"]],
            "watchdog_pings": sup.watchdog_pings,
            "seconds": round(time.monotonic() - t0, 1), "failures": failures}


def _restarted(sup, piece, what: str, t_fault: float, times: dict, failures: list) -> bool:
    """Start the piece again after RestartSec, as systemd would, and check its console
    answers; False (with the failure noted) if it did not come back."""
    time.sleep(sup.restart_s)  # RestartSec
    try:
        times["ready"].append(sup.start())
        times["restart"].append(time.monotonic() - t_fault)
        # READY comes from the loop; the console opens its port beside it (and a port being
        # opened drops what was sent before): wait for its first answer
        times["console"].append(piece.wait_ready(30))
        ans = piece.call("status", timeout=30)
        if not ans.get("ok"):
            failures.append(f"after a {what}: status answered {ans}")
    except Exception as exc:
        failures.append(f"after a {what}: did not come back: {exc}")
        return False
    return True
