"""The one int8 arithmetic: every lanthorn engine computes exactly these integers.

onnxruntime is the oracle (see DESIGN.md, "The int8 arithmetic"), so each function here
reproduces, bit for bit in float32, what onnxruntime's CPU kernels compute on its int8 QDQ
path (``session.qdqisint8allowed=1``, the path it takes on ARM) for the QDQ node groups it
fuses at its default optimization level:

===========================  ==============================================================
onnxruntime kernel           here (definition; planned, allocation-free form)
===========================  ==============================================================
QuantizeLinear               :func:`quantize`; :func:`quantizer` (the runtime's input)
                             x / s, clamp, round half to even, + z
DequantizeLinear             :func:`dequantize`; :func:`dequantizer`   float32(q - z) * s
QLinearConv, QGemm,          :func:`requantize` with :func:`requant_multiplier`;
QLinearMatMul                :func:`requantizer` (MLAS ``MlasRequantizeOutput``)
QLinearAveragePool           :func:`quantize_avg`; :func:`avg_quantizer`
QLinearGlobalAveragePool     :func:`global_avgpool_multiplier` + :func:`requantize`
QLinearAdd                   :func:`qlinear_add` (MLAS AVX2 kernel: float32 fused
                             multiply-adds, :func:`fma_f32`; see its ARM caveat)
QLinearMul                   :func:`qlinear_mul` (int32 product, one float32 multiply
                             and one add, :func:`qlinear_mul_ratio`)
QLinearConcat, any           :func:`requant_table` (256-entry lookup table, as
DQ -> elementwise -> Q       onnxruntime's ``QlinearBuildLookupTable``), :func:`apply_table`
Softmax (final, float)       :func:`softmax_f32`, :func:`softmax_table` (lanthorn's own
                             definition, shared by every backend and the C thin call)
===========================  ==============================================================

This module is the only place the rounding is spelled (the engines call it): round half to
even is ``np.rint``, or :data:`ROUND_EVEN_SHIFTER` added to a clamped float32 where the
planned paths fold rounding and the zero point into one addition. The planned forms
(:func:`requantizer`, :func:`quantizer`, ...) do the definition's float32 operations in
the same order into preallocated buffers; tests/test_int8.py proves them equal.

Rules every implementation (numpy reference, C kernel, microcontroller) must keep: float32
only, no fused multiply-add unless this module says so (C: ``-ffp-contract=off``), no
fast-math, round half to even (``np.rint`` / ``nearbyintf`` / ``vcvtnq`` / ``cvtps2dq``).
The C kernel's tests compare against these functions; its twin of this module is
``firmware/kernel/lk_internal.h``. numpy only.
"""
from __future__ import annotations

import math
import sys

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


def fma_f32(a, b, c, out=None, wide=None) -> np.ndarray:
    """float32 fused multiply-add ``round32(a*b + c)`` (one rounding), emulated in float64.

    ``a`` is an int8-range integer and ``b``, ``c`` float32, so ``a*b`` is exact in float64
    (at most 33 significant bits) and ``a*b + c`` is exact whenever the two terms are
    within 2**20 of each other in magnitude, which the int8 add parameters guarantee
    (the ratios are at least 2**-14, see onnxruntime's MinScaleRatio). The single rounding
    to float32 is then the FMA's. C implementations use ``fmaf``. ``out`` (float32) and
    ``wide`` (float64), both of the result's shape, let an engine run it without allocating.
    """
    b = float(b) if np.ndim(b) == 0 else np.asarray(b, dtype=np.float64)
    c = float(c) if np.ndim(c) == 0 else c          # float32 + float64 adds in float64
    if wide is None:
        wide = np.empty(np.broadcast_shapes(np.shape(a), np.shape(b), np.shape(c)), np.float64)
    np.multiply(a, b, out=wide)                     # exact: float64 (b is float64)
    np.add(wide, c, out=wide)                       # exact, see above
    if out is None:
        return wide.astype(np.float32)
    np.copyto(out, wide, casting="same_kind")       # the one rounding
    return out


def qlinear_add_params(s_a, z_a, s_b, z_b, s_c, z_c) -> tuple[np.float32, np.float32, np.float32]:
    """``(ratio_a, ratio_b, fixed)`` of QLinearAdd: ``s_a/s_c``, ``s_b/s_c`` and
    ``float32(z_c) - (ratio_a*z_a + ratio_b*z_b)``, all float32 in onnxruntime's order."""
    ra = F32(F32(s_a) / F32(s_c))
    rb = F32(F32(s_b) / F32(s_c))
    fixed = F32(F32(z_c) - F32(F32(ra * F32(z_a)) + F32(rb * F32(z_b))))
    return ra, rb, fixed


def qlinear_add(a, z_a, s_a, b, z_b, s_b, s_c, z_c, act_min: int = QMIN, act_max: int = QMAX,
                out=None, scratch=None) -> np.ndarray:
    """QLinearAdd as MLAS's AVX2 kernel computes it (onnxruntime on x86-64):

    ``t = fma(b, ratio_b, fixed); y = fma(a, ratio_a, t)``, round half to even, saturate to
    int8 (then the fused activation clamp). ``a`` and ``b`` are int8 arrays (``b`` may
    broadcast). Each FMA is :func:`fma_f32`'s float64 emulation, spelled with ``out=`` so
    that ``scratch`` (a float64 and a float32 array of the output's shape) and ``out``
    let an engine run it without allocating. Note: onnxruntime on ARM uses a fixed-point
    kernel for this op, which can differ from x86 by 1 LSB; lanthorn always uses this
    formula, so its own backends agree with each other everywhere and with onnxruntime
    exactly on x86.
    """
    ra, rb, fixed = qlinear_add_params(s_a, z_a, s_b, z_b, s_c, z_c)
    if scratch is None:
        shape = np.broadcast_shapes(np.shape(a), np.shape(b))
        scratch = (np.empty(shape, np.float64), np.empty(shape, np.float32))
    wide, y = scratch
    fma_f32(b, rb, fixed, out=y, wide=wide)           # t = fma(b, ratio_b, fixed)
    fma_f32(a, ra, y, out=y, wide=wide)               # y = fma(a, ratio_a, t)
    np.rint(y, out=y)
    np.clip(y, act_min, act_max, out=y)
    if out is None:
        return y.astype(np.int8)
    np.copyto(out, y, casting="unsafe")
    return out


def qlinear_mul_ratio(s_a, s_b, s_c) -> np.float32:
    """QLinearMul's one float32 scale: ``(s_a * s_b) / s_c`` in onnxruntime's order."""
    return F32(F32(F32(s_a) * F32(s_b)) / F32(s_c))


def qlinear_mul(a, z_a, s_a, b, z_b, s_b, s_c, z_c, act_min: int = QMIN, act_max: int = QMAX,
                out=None, scratch=None) -> np.ndarray:
    """QLinearMul as MLAS computes it for int8 (``MlasQLinearMul``, the same arithmetic in
    its SSE2/AVX2 and NEON kernels, vector or scalar ``b``):

    ``p = (a - z_a) * (b - z_b)`` exactly in int32 (|p| <= 65536, so float32(p) is exact),
    ``v = float32(p) * ratio + float32(z_c)`` as a multiply then an add (no FMA), rounded
    half to even, saturated to int8 (then the fused activation clamp). ``b`` may
    broadcast (squeeze-and-excitation: ``(H, W, C) x (1, 1, C)``). ``scratch`` (an int32
    and a float32 array of the output's shape) and ``out`` let an engine run it without
    allocating. Exact while ``|v| < 2**31`` (the graph bounds the ratio)."""
    ratio, zc = qlinear_mul_ratio(s_a, s_b, s_c), F32(z_c)
    if scratch is None:
        shape = np.broadcast_shapes(np.shape(a), np.shape(b))
        scratch = (np.empty(shape, np.int32), np.empty(shape, np.float32))
    p, y = scratch
    np.subtract(a, np.int32(z_a), out=p, dtype=np.int32)
    np.multiply(p, np.subtract(b, np.int32(z_b), dtype=np.int32), out=p)
    np.copyto(y, p, casting="unsafe")
    np.multiply(y, ratio, out=y)
    np.add(y, zc, out=y)
    np.rint(y, out=y)
    np.clip(y, max(QMIN, act_min), min(QMAX, act_max), out=y)
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
    """QLinearAveragePool's output step on onnxruntime's int8 QDQ path.

    onnxruntime computes ``nearbyint(avg / s_out + z)`` with the zero point added in float
    before rounding (``quantize_value`` in qlinear_pool.cc), clamped to int8. (Stock
    onnxruntime on x86 runs such a pool as uint8, ``z + 128``, after a QLinearConv, and
    adding 128 in float changes the rounding of some sums: not the oracle's path.)
    """
    v = np.divide(f32(avg), F32(s_out), dtype=np.float32)
    v += F32(z_out)
    np.rint(v, out=v)
    np.clip(v, QMIN, QMAX, out=v)
    if out is None:
        return v.astype(np.int8)
    np.copyto(out, v, casting="unsafe")
    return out


# --------------------------------------------------------------------------- planned fast paths
# The functions above are the definition; the ones below plan the same float32 operations,
# in the same order, once per layer so that an engine's inference only runs preallocated
# ufunc calls. Two measured numpy facts shape them: a ufunc whose operands differ in shape
# or dtype builds a buffered iterator (allocates, and is slower), so constants are 0-d or
# spelled out to full shape; and np.maximum/np.minimum vectorise only array against array
# (against a scalar 6x slower: 16.7 vs 2.5 us on 16k values), so clamps use full-shape bounds.

def _full(shape, value) -> np.ndarray:
    return np.full(shape, value, np.float32)


def _shifter_copy(v: np.ndarray, zero_point: int, dst: np.ndarray):
    """``(c, low, dst_bytes)`` for rounding ``v`` and adding ``z`` in ONE float addition, or
    None where the trick does not apply.

    After the clamp ``|v| <= 255``; adding ``c = ROUND_EVEN_SHIFTER + z`` rounds v to an
    integer with ties to even, as rint does, because c is even (hence even z only: every
    ReLU output, z = -128). The sum lies in [2**23, 2**24), where a float32's low mantissa
    byte is exactly ``(rint(v) + z) mod 256``: the int8 result, copied out as bytes
    (``low`` views those bytes of v; little-endian hosts only)."""
    if zero_point % 2 or sys.byteorder != "little" or not dst.flags.c_contiguous:
        return None
    low = v.view(np.uint8).reshape(v.shape + (4,))[..., 0]
    return np.array(ROUND_EVEN_SHIFTER + zero_point, F32), low, dst.view(np.uint8)


def requantizer(acc: np.ndarray, multiplier, zero_point: int, act_min: int, act_max: int,
                out: np.ndarray, float_out: np.ndarray | None = None):
    """:func:`requantize` of ``acc`` into ``out`` planned once: a zero-argument function
    doing the same float32 operations in the same order without allocating.

    ``acc`` holds exact integers in float32, float64 or int32; converting it to float32
    rounds as int32 -> float32 does (nearest even). ``multiplier`` may be per channel
    (broadcast along the last axis). With ``float_out`` (float32, acc's shape) the int8
    values are written there as floats instead of into ``out``, for a consumer that reads
    floats (the numpy engine's dense-to-dense hand-off)."""
    v = acc if acc.dtype == F32 else np.empty(acc.shape, F32)
    m = np.asarray(multiplier, F32)
    if m.ndim:   # per channel: spelled out to acc's shape, so no ufunc call broadcasts
        m = np.ascontiguousarray(np.broadcast_to(m, acc.shape))
    lo, hi = _full(v.shape, act_min - zero_point), _full(v.shape, act_max - zero_point)
    dst = out.reshape(v.shape)
    convert = v is not acc
    mul, mx, mn = np.multiply, np.maximum, np.minimum
    finish = _rounder(v, zero_point, dst, float_out)

    def requantize_into():
        if convert:
            v[...] = acc                          # to float32: round to nearest even
        mul(v, m, out=v)
        mx(v, lo, out=v)
        mn(v, hi, out=v)
        finish()
    return requantize_into


def _rounder(v, zero_point: int, dst, float_out=None):
    """The last step of every planned path: round the clamped float32 values in ``v``
    half to even and add the zero point, into ``dst`` (int8) or ``float_out`` (float32).
    Into int8 with an even zero point that is ONE float addition and a byte copy (see
    :func:`_shifter_copy`), else rint, add, convert."""
    add, rint = np.add, np.rint
    shifter = _shifter_copy(v, zero_point, dst) if float_out is None else None
    if shifter is not None:
        c, low, dst_bytes = shifter

        def by_shifter():
            add(v, c, out=v)
            dst_bytes[...] = low
        return by_shifter
    z = np.array(zero_point, F32)
    if float_out is not None:
        def into_floats():
            rint(v, out=v)
            add(v, z, out=float_out)          # the int8 values, as the consumer's floats
        return into_floats

    def by_rint():
        rint(v, out=v)
        add(v, z, out=v)
        dst[...] = v
    return by_rint


def quantizer(q: np.ndarray, scale, zero_point: int, not_finite):
    """:func:`quantize` into ``q`` planned once: a function of ``x`` (q's shape, any real
    dtype) doing the same float32 operations in the same order (x / scale, clamp to
    [-128 - z, 127 - z], round half to even, + z) into preallocated buffers.

    Refuses NaN and infinity by raising ``not_finite()``: a cheap sum of x / scale is
    checked first, the exact test only when that is not finite (it may be only an
    overflow, which the clamp handles as the C kernel does)."""
    z = int(zero_point)
    v = np.empty(q.shape, F32)
    s = np.array(scale, F32)
    lo, hi = _full(q.shape, QMIN - z), _full(q.shape, QMAX - z)
    flat = v.reshape(-1)
    div, mx, mn, total, f32_dtype = np.divide, np.maximum, np.minimum, np.add.reduce, np.dtype(F32)
    errstate, isfinite = np.errstate, math.isfinite
    finish = _rounder(v, z, q)

    def quantize_into(x):
        # a huge finite x / scale overflows to inf, which the clamp turns into the int8
        # limit; numpy's warnings (overflow, inf - inf in the sum) would only alarm the person
        with errstate(over="ignore", invalid="ignore"):
            if x.dtype == f32_dtype:
                div(x, s, out=v)
            else:
                div(x, s, out=v, dtype=F32, casting="unsafe")   # x -> float32, then divide
            if x.dtype.kind == "f" and not isfinite(total(flat)) and not np.isfinite(x).all():
                raise not_finite()
        mx(v, lo, out=v)
        mn(v, hi, out=v)
        finish()
    return quantize_into


def dequantizer(x: np.ndarray, scale, zero_point: int, out: np.ndarray):
    """:func:`dequantize` of int8 ``x`` into float32 ``out`` planned once (0-d constants)."""
    z, s = np.array(zero_point, F32), np.array(scale, F32)
    sub, mul = np.subtract, np.multiply

    def dequantize_into():
        out[...] = x
        sub(out, z, out=out)              # exact: an integer of magnitude <= 255
        mul(out, s, out=out)
    return dequantize_into


def avg_quantizer(acc: np.ndarray, count: np.ndarray, s_out, z_out: int, out: np.ndarray):
    """Average-pool output step planned once: ``acc`` (float32 window sums) divided by
    ``count`` (float32, acc's shape), then :func:`quantize_avg` into ``out``, with the
    same float32 operations in the same order. ``acc`` is overwritten."""
    s, z = np.array(s_out, F32), np.array(z_out, F32)
    lo, hi = _full(acc.shape, QMIN), _full(acc.shape, QMAX)
    div, add, rint, mx, mn = np.divide, np.add, np.rint, np.maximum, np.minimum

    def quantize_avg_into():
        div(acc, count, out=acc)
        div(acc, s, out=acc)
        add(acc, z, out=acc)
        rint(acc, out=acc)
        mx(acc, lo, out=acc)
        mn(acc, hi, out=acc)
        out[...] = acc
    return quantize_avg_into


# --------------------------------------------------------------------------- final softmax

def softmax_table(scale) -> np.ndarray:
    """``exp(-d * scale)`` in float32 for d = 0..255: every value a final softmax over int8
    logits exponentiates (see :func:`softmax_f32`), made by numpy's ``exp`` once per model
    for the C kernel's thin call, so it looks up the bits the numpy engines compute."""
    d = np.arange(256, dtype=np.float32)
    return np.exp(np.multiply(d, np.negative(np.float32(scale))))


def softmax_f32(x: np.ndarray, scale: float, zero_point: int = 0, out: np.ndarray | None = None
                ) -> np.ndarray:
    """The final float softmax (over the last axis) of an int8 tensor, in float32.

    The definition every backend shares, bit for bit: with d = max(row) - x (an integer in
    0..255; the zero point cancels, softmax being shift-invariant), e = exp(d * -scale) in
    float32 (numpy's exp: the values of :func:`softmax_table`), the row sum added left to
    right in float32, then e / sum. C reproduces that exactly with the table and a plain
    loop; numpy's pairwise ``sum`` order it could not. ``out`` (float32, the shape of x)
    receives the result. numpy computes the table's entries on the fly: as cheap as a
    lookup, whose index array would cost a cast.
    """
    x = np.asarray(x)
    v = np.empty(x.shape, np.float32) if out is None else out
    v[...] = x                                       # int8 -> float32, exact
    if v.ndim == 1:                                  # same values, fewer broadcasts
        np.subtract(np.maximum.reduce(v), v, out=v)  # d, exact
    else:
        np.subtract(np.maximum.reduce(v, axis=-1, keepdims=True), v, out=v)
    np.multiply(v, np.negative(np.float32(scale)), out=v)
    np.exp(v, out=v)
    np.divide(v, np.add.accumulate(v, axis=-1)[..., -1:], out=v)
    return v
