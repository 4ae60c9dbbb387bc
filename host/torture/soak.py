"""Campaign 5, soak: days of the piece on the simulator's clock, faster than real time, with
the simulator's endless crowd (tours of every gesture with pauses) during opening hours and
an empty room at night (quiet hours, the piece asleep). Sampled every simulated hour: this
process's RSS, open fds, threads, gc-tracked objects, and the loop's frame time p99.

Days of simulated time at the real rates (100 Hz sensors, 60 fps) would take hours here, so
the multi-day run lowers the sensor and LED rates (``sensor_hz``, ``led_fps``); every code
path still runs on every sample, frame and inference, which is what accumulates memory.
The verdict compares the end with the end of the warm-up (the first day unless
``warmup_s`` says otherwise): growth must stay within the bounds. The full-rate soak beside
it (``fullrate_hours``: 100 Hz sensing, 60 fps, the shipped voice speaking) runs simulated
hours and reports the least-squares slope per hour of RSS and gc-tracked objects after the
warm-up, with fds and threads, which must not change.
"""
from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

DAY = 86400.0


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(budget: dict, seed: int = 5) -> dict:
    days = float(budget["days"])
    sample_every = float(budget.get("sample_every_s", 3600.0))
    body, loop = _museum_piece(budget, seed)
    samples = []
    t_wall = time.monotonic()
    total = days * DAY
    done = 0.0
    while done < total - 1e-6:
        seg = min(sample_every, total - done)
        loop.loop.stop_event.clear()
        loop.run(seconds=seg)  # (run() ends by turning the LEDs off: harmless between segments)
        done += seg
        gc.collect()
        samples.append({"sim_h": round(done / 3600.0, 2), "rss_kb": _rss_kb(),
                        "fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(),
                        "gc_objects": len(gc.get_objects()), "frame_ms_p99": loop.frame_ms.percentile(99),
                        "frames": loop.frames_shown, "inferences": loop.inferences})
    body.close()
    loop.shutdown()
    per_day = max(1, int(round(budget.get("warmup_s", DAY) / sample_every)))
    first = samples[min(per_day, len(samples)) - 1]  # after the first day's warm-up
    last = samples[-1]
    failures = _leaks(first, last, budget) if len(samples) > per_day else []
    return {"simulated_days": round(done / DAY, 3), "sensor_hz": loop.sensor_period and
            round(1.0 / loop.sensor_period, 2), "led_fps": round(1.0 / loop.led_period, 2),
            "frames": loop.frames_shown, "inferences": loop.inferences,
            "wall_s": round(time.monotonic() - t_wall, 1),
            "rss_kb_first_day": first["rss_kb"], "rss_kb_end": last["rss_kb"],
            "rss_growth_kb_after_day1": last["rss_kb"] - first["rss_kb"],
            "gc_objects_first_day": first["gc_objects"], "gc_objects_end": last["gc_objects"],
            "fds": [samples[0]["fds"], last["fds"]], "threads": [samples[0]["threads"], last["threads"]],
            "frame_ms_p99_max": max((s["frame_ms_p99"] or 0) for s in samples),
            "phrases": len(loop.voice_log), "voice": loop.voice_name,
            "slope_per_hour_after_warmup": slopes(samples[per_day - 1:]),
            # the bounded rings (timeline, gesture log) fill for the first hour or so: the
            # second half says whether anything keeps growing once they are full
            "slope_per_hour_last_half": slopes(samples[len(samples) // 2:]),
            "samples": samples, "failures": failures}


def slopes(samples: list[dict]) -> dict:
    """Least-squares growth per simulated hour of RSS (kB) and gc objects over ``samples``."""
    if len(samples) < 2:
        return {}
    import numpy as np
    h = np.array([s["sim_h"] for s in samples], np.float64)
    out = {}
    for key in ("rss_kb", "gc_objects"):
        y = np.array([s[key] for s in samples], np.float64)
        out[key] = round(float(np.polyfit(h, y, 1)[0]), 1) if np.ptp(h) > 0 else None
    out["hours"] = round(float(h[-1] - h[0]), 2)
    return out


def _museum_piece(budget: dict, seed: int):
    """A simulated piece on a simulated clock that starts when the museum opens (9:00) and
    sleeps through quiet hours 22:00-08:00, as an exhibited piece would."""
    from lanthorn.device.engine.runtime import load
    from lanthorn.device.piece.params import ParamStore
    from lanthorn.device.piece.piece import Piece
    from lanthorn.device.storage.storage import SHIPPED_MODEL
    from lanthorn.hardware.body import open_body
    from lanthorn.hardware.profile import load_profile

    body = open_body(load_profile("sim"), sim=True, seed=seed, realtime=False)
    clock = body.clock
    params = ParamStore()
    params.set("quiet_hours", "22:00-08:00")
    params.set("quiet_mode", "sleep")
    start_minute = 9 * 60

    def minute_of_day() -> int:
        return int((start_minute + clock() / 60.0) % 1440)

    voice = None
    if budget.get("voice"):
        from lanthorn.device.piece.voice import load_voice
        from lanthorn.device.storage.storage import SHIPPED_VOICE
        voice = load_voice(str(SHIPPED_VOICE))
    loop = Piece(body, params=params, model=load(str(SHIPPED_MODEL)), clock=clock,
                 charge_compute=False, oled_thread=False, minute_of_day=minute_of_day,
                 sensor_hz=budget.get("sensor_hz", 100.0), led_fps=budget.get("led_fps", 60.0),
                 seed=seed, voice=voice, voice_thread=bool(budget.get("voice_thread", False)))
    return body, loop


def _leaks(first: dict, last: dict, budget: dict) -> list[str]:
    """What grew after the first day's warm-up beyond its bound: RSS, gc objects, fds, threads."""
    failures = []
    growth_kb = last["rss_kb"] - first["rss_kb"]
    obj_growth = last["gc_objects"] - first["gc_objects"]
    bound_kb = budget.get("rss_bound_kb", 2048)
    bound_obj = budget.get("gc_bound", 2000)
    if growth_kb > bound_kb:
        failures.append(f"RSS grew {growth_kb} kB after the first day (bound {bound_kb})")
    if obj_growth > bound_obj:
        failures.append(f"gc objects grew by {obj_growth} after the first day (bound {bound_obj})")
    if last["fds"] != first["fds"] or last["threads"] != first["threads"]:
        failures.append(f"fds/threads changed: {first['fds']}/{first['threads']} -> "
                        f"{last['fds']}/{last['threads']}")
    return failures
