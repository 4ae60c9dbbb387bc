"""QuantizeLinear and DequantizeLinear: the quantization boundaries of a QDQ model.

They become no layer of their own. A Q right after a graph input declares one of the
graph's int8 inputs; the Q after a compute node is consumed by that node's handler
(``imp.out_q``); a DQ only records what its float output stands for: a quantized
activation (``imp.fmap``) or a quantized constant weight (``imp.wdq``).
"""
from __future__ import annotations

from lanthorn.quantize.qdq_onnx import node_attrs


def quantize_linear(imp, node):
    """The Q after a compute node is taken by that node's handler, so a Q left for the
    registry must quantize a graph input: it declares an int8 input of the graph."""
    src = node.input[0]
    if src in {gi.name for gi in imp.graph_inputs}:
        if _alias_dedicated_input_q(imp, node, src):
            return
        layout = imp.input_layout_of(src)
        name = imp.define_q(node, layout, src)
        imp.model_q_src[name] = src
        imp.io_layout[name] = layout
        imp.inputs.append(name)
        imp.input_layout = layout
        return
    imp.fail(node, "a QuantizeLinear that does not follow a supported operator",
             "quantize the whole model with onnxruntime's quantize_static")


def _alias_dedicated_input_q(imp, node, src) -> bool:
    """DedicatedQDQPair gives each reader of an input its own Q with the same numbers:
    the second one names the input already declared instead of declaring a second input."""
    for qq in list(imp.q.values()):
        if qq.name in imp.inputs and imp.model_q_src.get(qq.name) == src:
            t = imp.tensors[qq.name]
            if imp.activation_qparams(node) == (t.scale, t.zero_point):
                imp.q[node.output[0]] = qq
                return True
    return False


def dequantize_linear(imp, node):
    src = node.input[0]
    if src in imp.init:
        q = imp.init[src]
        s = imp.init.get(node.input[1])
        z = imp.init.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axis = node_attrs(node).get("axis", 1)
        imp.wdq[node.output[0]] = (q, s, z, axis)
        return
    if src not in imp.q:
        imp.fail(node, f"dequantizes {src!r}, which is not a quantized activation",
                 "quantize the whole model with onnxruntime's quantize_static")
    imp.fmap[node.output[0]] = src
