"""The numpy reference engine: the executable specification of every int8 operator.

Readable first, but not naive: everything that does not depend on the input is planned
once at load (buffers, im2col index arrays, weights transposed to float64, the input zero
point folded into the bias), so an inference is a short, fixed list of numpy calls writing
into preallocated arrays.

Why float64 matmuls: an int8 x int8 dot product of K terms is an integer below
2**15 * K, which float64 (53-bit mantissa) holds exactly for any K a tiny model has, and
numpy's float64 matmul goes through BLAS, while its integer matmul does not. The int32
accumulator onnxruntime computes is therefore reproduced exactly, then requantized by
:func:`lanthorn.device.int8.requantize`. Folding the zero point (``acc = bias - zx*sum(w)
+ sum(x*w)``) is exact for the same reason, and padded positions hold ``zx`` so they still
contribute 0.

Engine protocol (shared with the C kernel's ``engine_c.CEngine``): construct with a
:class:`~lanthorn.device.graph.Graph`; ``backend`` names it; ``run_quantized(inputs)``
takes a list of arrays shaped like the graph inputs (int8, or int32 indices) and returns a
list of int8 arrays for :func:`~lanthorn.device.graph.raw_outputs` (the final float
softmax, if any, is the runtime's job).
"""
from __future__ import annotations

import numpy as np

from lanthorn.device import int8
from lanthorn.device.graph import Graph, Layer, raw_outputs

F32 = np.float32


class ReferenceEngine:
    """Runs a Graph with numpy. Not thread-safe (buffers are shared between calls)."""

    backend = "reference"

    def __init__(self, graph: Graph):
        graph.validate()
        self.graph = graph
        self.raw_outputs = raw_outputs(graph)
        self.buf: dict[str, np.ndarray] = {}
        for name in graph.inputs:
            t = graph.tensors[name]
            self.buf[name] = np.zeros(t.shape, dtype=t.dtype)
        self.steps = []
        self.step_layers: list[str] = []   # the layer each step runs (for profiling)
        needed = set(self.raw_outputs)
        for layer in graph.layers:
            if layer.op == "softmax" and layer.outputs[0] in graph.outputs:
                continue  # final float softmax: applied by the runtime
            self.steps.append(self._plan(layer))
            self.step_layers.append(layer.name)
            needed.discard(layer.outputs[0])

    # ------------------------------------------------------------------ running
    def run_quantized(self, inputs) -> list[np.ndarray]:
        for name, x in zip(self.graph.inputs, inputs):
            np.copyto(self.buf[name], x, casting="unsafe")
        for step in self.steps:
            step()
        return [self.buf[name].copy() for name in self.raw_outputs]

    # ------------------------------------------------------------------ planning
    def _out(self, layer: Layer) -> np.ndarray:
        t = self.graph.tensors[layer.outputs[0]]
        a = np.zeros(t.shape, dtype=t.dtype)
        self.buf[t.name] = a
        return a

    def _plan(self, layer: Layer):
        return getattr(self, f"_plan_{layer.op}")(layer)

    def _q(self, name):
        t = self.graph.tensors[name]
        return t.scale, t.zero_point

    def _plan_conv(self, layer: Layer):
        p, a = layer.params, layer.arrays
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        _, zx = self._q(layer.inputs[0])
        _, zy = self._q(layer.outputs[0])
        H, W, C = x.shape
        w = a["weight"].astype(np.float64)                 # [Cout, KH, KW, Cg]
        cout, kh, kw, cg = w.shape
        groups = int(p.get("groups", 1))
        sh, sw = p.get("stride", (1, 1))
        dh, dw = p.get("dilation", (1, 1))
        t, l, b, r = p.get("pads", (0, 0, 0, 0))
        oh, ow = out.shape[:2]
        # padded input in float64; the border keeps the input zero point forever
        xp = np.full((H + t + b, W + l + r, C), float(zx))
        interior = xp[t:t + H, l:l + W]
        # im2col gather indices into xp.ravel(): rows = output pixels, cols = (ki, kj, c)
        Hp, Wp = xp.shape[:2]
        oy = np.arange(oh) * sh
        ox = np.arange(ow) * sw
        ky = np.arange(kh) * dh
        kx = np.arange(kw) * dw
        pix = (oy[:, None, None, None] + ky[None, None, :, None]) * Wp \
            + (ox[None, :, None, None] + kx[None, None, None, :])          # [oh, ow, kh, kw]
        pix = pix.reshape(oh * ow, kh * kw)
        idx = (pix[:, :, None] * C + np.arange(C)[None, None, :]).reshape(oh * ow, kh * kw * C)
        cols = np.empty(idx.shape)
        bias = a["bias"].astype(np.float64) - zx * w.reshape(cout, -1).sum(axis=1)
        acc = np.empty((oh * ow, cout))
        scratch = np.empty((oh * ow, cout), dtype=np.float32)
        out2 = out.reshape(oh * ow, cout)
        mult, lo, hi = a["multiplier"], int(p.get("act_min", -128)), int(p.get("act_max", 127))
        xflat = xp.reshape(-1)
        cpg = cout // groups
        if groups == 1:
            wt = np.ascontiguousarray(w.reshape(cout, -1).T)           # [K, Cout]

            def contract():
                np.matmul(cols, wt, out=acc)
        elif cg == 1 and cpg == 1:                                      # depthwise, multiplier 1
            wd = np.ascontiguousarray(w.reshape(cout, kh * kw).T)      # [KK, C]
            cols3 = cols.reshape(oh * ow, kh * kw, C)
            prod = np.empty_like(cols3)

            def contract():
                np.multiply(cols3, wd, out=prod)
                np.sum(prod, axis=1, out=acc)
        else:                                                           # general groups
            cols3 = cols.reshape(oh * ow, kh * kw, C)
            wg = [np.ascontiguousarray(w[g * cpg:(g + 1) * cpg].reshape(cpg, -1).T)
                  for g in range(groups)]
            colg = [np.empty((oh * ow, kh * kw * cg)) for _ in range(groups)]

            def contract():
                for g in range(groups):
                    np.copyto(colg[g].reshape(oh * ow, kh * kw, cg), cols3[:, :, g * cg:(g + 1) * cg])
                    np.matmul(colg[g], wg[g], out=acc[:, g * cpg:(g + 1) * cpg])

        def step():
            np.copyto(interior, x, casting="unsafe")
            np.take(xflat, idx, out=cols)
            contract()
            np.add(acc, bias, out=acc)
            int8.requantize(acc, mult, zy, lo, hi, out=out2, scratch=scratch)
        return step

    def _plan_dense(self, layer: Layer):
        a, p = layer.arrays, layer.params
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        _, zx = self._q(layer.inputs[0])
        _, zy = self._q(layer.outputs[0])
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

    def _windows(self, layer, x, fill, dtype):
        """Padded copy of x (border = fill) and the strided view of each kernel offset."""
        p = layer.params
        kh, kw = p["kernel"]
        sh, sw = p.get("stride", (1, 1))
        dh, dw = p.get("dilation", (1, 1))
        t, l, b, r = p.get("pads", (0, 0, 0, 0))
        H, W, C = x.shape
        xp = np.full((H + t + b, W + l + r, C), fill, dtype=dtype)
        interior = xp[t:t + H, l:l + W]
        oh, ow = self.graph.tensors[layer.outputs[0]].shape[:2]
        views = [xp[i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
                 for i in range(kh) for j in range(kw)]              # row-major window order
        return interior, views

    def _plan_maxpool(self, layer: Layer):
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        interior, views = self._windows(layer, x, -128, np.int8)   # -128 never wins a real max

        def step():
            np.copyto(interior, x)
            np.copyto(out, views[0])
            for v in views[1:]:
                np.maximum(out, v, out=out)
        return step

    def _plan_avgpool(self, layer: Layer):
        # QLinearAveragePool: dequantize (float32), sum in window order from 0.0, divide by
        # the float32 count, then nearbyint(y / s_out + z_out). Padded cells add +0.0: exact.
        p = layer.params
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        sx, zx = self._q(layer.inputs[0])
        sy, zy = self._q(layer.outputs[0])
        deq = int8.dequantize(np.arange(-128, 128), sx, zx)
        deq_u = np.roll(deq, -128)                        # indexed by the uint8 bit pattern
        interior, views = self._windows(layer, x, 0.0, np.float32)
        kh, kw = p["kernel"]
        H, W, _ = x.shape
        oh, ow = out.shape[:2]
        if p.get("count_include_pad", False):
            count = np.full((oh, ow, 1), kh * kw, dtype=np.float32)
        else:
            ones = np.zeros((H + p["pads"][0] + p["pads"][2], W + p["pads"][1] + p["pads"][3]))
            ones[p["pads"][0]:p["pads"][0] + H, p["pads"][1]:p["pads"][1] + W] = 1
            sh, sw = p.get("stride", (1, 1))
            count = sum(ones[i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
                        for i in range(kh) for j in range(kw)).astype(np.float32)[:, :, None]
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

    def _plan_global_avgpool(self, layer: Layer):
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        sx, zx = self._q(layer.inputs[0])
        sy, zy = self._q(layer.outputs[0])
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

    def _plan_add(self, layer: Layer):
        p = layer.params
        A, B = self.buf[layer.inputs[0]], self.buf[layer.inputs[1]]
        out = self._out(layer)
        sa, za = self._q(layer.inputs[0])
        sb, zb = self._q(layer.inputs[1])
        sc, zc = self._q(layer.outputs[0])
        lo, hi = int(p.get("act_min", -128)), int(p.get("act_max", 127))
        scratch = (np.empty(out.shape), np.empty(out.shape, dtype=np.float32))

        def step():
            int8.qlinear_add(A, za, sa, B, zb, sb, sc, zc, lo, hi, out=out, scratch=scratch)
        return step

    def _plan_concat(self, layer: Layer):
        axis = int(layer.params["axis"])
        out = self._out(layer)
        parts, start = [], 0
        for i, name in enumerate(layer.inputs):
            x = self.buf[name]
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

    def _plan_reshape(self, layer: Layer):
        t = self.graph.tensors[layer.outputs[0]]
        self.buf[t.name] = self.buf[layer.inputs[0]].reshape(t.shape)   # a view: no work
        return lambda: None

    def _plan_transpose(self, layer: Layer):
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        view = x.transpose([int(i) for i in layer.params["perm"]])
        return lambda: np.copyto(out, view)

    def _plan_lut(self, layer: Layer):
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        tu = np.roll(layer.arrays["table"], -128)          # indexed by the uint8 bit pattern
        xu = x.view(np.uint8)
        return lambda: np.take(tu, xu, out=out)

    def _plan_gather(self, layer: Layer):
        idx = self.buf[layer.inputs[0]]
        out = self._out(layer)
        table = layer.arrays["table"]
        v = table.shape[0]

        def step():
            if idx.size and (idx.min() < -v or idx.max() >= v):
                raise IndexError(f"gather index out of range [-{v}, {v - 1}]")
            np.take(table, idx, axis=0, out=out)
        return step

    def _plan_softmax(self, layer: Layer):
        x = self.buf[layer.inputs[0]]
        out = self._out(layer)
        s, z = self._q(layer.inputs[0])
        return lambda: np.copyto(out, int8.softmax_f32(x, s, z))
