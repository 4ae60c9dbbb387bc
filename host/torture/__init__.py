"""The torture harness: fault-injection campaigns against the real piece, with figures.

Museums trust systems that publish their torture figures. Each campaign drives the piece
the way a gallery does by accident -- garbage on the console, damaged pushes, power cuts,
full and read-only cards, loose sensor cables, months of opening hours -- counts what it
did and what went wrong, and returns a dict of figures with a ``failures`` list (empty when
every claim held). ``FULL`` is the published run (device/RELIABILITY.md), ``BOUNDED`` the
seconds-long version that runs in the test suite with the same code and fixed seeds.

Campaigns: ``fuzz`` (console), ``push`` (push faults), ``power`` (SIGKILL during save,
preset save, push and swap), ``crash`` (every state a power cut may leave, booted), ``storage`` (full, read-only, corrupt, poisoned), ``sensors``
(fault episodes on every part), ``soak`` (simulated days), ``lock`` (PIN brute force, refused
writes), ``supervisor`` (systemd Restart=/WatchdogSec= under kills and a hang).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

CAMPAIGNS = ("fuzz", "push", "power", "crash", "storage", "sensors", "soak", "lock",
             "supervisor")

FULL = {
    "fuzz": {"bytes": 3_000_000, "status_every_s": 2.0, "settle_s": 3.0},
    "push": {"pushes": 220, "clean_every": 1, "signed": 30},
    "power": {"storage_kills": 520, "piece_kills": 40, "syscall_kills": 200},
    "crash": {"bits": 10, "full": True},
    "storage": {},
    "sensors": {"episodes": 10_000},
    "soak": {"days": 7.0, "sensor_hz": 1.0, "led_fps": 0.5, "sample_every_s": 6 * 3600.0,
             "fullrate_hours": 4.0, "fullrate_sample_s": 600.0, "fullrate_warmup_s": 1800.0},
    "lock": {"brute_s": 60.0},
    "supervisor": {"kills": 8, "hangs": 1},
}

BOUNDED = {
    "fuzz": {"bytes": 60_000, "status_every_s": 4.0, "settle_s": 1.0},
    "push": {"pushes": 12, "clean_every": 3, "signed": 3},
    "power": {"storage_kills": 16, "piece_kills": 2},
    "crash": {"bits": 3},
    # (the other storage cases run in-process in tests/test_reliability_regressions.py)
    "storage": {"poisoned_boots": 1, "only": ["corrupt settings.json", "lock.json damaged",
                                              "read-only + corrupt current model",
                                              "full: save, lock, unlock, preset delete"]},
    "sensors": {"episodes": 80},
    "soak": {"days": 2 / 24, "sensor_hz": 1.0, "led_fps": 0.5, "sample_every_s": 900.0,
             "warmup_s": 1800.0, "fullrate_hours": 3 / 60, "fullrate_sample_s": 30.0,
             "fullrate_warmup_s": 60.0},
    "lock": {"brute_s": 3.0},
    "supervisor": {"kills": 1, "hangs": 1, "watchdog_s": 4.0},
}


def run_campaign(name: str, budget: dict, work: Path, seed: int = 0) -> dict:
    """One campaign in ``work`` (a scratch directory); returns its figures."""
    from lanthorn.host.torture.piece import Piece
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if name in ("fuzz", "push", "lock"):
        module = __import__(f"lanthorn.host.torture.{_MODULES[name]}", fromlist=["run"])
        piece = Piece(work / f"{name}-data", seed=seed, log_path=work / f"{name}.log").start()
        try:
            figures = module.run(piece, budget, seed=seed + _SEEDS[name])
        finally:
            piece.close()
    elif name == "power":
        from lanthorn.host.torture import power_cuts
        figures = {"storage": power_cuts.storage_trials(work, budget["storage_kills"], seed + 3),
                   "piece": power_cuts.piece_trials(work, budget["piece_kills"], seed + 3)}
        if budget.get("syscall_kills"):
            figures["syscall"] = power_cuts.syscall_trials(work, budget["syscall_kills"], seed + 3)
        figures["failures"] = [f for part in ("storage", "piece", "syscall")
                               for f in figures.get(part, {}).get("failures", [])]
    elif name == "crash":
        from lanthorn.host.torture import crash_scenarios
        figures = crash_scenarios.run(work, budget, seed + 8)
    elif name == "storage":
        from lanthorn.host.torture import storage_faults
        figures = storage_faults.run(work, budget, seed + 3)
    elif name == "sensors":
        from lanthorn.host.torture import sensor_faults
        figures = sensor_faults.run(budget, seed + 4)
    elif name == "soak":
        from lanthorn.host.torture import soak
        figures = soak.run(budget, seed + 5)
        if budget.get("fullrate_hours"):
            hours = budget["fullrate_hours"]
            full = soak.run({"days": hours / 24.0, "voice": True,
                             "sample_every_s": budget.get("fullrate_sample_s", 900.0),
                             "warmup_s": budget.get("fullrate_warmup_s", 1800.0)}, seed + 5)
            full["samples"] = full["samples"][-24:]
            figures["fullrate"] = full
            figures["failures"] = figures["failures"] + full["failures"]
    elif name == "supervisor":
        from lanthorn.host.torture import supervisor
        figures = supervisor.run(work, budget, seed + 7)
    else:
        raise ValueError(f"no campaign {name!r} (campaigns: {', '.join(CAMPAIGNS)})")
    figures["campaign_s"] = round(time.monotonic() - t0, 1)
    return figures


_MODULES = {"fuzz": "console_fuzz", "push": "push_faults", "lock": "lock"}
_SEEDS = {"fuzz": 1, "push": 2, "lock": 6}


def run_all(names=CAMPAIGNS, budgets: dict = FULL, seed: int = 0, keep: Path | None = None,
            progress=print) -> dict:
    """Every named campaign in a fresh scratch directory; returns {name: figures}."""
    work = Path(tempfile.mkdtemp(prefix="lanthorn-torture-")) if keep is None else keep
    results = {}
    try:
        for name in names:
            progress(f"campaign {name} ...")
            try:
                results[name] = run_campaign(name, budgets[name], work / name, seed)
            except Exception as exc:  # a harness that broke is a result too, not a crash
                results[name] = {"failures": [f"campaign crashed: {type(exc).__name__}: {exc}"]}
            progress(f"campaign {name}: {len(results[name]['failures'])} failures "
                     f"({results[name].get('campaign_s', '?')} s)")
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return results


def table(results: dict) -> list[str]:
    """The headline figures, one row per campaign."""
    rows = [("campaign", "done", "findings", "failures")]
    for name, f in results.items():
        rows.append((name, _done(name, f), _found(name, f), str(len(f.get("failures", [])))))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    return [" | ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]


def _done(name: str, f: dict) -> str:
    g = f.get
    if "failures" in f and len(f) == 1:
        return "-"
    if name == "fuzz":
        return f"{g('bytes_fuzzed'):,} bytes, {g('lines'):,} lines"
    if name == "push":
        locked = dict(g("locked_signature_pushes") or {})
        locked.pop("signed by the trusted key, installed", None)
        return (f"{g('pushes_corrupted')} faulty pushes, {g('clean_pushes')} clean"
                + (f", {sum(locked.values())} badly signed to a locked piece" if locked else ""))
    if name == "power":
        n = f['storage']['kills'] + f['piece']['kills'] + f.get('syscall', {}).get('kills', 0)
        return f"{n} SIGKILLs" + (f" ({f['syscall']['kills']} on a syscall)" if "syscall" in f else "")
    if name == "crash":
        return f"{g('crash_states'):,} crash states of {g('operations')} operations"
    if name == "storage":
        return f"{g('storage_faults')} storage faults" + (f" ({len(g('not_run'))} not run)"
                                                          if g("not_run") else "")
    if name == "sensors":
        return (f"{g('fault_episodes'):,} fault episodes ({g('stuck_episodes')} stuck), "
                f"{g('faulted_calls'):,} faulty calls")
    if name == "soak":
        return f"{g('simulated_days')} simulated days"
    if name == "lock":
        return f"{g('guesses_sent')} PIN guesses, {g('writes_tried')} writes"
    if name == "supervisor":
        return f"{g('sigkills')} SIGKILLs, {g('hangs')} hang"
    return "-"


def _found(name: str, f: dict) -> str:
    g = f.get
    if "failures" in f and len(f) == 1:
        return f["failures"][0][:80]
    if name == "fuzz":
        return (f"unanswered {g('unanswered')}, extra {g('extra_answers')}, fps min "
                f"{g('fps_min')}/{g('fps_baseline')}, RSS +{g('rss_growth_kb')} kB")
    if name == "push":
        trusted = (g("locked_signature_pushes") or {}).get("signed by the trusted key, installed")
        return (f"clean ok {g('clean_pushes_ok')}/{g('clean_pushes')}, same process {g('same_process')}"
                + (f", trusted-key push installed {bool(trusted)}" if trusted is not None else ""))
    if name == "power":
        s = f["storage"]
        return (f"unbootable {s['unbootable']}, corrupt settings {s['corrupt_settings']}, "
                f"temp files swept {s['temp_files_swept_at_boot']}, piece restarts "
                f"{f['piece']['restarts']}")
    if name == "crash":
        return f"{g('bad_states')} states neither old nor new"
    if name == "storage":
        return "light + console in every case" if not g("failures") else g("failures")[0][:80]
    if name == "sensors":
        return (f"crashes {g('crashes')}, detect <= {g('detect_s_max')} s, recover <= "
                f"{g('recover_s_max')} s, stuck reported <= {g('stuck_detect_s_max')} s "
                f"(thresholds {g('stuck_thresholds_s')})")
    if name == "soak":
        full = (g("fullrate") or {}).get("slope_per_hour_after_warmup") or {}
        rate = (f"; full rate: RSS {full.get('rss_kb')} kB/h, gc objects "
                f"{full.get('gc_objects')}/h over {full.get('hours')} h" if full else "")
        return (f"RSS +{g('rss_growth_kb_after_day1')} kB after day 1, gc objects "
                f"{g('gc_objects_first_day')} -> {g('gc_objects_end')}" + rate)
    if name == "lock":
        return f"evaluated {g('guesses_evaluated')}, gaps {g('gaps_between_evaluated_guesses_s')}"
    if name == "supervisor":
        return f"restarts {g('restarts')}, watchdog fired after {g('watchdog_detect_s')} s"
    return ""
