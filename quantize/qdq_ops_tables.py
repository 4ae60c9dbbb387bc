"""The ONNX operators lanthorn does not compute with arithmetic of its own: elementwise
activations become 256-entry tables, and a final Softmax runs in float.

The tables come from onnxruntime itself, run on the exact DQ -> op -> Q subgraph over all
256 int8 inputs, so they match whatever onnxruntime computes for that activation, however
it computes it. Handlers are ``handler(imp, node)`` over the importer core
(``qdq_import._Importer``).
"""
from __future__ import annotations

import numpy as np

from lanthorn.device.engine.graph import Layer, Tensor
from lanthorn.quantize.ort_oracle import ort_session
from lanthorn.quantize.qdq_onnx import node_attrs


def _final_float_output(imp, out_f) -> str:
    """The graph output a final softmax stands for: its Q -> DQ, if any, is skipped, so the
    float probabilities are exposed instead of their int8 rounding."""
    cons = imp.consumers.get(out_f, [])
    final = out_f
    if len(cons) == 1 and cons[0].op_type == "QuantizeLinear":
        imp.done.add(id(cons[0]))
        dqs = imp.consumers.get(cons[0].output[0], [])
        if len(dqs) == 1 and dqs[0].op_type == "DequantizeLinear":
            imp.done.add(id(dqs[0]))
            final = dqs[0].output[0]
    return final


def softmax(imp, node):
    x = imp.act_in(node, 0)
    a = node_attrs(node)
    rank = len(x.onnx_shape)
    if a.get("axis", -1) not in (-1, rank - 1) or x.layout != "plain":
        imp.fail(node, "softmax not over the last axis of a vector", "end with Softmax(axis=-1)")
    final = _final_float_output(imp, node.output[0])
    if final not in imp.graph_outputs:
        imp.fail(node, "Softmax is not the last operator", "lanthorn supports a final softmax only")
    tx = imp.tensors[x.name]
    imp.add_tensor(final, tx.shape, dtype="float32")
    imp.layers.append(Layer("softmax", node.name or final, (x.name,), (final,)))


def unary_lut(imp, node):
    x = imp.act_in(node, 0)
    qnode, _ = imp.out_q(node)
    out = imp.define_q(qnode, x.layout, qnode.input[0])
    table = _ort_table(imp, node, imp.tensors[x.name], imp.tensors[out])
    imp.layers.append(Layer("lut", node.name or out, (x.name,), (out,), {}, {"table": table}))


def _ort_table(imp, node, tx: Tensor, ty: Tensor) -> np.ndarray:
    """Run onnxruntime on DQ -> node -> Q over all 256 int8 inputs: the exact table."""
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.array(tx.scale, np.float32), "xs"),
             numpy_helper.from_array(np.array(tx.zero_point, np.int8), "xz"),
             numpy_helper.from_array(np.array(ty.scale, np.float32), "ys"),
             numpy_helper.from_array(np.array(ty.zero_point, np.int8), "yz")]
    extra = []
    for i in node.input[1:]:
        if i and i in imp.init:
            inits.append(numpy_helper.from_array(imp.init[i], i))
        extra.append(i)
    op = helper.make_node(node.op_type, ["xf"] + extra, ["yf"], domain=node.domain or "")
    op.attribute.extend(node.attribute)
    g = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]), op,
         helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["yq"])],
        "lut", [helper.make_tensor_value_info("xq", TensorProto.INT8, [256])],
        [helper.make_tensor_value_info("yq", TensorProto.INT8, [256])], inits)
    m = helper.make_model(g, opset_imports=list(imp.model.opset_import))
    m.ir_version = imp.model.ir_version
    sess = ort_session(m.SerializeToString())      # the oracle's options: its int8 QDQ path
    return sess.run(None, {"xq": np.arange(-128, 128, dtype=np.int8)})[0].astype(np.int8)


def batchnorm(imp, node):
    """A BatchNormalization onnxruntime runs in float between a DQ and a Q (no integer
    kernel exists for it): one 256-entry table per channel, computed by onnxruntime on the
    exact DQ -> BatchNormalization -> Q subgraph in the model's own shape, each input code
    filling the whole tensor. A channel whose value differs across positions (a kernel
    that rounds by position) could not be a table and is refused."""
    x = imp.act_in(node, 0)
    if len(node.output) > 1 and any(node.output[1:]) or \
            not all(i in imp.init or i in imp.wdq for i in node.input[1:5]):
        imp.fail(node, "training-mode outputs or non-constant statistics",
                 "export the model in eval mode")
    qnode, act = imp.out_q(node)
    if act is not None:
        imp.fail(node, "an activation follows it before its QuantizeLinear",
                 "quantize with quantize_static so the activation has its own Q/DQ")
    out = imp.define_q(qnode, x.layout, qnode.input[0])
    tx, ty = imp.tensors[x.name], imp.tensors[out]
    shape = list(x.onnx_shape)
    c = shape[1] if len(shape) >= 2 else 1
    vals = _ort_fill_runs(imp, node, tx, ty, shape)          # [256, 1, C, ...]
    per_c = vals.reshape(256, c, -1)
    if np.any(per_c != per_c[:, :, :1]):
        imp.fail(node, "onnxruntime's result depends on the position, not just the channel",
                 "fold the BatchNormalization into the layer before it")
    table = np.ascontiguousarray(per_c[:, :, 0].T, dtype=np.int8)     # [C, 256]
    imp.layers.append(Layer("lut", node.name or out, (x.name,), (out,), {}, {"table": table}))


def _ort_fill_runs(imp, node, tx: Tensor, ty: Tensor, shape) -> np.ndarray:
    """onnxruntime's DQ -> node -> Q output for the input filled with each int8 code."""
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.array(tx.scale, np.float32), "xs"),
             numpy_helper.from_array(np.array(tx.zero_point, np.int8), "xz"),
             numpy_helper.from_array(np.array(ty.scale, np.float32), "ys"),
             numpy_helper.from_array(np.array(ty.zero_point, np.int8), "yz")]
    params = []     # the parameters as the model holds them: constants, or a DQ of int8 ones
    for k, i in enumerate(i for i in node.input[1:] if i):
        if i in imp.init:
            inits.append(numpy_helper.from_array(imp.init[i], i))
            continue
        q, sc, z, axis = imp.wdq[i]
        names = [f"p{k}q", f"p{k}s"] + ([f"p{k}z"] if z is not None else [])
        inits += [numpy_helper.from_array(np.asarray(v), nm) for v, nm in zip((q, sc, z), names, strict=False)]
        params.append(helper.make_node("DequantizeLinear", names, [i], axis=int(axis)))
    op = helper.make_node(node.op_type, ["xf"] + list(node.input[1:]), ["yf"])
    op.attribute.extend(node.attribute)
    g = helper.make_graph(
        [*params, helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]), op,
         helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["yq"])],
        "per_channel", [helper.make_tensor_value_info("xq", TensorProto.INT8, shape)],
        [helper.make_tensor_value_info("yq", TensorProto.INT8, shape)], inits)
    m = helper.make_model(g, opset_imports=list(imp.model.opset_import))
    m.ir_version = imp.model.ir_version
    sess = ort_session(m.SerializeToString())
    return np.stack([sess.run(None, {"xq": np.full(shape, q, np.int8)})[0]
                     for q in range(-128, 128)])
