"""Float-graph rewrites ``lanthorn quantize`` applies after onnxruntime's pre-processing.

onnxruntime's ``quant_pre_process`` folds a BatchNormalization into the Conv before it and
nothing else, and it splits HardSwish into HardSigmoid and Mul. Both leave the int8 graph
worse than it needs to be, so, on the float model, before calibration:

* :func:`fold_batchnorm`: a BatchNormalization after a Gemm or a 2-D MatMul with constant
  weights folds into that layer's weights and bias (``W' = W * k``, ``b' = (b - mean) * k +
  beta``, ``k = gamma / sqrt(var + eps)``, per output); a standalone one becomes a per-channel
  affine layer the engine already runs exactly: a depthwise 1x1 Conv on a feature map, a
  diagonal Gemm on a vector. Each channel's weight quantizes on its own (per-channel), so the
  affine map loses nothing to the weights' rounding.
* :func:`fuse_hardswish`: ``Mul(x, HardSigmoid(x; 1/6, 1/2))`` becomes ``HardSwish(x)`` again:
  one 256-entry table instead of a table, a Q/DQ pair and a QLinearMul.

Both are identities on a graph without those patterns (the default piece's model is
unchanged, byte for byte).
"""
from __future__ import annotations

import numpy as np


def _consumers(graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _attr(node, name, default):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _bn_affine(inits, node):
    """(k, shift) of a BatchNormalization with constant parameters, in float32."""
    g, b, m, v = (inits[i].astype(np.float64) for i in node.input[1:5])
    k = g / np.sqrt(v + float(_attr(node, "epsilon", 1e-5)))
    return k, b - m * k


def _rank(model, name) -> int | None:
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim)
    return None


def _fold_into(model, inits, prod, bn) -> bool:
    """Fold ``bn`` into the Gemm/MatMul ``prod`` that feeds only it; False if it cannot."""
    from onnx import helper, numpy_helper
    if prod.op_type == "Gemm":
        if _attr(prod, "transA", 0) or _attr(prod, "alpha", 1.0) != 1.0 or \
                _attr(prod, "beta", 1.0) != 1.0 or prod.input[1] not in inits:
            return False
        w = inits[prod.input[1]].astype(np.float64)
        w_kn = w.T if _attr(prod, "transB", 0) else w
        bias = inits.get(prod.input[2]) if len(prod.input) > 2 and prod.input[2] else None
        if bias is not None and bias.size != w_kn.shape[1]:
            return False
    elif prod.op_type == "MatMul" and prod.input[1] in inits and \
            inits[prod.input[1]].ndim == 2 and _rank(model, prod.input[0]) == 2:
        w_kn, bias = inits[prod.input[1]].astype(np.float64), None
    else:
        return False
    k, shift = _bn_affine(inits, bn)
    b0 = np.zeros(w_kn.shape[1]) if bias is None else bias.astype(np.float64).reshape(-1)
    wname, bname = prod.name + "_bn_w", prod.name + "_bn_b"
    model.graph.initializer.extend([
        numpy_helper.from_array((w_kn * k).T.astype(np.float32), wname),
        numpy_helper.from_array((b0 * k + shift).astype(np.float32), bname)])
    gemm = helper.make_node("Gemm", [prod.input[0], wname, bname], [bn.output[0]],
                            name=prod.name or bn.name, transB=1)
    _replace(model, [prod, bn], [gemm])
    return True


def _affine_node(model, bn, k, shift):
    """A standalone BatchNormalization as a per-channel layer: depthwise 1x1 Conv or a
    diagonal Gemm."""
    from onnx import helper, numpy_helper
    rank = _rank(model, bn.input[0])
    c = k.size
    wname, bname = bn.name + "_affine_w", bn.name + "_affine_b"
    if rank == 2:
        w = np.diag(k).astype(np.float32)
        node = helper.make_node("Gemm", [bn.input[0], wname, bname], [bn.output[0]],
                                name=bn.name, transB=1)
    elif rank in (3, 4):
        dims = rank - 2
        w = k.reshape([c, 1] + [1] * dims).astype(np.float32)
        node = helper.make_node("Conv", [bn.input[0], wname, bname], [bn.output[0]],
                                name=bn.name, group=c, kernel_shape=[1] * dims)
    else:
        return None
    model.graph.initializer.extend([numpy_helper.from_array(w, wname),
                                    numpy_helper.from_array(shift.astype(np.float32), bname)])
    return node


def _replace(model, old, new):
    """Put ``new`` where the first of ``old`` stood (nodes are matched by their outputs:
    protobuf copies messages, so identity does not survive an earlier rewrite)."""
    gone = {tuple(n.output) for n in old}
    nodes = list(model.graph.node)
    at = min(i for i, n in enumerate(nodes) if tuple(n.output) in gone)
    keep = [n for n in nodes if tuple(n.output) not in gone]
    keep[at:at] = new
    del model.graph.node[:]
    model.graph.node.extend(keep)


def fold_batchnorm(model):
    """Fold or rewrite every BatchNormalization with constant parameters (in place)."""
    from onnx import numpy_helper
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for out in [n.output[0] for n in model.graph.node if n.op_type == "BatchNormalization"]:
        bn = next(n for n in model.graph.node if n.output[0] == out)
        if len(bn.output) > 1 and any(bn.output[1:]) or \
                not all(i in inits for i in bn.input[1:5]):
            continue
        bn.name = bn.name or bn.output[0]
        producer = {o: n for n in model.graph.node for o in n.output}
        prod = producer.get(bn.input[0])
        cons = _consumers(model.graph).get(bn.input[0], [])
        outputs = {o.name for o in model.graph.output}
        if prod is not None and len(cons) == 1 and bn.input[0] not in outputs and \
                _fold_into(model, inits, prod, bn):
            continue
        node = _affine_node(model, bn, *_bn_affine(inits, bn))
        if node is not None:
            _replace(model, [bn], [node])
    return model


def fuse_hardswish(model):
    """``Mul(x, HardSigmoid(x))`` with HardSwish's constants back to one HardSwish (in place)."""
    from onnx import helper
    outputs = {o.name for o in model.graph.output}
    for out in [n.output[0] for n in model.graph.node if n.op_type == "HardSigmoid"]:
        hs = next(n for n in model.graph.node if n.output[0] == out)
        cons = _consumers(model.graph)
        alpha, beta = _attr(hs, "alpha", 0.2), _attr(hs, "beta", 0.5)
        users = cons.get(hs.output[0], [])
        if not (abs(alpha - 1 / 6) < 1e-6 and abs(beta - 0.5) < 1e-6) or len(users) != 1 \
                or hs.output[0] in outputs:
            continue
        mul = users[0]
        if mul.op_type != "Mul" or sorted(mul.input) != sorted([hs.input[0], hs.output[0]]):
            continue
        _replace(model, [hs, mul], [helper.make_node("HardSwish", [hs.input[0]], [mul.output[0]],
                                                     name=mul.name or hs.name)])
    return model
