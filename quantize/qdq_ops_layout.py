"""The ONNX operators that move int8 values without computing new ones: Flatten, Reshape,
Transpose and Gather (an embedding lookup).

ONNX is NCHW and lanthorn channels-last, so where the element order matters (flattening a
feature map) a ``transpose`` restores ONNX's order first. Handlers are
``handler(imp, node)`` over the importer core (``qdq_import._Importer``).
"""
from __future__ import annotations

import numpy as np

from lanthorn.device.engine import int8
from lanthorn.device.engine.graph import Layer
from lanthorn.quantize.qdq_onnx import node_attrs, our_shape


def _in_onnx_order(imp, x) -> str:
    """The name of ``x`` with its elements in ONNX's (channel-major) order: a feature map
    with more than one position is transposed (H, W, C) -> (C, H, W) first."""
    src = x.name
    if x.layout in ("nchw", "nct"):
        h, w, c = imp.tensors[src].shape
        if h * w > 1:
            mid = imp.new_name(src + "_chw")
            tx = imp.tensors[src]
            imp.add_tensor(mid, (c, h, w), tx.scale, tx.zero_point)
            imp.layers.append(Layer("transpose", mid, (src,), (mid,), {"perm": [2, 0, 1]}))
            src = mid
    return src


def _relabel(imp, node):
    """Flatten / Reshape to a plain vector (restoring ONNX element order)."""
    x = imp.act_in(node, 0)
    qnode, _ = imp.out_q(node)
    oshape = imp.shape(qnode.input[0], node)
    if oshape[0] != 1:
        imp.fail(node, "changes the batch dimension", "keep batch 1 in front")
    table = imp.requant_table(x.name, qnode)
    src = _in_onnx_order(imp, x)
    target = our_shape(oshape, "plain")
    if table is not None:
        mid = imp.new_name(qnode.output[0] + "_pre")
        ts = imp.tensors[src]
        imp.add_tensor(mid, target, ts.scale, ts.zero_point)
        imp.layers.append(Layer("reshape", mid, (src,), (mid,), {"shape": list(target)}))
        out = imp.define_q(qnode, "plain", qnode.input[0])
        imp.layers.append(Layer("lut", out + "/requant", (mid,), (out,), {}, {"table": table}))
        return
    out = imp.define_q(qnode, "plain", qnode.input[0])
    imp.layers.append(Layer("reshape", node.name or out, (src,), (out,),
                            {"shape": list(target)}))


def flatten(imp, node):
    if node_attrs(node).get("axis", 1) != 1:
        imp.fail(node, "Flatten with axis != 1", "flatten everything after the batch axis")
    _relabel(imp, node)


def reshape(imp, node):
    oshape = imp.shape(node.output[0], node)
    x = imp.act_in(node, 0)
    if len(oshape) > 3 or (x.layout != "plain" and len(oshape) != 2):
        imp.fail(node, f"reshape of a {x.layout} tensor to {oshape}",
                 "only flattening a feature map, or reshaping vectors, is supported")
    _relabel(imp, node)


def transpose(imp, node):
    x = imp.act_in(node, 0)
    perm = list(node_attrs(node)["perm"])
    if x.layout != "plain" or perm[0] != 0:
        imp.fail(node, "transposes a feature map or the batch axis",
                 "only transposes of plain tensors after the batch axis are supported")
    qnode, _ = imp.out_q(node)
    out = imp.define_q(qnode, "plain", qnode.input[0])
    imp.layers.append(Layer("transpose", node.name or out, (x.name,), (out,),
                            {"perm": [p - 1 for p in perm[1:]]}))


def _embedding_table(imp, node, data, s, z):
    """The embedding as int8 rows already in the output's quantization (s, z), so the
    lookup itself is a copy: a quantized table is requantized, a float one quantized."""
    if data in imp.wdq:
        tq, ts, tz, _ = imp.wdq[data]
        ts_, tz_ = float(np.float32(np.asarray(ts).reshape(-1)[0])), int(np.asarray(tz).reshape(-1)[0])
        if np.asarray(ts).size != 1:
            imp.fail(node, "the embedding is quantized per channel", "quantize it per tensor")
        return tq.astype(np.int8) if (ts_, tz_) == (s, z) else \
            np.take(int8.requant_table(ts_, tz_, s, z), tq.astype(np.int16) + 128)
    if data in imp.init:
        return int8.quantize(imp.init[data].astype(np.float32), s, z)
    imp.fail(node, "the embedding table is not a constant", "use a constant table")


def gather(imp, node):
    """An embedding lookup: int32 token indices straight from a graph input select rows."""
    data, idx = node.input[0], node.input[1]
    if node_attrs(node).get("axis", 0) != 0:
        imp.fail(node, "gathers along an axis other than 0", "use an embedding lookup")
    if idx not in {gi.name for gi in imp.graph_inputs}:
        imp.fail(node, "indices do not come straight from a graph input",
                 "feed token indices as a model input")
    qnode, _ = imp.out_q(node)
    s, z = imp.activation_qparams(qnode)
    table = _embedding_table(imp, node, data, s, z)
    ishape = imp.shape(idx)
    if len(ishape) < 1 or ishape[0] != 1:
        imp.fail(node, f"indices shape {ishape}", "use indices of shape [1, L]")
    iname = idx
    if iname not in imp.tensors:
        imp.add_tensor(iname, our_shape(ishape, "plain") or (1,), dtype="int32")
        imp.inputs.append(iname)
        imp.input_layout = "plain"
    out = imp.define_q(qnode, "plain", qnode.input[0])
    imp.layers.append(Layer("gather", node.name or out, (iname,), (out,), {},
                            {"table": np.ascontiguousarray(table, dtype=np.int8)}))
