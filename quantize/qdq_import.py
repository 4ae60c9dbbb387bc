"""Convert an onnxruntime-quantized QDQ ONNX model into a lanthorn bundle.

Input: a model as ``onnxruntime.quantization.quantize_static(quant_format=QDQ,
per_channel=True, activation_type=QInt8, weight_type=QInt8)`` writes it: every float
activation is wrapped as ``QuantizeLinear -> DequantizeLinear``, weights are int8
initializers behind a ``DequantizeLinear``, biases int32. Each compute node between DQs and
a Q becomes one fused int8 layer of :mod:`lanthorn.device.engine.graph`, computed with the exact
arithmetic onnxruntime uses for that node group (:mod:`lanthorn.device.engine.int8`), and the QDQ
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

from lanthorn.device.engine import int8
from lanthorn.device.engine.bundle import Bundle, InputSpec
from lanthorn.device.engine.graph import Graph, GraphError, Layer, Tensor
from lanthorn.errors import UserError
from lanthorn.quantize.qdq_onnx import node_attrs, our_shape
from lanthorn.quantize.qdq_ops import OPS, UNARY_LUT_OPS

SPATIAL_OPS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool"}


class ImportError_(UserError):
    """The ONNX model cannot be converted; the message names the node and what to do."""


@dataclass
class _Q:
    """A quantized activation in the lanthorn graph: its tensor and ONNX layout."""
    name: str
    layout: str            # "nchw" | "nct" | "plain"
    onnx_shape: tuple


class _Importer:
    """The state of one conversion and the bookkeeping every operator handler shares.

    The handlers themselves (one per ONNX operator, listed in :data:`qdq_ops.OPS`) are
    plain functions that take this object: it knows the ONNX graph (initializers, shapes,
    consumers), which float tensor stands for which int8 one, and what has been converted
    so far (tensors, layers, inputs)."""

    def __init__(self, model, source: str):
        import onnx
        from onnx import numpy_helper, shape_inference
        self.onnx = onnx
        self.source = source
        self.model = model
        undeclared = onnx.ModelProto()
        undeclared.CopyFrom(model)
        for vi in undeclared.graph.output:    # infer the outputs' shapes, whatever was declared
            vi.type.tensor_type.ClearField("shape")
        try:
            inferred = shape_inference.infer_shapes(undeclared, strict_mode=False)
        except Exception as exc:  # onnx raises several types; all mean "cannot infer shapes"
            raise ImportError_(f"{source}: ONNX shape inference failed ({exc}); export the "
                               f"model with fixed input shapes") from None
        g = inferred.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for n in g.node:  # Constant nodes are initializers in disguise
            if n.op_type == "Constant":
                self.init[n.output[0]] = numpy_helper.to_array(node_attrs(n)["value"])
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

    def activation_qparams(self, qnode) -> tuple[float, int]:
        """(scale as float32, zero point) of an activation's QuantizeLinear, as the int8
        tensor will hold them: one of each per tensor (per-channel numbers are for weights
        only). Every reader of a Q's numbers goes through here, so each gets the same check."""
        s = self.scalar(qnode.input[1])
        z = self.scalar(qnode.input[2]) if len(qnode.input) > 2 else 0
        if isinstance(s, np.ndarray) or isinstance(z, np.ndarray):
            raise ImportError_(f"{self.source}: activation {qnode.output[0]!r} has a scale or zero "
                               f"point per channel; lanthorn needs one per activation tensor "
                               f"(quantize_static writes that; per_channel=True applies to weights)")
        return float(np.float32(s)), int(z)

    def define_q(self, qnode, layout, onnx_shape_name):
        """Declare the quantized tensor produced by QuantizeLinear ``qnode``."""
        s, z = self.activation_qparams(qnode)
        zp_arr = self.init.get(qnode.input[2]) if len(qnode.input) > 2 else None
        if zp_arr is not None and zp_arr.dtype != np.int8:
            raise ImportError_(f"{self.source}: activation {qnode.output[0]!r} is {zp_arr.dtype}; "
                               f"lanthorn needs activation_type=QuantType.QInt8")
        oshape = self.shape(onnx_shape_name)
        name = qnode.output[0]
        self.add_tensor(name, our_shape(oshape, layout), s, z)
        self.q[name] = _Q(name, layout, oshape)
        for other in getattr(self, "pending_alias", ()):
            if self.activation_qparams(other) != (s, z):
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
        a = node_attrs(act)
        lo = a.get("min")
        hi = a.get("max")
        if len(act.input) > 1 and act.input[1]:
            lo = float(self.scalar(act.input[1]))
        if len(act.input) > 2 and act.input[2]:
            hi = float(self.scalar(act.input[2]))
        return int8.act_bounds(t.zero_point, t.scale, lo, hi)

    def requant_table(self, src: str, dst_qnode):
        """The table taking ``src``'s integers to the quantization of QuantizeLinear
        ``dst_qnode``, or None when the two already agree and the integers pass unchanged."""
        ts = self.tensors[src]
        s, z = self.activation_qparams(dst_qnode)
        if s == ts.scale and z == ts.zero_point:
            return None
        return int8.requant_table(ts.scale, ts.zero_point, s, z)

    def input_layout_of(self, name) -> str:
        """The ONNX layout of graph input ``name``: rank 4 is an image; rank 3 is a sensor
        window only if a spatial operator reads it (past its Q -> DQ), else a plain tensor."""
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

    # ---------------------------------------------------------------- main
    def run(self) -> Graph:
        for gi in self.graph_inputs:
            self.shape(gi.name)
        for node in self.nodes:
            if id(node) in self.done:
                continue
            handler = OPS.get(node.op_type)
            if handler is None:
                self._refuse_operator(node)
            handler(self, node)
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

    def _refuse_operator(self, node):
        """No handler in qdq_ops.OPS: say what is supported (this list is prose for the
        user; OPS is what the importer actually accepts)."""
        self.fail(node, "this operator is not supported by lanthorn's int8 engine",
                  "supported: Conv (1-D/2-D, groups), Gemm, MatMul, MaxPool, "
                  "AveragePool, GlobalAveragePool, Add, Mul (of two activations), Concat, Flatten, Reshape, "
                  "Transpose, Gather, Softmax (last), and elementwise activations "
                  f"({', '.join(sorted(UNARY_LUT_OPS))}); replace it in the model")


#: ONNX nodes lanthorn turns into int8 layers with its own arithmetic (elementwise ones
#: become tables computed by onnxruntime itself, so they match whatever it runs)
INT8_COMPUTED = {"Conv", "Gemm", "MatMul", "Add", "Mul", "AveragePool", "GlobalAveragePool"}
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
    """lanthorn computes every node in int8 and its oracle is onnxruntime's int8 QDQ path
    (``session.qdqisint8allowed=1``, the path onnxruntime takes on ARM), where residual Adds
    and branch Concats fuse like any other node group. Where onnxruntime keeps a node in
    float even there, its numbers are float arithmetic no int8 engine reproduces bit for
    bit, so the model is refused, naming the nodes, instead of imported to differ."""
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
                           f" in float, not int8, even on its int8 QDQ path "
                           f"(session.qdqisint8allowed=1): it found no integer kernel for that "
                           f"node group, so lanthorn's int8 result would differ from "
                           f"onnxruntime's; quantize every input and output of the node with "
                           f"quantize_static (QDQ, S8S8)")


def bundle_from_qdq(qdq_model_or_path, labels=(), input_spec=None, card=None,
                    provenance=None, source: str | None = None) -> Bundle:
    """Convert a QDQ ONNX model (path, bytes or ModelProto) into a :class:`Bundle`.

    ``input_spec`` (InputSpec or dict) describes the float input the device feeds; by
    default it is derived from the model: ``(H, W, C)`` for images, ``(T, C)`` for a
    sensor window, the vector shape otherwise. ``card``/``provenance`` are stored as given.
    ``source`` names a ModelProto in refusals (``lanthorn quantize``: the artist's file, not
    the exporter's graph name such as ``main_graph``).
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
        source = source or model.graph.name or "<model>"
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
    for onnx_name, name in zip(imp.graph_outputs, graph.outputs, strict=True):
        q = imp.q.get(name)
        outs.append({"name": onnx_name, "tensor": name, "shape": list(imp.shape(onnx_name)),
                     "layout": q.layout if q is not None else "plain"})
    return {"inputs": ins, "outputs": outs}
