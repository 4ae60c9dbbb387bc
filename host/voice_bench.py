"""The voice in ``lanthorn bench``: per-phrase latency of the whole sampler loop, ours against
onnxruntime int8 on the twin, in one interleaved run, with the phrases compared.

Per *character* the voice is an ordinary bundle (one model call), benched like every model
by :func:`lanthorn.host.bench.bench_case`. Per *phrase* is what the piece waits for:
up to ``voice_max_len`` model calls plus the sampler, for each mood and seed. The same
sampler runs on each path, so the phrases must be identical strings; a difference is
reported (and makes the bench fail) like any other mismatch.
"""
from __future__ import annotations

import time

import numpy as np

from lanthorn.device.piece.voice import SAMPLER_PARAMS


def bench_phrases(bundle, settings: dict, seed: int = 0) -> dict:
    from lanthorn.device.engine.runtime import load
    from lanthorn.device.piece.params import ParamStore
    from lanthorn.device.piece.voice import Voice, voice_spec
    from lanthorn.errors import UserError
    from lanthorn.quantize.voice_quantize import ort_voice_step
    p = ParamStore().snapshot()
    voices = {}
    for path, backend in (("numpy", "numpy"), ("c", "c")):
        try:
            voices[path] = Voice(load(bundle, backend=backend))
        except UserError:
            continue   # the C kernel is not built: its row says n/a
    model = next(iter(voices.values())).model
    voices["ort_int8"] = Voice(model, step=ort_voice_step(bundle))
    moods = voice_spec(model).moods
    per_mood = 2 if settings.get("mode") == "quick" else 8
    if settings.get("reps"):
        per_mood = max(1, int(settings["reps"]) // len(moods))
    times = {k: [] for k in voices}
    chars = []
    texts = {k: [] for k in voices}
    for mood in moods:
        for s in range(seed, seed + per_mood):
            for k, v in voices.items():       # interleaved: a busy machine slows all alike
                t0 = time.perf_counter_ns()
                ph = v.speak(mood, s, p)
                times[k].append((time.perf_counter_ns() - t0) / 1e6)
                texts[k].append(ph.text)
            chars.append(ph.chars)
    base = float(np.median(times["ort_int8"]))
    out = {"phrases": len(chars), "chars_mean": round(float(np.mean(chars)), 2),
           "sampler": {k: p[k] for k in SAMPLER_PARAMS if k in p},
           "paths": {}}
    for k, ts in times.items():
        med = float(np.median(ts))
        out["paths"][k] = {"backend": voices[k].model.backend if k != "ort_int8" else "onnxruntime",
                           "median_ms": round(med, 4), "p99_ms": round(float(np.percentile(ts, 99)), 4),
                           "ms_per_char": round(med / max(np.mean(chars) + 1, 1), 5),
                           "ratio_vs_ort_int8": round(med / base, 3) if k != "ort_int8" else None,
                           "identical_phrases": texts[k] == texts["ort_int8"]}
    return out


def format_phrases(name: str, res: dict) -> str:
    lines = [f"voice {name}: per phrase ({res['phrases']} phrases, {res['chars_mean']} characters "
             f"on average, sampler {res['sampler']}):"]
    for k, v in res["paths"].items():
        ratio = "" if v["ratio_vs_ort_int8"] is None else f", {v['ratio_vs_ort_int8']:.2f}x ORT int8"
        same = "" if k == "ort_int8" else ("; phrases identical to ORT's" if v["identical_phrases"]
                                           else "; phrases DIFFER from ORT's")
        lines.append(f"  {k:<9} ({v['backend']}): median {v['median_ms']:.3f} ms, p99 "
                     f"{v['p99_ms']:.3f} ms per phrase{ratio}{same}")
    return "\n".join(lines)
