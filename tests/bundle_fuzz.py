"""The bundle fuzzer: hostile ``.lanthorn`` files and LKB1 blobs, checksums recomputed.

A ``.lanthorn`` file arrives over a cable; its SHA-256 needs no secret. So this mutates
real bundles (the shipped model and one small graph per operator) where it hurts: typed
header fields set to interesting values (0, -1, 2**31, 1e12, NaN, text, lists, null),
keys added or dropped, layers reordered, array bytes overwritten (NaN multipliers, biases
at the int32 limits, random weights and tables), raw header bytes, prefix fields, cuts and
junk, signature trailers; then recomputes the checksum (and, when a key is given, signs
again) and judges each case in a worker process, so a crash or a hang is caught and
counted rather than ending the run. Every case must be exactly one of:

* **refused**: ``read_bundle`` raised a lanthorn error with one line of text;
* **identical**: it loaded, and the numpy and C engines (and their float calls) gave
  identical integers on random, all -128 and all 127 inputs (index models: in-range
  and out-of-range indices, refused alike);

anything else is a finding: **crash** (the worker died), **hang** (no answer in
``--timeout`` s), **traceback** (any other exception, or a multi-line message) or
**disagreement** (different outputs, or a validated graph the C kernel refuses).

The C side runs again outside Python under ASan + UBSan (``firmware/kernel/tools/
lk_run_blob.c`` built with clang): for accepted cases the sanitized build's outputs must
equal numpy's, and raw LKB1 blobs are mutated by field (engine_c.blob_layer_field /
blob_tensor_field) and by byte and must be refused (exit 2) or run cleanly.

Findings are written to ``tests/fuzz_bundles/regressions/`` (``KIND-SHA16.lanthorn`` or
``.lkb``), which tests/test_bundle_fuzz.py replays on every run.

    python tests/bundle_fuzz.py --cases 10000           (make fuzz-bundles)
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import selectors
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REGRESSIONS = HERE / "fuzz_bundles" / "regressions"
KERNEL = ROOT / "firmware" / "kernel"
sys.path.insert(0, str(HERE))

INTERESTING = [0, -1, 1, 2, 3, -2, 127, 128, -128, -129, 255, 256, 65535, 65536, -10000000,
               2 ** 31 - 1, 2 ** 31, -2 ** 31, 2 ** 32, 2 ** 63, 10 ** 30, 1e12, 1e-6, -1e-6,
               0.5, 1.5, float("nan"), float("inf"), float("-inf"), "fast", "", None, True,
               False, [], [1], [1, 1], [1, -10000000], [2147483648, 1], {}, {"a": 1}]


# --------------------------------------------------------------------------- seeds

def seed_bundles(zoo: bool = False) -> list[tuple[str, bytes]]:
    """(name, bytes) of every seed: the shipped model and one bundle per operator; with
    ``zoo`` also the model zoo quantized by onnxruntime and imported (a few seconds each)."""
    from kernel_graphs import op_suite

    from lanthorn.device.engine.bundle import Bundle
    from lanthorn.device.storage.storage import SHIPPED_MODEL
    seeds = [("temperament", SHIPPED_MODEL.read_bytes())]
    for name, g in op_suite(0):
        x = g.tensors[g.inputs[0]]
        seeds.append((name, Bundle(g, {"shape": x.shape, "dtype": "int32" if x.dtype == "int32"
                                       else "float32"}, card={"name": name}).to_bytes()))
    if zoo:
        from lanthorn.quantize import tiny_models
        from lanthorn.quantize.qdq_import import bundle_from_qdq
        with tempfile.TemporaryDirectory() as tmp:
            for name in tiny_models.ZOO:
                _, q = tiny_models.build(name, tmp)
                seeds.append((name, bundle_from_qdq(q).to_bytes()))
    return seeds


def split(data: bytes):
    """(prefix fields, header dict, data bytes) of a bundle (unsigned part)."""
    from lanthorn.device.engine.bundle import PREFIX
    _, version, reserved, hlen, dlen, _ = PREFIX.unpack_from(data, 0)
    header = json.loads(data[64:64 + hlen])
    return version, header, data[64 + hlen:64 + hlen + dlen]


def join(header, body: bytes, version: int = 1, raw_header: bytes | None = None) -> bytes:
    """A bundle with a correct checksum around ``header`` (or ``raw_header`` bytes)."""
    from lanthorn.device.engine.bundle import BUNDLE_MAGIC, PREFIX
    h = raw_header if raw_header is not None else json.dumps(
        header, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()
    h += b" " * ((-len(h)) % 64)
    head = PREFIX.pack(BUNDLE_MAGIC, version, 0, len(h), len(body), b"\0" * 32)[:32]
    return head + hashlib.sha256(head + h + body).digest() + h + body


# --------------------------------------------------------------------------- mutations

def _paths(obj, path=()):
    """Every (path, value) inside a JSON value."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, path + (i,))


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def _del(obj, path):
    for k in path[:-1]:
        obj = obj[k]
    if isinstance(obj, dict):
        del obj[path[-1]]
    else:
        obj.pop(path[-1])


def _interesting(rng, old):
    r = rng.random()
    if r < 0.5 or not isinstance(old, (int, float)) or isinstance(old, bool):
        return copy.deepcopy(INTERESTING[rng.integers(len(INTERESTING))])
    if r < 0.7:
        return old * int(rng.choice([-1, 2, 1000]))
    if r < 0.85:
        return old + int(rng.choice([-1, 1, -2, 2]))
    return float(old) * float(rng.choice([0.5, 1.0000001, 1e20]))


def _plausible(rng, header, body: bytearray):
    """A change an accepted bundle can still have (new scales, zero points, clamps,
    weights, biases, multipliers, tables): exercises C vs numpy on models that run."""
    g = header["graph"]
    r = rng.random()
    if r < 0.3 and g["tensors"]:
        t = g["tensors"][rng.integers(len(g["tensors"]))]
        if t.get("dtype", "int8") == "int8":
            t["zero_point"] = int(rng.integers(-128, 128))
            t["scale"] = float(np.float32(t.get("scale", 1.0) * rng.uniform(0.25, 4)))
        return
    if r < 0.5:
        layers = [lj for lj in g["layers"] if lj["op"] in ("conv", "dense", "add")]
        if layers:
            lj = layers[rng.integers(len(layers))]
            lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
            lj.setdefault("params", {}).update({"act_min": lo, "act_max": hi})
            return
    metas = header["arrays"]
    if not metas:
        return
    m = metas[rng.integers(len(metas))]
    off, n, dtype = m["offset"], m["nbytes"], m["dtype"]
    if n == 0:
        return
    a = np.frombuffer(body, dtype={"int8": "<i1", "int32": "<i4", "float32": "<f4"}.get(
        dtype, "<u1"), count=n // {"int32": 4, "float32": 4}.get(dtype, 1), offset=off).copy()
    if dtype == "float32":
        a *= np.float32(rng.uniform(0.1, 10))
    elif dtype == "int32":
        a[:] = rng.integers(-2 ** 20, 2 ** 20, a.size)
    else:
        a[:] = rng.integers(-128, 128, a.size)
    body[off:off + n] = a.tobytes()


def _hostile_array(rng, header, body: bytearray):
    """Overwrite part of one array with values the arithmetic does not expect."""
    metas = header["arrays"]
    if not metas:
        return
    m = metas[rng.integers(len(metas))]
    off, n, dtype = m["offset"], m["nbytes"], m["dtype"]
    if n < 4 and dtype != "int8":
        return
    if dtype == "float32":
        vals = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, 1e-45, 3e38], np.float32)
        k = int(rng.integers(0, n // 4))
        body[off + 4 * k:off + 4 * k + 4] = vals[rng.integers(len(vals))].tobytes()
    elif dtype == "int32":
        vals = [2 ** 31 - 1, -2 ** 31, 2 ** 30, -2 ** 30, 0]
        k = int(rng.integers(0, n // 4))
        body[off + 4 * k:off + 4 * k + 4] = struct.pack("<i", vals[rng.integers(len(vals))])
    else:
        body[off:off + n] = bytes(rng.choice([0x80, 0x7F], n).astype(np.uint8))


def _geometry(rng, header) -> None:
    """New window geometry (kernel, stride, dilation, pads: edge values included) for a
    conv or pool whose output is a graph output, with the output shape recomputed so the
    bundle stays consistent: reaches the engines' window code, not the shape check."""
    g = header["graph"]
    tensors = {t["name"]: t for t in g["tensors"]}
    cands = [lj for lj in g["layers"] if lj["op"] in ("conv", "maxpool", "avgpool")
             and lj["outputs"][0] in g["outputs"]]
    if not cands:
        return
    lj = cands[rng.integers(len(cands))]
    p = lj.setdefault("params", {})
    x = tensors[lj["inputs"][0]]["shape"]
    if lj["op"] == "conv":
        w = next(m for m in header["arrays"] if m["name"] == lj["arrays"]["weight"])
        k = w["shape"][1:3]
    else:
        k = [int(v) for v in rng.integers(1, 5, 2)]
        p["kernel"] = k
    p["stride"] = [int(v) for v in rng.integers(1, 4, 2)]
    if lj["op"] != "avgpool" or rng.random() < 0.1:
        p["dilation"] = [int(v) for v in rng.integers(1, 4, 2)]
    p["pads"] = [int(v) for v in rng.integers(0, 5, 4)]
    oh = (x[0] + p["pads"][0] + p["pads"][2] - p.get("dilation", [1, 1])[0] * (k[0] - 1) - 1) \
        // p["stride"][0] + 1
    ow = (x[1] + p["pads"][1] + p["pads"][3] - p.get("dilation", [1, 1])[1] * (k[1] - 1) - 1) \
        // p["stride"][1] + 1
    out = tensors[lj["outputs"][0]]
    out["shape"] = [int(oh), int(ow), out["shape"][2]]


def mutate(rng, data: bytes, key=None) -> bytes:
    """One hostile variant of bundle ``data``, checksum recomputed (signed with ``key``)."""
    version, header, raw = split(data)
    body = bytearray(raw)
    kind = rng.integers(13)
    if kind <= 2:                                  # a field to an interesting value
        paths = [p for p, _ in _paths(header) if p]
        p = paths[rng.integers(len(paths))]
        old = header
        for k in p:
            old = old[k]
        _set(header, p, _interesting(rng, old))
    elif kind == 3:                                # a key or list element dropped
        paths = [p for p, _ in _paths(header) if p]
        _del(header, paths[rng.integers(len(paths))])
    elif kind == 4:                                # a parameter added to a layer
        layers = header["graph"]["layers"]
        if layers:
            lj = layers[rng.integers(len(layers))]
            name = str(rng.choice(["kernel", "stride", "dilation", "pads", "groups", "axis",
                                   "perm", "shape", "act_min", "count_include_pad", "bogus"]))
            lj.setdefault("params", {})[name] = copy.deepcopy(
                INTERESTING[rng.integers(len(INTERESTING))])
    elif kind == 5:                                # layers reordered / op swapped / rewired
        g = header["graph"]
        layers = g["layers"]
        if len(layers) > 1 and rng.random() < 0.5:
            i, j = rng.integers(len(layers), size=2)
            layers[i], layers[j] = layers[j], layers[i]
        elif layers:
            lj = layers[rng.integers(len(layers))]
            if rng.random() < 0.5:
                lj["op"] = str(rng.choice(["conv", "dense", "maxpool", "avgpool", "add", "concat",
                                           "reshape", "transpose", "lut", "gather", "softmax"]))
            else:
                names = [t["name"] for t in g["tensors"]]
                lj["inputs"] = [str(rng.choice(names)) for _ in lj["inputs"]] or [names[0]]
    elif kind in (6, 7, 8):
        _plausible(rng, header, body)
    elif kind == 9:
        _hostile_array(rng, header, body)
    elif kind == 11:
        _geometry(rng, header)
    elif kind == 10:                               # raw header bytes
        h = bytearray(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
        for _ in range(int(rng.integers(1, 4))):
            h[int(rng.integers(len(h)))] = int(rng.integers(32, 127))
        out = join(None, bytes(body), version, raw_header=bytes(h))
        return _finish(rng, out, key)
    else:                                          # prefix, cuts, junk
        out = join(header, bytes(body), version)
        r = rng.random()
        if r < 0.3:
            return out[:int(rng.integers(0, len(out)))]
        if r < 0.5:
            return out + bytes(rng.integers(0, 256, int(rng.integers(1, 200))).astype(np.uint8))
        if r < 0.7:
            return b"LANTHRN\x00" + bytes(rng.integers(0, 256, 200).astype(np.uint8))
        v = int(rng.choice([0, 2, 2021161080, 2 ** 32 - 1]))
        return join(header, bytes(body), v)
    return _finish(rng, join(header, bytes(body), version), key)


def _finish(rng, out: bytes, key) -> bytes:
    if key is None:
        return out
    from lanthorn.device.engine import signing
    signed = signing.sign_bundle_bytes(out, key) if out[:8] == b"LANTHRN\x00" else out
    if rng.random() < 0.1 and len(signed) > len(out):   # a damaged signature trailer
        b = bytearray(signed)
        b[len(out) + int(rng.integers(8, 104))] ^= 1 << int(rng.integers(8))
        signed = bytes(b)
    return signed


def mutate_blob(rng, blob: bytes) -> bytes:
    """A hand-edited LKB1 blob: one int32 field of a layer or tensor to an interesting
    value, or random bytes overwritten."""
    from lanthorn.device.engine import engine_c as ec
    b = bytearray(blob)
    nt, nl, _, _ = ec.blob_layout(blob)
    r = rng.random()
    vals = [0, -1, 1, 2, 3, 16, 255, 256, 65535, 65536, 32768, 2 ** 31 - 1, -2 ** 31, 1 << 24,
            int(rng.integers(-2 ** 31, 2 ** 31))]
    v = vals[rng.integers(len(vals))]
    if r < 0.45 and nl:
        fields = ["op", "n_in", "in0", "in1", "out", *ec.LAYER_FIELDS, "perm0", "perm1",
                  "weight", "bias", "multiplier", "table", "tables0", "tables1"]
        at = ec.blob_layer_field(blob, int(rng.integers(nl)), str(rng.choice(fields)))
    elif r < 0.8 and nt:
        fields = ["offset", "dtype", "ndim", "shape0", "shape1", "shape2", "scale", "zero_point"]
        at = ec.blob_tensor_field(blob, int(rng.integers(nt)), str(rng.choice(fields)))
    elif r < 0.9:
        at = 4 * int(rng.integers(2, 7))                 # header counts / arena size
    else:
        for _ in range(int(rng.integers(1, 8))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
        return bytes(b)
    if at + 4 <= len(b):
        struct.pack_into("<I", b, at, v & 0xFFFFFFFF)
    return bytes(b)


# --------------------------------------------------------------------------- known findings

def _edit(data: bytes, fn) -> bytes:
    version, header, body = split(data)
    fn(header)
    return join(header, body, version)


def _layer(header, op):
    return next(lj for lj in header["graph"]["layers"] if lj["op"] == op)


def _spec(**kw):
    return lambda h: h["input_spec"].update(kw)


def known_findings() -> list[tuple[str, bytes]]:
    """The hostile bundles and blobs issue 10 reported, rebuilt from the seeds (checksums
    valid): each must now be refused with one line."""
    from lanthorn.device.engine import engine_c as ec
    seeds = dict(seed_bundles())
    conv, pool, dense = seeds["conv1d"], seeds["maxpool0"], seeds["dense300x37"]
    tem = seeds["temperament"]

    def neg_dilation(h):   # output width unchanged: stride/pads grown to fit the old check
        p = _layer(h, "conv")["params"]
        p.update({"dilation": [1, -10000000], "stride": [1, 10000000], "pads": [0, 0, 0, 0]})
        x = h["graph"]["tensors"][0]["shape"]
        p["pads"] = [0, 0, 0, 50 * 10000000 - x[1] - 40000000 - 1]

    def big_pool(h):
        p = _layer(h, "maxpool")["params"]
        p.update({"kernel": [20001, 20001], "pads": [9998, 9998, 9999, 9998],
                  "stride": [1, 1]})     # (7, 9) -> (4, 5): the declared output shape

    def no_outputs(h):
        _layer(h, "dense")["outputs"] = []

    def tensor(h, **kw):
        h["graph"]["tensors"][-1].update(kw)
    out = [
        ("conv-negative-dilation", _edit(conv, neg_dilation)),
        ("conv-kernel-2147483648", _edit(conv, lambda h: _layer(h, "conv")["params"].update(
            kernel=[2147483648, 1]))),
        ("conv-kernel-ignored", _edit(conv, lambda h: _layer(h, "conv")["params"].update(
            kernel=[1, 1]))),
        ("maxpool-20001", _edit(pool, big_pool)),
        ("avgpool-empty-window", _edit(seeds["avgpool0"], lambda h: _layer(h, "avgpool")[
            "params"].update(kernel=[1, 1], stride=[2, 2], pads=[1, 1, 0, 0]))),
        ("conv-stride-0", _edit(conv, lambda h: _layer(h, "conv")["params"].update(stride=[1, 0]))),
        ("dense-no-outputs", _edit(dense, no_outputs)),
        ("groups-2-33", _edit(conv, lambda h: _layer(h, "conv")["params"].update(groups=2 ** 33))),
        ("act-min-outside-int8", _edit(dense, lambda h: _layer(h, "dense")["params"].update(
            act_min=-1000))),
        ("zero-point-300", _edit(dense, lambda h: tensor(h, zero_point=300))),
        ("scale-0", _edit(dense, lambda h: tensor(h, scale=0.0))),
        ("scale-nan", _edit(dense, lambda h: tensor(h, scale=float("nan")))),
        ("scale-inf", _edit(dense, lambda h: tensor(h, scale=float("inf")))),
        ("card-null", _edit(tem, lambda h: h.update(card=None))),
        ("card-temperament-list", _edit(tem, lambda h: h["card"].update(
            temperament={"gesture_moods": [["tap", "happy"]]}))),
        ("rate-negative", _edit(tem, _spec(rate_hz=-25.0))),
        ("rate-1e12", _edit(tem, _spec(rate_hz=1e12))),
        ("rate-fast", _edit(tem, _spec(rate_hz="fast"))),
        ("rate-1e-6", _edit(tem, _spec(rate_hz=1e-6))),
        ("window-text", _edit(tem, _spec(window="50"))),
        ("labels-not-text", _edit(tem, lambda h: h.update(labels=[1, 2, 3]))),
        ("empty", b""),
        ("magic-and-junk", b"LANTHRN\x00" + bytes(range(256)) * 2),
    ]
    version, header, body = split(dense)
    b = bytearray(body)
    meta = {m["name"].split("/")[-1]: m for m in header["arrays"]}
    b[meta["multiplier"]["offset"]:meta["multiplier"]["offset"] + 4] = np.float32(np.nan).tobytes()
    out.append(("multiplier-nan", join(header, bytes(b), version)))
    b = bytearray(body)
    b[meta["bias"]["offset"]:meta["bias"]["offset"] + 4] = struct.pack("<i", 2 ** 31 - 1)
    out.append(("bias-int32-max", join(header, bytes(b), version)))
    # C blobs edited by hand
    from kernel_graphs import op_suite

    from lanthorn.device.engine.bundle import Bundle
    graphs = dict(op_suite(0))
    blob = ec.to_blob(graphs["conv3x3"])
    big = bytearray(blob)
    for f, v in (("kh", 65535), ("kw", 65535)):
        struct.pack_into("<i", big, ec.blob_layer_field(blob, 0, f), v)
    out_t = struct.unpack_from("<i", blob, ec.blob_layer_field(blob, 0, "out"))[0]
    struct.pack_into("<i", big, ec.blob_tensor_field(blob, out_t, "shape2"), 32768)
    out.append(("blob-conv-size-wrap.lkb", bytes(big)))
    blob = ec.to_blob(graphs["concat"])
    cat = bytearray(blob)
    src = struct.unpack_from("<i", blob, ec.blob_layer_field(blob, 0, "in1"))[0]
    dst = struct.unpack_from("<i", blob, ec.blob_layer_field(blob, 0, "out"))[0]
    dst_off = struct.unpack_from("<i", blob, ec.blob_tensor_field(blob, dst, "offset"))[0]
    struct.pack_into("<i", cat, ec.blob_tensor_field(blob, src, "offset"), dst_off)
    out.append(("blob-concat-overlap.lkb", bytes(cat)))
    mis = bytearray(blob)
    struct.pack_into("<i", mis, ec.blob_tensor_field(blob, dst, "offset"), dst_off + 1)
    out.append(("blob-misaligned-tensor.lkb", bytes(mis)))
    del Bundle
    return out


def write_known_findings() -> None:
    REGRESSIONS.mkdir(parents=True, exist_ok=True)
    for name, data in known_findings():
        suffix = "" if name.endswith(".lkb") else ".lanthorn"
        (REGRESSIONS / f"issue10-{name}{suffix}").write_bytes(data)


# --------------------------------------------------------------------------- judging (worker)

def inputs_for(graph, rng) -> list[list[np.ndarray]]:
    """Input sets: random, all -128, all 127 (int8); in-range and out-of-range indices."""
    sets = []
    for fill in ("rand", -128, 127):
        xs = []
        for name in graph.inputs:
            t = graph.tensors[name]
            if t.dtype == "int32":
                v = max((lj.arrays["table"].shape[0] for lj in graph.layers
                         if lj.op == "gather" and lj.inputs[0] == name), default=1)
                lo, hi = (-v, v) if fill == "rand" else ((v, v + 3) if fill == 127 else (-v, 0))
                xs.append(rng.integers(lo, hi, t.shape).astype(np.int32))
            else:
                xs.append(rng.integers(-128, 128, t.shape).astype(np.int8) if fill == "rand"
                          else np.full(t.shape, fill, np.int8))
        sets.append(xs)
    return sets


def _run(engine, xs):
    try:
        return [o.copy() for o in engine.run_quantized(xs)]
    except IndexError:
        return "IndexError"


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
                                    for x, y in zip(a, b, strict=True))


def judge(path: str, keep_blob: str | None = None) -> tuple[str, str]:
    """(kind, detail) of one case; kind in refused / identical / traceback / disagree."""
    from lanthorn.device.engine import runtime
    from lanthorn.device.engine.bundle import read_bundle
    from lanthorn.device.engine.describe import describe
    from lanthorn.device.engine.engine_c import CEngine
    from lanthorn.device.engine.engine_numpy import NumpyEngine
    from lanthorn.errors import UserError
    trusted = os.environ.get("LANTHORN_FUZZ_TRUST")      # judge as a locked object would
    try:
        bundle = read_bundle(path)
        if trusted:
            from lanthorn.device.engine.signing import check_trusted
            check_trusted(bundle, [bytes.fromhex(trusted)])
    except UserError as exc:
        msg = str(exc)
        if not msg.strip() or "\n" in msg:
            return "traceback", f"refusal is not one line: {msg!r}"
        return "refused", msg
    except Exception:
        return "traceback", traceback.format_exc()
    try:
        g = bundle.graph
        describe(bundle)
        try:
            ce = CEngine(g, 0)
            cv = CEngine(g)
        except UserError as exc:
            return "disagree", f"validated, but the C kernel refuses it: {exc}"
        ne = NumpyEngine(g)
        rng = np.random.default_rng(int(bundle.sha256[:8], 16))
        sets = inputs_for(g, rng)
        results = []
        for xs in sets:
            a, b, c = _run(ne, xs), _run(ce, xs), _run(cv, xs)
            if not (_same(a, b) and _same(a, c)):
                return "disagree", "numpy and C outputs differ"
            results.append(a)
        mn, mc = runtime.Model(bundle, "numpy"), runtime.Model(bundle, "c")
        if all(g.tensors[n].dtype == "int8" for n in g.inputs):
            xs = [rng.normal(0, 3, g.tensors[n].shape).astype(np.float32) for n in g.inputs]
            fa, fb = mn(*xs), mc(*xs)
            fa, fb = (fa,) if isinstance(fa, np.ndarray) else fa, (fb,) if isinstance(fb, np.ndarray) else fb
            if not _same(list(fa), list(fb)):
                return "disagree", "numpy and C float calls differ"
        if keep_blob:
            _write_c_case(keep_blob, ce, sets, results)
        return "identical", ""
    except Exception:
        return "traceback", traceback.format_exc()


def _write_c_case(prefix: str, engine, sets, results) -> None:
    """blob, inputs and numpy's outputs for the sanitized C driver (index-error sets left out)."""
    keep = [(xs, r) for xs, r in zip(sets, results, strict=True) if not isinstance(r, str)]
    Path(prefix + ".lkb").write_bytes(engine.blob)
    Path(prefix + ".in").write_bytes(b"".join(x.tobytes() for xs, _ in keep for x in xs))
    Path(prefix + ".want").write_bytes(b"".join(o.tobytes() for _, r in keep for o in r))


def worker() -> None:
    """Judge one path per stdin line, answer one JSON line each (run in a subprocess)."""
    import warnings
    warnings.simplefilter("ignore")
    for line in sys.stdin:
        req = json.loads(line)
        kind, detail = judge(req["path"], req.get("blob"))
        sys.stdout.write(json.dumps({"kind": kind, "detail": detail[-2000:]}) + "\n")
        sys.stdout.flush()


# --------------------------------------------------------------------------- driving

class Worker:
    """The judging subprocess; restarted after a crash or a hang."""

    def __init__(self, trust: bytes | None = None):
        self.proc = None
        self.trust = trust

    def _start(self):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        if self.trust:
            env["LANTHORN_FUZZ_TRUST"] = self.trust.hex()
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=env, cwd=str(ROOT))

    def ask(self, path: str, blob: str | None, timeout: float) -> tuple[str, str]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(json.dumps({"path": path, "blob": blob}) + "\n")
        self.proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout)
        sel.close()
        if not ready:
            self.close()
            return "hang", f"no answer in {timeout:g} s"
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait()
            self.proc = None
            return "crash", f"worker died (exit status {rc})"
        ans = json.loads(line)
        return ans["kind"], ans["detail"]

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def build_sanitized_driver(out_dir: Path) -> Path | None:
    """lk_run_blob with clang -fsanitize=address,undefined (None when clang is missing)."""
    cc = shutil.which(os.environ.get("CLANG", "clang"))
    if cc is None:
        return None
    exe = out_dir / "lk_run_blob_asan"
    sources = [str(KERNEL / "tools" / "lk_run_blob.c")] + sorted(str(p) for p in KERNEL.glob("*.c"))
    subprocess.run([cc, "-O1", "-g", "-std=c11", "-ffp-contract=off", "-fno-omit-frame-pointer",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all", f"-I{KERNEL}",
                    "-o", str(exe), *sources, "-lm"], check=True, capture_output=True)
    return exe


SAN_ENV = {"ASAN_OPTIONS": "exitcode=99:detect_leaks=0",
           "UBSAN_OPTIONS": "halt_on_error=1:exitcode=98:print_stacktrace=1"}


def blob_inputs(rng, blob: bytes, sets: int = 2) -> bytes:
    """Random bytes for ``sets`` input sets of a (possibly mutated) blob, sized from its
    own input tensors; garbage sizes give an empty file (the loader refuses those first)."""
    from lanthorn.device.engine import engine_c as ec
    try:
        nt, _, _, _ = ec.blob_layout(blob)
        _, _, _, _, ni, _, _ = struct.unpack_from("<7I", blob, 0)
        size = 0
        for i in range(min(ni, 16)):
            t = struct.unpack_from("<i", blob, 28 + 4 * i)[0]
            if not 0 <= t < nt:
                return b""
            dtype, ndim = (struct.unpack_from("<i", blob, ec.blob_tensor_field(blob, t, f))[0]
                           for f in ("dtype", "ndim"))
            n = 4 if dtype == 2 else 1
            for d in range(min(max(ndim, 0), 6)):
                n *= max(struct.unpack_from("<i", blob, ec.blob_tensor_field(blob, t, f"shape{d}"))[0], 0)
            size += n
        if size > 1 << 22:
            return b""
        return bytes(rng.integers(0, 256, size * sets).astype(np.uint8))
    except struct.error:
        return b""


def run_sanitized(exe: Path, blob: Path, inputs: Path, prefix: Path, timeout: float):
    """(kind, detail): refused / ran / crash / hang for one blob under ASan + UBSan, and
    the output files per variant."""
    try:
        p = subprocess.run([str(exe), str(blob), str(inputs), str(prefix), "all"],
                           capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, **SAN_ENV))
    except subprocess.TimeoutExpired:
        return "hang", "sanitized driver did not finish", []
    if p.returncode in (2, 3):
        return "refused", p.stderr.strip()[:200], []
    if p.returncode != 0 or "runtime error" in p.stderr or "Sanitizer" in p.stderr:
        return "crash", f"exit {p.returncode}: {p.stderr[-1500:]}", []
    outs = [Path(f"{prefix}.{line.split()[0]}") for line in p.stdout.splitlines() if line.strip()]
    return "ran", "", outs


def save_regression(kind: str, data: bytes, suffix: str) -> Path:
    REGRESSIONS.mkdir(parents=True, exist_ok=True)
    path = REGRESSIONS / f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    path.write_bytes(data)
    return path


def campaign(cases: int, seed: int = 0, timeout: float = 20.0, sanitize_every: int = 5,
             blob_share: float = 0.15, save: bool = True, key=None, log=print,
             zoo: bool = False, driver: Path | None = None) -> dict:
    """Run ``cases`` cases; return the counts (and findings). Bounded and reproducible."""
    rng = np.random.default_rng(seed)
    seeds = seed_bundles(zoo)
    log(f"{len(seeds)} seed bundles: {', '.join(n for n, _ in seeds)}")
    counts = {k: 0 for k in ("cases", "refused", "identical", "crash", "hang", "traceback",
                             "disagree", "blob_cases", "blob_refused", "blob_ran",
                             "sanitized_identical")}
    findings = []
    if key is not None:
        from lanthorn.device.engine.signing import public_of
        w = Worker(public_of(key))
    else:
        w = Worker()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exe = driver or build_sanitized_driver(tmp)
        counts["sanitizer"] = exe is not None
        blobs: list[bytes] = []
        t0 = time.monotonic()
        try:
            for i in range(cases):
                counts["cases"] += 1
                if exe is not None and blobs and rng.random() < blob_share:
                    data = mutate_blob(rng, blobs[rng.integers(len(blobs))])
                    counts["blob_cases"] += 1
                    (tmp / "m.lkb").write_bytes(data)
                    (tmp / "m.in").write_bytes(blob_inputs(rng, data))
                    kind, detail, _ = run_sanitized(exe, tmp / "m.lkb", tmp / "m.in", tmp / "m.out",
                                                    timeout)
                    if kind in ("refused", "ran"):
                        counts["blob_" + kind] += 1
                        continue
                    counts[kind] += 1
                    saved = save_regression(kind, data, ".lkb") if save else None
                    findings.append((kind, detail, saved))
                    log(f"case {i} (C blob): {kind}: {detail[:300]}")
                    continue
                name, base = seeds[rng.integers(len(seeds))]
                data = mutate(rng, base, key)
                path = tmp / "case.lanthorn"
                path.write_bytes(data)
                want_blob = exe is not None and i % sanitize_every == 0
                kind, detail = w.ask(str(path), str(tmp / "c") if want_blob else None, timeout)
                counts[kind] += 1
                if kind == "identical" and want_blob and (tmp / "c.lkb").exists():
                    blobs.append((tmp / "c.lkb").read_bytes())
                    blobs = blobs[-200:]
                    skind, sdetail, outs = run_sanitized(exe, tmp / "c.lkb", tmp / "c.in",
                                                         tmp / "c.out", timeout)
                    want = (tmp / "c.want").read_bytes()
                    if skind == "ran" and all(o.read_bytes() == want for o in outs):
                        counts["sanitized_identical"] += 1
                    else:
                        kind, detail = ("disagree" if skind == "ran" else skind,
                                        sdetail or "sanitized C outputs differ from numpy's")
                        counts["identical"] -= 1
                        counts[kind] += 1
                    for p in tmp.glob("c.*"):
                        p.unlink()
                if kind not in ("refused", "identical"):
                    saved = save_regression(kind, data, ".lanthorn") if save else None
                    findings.append((kind, f"{name}: {detail}", saved))
                    log(f"case {i} ({name}): {kind}: {detail.strip().splitlines()[-1] if detail.strip() else ''}"
                        f"{f' -> {saved.relative_to(ROOT)}' if saved else ''}")
                if (i + 1) % 1000 == 0:
                    log(f"{i + 1} cases, {time.monotonic() - t0:.0f} s: {summary(counts)}")
        finally:
            w.close()
    counts["seconds"] = round(time.monotonic() - t0, 1)
    counts["findings"] = findings
    return counts


def summary(c: dict) -> str:
    return (f"cases {c['cases']}: refused {c['refused']}, ran-identical {c['identical']} "
            f"({c['sanitized_identical']} of them also under ASan+UBSan), C blobs "
            f"{c['blob_cases']} (refused {c['blob_refused']}, ran clean {c['blob_ran']}); "
            f"crash {c['crash']}, hang {c['hang']}, traceback {c['traceback']}, "
            f"disagreement {c['disagree']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    ap.add_argument("--sign-key", help="re-sign every mutated bundle with this private key "
                                       "(default: a fresh key), judged as a locked object")
    ap.add_argument("--no-sign", action="store_true", help="leave the mutated bundles unsigned")
    ap.add_argument("--no-zoo", action="store_true",
                    help="leave out the model zoo seeds (quantized by onnxruntime at start)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--write-known", action="store_true",
                    help="(re)write the issue-10 findings into the regressions folder")
    args = ap.parse_args(argv)
    if args.worker:
        worker()
        return 0
    if args.write_known:
        write_known_findings()
        return 0
    key = None
    if args.sign_key:
        from lanthorn.device.engine.signing import load_key
        key = load_key(Path(args.sign_key))
    elif not args.no_sign:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        key = Ed25519PrivateKey.generate()
    c = campaign(args.cases, args.seed, args.timeout, key=key, zoo=not args.no_zoo)
    print(summary(c) + f" in {c['seconds']} s" + (", re-signed, judged as a locked object"
                                                   if key is not None else "") +
          ("" if c["sanitizer"] else " (clang missing: no sanitized C runs)"))
    bad = c["crash"] + c["hang"] + c["traceback"] + c["disagree"]
    return 1 if bad or not c["sanitizer"] else 0


if __name__ == "__main__":
    sys.exit(main())
