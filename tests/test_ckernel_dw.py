"""The SIMD paths of depthwise convolution and max-pooling (firmware/kernel: lk_simd.c's
drivers, lk_avx2.c, lk_vnni.c, lk_neon.c) give the scalar kernel's and the numpy
reference's integers on every element, in every variant this CPU runs.

Depthwise pads its input once and runs every pixel without bounds checks, so these cases
are wide enough to have both interior pixels and every kind of border (padding on each
side, windows reaching past the input with stride and dilation), channel counts around
the kernels' 16-channel blocks (1 to 70) and tap counts on both sides of the unrolled 3x3
and the 64-tap limit of the packed path. The ARM kernels run the same cases under
qemu-aarch64 (tests/test_aarch64_qemu.py)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_graphs import act, multipliers, one_layer, qparams, rand_i8
from test_ckernel import VARIANTS, check

pytest.importorskip("lanthorn.device.kernel_ext._lk",
                    reason="C kernel extension not built (pip install -e . needs a C compiler)")

SETTINGS = dict(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck),
                derandomize=True)
CHANNELS = [1, 2, 3, 5, 8, 15, 16, 17, 24, 31, 32, 33, 48, 64, 70]


def out_len(n, k, s, d, p0, p1):
    return (n + p0 + p1 - d * (k - 1) - 1) // s + 1


def depthwise(rng, h, w, c, kh, kw, stride=(1, 1), dil=(1, 1), pads=(1, 1, 1, 1), relu=False,
              wmax=127, mult="rand", zx=None, weight=None):
    sx, zx0 = qparams(rng)
    sy, zy = qparams(rng)
    t, lft, b, r = pads
    oh, ow = out_len(h, kh, stride[0], dil[0], t, b), out_len(w, kw, stride[1], dil[1], lft, r)
    lo, hi = act(rng, zy, relu)
    wt = rand_i8(rng, (c, kh, kw, 1), -wmax, wmax) if weight is None else weight
    return one_layer("conv", [((h, w, c), "int8", sx, zx0 if zx is None else zx)], (oh, ow, c), zy, sy,
                     {"stride": list(stride), "dilation": list(dil), "pads": list(pads),
                      "groups": c, "act_min": lo, "act_max": hi},
                     {"weight": wt, "bias": rng.integers(-5000, 5000, c).astype(np.int32),
                      "multiplier": multipliers(rng, c, kh * kw, mult) if isinstance(mult, str)
                      else np.full(c, mult, np.float32)})


dw_cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31), "h": st.integers(1, 20), "w": st.integers(1, 20),
    "c": st.sampled_from(CHANNELS), "kh": st.integers(1, 5), "kw": st.integers(1, 5),
    "sh": st.integers(1, 2), "sw": st.integers(1, 2), "dh": st.integers(1, 3), "dw": st.integers(1, 3),
    "pad": st.tuples(*[st.integers(0, 3)] * 4), "relu": st.booleans(),
    "mult": st.sampled_from(["rand", "rand", "half"])})


@settings(**SETTINGS)
@given(c=dw_cases)
def test_depthwise(c):
    rng = np.random.default_rng(c["seed"])
    kh, kw, (t, lft, b, r) = c["kh"], c["kw"], c["pad"]
    if out_len(c["h"], kh, 1, c["dh"], t, b) < 1:
        kh = 1
    if out_len(c["w"], kw, 1, c["dw"], lft, r) < 1:
        kw = 1
    g = depthwise(rng, c["h"], c["w"], c["c"], kh, kw, (c["sh"], c["sw"]), (c["dh"], c["dw"]),
                  (t, lft, b, r), c["relu"], mult=c["mult"])
    check(g, [rand_i8(rng, (c["h"], c["w"], c["c"]))])


@pytest.mark.parametrize("c", [16, 32, 35])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_3x3_as_in_image_models(c, stride):
    """The shape of cnn2d_32's and MobileNet's depthwise layers (the unrolled 3x3 path)."""
    rng = np.random.default_rng(c * stride)
    g = depthwise(rng, 16, 16, c, 3, 3, (stride, stride), relu=True)
    check(g, [rand_i8(rng, (16, 16, c))])


@pytest.mark.parametrize("kh,kw", [(8, 8), (1, 64), (5, 13), (1, 65)])
def test_depthwise_tap_counts_around_the_packed_limit(kh, kw):
    """64 taps is the packed path's limit; 65 stays on the scalar kernel: equal either way."""
    rng = np.random.default_rng(kh * kw)
    h, w = max(kh, 9), kw + 4
    g = depthwise(rng, h, w, 19, kh, kw, pads=(0, 2, 0, 2))
    check(g, [rand_i8(rng, (h, w, 19))])


@pytest.mark.parametrize("zx,xval,wval", [(127, -128, -128), (-128, 127, -128), (127, -128, 127)])
def test_depthwise_extreme_values_do_not_overflow(zx, xval, wval):
    """|x - zx| = 255 against |w| = 128 at every one of 64 taps: the int16 products, the
    vpmaddwd pair sums and the int32 sums stay exact (a multiplier of 2**-15 keeps the
    sum of +-2,088,960 inside the int8 range, so a wrong sum cannot hide in the clamp)."""
    rng = np.random.default_rng(5)
    weight = np.full((33, 8, 8, 1), wval, np.int8)
    g = depthwise(rng, 8, 8, 33, 8, 8, pads=(0, 0, 0, 0), zx=zx, weight=weight, mult=2.0 ** -15)
    ref = check(g, [np.full((8, 8, 33), xval, np.int8)])[0]
    assert 40 < abs(int(ref.ravel()[0]) - g.tensors["y"].zero_point) < 100


def test_depthwise_is_packed_on_every_simd_variant():
    from lanthorn.device import engine_c
    g = depthwise(np.random.default_rng(0), 8, 8, 32, 3, 3)
    for v in VARIANTS:
        assert (engine_c.CEngine(g, v).memory["packed"] > 0) == (v != "c-scalar"), v


# ----------------------------------------------------------------------------- max-pooling

pool_cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31), "h": st.integers(1, 14), "w": st.integers(1, 14),
    "c": st.sampled_from(CHANNELS), "kh": st.integers(1, 4), "kw": st.integers(1, 4),
    "sh": st.integers(1, 3), "sw": st.integers(1, 3), "dh": st.integers(1, 2), "dw": st.integers(1, 2),
    "pad": st.tuples(*[st.integers(0, 3)] * 4)})


def maxpool(rng, h, w, c, kh, kw, stride=(1, 1), dil=(1, 1), pads=(0, 0, 0, 0)):
    sx, zx = qparams(rng)
    t, lft, b, r = pads
    oh, ow = out_len(h, kh, stride[0], dil[0], t, b), out_len(w, kw, stride[1], dil[1], lft, r)
    return one_layer("maxpool", [((h, w, c), "int8", sx, zx)], (oh, ow, c), zx, sx,
                     {"kernel": [kh, kw], "stride": list(stride), "dilation": list(dil),
                      "pads": list(pads)})


@settings(**SETTINGS)
@given(c=pool_cases)
def test_maxpool(c):
    rng = np.random.default_rng(c["seed"])
    kh, kw = min(c["kh"], c["h"]), min(c["kw"], c["w"])
    if out_len(c["h"], kh, 1, c["dh"], 0, 0) < 1:
        kh = 1
    if out_len(c["w"], kw, 1, c["dw"], 0, 0) < 1:
        kw = 1
    pads = tuple(min(p, k - 1) for p, k in zip(c["pad"], (kh, kw, kh, kw), strict=True))
    g = maxpool(rng, c["h"], c["w"], c["c"], kh, kw, (c["sh"], c["sw"]), (c["dh"], c["dw"]), pads)
    check(g, [rand_i8(rng, (c["h"], c["w"], c["c"]))])


@pytest.mark.parametrize("k,c", [((2, 2), 32), ((3, 3), 49), ((8, 8), 33), ((9, 9), 17)])
def test_maxpool_windows_up_to_and_past_the_vector_path(k, c):
    """2x2 and 3x3 as in image models; 64 window positions is the vector path's limit, 81
    takes the scalar kernel. Extreme values: -128 and 127 everywhere in the input."""
    rng = np.random.default_rng(c)
    g = maxpool(rng, 12, 12, c, *k, stride=(2, 2) if k == (2, 2) else (1, 1),
                pads=(1, 1, 1, 1) if k == (3, 3) else (0, 0, 0, 0))
    x = rand_i8(rng, (12, 12, c))
    x[0, :3] = -128
    x[5] = 127
    check(g, [x])
