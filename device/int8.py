"""The one int8 arithmetic: every lanthorn engine computes exactly these integers.

onnxruntime is the oracle (see DESIGN.md, "The int8 arithmetic"), so each function here
reproduces, bit for bit in float32, what onnxruntime's CPU kernels compute on x86-64 with
AVX2 for the QDQ node groups it fuses at its default optimization level:

===========================  ==============================================================
onnxruntime kernel           here
===========================  ==============================================================
QuantizeLinear               :func:`quantize`      x / s, clamp, round half to even, + z
DequantizeLinear             :func:`dequantize`    float32(q - z) * s
QLinearConv, QGemm,          :func:`requantize` with :func:`requant_multiplier`
QLinearMatMul                (MLAS ``MlasRequantizeOutput``)
QLinearAveragePool           :func:`avgpool_float_sum` + :func:`quantize_avg`
QLinearGlobalAveragePool     :func:`global_avgpool_multiplier` + :func:`requantize`
QLinearAdd                   :func:`qlinear_add`  (MLAS AVX2 kernel: float32 fused
                             multiply-adds; see its docstring for the ARM caveat)
QLinearConcat, any           :func:`requant_table` (256-entry lookup table, as
DQ -> elementwise -> Q       onnxruntime's ``QlinearBuildLookupTable``)
===========================  ==============================================================

Rules every implementation (numpy reference, C kernel, microcontroller) must keep: float32
only, no fused multiply-add unless this module says so (C: ``-ffp-contract=off``), no
fast-math, round half to even (``np.rint`` / ``nearbyintf`` / ``vcvtnq`` / ``cvtps2dq``).
The C kernel's tests compare against these functions. numpy only.
"""
from __future__ import annotations

import numpy as np

QMIN = -128
QMAX = 127
F32 = np.float32

#: 1.5 * 2**23. Adding it to a float32 of magnitude below 2**22 leaves the float's unit at 1,
#: so the hardware's round-half-to-even does the rounding; subtracting it again (or reading
#: the low mantissa bits) gives the integer. The one spelling of this trick for every
#: Python engine and for C code lanthorn generates (the C kernel's twin is lk_round_even).
ROUND_EVEN_SHIFTER = 12582912.0


def f32(x) -> np.ndarray:
    """float32 view of a scalar or array (no arithmetic, just the representation)."""
    return np.asarray(x, dtype=np.float32)


# --------------------------------------------------------------------------- scalars / params

def requant_multiplier(s_in, s_w, s_out) -> np.ndarray:
    """The float32 requantization scale of conv/dense: ``(s_in * s_w[c]) / s_out``.

    Computed in float32 in exactly onnxruntime's order (QLinearConv / QGemm /
    QLinearMatMul: input scale times weight scale, then divided by the output scale).
    A different order can differ in the last bit and flip a rounding.
    """
    s_w = np.atleast_1d(f32(s_w))
    return ((f32(s_in) * s_w) / f32(s_out)).astype(np.float32)


def global_avgpool_multiplier(s_in, s_out, count: int) -> np.float32:
    """QLinearGlobalAveragePool's scale: ``s_in / (s_out * float32(count))`` in float32."""
    return F32(F32(s_in) / (F32(s_out) * F32(count)))


def act_bounds(zero_point: int, scale: float, lo: float | None, hi: float | None) -> tuple[int, int]:
    """Integer clamp ``(act_min, act_max)`` of a fused Relu/Clip(lo, hi) on an output tensor.

    The bound is quantized with the output's parameters (as a Q after the activation would
    round it) and intersected with the int8 range. ``None`` means unbounded.
    """
    qlo = QMIN if lo is None else int(quantize(np.array([lo], np.float32), scale, zero_point)[0])
    qhi = QMAX if hi is None else int(quantize(np.array([hi], np.float32), scale, zero_point)[0])
    return max(QMIN, qlo), min(QMAX, qhi)


# --------------------------------------------------------------------------- elementwise

def quantize(x, scale, zero_point, out=None) -> np.ndarray:
    """ONNX QuantizeLinear as MLAS computes it: ``x / scale`` (a true division, float32),
    clamped to ``[-128 - z, 127 - z]``, rounded half to even, plus ``z``, as int8."""
    v = np.atleast_1d(np.divide(f32(x), F32(scale), dtype=np.float32))
    return _saturate(v, QMIN, QMAX, zero_point, out)


def dequantize(q, scale, zero_point) -> np.ndarray:
    """ONNX DequantizeLinear: ``float32(int32(q) - z) * scale``."""
    return (np.asarray(q, dtype=np.int32) - np.int32(zero_point)).astype(np.float32) * F32(scale)


def requantize(acc, multiplier, zero_point, act_min: int = QMIN, act_max: int = QMAX,
               out=None, scratch=None) -> np.ndarray:
    """MLAS ``MlasRequantizeOutput``: int32 accumulator (bias already added) to int8.

    ``float32(acc) * multiplier`` (one float32 multiply, no FMA), clamp in float to
    ``[act_min - z, act_max - z]``, round half to even, ``+ z``, int8. ``multiplier`` is a
    float32 scalar or broadcasts along the last axis (per output channel). Clamping before
    rounding with integer bounds equals clamping after, so a fused ReLU/ReLU6/Clip (a
    narrower ``[act_min, act_max]``) costs nothing. ``scratch`` (float32, shape of acc) and
    ``out`` (int8) let the engine run without allocating.
    """
    acc = np.asarray(acc)
    if scratch is None:
        scratch = np.empty(acc.shape, dtype=np.float32)
    np.copyto(scratch, acc, casting="unsafe")              # int32 -> float32 (cvtdq2ps)
    np.multiply(scratch, f32(multiplier), out=scratch)
    return _saturate(scratch, act_min, act_max, zero_point, out)


def _saturate(v, lo: int, hi: int, zero_point, out=None) -> np.ndarray:
    """The shared last step of QuantizeLinear and requantization: float32 ``v`` (modified
    in place) clamped in float to ``[lo - z, hi - z]``, rounded half to even, ``+ z``, as
    int8 (into ``out`` when given)."""
    np.clip(v, F32(lo - zero_point), F32(hi - zero_point), out=v)
    np.rint(v, out=v)
    v += F32(zero_point)
    if out is None:
        return v.astype(np.int8)
    np.copyto(out, v, casting="unsafe")
    return out


def fma_f32(a, b, c) -> np.ndarray:
    """float32 fused multiply-add ``round32(a*b + c)`` (one rounding), emulated in float64.

    ``a`` is an int8-range integer and ``b``, ``c`` float32, so ``a*b`` is exact in float64
    (at most 33 significant bits) and ``a*b + c`` is exact whenever the two terms are
    within 2**20 of each other in magnitude, which the int8 add parameters guarantee
    (the ratios are at least 2**-14, see onnxruntime's MinScaleRatio). The single rounding
    to float32 is then the FMA's. C implementations use ``fmaf``.
    """
    r = np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)
    r += np.asarray(c, dtype=np.float64)
    return r.astype(np.float32)


def qlinear_add_params(s_a, z_a, s_b, z_b, s_c, z_c) -> tuple[np.float32, np.float32, np.float32]:
    """``(ratio_a, ratio_b, fixed)`` of QLinearAdd: ``s_a/s_c``, ``s_b/s_c`` and
    ``float32(z_c) - (ratio_a*z_a + ratio_b*z_b)``, all float32 in onnxruntime's order."""
    ra = F32(F32(s_a) / F32(s_c))
    rb = F32(F32(s_b) / F32(s_c))
    fixed = F32(F32(z_c) - F32(F32(ra * F32(z_a)) + F32(rb * F32(z_b))))
    return ra, rb, fixed


def qlinear_add(a, z_a, s_a, b, z_b, s_b, s_c, z_c, act_min: int = QMIN, act_max: int = QMAX,
                out=None) -> np.ndarray:
    """QLinearAdd as MLAS's AVX2 kernel computes it (onnxruntime on x86-64):

    ``t = fma(b, ratio_b, fixed); y = fma(a, ratio_a, t)``, round half to even, saturate to
    int8 (then the fused activation clamp). ``a`` and ``b`` are int8 arrays (``b`` may
    broadcast). Note: onnxruntime on ARM uses a fixed-point kernel for this op, which can
    differ from x86 by 1 LSB; lanthorn always uses this formula, so its own backends agree
    with each other everywhere and with onnxruntime exactly on x86.
    """
    ra, rb, fixed = qlinear_add_params(s_a, z_a, s_b, z_b, s_c, z_c)
    t = fma_f32(np.asarray(b, dtype=np.int32), rb, fixed)
    y = fma_f32(np.asarray(a, dtype=np.int32), ra, t)
    y = np.rint(y)
    np.clip(y, act_min, act_max, out=y)
    if out is None:
        return y.astype(np.int8)
    np.copyto(out, y, casting="unsafe")
    return out


def requant_table(s_in, z_in, s_out, z_out, fn=None) -> np.ndarray:
    """256-entry int8 table ``y = Q(fn(DQ(x)))`` as onnxruntime's QlinearBuildLookupTable
    builds it (QLinearConcat, QLinearSigmoid, ...): dequantize all 256 inputs, apply
    ``fn`` (identity by default) in float32, quantize with :func:`quantize`. Indexed by
    ``x + 128``."""
    xs = np.arange(QMIN, QMAX + 1, dtype=np.int32)
    v = dequantize(xs, s_in, z_in)
    if fn is not None:
        v = f32(fn(v))
    return quantize(v, s_out, z_out)


def apply_table(x, table, out=None) -> np.ndarray:
    """``table[x + 128]`` for int8 ``x`` (a ``lut`` layer)."""
    idx = np.asarray(x, dtype=np.int8).view(np.uint8) ^ np.uint8(0x80)  # x + 128 without widening
    return np.take(table, idx, out=out)


# --------------------------------------------------------------------------- pooling

def quantize_avg(avg, s_out, z_out, out=None) -> np.ndarray:
    """QLinearAveragePool's output step, in onnxruntime's uint8 domain.

    onnxruntime computes ``nearbyint(avg / s_out + z)`` with the zero point added in float
    before rounding (``quantize_value`` in qlinear_pool.cc). On x86 its QDQ optimizer runs
    int8 activations as uint8 (zero point + 128) wherever the producer is a QLinearConv,
    so ``z`` there is ``z_out + 128``, and adding 128 in float changes the rounding of
    the sum. We measured this on the default models and reproduce it: ``nearbyint(avg /
    s_out + (z_out + 128))`` clamped to [0, 255], minus 128.
    """
    v = np.divide(f32(avg), F32(s_out), dtype=np.float32)
    v += F32(z_out + 128)
    np.rint(v, out=v)
    np.clip(v, 0, 255, out=v)
    v -= F32(128)
    if out is None:
        return v.astype(np.int8)
    np.copyto(out, v, casting="unsafe")
    return out


def avgpool_divisor(count) -> np.ndarray:
    """float32 divisor of an average-pool window (``count`` positions)."""
    return f32(count)
