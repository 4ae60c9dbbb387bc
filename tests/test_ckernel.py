"""The C kernel (firmware/kernel via lanthorn.device.engine.kernel_ext._lk) gives the numpy
reference engine's int8 outputs on every element, for every operator, in every kernel
variant this CPU can run (scalar always; AVX2 / NEON / NEON+dotprod when present).

Graphs are built directly in the IR with random parameters (no onnxruntime needed), so
hypothesis can cover geometry and value ranges widely and fast; the reference engine's own
agreement with onnxruntime is tests/test_engine_ref.py's job.
"""
import struct
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_graphs import act, multipliers, one_layer, qparams, rand_i8, small_cnn

from lanthorn.device.engine import engine_c, int8
from lanthorn.device.engine.engine_c import blob_layer_field
from lanthorn.device.engine.engine_ref import ReferenceEngine

_lk = pytest.importorskip("lanthorn.device.engine.kernel_ext._lk",
                          reason="C kernel extension not built (pip install -e . needs a C compiler)")

VARIANTS = engine_c.available_variants()
SETTINGS = dict(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                derandomize=True)


def check(graph, inputs, variants=None):
    """Every C variant equals the numpy reference on every element."""
    ref = ReferenceEngine(graph).run_quantized(inputs)
    for v in variants or VARIANTS:
        got = engine_c.CEngine(graph, v).run_quantized(inputs)
        assert len(got) == len(ref)
        for g, r in zip(got, ref, strict=True):
            assert g.dtype == np.int8 and g.shape == r.shape
            if not np.array_equal(g, r):
                bad = np.argwhere(g != r)
                raise AssertionError(f"{v}: {len(bad)} of {r.size} elements differ, first at "
                                     f"{tuple(bad[0])}: C {g[tuple(bad[0])]} vs numpy "
                                     f"{r[tuple(bad[0])]}")
    return ref


# ----------------------------------------------------------------------------- conv / dense

conv_cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31), "h": st.integers(1, 9), "w": st.integers(1, 12),
    "cin": st.sampled_from([1, 2, 3, 4, 8, 16, 19, 24, 32]), "cout": st.sampled_from([1, 3, 8, 16, 17, 40, 64, 130]),
    "kh": st.integers(1, 3), "kw": st.integers(1, 5), "sh": st.integers(1, 2),
    "sw": st.integers(1, 3), "dh": st.integers(1, 2), "dw": st.integers(1, 2),
    "pad": st.tuples(*[st.integers(0, 2)] * 4), "groups": st.sampled_from(["1", "dw", "dw2", "g"]),
    "relu": st.booleans(), "mult": st.sampled_from(["rand", "rand", "half"]),
    "wmax": st.sampled_from([127, 64])})   # 64: 7-bit weights take AVX2's vpmaddubsw path
# cout 40 / 64 / 130 and dense n up to 150: every tile width of the VNNI kernels (AVX-512:
# 4 pixels x 1, 2 or 4 blocks of 16, one pixel x 1, 4 or 8 blocks; partial last blocks)


@settings(**SETTINGS)
@given(c=conv_cases)
def test_conv(c):
    rng = np.random.default_rng(c["seed"])
    cin = c["cin"]
    groups, cout = {"1": (1, c["cout"]), "dw": (cin, cin), "dw2": (cin, 2 * cin),
                    "g": (np.gcd(cin, 4), np.gcd(cin, 4) * 3)}[c["groups"]]
    kh, kw = c["kh"], c["kw"]
    t, left, b, r = c["pad"]
    h, w = c["h"], c["w"]
    if h + t + b - c["dh"] * (kh - 1) - 1 < 0:
        kh, t, b = 1, min(t, 0), min(b, 0)
    if w + left + r - c["dw"] * (kw - 1) - 1 < 0:
        kw, left, r = 1, 0, 0
    oh = (h + t + b - c["dh"] * (kh - 1) - 1) // c["sh"] + 1
    ow = (w + left + r - c["dw"] * (kw - 1) - 1) // c["sw"] + 1
    sx, zx = qparams(rng)
    sy, zy = qparams(rng)
    k = kh * kw * cin // groups
    lo, hi = act(rng, zy, c["relu"])
    g = one_layer("conv", [((h, w, cin), "int8", sx, zx)], (oh, ow, cout), zy, sy,
                  {"stride": [c["sh"], c["sw"]], "dilation": [c["dh"], c["dw"]],
                   "pads": [t, left, b, r], "groups": int(groups), "act_min": lo, "act_max": hi},
                  {"weight": rand_i8(rng, (cout, kh, kw, cin // groups), -c["wmax"], c["wmax"]),
                   "bias": rng.integers(-5000, 5000, cout).astype(np.int32),
                   "multiplier": multipliers(rng, cout, k, c["mult"])})
    check(g, [rand_i8(rng, (h, w, cin))])


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), k=st.integers(1, 300), n=st.integers(1, 150),
       lead=st.sampled_from([(), (1,), (3,), (2, 5)]), relu=st.booleans(),
       mult=st.sampled_from(["rand", "half"]), wmax=st.sampled_from([127, 64]))
def test_dense(seed, k, n, lead, relu, mult, wmax):
    rng = np.random.default_rng(seed)
    sx, zx = qparams(rng)
    sy, zy = qparams(rng)
    lo, hi = act(rng, zy, relu)
    g = one_layer("dense", [(lead + (k,), "int8", sx, zx)], lead + (n,), zy, sy,
                  {"act_min": lo, "act_max": hi},
                  {"weight": rand_i8(rng, (n, k), -wmax, wmax),
                   "bias": rng.integers(-20000, 20000, n).astype(np.int32),
                   "multiplier": multipliers(rng, n, k, mult)})
    check(g, [rand_i8(rng, lead + (k,))])


def test_dense_extreme_values_do_not_overflow():
    """Full-scale inputs and weights at large K: the int32 sums SIMD variants form in
    pieces (int16 pairs, SDOT quads) must equal the plain sum."""
    k, n = 1024, 9
    x = np.full((k,), 127, np.int8)
    w = np.where(np.arange(n * k).reshape(n, k) % 2, -127, 127).astype(np.int8)
    w[0] = -127
    w7 = np.where(w > 0, 64, -64).astype(np.int8)      # the widest 7-bit weights
    w8 = w
    for zx, w in [(-128, w8), (127, w8), (-128, w7), (127, w7)]:
        g = one_layer("dense", [((k,), "int8", 0.1, zx)], (n,), 3, 0.1, {},
                      {"weight": w, "bias": np.zeros(n, np.int32),
                       "multiplier": np.full(n, 3e-6, np.float32)})   # no clamping
        check(g, [x])
        check(g, [np.full((k,), -128, np.int8)])


# ----------------------------------------------------------------------------- pooling

pool_cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31), "h": st.integers(1, 9), "w": st.integers(1, 9),
    "c": st.integers(1, 12), "kh": st.integers(1, 3), "kw": st.integers(1, 3),
    "sh": st.integers(1, 3), "sw": st.integers(1, 3), "pad": st.tuples(*[st.integers(0, 2)] * 4),
    "incl": st.booleans(), "op": st.sampled_from(["maxpool", "avgpool"])})


@settings(**SETTINGS)
@given(c=pool_cases)
def test_pool(c):
    rng = np.random.default_rng(c["seed"])
    kh, kw = min(c["kh"], c["h"]), min(c["kw"], c["w"])
    t, left, b, r = (min(p, k - 1) for p, k in zip(c["pad"], (kh, kw, kh, kw), strict=True))
    oh = (c["h"] + t + b - kh) // c["sh"] + 1
    ow = (c["w"] + left + r - kw) // c["sw"] + 1
    sx, zx = qparams(rng)
    sy, zy = (sx, zx) if c["op"] == "maxpool" else qparams(rng)
    params = {"kernel": [kh, kw], "stride": [c["sh"], c["sw"]], "pads": [t, left, b, r]}
    if c["op"] == "avgpool":
        params["count_include_pad"] = c["incl"]
    g = one_layer(c["op"], [((c["h"], c["w"], c["c"]), "int8", sx, zx)], (oh, ow, c["c"]),
                  zy, sy, params)
    check(g, [rand_i8(rng, (c["h"], c["w"], c["c"]))])


def test_maxpool_dilation():
    rng = np.random.default_rng(1)
    g = one_layer("maxpool", [((9, 9, 3), "int8", 0.1, 0)], (3, 6, 3), 0, 0.1,
                  {"kernel": [3, 2], "stride": [2, 1], "dilation": [2, 3], "pads": [0, 0, 0, 0]})
    check(g, [rand_i8(rng, (9, 9, 3))])


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 40))
def test_global_avgpool(seed, h, w, c):
    rng = np.random.default_rng(seed)
    sx, zx = qparams(rng)
    sy, zy = qparams(rng)
    g = one_layer("global_avgpool", [((h, w, c), "int8", sx, zx)], (1, 1, c), zy, sy)
    check(g, [rand_i8(rng, (h, w, c))])


# ----------------------------------------------------------------------------- elementwise

@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), shape=st.sampled_from([(7,), (3, 4, 5), (1, 6, 2), (2, 3, 4, 5)]),
       bcast=st.integers(0, 3), relu=st.booleans(), ratio=st.sampled_from([0.05, 1.0, 30.0]))
def test_add(seed, shape, bcast, relu, ratio):
    rng = np.random.default_rng(seed)
    sa, za = qparams(rng)
    sb, zb = qparams(rng)
    sy, zy = qparams(rng)
    sb = float(np.float32(sb * ratio))
    bshape = shape[min(bcast, len(shape) - 1):]
    if bcast == 3 and len(shape) > 1:
        bshape = (1,) + shape[1:]
    lo, hi = act(rng, zy, relu)
    g = one_layer("add", [(shape, "int8", sa, za), (bshape, "int8", sb, zb)], shape, zy, sy,
                  {"act_min": lo, "act_max": hi})
    check(g, [rand_i8(rng, shape), rand_i8(rng, bshape)])


def test_add_every_pair_of_values():
    """All 65536 (a, b) pairs: the two float32 FMAs and the rounding match int8.py."""
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    shape = (256, 256)
    for sa, za, sb, zb, sy, zy in [(0.05, 3, 0.07, -20, 0.09, 5), (0.1, 0, 0.1, 0, 0.2, 0),
                                   (0.013, -128, 0.5, 127, 0.3, -7)]:
        g = one_layer("add", [(shape, "int8", sa, za), (shape, "int8", sb, zb)], shape, zy, sy)
        check(g, [a.astype(np.int8), b.astype(np.int8)])


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), shape=st.sampled_from([(7,), (3, 4, 5), (1, 6, 2), (2, 3, 4, 5)]),
       bcast=st.integers(0, 3), relu=st.booleans())
def test_mul(seed, shape, bcast, relu):
    """QLinearMul (int8.qlinear_mul), equal shapes and broadcast gates, every C variant."""
    rng = np.random.default_rng(seed)
    (sa, za), (sb, zb), (sy, zy) = qparams(rng), qparams(rng), qparams(rng)
    bshape = shape[min(bcast, len(shape) - 1):]
    if bcast == 3 and len(shape) > 1:
        bshape = (1,) * (len(shape) - 1) + shape[-1:]      # squeeze-and-excitation
    lo, hi = act(rng, zy, relu)
    g = one_layer("mul", [(shape, "int8", sa, za), (bshape, "int8", sb, zb)], shape, zy, sy,
                  {"act_min": lo, "act_max": hi})
    check(g, [rand_i8(rng, shape), rand_i8(rng, bshape)])


def test_mul_every_pair_of_values():
    """All 65536 (a, b) pairs: the int32 product, the float32 multiply and add, the rounding
    and the saturation match int8.py, which spells MLAS's QLinearMul."""
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    shape = (256, 256)
    for sa, za, sb, zb, sy, zy in [(0.05, 3, 0.07, -20, 0.09, 5), (0.1, 0, 0.1, 0, 0.02, 0),
                                   (0.013, -128, 0.5, 127, 0.3, -7)]:
        g = one_layer("mul", [(shape, "int8", sa, za), (shape, "int8", sb, zb)], shape, zy, sy)
        out = check(g, [a.astype(np.int8), b.astype(np.int8)])[0]
        ratio = np.float32(np.float32(sa) * np.float32(sb)) / np.float32(sy)
        p = ((a - za) * (b - zb)).astype(np.float32)
        want = np.clip(np.rint(p * ratio + np.float32(zy)), -128, 127)   # the definition
        assert np.array_equal(out, want.astype(np.int8))


def test_lut_per_channel_every_value():
    rng = np.random.default_rng(6)
    table = rand_i8(rng, (5, 256))
    g = one_layer("lut", [((256, 5), "int8", 0.1, 0)], (256, 5), 0, 0.1, {}, {"table": table})
    x = np.repeat(np.arange(-128, 128)[:, None], 5, axis=1).astype(np.int8)
    out = check(g, [x])[0]
    assert np.array_equal(out, table.T)      # y[..., c] = table[c, x + 128]


def test_lut_every_value():
    rng = np.random.default_rng(5)
    table = rand_i8(rng, (256,))
    g = one_layer("lut", [((256,), "int8", 0.1, 0)], (256,), 0, 0.1, {}, {"table": table})
    x = np.arange(-128, 128).astype(np.int8)
    out = check(g, [x])[0]
    assert np.array_equal(out, table)        # y = table[x + 128], literally


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), n=st.integers(2, 4), axis=st.integers(0, 2),
       requant=st.lists(st.booleans(), min_size=4, max_size=4))
def test_concat(seed, n, axis, requant):
    rng = np.random.default_rng(seed)
    base = [int(v) for v in rng.integers(1, 6, 3)]
    shapes = []
    for _ in range(n):
        s = list(base)
        s[axis] = int(rng.integers(1, 5))
        shapes.append(tuple(s))
    out = list(base)
    out[axis] = sum(s[axis] for s in shapes)
    sy, zy = qparams(rng)
    ins, arrays = [], {}
    for i, s in enumerate(shapes):
        if requant[i]:
            sx, zx = qparams(rng)
            arrays[f"table{i}"] = int8.requant_table(sx, zx, sy, zy)
        else:
            sx, zx = sy, zy
        ins.append((s, "int8", sx, zx))
    g = one_layer("concat", ins, tuple(out), zy, sy, {"axis": axis}, arrays)
    check(g, [rand_i8(rng, s) for s in shapes])


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), rank=st.integers(1, 5))
def test_transpose(seed, rank):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 5, rank))
    perm = [int(p) for p in rng.permutation(rank)]
    g = one_layer("transpose", [(shape, "int8", 0.1, 2)], tuple(shape[p] for p in perm), 2, 0.1,
                  {"perm": perm})
    check(g, [rand_i8(rng, shape)])


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), vocab=st.integers(1, 60), dim=st.integers(1, 33),
       ctx=st.sampled_from([(1,), (5,), (2, 3)]))
def test_gather(seed, vocab, dim, ctx):
    rng = np.random.default_rng(seed)
    table = rand_i8(rng, (vocab, dim))
    g = one_layer("gather", [(ctx, "int32", 1.0, 0)], ctx + (dim,), 0, 0.1, {}, {"table": table})
    check(g, [rng.integers(-vocab, vocab, ctx).astype(np.int32)])


def test_gather_index_out_of_range_is_an_index_error():
    table = np.arange(12, dtype=np.int8).reshape(4, 3)
    g = one_layer("gather", [((2,), "int32", 1.0, 0)], (2, 3), 0, 0.1, {}, {"table": table})
    for v in VARIANTS:
        eng = engine_c.CEngine(g, v)
        for bad in ([0, 4], [-5, 1]):
            with pytest.raises(IndexError, match="out of range"):
                eng.run_quantized([np.array(bad, np.int32)])
        assert np.array_equal(eng.run_quantized([np.array([-1, 1], np.int32)])[0],
                              table[[3, 1]])


# ----------------------------------------------------------------------------- whole graphs

@pytest.mark.parametrize("seed", range(6))
def test_whole_graph_and_arena_sharing(seed):
    rng = np.random.default_rng(seed)
    g = small_cnn(rng)
    check(g, [rand_i8(rng, (8, 8, 3))])
    offsets, size = engine_c.plan_arena(g)
    total = sum(g.tensors[n].size for n in offsets if n != "flat")
    assert offsets["flat"] == offsets["cat"]          # reshape is free
    assert size < total                               # lifetimes that end free their bytes


def test_runtime_load_uses_c_and_matches_numpy():
    from lanthorn.device.engine.bundle import Bundle
    from lanthorn.device.engine.runtime import load
    rng = np.random.default_rng(11)
    b = Bundle(small_cnn(rng), {"shape": (8, 8, 3)}, labels=tuple("abcde"))
    mc, mn = load(b, backend="c"), load(b, backend="numpy")
    assert mc.backend in VARIANTS and mn.backend == "numpy"
    x = rng.normal(0, 1, (8, 8, 3)).astype(np.float32)
    assert np.array_equal(mc(x), mn(x))               # identical float softmax after exact int8
    xq = rand_i8(rng, (8, 8, 3))
    assert np.array_equal(mc.run_quantized(xq), mn.run_quantized(xq))


def test_simd_variants_really_pack_weights():
    g = small_cnn(np.random.default_rng(0))
    for v in VARIANTS:
        mem = engine_c.CEngine(g, v).memory
        assert (mem["packed"] > 0) == (v != "c-scalar"), (v, mem)
        assert 0 < mem["arena"] < 8 * 8 * 3 + 8 * 8 * 8 * 2 + 4 * 4 * 8 * 3 + 4 * 4 * 16 + 5


def test_variant_env_and_bad_variant(monkeypatch):
    g = small_cnn(np.random.default_rng(0))
    monkeypatch.setenv("LANTHORN_C_VARIANT", "scalar")
    assert engine_c.CEngine(g).backend == "c-scalar"
    monkeypatch.setenv("LANTHORN_C_VARIANT", "sse9")
    from lanthorn.errors import UserError
    with pytest.raises(UserError, match="LANTHORN_C_VARIANT"):     # one line, exit 2 in the CLI
        engine_c.CEngine(g)
    monkeypatch.delenv("LANTHORN_C_VARIANT")
    assert engine_c.CEngine(g).backend == _lk.variant_name(_lk.best_variant())
    for name in ("neon", "avx2", "neon-dotprod", "avx-vnni", "avx512-vnni"):
        if f"c-{name}" not in VARIANTS:
            with pytest.raises(engine_c.CKernelUnsupported):
                engine_c.CEngine(g, name)


def test_corrupt_blob_is_refused_not_crashed():
    g = small_cnn(np.random.default_rng(0))
    blob = engine_c.to_blob(g)
    with pytest.raises(ValueError, match="malformed"):
        _lk.Model(b"XXXX" + blob[4:])
    with pytest.raises(ValueError, match="malformed"):
        _lk.Model(blob[:200])
    with pytest.raises(ValueError, match="malformed"):
        _lk.Model(blob[: len(blob) - 64])             # weights cut off
    m = _lk.Model(blob, 0)
    with pytest.raises(ValueError, match="bytes"):
        m.run([np.zeros(5, np.int8)], [np.zeros(5, np.int8)])


def test_auto_falls_back_to_numpy_with_one_warning(monkeypatch):
    import sys

    from lanthorn.device.engine import kernel_ext, runtime
    from lanthorn.device.engine.bundle import Bundle
    monkeypatch.setitem(sys.modules, "lanthorn.device.engine.kernel_ext._lk", None)  # as if not built
    monkeypatch.delattr(kernel_ext, "_lk", raising=False)
    monkeypatch.setattr(runtime, "_warned_fallback", False)
    b = Bundle(small_cnn(np.random.default_rng(0)), {"shape": (8, 8, 3)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert runtime.load(b).backend == "numpy"
        assert runtime.load(b).backend == "numpy"
    [w] = [w for w in caught if "C kernel" in str(w.message)]
    assert "C kernel extension not built" in str(w.message)   # ImportError, not a refusal
    with pytest.raises(runtime.UserError, match="C kernel extension is not built"):
        runtime.load(b, backend="c")


# ----------------------------------------------------------------------------- vs onnxruntime

@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from lanthorn.quantize import tiny_models
    d = tmp_path_factory.mktemp("zoo")
    return {name: tiny_models.build(name, d) for name in tiny_models.ZOO}


@pytest.mark.parametrize("variant", VARIANTS)
def test_zoo_and_default_model_equal_onnxruntime(zoo, variant, monkeypatch):
    """The must-show on the C engine: every zoo model and the shipped default model, every
    variant, equal onnxruntime's int8 output on every element."""
    import onnx
    from ort_oracle import assert_exact

    from lanthorn.device.engine.bundle import read_bundle
    from lanthorn.device.engine.runtime import load
    from lanthorn.quantize import tiny_models
    from lanthorn.quantize.qdq_import import bundle_from_qdq
    monkeypatch.setenv("LANTHORN_C_VARIANT", variant)
    for name, (fpath, qpath) in zoo.items():
        model = load(bundle_from_qdq(qpath), backend="c")
        assert model.backend == variant
        feeds = tiny_models.random_inputs(onnx.load(str(fpath)), 4, seed=3,
                                        vocab=tiny_models.ZOO[name]()[1])
        assert_exact(model, model.bundle, feeds)
    from pathlib import Path
    default = Path(__file__).resolve().parents[1] / "device" / "models" / "temperament.lanthorn"
    if default.exists():
        b = read_bundle(default)
        model = load(b, backend="c")
        twin = onnx.load_from_string(b.twin)
        feeds = tiny_models.random_inputs(twin, 8, seed=4)
        assert_exact(model, b, feeds)


def test_damaged_blobs_are_refused_or_run_never_crash(tmp_path):
    """Random byte damage in the descriptor part of a blob (header, tensors, layers): the
    loader refuses it with ValueError or the model runs; the process never crashes. Run in
    a subprocess so a crash shows as a failure instead of killing the test run."""
    import subprocess
    import sys
    g = small_cnn(np.random.default_rng(3))
    blob = engine_c.to_blob(g)
    (tmp_path / "m.lkb").write_bytes(blob)
    descriptor_end = blob.index(g.layers[0].arrays["weight"].tobytes()[:16])
    script = f"""
import numpy as np
from lanthorn.device.engine.kernel_ext import _lk
blob = bytearray(open({str(tmp_path / "m.lkb")!r}, "rb").read())
rng = np.random.default_rng(0)
refused = ran = 0
for trial in range(400):
    b = bytearray(blob)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(0, {descriptor_end}))
        b[i] = int(rng.integers(0, 256)) if trial % 2 else b[i] ^ (1 << int(rng.integers(0, 8)))
    try:
        m = _lk.Model(bytes(b), 0)
    except (ValueError, MemoryError):
        refused += 1
        continue
    try:
        m.run([np.zeros((8, 8, 3), np.int8)], [np.zeros(5, np.int8)])
    except (ValueError, IndexError, RuntimeError):
        pass
    ran += 1
print(refused, ran)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"crashed (exit {r.returncode}): {r.stderr[-2000:]}"
    refused, ran = map(int, r.stdout.split())
    assert refused > 100 and refused + ran == 400


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), n_layers=st.integers(1, 14))
def test_random_dags_share_arena_safely(seed, n_layers):
    """Random graphs whose layers read any earlier tensor (long skips, fan-out, reshape
    aliases, several outputs): whatever bytes the planner shares, C equals numpy."""
    from lanthorn.device.engine.graph import Graph, Layer, Tensor
    rng = np.random.default_rng(seed)
    shape = (2, 3, 4)
    T = {"in": Tensor("in", shape, "int8", *qparams(rng))}
    layers, names = [], ["in"]
    for i in range(n_layers):
        pick = lambda: names[int(rng.integers(0, len(names)))]      # noqa: E731
        src = pick()
        name = f"t{i}"
        kind = rng.choice(["lut", "add", "concat", "reshape", "transpose"])
        s, z = qparams(rng)
        if T[src].shape != shape or kind == "lut":
            kind = "lut" if T[src].shape != shape else kind
        if kind == "lut":
            T[name] = Tensor(name, T[src].shape, "int8", s, z)
            layers.append(Layer("lut", name, [src], [name], {}, {"table": rand_i8(rng, (256,))}))
        elif kind == "add":
            other = pick() if T[pick()].shape == shape else src
            other = other if T[other].shape == shape else src
            T[name] = Tensor(name, shape, "int8", s, z)
            layers.append(Layer("add", name, [src, other], [name]))
        elif kind == "concat":
            T[name] = Tensor(name, (4, 3, 4), "int8", s, z)
            layers.append(Layer("concat", name, [src, src], [name], {"axis": 0},
                                {"table0": int8.requant_table(T[src].scale, T[src].zero_point, s, z)}))
        elif kind == "reshape":
            T[name] = Tensor(name, (6, 4), "int8", T[src].scale, T[src].zero_point)
            layers.append(Layer("reshape", name, [src], [name], {"shape": [6, 4]}))
        else:
            T[name] = Tensor(name, (4, 2, 3), "int8", T[src].scale, T[src].zero_point)
            layers.append(Layer("transpose", name, [src], [name], {"perm": [2, 0, 1]}))
        names.append(name)
    outs = sorted({names[-1], names[int(rng.integers(1, len(names)))]})
    g = Graph(T, layers, ["in"], outs)
    g.validate()
    check(g, [rand_i8(rng, shape)])


def test_graph_outside_the_kernels_limits_is_refused_by_the_validator_and_the_loader():
    """A stride beyond 65535: Graph.validate refuses it (one line) before any engine, and
    the C loader refuses the same layer in a hand-edited blob (so neither side relies on
    the other)."""
    from lanthorn.device.engine.graph import GraphError
    from lanthorn.device.engine.kernel_ext import _lk
    arrays = {"weight": np.ones((2, 1, 1, 2), np.int8), "bias": np.zeros(2, np.int32),
              "multiplier": np.full(2, 0.5, np.float32)}
    with pytest.raises(GraphError, match=r"stride must be 2 integers in \[1, 65535\]"):
        one_layer("conv", [((1, 3, 2), "int8", 0.1, 0)], (1, 1, 2), 0, 0.1,
                  {"stride": [1, 70000]}, arrays)
    g = one_layer("conv", [((1, 3, 2), "int8", 0.1, 0)], (1, 1, 2), 0, 0.1,
                  {"stride": [1, 3]}, arrays)
    blob = bytearray(engine_c.to_blob(g))
    assert _lk.Model(bytes(blob), 0) is not None
    sw_at = blob_layer_field(blob, 0, "sw")
    assert struct.unpack_from("<i", blob, sw_at)[0] == 3
    struct.pack_into("<i", blob, sw_at, 70000)
    with pytest.raises(ValueError):
        _lk.Model(bytes(blob), 0)


@pytest.mark.parametrize("variant,flags", [("c-avx-vnni", {"avx2", "avx_vnni"}),
                                           ("c-avx512-vnni", {"avx2", "avx512f", "avx512bw",
                                                              "avx512vl", "avx512_vnni"})])
def test_vnni_variants_run_where_the_cpu_has_them(variant, flags):
    """The VNNI variants are built on every x86 machine and run (so every hypothesis test
    above covers them) wherever the CPU has the instructions; elsewhere this says so."""
    import platform

    from conftest import MACHINE_SKIP
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"{MACHINE_SKIP} not an x86-64 CPU (ran: {', '.join(VARIANTS)})")
    have = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                break
    if not flags <= have:
        pytest.skip(f"{MACHINE_SKIP} this CPU lacks {sorted(flags - have)} for {variant} "
                    f"(ran: {', '.join(VARIANTS)})")
    assert variant in VARIANTS
    assert engine_c.CEngine(small_cnn(np.random.default_rng(0)), variant).backend == variant
