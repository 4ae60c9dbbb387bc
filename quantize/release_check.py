"""The release check ``lanthorn import`` and ``lanthorn quantize`` run before writing a bundle.

Two questions, on inputs generated over the model's own input range (the span its input
QuantizeLinear can represent, so every int8 input code is reached, saturation included):

1. Do lanthorn's engines (numpy and the one ``auto`` picks) give onnxruntime's integers on
   its int8 QDQ path (:mod:`lanthorn.quantize.ort_oracle`) on every element? If not, the
   bundle is refused: that is a real disagreement with the oracle.
2. Does *stock* onnxruntime on this CPU (default session options) give the same outputs
   as its int8 QDQ path? On x86 without VNNI it runs int8 convolutions as u8 x s8 with
   VPMADDUBSW, whose int16 pair sums saturate when weights use the full int8 range
   (``quantize_static``'s default ``reduce_range=False``), so a user comparing against
   stock onnxruntime sees a few LSB of difference. That is onnxruntime's rounding, not
   ours: the model is imported and one line says so, naming the session options that make
   onnxruntime exact.

The card records what the oracle was (onnxruntime's version and options) and how many
elements were compared.
"""
from __future__ import annotations

import platform

import numpy as np

from lanthorn.errors import UserError
from lanthorn.quantize.ort_oracle import engines_vs_ort, oracle_record, ort_session

#: how many generated inputs the check runs by default (C and numpy each)
DEFAULT_FEEDS = 64


class ReleaseCheckError(UserError):
    """lanthorn's integers differ from onnxruntime's int8 QDQ path: nothing is written."""


def generated_feeds(bundle, n: int = DEFAULT_FEEDS, seed: int = 0) -> list[dict]:
    """``n`` seeded ONNX feeds spanning each input's quantized range (token indices over
    the embedding's rows for an index input)."""
    rng = np.random.default_rng(seed)
    g = bundle.graph
    vocab = next((int(layer.arrays["table"].shape[0]) for layer in g.layers
                  if layer.op == "gather"), 2)
    feeds = []
    for _ in range(n):
        feed = {}
        for io in bundle.io["inputs"]:
            t = g.tensors[io["tensor"]]
            shape = io["shape"]
            if t.dtype == "int32":
                feed[io["name"]] = rng.integers(0, vocab, size=shape).astype(np.int64)
                continue
            lo, hi = t.scale * (-128 - t.zero_point), t.scale * (127 - t.zero_point)
            span = (hi - lo) * 0.55                 # a little past both ends: saturation too
            mid = (hi + lo) / 2
            feed[io["name"]] = rng.uniform(mid - span, mid + span, size=shape).astype(np.float32)
        feeds.append(feed)
    return feeds


def full_range_weights(bundle) -> bool:
    """True where a conv or dense layer uses int8 weights beyond 7 bits (|w| > 64, the
    bound of quantize_static's reduce_range)."""
    return any(layer.op in ("conv", "dense") and np.abs(layer.arrays["weight"].astype(np.int16)).max() > 64
               for layer in bundle.graph.layers)


def stock_differs(bundle, feeds) -> tuple[int, int, int]:
    """(elements that differ, elements compared, largest difference in output LSB) between
    stock onnxruntime and its int8 QDQ path on the twin's outputs."""
    exact, stock = ort_session(bundle.twin), ort_session(bundle.twin, stock=True)
    diff = total = 0
    worst = 0.0
    outs = bundle.io["outputs"]
    t = bundle.graph.tensors[outs[0]["tensor"]] if outs else None
    scale = t.scale if t is not None and t.dtype == "int8" else 0.0   # softmax: no LSB
    for feed in feeds:
        for a, b in zip(exact.run(None, feed), stock.run(None, feed), strict=True):
            a, b = np.asarray(a), np.asarray(b)
            d = a != b
            diff += int(d.sum())
            total += a.size
            if d.any():
                worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()))
    return diff, total, int(round(worst / scale)) if scale else None


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((ln.split(":", 1)[1].split() for ln in f
                             if ln.startswith(("flags", "Features"))), []))
    except OSError:
        return set()


def stock_note(bundle, diff: int, total: int, lsb: int | None, cpu: str | None = None,
               flags: set[str] | None = None) -> str:
    """The one line saying stock onnxruntime differs here, why, and how to make it exact."""
    cpu = cpu or platform.machine()
    flags = cpu_flags() if flags is None else flags
    x86 = cpu in ("x86_64", "AMD64")
    vnni = bool({"avx512_vnni", "avx_vnni"} & flags)
    if x86 and not vnni and full_range_weights(bundle):
        why = ("its u8 x s8 AVX2 kernel saturates 16-bit pair sums with full-range weights")
        fix = "session.qdqisint8allowed=1 (or session.x64quantprecision=1)"
    else:
        why = ("its default x86 path runs int8 activations as uint8 and keeps node groups "
               "with a twice-read input in float" if x86 else
               "its default path is not its int8 QDQ path")
        fix = "session.qdqisint8allowed=1"
    by = f" (up to {lsb} LSB)" if lsb else ""
    return (f"note: stock onnxruntime on this CPU ({cpu}) differs from the exact int8 result on "
            f"{diff} of {total} output elements{by}: {why}; {fix} makes onnxruntime exact, and "
            f"lanthorn equals it there")


def release_check(bundle, feeds=None, what: str = "this bundle", log=print) -> dict:
    """Refuse ``bundle`` unless every engine equals the oracle; say when stock onnxruntime
    differs. Records the oracle in the card and returns that record."""
    feeds = generated_feeds(bundle) if feeds is None else feeds
    checked, mismatch = engines_vs_ort(bundle, feeds)
    if mismatch:
        backend, n = mismatch
        raise ReleaseCheckError(f"the {backend} engine's int8 output differs from onnxruntime's "
                                f"int8 QDQ path on {n} elements of one input: not writing "
                                f"{what} (please report this model)")
    record = {**oracle_record(), "inputs": len(feeds), "elements_equal": checked}
    diff, total, lsb = stock_differs(bundle, feeds)
    if diff:
        log(stock_note(bundle, diff, total, lsb))
        record["stock_onnxruntime_differs"] = {"elements": diff, "of": total, "cpu": platform.machine()}
    bundle.card["oracle"] = record
    return record
