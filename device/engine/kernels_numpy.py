"""The numpy backend's kernels: the reference kernels' integers, planned for speed.

:mod:`lanthorn.device.engine.kernels_ref` is the specification; these planners compute exactly
the same int8 outputs (tested element for element against it under hypothesis) with fewer,
cheaper numpy calls. Everything is decided once at load and every inference only writes
into preallocated arrays. Where the time went in the reference (measured with
``lanthorn bench`` and per-step timing on the zoo models) and what this does instead:

* Accumulating in float64 doubled the bytes BLAS reads. An int8 x int8 dot product is
  exact in float32 as long as every partial sum stays within 2**24, whatever order BLAS
  adds in; :func:`acc_dtype` proves that per layer from the weights (``128 * sum|w| +
  |bias|`` per output channel) and only falls back to float64 when it cannot.
* Bias (with the input zero point folded in) rides in the matmul as one extra weight row
  against a constant-1 input column: one BLAS call gives ``bias + sum(x * w)``.
* im2col is one strided copy (``as_strided`` window view of the padded int8 input) instead
  of a gather through an index array of int64 (8 bytes of index per byte of data).
* Depthwise convolution: taps laid out tap-major, one multiply by the weights spelled out
  to full shape, then one contiguous add per tap (the reference summed a strided middle
  axis in float64).
* Every ufunc call gets operands of one shape and dtype (or 0-d constants): numpy runs
  those as plain loops, while broadcasting or casting inside a ufunc makes it build a
  buffered iterator, which allocates (measured with tracemalloc) and is slower. Matrix
  products use ``np.dot`` with ``out=`` (BLAS, no allocation; ``np.matmul`` allocates).
* Requantization, input quantization and the average pool's last step are int8.py's
  planned fast paths (:func:`lanthorn.device.engine.int8.requantizer` and friends): the
  reference's float32 operations in the same order, clamped with ``maximum``/``minimum``
  against full-shape bounds (``np.clip`` costs ~6 us of Python wrapping per call, more
  than a tiny layer's arithmetic) and, for an even output zero point (every ReLU output),
  rounded and offset by one float addition and one byte copy.
* Dense layers hand their output vector to the next dense layer as floats.
* Pools read contiguous window copies; gather checks its range with two reductions and
  takes through a planned index buffer.

Layers not listed here (add, concat, LUTs, transpose, reshape) use the reference's
planners (kernels_ref) unchanged: they were already a few cheap calls.

Where the time still goes (``lanthorn bench --layers``): on models under ~100k MACs the
arithmetic is negligible and each numpy call costs ~0.5 us (a BLAS call ~1.3 us), so a
dense layer is ~4 us of calls and the runtime's input quantization and softmax ~7 us;
on big dense layers float32 weights are 4x the bytes onnxruntime's int8 streams; on 2-D
convolutions the im2col copies and the float passes over large activations.

Each ``plan_<op>(engine, layer)`` has kernels_ref's contract; the engine is a
:class:`~lanthorn.device.engine.engine_numpy.NumpyEngine`, whose ``handoff`` (see there) the dense
planner reads.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from lanthorn.device.engine import int8
from lanthorn.device.engine import kernels_ref as ref
from lanthorn.device.engine.graph import Layer

F32, F64 = np.float32, np.float64
#: every integer up to this magnitude is exactly a float32 (24-bit significand)
EXACT_F32 = 2 ** 24


def acc_dtype(w2d: np.ndarray, bias: np.ndarray):
    """float32 when ``bias[c] + sum_k x[k] * w[c, k]`` is exact in float32 for every int8
    input and every summation order, else float64 (exact below 2**53, always enough).

    Every partial sum BLAS forms is a sum of a subset of the terms, so it is bounded by
    ``|bias[c]| + 128 * sum_k |w[c, k]|`` (|x| <= 128, padded cells hold the zero point,
    also int8). If that bound is <= 2**24 every partial sum, product and the bias are
    integers a float32 holds exactly, so no addition ever rounds (FMA included)."""
    w = np.abs(w2d.astype(np.int64)).sum(axis=1) * 128 + np.abs(np.asarray(bias, np.int64))
    return F32 if int(w.max(initial=0)) <= EXACT_F32 else F64


def fold_input_zero_point(w2d: np.ndarray, bias: np.ndarray, zx: int):
    """``(w, folded bias, accumulator dtype)`` for weights ``w2d`` [C, K] read by an input of
    zero point ``zx``: ``sum_k (x[k] - zx) w[c, k] + b[c] = sum_k x[k] w[c, k] + (b[c] - zx
    sum_k w[c, k])``, so the planned steps multiply the raw int8 input and never subtract
    the zero point per inference. The dtype is :func:`acc_dtype` of the folded bias."""
    w = w2d.astype(np.int64)
    folded = bias.astype(np.int64) - zx * w.sum(axis=1)
    return w, folded, acc_dtype(w, folded)


def window_view(src, kernel, stride, dilation, out_hw, tap_major: bool) -> np.ndarray:
    """Read-only strided view of every sliding window of ``src`` (Hp, Wp, C), shaped
    (OH, OW, KH, KW, C), or (KH, KW, OH, OW, C) when ``tap_major``. Copying it into a
    contiguous array is one numpy call that allocates nothing (im2col)."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    _, Wp, C = src.shape
    e = src.itemsize
    row, col = Wp * C * e, C * e
    outs = ((oh, ow), (sh * row, sw * col))
    taps = ((kh, kw), (dh * row, dw * col))
    first, second = (taps, outs) if tap_major else (outs, taps)
    return as_strided(src, first[0] + second[0] + (C,), first[1] + second[1] + (e,),
                      writeable=False)


def _bounds(p) -> tuple[int, int]:
    return int(p.get("act_min", -128)), int(p.get("act_max", 127))


def plan_dense(eng, layer: Layer):
    a = layer.arrays
    x, out, (_, zx), (_, zy) = ref.unary_io(eng, layer)
    w, bias, dt = fold_input_zero_point(a["weight"], a["bias"], zx)   # w: [N, K]
    n, k = w.shape
    wa = np.empty((n, k + 1), dt)                           # [W | bias]
    wa[:, :k] = w
    wa[:, k] = bias
    handed = eng.handoff.get(layer.inputs[0])             # filled by the producer
    xa = handed if handed is not None else np.ones(x.shape[:-1] + (k + 1,), dt)  # [x | 1]
    assert xa.dtype == dt
    xin = xa[..., :k]
    acc = np.empty(out.shape, dt)
    to_next = eng.handoff.get(layer.outputs[0])
    rq = int8.requantizer(acc, a["multiplier"], zy, *_bounds(layer.params), out,
                     None if to_next is None else to_next[:-1])
    dot = np.dot
    if handed is not None:
        def step():
            dot(wa, xa, out=acc)
            rq()
    elif x.ndim == 1:
        def step():
            xin[...] = x
            dot(wa, xa, out=acc)                             # gemv, weights row-major
            rq()
    else:
        wt = wa.T

        def step():
            xin[...] = x
            dot(xa, wt, out=acc)
            rq()
    return step


def plan_conv(eng, layer: Layer):
    w8 = layer.arrays["weight"]
    cout, kh, kw, cg = w8.shape
    groups = int(layer.params.get("groups", 1))
    if groups == 1:
        return _plan_conv_dense(eng, layer)
    if cg == 1 and cout == groups:
        return _plan_conv_depthwise(eng, layer)
    return ref.plan_conv(eng, layer)            # grouped, channel multiplier > 1: rare


def _padded_source(layer, x, zx, dtype):
    """(array the windows read, function refreshing it from x or None)."""
    t, left, b, r = layer.params.get("pads", (0, 0, 0, 0))
    if not (t or left or b or r) and x.dtype == dtype and x.flags.c_contiguous:
        return x, None
    H, W, C = x.shape
    xp = np.full((H + t + b, W + left + r, C), zx, dtype=dtype)
    interior = xp[t:t + H, left:left + W]

    def refresh():
        interior[...] = x
    return xp, refresh


def _conv_windows(eng, layer, src, tap_major: bool):
    """Strided view of every kernel window of ``src`` (Hp, Wp, C): shape
    (OH, OW, KH, KW, C), or (KH, KW, OH, OW, C) when ``tap_major``. No copy."""
    p = layer.params
    kernel = p["kernel"] if "kernel" in p else layer.arrays["weight"].shape[1:3]
    oh, ow = eng.graph.tensors[layer.outputs[0]].shape[:2]
    return window_view(src, kernel, p.get("stride", (1, 1)), p.get("dilation", (1, 1)),
                       (oh, ow), tap_major)


def _plan_conv_dense(eng, layer: Layer):
    a = layer.arrays
    x, out, (_, zx), (_, zy) = ref.unary_io(eng, layer)
    cout, kh, kw, cin = a["weight"].shape
    oh, ow = out.shape[:2]
    P, K = oh * ow, kh * kw * cin
    w, bias, dt = fold_input_zero_point(a["weight"].reshape(cout, K), a["bias"], zx)
    src, refresh = _padded_source(layer, x, zx, np.int8)
    win = _conv_windows(eng, layer, src, tap_major=False)         # (OH, OW, KH, KW, C)
    cols = np.ones((P, K + 1), dt)                           # im2col rows [x... | 1]
    cols5 = cols[:, :K].reshape(oh, ow, kh, kw, cin)
    assert np.shares_memory(cols5, cols)                     # a view, filled in place
    wt = np.empty((K + 1, cout), dt)                         # [W^T ; bias]
    wt[:K] = w.T
    wt[K] = bias
    acc = np.empty((P, cout), dt)
    rq = int8.requantizer(acc, a["multiplier"], zy, *_bounds(layer.params), out)
    dot = np.dot

    if refresh is None:
        def step():
            cols5[...] = win
            dot(cols, wt, out=acc)
            rq()
    else:
        def step():
            refresh()
            cols5[...] = win
            dot(cols, wt, out=acc)
            rq()
    return step


def _plan_conv_depthwise(eng, layer: Layer):
    a = layer.arrays
    x, out, (_, zx), (_, zy) = ref.unary_io(eng, layer)
    C, kh, kw, _ = a["weight"].shape
    oh, ow = out.shape[:2]
    P, KK = oh * ow, kh * kw
    w, bias, dt = fold_input_zero_point(a["weight"].reshape(C, KK), a["bias"], zx)
    src, refresh = _padded_source(layer, x, zx, np.int8)
    win = _conv_windows(eng, layer, src, tap_major=True)          # (KH, KW, OH, OW, C)
    cols = np.empty((KK, P, C), dt)
    cols5 = cols.reshape(kh, kw, oh, ow, C)
    # weights and bias spelled out to full shape: a broadcasting ufunc call costs numpy
    # an iterator with buffers (measured: ~30 KB allocated per call), these do not
    wfull = np.ascontiguousarray(np.broadcast_to(w.T.astype(dt)[:, None, :], cols.shape))
    bfull = np.ascontiguousarray(np.broadcast_to(bias.astype(dt), (P, C)))
    acc = np.empty((P, C), dt)
    rq = int8.requantizer(acc, a["multiplier"], zy, *_bounds(layer.params), out)
    mul, add = np.multiply, np.add
    first, rest = cols[0], [cols[i] for i in range(1, KK)]

    def step():
        if refresh is not None:
            refresh()
        cols5[...] = win
        mul(cols, wfull, out=cols)        # products in place: a smaller working set
        add(bfull, first, out=acc)
        for tap in rest:
            add(acc, tap, out=acc)
        rq()
    return step


def plan_global_avgpool(eng, layer: Layer):
    x, out, (sx, zx), (sy, zy) = ref.unary_io(eng, layer)
    n = x.shape[0] * x.shape[1]
    mult = int8.global_avgpool_multiplier(sx, sy, n)
    x2 = x.reshape(n, x.shape[2])
    if 256 * n > EXACT_F32:              # sums could round in float32: int32, as the reference
        return ref.plan_global_avgpool(eng, layer)
    # sum(x) - zx * n as one float32 gemv: a ones vector against [x ; -zx * n]. Every
    # partial sum is an integer of magnitude <= 256 n <= 2**24, so exact, and BLAS
    # neither allocates nor buffers
    xf = np.empty((n + 1, x2.shape[1]), F32)
    xf[n] = -zx * n
    xin = xf[:n]
    ones = np.ones(n + 1, F32)
    acc = np.empty(x.shape[2], F32)
    rq = int8.requantizer(acc, mult, zy, -128, 127, out)
    dot = np.dot

    def step():
        xin[...] = x2
        dot(ones, xf, out=acc)
        rq()
    return step


def _pool_windows(eng, layer, src):
    """Contiguous (KK, OH, OW, C) copy target of the pooling windows of ``src``, the
    function filling it, and its slabs: per-window ufunc calls then run on contiguous
    arrays (on strided views numpy builds an iterator that allocates)."""
    out_t = eng.graph.tensors[layer.outputs[0]]
    kh, kw = layer.params["kernel"]
    win = _conv_windows(eng, layer, src, tap_major=True)
    cols = np.empty((kh * kw,) + out_t.shape, src.dtype)
    cols5 = cols.reshape(win.shape)

    def fill():
        cols5[...] = win
    return fill, [cols[i] for i in range(kh * kw)]


def plan_maxpool(eng, layer: Layer):
    x = eng.buf[layer.inputs[0]]
    out = eng.output_buffer(layer)
    src, refresh = _padded_source(layer, x, -128, np.int8)  # -128 never wins a max
    fill, slabs = _pool_windows(eng, layer, src)
    first, rest = slabs[0], slabs[1:]
    copyto, maximum = np.copyto, np.maximum

    def step():
        if refresh is not None:
            refresh()
        fill()
        copyto(out, first)
        for v in rest:
            maximum(out, v, out=out)
    return step


def plan_avgpool(eng, layer: Layer):
    """QLinearAveragePool exactly as the reference computes it: dequantize (float32
    ``(q - z) * s``, the values of its lookup table), window sums in float32 in window
    order, divide by the count, then int8.quantize_avg's rounding. The sum starts
    from the first window instead of ``0.0 + first``: equal except for the sign of a
    zero, which the rounding to an integer erases."""
    p = layer.params
    x, out, (sx, zx), (sy, zy) = ref.unary_io(eng, layer)
    kh, kw = p["kernel"]
    sh, sw = p.get("stride", (1, 1))
    t, left, b, r = p.get("pads", (0, 0, 0, 0))
    H, W, C = x.shape
    oh, ow = out.shape[:2]
    deq = np.empty(x.shape, F32)
    if t or left or b or r:
        xf = np.zeros((H + t + b, W + left + r, C), F32)       # border 0.0 adds nothing
        interior = xf[t:t + H, left:left + W]
    else:
        xf, interior = deq, None
    fill, slabs = _pool_windows(eng, layer, xf)
    if p.get("count_include_pad", False):
        count = np.full(out.shape, kh * kw, F32)
    else:
        ones = np.zeros(xf.shape[:2])
        ones[t:t + H, left:left + W] = 1
        n = np.asarray(sum(ones[i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
                           for i in range(kh) for j in range(kw)))
        count = np.ascontiguousarray(np.broadcast_to(n.astype(F32)[:, :, None], out.shape))
    acc = np.empty(out.shape, F32)
    dequantize = int8.dequantizer(x, sx, zx, deq)
    quantize_avg = int8.avg_quantizer(acc, count, sy, zy, out)
    first, rest = slabs[0], slabs[1:]
    copyto, add = np.copyto, np.add

    def step():
        dequantize()
        if interior is not None:
            interior[...] = deq
        fill()
        copyto(acc, first)
        for v in rest:
            add(acc, v, out=acc)
        quantize_avg()
    return step


def plan_gather(eng, layer: Layer):
    """Embedding lookup as the reference does it (out-of-range indices refused, negative
    ones counting from the end), with the range checked by two ufunc reductions and the
    indices widened into a planned intp buffer: np.take would otherwise convert them
    and, in its default mode, buffer the output, both allocating per call."""
    idx = eng.buf[layer.inputs[0]]
    if idx.size == 0:
        return ref.plan_gather(eng, layer)
    out = eng.output_buffer(layer)
    table = layer.arrays["table"]
    v = table.shape[0]
    wide = np.empty(idx.shape, np.intp)
    lo, hi = np.minimum.reduce, np.maximum.reduce
    flat = idx.reshape(-1)
    take = table.take                 # the method: np.take adds a dispatch layer

    def step():
        if lo(flat) < -v or hi(flat) >= v:
            raise IndexError(f"gather index out of range [-{v}, {v - 1}]")
        wide[...] = idx
        take(wide, axis=0, out=out, mode="wrap")          # in range: wrap = Python's -i
    return step


def plan_mul(eng, layer: Layer):
    """int8.qlinear_mul planned once: the zero-point-free operands and the float32 steps
    in preallocated buffers (the reference allocates its scratch per call)."""
    A, B, out, ((sa, za), (sb, zb), (sc, zc)), (act_lo, act_hi) = ref.binary_operands(eng, layer)
    ratio, zcf = np.array(int8.qlinear_mul_ratio(sa, sb, sc)), np.array(zc, F32)
    lo = np.full(out.shape, max(-128, act_lo), F32)
    hi = np.full(out.shape, min(127, act_hi), F32)
    pa, pb = np.empty(A.shape, np.int32), np.empty(B.shape, np.int32)
    prod, y = np.empty(out.shape, np.int32), np.empty(out.shape, F32)
    za32, zb32 = np.int32(za), np.int32(zb)
    sub, mul, add, rint, mx, mn = (np.subtract, np.multiply, np.add, np.rint, np.maximum,
                                   np.minimum)

    def step():
        sub(A, za32, out=pa)
        sub(B, zb32, out=pb)
        mul(pa, pb, out=prod)
        y[...] = prod
        mul(y, ratio, out=y)
        add(y, zcf, out=y)
        rint(y, out=y)
        mx(y, lo, out=y)
        mn(y, hi, out=y)
        out[...] = y
    return step


#: the reference planners, with these in place of the ones they speed up
PLANNERS = {**ref.PLANNERS, "dense": plan_dense, "conv": plan_conv, "maxpool": plan_maxpool,
            "avgpool": plan_avgpool, "global_avgpool": plan_global_avgpool,
            "gather": plan_gather, "mul": plan_mul}
