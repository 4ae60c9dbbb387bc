"""The demo: the simulated artwork on a model, what it did and how fast (``lanthorn demo``).

:func:`open_demo` opens the simulated body (``hardware/profiles/sim.toml``) and runs the
real device loop on it (:class:`lanthorn.device.piece.piece.Piece`: 100 Hz sensing, the int8
model at 25 Hz, the behaviour, 60 fps LEDs, the OLED on its own thread) with the shipped
default bundle, while the scripted visitor walks up, taps, double-taps, strokes both ways,
holds, lays a palm on the ring and leaves. It prints a timeline (what the piece recognised,
its mood, the phrases it showed, beside what the visitor really did), the frame time
p50/p99, the inference time and the touch-to-light latency, and writes

* ``OUT/summary.json``: those figures, the recognised gestures and the visitor's script;
* ``OUT/demo.gif``: the LED ring and the OLED as they were (plays at real speed).

Simulated time skips the loop's idle waits but is charged with every task's real compute
time, so it runs several times faster than real time while the timings it reports are this
machine's. ``--window`` runs in real time in a window where the pads can be touched with
the mouse (the GIF and summary are written as well).
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from lanthorn.errors import UserError

FRAME_BUDGET_MS = 1000.0 / 60.0
MATCH_SLACK_S = 0.8  # a recognition may come this long after the gesture ended (window lag)


def _given_or_shipped(path: Path | None, option: str, shipped: Path, loader, missing: str):
    """(loaded or None, note): the bundle given with ``option``, else the shipped one."""
    if path is not None:
        if not path.is_file():
            raise UserError(f"{option} {path}: no such file")
        return loader(path), str(path)
    if not shipped.is_file():
        return None, missing
    return loader(shipped), "shipped default"


def load_model(path: Path | None, profile=None):
    """(model or None, note): the given bundle, else the piece's shipped one (its profile's
    ``model``; the default piece's temperament without one)."""
    from lanthorn.device.engine.runtime import load
    from lanthorn.device.storage.storage import shipped_model_for
    shipped = shipped_model_for(profile)
    return _given_or_shipped(path, "--model", shipped, load,
                             f"the shipped model device/models/{shipped.name} is missing "
                             "(make model builds it); running the idle animation")


def load_voice(path: Path | None, off: bool):
    """(voice or None, note): the given voice bundle, else the shipped default voice."""
    from lanthorn.device.piece.voice import load_voice
    from lanthorn.device.storage.storage import SHIPPED_VOICE
    if off:
        return None, "off (--no-voice): phrase banks"
    return _given_or_shipped(path, "--voice", SHIPPED_VOICE, load_voice,
                             "the shipped voice device/models/voice.lanthorn is missing (make "
                             "voice builds it); phrase banks")


def check_options(seconds, fps: float, out: Path) -> None:
    """One-line errors for options the demo cannot honour, before anything is opened."""
    if seconds is not None and not (0 < seconds <= 600):
        raise UserError(f"--seconds must be between 0 and 600, got {seconds:g}")
    if not (0 < fps <= 30):
        raise UserError(f"--fps must be above 0 and at most 30, got {fps:g}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for demo.gif and summary.json")


def params_from(settings: list[str]):
    """A ParamStore with the ``NAME=VALUE`` settings applied, as on the console."""
    from lanthorn.device.piece.params import ParamStore
    params = ParamStore()
    for item in settings:
        name, eq, value = item.partition("=")
        if not eq:
            raise UserError(f"--set takes NAME=VALUE, not {item!r}")
        params.set_text(name.strip(), value)
    return params


@dataclass
class Demo:
    """An opened demo: the simulated body, the device loop on it, and what draws them."""
    body: object
    loop: object
    renderer: object
    window: object
    model: object
    model_note: str
    voice: object
    voice_note: str
    notes: list

    def caption(self, t: float) -> str:
        seen = self.loop.mood.gesture or "-"
        return (f"t = {t:5.2f} s   visitor: {self.body.gesture_at(t)}\n"
                f"recognised: {seen}   mood: {self.loop.mood.mood}")


def _renderer():
    try:
        from lanthorn.hardware.sim.render import Renderer
        return Renderer()
    except ImportError as exc:
        raise UserError(f"the demo needs the simulator extras ({exc.name} is missing): "
                        "pip install 'lanthorn[sim]'") from None


def piece_profile(piece: str):
    """The simulator profile of a shipped piece (``--piece``: lanthorn.vocabulary.PIECES)."""
    from lanthorn.hardware.profile import load_profile
    from lanthorn.vocabulary import PIECES
    if piece not in PIECES:
        raise UserError(f"--piece {piece!r}: no such piece (shipped: {', '.join(PIECES)})")
    return load_profile(PIECES[piece])


def _models(model_path, voice_path, no_voice: bool, profile=None):
    """(model, note, voice, note, warnings): loading warnings become notes, not tracebacks."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, model_note = load_model(model_path, profile)
        voice, voice_note = load_voice(voice_path, no_voice)
    return model, model_note, voice, voice_note, [str(w.message) for w in caught]


def open_demo(model_path=None, voice_path=None, no_voice=False, seed=0, window=False,
              visitor=False, gestures=None, settings=(), piece: str = "lantern") -> Demo:
    """Open the piece's simulated body (with the pygame window when ``window``) and the real
    device loop on it; the scripted visitor comes unless the mouse is the visitor."""
    from lanthorn.device.piece.piece import Piece
    from lanthorn.hardware.body import open_body
    renderer = _renderer()
    profile = piece_profile(piece)
    model, model_note, voice, voice_note, notes = _models(model_path, voice_path, no_voice,
                                                          profile)
    script = [] if window and not visitor else None  # the mouse is the visitor
    body = open_body(profile, sim=True, seed=seed, script=script, realtime=window,
                     gestures=gestures)
    try:
        live_window = None
        if window:
            from lanthorn.hardware.sim.window import LiveWindow
            live_window = LiveWindow(body, renderer)
        params = params_from(list(settings))
    except UserError:
        body.close()
        raise
    loop = Piece(body, params=params, model=model, clock=body.clock,
                      charge_compute=True, minute_of_day=lambda: 12 * 60, seed=seed,
                      voice=voice)
    if model is None:
        notes.append(model_note)
    return Demo(body, loop, renderer, live_window, model, model_note, voice, voice_note, notes)


def run_demo(demo: Demo, seconds, fps: float):
    """Run the piece (simulated time, or real time in the window); returns the GIF recorder
    with its frames, the wall time taken and whether Ctrl-C stopped it early (what ran is
    kept and reported)."""
    from lanthorn.hardware.sim.render import GifRecorder
    recorder = GifRecorder(fps=fps)
    gif_every = 1.0 / fps
    state = {"next_gif": 0.0}
    body, renderer = demo.body, demo.renderer

    def on_step(lp) -> None:  # simulated time: record a GIF frame now and then
        t = lp.clock() - lp.t_start
        if t >= state["next_gif"]:
            state["next_gif"] += gif_every
            if lp.oled is not None:
                lp.oled.flush()  # the picture shows the OLED as it is now
            recorder.add(renderer.body_frame(body, demo.caption(t)))

    started, interrupted = time.perf_counter(), False
    try:
        if demo.window is None:
            demo.loop.run(seconds=seconds, on_step=on_step)
        else:
            live(demo.loop, demo.window, recorder, gif_every, seconds, demo.caption)
    except KeyboardInterrupt:
        demo.loop.stop()
        interrupted = True
    finally:
        if demo.window is not None:
            demo.window.close()
    return recorder, time.perf_counter() - started, interrupted


def write_outputs(summary: dict, recorder, out: Path) -> Path:
    """demo.gif (when frames were recorded) and summary.json in ``out``; returns the latter."""
    import json

    from lanthorn.device.storage.atomic import atomic_write_text
    out.mkdir(parents=True, exist_ok=True)
    if len(recorder):
        gif = recorder.write(out / "demo.gif")
        summary["gif"] = str(gif)
        summary["gif_frames"] = len(recorder)
    path = out / "summary.json"
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    return path


def live(loop, window, recorder, gif_every: float, seconds, caption, window_fps: float = 30.0):
    """Real time in a window: the loop runs on its own thread at its own rates while this
    (main) thread, which pygame needs, handles the mouse and draws the window. The mouse
    changes the simulated world only between two loop steps (``step_lock``)."""
    import threading
    lock = threading.Lock()
    loop.step_lock = lock
    runner = threading.Thread(target=loop.run, kwargs={"seconds": seconds}, name="lanthorn-loop",
                              daemon=True)
    runner.start()
    next_gif = 0.0
    try:
        while runner.is_alive():
            tick = time.monotonic()
            with lock:
                open_ = window.poll()
            if not open_:
                break
            if loop.t_start is not None:
                t = loop.clock() - loop.t_start
                picture = window.show_body(caption(t))
                if t >= next_gif:
                    recorder.add(picture)
                    next_gif += gif_every
            time.sleep(max(0.0, 1.0 / window_fps - (time.monotonic() - tick)))
    finally:
        loop.stop()
        runner.join(timeout=10)


def visitor_gestures(body, until: float) -> list[dict]:
    """What the scripted visitor really did (the simulator's honest segments)."""
    return [{"start": round(s.start, 3), "end": round(s.end, 3), "gesture": s.gesture}
            for s in _segments(body) if s.start < until and s.gesture != "nobody"]


def _segments(body) -> list:
    """The visitor's segments: the ring's, or (a body handled, not touched) the handler's."""
    visitor = getattr(body, "visitor", None)
    if visitor is not None and body.touch is None:
        return visitor.segments
    return body.world.segments


def match(recognised: list[dict], visitor: list[dict]) -> list[dict]:
    """For each gesture the visitor made: was the same gesture recognised during it (or
    shortly after: the model sees a 2 s window and needs the gesture to be under way)?"""
    out = []
    for v in visitor:
        hits = [r for r in recognised if r["label"] == v["gesture"]
                and v["start"] <= r["t"] <= v["end"] + MATCH_SLACK_S]
        out.append({**v, "recognised": bool(hits),
                    "after_s": round(hits[0]["t"] - v["start"], 3) if hits else None,
                    "after_end_s": round(hits[0]["t"] - v["end"], 3) if hits else None})
    return out


def lag_figures(matched: list[dict]) -> dict:
    """How long the piece takes to read a gesture: median and worst time from the gesture's
    start, and from its end (negative: read while still under way), over the recognised
    ones; and what was missed (the visitor's gestures, each one take of a gesture)."""
    import statistics

    hit = [m for m in matched if m["recognised"]]
    starts = [m["after_s"] for m in hit]
    ends = [m["after_end_s"] for m in hit]
    return {"recognised": len(hit), "of": len(matched),
            "take_accuracy": round(len(hit) / len(matched), 4) if matched else None,
            "after_start_s_median": round(statistics.median(starts), 3) if hit else None,
            "after_start_s_max": max(starts) if hit else None,
            "after_end_s_median": round(statistics.median(ends), 3) if hit else None,
            "after_end_s_max": max(ends) if hit else None,
            "missed": [f"{m['gesture']} at {m['start']:.1f} s" for m in matched
                       if not m["recognised"]]}


def build_summary(loop, body, model, model_note: str, wall_s: float) -> dict:
    from lanthorn.device.piece.behaviour import flicker
    s = loop.summary()
    timeline = [e.to_json() for e in loop.timeline]
    recognised = [{"t": e["t"], "label": e["text"], "p": e.get("p")}
                  for e in timeline if e["kind"] == "gesture"]
    visitor = visitor_gestures(body, s["seconds"]) if _segments(body) else []
    matched = match(recognised, visitor)
    frame = s["frame_ms"]
    return {
        "seconds": s["seconds"],
        "wall_s": round(wall_s, 3),
        "speedup": round(s["seconds"] / wall_s, 2) if wall_s > 0 else None,
        "model": {"name": s["model"], "source": model_note, "backend": s["backend"],
                  "sha256": getattr(model, "sha256", None)},
        "recognised_gestures": sorted({r["label"] for r in recognised}),
        "recognised": recognised,
        "visitor": matched,
        "visitor_gestures_recognised": f"{sum(m['recognised'] for m in matched)}/{len(matched)}",
        "lag": lag_figures(matched),
        "flicker": dict(flicker(list(loop.gesture_log), s["seconds"],
                                (loop.labels or ("nobody",))[0]),
                        smoothing={k: loop.params.get(k) for k in ("gesture_smoothing",
                                                                  "gesture_hold_s")}),
        "moods": [{"t": e["t"], "mood": e["text"]} for e in timeline if e["kind"] == "mood"],
        "phrases": [{"t": e["t"], "text": e["text"], "by": e.get("by")}
                    for e in timeline if e["kind"] == "phrase"],
        "voice": voice_figures(s["voice"]),
        "frame_ms": frame,
        "frame_cpu_ms": s["frame_cpu_ms"],
        "sample_ms": s["sample_ms"],
        "frame_ms_p50": frame.get("p50"),
        "frame_ms_p99": frame.get("p99"),
        "frame_budget_ms": round(FRAME_BUDGET_MS, 3),
        "frame_p99_within_budget": (frame.get("p99") is not None
                                    and frame["p99"] < FRAME_BUDGET_MS),
        "fps": round(s["frames"] / s["seconds"], 2) if s["seconds"] else None,
        "frames": s["frames"],
        "frames_late_dropped": max(0, round(s["seconds"] * 60) - s["frames"]),
        "infer_ms": s["infer_ms"],
        "inferences": s["inferences"],
        "touch_to_light_ms": s["touch_to_light_ms"],
        "cpu_share": s["cpu_share"],
        "busy_share": s["busy_share"],
        "sensors": s["sensors"],
        "timeline": timeline,
        "measured_on": {"machine": platform.machine(), "python": platform.python_version(),
                        "processor": platform.processor() or None, "cpus": os.cpu_count(),
                        "load_average": [round(x, 2) for x in os.getloadavg()],
                        "note": "simulated sensors (their reads count as work); compute time "
                                "is real wall time, idle time skipped"},
    }


def voice_figures(v: dict) -> dict:
    """The voice part of the summary: generation time and the frames while it spoke."""
    fs = v["frame_ms_while_speaking"]
    return {**v, "phrase_ms_p50": v["phrase_ms"].get("p50"), "phrase_ms_p99": v["phrase_ms"].get("p99"),
            "frame_ms_p99_while_speaking": fs.get("p99"),
            "frame_p99_within_budget_while_speaking": (fs.get("p99") is not None
                                                        and fs["p99"] < FRAME_BUDGET_MS)}


def _fmt(d: dict, key: str) -> str:
    v = d.get(key)
    return "-" if v is None else f"{v:.2f}"


def _lag_lines(lag: dict) -> list[str]:
    if not lag["recognised"]:
        return []
    return [f"recognition: {lag['recognised']}/{lag['of']} of the visitor's gestures "
            f"(take-level accuracy {100 * lag['take_accuracy']:.0f}%"
            + (f"; missed {', '.join(lag['missed'])}" if lag["missed"] else "")
            + f"); read {lag['after_start_s_median']:.2f} s after a gesture starts "
            f"(median; worst {lag['after_start_s_max']:.2f} s), "
            f"{lag['after_end_s_median']:+.2f} s after it ends (worst "
            f"{lag['after_end_s_max']:+.2f} s)"]


def report_lines(s: dict) -> list[str]:
    """The timeline and the figures, as the lines ``lanthorn demo`` prints."""
    out = []
    out.append("timeline (what the piece recognised, felt and said; the visitor's real gestures in []):")
    visitor = {round(v["start"], 2): v for v in s["visitor"]}
    events = [(e["t"], e) for e in s["timeline"] if e["kind"] != "model"]
    events += [(v["start"], {"kind": "visitor", "text": v["gesture"]}) for v in visitor.values()]
    for t, e in sorted(events, key=lambda x: x[0]):
        if e["kind"] == "visitor":
            line = f"[visitor: {e['text']}]"
        elif e["kind"] == "gesture":
            line = f"recognised {e['text']} (p={e.get('p', 0):.2f})"
        elif e["kind"] == "mood":
            line = f"mood -> {e['text']}"
        elif e["kind"] == "phrase":
            line = f'says "{e["text"]}"' + (" (voice)" if e.get("by") == "voice" else "")
        else:
            line = e["text"]
        out.append(f"  {t:6.2f} s  {line}")
    f, i, lat = s["frame_ms"], s["infer_ms"], s["touch_to_light_ms"]
    verdict = "within" if s["frame_p99_within_budget"] else "OVER"
    out.append(f"recognised gestures: {', '.join(s['recognised_gestures']) or 'none'} "
          f"(visitor's gestures recognised: {s['visitor_gestures_recognised']})")
    out += _lag_lines(s["lag"])
    fl = s["flicker"]
    out.append(f"flicker: {fl['flips']} flips between gestures ({fl['flips_per_s']}/s), "
          f"{fl['changes']} changes of the recognised gesture, median hold "
          f"{fl['hold_s_median']} s, {fl['holds_under_0_5_s']} holds under 0.5 s "
          f"(gesture_smoothing {fl['smoothing']['gesture_smoothing']}, gesture_hold_s "
          f"{fl['smoothing']['gesture_hold_s']})")
    cpu, smp = s["frame_cpu_ms"], s["sample_ms"]
    out.append(f"frame time: p50 {_fmt(f, 'p50')} ms, p99 {_fmt(f, 'p99')} ms ({verdict} the "
          f"{s['frame_budget_ms']:.1f} ms budget of 60 fps), {s['frames']} frames at {s['fps']} fps")
    out.append(f"  as CPU time: p50 {_fmt(cpu, 'p50')} ms, p99 {_fmt(cpu, 'p99')} ms; one sensor "
          f"sample (simulated reads) p50 {_fmt(smp, 'p50')} ms; machine load average "
          f"{s['measured_on']['load_average'][0]} on {s['measured_on']['cpus']} CPUs")
    out.append(f"inference: p50 {_fmt(i, 'p50')} ms, p99 {_fmt(i, 'p99')} ms "
          f"({s['inferences']} runs, {s['model']['backend'] or 'no model'})")
    out.append(f"touch-to-light: p50 {_fmt(lat, 'p50')} ms, p99 {_fmt(lat, 'p99')} ms "
          f"({lat.get('n', 0)} touches)")
    v = s["voice"]
    if v.get("name"):
        ph, fs = v["phrase_ms"], v["frame_ms_while_speaking"]
        out.append(f"voice {v['name']}: {v['phrases']} phrases generated, {v['fallbacks']} fell back "
              f"to the bank; generation p50 {_fmt(ph, 'p50')} ms, p99 {_fmt(ph, 'p99')} ms "
              f"(own thread); frame time while speaking p50 {_fmt(fs, 'p50')} ms, p99 "
              f"{_fmt(fs, 'p99')} ms over {fs.get('n', 0)} frames (as CPU time p99 "
              f"{_fmt(v['frame_cpu_ms_while_speaking'], 'p99')} ms)")
    else:
        out.append(f"voice: none ({v.get('note', 'phrase banks')})")
    out.append(f"loop CPU: {100 * (s['cpu_share'] or 0):.1f}% of one core "
          f"({100 * (s['busy_share'] or 0):.1f}% in wall time, preemption included)")
    return out
