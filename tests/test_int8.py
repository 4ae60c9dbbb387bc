"""The one int8 arithmetic (lanthorn.device.int8) against onnxruntime and first principles."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lanthorn.device import int8

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
