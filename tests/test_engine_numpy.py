"""The fast numpy engine gives exactly the reference engine's integers (hypothesis over
shapes, strides, paddings, dilations, groups, zero points, activation clamps and weight /
bias magnitudes that force its float64 fallback), the runtime's planned input
quantization and softmax equal int8.quantize and the reference's float outputs bit for
bit, and an inference allocates no intermediate activations."""
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanthorn.device.engine.bundle import Bundle, InputSpec
from lanthorn.device.engine.engine_numpy import NumpyEngine
from lanthorn.device.engine.engine_ref import ReferenceEngine
from lanthorn.device.engine.graph import Graph, Layer, Tensor, infer_output_shape
from lanthorn.device.engine.kernels_numpy import EXACT_F32, acc_dtype
from lanthorn.device.engine.runtime import InputError, load

SETTINGS = dict(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _layer_arrays(rng, n_out, k, style):
    """int8 weights [n_out, k] and int32 bias in one of three regimes: ordinary, saturated
    (every weight +-127: float64 needed once k > 1032) and huge biases (float64 needed)."""
    if style == "saturated":
        w = np.where(rng.random((n_out, k)) < 0.5, -127, 127).astype(np.int8)
    else:
        w = rng.integers(-127, 128, (n_out, k)).astype(np.int8)
    big = 2 ** 28 if style == "huge_bias" else 2 ** 14
    bias = rng.integers(-big, big, n_out).astype(np.int32)
    mult = (rng.uniform(1e-5, 2e-2, n_out) if style != "huge_bias"
            else rng.uniform(1e-8, 1e-6, n_out)).astype(np.float32)
    return w, bias, mult


def _graph(rng, in_shape, layer_fn, zx, zy, dtype="int8"):
    x = Tensor("x", in_shape, dtype, 0.05, zx if dtype == "int8" else 0)
    layer = layer_fn(rng)
    y_shape = infer_output_shape(layer, [x.shape])
    y = Tensor("y", y_shape, "int8", 0.1, zy)
    g = Graph({"x": x, "y": y}, [layer], ("x",), ("y",))
    g.validate()
    return g


def _same(g, rng, n=3):
    ref, fast = ReferenceEngine(g), NumpyEngine(g)
    t = g.tensors["x"]
    for _ in range(n):
        x = rng.integers(-128, 128, t.shape).astype(np.int8)
        a, b = ref.run_quantized([x])[0], fast.run_quantized([x])[0]
        bad = np.argwhere(a != b)
        assert bad.size == 0, f"{len(bad)} differ, first at {tuple(bad[0])}: {a[tuple(bad[0])]} vs {b[tuple(bad[0])]}"
    return fast


def _acts(draw_lo, draw_hi):
    lo, hi = sorted((draw_lo, draw_hi))
    return {"act_min": lo, "act_max": hi}


conv_cases = st.fixed_dictionaries({
    "h": st.integers(1, 7), "w": st.integers(1, 9), "cin": st.sampled_from([1, 2, 3, 4, 8]),
    "kind": st.sampled_from(["dense", "depthwise", "grouped"]), "cout": st.integers(1, 6),
    "kh": st.integers(1, 3), "kw": st.integers(1, 3), "sh": st.integers(1, 3),
    "sw": st.integers(1, 3), "dh": st.integers(1, 2), "dw": st.integers(1, 2),
    "pads": st.tuples(*[st.integers(0, 2)] * 4), "zx": st.integers(-128, 127),
    "zy": st.integers(-128, 127), "a": st.integers(-128, 127), "b": st.integers(-128, 127),
    "style": st.sampled_from(["ordinary", "saturated", "huge_bias"]), "seed": st.integers(0, 999)})


@settings(**SETTINGS)
@given(c=conv_cases)
def test_conv_equals_reference(c):
    rng = np.random.default_rng(c["seed"])
    cin = c["cin"]
    if c["kind"] == "dense":
        groups, cout = 1, c["cout"]
    elif c["kind"] == "depthwise":
        groups, cout = cin, cin
    else:
        groups = 2 if cin % 2 == 0 else 1
        cout = groups * c["cout"]
    kh, kw = c["kh"], c["kw"]
    t, left, b, r = c["pads"]
    H, W = max(c["h"], c["dh"] * (kh - 1) + 1 - t - b), max(c["w"], c["dw"] * (kw - 1) + 1 - left - r)

    def conv(rng):
        w, bias, mult = _layer_arrays(rng, cout, kh * kw * (cin // groups), c["style"])
        return Layer("conv", "c", ("x",), ("y",),
                     {"stride": [c["sh"], c["sw"]], "dilation": [c["dh"], c["dw"]],
                      "pads": [t, left, b, r], "groups": groups, **_acts(c["a"], c["b"])},
                     {"weight": w.reshape(cout, kh, kw, cin // groups), "bias": bias,
                      "multiplier": mult})
    _same(_graph(rng, (H, W, cin), conv, c["zx"], c["zy"]), rng)


@settings(**SETTINGS)
@given(k=st.integers(1, 1200), n=st.integers(1, 40), lead=st.sampled_from([(), (3,), (2, 2)]),
       zx=st.integers(-128, 127), zy=st.integers(-128, 127), a=st.integers(-128, 127),
       b=st.integers(-128, 127), style=st.sampled_from(["ordinary", "saturated", "huge_bias"]),
       seed=st.integers(0, 999))
def test_dense_equals_reference(k, n, lead, zx, zy, a, b, style, seed):
    rng = np.random.default_rng(seed)

    def dense(rng):
        w, bias, mult = _layer_arrays(rng, n, k, style)
        return Layer("dense", "d", ("x",), ("y",), _acts(a, b),
                     {"weight": w, "bias": bias, "multiplier": mult})
    _same(_graph(rng, lead + (k,), dense, zx, zy), rng)


@settings(**SETTINGS)
@given(h=st.integers(1, 40), w=st.integers(1, 40), c=st.integers(1, 9),
       zx=st.integers(-128, 127), zy=st.integers(-128, 127), seed=st.integers(0, 999))
def test_global_avgpool_equals_reference(h, w, c, zx, zy, seed):
    rng = np.random.default_rng(seed)
    _same(_graph(rng, (h, w, c), lambda r: Layer("global_avgpool", "g", ("x",), ("y",)), zx, zy),
          rng)


def test_float64_fallback_is_taken_exactly_when_float32_could_round():
    w = np.full((1, 1032), 127, np.int8)
    assert 128 * 127 * 1032 + 0 <= EXACT_F32 and acc_dtype(w, [0]) == np.float32
    assert acc_dtype(np.full((1, 1033), 127, np.int8), [0]) == np.float64
    assert acc_dtype(np.zeros((2, 4), np.int8), [0, EXACT_F32]) == np.float32
    assert acc_dtype(np.zeros((2, 4), np.int8), [0, EXACT_F32 + 1]) == np.float64


def _chain_graph(rng):
    """conv (padded) -> depthwise conv -> maxpool -> avgpool (padded) -> global avgpool ->
    reshape -> dense -> softmax."""
    def conv(name, src, dst, cin, cout, groups, pads):
        w, bias, mult = _layer_arrays(rng, cout, 9 * (cin // groups), "ordinary")
        return Layer("conv", name, (src,), (dst,),
                     {"stride": [1, 1], "pads": pads, "groups": groups, "act_min": -5,
                      "act_max": 127},
                     {"weight": w.reshape(cout, 3, 3, cin // groups), "bias": bias,
                      "multiplier": mult})
    w, bias, mult = _layer_arrays(rng, 5, 8, "ordinary")
    layers = [conv("c1", "x", "a", 3, 8, 1, [1, 1, 1, 1]),
              conv("c2", "a", "b", 8, 8, 8, [0, 0, 0, 0]),
              Layer("maxpool", "mp", ("b",), ("m",), {"kernel": [2, 2], "stride": [2, 2]}),
              Layer("avgpool", "ap", ("m",), ("v",), {"kernel": [2, 2], "pads": [0, 0, 1, 1],
                                                      "count_include_pad": False}),
              Layer("global_avgpool", "g", ("v",), ("c",)),
              Layer("reshape", "r", ("c",), ("d",), {"shape": [8]}),
              Layer("dense", "fc", ("d",), ("e",), {}, {"weight": w, "bias": bias,
                                                        "multiplier": mult}),
              Layer("softmax", "sm", ("e",), ("p",))]
    tensors = {"x": Tensor("x", (12, 10, 3), "int8", 0.02, 3),
               "a": Tensor("a", (12, 10, 8), "int8", 0.1, -5),
               "b": Tensor("b", (10, 8, 8), "int8", 0.1, 7),
               "m": Tensor("m", (5, 4, 8), "int8", 0.1, 7),
               "v": Tensor("v", (5, 4, 8), "int8", 0.08, 2),
               "c": Tensor("c", (1, 1, 8), "int8", 0.05, -1),
               "d": Tensor("d", (8,), "int8", 0.05, -1),
               "e": Tensor("e", (5,), "int8", 0.2, 4),
               "p": Tensor("p", (5,), "float32", 1.0, 0)}
    g = Graph(tensors, layers, ("x",), ("p",))
    g.validate()
    return Bundle(g, InputSpec((12, 10, 3)))


def test_model_call_equals_reference_bit_for_bit():
    rng = np.random.default_rng(1)
    bundle = _chain_graph(rng)
    fast, ref = load(bundle, backend="numpy"), load(bundle, backend="reference")
    assert fast.backend == "numpy" and ref.backend == "reference"
    for scale in (0.01, 1.0, 30.0):
        x = (rng.normal(size=(12, 10, 3)) * scale).astype(np.float32)
        a, b = fast(x), ref(x)
        assert a.dtype == np.float32 and np.array_equal(a, b)
        np.testing.assert_array_equal(fast(x.astype(np.float64)), ref(x.astype(np.float64)))
        np.testing.assert_array_equal(fast(x[None]), b)            # leading batch axis of 1
    x = np.zeros((12, 10, 3), np.float32)
    x[3, 4, 1] = np.nan
    with pytest.raises(InputError, match="NaN or infinity"):
        fast(x)
    x[3, 4, 1] = np.inf
    with pytest.raises(InputError, match="NaN or infinity"):
        fast(x)
    huge = np.full((12, 10, 3), 3e38, np.float32)                   # finite: saturates
    np.testing.assert_array_equal(fast(huge), ref(huge))
    with pytest.raises(InputError, match="shape"):
        fast(np.zeros((10, 12, 3), np.float32))


def test_inference_allocates_no_intermediate_activations():
    """The planned steps (the whole graph but the returned copy of its output) allocate
    nothing but Python's loop iterators (48 bytes each; three are alive at once: this
    test's two loops and a step's loop over its windows), where a single re-allocated
    buffer would add a 112-byte array header to its data (at least 20 bytes here)."""
    rng = np.random.default_rng(2)
    engine = NumpyEngine(_chain_graph(rng).graph)
    engine.run_quantized([rng.integers(-128, 128, (12, 10, 3)).astype(np.int8)])
    steps = engine.steps

    def run():
        for _ in range(20):
            for step in steps:
                step()
    def peak_of_run():
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            run()
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    run()
    peak = min(peak_of_run() for _ in range(3))   # robust to an unrelated allocation
    assert peak <= 3 * 48, f"an inference allocated {peak} bytes"


@settings(**SETTINGS)
@given(op=st.sampled_from(["maxpool", "avgpool"]), h=st.integers(1, 9), w=st.integers(1, 9),
       c=st.integers(1, 5), kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3),
       sw=st.integers(1, 3), pads=st.tuples(*[st.integers(0, 2)] * 4), incl=st.booleans(),
       zx=st.integers(-128, 127), zy=st.integers(-128, 127), seed=st.integers(0, 999))
def test_pools_equal_reference(op, h, w, c, kh, kw, sh, sw, pads, incl, zx, zy, seed):
    rng = np.random.default_rng(seed)
    t, left, b, r = (min(pads[0], kh - 1), min(pads[1], kw - 1), min(pads[2], kh - 1),
                  min(pads[3], kw - 1))
    h, w = max(h, kh - t - b), max(w, kw - left - r)
    params = {"kernel": [kh, kw], "stride": [sh, sw], "pads": [t, left, b, r]}
    if op == "avgpool":
        params["count_include_pad"] = incl
    else:
        zy = zx                                  # maxpool keeps the input's quantization
    _same(_graph(rng, (h, w, c), lambda r_: Layer(op, "p", ("x",), ("y",), params), zx, zy), rng)


@settings(**SETTINGS)
@given(sizes=st.lists(st.integers(1, 300), min_size=3, max_size=5),
       styles=st.lists(st.sampled_from(["ordinary", "ordinary", "saturated", "huge_bias"]),
                       min_size=4, max_size=4),
       zps=st.lists(st.integers(-128, 127), min_size=5, max_size=5),
       branch=st.booleans(), expose=st.booleans(), seed=st.integers(0, 999))
def test_dense_chains_equal_reference(sizes, styles, zps, branch, expose, seed):
    """Chains of dense layers, where the engine hands vectors from layer to layer as
    floats: with float64 layers in between, a tensor read twice (a branch into an add)
    or exposed as a graph output, where it must not."""
    rng = np.random.default_rng(seed)
    tensors = {"t0": Tensor("t0", (sizes[0],), "int8", 0.05, zps[0])}
    layers = []
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w, bias, mult = _layer_arrays(rng, n, k, styles[i % 4])
        lo = zps[i + 1] if i % 2 == 0 else -128                       # ReLU or none
        tensors[f"t{i + 1}"] = Tensor(f"t{i + 1}", (n,), "int8", 0.1, zps[i + 1])
        layers.append(Layer("dense", f"d{i}", (f"t{i}",), (f"t{i + 1}",),
                            {"act_min": lo, "act_max": 127},
                            {"weight": w, "bias": bias, "multiplier": mult}))
    last = f"t{len(sizes) - 1}"
    outputs = [last]
    if branch and sizes[1] == sizes[-1]:
        tensors["sum"] = Tensor("sum", (sizes[-1],), "int8", 0.2, 3)
        layers.append(Layer("add", "add", ("t1", last), ("sum",)))
        outputs = ["sum"]
    if expose:
        outputs.append("t1")
    g = Graph(tensors, layers, ("t0",), tuple(outputs))
    g.validate()
    ref, fast = ReferenceEngine(g), NumpyEngine(g)
    for _ in range(3):
        x = rng.integers(-128, 128, (sizes[0],)).astype(np.int8)
        for a, b in zip(ref.run_quantized([x]), fast.run_quantized([x]), strict=True):
            np.testing.assert_array_equal(a, b)


def test_float_handoff_is_used_between_dense_layers_only_when_safe():
    rng = np.random.default_rng(3)
    g = Graph({"a": Tensor("a", (8,), "int8", 0.1, 0), "b": Tensor("b", (6,), "int8", 0.1, 1),
               "c": Tensor("c", (4,), "int8", 0.1, 2)},
              [Layer("dense", "d1", ("a",), ("b",), {}, dict(zip(
                  ("weight", "bias", "multiplier"), _layer_arrays(rng, 6, 8, "ordinary"), strict=True))),
               Layer("dense", "d2", ("b",), ("c",), {}, dict(zip(
                   ("weight", "bias", "multiplier"), _layer_arrays(rng, 4, 6, "ordinary"), strict=True)))],
              ("a",), ("c",))
    assert set(NumpyEngine._float_handoffs(g)) == {"b"}
    g.outputs = ("c", "b")                       # b is now read by the caller too
    assert NumpyEngine._float_handoffs(g) == {}


def test_model_call_on_indices_and_a_bad_index():
    rng = np.random.default_rng(4)
    table = rng.integers(-128, 128, (10, 3)).astype(np.int8)
    g = Graph({"i": Tensor("i", (4,), "int32"), "e": Tensor("e", (4, 3), "int8", 0.1, 5)},
              [Layer("gather", "g", ("i",), ("e",), {}, {"table": table})], ("i",), ("e",))
    bundle = Bundle(g, InputSpec((4,), "int32"))
    fast, ref = load(bundle, backend="numpy"), load(bundle, backend="reference")
    idx = np.array([0, 9, -1, 3])
    np.testing.assert_array_equal(fast(idx), ref(idx))
    np.testing.assert_array_equal(fast.run_quantized(idx.astype(np.int32)), table[idx])
    with pytest.raises(InputError, match="out of range"):
        fast(np.array([0, 1, 12, 3]))
    np.testing.assert_array_equal(fast(idx), ref(idx))          # and it still works after


@settings(**SETTINGS)
@given(v=st.integers(1, 40), d=st.integers(1, 8), shape=st.sampled_from([(1,), (5,), (2, 3)]),
       seed=st.integers(0, 999))
def test_gather_equals_reference_and_refuses_out_of_range(v, d, shape, seed):
    rng = np.random.default_rng(seed)
    table = rng.integers(-128, 128, (v, d)).astype(np.int8)
    g = Graph({"i": Tensor("i", shape, "int32"), "e": Tensor("e", shape + (d,), "int8", 0.1, 0)},
              [Layer("gather", "g", ("i",), ("e",), {}, {"table": table})], ("i",), ("e",))
    ref, fast = ReferenceEngine(g), NumpyEngine(g)
    i = rng.integers(-v, v, shape).astype(np.int32)
    np.testing.assert_array_equal(fast.run_quantized([i])[0], ref.run_quantized([i])[0])
    for bad in (v, -v - 1):
        i.flat[0] = bad
        with pytest.raises(IndexError, match="out of range"):
            fast.run_quantized([i])
