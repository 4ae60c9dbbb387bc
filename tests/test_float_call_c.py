"""``model(x)`` and ``run_quantized(x)`` on the C engine (the thin call: one C call each,
input conversion, run, dequantization or the final softmax) return the numpy backend's
outputs bit for bit for every input dtype, and refuse what the numpy path refuses with the
same one-line error.

The float call is where the C path's speed comes from at small sizes (the kernel runs a
25k-MAC model in ~3 us; a dozen numpy calls around it cost ~20 us), so it is checked on the
awkward inputs: exact .5 ties of x / scale, values far beyond the clamp range, finite values
whose quotient overflows, signed zeros, every zero point, 1-D and row-wise softmax.
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_graphs import rand_i8, small_cnn

from lanthorn.device.engine import engine_c
from lanthorn.device.engine.bundle import Bundle
from lanthorn.device.engine.graph import Graph, Layer, Tensor
from lanthorn.device.engine.runtime import InputError, load
from lanthorn.errors import UserError

pytest.importorskip("lanthorn.device.engine.kernel_ext._lk",
                    reason="C kernel extension not built (pip install -e . needs a C compiler)")

# numpy's own quantizer warns about x / scale overflowing on the extreme inputs (then clamps)
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]
VARIANTS = engine_c.available_variants()
SETTINGS = dict(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck),
                derandomize=True)


def rowwise_softmax_graph(rng, s_in, z_in, softmax=True):
    """(1, 6, 4) -> 1x1 conv -> (1, 6, 5) [-> softmax over the last axis]: the n-D path."""
    T = {"x": Tensor("x", (1, 6, 4), "int8", s_in, z_in),
         "y": Tensor("y", (1, 6, 5), "int8", 0.07, int(rng.integers(-128, 128)))}
    L = [Layer("conv", "c", ["x"], ["y"], {}, {
        "weight": rand_i8(rng, (5, 1, 1, 4), -127, 127),
        "bias": rng.integers(-2000, 2000, 5).astype(np.int32),
        "multiplier": np.full(5, 0.004, np.float32)})]
    outs = ["y"]
    if softmax:
        T["p"] = Tensor("p", (1, 6, 5), "float32")
        L.append(Layer("softmax", "sm", ["y"], ["p"]))
        outs = ["p"]
    g = Graph(T, L, ["x"], outs)
    g.validate()
    return g


def models(graph, spec_shape=None):
    b = Bundle(graph, {"shape": spec_shape or graph.tensors[graph.inputs[0]].shape})
    return load(b, backend="numpy"), [load(b, backend="c") for _ in VARIANTS]


def float_inputs(rng, shape, s, z, kind):
    n = int(np.prod(shape))
    if kind == "ties":      # x / s lands on k + .5 (exactly when s is a power of two)
        k = rng.integers(-300, 300, n)
        x = (k + 0.5) * np.float64(s)
    elif kind == "wide":    # well beyond [-128 - z, 127 - z] * s, both signs
        x = rng.standard_normal(n) * s * rng.choice([10.0, 300.0, 1e6], n)
    elif kind == "extreme":  # finite, but x / s overflows float32 (clamped, not refused)
        x = rng.choice([3.4e38, -3.4e38, 1e-45, -1e-45, 0.0, -0.0, 1.0], n)
    else:
        x = rng.standard_normal(n) * s * 40
    return x.astype(np.float32).reshape(shape)


def assert_same_bits(got, want):
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (got, want)


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31), z=st.integers(-128, 127), pow2=st.booleans(),
       softmax=st.booleans(), rowwise=st.booleans(),
       kind=st.sampled_from(["ties", "wide", "extreme", "normal"]))
def test_c_float_call_equals_numpy_bit_for_bit(seed, z, pow2, softmax, rowwise, kind):
    rng = np.random.default_rng(seed)
    s = float(2.0 ** -int(rng.integers(1, 9))) if pow2 else float(np.float32(rng.uniform(0.003, 0.3)))
    if rowwise:
        g = rowwise_softmax_graph(rng, s, z, softmax)
    else:
        g = small_cnn(rng, final_softmax=softmax)
        g.tensors["img"].scale, g.tensors["img"].zero_point = s, z
    ref, cs = models(g)
    shape = g.tensors[g.inputs[0]].shape
    for m in cs:
        assert m._thin is not None, "the thin C call should be used for this graph"
    for _ in range(3):
        x = float_inputs(rng, shape, s, z, kind)
        want = ref(x)
        for m in cs:
            assert_same_bits(m(x), want)
        # other dtypes and layouts take numpy's quantizer or a contiguous copy: same bits
        for alt in (x.astype(np.float64), np.asfortranarray(x), x[None],
                    np.round(x / s).astype(np.int8), np.round(x / s).astype(np.int64)):
            for m in cs:
                assert_same_bits(m(alt), ref(alt))


def test_non_float32_and_strided_inputs():
    rng = np.random.default_rng(1)
    g = small_cnn(rng)
    ref, cs = models(g, spec_shape=(64, 3))       # input_spec shape differs from the tensor's
    x = rng.standard_normal((8, 8, 3)).astype(np.float32) * 3
    cases = [x.reshape(64, 3), x.astype(np.float64) * 1e300, (x * 9).astype(np.int16),
             x.astype(np.float16), np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2),
             x.reshape(1, 8, 8, 3), x.tolist()]
    for c in cases:
        for m in cs:
            assert_same_bits(m(c), ref(c))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinity_refused_like_numpy(bad):
    rng = np.random.default_rng(2)
    g = small_cnn(rng)
    ref, cs = models(g)
    x = rng.standard_normal((8, 8, 3)).astype(np.float32)
    good = ref(x)
    x[3, 4, 1] = bad
    with pytest.raises(InputError) as want:
        ref(x)
    for m in cs:
        with pytest.raises(InputError) as got:
            m(x)
        assert str(got.value) == str(want.value) == "input 'img' contains NaN or infinity"
        x2 = x.copy()
        x2[3, 4, 1] = 0.5
        assert_same_bits(m(x2), ref(x2))                  # the model still runs afterwards
        assert_same_bits(m(x2 * 0 + x2), ref(x2))
    assert good.shape == (5,)


def test_wrong_shape_and_dtype_errors_unchanged():
    g = small_cnn(np.random.default_rng(3))
    ref, cs = models(g)
    for bad in (np.zeros((8, 8), np.float32), np.array(["a"] * 192).reshape(8, 8, 3)):
        with pytest.raises(InputError) as want:
            ref(bad)
        for m in cs:
            with pytest.raises(InputError) as got:
                m(bad)
            assert str(got.value) == str(want.value)


def test_thin_call_declines_what_it_does_not_take():
    """call/call_raw return NotImplemented (the runtime's checked path then answers) for
    anything but an exact C-contiguous array of an accepted shape and dtype."""
    g = small_cnn(np.random.default_rng(4))
    e = engine_c.CEngine(g)
    call, raw = e.thin_call([(8, 8, 3)], None, 0)
    x = np.zeros((8, 8, 3), np.float32)
    assert call(x).dtype == np.float32 and call(x).shape == (5,)
    assert raw(x.astype(np.int8)).dtype == np.int8
    for bad in (np.zeros((8, 8, 6), np.float32)[:, :, ::2], np.zeros((8, 8, 2), np.float32),
                x.tolist(), x.astype(np.float16), x.astype(bool), np.full((8, 8, 3), np.nan, np.float32)):
        assert call(bad) is NotImplemented
    assert raw(x) is NotImplemented                     # run_quantized takes int8 only
    assert call(x) is not call(x)                       # a fresh array every call
    with pytest.raises(ValueError, match="divide"):
        e.thin_call([(8, 8, 3)], np.zeros(256, np.float32), 3)


def test_token_ids_take_the_thin_call_and_bad_ids_are_input_errors():
    from kernel_graphs import one_layer
    rng = np.random.default_rng(6)
    table = rand_i8(rng, (11, 4))
    g = one_layer("gather", [((3,), "int32", 1.0, 0)], (3, 4), 0, 0.1, {}, {"table": table})
    ref, cs = models(g)
    for m in cs:
        assert m._thin is not None
        for ids in (np.array([0, 10, 3]), np.array([0, 10, 3], np.int32), np.array([1, 2, 3], np.uint8)):
            np.testing.assert_array_equal(m.run_quantized(ids), ref.run_quantized(ids))
            assert_same_bits(m(ids), ref(ids))
        with pytest.raises(InputError, match="bad input"):
            m(np.array([0, 11, 3]))
        with pytest.raises(InputError, match="bad input"):
            m.run_quantized(np.array([-12, 1, 3]))
        np.testing.assert_array_equal(m.run_quantized(np.array([-1, 1, 3])),   # from the end
                                      ref.run_quantized(np.array([-1, 1, 3])))
        assert_same_bits(m(np.array([4, 5, 6])), ref(np.array([4, 5, 6])))   # still running


def test_a_graph_the_c_kernel_refuses_is_a_bad_bundle_not_a_fallback(monkeypatch):
    """Graph.validate is as strict as the kernel, so a refusal from the kernel means a bad
    bundle: one line, no silent switch to numpy (which is what let a crafted bundle reach
    numpy's unchecked windows before)."""
    from lanthorn.device.engine import runtime
    g = small_cnn(np.random.default_rng(5))

    def refuse(graph):
        raise engine_c.CKernelUnsupported("the C kernel refuses this model (mystery)")
    monkeypatch.setattr(runtime, "_c_engine", refuse)
    monkeypatch.setattr(runtime, "_warned_fallback", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UserError, match="refuses this model") as err:
            runtime.load(Bundle(g, {"shape": (8, 8, 3)}))
    assert "\n" not in str(err.value)
    assert not [w for w in caught if "C kernel" in str(w.message)]


def test_device_loop_window_takes_the_thin_call():
    """The loop hands model(x) a row slice of its float32 ring (device/piece/loop.py _window):
    that view is what the thin call takes as it is, no copy, no Python checks."""
    rng = np.random.default_rng(7)
    g = small_cnn(rng)
    ref, cs = models(g, spec_shape=(64, 3))
    ring = rng.standard_normal((2 * 64, 3)).astype(np.float32)
    window = ring[5:5 + 64]
    for m in cs:
        y = m._thin(window)
        assert y is not NotImplemented
        assert_same_bits(y, ref(window))
