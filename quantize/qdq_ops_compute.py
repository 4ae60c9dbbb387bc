"""The ONNX operators lanthorn computes with its own int8 arithmetic: Conv, Gemm, MatMul,
the pools, Add, Mul and Concat.

Each handler is ``handler(imp, node)`` over the importer core (``qdq_import._Importer``):
it reads its quantized inputs, takes the QuantizeLinear after the node (and a Relu/Clip
fused before it), and appends one fused int8 layer whose integers are the ones onnxruntime
computes for that node group (see :mod:`lanthorn.device.engine.int8`).
"""
from __future__ import annotations

import numpy as np

from lanthorn.device.engine import int8
from lanthorn.device.engine.graph import Layer
from lanthorn.quantize.qdq_onnx import node_attrs, our_shape


# ---------------------------------------------------------------- weights and biases
def _weight_scales(imp, node, wq, s, z, n_out):
    """One float32 scale per output: lanthorn's requantization is per output channel, so
    a per-tensor scale is repeated and anything else is refused."""
    if wq.dtype != np.int8:
        imp.fail(node, f"weights are {wq.dtype}", "quantize with weight_type=QuantType.QInt8")
    if z is not None and np.any(z != 0):
        imp.fail(node, "weights have a non-zero zero point",
                 "quantize weights symmetrically (the default for QInt8 weights)")
    s = np.asarray(s, dtype=np.float32).reshape(-1)
    if s.size == 1:
        s = np.full(n_out, s[0], dtype=np.float32)
    if s.size != n_out:
        imp.fail(node, f"weight scales have {s.size} entries for {n_out} outputs",
                 "quantize per output channel (per_channel=True) or per tensor")
    return s


def _bias(imp, node, idx, n_out):
    """The int32 bias onnxruntime quantized (scale = input scale x weight scale), or zeros."""
    if len(node.input) <= idx or not node.input[idx]:
        return np.zeros(n_out, dtype=np.int32)
    name = node.input[idx]
    if name not in imp.wdq or imp.wdq[name][0].dtype != np.int32:
        imp.fail(node, "the bias is not an int32 quantized constant",
                 "quantize with onnxruntime's quantize_static (it quantizes biases to int32)")
    return imp.wdq[name][0].reshape(-1).astype(np.int32)


# ---------------------------------------------------------------- Conv, Gemm, MatMul
def _window_2d(a, layout) -> dict:
    """A window's stride, dilation and pads in lanthorn's 2-D terms: a 1-D conv or pool over
    [1, C, T] runs as a 2-D one of height 1."""
    if layout == "nct":
        p = a.get("pads", [0, 0])
        return {"stride": [1, a.get("strides", [1])[0]], "dilation": [1, a.get("dilations", [1])[0]],
                "pads": [0, p[0], 0, p[1]]}
    return {"stride": list(a.get("strides", [1, 1])), "dilation": list(a.get("dilations", [1, 1])),
            "pads": list(a.get("pads", [0, 0, 0, 0]))}


def _conv_weights(wq, layout):
    """Weights as [Cout, KH, KW, Cg] (a 1-D kernel has height 1)."""
    if layout == "nct":
        return wq.transpose(0, 2, 1)[:, None, :, :]
    return wq.transpose(0, 2, 3, 1)


def conv(imp, node):
    x = imp.act_in(node, 0)
    if x.layout not in ("nchw", "nct"):
        imp.fail(node, f"input layout {x.layout}", "feed Conv a [1, C, H, W] or [1, C, T] tensor")
    wq, ws, wz, _ = imp.weight_in(node, 1)
    a = node_attrs(node)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        imp.fail(node, "auto_pad is set", "export with explicit pads")
    cout = wq.shape[0]
    sw = _weight_scales(imp, node, wq, ws, wz, cout)
    bias = _bias(imp, node, 2, cout)
    qnode, act = imp.out_q(node)
    w = _conv_weights(wq, x.layout)
    out = imp.define_q(qnode, x.layout, qnode.input[0])
    tx, ty = imp.tensors[x.name], imp.tensors[out]
    lo, hi = imp.act_bounds(act, out)
    imp.layers.append(Layer("conv", node.name or out, (x.name,), (out,),
                            {**_window_2d(a, x.layout),
                             "groups": int(a.get("group", 1)), "act_min": lo, "act_max": hi},
                            {"weight": np.ascontiguousarray(w, dtype=np.int8), "bias": bias,
                             "multiplier": int8.requant_multiplier(tx.scale, sw, ty.scale)}))


def _dense(imp, node, w_nk, sw, bias):
    """Gemm and MatMul both end here, their weights already as [N, K]."""
    x = imp.act_in(node, 0)
    if x.layout != "plain":
        imp.fail(node, "the input is a feature map", "Flatten it first")
    qnode, act = imp.out_q(node)
    out = imp.define_q(qnode, "plain", qnode.input[0])
    tx, ty = imp.tensors[x.name], imp.tensors[out]
    lo, hi = imp.act_bounds(act, out)
    imp.layers.append(Layer("dense", node.name or out, (x.name,), (out,),
                            {"act_min": lo, "act_max": hi},
                            {"weight": np.ascontiguousarray(w_nk, dtype=np.int8), "bias": bias,
                             "multiplier": int8.requant_multiplier(tx.scale, sw, ty.scale)}))


def gemm(imp, node):
    a = node_attrs(node)
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
        imp.fail(node, "transA/alpha/beta other than 0/1/1", "export a plain Linear layer")
    wq, ws, wz, _ = imp.weight_in(node, 1)
    w = wq if a.get("transB", 0) else wq.T
    n = w.shape[0]
    _dense(imp, node, w, _weight_scales(imp, node, wq, ws, wz, n), _bias(imp, node, 2, n))


def matmul(imp, node):
    wq, ws, wz, _ = imp.weight_in(node, 1)
    if wq.ndim != 2:
        imp.fail(node, "the weight is not a 2-D matrix", "use a Linear layer")
    n = wq.shape[1]
    _dense(imp, node, wq.T, _weight_scales(imp, node, wq, ws, wz, n),
           np.zeros(n, dtype=np.int32))


# ---------------------------------------------------------------- pools
def _pool_params(imp, node, x, a):
    """Kernel, stride, dilation and pads in lanthorn's 2-D terms (a 1-D pool has height 1)."""
    k = list(a["kernel_shape"])
    if a.get("ceil_mode", 0):
        imp.fail(node, "ceil_mode=1", "use floor mode (ceil_mode=0)")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        imp.fail(node, "auto_pad is set", "export with explicit pads")
    return {"kernel": [1, k[0]] if x.layout == "nct" else k, **_window_2d(a, x.layout)}


def maxpool(imp, node):
    """Max pooling keeps its input's integers; if the Q after it has other parameters, a
    requantizing table follows the pool."""
    x = imp.act_in(node, 0)
    if x.layout not in ("nchw", "nct"):
        imp.fail(node, "input is not a feature map", "pool a [1, C, H, W] or [1, C, T] tensor")
    a = node_attrs(node)
    if len(node.output) > 1 and node.output[1]:
        imp.fail(node, "the Indices output is used", "use MaxPool without indices")
    params = _pool_params(imp, node, x, a)
    qnode, _ = imp.out_q(node)
    table = imp.requant_table(x.name, qnode)
    if table is None:
        out = imp.define_q(qnode, x.layout, qnode.input[0])
        imp.layers.append(Layer("maxpool", node.name or out, (x.name,), (out,), params))
        return
    mid = imp.new_name(qnode.input[0] + "_max")
    oshape = imp.shape(qnode.input[0])
    tx = imp.tensors[x.name]
    imp.add_tensor(mid, our_shape(oshape, x.layout), tx.scale, tx.zero_point)
    imp.layers.append(Layer("maxpool", (node.name or mid), (x.name,), (mid,), params))
    out = imp.define_q(qnode, x.layout, qnode.input[0])
    imp.layers.append(Layer("lut", (node.name or out) + "/requant", (mid,), (out,), {},
                            {"table": table}))


def averagepool(imp, node):
    x = imp.act_in(node, 0)
    a = node_attrs(node)
    params = _pool_params(imp, node, x, a)
    qnode, _ = imp.out_q(node)
    out = imp.define_q(qnode, x.layout, qnode.input[0])
    H, W = imp.tensors[x.name].shape[:2]
    if params["kernel"] == [H, W] and not any(params["pads"]):
        # onnxruntime's QLinearAveragePool switches to the global-average kernel here
        imp.layers.append(Layer("global_avgpool", node.name or out, (x.name,), (out,), {}))
        return
    if params["dilation"] != [1, 1]:
        imp.fail(node, "dilated average pooling", "use dilation 1")
    params.pop("dilation")
    params["count_include_pad"] = bool(a.get("count_include_pad", 0))
    imp.layers.append(Layer("avgpool", node.name or out, (x.name,), (out,), params))


def globalaveragepool(imp, node):
    x = imp.act_in(node, 0)
    if x.layout not in ("nchw", "nct"):
        imp.fail(node, "input is not a feature map", "pool a [1, C, H, W] or [1, C, T] tensor")
    qnode, _ = imp.out_q(node)
    out = imp.define_q(qnode, x.layout, qnode.input[0])
    imp.layers.append(Layer("global_avgpool", node.name or out, (x.name,), (out,), {}))


# ---------------------------------------------------------------- joining tensors
def add(imp, node):
    if node.input[0] not in imp.fmap or node.input[1] not in imp.fmap:
        imp.fail(node, "adds a constant", "only the sum of two activations is supported")
    xa, xb = imp.act_in(node, 0), imp.act_in(node, 1)
    if xa.onnx_shape != xb.onnx_shape or xa.layout != xb.layout:
        imp.fail(node, f"broadcasting {xa.onnx_shape} + {xb.onnx_shape}",
                 "add tensors of equal shape")
    qnode, act = imp.out_q(node)
    out = imp.define_q(qnode, xa.layout, qnode.input[0])
    lo, hi = imp.act_bounds(act, out)
    imp.layers.append(Layer("add", node.name or out, (xa.name, xb.name), (out,),
                            {"act_min": lo, "act_max": hi}))


def mul(imp, node):
    """Elementwise product of two int8 activations (QLinearMul): a gate or a
    squeeze-and-excitation scale, ``b`` broadcast over ``a`` ((1,C,H,W) x (1,C,1,1))."""
    if node.input[0] not in imp.fmap or node.input[1] not in imp.fmap:
        imp.fail(node, "multiplies by a constant",
                 "fold constant scaling into the neighbouring Conv/Gemm weights before export")
    xa, xb = imp.act_in(node, 0), imp.act_in(node, 1)
    sa, sb = imp.tensors[xa.name].shape, imp.tensors[xb.name].shape
    if xa.layout != xb.layout and 1 not in (len(xa.onnx_shape), len(xb.onnx_shape)):
        imp.fail(node, f"inputs have layouts {xa.layout} and {xb.layout}", "multiply like tensors")
    try:
        full = tuple(np.broadcast_shapes(sa, sb))
    except ValueError:
        full = None
    if full == tuple(sb) and full != tuple(sa):
        xa, xb = xb, xa                 # the product is symmetric: the larger input goes first
    elif full != tuple(sa):
        imp.fail(node, f"broadcasting {xa.onnx_shape} x {xb.onnx_shape}",
                 "multiply equal shapes or broadcast one input over the other "
                 "(e.g. [1, C, H, W] x [1, C, 1, 1])")
    qnode, act = imp.out_q(node)
    out = imp.define_q(qnode, xa.layout, qnode.input[0])
    lo, hi = imp.act_bounds(act, out)
    imp.layers.append(Layer("mul", node.name or out, (xa.name, xb.name), (out,),
                            {"act_min": lo, "act_max": hi}))


def _concat_axis(layout, axis):
    """ONNX's concatenation axis (non-negative) as lanthorn's, or None for the batch axis."""
    if layout == "nchw":
        return {1: 2, 2: 0, 3: 1}.get(axis)
    if layout == "nct":
        return {1: 2, 2: 1}.get(axis)
    return axis - 1 if axis >= 1 else None


def concat(imp, node):
    """Inputs quantized differently from the output each get a requantizing table."""
    xs = [imp.act_in(node, i) for i in range(len(node.input))]
    layout = xs[0].layout
    if any(x.layout != layout for x in xs):
        imp.fail(node, "inputs have different layouts", "concatenate like tensors")
    axis = node_attrs(node)["axis"]
    rank = len(xs[0].onnx_shape)
    ours = _concat_axis(layout, axis + rank if axis < 0 else axis)
    if ours is None:
        imp.fail(node, "concatenation along the batch axis", "concatenate along features")
    qnode, _ = imp.out_q(node)
    out = imp.define_q(qnode, layout, qnode.input[0])
    ty = imp.tensors[out]
    arrays = {}
    for i, x in enumerate(xs):
        tx = imp.tensors[x.name]
        if (tx.scale, tx.zero_point) != (ty.scale, ty.zero_point):
            arrays[f"table{i}"] = int8.requant_table(tx.scale, tx.zero_point, ty.scale,
                                                     ty.zero_point)
    imp.layers.append(Layer("concat", node.name or out, tuple(x.name for x in xs), (out,),
                            {"axis": ours}, arrays))
