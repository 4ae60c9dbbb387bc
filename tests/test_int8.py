"""The one int8 arithmetic (lanthorn.device.engine.int8) against onnxruntime and first principles."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanthorn.device.engine import int8
from lanthorn.device.engine.graph import Tensor

F = np.float32


def test_requantize_rounds_half_to_even_and_clamps():
    acc = np.array([5, 15, 25, -5, -15, 100000, -100000, 0], np.int32)
    out = int8.requantize(acc, F(0.1), 3)
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2 (half to even), then + 3, clamped
    np.testing.assert_array_equal(out, [3, 5, 5, 3, 1, 127, -128, 3])
    np.testing.assert_array_equal(int8.requantize(acc, F(0.1), 3, act_min=3, act_max=4),
                                  [3, 4, 4, 3, 3, 4, 3, 3])


def test_requant_multiplier_order_is_onnxruntimes():
    s_in, s_w, s_out = F(0.0123), np.array([0.00071, 0.0031], F), F(0.0457)
    expected = (s_in * s_w) / s_out
    np.testing.assert_array_equal(int8.requant_multiplier(s_in, s_w, s_out), expected)
    assert int8.requant_multiplier(s_in, s_w, s_out).dtype == np.float32


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(1e-4, 10.0), zp=st.integers(-128, 127), seed=st.integers(0, 2**16))
def test_quantize_and_tables_equal_onnxruntime(scale, zp, seed):
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    scale = F(scale)
    x = np.random.default_rng(seed).normal(0, 100 * float(scale), 300).astype(F)
    x[:20] = (np.arange(20) - 10 + 0.5) * scale      # exact ties
    inits = [numpy_helper.from_array(np.array(scale), "s"), numpy_helper.from_array(np.array(zp, np.int8), "z")]
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])], "q",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [300])],
                          [helper.make_tensor_value_info("q", TensorProto.INT8, [300])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(int8.quantize(x, scale, zp), sess.run(None, {"x": x})[0])
    # dequantize -> quantize table (QLinearConcat's requantization) is a pure composition
    t = int8.requant_table(scale, zp, F(0.05), 0)
    np.testing.assert_array_equal(t, int8.quantize(int8.dequantize(np.arange(-128, 128), scale, zp), F(0.05), 0))


def nearest_f32(q):
    """The float32 nearest to the exact rational q (ties to even): one correct rounding."""
    from fractions import Fraction
    f = F(float(q))
    cands = [np.nextafter(f, F(-np.inf)), f, np.nextafter(f, F(np.inf))]
    return min(cands, key=lambda c: (abs(Fraction(float(c)) - q), int(np.array(c).view(np.int32)) & 1))


@settings(max_examples=60, deadline=None)
@given(a=st.integers(-255, 255), b=st.floats(2.0**-14, 255.0, width=32), c=st.floats(-400, 400, width=32))
def test_fma_emulation_is_single_rounding(a, b, c):
    from fractions import Fraction
    exact = Fraction(a) * Fraction(float(F(b))) + Fraction(float(F(c)))
    assert int8.fma_f32(a, F(b), F(c)) == nearest_f32(exact)


def test_apply_table_indexes_by_x_plus_128():
    table = np.arange(-128, 128, dtype=np.int16)[::-1].astype(np.int8)
    x = np.array([-128, -1, 0, 127], np.int8)
    np.testing.assert_array_equal(int8.apply_table(x, table), table[x.astype(int) + 128])


def test_act_bounds_for_relu_and_relu6():
    assert int8.act_bounds(-20, 0.05, 0.0, None) == (-20, 127)
    assert int8.act_bounds(-128, 0.05, 0.0, 6.0) == (-128, -8)


# ---------------------------------------------------------------- planned fast paths

SETTINGS = dict(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@settings(**SETTINGS)
@given(scale=st.floats(1e-4, 10.0), zp=st.integers(-128, 127), seed=st.integers(0, 99))
def test_planned_input_quantization_equals_int8_quantize(scale, zp, seed):
    rng = np.random.default_rng(seed)
    t = Tensor("x", (40,), "int8", scale, zp)
    ks = rng.integers(-200, 200, 40)
    x = ((ks + 0.5) * np.float32(t.scale)).astype(np.float32)     # ties on purpose
    x[::3] = rng.normal(0, 300 * t.scale, x[::3].shape)
    q = np.zeros(40, np.int8)
    int8.quantizer(q, t.scale, t.zero_point, ValueError)(x)
    np.testing.assert_array_equal(q, int8.quantize(x, t.scale, t.zero_point))


@settings(**SETTINGS)
@given(zp=st.integers(-128, 127), a=st.integers(-128, 127), b=st.integers(-128, 127),
       shift=st.integers(0, 12), kind=st.sampled_from(["float32", "float64", "int32"]),
       seed=st.integers(0, 999))
def test_requantizer_equals_int8_requantize_on_ties_and_extremes(zp, a, b, shift, kind, seed):
    """Both of its roundings (rint, and the 1.5 * 2**23 addition used for even zero
    points) against int8.requantize: multipliers 2**-shift make exact .5 ties, and the
    accumulators reach the int32 range and float32's 2**24 limit."""
    rng = np.random.default_rng(seed)
    lo, hi = sorted((a, b))
    acc = np.concatenate([rng.integers(-3000, 3000, 200), rng.integers(-2**31, 2**31 - 1, 40),
                          [2**24 - 1, 2**24 + 1, -2**24 - 3, 0, 1, -1, 2**31 - 1, -2**31]])
    if kind == "float32":
        acc = acc[np.abs(acc) <= 2**24]                # exact integers only, as the engine keeps
    acc = acc.astype(kind)
    for mult in (np.float32(2.0 ** -shift), rng.uniform(1e-6, 0.1, acc.size).astype(np.float32)):
        out = np.empty(acc.shape, np.int8)
        int8.requantizer(acc.copy(), mult, zp, lo, hi, out)()
        ref = int8.requantize(acc.astype(np.int64).astype(np.int32), mult, zp, lo, hi)
        np.testing.assert_array_equal(out, ref)


@settings(**SETTINGS)
@given(n=st.integers(1, 300), scale=st.floats(1e-3, 4.0), zp=st.integers(-128, 127),
       seed=st.integers(0, 999))
def test_softmax_fast_paths_equal_the_plain_formula(n, scale, zp, seed):
    """softmax_f32 with 0-d constants and its 1-D path give the bits of the plain formula
    every backend shares (the C thin call too): d = row max - x, exp(-d * scale) in
    float32, the row summed left to right, divided; close to the textbook float softmax."""
    x = np.random.default_rng(seed).integers(-128, 128, (3, n)).astype(np.int8)
    s = float(np.float32(scale))
    d = x.max(axis=-1, keepdims=True).astype(np.int32) - x
    plain = np.exp(-d.astype(np.float32) * np.float32(s))
    for row in plain:
        total = np.float32(0)
        for v in row:
            total = np.float32(total + v)
        row /= total
    textbook = (x.astype(np.int32) - np.int32(zp)).astype(np.float64) * s
    textbook = np.exp(textbook - textbook.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(plain, textbook / textbook.sum(axis=-1, keepdims=True),
                               rtol=2e-5, atol=1e-7)
    np.testing.assert_array_equal(int8.softmax_f32(x, s, zp), plain)
    for row, want in zip(x, plain, strict=True):
        out = np.empty(n, np.float32)
        got = int8.softmax_f32(row, np.array(s, np.float32), np.array(zp, np.float32), out=out)
        assert got is out
        np.testing.assert_array_equal(got, want)


@settings(**SETTINGS)
@given(sx=st.floats(1e-3, 2.0), zx=st.integers(-128, 127), sy=st.floats(1e-3, 2.0),
       zy=st.integers(-128, 127), n=st.integers(1, 9), seed=st.integers(0, 999))
def test_planned_pool_steps_equal_dequantize_and_quantize_avg(sx, zx, sy, zy, n, seed):
    """The average pool's planned first and last steps give int8.dequantize's floats and
    int8.quantize_avg's integers (window sums with exact .5 ties included)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (3, 4, 5)).astype(np.int8)
    deq = np.empty(x.shape, np.float32)
    int8.dequantizer(x, sx, zx, deq)()
    np.testing.assert_array_equal(deq, int8.dequantize(x, sx, zx))
    sums = (rng.integers(-300, 300, x.shape) * np.float32(sy) / 2).astype(np.float32)
    count = np.full(x.shape, n, np.float32)
    want = int8.quantize_avg(np.divide(sums, count, dtype=np.float32), sy, zy)
    out = np.empty(x.shape, np.int8)
    int8.avg_quantizer(sums.copy(), count, sy, zy, out)()
    np.testing.assert_array_equal(out, want)


def test_planned_quantizer_refuses_nan_and_saturates_overflow():
    q = np.zeros(4, np.int8)
    quantize = int8.quantizer(q, 0.5, 3, lambda: ValueError("not finite"))
    with pytest.raises(ValueError, match="not finite"):
        quantize(np.array([0, np.nan, 1, 2], np.float32))
    quantize(np.array([3e38, -3e38, 1.0, 0.0], np.float32))        # x / scale overflows
    np.testing.assert_array_equal(q, [127, -128, 5, 3])


def test_qlinear_add_with_scratch_allocates_nothing_and_matches():
    """The buffers the reference engine passes give the same integers as the allocating
    call, and b broadcasts along the leading axes."""
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (6, 5)).astype(np.int8)
    b = rng.integers(-128, 128, (5,)).astype(np.int8)
    args = (0.031, 4, 0.017, -7, 0.045, -3)
    want = int8.qlinear_add(a, args[1], args[0], b, args[3], args[2], args[4], args[5])
    out = np.empty(a.shape, np.int8)
    scratch = (np.empty(a.shape), np.empty(a.shape, np.float32))
    got = int8.qlinear_add(a, args[1], args[0], b, args[3], args[2], args[4], args[5],
                           out=out, scratch=scratch)
    assert got is out
    np.testing.assert_array_equal(out, want)
