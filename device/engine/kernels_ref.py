"""The reference kernels: one planner per int8 operator, the executable specification.

Each ``plan_<op>(engine, layer)`` reads the layer once (buffers, im2col index arrays,
weights transposed to float64, the input zero point folded into the bias) and returns a
zero-argument step that runs one inference of it into preallocated arrays, calling
:mod:`lanthorn.device.engine.int8` for every rounding. :class:`~lanthorn.device.engine.engine_ref.
ReferenceEngine` strings the steps together; the numpy engine's faster kernels
(:mod:`lanthorn.device.engine.kernels_numpy`) sit beside these and fall back to them, as TFLite
Micro keeps optimized kernels beside its reference ones.

Why float64 matmuls: an int8 x int8 dot product of K terms is an integer below
2**15 * K, which float64 (53-bit mantissa) holds exactly for any K a tiny model has, and
numpy's float64 matmul goes through BLAS, while its integer matmul does not. The int32
accumulator onnxruntime computes is therefore reproduced exactly, then requantized by
:func:`lanthorn.device.engine.int8.requantize`. Folding the zero point (``acc = bias - zx*sum(w)
+ sum(x*w)``) is exact for the same reason, and padded positions hold ``zx`` so they still
contribute 0.

A planner needs of its ``engine``: ``buf`` (tensor name -> array, inputs and outputs so
far), ``graph``, ``output_buffer(layer)`` (allocates and registers the layer's output) and
``quant(name)`` (a tensor's scale and zero point).
"""
from __future__ import annotations

import numpy as np

from lanthorn.device.engine import int8
from lanthorn.device.engine.graph import Layer


def _im2col_index(x_shape, out_hw, kernel, stride, dilation, padded_w) -> np.ndarray:
    """Gather indices into the padded input's ravel(): rows = output pixels, columns =
    (ki, kj, c) in weight order. Built once; every inference is one np.take."""
    (oh, ow), (kh, kw), (sh, sw), (dh, dw) = out_hw, kernel, stride, dilation
    C = x_shape[2]
    oy, ox = np.arange(oh) * sh, np.arange(ow) * sw
    ky, kx = np.arange(kh) * dh, np.arange(kw) * dw
    pix = (oy[:, None, None, None] + ky[None, None, :, None]) * padded_w \
        + (ox[None, :, None, None] + kx[None, None, None, :])          # [oh, ow, kh, kw]
    pix = pix.reshape(oh * ow, kh * kw)
    return (pix[:, :, None] * C + np.arange(C)[None, None, :]).reshape(oh * ow, kh * kw * C)


def _contraction(w: np.ndarray, groups: int, cols: np.ndarray, acc: np.ndarray):
    """The function computing ``acc = cols @ weights`` per group: one matmul (groups == 1),
    a multiply and a sum over taps (depthwise, multiplier 1), or one matmul per group."""
    cout, kh, kw, cg = w.shape
    P, C, cpg = cols.shape[0], cols.shape[1] // (kh * kw), cout // groups
    if groups == 1:
        wt = np.ascontiguousarray(w.reshape(cout, -1).T)           # [K, Cout]
        return lambda: np.matmul(cols, wt, out=acc)
    cols3 = cols.reshape(P, kh * kw, C)
    if cg == 1 and cpg == 1:                                        # depthwise, multiplier 1
        wd = np.ascontiguousarray(w.reshape(cout, kh * kw).T)      # [KK, C]
        prod = np.empty_like(cols3)

        def depthwise():
            np.multiply(cols3, wd, out=prod)
            np.sum(prod, axis=1, out=acc)
        return depthwise
    wg = [np.ascontiguousarray(w[g * cpg:(g + 1) * cpg].reshape(cpg, -1).T)
          for g in range(groups)]
    colg = [np.empty((P, kh * kw * cg)) for _ in range(groups)]

    def grouped():
        for g in range(groups):
            np.copyto(colg[g].reshape(P, kh * kw, cg), cols3[:, :, g * cg:(g + 1) * cg])
            np.matmul(colg[g], wg[g], out=acc[:, g * cpg:(g + 1) * cpg])
    return grouped


def unary_io(eng, layer: Layer):
    """``(x, out, (s_x, z_x), (s_y, z_y))``: a one-input layer's input and output buffers and
    their quantization, which every single-input kernel plan starts from (here and in
    :mod:`lanthorn.device.engine.kernels_numpy`)."""
    return (eng.buf[layer.inputs[0]], eng.output_buffer(layer),
            eng.quant(layer.inputs[0]), eng.quant(layer.outputs[0]))


def plan_conv(eng, layer: Layer):
    """Convolution: im2col by one gather from a float64 padded copy (the border keeps the
    input zero point forever), a float64 contraction (exact, see the module docstring),
    the folded bias, then int8.requantize."""
    p, a = layer.params, layer.arrays
    x, out, (_, zx), (_, zy) = unary_io(eng, layer)
    H, W, C = x.shape
    w = a["weight"].astype(np.float64)                 # [Cout, KH, KW, Cg]
    cout, kh, kw, _ = w.shape
    t, left, b, r = p.get("pads", (0, 0, 0, 0))
    oh, ow = out.shape[:2]
    xp = np.full((H + t + b, W + left + r, C), float(zx))
    interior = xp[t:t + H, left:left + W]
    idx = _im2col_index(x.shape, (oh, ow), (kh, kw), p.get("stride", (1, 1)),
                        p.get("dilation", (1, 1)), xp.shape[1])
    cols = np.empty(idx.shape)
    bias = a["bias"].astype(np.float64) - zx * w.reshape(cout, -1).sum(axis=1)
    acc = np.empty((oh * ow, cout))
    scratch = np.empty((oh * ow, cout), dtype=np.float32)
    out2 = out.reshape(oh * ow, cout)
    mult, lo, hi = a["multiplier"], int(p.get("act_min", -128)), int(p.get("act_max", 127))
    xflat = xp.reshape(-1)
    contract = _contraction(w, int(p.get("groups", 1)), cols, acc)

    def step():
        np.copyto(interior, x, casting="unsafe")
        np.take(xflat, idx, out=cols)
        contract()
        np.add(acc, bias, out=acc)
        int8.requantize(acc, mult, zy, lo, hi, out=out2, scratch=scratch)
    return step


def plan_dense(eng, layer: Layer):
    a, p = layer.arrays, layer.params
    x, out, (_, zx), (_, zy) = unary_io(eng, layer)
    w = a["weight"].astype(np.float64)                 # [N, K]
    wt = np.ascontiguousarray(w.T)
    bias = a["bias"].astype(np.float64) - zx * w.sum(axis=1)
    xf = np.empty(x.shape)
    acc = np.empty(out.shape)
    scratch = np.empty(out.shape, dtype=np.float32)
    mult, lo, hi = a["multiplier"], int(p.get("act_min", -128)), int(p.get("act_max", 127))

    def step():
        np.copyto(xf, x, casting="unsafe")
        np.matmul(xf, wt, out=acc)
        np.add(acc, bias, out=acc)
        int8.requantize(acc, mult, zy, lo, hi, out=out, scratch=scratch)
    return step


def _windows(eng, layer, x, fill, dtype):
    """Padded copy of x (border = fill) and the strided view of each kernel offset."""
    p = layer.params
    kh, kw = p["kernel"]
    sh, sw = p.get("stride", (1, 1))
    dh, dw = p.get("dilation", (1, 1))
    t, left, b, r = p.get("pads", (0, 0, 0, 0))
    H, W, C = x.shape
    xp = np.full((H + t + b, W + left + r, C), fill, dtype=dtype)
    interior = xp[t:t + H, left:left + W]
    oh, ow = eng.graph.tensors[layer.outputs[0]].shape[:2]
    views = [xp[i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
             for i in range(kh) for j in range(kw)]              # row-major window order
    return interior, views


def plan_maxpool(eng, layer: Layer):
    x = eng.buf[layer.inputs[0]]
    out = eng.output_buffer(layer)
    interior, views = _windows(eng, layer, x, -128, np.int8)   # -128 never wins a real max

    def step():
        np.copyto(interior, x)
        np.copyto(out, views[0])
        for v in views[1:]:
            np.maximum(out, v, out=out)
    return step


def plan_avgpool(eng, layer: Layer):
    # QLinearAveragePool: dequantize (float32), sum in window order from 0.0, divide by
    # the float32 count, then nearbyint(y / s_out + z_out) clamped to int8 (onnxruntime's
    # int8 QDQ path). Padded cells add +0.0: exact.
    p = layer.params
    x, out, (sx, zx), (sy, zy) = unary_io(eng, layer)
    deq = int8.dequantize(np.arange(-128, 128), sx, zx)
    deq_u = np.roll(deq, -128)                        # indexed by the uint8 bit pattern
    interior, views = _windows(eng, layer, x, 0.0, np.float32)
    kh, kw = p["kernel"]
    H, W, _ = x.shape
    oh, ow = out.shape[:2]
    if p.get("count_include_pad", False):
        count = np.full((oh, ow, 1), kh * kw, dtype=np.float32)
    else:
        ones = np.zeros((H + p["pads"][0] + p["pads"][2], W + p["pads"][1] + p["pads"][3]))
        ones[p["pads"][0]:p["pads"][0] + H, p["pads"][1]:p["pads"][1] + W] = 1
        sh, sw = p.get("stride", (1, 1))
        count = np.asarray(sum(ones[i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
                               for i in range(kh) for j in range(kw))).astype(np.float32)[:, :, None]
    acc = np.zeros(out.shape, dtype=np.float32)
    xu = x.view(np.uint8)
    tmp = np.empty(x.shape, dtype=np.float32)

    def step():
        np.take(deq_u, xu, out=tmp)
        np.copyto(interior, tmp)
        acc.fill(0.0)
        for v in views:
            np.add(acc, v, out=acc)
        np.divide(acc, count, out=acc)
        int8.quantize_avg(acc, sy, zy, out=out)
    return step


def plan_global_avgpool(eng, layer: Layer):
    x, out, (sx, zx), (sy, zy) = unary_io(eng, layer)
    n = x.shape[0] * x.shape[1]
    mult = int8.global_avgpool_multiplier(sx, sy, n)
    acc = np.zeros(x.shape[2], dtype=np.int32)
    out1 = out.reshape(-1)
    scratch = np.empty(acc.shape, dtype=np.float32)
    x2 = x.reshape(n, x.shape[2])

    def step():
        np.sum(x2, axis=0, dtype=np.int32, out=acc)
        np.subtract(acc, np.int32(zx * n), out=acc)
        int8.requantize(acc, mult, zy, out=out1, scratch=scratch)
    return step


def binary_operands(eng, layer: Layer):
    """What add and mul read (here and in kernels_numpy): both inputs, the output buffer, the three (scale, zero point)
    pairs and the fused activation's clamp."""
    p = layer.params
    A, B = eng.buf[layer.inputs[0]], eng.buf[layer.inputs[1]]
    quant = [eng.quant(name) for name in (*layer.inputs[:2], layer.outputs[0])]
    return A, B, eng.output_buffer(layer), quant, (int(p.get("act_min", -128)),
                                                   int(p.get("act_max", 127)))


def plan_add(eng, layer: Layer):
    A, B, out, ((sa, za), (sb, zb), (sc, zc)), (lo, hi) = binary_operands(eng, layer)
    scratch = (np.empty(out.shape), np.empty(out.shape, dtype=np.float32))

    def step():
        int8.qlinear_add(A, za, sa, B, zb, sb, sc, zc, lo, hi, out=out, scratch=scratch)
    return step


def plan_mul(eng, layer: Layer):
    """QLinearMul of two int8 activations (int8.qlinear_mul); ``b`` broadcasts along the
    leading axes (a squeeze-and-excitation gate ``(1, 1, C)`` over ``(H, W, C)``)."""
    A, B, out, ((sa, za), (sb, zb), (sc, zc)), (lo, hi) = binary_operands(eng, layer)

    def step():
        int8.qlinear_mul(A, za, sa, B, zb, sb, sc, zc, lo, hi, out=out)
    return step


def plan_concat(eng, layer: Layer):
    axis = int(layer.params["axis"])
    out = eng.output_buffer(layer)
    parts: list[tuple] = []   # (input, destination, shifted table or None, scratch or None)
    start = 0
    for i, name in enumerate(layer.inputs):
        x = eng.buf[name]
        sl = [slice(None)] * out.ndim
        sl[axis] = slice(start, start + x.shape[axis])
        start += x.shape[axis]
        table = layer.arrays.get(f"table{i}")
        if table is None:
            parts.append((x, out[tuple(sl)], None, None))
        else:
            tu = np.roll(table, -128)
            parts.append((x.view(np.uint8), out[tuple(sl)], tu, np.empty(x.shape, np.int8)))

    def step():
        for x, dst, tu, tmp in parts:
            if tu is None:
                np.copyto(dst, x)
            else:
                np.take(tu, x, out=tmp)
                np.copyto(dst, tmp)
    return step


def plan_reshape(eng, layer: Layer):
    t = eng.graph.tensors[layer.outputs[0]]
    eng.buf[t.name] = eng.buf[layer.inputs[0]].reshape(t.shape)   # a view: no work
    return lambda: None


def plan_transpose(eng, layer: Layer):
    x = eng.buf[layer.inputs[0]]
    out = eng.output_buffer(layer)
    view = x.transpose([int(i) for i in layer.params["perm"]])
    return lambda: np.copyto(out, view)


def plan_lut(eng, layer: Layer):
    x = eng.buf[layer.inputs[0]]
    out = eng.output_buffer(layer)
    table = layer.arrays["table"]
    xu = x.view(np.uint8)
    if table.ndim == 2:     # one table per channel (last axis): table[c, x + 128]
        flat = np.roll(table, -128, axis=1).reshape(-1)
        base = (np.arange(table.shape[0], dtype=np.intp) * 256)
        idx = np.empty(x.shape, np.intp)

        def per_channel():
            np.add(xu, base, out=idx)
            np.take(flat, idx, out=out)
        return per_channel
    tu = np.roll(table, -128)                          # indexed by the uint8 bit pattern
    return lambda: np.take(tu, xu, out=out)


def plan_gather(eng, layer: Layer):
    idx = eng.buf[layer.inputs[0]]
    out = eng.output_buffer(layer)
    table = layer.arrays["table"]
    v = table.shape[0]

    def step():
        if idx.size and (idx.min() < -v or idx.max() >= v):
            raise IndexError(f"gather index out of range [-{v}, {v - 1}]")
        np.take(table, idx, axis=0, out=out)
    return step


def plan_softmax(eng, layer: Layer):
    x = eng.buf[layer.inputs[0]]
    out = eng.output_buffer(layer)
    s, z = eng.quant(layer.inputs[0])
    return lambda: np.copyto(out, int8.softmax_f32(x, s, z))


#: op name -> planner: what a Graph's ``Layer.op`` runs as
PLANNERS = {"conv": plan_conv, "dense": plan_dense, "maxpool": plan_maxpool,
            "avgpool": plan_avgpool, "global_avgpool": plan_global_avgpool, "add": plan_add,
            "mul": plan_mul, "concat": plan_concat, "reshape": plan_reshape, "transpose": plan_transpose,
            "lut": plan_lut, "gather": plan_gather, "softmax": plan_softmax}
