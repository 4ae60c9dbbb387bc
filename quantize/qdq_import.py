"""Convert an onnxruntime-quantized QDQ ONNX model into a lanthorn bundle.

Input: a model as ``onnxruntime.quantization.quantize_static(quant_format=QDQ,
per_channel=True, activation_type=QInt8, weight_type=QInt8)`` writes it: every float
activation is wrapped as ``QuantizeLinear -> DequantizeLinear``, weights are int8
initializers behind a ``DequantizeLinear``, biases int32. Each compute node between DQs and
a Q becomes one fused int8 layer of :mod:`lanthorn.device.graph`, computed with the exact
arithmetic onnxruntime uses for that node group (:mod:`lanthorn.device.int8`), and the QDQ
model itself is embedded as the bundle's twin so anyone can re-check the integers.

Layouts: ONNX is NCHW; lanthorn is channels-last. A ``[1, C, H, W]`` tensor becomes
``(H, W, C)``, a ``[1, C, T]`` conv1d window ``(1, T, C)``, a ``[1, K]`` vector ``(K,)``.
Where flattening depends on the element order, a ``transpose`` restores ONNX's order.
Elementwise activations (Sigmoid, Tanh, a standalone Relu/Clip, LeakyRelu, ...) become
256-entry tables computed by onnxruntime itself on the exact DQ -> op -> Q subgraph.

Anything else is refused with the node, the operator and what to do about it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanthorn.device import int8
from lanthorn.device.bundle import Bundle, BundleError, InputSpec
from lanthorn.device.graph import Graph, GraphError, Layer, Tensor
from lanthorn.errors import UserError

UNARY_LUT_OPS = {"Sigmoid", "Tanh", "Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish",
                 "Elu", "Selu", "Softsign", "Softplus", "Abs", "Neg", "Identity", "Exp", "Erf",
                 "Sqrt", "Reciprocal", "Mish", "Gelu"}
SPATIAL_OPS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool"}


class ImportError_(UserError):
    """The ONNX model cannot be converted; the message names the node and what to do."""


@dataclass
class _Q:
    """A quantized activation in the lanthorn graph: its tensor and ONNX layout."""
    name: str
    layout: str            # "nchw" | "nct" | "plain"
    onnx_shape: tuple


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _ours(shape, layout):
    shape = tuple(int(d) for d in shape)
    if layout == "nchw":
        return (shape[2], shape[3], shape[1])
    if layout == "nct":
        return (1, shape[2], shape[1])
    return shape[1:] if len(shape) >= 2 else shape


class _Importer:
    def __init__(self, model, source: str):
        import onnx
        from onnx import numpy_helper, shape_inference
        self.onnx = onnx
        self.source = source
        self.model = model
        try:
            inferred = shape_inference.infer_shapes(model, strict_mode=False)
        except Exception as exc:  # onnx raises several types; all mean "cannot infer shapes"
            raise ImportError_(f"{source}: ONNX shape inference failed ({exc}); export the "
                               f"model with fixed input shapes") from None
        g = inferred.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for n in g.node:  # Constant nodes are initializers in disguise
            if n.op_type == "Constant":
                self.init[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
        self.shapes = {}
        for vi in list(g.value_info) + list(g.input) + list(g.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                         for d in dims)
        self.nodes = [n for n in g.node if n.op_type != "Constant"]
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.graph_inputs = [i for i in g.input if i.name not in self.init]
        self.graph_outputs = [o.name for o in g.output]
        self.tensors: dict[str, Tensor] = {}
        self.layers: list[Layer] = []
        self.q: dict[str, _Q] = {}          # ONNX quantized tensor name -> _Q
        self.fmap: dict[str, str] = {}      # DQ float output -> quantized tensor name
        self.wdq: dict[str, tuple] = {}     # DQ float output of an initializer -> (q, s, z, axis)
        self.done: set[int] = set()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.input_layout = None
        self.model_q_src: dict[str, str] = {}
        self.io_layout: dict[str, str] = {}     # graph input tensor -> its ONNX layout
        self.pending_alias = ()

    # ---------------------------------------------------------------- helpers
    def fail(self, node, what: str, todo: str):
        name = node.name or node.output[0]
        raise ImportError_(f"{self.source}: node {name!r} ({node.op_type}): {what}; {todo}")

    def shape(self, name, node=None):
        s = self.shapes.get(name)
        if s is None or any(d is None or d <= 0 for d in s):
            where = f" at node {node.name or node.output[0]!r} ({node.op_type})" if node else ""
            raise ImportError_(f"{self.source}: tensor {name!r}{where} has a dynamic or unknown "
                               f"shape {s}; lanthorn runs fixed shapes with batch 1: export the "
                               f"model with a fixed input shape (e.g. torch.onnx.export without "
                               f"dynamic_axes) and quantize it again")
        if len(s) >= 2 and s[0] != 1:
            raise ImportError_(f"{self.source}: tensor {name!r} has batch size {s[0]}; lanthorn "
                               f"runs batch 1: export with batch size 1")
        return s

    def scalar(self, name) -> float | int:
        a = self.init.get(name)
        if a is None:
            raise ImportError_(f"{self.source}: quantization parameter {name!r} is not a "
                               f"constant; quantize with onnxruntime's quantize_static")
        return a.reshape(-1)[0].item() if a.size == 1 else a

    def add_tensor(self, name, shape, scale=1.0, zp=0, dtype="int8"):
        self.tensors[name] = Tensor(name, tuple(shape), dtype, float(np.float32(scale)), int(zp))
        return self.tensors[name]

    def new_name(self, base):
        name, k = base, 1
        while name in self.tensors:
            name, k = f"{base}_{k}", k + 1
        return name

    def act_in(self, node, idx) -> _Q:
        name = node.input[idx]
        if name not in self.fmap:
            self.fail(node, f"input {name!r} is not a dequantized int8 activation",
                      "quantize the model with quantize_static(quant_format=QDQ) so every "
                      "activation passes through QuantizeLinear/DequantizeLinear")
        return self.q[self.fmap[name]]

    def weight_in(self, node, idx):
        name = node.input[idx]
        if name in self.wdq:
            return self.wdq[name]
        self.fail(node, f"input {name!r} is not a quantized constant weight",
                  "quantize with per_channel=True and weight_type=QInt8")

    def out_q(self, node):
        """The QuantizeLinear after ``node`` (optionally through Relu/Clip): (q node, act)."""
        out = node.output[0]
        cons = self.consumers.get(out, [])
        act = None
        if len(cons) == 1 and cons[0].op_type in ("Relu", "Clip") and out not in self.graph_outputs:
            act = cons[0]
            cons = self.consumers.get(act.output[0], [])
        if not cons or any(c.op_type != "QuantizeLinear" for c in cons):
            self.fail(node, "its output is not (only) quantized by QuantizeLinear",
                      "lanthorn imports fully quantized QDQ models; quantize every operator "
                      "(do not exclude nodes) with onnxruntime's quantize_static")
        if act is not None:
            self.done.add(id(act))
        for c in cons:
            self.done.add(id(c))
        self.pending_alias = cons[1:]   # DedicatedQDQPair: one Q per consumer, same numbers
        return cons[0], act

    def define_q(self, qnode, layout, onnx_shape_name):
        """Declare the quantized tensor produced by QuantizeLinear ``qnode``."""
        s = self.scalar(qnode.input[1])
        z = self.scalar(qnode.input[2]) if len(qnode.input) > 2 else 0
        zp_arr = self.init.get(qnode.input[2]) if len(qnode.input) > 2 else None
        if zp_arr is not None and zp_arr.dtype != np.int8:
            raise ImportError_(f"{self.source}: activation {qnode.output[0]!r} is {zp_arr.dtype}; "
                               f"lanthorn needs activation_type=QuantType.QInt8")
        oshape = self.shape(onnx_shape_name)
        name = qnode.output[0]
        self.add_tensor(name, _ours(oshape, layout), s, z)
        self.q[name] = _Q(name, layout, oshape)
        for other in getattr(self, "pending_alias", ()):
            if (self.scalar(other.input[1]), self.scalar(other.input[2])) != (s, z):
                raise ImportError_(f"{self.source}: tensor {qnode.input[0]!r} is quantized twice "
                                   f"with different parameters; quantize it once")
            self.q[other.output[0]] = self.q[name]
        self.pending_alias = ()
        return name

    def act_bounds(self, act, out_name):
        t = self.tensors[out_name]
        if act is None:
            return -128, 127
        if act.op_type == "Relu":
            return int8.act_bounds(t.zero_point, t.scale, 0.0, None)
        a = _attrs(act)
        lo = a.get("min")
        hi = a.get("max")
        if len(act.input) > 1 and act.input[1]:
            lo = float(self.scalar(act.input[1]))
        if len(act.input) > 2 and act.input[2]:
            hi = float(self.scalar(act.input[2]))
        return int8.act_bounds(t.zero_point, t.scale, lo, hi)

    # ---------------------------------------------------------------- main
    def run(self) -> Graph:
        for gi in self.graph_inputs:
            self.shape(gi.name)
        for node in self.nodes:
            if id(node) in self.done:
                continue
            handler = getattr(self, f"_op_{node.op_type}", None)
            if handler is None:
                if node.op_type in UNARY_LUT_OPS:
                    handler = self._unary_lut
                else:
                    self.fail(node, "this operator is not supported by lanthorn's int8 engine",
                              "supported: Conv (1-D/2-D, groups), Gemm, MatMul, MaxPool, "
                              "AveragePool, GlobalAveragePool, Add, Concat, Flatten, Reshape, "
                              "Transpose, Gather, Softmax (last), and elementwise activations "
                              f"({', '.join(sorted(UNARY_LUT_OPS))}); replace it in the model")
            handler(node)
        for out in self.graph_outputs:
            if out in self.fmap:
                self.outputs.append(self.fmap[out])
            elif out in self.tensors:
                self.outputs.append(out)
            else:
                raise ImportError_(f"{self.source}: graph output {out!r} is not a quantized "
                                   f"tensor lanthorn computes")
        graph = Graph(self.tensors, self.layers, tuple(self.inputs), tuple(self.outputs))
        try:
            graph.validate()
        except GraphError as exc:
            raise ImportError_(f"{self.source}: the converted graph is inconsistent: {exc}") from None
        return graph

    # ---------------------------------------------------------------- Q / DQ
    def _input_layout(self, name) -> str:
        rank = len(self.shape(name))
        if rank == 4:
            return "nchw"
        if rank == 3:
            seen, todo = set(), [name]
            while todo:  # follow Q -> DQ to the first real consumer
                t = todo.pop()
                for c in self.consumers.get(t, []):
                    if c.op_type in ("QuantizeLinear", "DequantizeLinear"):
                        if c.output[0] not in seen:
                            seen.add(c.output[0])
                            todo.append(c.output[0])
                    elif c.op_type in SPATIAL_OPS:
                        return "nct"
        return "plain"

    def _op_QuantizeLinear(self, node):
        src = node.input[0]
        if src in {gi.name for gi in self.graph_inputs}:
            for qname, qq in list(self.q.items()):  # a dedicated second Q of the input
                if qq.name in self.inputs and self.model_q_src.get(qq.name) == src:
                    t = self.tensors[qq.name]
                    if (float(np.float32(self.scalar(node.input[1]))), int(self.scalar(node.input[2]))) \
                            == (t.scale, t.zero_point):
                        self.q[node.output[0]] = qq
                        return
            layout = self._input_layout(src)
            name = self.define_q(node, layout, src)
            self.model_q_src[name] = src
            self.io_layout[name] = layout
            self.inputs.append(name)
            self.input_layout = layout
            return
        self.fail(node, "a QuantizeLinear that does not follow a supported operator",
                  "quantize the whole model with onnxruntime's quantize_static")

    def _op_DequantizeLinear(self, node):
        src = node.input[0]
        if src in self.init:
            q = self.init[src]
            s = self.init.get(node.input[1])
            z = self.init.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            axis = _attrs(node).get("axis", 1)
            self.wdq[node.output[0]] = (q, s, z, axis)
            return
        if src not in self.q:
            self.fail(node, f"dequantizes {src!r}, which is not a quantized activation",
                      "quantize the whole model with onnxruntime's quantize_static")
        self.fmap[node.output[0]] = src

    # ---------------------------------------------------------------- compute nodes
    def _weight_scales(self, node, wq, s, z, n_out, axis_expected):
        if wq.dtype != np.int8:
            self.fail(node, f"weights are {wq.dtype}", "quantize with weight_type=QuantType.QInt8")
        if z is not None and np.any(z != 0):
            self.fail(node, "weights have a non-zero zero point",
                      "quantize weights symmetrically (the default for QInt8 weights)")
        s = np.asarray(s, dtype=np.float32).reshape(-1)
        if s.size == 1:
            s = np.full(n_out, s[0], dtype=np.float32)
        if s.size != n_out:
            self.fail(node, f"weight scales have {s.size} entries for {n_out} outputs",
                      "quantize per output channel (per_channel=True) or per tensor")
        return s

    def _bias(self, node, idx, n_out):
        if len(node.input) <= idx or not node.input[idx]:
            return np.zeros(n_out, dtype=np.int32)
        name = node.input[idx]
        if name not in self.wdq or self.wdq[name][0].dtype != np.int32:
            self.fail(node, "the bias is not an int32 quantized constant",
                      "quantize with onnxruntime's quantize_static (it quantizes biases to int32)")
        return self.wdq[name][0].reshape(-1).astype(np.int32)

    def _op_Conv(self, node):
        x = self.act_in(node, 0)
        if x.layout not in ("nchw", "nct"):
            self.fail(node, f"input layout {x.layout}", "feed Conv a [1, C, H, W] or [1, C, T] tensor")
        wq, ws, wz, _ = self.weight_in(node, 1)
        a = _attrs(node)
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            self.fail(node, "auto_pad is set", "export with explicit pads")
        cout = wq.shape[0]
        sw = self._weight_scales(node, wq, ws, wz, cout, 0)
        bias = self._bias(node, 2, cout)
        qnode, act = self.out_q(node)
        if x.layout == "nct":
            w = wq.transpose(0, 2, 1)[:, None, :, :]             # [Cout, 1, K, Cg]
            k = wq.shape[2]
            stride = (1, a.get("strides", [1])[0])
            dil = (1, a.get("dilations", [1])[0])
            p = a.get("pads", [0, 0])
            pads = (0, p[0], 0, p[1])
        else:
            w = wq.transpose(0, 2, 3, 1)                          # [Cout, KH, KW, Cg]
            stride = tuple(a.get("strides", [1, 1]))
            dil = tuple(a.get("dilations", [1, 1]))
            pads = tuple(a.get("pads", [0, 0, 0, 0]))
        out = self.define_q(qnode, x.layout, qnode.input[0])
        tx, ty = self.tensors[x.name], self.tensors[out]
        lo, hi = self.act_bounds(act, out)
        self.layers.append(Layer("conv", node.name or out, (x.name,), (out,),
                                 {"stride": list(stride), "dilation": list(dil), "pads": list(pads),
                                  "groups": int(a.get("group", 1)), "act_min": lo, "act_max": hi},
                                 {"weight": np.ascontiguousarray(w, dtype=np.int8), "bias": bias,
                                  "multiplier": int8.requant_multiplier(tx.scale, sw, ty.scale)}))

    def _dense(self, node, w_nk, sw, bias):
        x = self.act_in(node, 0)
        if x.layout != "plain":
            self.fail(node, "the input is a feature map", "Flatten it first")
        qnode, act = self.out_q(node)
        out = self.define_q(qnode, "plain", qnode.input[0])
        tx, ty = self.tensors[x.name], self.tensors[out]
        lo, hi = self.act_bounds(act, out)
        self.layers.append(Layer("dense", node.name or out, (x.name,), (out,),
                                 {"act_min": lo, "act_max": hi},
                                 {"weight": np.ascontiguousarray(w_nk, dtype=np.int8), "bias": bias,
                                  "multiplier": int8.requant_multiplier(tx.scale, sw, ty.scale)}))

    def _op_Gemm(self, node):
        a = _attrs(node)
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            self.fail(node, "transA/alpha/beta other than 0/1/1", "export a plain Linear layer")
        wq, ws, wz, _ = self.weight_in(node, 1)
        w = wq if a.get("transB", 0) else wq.T
        n = w.shape[0]
        self._dense(node, w, self._weight_scales(node, wq, ws, wz, n, 0), self._bias(node, 2, n))

    def _op_MatMul(self, node):
        wq, ws, wz, _ = self.weight_in(node, 1)
        if wq.ndim != 2:
            self.fail(node, "the weight is not a 2-D matrix", "use a Linear layer")
        n = wq.shape[1]
        self._dense(node, wq.T, self._weight_scales(node, wq, ws, wz, n, 1),
                    np.zeros(n, dtype=np.int32))

    def _pool_params(self, node, x, a):
        k = list(a["kernel_shape"])
        if a.get("ceil_mode", 0):
            self.fail(node, "ceil_mode=1", "use floor mode (ceil_mode=0)")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            self.fail(node, "auto_pad is set", "export with explicit pads")
        if x.layout == "nct":
            p = a.get("pads", [0, 0])
            return {"kernel": [1, k[0]], "stride": [1, a.get("strides", [1])[0]],
                    "dilation": [1, a.get("dilations", [1])[0]], "pads": [0, p[0], 0, p[1]]}
        return {"kernel": k, "stride": list(a.get("strides", [1, 1])),
                "dilation": list(a.get("dilations", [1, 1])),
                "pads": list(a.get("pads", [0, 0, 0, 0]))}

    def _requant_lut(self, node, src: str, dst_qnode, layout, onnx_name):
        """Declare dst and, if its quantization differs from src, a requantizing lut."""
        ts = self.tensors[src]
        s = float(np.float32(self.scalar(dst_qnode.input[1])))
        z = int(self.scalar(dst_qnode.input[2]))
        if s == ts.scale and z == ts.zero_point:
            return None
        return int8.requant_table(ts.scale, ts.zero_point, s, z)

    def _op_MaxPool(self, node):
        x = self.act_in(node, 0)
        if x.layout not in ("nchw", "nct"):
            self.fail(node, "input is not a feature map", "pool a [1, C, H, W] or [1, C, T] tensor")
        a = _attrs(node)
        if len(node.output) > 1 and node.output[1]:
            self.fail(node, "the Indices output is used", "use MaxPool without indices")
        params = self._pool_params(node, x, a)
        qnode, _ = self.out_q(node)
        table = self._requant_lut(node, x.name, qnode, x.layout, qnode.input[0])
        if table is None:
            out = self.define_q(qnode, x.layout, qnode.input[0])
            self.layers.append(Layer("maxpool", node.name or out, (x.name,), (out,), params))
            return
        mid = self.new_name(qnode.input[0] + "_max")
        oshape = self.shape(qnode.input[0])
        tx = self.tensors[x.name]
        self.add_tensor(mid, _ours(oshape, x.layout), tx.scale, tx.zero_point)
        self.layers.append(Layer("maxpool", (node.name or mid), (x.name,), (mid,), params))
        out = self.define_q(qnode, x.layout, qnode.input[0])
        self.layers.append(Layer("lut", (node.name or out) + "/requant", (mid,), (out,), {},
                                 {"table": table}))

    def _op_AveragePool(self, node):
        x = self.act_in(node, 0)
        a = _attrs(node)
        params = self._pool_params(node, x, a)
        qnode, _ = self.out_q(node)
        out = self.define_q(qnode, x.layout, qnode.input[0])
        H, W = self.tensors[x.name].shape[:2]
        if params["kernel"] == [H, W] and not any(params["pads"]):
            # onnxruntime's QLinearAveragePool switches to the global-average kernel here
            self.layers.append(Layer("global_avgpool", node.name or out, (x.name,), (out,), {}))
            return
        if params["dilation"] != [1, 1]:
            self.fail(node, "dilated average pooling", "use dilation 1")
        params.pop("dilation")
        params["count_include_pad"] = bool(a.get("count_include_pad", 0))
        self.layers.append(Layer("avgpool", node.name or out, (x.name,), (out,), params))

    def _op_GlobalAveragePool(self, node):
        x = self.act_in(node, 0)
        if x.layout not in ("nchw", "nct"):
            self.fail(node, "input is not a feature map", "pool a [1, C, H, W] or [1, C, T] tensor")
        qnode, _ = self.out_q(node)
        out = self.define_q(qnode, x.layout, qnode.input[0])
        self.layers.append(Layer("global_avgpool", node.name or out, (x.name,), (out,), {}))

    def _op_Add(self, node):
        if node.input[0] not in self.fmap or node.input[1] not in self.fmap:
            self.fail(node, "adds a constant", "only the sum of two activations is supported")
        xa, xb = self.act_in(node, 0), self.act_in(node, 1)
        if xa.onnx_shape != xb.onnx_shape or xa.layout != xb.layout:
            self.fail(node, f"broadcasting {xa.onnx_shape} + {xb.onnx_shape}",
                      "add tensors of equal shape")
        qnode, act = self.out_q(node)
        out = self.define_q(qnode, xa.layout, qnode.input[0])
        lo, hi = self.act_bounds(act, out)
        self.layers.append(Layer("add", node.name or out, (xa.name, xb.name), (out,),
                                 {"act_min": lo, "act_max": hi}))

    def _op_Concat(self, node):
        xs = [self.act_in(node, i) for i in range(len(node.input))]
        layout = xs[0].layout
        if any(x.layout != layout for x in xs):
            self.fail(node, "inputs have different layouts", "concatenate like tensors")
        axis = _attrs(node)["axis"]
        rank = len(xs[0].onnx_shape)
        axis = axis + rank if axis < 0 else axis
        if layout == "nchw":
            ours = {1: 2, 2: 0, 3: 1}.get(axis)
        elif layout == "nct":
            ours = {1: 2, 2: 1}.get(axis)
        else:
            ours = axis - 1 if axis >= 1 else None
        if ours is None:
            self.fail(node, "concatenation along the batch axis", "concatenate along features")
        qnode, _ = self.out_q(node)
        out = self.define_q(qnode, layout, qnode.input[0])
        ty = self.tensors[out]
        arrays = {}
        for i, x in enumerate(xs):
            tx = self.tensors[x.name]
            if (tx.scale, tx.zero_point) != (ty.scale, ty.zero_point):
                arrays[f"table{i}"] = int8.requant_table(tx.scale, tx.zero_point, ty.scale,
                                                         ty.zero_point)
        self.layers.append(Layer("concat", node.name or out, tuple(x.name for x in xs), (out,),
                                 {"axis": ours}, arrays))

    def _relabel(self, node):
        """Flatten / Reshape to a plain vector (restoring ONNX element order)."""
        x = self.act_in(node, 0)
        qnode, _ = self.out_q(node)
        oshape = self.shape(qnode.input[0], node)
        if oshape[0] != 1:
            self.fail(node, "changes the batch dimension", "keep batch 1 in front")
        table = self._requant_lut(node, x.name, qnode, "plain", qnode.input[0])
        src = x.name
        if x.layout in ("nchw", "nct") and len(oshape) not in (2, 3) and False:
            pass
        if x.layout in ("nchw", "nct"):
            h, w, c = self.tensors[src].shape
            if h * w > 1:
                mid = self.new_name(src + "_chw")
                tx = self.tensors[src]
                self.add_tensor(mid, (c, h, w), tx.scale, tx.zero_point)
                self.layers.append(Layer("transpose", mid, (src,), (mid,), {"perm": [2, 0, 1]}))
                src = mid
        target = _ours(oshape, "plain")
        if table is not None:
            mid = self.new_name(qnode.output[0] + "_pre")
            ts = self.tensors[src]
            self.add_tensor(mid, target, ts.scale, ts.zero_point)
            self.layers.append(Layer("reshape", mid, (src,), (mid,), {"shape": list(target)}))
            out = self.define_q(qnode, "plain", qnode.input[0])
            self.layers.append(Layer("lut", out + "/requant", (mid,), (out,), {}, {"table": table}))
            return
        out = self.define_q(qnode, "plain", qnode.input[0])
        self.layers.append(Layer("reshape", node.name or out, (src,), (out,),
                                 {"shape": list(target)}))

    def _op_Flatten(self, node):
        if _attrs(node).get("axis", 1) != 1:
            self.fail(node, "Flatten with axis != 1", "flatten everything after the batch axis")
        self._relabel(node)

    def _op_Reshape(self, node):
        oshape = self.shape(node.output[0], node)
        x = self.act_in(node, 0)
        if len(oshape) > 3 or (x.layout != "plain" and len(oshape) != 2):
            self.fail(node, f"reshape of a {x.layout} tensor to {oshape}",
                      "only flattening a feature map, or reshaping vectors, is supported")
        self._relabel(node)

    def _op_Transpose(self, node):
        x = self.act_in(node, 0)
        perm = list(_attrs(node)["perm"])
        if x.layout != "plain" or perm[0] != 0:
            self.fail(node, "transposes a feature map or the batch axis",
                      "only transposes of plain tensors after the batch axis are supported")
        qnode, _ = self.out_q(node)
        out = self.define_q(qnode, "plain", qnode.input[0])
        self.layers.append(Layer("transpose", node.name or out, (x.name,), (out,),
                                 {"perm": [p - 1 for p in perm[1:]]}))

    def _op_Gather(self, node):
        data, idx = node.input[0], node.input[1]
        if _attrs(node).get("axis", 0) != 0:
            self.fail(node, "gathers along an axis other than 0", "use an embedding lookup")
        if idx not in {gi.name for gi in self.graph_inputs}:
            self.fail(node, "indices do not come straight from a graph input",
                      "feed token indices as a model input")
        qnode, _ = self.out_q(node)
        s = float(np.float32(self.scalar(qnode.input[1])))
        z = int(self.scalar(qnode.input[2]))
        if data in self.wdq:
            tq, ts, tz, _ = self.wdq[data]
            ts_, tz_ = float(np.float32(np.asarray(ts).reshape(-1)[0])), int(np.asarray(tz).reshape(-1)[0])
            if np.asarray(ts).size != 1:
                self.fail(node, "the embedding is quantized per channel", "quantize it per tensor")
            table = tq.astype(np.int8) if (ts_, tz_) == (s, z) else \
                np.take(int8.requant_table(ts_, tz_, s, z), tq.astype(np.int16) + 128)
        elif data in self.init:
            table = int8.quantize(self.init[data].astype(np.float32), s, z)
        else:
            self.fail(node, "the embedding table is not a constant", "use a constant table")
        ishape = self.shape(idx)
        if len(ishape) < 1 or ishape[0] != 1:
            self.fail(node, f"indices shape {ishape}", "use indices of shape [1, L]")
        iname = idx
        if iname not in self.tensors:
            self.add_tensor(iname, _ours(ishape, "plain") or (1,), dtype="int32")
            self.inputs.append(iname)
            self.input_layout = "plain"
        out = self.define_q(qnode, "plain", qnode.input[0])
        self.layers.append(Layer("gather", node.name or out, (iname,), (out,), {},
                                 {"table": np.ascontiguousarray(table, dtype=np.int8)}))

    def _op_Softmax(self, node):
        x = self.act_in(node, 0)
        a = _attrs(node)
        rank = len(x.onnx_shape)
        if a.get("axis", -1) not in (-1, rank - 1) or x.layout != "plain":
            self.fail(node, "softmax not over the last axis of a vector", "end with Softmax(axis=-1)")
        out_f = node.output[0]
        # the final softmax runs in float: skip its Q -> DQ and expose the float result
        cons = self.consumers.get(out_f, [])
        final = out_f
        if len(cons) == 1 and cons[0].op_type == "QuantizeLinear":
            self.done.add(id(cons[0]))
            dqs = self.consumers.get(cons[0].output[0], [])
            if len(dqs) == 1 and dqs[0].op_type == "DequantizeLinear":
                self.done.add(id(dqs[0]))
                final = dqs[0].output[0]
        if final not in self.graph_outputs:
            self.fail(node, "Softmax is not the last operator", "lanthorn supports a final softmax only")
        tx = self.tensors[x.name]
        self.add_tensor(final, tx.shape, dtype="float32")
        self.layers.append(Layer("softmax", node.name or final, (x.name,), (final,)))

    def _unary_lut(self, node):
        x = self.act_in(node, 0)
        qnode, _ = self.out_q(node)
        out = self.define_q(qnode, x.layout, qnode.input[0])
        table = self._ort_table(node, self.tensors[x.name], self.tensors[out])
        self.layers.append(Layer("lut", node.name or out, (x.name,), (out,), {}, {"table": table}))

    def _ort_table(self, node, tx: Tensor, ty: Tensor) -> np.ndarray:
        """Run onnxruntime on DQ -> node -> Q over all 256 int8 inputs: the exact table."""
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
        inits = [numpy_helper.from_array(np.array(tx.scale, np.float32), "xs"),
                 numpy_helper.from_array(np.array(tx.zero_point, np.int8), "xz"),
                 numpy_helper.from_array(np.array(ty.scale, np.float32), "ys"),
                 numpy_helper.from_array(np.array(ty.zero_point, np.int8), "yz")]
        extra = []
        for i in node.input[1:]:
            if i and i in self.init:
                inits.append(numpy_helper.from_array(self.init[i], i))
            extra.append(i)
        op = helper.make_node(node.op_type, ["xf"] + extra, ["yf"], domain=node.domain or "")
        op.attribute.extend(node.attribute)
        g = helper.make_graph(
            [helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]), op,
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["yq"])],
            "lut", [helper.make_tensor_value_info("xq", TensorProto.INT8, [256])],
            [helper.make_tensor_value_info("yq", TensorProto.INT8, [256])], inits)
        m = helper.make_model(g, opset_imports=list(self.model.opset_import))
        m.ir_version = self.model.ir_version
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return sess.run(None, {"xq": np.arange(-128, 128, dtype=np.int8)})[0].astype(np.int8)


#: ONNX nodes lanthorn turns into int8 layers with its own arithmetic (elementwise ones
#: become tables computed by onnxruntime itself, so they match whatever it runs)
INT8_COMPUTED = {"Conv", "Gemm", "MatMul", "Add", "AveragePool", "GlobalAveragePool"}
DYNAMIC_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
               "DynamicQuantizeLSTM", "MatMulIntegerToFloat"}
RECURRENT_OPS = {"GRU", "LSTM", "RNN", "DynamicQuantizeLSTM"}


def _refuse_unsupported_kinds(model, source: str) -> None:
    """Name the real cause before the node-by-node conversion trips over a symptom (the
    Transpose in front of an LSTM, the MatMulInteger of dynamic quantization)."""
    ops = {n.op_type: n for n in model.graph.node}
    rec = sorted(RECURRENT_OPS & set(ops))
    if rec:
        node = ops[rec[0]]
        raise ImportError_(f"{source}: node {node.name or node.output[0]!r} is a recurrent "
                           f"layer ({rec[0]}), which lanthorn's int8 engine does not run; use "
                           f"1-D convolutions over the window (as the temperament model does)")
    if DYNAMIC_OPS & set(ops):
        raise ImportError_(f"{source}: dynamic quantization is not supported (the model has "
                           f"{', '.join(sorted(DYNAMIC_OPS & set(ops)))}): use quantize_static "
                           f"(QDQ) or 'lanthorn quantize'")
    qop = sorted(o for o in ops if o.startswith("QLinear") or o == "QGemm")
    if qop:
        raise ImportError_(f"{source} is in onnxruntime's QOperator format ({qop[0]}): "
                           f"quantize it with quant_format=QuantFormat.QDQ")
    if "QuantizeLinear" not in ops:
        raise ImportError_(f"{source} is a float model; quantize it first "
                           f"(lanthorn quantize, or onnxruntime quantize_static with QDQ)")


def _refuse_float_nodes(model, source: str) -> None:
    """lanthorn computes every node in int8; where onnxruntime keeps a node in float (a
    tensor read by two operators, a residual Add or a branch Concat, stops its QDQ fusion,
    even with DedicatedQDQPair), their integers can differ by one on a few elements, so
    such a model is refused instead of imported to differ silently."""
    import onnx
    from lanthorn.quantize.ort_oracle import float_nodes
    named = onnx.ModelProto()
    named.CopyFrom(model)
    for i, n in enumerate(named.graph.node):     # onnxruntime reports nodes by name
        n.name = n.name or f"{n.op_type}#{i}"
    ours = {n.name: n.op_type for n in named.graph.node if n.op_type in INT8_COMPUTED}
    floats = {k: v for k, v in float_nodes(named.SerializeToString()).items() if ours.get(k) == v}
    if floats:
        names = ", ".join(f"{k!r} ({v})" for k, v in list(floats.items())[:4])
        raise ImportError_(f"{source}: onnxruntime runs {names}{' ...' if len(floats) > 4 else ''}"
                           f" in float, not int8 (a tensor read by two operators, e.g. a "
                           f"residual Add or a branch Concat, stops its fusion), so lanthorn's "
                           f"int8 result would differ from onnxruntime's; make each tensor feed "
                           f"one operator (no skip connections or branches)")


def bundle_from_qdq(qdq_model_or_path, labels=(), input_spec=None, card=None,
                    provenance=None) -> Bundle:
    """Convert a QDQ ONNX model (path, bytes or ModelProto) into a :class:`Bundle`.

    ``input_spec`` (InputSpec or dict) describes the float input the device feeds; by
    default it is derived from the model: ``(H, W, C)`` for images, ``(T, C)`` for a
    sensor window, the vector shape otherwise. ``card``/``provenance`` are stored as given.
    """
    import onnx
    if isinstance(qdq_model_or_path, (str, os.PathLike)):
        path = Path(qdq_model_or_path)
        if not path.is_file():
            raise ImportError_(f"{path}: no such ONNX model file")
        with open(path, "rb") as f:
            head = f.read(8)
        if not head:
            raise ImportError_(f"{path} is empty (0 bytes): export the ONNX model again")
        if head == b"LANTHRN\x00":
            raise ImportError_(f"{path} is already a lanthorn bundle, not an ONNX model: "
                               f"push it ('lanthorn push') or look inside ('lanthorn inspect')")
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # protobuf DecodeError and friends
            raise ImportError_(f"{path} is not a readable ONNX model ({exc})") from None
        source = str(path)
    elif isinstance(qdq_model_or_path, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(qdq_model_or_path))
        source = "<model>"
    else:
        model = qdq_model_or_path
        source = model.graph.name or "<model>"
    _refuse_unsupported_kinds(model, source)
    imp = _Importer(model, source)
    graph = imp.run()
    _refuse_float_nodes(model, source)
    if input_spec is None:
        t = graph.tensors[graph.inputs[0]]
        if imp.input_layout == "nct":
            input_spec = InputSpec((t.shape[1], t.shape[2]), window=t.shape[1])
        else:
            input_spec = InputSpec(t.shape, "int32" if t.dtype == "int32" else "float32")
    labels = tuple(labels or ())
    out_t = graph.tensors[graph.outputs[0]]
    if labels and out_t.shape[-1] != len(labels):
        raise ImportError_(f"{source}: {len(labels)} labels given but the model has "
                           f"{out_t.shape[-1]} outputs")
    card = dict(card or {})
    card.setdefault("name", Path(source).stem if source != "<model>" else "model")
    return Bundle(graph, InputSpec.coerce(input_spec), labels, card, dict(provenance or {}),
                  model.SerializeToString(), io=_onnx_io(imp, graph))


def _onnx_io(imp: _Importer, graph: Graph) -> dict:
    """The model's ONNX inputs and outputs (names, shapes with batch, layouts): what a user
    fed onnxruntime is what ``Model.run_onnx`` takes and gives back."""
    ins = []
    for name in graph.inputs:
        onnx_name = imp.model_q_src.get(name, name)
        ins.append({"name": onnx_name, "tensor": name, "shape": list(imp.shape(onnx_name)),
                    "layout": imp.io_layout.get(name, "plain")})
    outs = []
    for onnx_name, name in zip(imp.graph_outputs, graph.outputs):
        q = imp.q.get(name)
        outs.append({"name": onnx_name, "tensor": name, "shape": list(imp.shape(onnx_name)),
                     "layout": q.layout if q is not None else "plain"})
    return {"inputs": ins, "outputs": outs}
