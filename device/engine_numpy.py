"""The numpy backend: the reference engine's integers, planned for speed.

:mod:`lanthorn.device.engine_ref` is the specification; this engine computes exactly the
same int8 outputs (tested element for element against it under hypothesis) with fewer,
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
* Requantization uses the reference's float32 operations in the same order, but with
  ``maximum``/``minimum`` against 0-d float32 bounds: ``np.clip`` costs ~6 us of Python
  wrapping per call, more than the arithmetic of a tiny layer.

Layers not listed here (pools, add, concat, LUTs, gather, ...) use the reference's planners
unchanged: they were already a few cheap calls.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from lanthorn.device.engine_ref import ReferenceEngine
from lanthorn.device.graph import Layer

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


def requantizer(acc: np.ndarray, multiplier, zero_point: int, act_min: int, act_max: int,
                out: np.ndarray):
    """A zero-argument function doing :func:`lanthorn.device.int8.requantize` of ``acc``
    into ``out`` (same float32 operations in the same order, no allocation). ``acc`` holds
    exact integers in float32, float64 or int32; the conversion to float32 rounds exactly
    as int32 -> float32 does (round to nearest even)."""
    v = acc if acc.dtype == F32 else np.empty(acc.shape, F32)
    m = np.asarray(multiplier, F32)
    if m.ndim:   # per channel: spelled out to acc's shape, so no ufunc call broadcasts
        m = np.ascontiguousarray(np.broadcast_to(m, acc.shape))
    lo = np.array(act_min - zero_point, F32)
    hi = np.array(act_max - zero_point, F32)
    z = np.array(zero_point, F32)
    dst = out.reshape(v.shape)
    mul, mx, mn, rint, add = np.multiply, np.maximum, np.minimum, np.rint, np.add
    if acc.dtype == F32:
        def rq():
            mul(v, m, out=v)
            mx(v, lo, out=v)
            mn(v, hi, out=v)
            rint(v, out=v)
            add(v, z, out=v)
            dst[...] = v
    else:
        def rq():
            v[...] = acc                                      # to float32: round to nearest even
            mul(v, m, out=v)
            mx(v, lo, out=v)
            mn(v, hi, out=v)
            rint(v, out=v)
            add(v, z, out=v)
            dst[...] = v
    return rq


def _bounds(p) -> tuple[int, int]:
    return int(p.get("act_min", -128)), int(p.get("act_max", 127))


class NumpyEngine(ReferenceEngine):
    """The ``numpy`` backend. Same protocol and results as ReferenceEngine, faster."""

    backend = "numpy"

    def run_quantized(self, inputs) -> list[np.ndarray]:
        buf = self.buf
        for name, x in zip(self.graph.inputs, inputs):
            np.copyto(buf[name], x, casting="unsafe")
        for step in self.steps:
            step()
        return [buf[name].copy() for name in self.raw_outputs]

    # ------------------------------------------------------------------ dense
    def _plan_dense(self, layer: Layer):
        a = layer.arrays
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        _, zx = self._q(layer.inputs[0])
        _, zy = self._q(layer.outputs[0])
        w = a["weight"].astype(np.int64)                        # [N, K]
        n, k = w.shape
        bias = a["bias"].astype(np.int64) - zx * w.sum(axis=1)
        dt = acc_dtype(w, bias)
        wa = np.empty((n, k + 1), dt)                           # [W | bias]
        wa[:, :k] = w
        wa[:, k] = bias
        xa = np.ones(x.shape[:-1] + (k + 1,), dt)                # [x | 1]
        xin = xa[..., :k]
        acc = np.empty(out.shape, dt)
        rq = requantizer(acc, a["multiplier"], zy, *_bounds(layer.params), out)
        dot = np.dot
        if x.ndim == 1:
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

    # ------------------------------------------------------------------ conv
    def _plan_conv(self, layer: Layer):
        w8 = layer.arrays["weight"]
        cout, kh, kw, cg = w8.shape
        groups = int(layer.params.get("groups", 1))
        if groups == 1:
            return self._plan_conv_dense(layer)
        if cg == 1 and cout == groups:
            return self._plan_conv_depthwise(layer)
        return super()._plan_conv(layer)            # grouped, channel multiplier > 1: rare

    def _padded_source(self, layer, x, zx, dtype):
        """(array the windows read, function refreshing it from x or None)."""
        t, l, b, r = layer.params.get("pads", (0, 0, 0, 0))
        if not (t or l or b or r) and x.dtype == dtype and x.flags.c_contiguous:
            return x, None
        H, W, C = x.shape
        xp = np.full((H + t + b, W + l + r, C), zx, dtype=dtype)
        interior = xp[t:t + H, l:l + W]

        def refresh():
            interior[...] = x
        return xp, refresh

    def _conv_windows(self, layer, src, tap_major: bool):
        """Strided view of every kernel window of ``src`` (Hp, Wp, C): shape
        (OH, OW, KH, KW, C), or (KH, KW, OH, OW, C) when ``tap_major``. No copy."""
        p = layer.params
        _, kh, kw, _ = layer.arrays["weight"].shape
        sh, sw = p.get("stride", (1, 1))
        dh, dw = p.get("dilation", (1, 1))
        oh, ow = self.graph.tensors[layer.outputs[0]].shape[:2]
        _, Wp, C = src.shape
        e = src.itemsize
        row, col = Wp * C * e, C * e
        out_axes = ((oh, ow), (sh * row, sw * col))
        tap_axes = ((kh, kw), (dh * row, dw * col))
        first, second = (tap_axes, out_axes) if tap_major else (out_axes, tap_axes)
        return as_strided(src, first[0] + second[0] + (C,), first[1] + second[1] + (e,),
                          writeable=False)

    def _plan_conv_dense(self, layer: Layer):
        a = layer.arrays
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        _, zx = self._q(layer.inputs[0])
        _, zy = self._q(layer.outputs[0])
        cout, kh, kw, cin = a["weight"].shape
        oh, ow = out.shape[:2]
        P, K = oh * ow, kh * kw * cin
        w = a["weight"].reshape(cout, K).astype(np.int64)
        bias = a["bias"].astype(np.int64) - zx * w.sum(axis=1)
        dt = acc_dtype(w, bias)
        src, refresh = self._padded_source(layer, x, zx, np.int8)
        win = self._conv_windows(layer, src, tap_major=False)         # (OH, OW, KH, KW, C)
        cols = np.ones((P, K + 1), dt)                           # im2col rows [x... | 1]
        cols5 = cols[:, :K].reshape(oh, ow, kh, kw, cin)
        assert np.shares_memory(cols5, cols)                     # a view, filled in place
        wt = np.empty((K + 1, cout), dt)                         # [W^T ; bias]
        wt[:K] = w.T
        wt[K] = bias
        acc = np.empty((P, cout), dt)
        rq = requantizer(acc, a["multiplier"], zy, *_bounds(layer.params), out)
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

    def _plan_conv_depthwise(self, layer: Layer):
        a = layer.arrays
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        _, zx = self._q(layer.inputs[0])
        _, zy = self._q(layer.outputs[0])
        C, kh, kw, _ = a["weight"].shape
        oh, ow = out.shape[:2]
        P, KK = oh * ow, kh * kw
        w = a["weight"].reshape(C, KK).astype(np.int64)
        bias = a["bias"].astype(np.int64) - zx * w.sum(axis=1)
        dt = acc_dtype(w, bias)
        src, refresh = self._padded_source(layer, x, zx, np.int8)
        win = self._conv_windows(layer, src, tap_major=True)          # (KH, KW, OH, OW, C)
        cols = np.empty((KK, P, C), dt)
        cols5 = cols.reshape(kh, kw, oh, ow, C)
        # weights and bias spelled out to full shape: a broadcasting ufunc call costs numpy
        # an iterator with buffers (measured: ~30 KB allocated per call), these do not
        wfull = np.ascontiguousarray(np.broadcast_to(w.T.astype(dt)[:, None, :], cols.shape))
        bfull = np.ascontiguousarray(np.broadcast_to(bias.astype(dt), (P, C)))
        prod = np.empty_like(cols)
        acc = np.empty((P, C), dt)
        rq = requantizer(acc, a["multiplier"], zy, *_bounds(layer.params), out)
        mul, add = np.multiply, np.add
        first, rest = prod[0], [prod[i] for i in range(1, KK)]

        def step():
            if refresh is not None:
                refresh()
            cols5[...] = win
            mul(cols, wfull, out=prod)
            add(bfull, first, out=acc)
            for tap in rest:
                add(acc, tap, out=acc)
            rq()
        return step

    # ------------------------------------------------------------------ pools
    def _plan_global_avgpool(self, layer: Layer):
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        sx, zx = self._q(layer.inputs[0])
        sy, zy = self._q(layer.outputs[0])
        from lanthorn.device import int8
        n = x.shape[0] * x.shape[1]
        mult = int8.global_avgpool_multiplier(sx, sy, n)
        x2 = x.reshape(n, x.shape[2])
        if 256 * n > EXACT_F32:              # sums could round in float32: int32, as the reference
            return super()._plan_global_avgpool(layer)
        # sum(x) - zx * n as a float32 gemv with a ones vector: every partial sum is an
        # integer below 2**24, so exact, and BLAS neither allocates nor buffers
        xf = np.empty(x2.shape, F32)
        ones = np.ones(n, F32)
        acc = np.empty(x.shape[2], F32)
        off = np.array(zx * n, F32)
        rq = requantizer(acc, mult, zy, -128, 127, out)
        dot, sub = np.dot, np.subtract

        def step():
            xf[...] = x2
            dot(ones, xf, out=acc)
            sub(acc, off, out=acc)
            rq()
        return step
