"""A LiteRT (TFLite, XNNPACK) twin of one int8 IR layer, for ``lanthorn bench --kernels``.

LiteRT is an optional peer (``pip install ai-edge-litert``), never a dependency: it is
imported inside these functions, and :func:`available` says why it cannot run. There is
no TensorFlow converter here, so the ``.tflite`` flatbuffer is written directly with the
schema LiteRT ships (``ai_edge_litert.schema_py_generated``): the layer's own int8 weights,
per-channel scales and zero points, one operator. Its outputs are not lanthorn's integers
(TFLite requantizes in fixed point, not float32 like onnxruntime); it is a speed peer only.
"""
from __future__ import annotations

import numpy as np


def available() -> str | None:
    """None when LiteRT can run, else the reason (one line)."""
    import importlib.util
    try:
        found = importlib.util.find_spec("ai_edge_litert.interpreter") is not None
    except ImportError:
        found = False
    return None if found else "LiteRT not installed (pip install ai-edge-litert)"


def _padding(layer, g) -> int | None:
    """TFLite's SAME (0) or VALID (1) when the layer's pads are exactly that, else None."""
    x, y = g.tensors[layer.inputs[0]], g.tensors[layer.outputs[0]]
    k = layer.arrays["weight"].shape[1:3] if "weight" in layer.arrays else layer.params["kernel"]
    s, p = layer.params.get("stride", [1, 1]), list(layer.params.get("pads", [0, 0, 0, 0]))
    if p == [0, 0, 0, 0]:
        return 1
    for axis in (0, 1):
        total = max((y.shape[axis] - 1) * s[axis] + k[axis] - x.shape[axis], 0)
        if [p[axis], p[axis + 2]] != [total // 2, total - total // 2]:
            return None
    return 0


def tflite_model(g) -> bytes:
    """The flatbuffer of ``g``'s single conv / depthwise / maxpool layer (NHWC, batch 1)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb
    layer = g.layers[0]
    pad = _padding(layer, g)
    if len(g.layers) != 1 or pad is None or layer.op not in ("conv", "maxpool"):
        raise ValueError(f"no TFLite twin for {layer.op} with pads {layer.params.get('pads')}")
    buffers = [fb.BufferT()]
    tensors = []

    def tensor(name, shape, ttype, scale, zp, data=None, qdim=0):
        t = fb.TensorT()
        t.name, t.shape, t.type = name, list(shape), ttype
        q = fb.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = list(np.atleast_1d(scale)), list(np.atleast_1d(zp)), qdim
        t.quantization = q
        t.buffer = 0
        if data is not None:
            b = fb.BufferT()
            b.data = np.ascontiguousarray(data).tobytes()
            buffers.append(b)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    X, Y = g.tensors[layer.inputs[0]], g.tensors[layer.outputs[0]]
    xi = tensor("x", (1,) + tuple(X.shape), fb.TensorType.INT8, X.scale, X.zero_point)
    yi = tensor("y", (1,) + tuple(Y.shape), fb.TensorType.INT8, Y.scale, Y.zero_point)
    op = fb.OperatorT()
    st = layer.params.get("stride", [1, 1])
    if layer.op == "maxpool":
        code, opts, kind = fb.BuiltinOperator.MAX_POOL_2D, fb.Pool2DOptionsT(), fb.BuiltinOptions.Pool2DOptions
        opts.filterHeight, opts.filterWidth = layer.params["kernel"]
        ins = [xi]
    else:
        code, opts, kind, ins = _conv(fb, layer, X, Y, tensor)
        ins = [xi] + ins
    opts.padding, opts.strideH, opts.strideW = pad, st[0], st[1]
    op.opcodeIndex, op.inputs, op.outputs = 0, ins, [yi]
    op.builtinOptionsType, op.builtinOptions = kind, opts
    oc = fb.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
    sg = fb.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = tensors, [xi], [yi], [op]
    m = fb.ModelT()
    m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [oc], [sg], buffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _conv(fb, layer, X, Y, tensor):
    """A conv or depthwise layer's TFLite operator code and options, and its weight and bias
    tensors: per-channel weight scales s_w = multiplier * s_out / s_in, bias at s_in * s_w."""
    w = layer.arrays["weight"]                        # [Cout, KH, KW, Cin/groups]
    mult = layer.arrays["multiplier"].astype(np.float64)
    sw = (mult * Y.scale / X.scale).astype(np.float32)
    dw = layer.params.get("groups", 1) > 1
    if dw:
        code, opts, kind = (fb.BuiltinOperator.DEPTHWISE_CONV_2D, fb.DepthwiseConv2DOptionsT(),
                            fb.BuiltinOptions.DepthwiseConv2DOptions)
        opts.depthMultiplier = 1
        w = np.transpose(w, (3, 1, 2, 0))             # [1, KH, KW, C]
    else:
        code, opts, kind = fb.BuiltinOperator.CONV_2D, fb.Conv2DOptionsT(), fb.BuiltinOptions.Conv2DOptions
    opts.dilationHFactor, opts.dilationWFactor = layer.params.get("dilation", [1, 1])
    if layer.params.get("act_min", -128) > -128:
        opts.fusedActivationFunction = fb.ActivationFunctionType.RELU
    zeros = np.zeros(len(sw), np.int64)
    wi = tensor("w", w.shape, fb.TensorType.INT8, sw, zeros, w.astype(np.int8), qdim=3 if dw else 0)
    bi = tensor("b", (len(sw),), fb.TensorType.INT32, (sw * np.float32(X.scale)).astype(np.float32),
                zeros, layer.arrays["bias"].astype(np.int32))
    return code, opts, kind, [wi, bi]


def interpreter(model: bytes, xnnpack: bool = True):
    """One-thread interpreter, tensors allocated; XNNPACK (LiteRT's default delegate) or
    TFLite's builtin kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=model, num_threads=1, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    return it
