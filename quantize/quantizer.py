"""Float ONNX → int8 ``.lanthorn`` bundle: check, (prune), bias-correct, calibrate, import.

The steps, in the order :func:`quantize_model` runs them:

1. :func:`refuse_unsupported_model` refuses, before any work, what the int8 engine cannot
   run: an unsupported operator (naming the node, the operator and what to use instead), a
   dynamic or batched input shape, an already-quantized model.
2. onnxruntime's own pre-processing (``quant_pre_process``) folds BatchNormalization into
   the convolutions and drops Dropout/Identity, as onnxruntime recommends before
   quantizing; :mod:`~lanthorn.quantize.float_rewrites` folds the remaining BatchNorms
   (after Gemm/MatMul, or standalone as a per-channel layer) and keeps HardSwish one op.
3. Optional pruning (:mod:`lanthorn.quantize.prune`).
4. Bias correction (:func:`bias_correct`): per-channel int8 rounding of the weights shifts
   each output's mean by ``E[(W - Wq) x]``; we fold that expected error into the float bias,
   so the quantized layer's output has the float layer's mean again.
5. Calibration and quantization by onnxruntime's ``quantize_static`` (QDQ, per-channel
   symmetric int8 weights with reduce_range, int8 activations, the chosen
   :mod:`~lanthorn.quantize.calibrate` method), through ``qdq.quantize_qdq``, the
   one quantize_static call in lanthorn.
6. ``bundle_from_qdq`` turns the QDQ model into the int8 graph and keeps it as the twin.
7. Evaluation on the held-out sessions: the float model under onnxruntime against the
   bundle under lanthorn's own engine (what the device will run), plus the per-layer error
   between the float and the quantized activations (onnxruntime's qdq_loss_debug).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lanthorn.device.engine.graph import graph_macs
from lanthorn.errors import UserError
from lanthorn.quantize import quality
from lanthorn.quantize.calibrate import (
    DEFAULT_CALIBRATION_WINDOWS,
    METHODS,
    ModelData,
    compute_ranges,
    load_model_data,
    ort_method,
)
from lanthorn.quantize.qdq_import import UNARY_LUT_OPS

#: Float operators lanthorn quantizes (each becomes, or fuses into, an int8 layer).
ENGINE_OPS = {"Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "Add",
              "Mul", "Concat", "Flatten", "Reshape", "Transpose", "Gather", "Softmax"} | UNARY_LUT_OPS
#: Recurrent layers: refused first, by name, before the Shape/Gather plumbing an exporter
#: puts in front of them can be blamed
RECURRENT_OPS = ("LSTM", "GRU", "RNN")
#: Operators onnxruntime's pre-processing removes or folds away before quantization.
FOLDED_OPS = {"BatchNormalization", "Dropout", "Identity", "Constant"}

_INSTEAD = {
    "ReduceMean": "use GlobalAveragePool over the time/space axes instead",
    "Sub": "fold the constant into the previous layer's bias before export",
    "Div": "fold the constant into the neighbouring Conv/Gemm weights before export",
    "LayerNormalization": "use BatchNorm (folded into the Conv) instead",
    "Resize": "use strided Conv or pooling instead",
    "Pad": "use the Conv's own pads attribute instead",
    "Squeeze": "use Flatten or Reshape with a constant shape instead",
    "Unsqueeze": "use Flatten or Reshape with a constant shape instead",
    "ConvTranspose": "use Conv (the engine has no transposed convolution)",
}


class UnsupportedModelError(UserError):
    """The float model uses something the int8 engine cannot run."""


# --------------------------------------------------------------------------- 1. refusal

def load_onnx(path_or_model):
    """(ModelProto, source name) from a path, bytes or ModelProto, with a clear error."""
    import onnx
    if isinstance(path_or_model, (str, Path)):
        path = Path(path_or_model)
        if not path.is_file():
            raise UserError(f"{path}: no such ONNX model file")
        try:
            return onnx.load(str(path)), str(path)
        except Exception as exc:  # protobuf DecodeError and friends
            raise UserError(f"{path} is not a readable ONNX model ({exc})") from None
    if isinstance(path_or_model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(path_or_model)), "<model>"
    return path_or_model, path_or_model.graph.name or "<model>"


def refuse_unsupported_model(model, source: str = "<model>") -> None:
    """Refuse a model the engine cannot run, naming node, operator and what to do instead.

    Runs on the raw float model before any calibration, pruning or file writing."""
    from onnx import TensorProto
    where = f"{source}: "
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul")
           for n in model.graph.node):
        raise UnsupportedModelError(where + "this model is already quantized; import it with "
                                    "'lanthorn import' instead of quantizing it again")
    for d in model.opset_import:
        if d.domain not in ("", "ai.onnx"):
            raise UnsupportedModelError(where + f"the model uses operators from domain "
                                        f"{d.domain!r}; export it with standard ONNX operators")
    init = {t.name for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    outputs = {o.name for o in model.graph.output}
    _refuse_recurrent(model, where)
    _refuse_constant_operands(model, where, init, producer)
    for node in model.graph.node:
        name = node.name or node.output[0]
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedModelError(where + f"node {name!r} ({node.domain}.{op}) is a custom "
                                        f"operator; export with standard ONNX operators")
        if op not in ENGINE_OPS and op not in FOLDED_OPS:
            todo = _INSTEAD.get(op, "replace it with one of the supported operators")
            raise UnsupportedModelError(
                where + f"node {name!r} uses operator {op}, which lanthorn's int8 engine does "
                f"not run; {todo}. Supported: {', '.join(sorted(ENGINE_OPS - UNARY_LUT_OPS))} "
                f"and elementwise activations ({', '.join(sorted(UNARY_LUT_OPS))})")
        if op == "Softmax" and node.output[0] not in outputs:
            raise UnsupportedModelError(where + f"node {name!r} (Softmax) is not the model's "
                                        f"output; the engine runs softmax only as the last layer")
        if op == "Reshape" and node.input[1] not in init and (
                producer.get(node.input[1]) is None
                or producer[node.input[1]].op_type != "Constant"):
            raise UnsupportedModelError(where + f"node {name!r} (Reshape) takes a computed "
                                        f"shape; export with a constant target shape (or use "
                                        f"Flatten)")
    inputs = [i for i in model.graph.input if i.name not in init]
    for vi in inputs:
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tt.shape.dim]
        if any(not isinstance(d, int) or d <= 0 for d in dims):
            raise UnsupportedModelError(
                where + f"input {vi.name!r} has a dynamic shape {dims}; lanthorn runs fixed "
                f"shapes with batch 1: export with a fixed input shape (torch.onnx.export "
                f"without dynamic_axes) and quantize again")
        if len(dims) >= 2 and dims[0] != 1:
            raise UnsupportedModelError(where + f"input {vi.name!r} has batch size {dims[0]}; "
                                        f"export the model with batch size 1")
        if tt.elem_type not in (TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32):
            raise UnsupportedModelError(where + f"input {vi.name!r} is not float32; export "
                                        f"the float model (lanthorn quantizes it)")


def _refuse_constant_operands(model, where: str, init, producer) -> None:
    """Add and Mul run on two activations; a constant operand belongs in a layer's weights."""
    for node in model.graph.node:
        if node.op_type in ("Mul", "Add") and any(
                i in init or (i in producer and producer[i].op_type == "Constant")
                for i in node.input):
            raise UnsupportedModelError(
                where + f"node {node.name or node.output[0]!r} ({node.op_type}) takes a "
                f"constant; fold it into the neighbouring Conv/Gemm weights or bias before "
                f"export ({node.op_type} of two activations runs)")


def _refuse_recurrent(model, where: str) -> None:
    for node in model.graph.node:
        if node.op_type in RECURRENT_OPS:
            raise UnsupportedModelError(
                where + f"node {node.name or node.output[0]!r} is a recurrent layer "
                f"({node.op_type}), which lanthorn's int8 engine does not run (onnxruntime's "
                f"QDQ path gives no integer reference for GRU/LSTM); use 1-D convolutions over "
                f"the window (Conv) instead")


def preprocess(model):
    """onnxruntime's recommended pre-quantization pass (BatchNorm folding, shape inference),
    then lanthorn's own (:mod:`~lanthorn.quantize.float_rewrites`): BatchNorm after a Gemm
    or MatMul folded, a standalone one as a per-channel layer, HardSwish one table again."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from lanthorn.quantize.float_rewrites import fold_batchnorm, fuse_hardswish
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(src))
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        out = onnx.load(str(dst))
    # keep only the author's metadata (the pre-processor adds a marker of its own)
    keep = [(p.key, p.value) for p in out.metadata_props if p.key != "onnx.quant.pre_process"]
    del out.metadata_props[:]
    for k, v in keep:
        p = out.metadata_props.add()
        p.key, p.value = k, v
    return fuse_hardswish(fold_batchnorm(out))


# --------------------------------------------------------------------------- 4. bias correction

def _weight_nodes(model):
    """Conv/Gemm nodes with constant weights: (node, weight name)."""
    init = {t.name for t in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 1 and n.input[1] in init:
            out.append(n)
    return out


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def dequantized_weights(qdq_model) -> dict[str, np.ndarray]:
    """{compute node name: float weights as the int8 model sees them (W_q * scale)}."""
    from onnx import numpy_helper
    init = {t.name: numpy_helper.to_array(t) for t in qdq_model.graph.initializer}
    dq = {n.output[0]: n for n in qdq_model.graph.node if n.op_type == "DequantizeLinear"}
    out = {}
    for n in qdq_model.graph.node:
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 1 and n.input[1] in dq:
            d = dq[n.input[1]]
            if d.input[0] not in init:
                continue
            q = init[d.input[0]].astype(np.float32)
            s = init[d.input[1]].astype(np.float32)
            z = init[d.input[2]].astype(np.float32) if len(d.input) > 2 else np.float32(0)
            axis = _attrs(d).get("axis", 1)
            shape = [1] * q.ndim
            if s.ndim:
                shape[axis] = -1
            out[n.name] = (q - z.reshape(shape)) * s.reshape(shape)
    return out


def _intermediates(model, names, feeds) -> dict[str, np.ndarray]:
    """Run the float model and return the mean over windows of tensors ``names``."""
    import onnx
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sums, n = {}, 0
    for feed in feeds:
        for name, v in zip(names, sess.run(list(names), feed), strict=True):
            sums[name] = sums.get(name, 0.0) + v.astype(np.float64)
        n += 1
    return {k: (v / max(n, 1)).astype(np.float32) for k, v in sums.items()}


def bias_correct(model, data: ModelData, max_windows: int = 128):
    """Fold the expected weight-rounding error ``E[(W - Wq) x]`` into each float bias.

    ``Wq`` comes from onnxruntime itself (a weight-only pass of the same quantizer with
    the same options), so the correction matches the weights the bundle will hold. ``E[x]``
    is the mean float input of the layer over calibration windows; because convolution is
    linear, ``E[conv(x, W - Wq)] = conv(E[x], W - Wq)``, averaged over output positions
    (padding included, as the engine sees it). Returns (corrected model, {node: |shift|}).
    """
    import onnx
    from onnx import numpy_helper
    nodes = _weight_nodes(model)
    if not nodes:
        return model, {}
    wq = _rounded_weights(model, data)
    rows = data.calib_x[np.linspace(0, len(data.calib_x) - 1, min(max_windows, len(data.calib_x))).astype(int)]
    means = _intermediates(model, sorted({n.input[0] for n in nodes}), data.feeds(rows))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {t.name: t for t in out.graph.initializer}
    shifts = {}
    for node in _weight_nodes(out):
        if node.name not in wq:
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        delta = _mean_error(node, w - wq[node.name], means[node.input[0]])
        if delta is not None and _fold_into_bias(out, inits, node, delta):
            shifts[node.name] = float(np.abs(delta).mean())
    return out, shifts


def _rounded_weights(model, data: ModelData) -> dict[str, np.ndarray]:
    """The weights as the bundle will hold them, by a weight-only pass of the very quantizer
    (one calibration window: activation ranges do not matter here)."""
    import onnx

    from lanthorn.quantize.qdq import quantize_qdq
    with tempfile.TemporaryDirectory() as tmp:
        one = list(data.feeds(data.calib_x[:1]))
        return dequantized_weights(onnx.load(str(quantize_qdq(model, Path(tmp) / "w.onnx", one))))


def _mean_error(node, err: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Per output channel, the mean the rounding error ``err`` adds given the layer's mean
    input ``x``; None where that cannot be known for sure (the bias is then left alone)."""
    a = _attrs(node)
    if node.op_type == "Conv":
        return _conv_mean_error(a, err, x)
    # Gemm: y = alpha * A @ B' + beta * C
    if a.get("transA", 0):
        return None
    e = err.T if a.get("transB", 0) else err          # [K, N]
    return a.get("alpha", 1.0) * (x.reshape(1, -1) @ e)[0] / a.get("beta", 1.0)


def _conv_mean_error(a: dict, err: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """The error convolved with the mean input, padded as the engine pads, averaged over
    output positions (convolution is linear, so this is the mean of the error)."""
    from lanthorn.quantize.determinism import fixed_kernels
    with fixed_kernels():
        return _conv_mean_error_torch(a, err, x)


def _conv_mean_error_torch(a: dict, err: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    import torch
    nd = err.ndim - 2
    pads = list(a.get("pads", [0] * 2 * nd))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None  # SAME_* padding: leave the bias alone rather than guess
    conv = torch.nn.functional.conv1d if nd == 1 else torch.nn.functional.conv2d
    x = torch.from_numpy(x)
    if nd == 1:
        xp = torch.nn.functional.pad(x, (pads[0], pads[1]))
    else:
        xp = torch.nn.functional.pad(x, (pads[1], pads[3], pads[0], pads[2]))
    y = conv(xp, torch.from_numpy(err), stride=a.get("strides", [1] * nd),
             dilation=a.get("dilations", [1] * nd), groups=a.get("group", 1))
    return y.mean(dim=tuple(range(2, y.ndim)))[0].numpy()


def _fold_into_bias(out, inits: dict, node, delta: np.ndarray) -> bool:
    """Add ``delta`` to the node's bias in ``out`` (creating one if it has none); False,
    and nothing changed, for a broadcast bias."""
    from onnx import numpy_helper
    n_out = delta.shape[0]
    if len(node.input) > 2 and node.input[2]:
        b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
        if b.shape != (n_out,):
            return False  # a broadcast bias: unusual, leave it
        inits[node.input[2]].CopyFrom(numpy_helper.from_array((b + delta).astype(np.float32),
                                                               node.input[2]))
    else:
        bname = f"{node.name or node.output[0]}_bias_correction"
        out.graph.initializer.append(numpy_helper.from_array(delta.astype(np.float32), bname))
        while len(node.input) < 3:
            node.input.append("")
        node.input[2] = bname
    return True


# --------------------------------------------------------------------------- 7. evaluation

def run_float(model, data: ModelData, x: np.ndarray) -> np.ndarray:
    """Float model outputs [N, K] under onnxruntime (one window at a time: batch-1 export)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out_name = sess.get_outputs()[0].name
    return np.concatenate([sess.run([out_name], f)[0].reshape(1, -1) for f in data.feeds(x)]) \
        if len(x) else np.zeros((0, 0), np.float32)


def run_bundle(bundle, data: ModelData, x: np.ndarray) -> np.ndarray:
    """Bundle outputs [N, K] under lanthorn's engine, fed as the device feeds it."""
    import warnings

    from lanthorn.device.engine.runtime import load
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "C kernel not built, using numpy": fine here
        model = load(bundle)
    want = tuple(model.input_spec.shape)
    if x.ndim == 3 and x.shape[1:][::-1] == want:          # ONNX [C, T] → device (T, C)
        x = x.transpose(0, 2, 1)
    elif x.ndim == 4 and (x.shape[2], x.shape[3], x.shape[1]) == want:   # [C, H, W] → (H, W, C)
        x = x.transpose(0, 2, 3, 1)
    outs = [np.asarray(model(row), np.float32).reshape(-1) for row in x]
    return np.stack(outs) if outs else np.zeros((0, 0), np.float32)


def layer_errors(float_model, qdq_model, data: ModelData, n: int = 32) -> list[dict]:
    """Per quantized activation: SQNR (dB) of the int8 model against the float model there.

    Uses onnxruntime's own debugging helpers (qdq_loss_debug), which match each QDQ
    activation with its float twin. Ordered as the layers run."""
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as dbg
    rows = data.calib_x[:n] if data.test_x is None or not len(data.test_x) else \
        data.test_x[np.linspace(0, len(data.test_x) - 1, min(n, len(data.test_x))).astype(int)]
    from lanthorn.quantize.calibrate import reader
    with tempfile.TemporaryDirectory() as tmp:
        fp, qp = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        onnx.save(float_model, str(fp))
        onnx.save(qdq_model, str(qp))
        fa, qa = Path(tmp) / "fa.onnx", Path(tmp) / "qa.onnx"
        dbg.modify_model_output_intermediate_tensors(str(fp), str(fa))
        dbg.modify_model_output_intermediate_tensors(str(qp), str(qa))
        f_act = dbg.collect_activations(str(fa), reader(data, rows))
        q_act = dbg.collect_activations(str(qa), reader(data, rows))
        match = dbg.create_activation_matching(q_act, f_act)
        errs = dbg.compute_activation_error(match)
        werr = dbg.compute_weight_error(dbg.create_weight_matching(str(fp), str(qp)))
    producer = {o: nd for nd in float_model.graph.node for o in nd.output}
    weight_of = {nd.name: nd.input[1] for nd in float_model.graph.node
                 if nd.op_type in ("Conv", "Gemm", "MatMul") and len(nd.input) > 1}
    order = {nd.output[0]: i for i, nd in enumerate(float_model.graph.node)}
    out = []
    for name in sorted(errs, key=lambda t: order.get(t, 1 << 30)):
        e = errs[name]
        if "xmodel_err" not in e or name not in producer:
            continue
        nd = producer[name]
        if nd.op_type in ("Relu", "Clip") and nd.input[0] in producer:
            nd = producer[nd.input[0]]            # the fused conv/dense + activation
        if nd.op_type in ("Flatten", "Reshape"):
            continue                              # same numbers as its input
        row = {"tensor": name, "node": nd.name or name, "op": nd.op_type,
               "sqnr_db": round(float(e["xmodel_err"]), 2),
               "local_sqnr_db": round(float(e["qdq_err"]), 2)}
        w = weight_of.get(nd.name)
        if w in werr:
            row["weight_sqnr_db"] = round(float(werr[w]), 2)
        out.append(row)
    return out


# --------------------------------------------------------------------------- the API

@dataclass
class Evaluation:
    """Accuracy of one model variant on the held-out windows."""
    name: str
    float_accuracy: float | None
    int8_accuracy: float | None
    agreement: float | None          # share of windows where float and int8 pick the same class
    float_bytes: int
    bundle_bytes: int
    macs: int
    params: int
    float_confusion: list | None = None
    int8_confusion: list | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d.update(self.extra)
        return d


@dataclass
class QuantizeResult:
    out: Path
    bundle: object
    sha256: str
    calibration: str
    bias_correction: bool
    evaluations: list[Evaluation]     # [unpruned, pruned...]; the last one is what was written
    layers: list[dict]
    bias_shifts: dict
    data: str
    held_out: str
    provenance: dict
    pruning: dict
    seconds: float
    report_dir: Path | None = None

    @property
    def final(self) -> Evaluation:
        """The evaluation of the model that was written (the others were only tried)."""
        return next((e for e in self.evaluations if e.extra.get("written")), self.evaluations[-1])

    def to_json(self) -> dict:
        return {"bundle": self.out.name, "sha256": self.sha256, "calibration": self.calibration,
                "bias_correction": self.bias_correction, "data": self.data,
                "held_out": self.held_out, "models": [e.to_json() for e in self.evaluations],
                "layers": self.layers, "bias_shifts": self.bias_shifts,
                "pruning": self.pruning, "provenance": self.provenance,
                "seconds": round(self.seconds, 2)}


def bundle_sizes(bundle) -> dict:
    """The bundle's size as written, without its QDQ twin (what the engine needs), and
    compressed (zlib, lzma): zeroed weights only pay off once compressed. The compressed
    sizes leave the build record out: it names the CPU, and a figure of a rebuilt model
    must not depend on which one (its written size does not: the record has a fixed size)."""
    import copy
    import lzma
    import zlib
    raw = copy.copy(bundle).to_bytes()   # copies: writing sets the digest of what it writes
    bare, plain = copy.copy(bundle), copy.copy(bundle)
    bare.twin, plain.build = None, {}
    model = plain.to_bytes()
    return {"bundle_bytes": len(raw), "bundle_bytes_without_twin": len(bare.to_bytes()),
            "bundle_zlib_bytes": len(zlib.compress(model, 9)),
            "bundle_lzma_bytes": len(lzma.compress(model, preset=9))}


def float_params(model) -> int:
    return int(sum(np.prod(t.dims) for t in model.graph.initializer))


def _onnx_bytes(model) -> int:
    return len(model.SerializeToString())


def quantize_float(model, data: ModelData, calibration: str = "minmax",
                   bias_correction: bool = True) -> tuple:
    """The quantization core: (qdq ModelProto, bias shifts). ``model`` is pre-processed."""
    import onnx

    from lanthorn.quantize.qdq import quantize_qdq
    method = ort_method(calibration)
    shifts = {}
    if bias_correction:
        model, shifts = bias_correct(model, data)
    with tempfile.TemporaryDirectory() as tmp:
        cache = compute_ranges(model, data, calibration, Path(tmp) / "ranges.json")
        q = quantize_qdq(model, Path(tmp) / "q.onnx", [], calibrate_method=method,
                         calibration_cache=cache)
        qdq = onnx.load(str(q))
    return model, qdq, shifts


def make_bundle(qdq, data: ModelData, card: dict, provenance: dict):
    from lanthorn.device.engine.bundle import InputSpec
    from lanthorn.quantize.qdq_import import bundle_from_qdq
    spec = None
    if data.window is not None:
        scale = tuple(getattr(data.spec, "input_scale", ()) or ())
        spec = InputSpec((data.window, len(data.channels)), channels=data.channels,
                         rate_hz=data.rate_hz, window=data.window, scale=scale)
    labels = data.labels
    out_dim = [d.dim_value for d in qdq.graph.output[0].type.tensor_type.shape.dim]
    if labels and out_dim and out_dim[-1] != len(labels):
        labels = ()  # a foreign model whose outputs are not the dataset's classes
    return bundle_from_qdq(qdq, labels=labels, input_spec=spec, card=card, provenance=provenance,
                           source=card.get("source_model"))


def evaluate(name, float_model, bundle, data: ModelData) -> Evaluation:
    from lanthorn.quantize.metrics import accuracy, confusion
    fo = run_float(float_model, data, data.test_x)
    qo = run_bundle(bundle, data, data.test_x)
    fp, qp = fo.argmax(1), qo.argmax(1)
    fa = qa = fc = qc = None
    if data.test_y is not None and len(data.test_y):
        k = max(fo.shape[1], int(data.test_y.max()) + 1)
        fa, qa = accuracy(data.test_y, fp), accuracy(data.test_y, qp)
        fc, qc = confusion(data.test_y, fp, k).tolist(), confusion(data.test_y, qp, k).tolist()
    return Evaluation(name, fa, qa, float(np.mean(fp == qp)) if len(fp) else None,
                      _onnx_bytes(float_model), len(bundle.to_bytes()), graph_macs(bundle.graph),
                      float_params(float_model), fc, qc)


def quantize_model(onnx_path, data_dir, out, *, calibration: str = "minmax",
                   prune_channels: float = 0.0, prune_sparsity: float = 0.0,
                   checkpoint=None, report_dir=None, bias_correction: bool = True,
                   n_calib: int | None = None, name: str | None = None,
                   finetune_epochs: int = 20, seed: int = 0, sweep=(),
                   log=print, signing_key=None, force: bool = False,
                   enforce: bool = False, gesture_moods: dict | None = None) -> QuantizeResult:
    """Quantize (and optionally prune) a float ONNX model into a ``.lanthorn`` bundle.

    ``data_dir``: the dataset folder (or an .npz of inputs) for calibration and held-out
    evaluation. ``prune_channels``: fraction of conv channels to remove (structured);
    ``prune_sparsity``: fraction of weights to zero (unstructured). ``checkpoint``: the .pt
    pruning fine-tunes from. ``sweep``: further channel fractions to try (evaluated for the
    report, not written). ``report_dir``: write report.md, report.json and plots there.
    ``signing_key``: an Ed25519 private key (:mod:`lanthorn.device.engine.signing`) that signs the
    bundle. Returns the figures; writes ``out`` atomically.

    Quality (:mod:`lanthorn.quantize.quality`): a model trained by ``lanthorn train`` says
    which sessions it trained on; scoring it on any of them is refused before any work.
    The gates (near chance, an int8 drop beyond the limit, a held-out split missing a class)
    always go into the card's ``quality``; with ``enforce`` (``lanthorn quantize``) a failed
    one raises QualityError after writing the bundle (so it can be inspected) unless ``force``.
    ``gesture_moods`` (``--mood``) may name only the model's labels."""
    t0 = time.perf_counter()
    _check_options(calibration, prune_channels, prune_sparsity, sweep, checkpoint)
    model, source = load_onnx(onnx_path)
    refuse_unsupported_model(model, source)                           # before any work
    _check_moods(model, gesture_moods or {})
    out = _bundle_path(out)
    data, training = _scoring_data(model, data_dir, n_calib, force, log)
    source_bytes = _onnx_bytes(model)
    model = preprocess(model)
    variants = _Variants(data, calibration, bias_correction, name or Path(str(out)).stem,
                         Path(source).name, log)
    unpruned = chosen = variants.quantize("unpruned", model)
    unpruned.evaluation.float_bytes = source_bytes   # the file the artist has, as 'train' reported it
    pruning = {}
    if prune_channels > 0 or prune_sparsity > 0 or sweep:
        chosen, pruning = variants.pruned(model, unpruned, (float(prune_channels), float(prune_sparsity)),
                                          sweep, checkpoint, finetune_epochs, seed)
    chosen.evaluation.extra["written"] = True
    checks = quality_gates(chosen.evaluation, data, calibration)
    if enforce and calibration != "minmax" and data.test_y is not None and len(data.test_y):
        checks.append(_calibration_gate(model, data, calibration, bias_correction,
                                        unpruned.evaluation, log))
    if gesture_moods:   # what the artist says the model's gestures evoke (behaviour.temperament_for)
        chosen.bundle.card["temperament"] = {"gesture_moods": gesture_moods}
    chosen.bundle.card["quality"] = {"training": training or None,
                                     "gates": [g.to_json() for g in checks],
                                     "forced": bool(force and quality.failures(checks))}
    result = _write(chosen, out, signing_key, variants, pruning, log, release_check=enforce)
    result.seconds = time.perf_counter() - t0
    if report_dir is not None:
        from lanthorn.quantize.report import write_report
        result.report_dir = Path(report_dir)
        write_report(result, data, report_dir)
        log(f"report: {Path(report_dir) / 'report.md'}")
    if enforce:
        _enforce(checks, training, force, out, log)
    return result


def _enforce(checks, training, force, out, log) -> None:
    """quantize's gates, with train's recall gate: a gesture lost stays lost after int8."""
    recall = [g for g in (training or {}).get("gates") or [] if g.get("name") == "recall"]
    quality.enforce(checks + recall, force, log, what=f"{out} was written but is not fit to push: ")


def _check_moods(model, moods: dict) -> None:
    """``--mood`` may name only gestures the model knows (a typo would silently do nothing
    on the piece)."""
    from lanthorn.quantize.dataspec import spec_from_onnx

    spec = spec_from_onnx(model)
    labels = list(spec.labels) if spec is not None else []
    unknown = [g for g in moods if labels and g not in labels]
    if unknown:
        raise UserError(f"--mood names {', '.join(repr(g) for g in unknown)}, which this model "
                        f"does not recognise (its labels: {', '.join(labels)})")


def _scoring_data(model, data_dir, n_calib, force, log):
    """The calibration and held-out data, and what ``train`` recorded: scoring a model on
    the sessions it trained on is refused here, before any work."""
    data = load_model_data(data_dir, model, n_calib=n_calib or DEFAULT_CALIBRATION_WINDOWS)
    log(f"dataset {data.description}")
    training = training_record(model)
    check_no_leak(training, data, force, log)
    return data, training


def _check_options(calibration, prune_channels, prune_sparsity, sweep, checkpoint) -> None:
    if calibration not in METHODS:
        raise UserError(f"unknown calibration method {calibration!r}; choose {', '.join(METHODS)}")
    for label, f in (("--prune-channels", prune_channels), ("--prune-sparsity", prune_sparsity),
                     *(("--sweep", f) for f in sweep)):
        if not (0.0 <= float(f) < 1.0):
            raise UserError(f"{label} must be a fraction in [0, 1), not {f}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise UserError(f"{checkpoint}: no such checkpoint file")


def _bundle_path(out) -> Path:
    """``--out`` as a bundle file whose folder exists (a folder given by mistake is refused)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the bundle's file name (e.g. "
                        f"{out / 'model.lanthorn'})")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class _Variant:
    """One quantized variant of the model (unpruned, or one pruning) and its figures."""

    fixed: object  # the float model with bias correction applied (what the twin quantizes)
    qdq: object
    shifts: dict
    bundle: object
    evaluation: Evaluation


class _Variants:
    """Quantizes and evaluates each variant ``quantize_model`` tries, in the order tried;
    ``evaluations`` is the report's table."""

    def __init__(self, data: ModelData, calibration, bias_correction, stem, source_name, log):
        self.data, self.calibration, self.bias_correction = data, calibration, bias_correction
        self.stem, self.source_name, self.log = stem, source_name, log
        self.evaluations: list[Evaluation] = []

    def quantize(self, label, fmodel, extra_card=None) -> _Variant:
        data = self.data
        fixed, qdq, shifts = quantize_float(fmodel, data, self.calibration, self.bias_correction)
        card = {"name": self.stem, "variant": label, "calibration": self.calibration,
                "bias_correction": bool(self.bias_correction), "quantizer": _versions(),
                "source_model": self.source_name, "data": data.description,
                **(extra_card or {})}
        bundle = make_bundle(qdq, data, card, data.provenance)
        ev = evaluate(label, fmodel, bundle, data)
        if ev.float_accuracy is not None:
            bundle.card.update({"held_out": data.held_out,
                                "accuracy_float": round(ev.float_accuracy, 4),
                                "accuracy_int8": round(ev.int8_accuracy, 4)})
        bundle.card["macs"] = ev.macs
        ev.extra.update(bundle_sizes(bundle))
        ev.bundle_bytes = ev.extra.pop("bundle_bytes")
        self.log(f"{label}: {_fmt(ev)}")
        self.evaluations.append(ev)
        return _Variant(fixed, qdq, shifts, bundle, ev)

    def pruned(self, model, unpruned: _Variant, wanted, sweep, checkpoint, epochs, seed):
        """Prune, fine-tune and quantize the wanted (channels, sparsity) and each sweep fraction;
        the wanted variant (``unpruned`` when it is (0, 0)) and its pruning record. The
        caller marks the one it writes."""
        from lanthorn.quantize import prune
        chosen, pruning = unpruned, {}
        tries = sorted({(float(f), 0.0) for f in sweep if f > 0} | {wanted} - {(0.0, 0.0)})
        for ch, sp in tries:
            pr = prune.prune_model(model, self.data, channels=ch, sparsity=sp, checkpoint=checkpoint,
                                   epochs=epochs, seed=seed, log=self.log)
            got = self.quantize(pr.label, pr.model, {"pruning": pr.card()})
            got.evaluation.extra.update(pr.figures(got.bundle))
            if (ch, sp) == wanted:
                chosen, pruning = got, pr.to_json()
        return chosen, pruning


def _calibration_gate(model, data, calibration, bias_correction, unpruned: Evaluation, log):
    """Did the chosen calibration method cost accuracy? minmax (never clips) is the yardstick."""
    _, q_mm, _ = quantize_float(model, data, "minmax", bias_correction)
    mm = evaluate("minmax", model, make_bundle(q_mm, data, {}, {}), data)
    lost = 100.0 * (mm.int8_accuracy - unpruned.int8_accuracy)
    passed = lost <= quality.INT8_DROP_POINTS / 2
    gate = quality.Gate(
        "calibration", passed,
        f"--calibration {calibration}: {-lost:+.2f} points against minmax" if passed else
        (f"--calibration {calibration} lost {lost:.2f} points of int8 accuracy against "
         f"minmax ({100 * mm.int8_accuracy:.2f}%): use --calibration minmax"))
    log(gate.message)
    return gate


def _write(chosen: _Variant, out: Path, signing_key, variants: _Variants, pruning,
           log, release_check: bool = False) -> QuantizeResult:
    """Write the chosen variant's bundle (signed if a key is given) and say what was written.
    ``release_check`` (``lanthorn quantize``): engines against onnxruntime's int8 QDQ path
    first, recorded in the card (``make model`` runs its own and keeps the card's bytes)."""
    from lanthorn.device.engine.bundle import write_bundle
    if release_check:
        from lanthorn.quantize.release_check import release_check as check
        check(chosen.bundle, what=str(out), log=log)
    data, evaluations = variants.data, variants.evaluations
    final = chosen.evaluation
    final.extra.update(bundle_sizes(chosen.bundle))         # the card grew: sizes as written
    final.bundle_bytes = final.extra.pop("bundle_bytes")
    sha = write_bundle(chosen.bundle, out, signing_key)
    layers = layer_errors(chosen.fixed, chosen.qdq, data)
    result = QuantizeResult(Path(out), chosen.bundle, sha, variants.calibration,
                            bool(variants.bias_correction), evaluations, layers, chosen.shifts,
                            data.description, data.held_out, data.provenance, pruning, 0.0)
    bare = result.final.extra.get("bundle_bytes_without_twin") or 1
    fb = evaluations[0].float_bytes
    log(f"wrote {out}: {result.final.bundle_bytes:,} bytes ({_than(fb, result.final.bundle_bytes)} "
        f"the float ONNX; {_compared(fb, bare)} without the QDQ twin it carries), "
        f"sha256 {sha[:16]}")
    return result


def training_record(model) -> dict:
    """What ``lanthorn train`` recorded in the ONNX metadata (sessions, gates), or {}."""
    import json

    from lanthorn.quantize.dataspec import TRAINING_KEY
    for p in model.metadata_props:
        if p.key == TRAINING_KEY:
            try:
                rec = json.loads(p.value)
            except ValueError:
                return {}
            return rec if isinstance(rec, dict) else {}
    return {}


def check_no_leak(training: dict, data: ModelData, force: bool, log=print) -> None:
    """Refuse to score a model on sessions it trained on (or, flagged, validated on).

    The sessions come from the model's own metadata, so this holds even when the dataset
    changed since training (sessions added, a split pinned by hand)."""
    if not training or data.splits is None:
        if data.splits is not None:
            log("warning: this model does not say which sessions it was trained on (not made "
                "by 'lanthorn train' of this version), so its held-out score cannot be "
                "checked for sessions it trained on")
        return
    from lanthorn.quantize.dataspec import shares_frames

    held = set(data.splits.sessions["test" if data.held_out == "test" else "val"])
    sessions = training.get("sessions") or {}
    # a take held out in time (blocks of it on both sides) is judged by block
    trained = {h for h in held if any(shares_frames(h, t) for t in sessions.get("train") or [])}
    if trained:
        names = sorted(trained)
        text = (f"{len(names)} of the held-out {data.held_out} sessions were used to train this "
                f"model ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): its score "
                f"there would be memory, not skill; re-train on this dataset (its split is now "
                f"pinned) or quantize with the dataset it was trained on")
        if not force:
            raise quality.QualityError(text + " (--force to score it anyway)")
        log(f"WARNING (--force): {text}")
    validated = {h for h in held if any(shares_frames(h, v) for v in sessions.get("val") or [])}
    if validated:
        log(f"warning: {len(validated)} held-out sessions chose this model's best epoch "
            f"(validation); the score is slightly optimistic")


def quality_gates(ev: Evaluation, data: ModelData, calibration: str) -> list:
    """The gates quantize checks on the model it writes."""
    gates = []
    if data.test_y is not None and len(data.test_y) and data.splits is not None:
        gates += [g for g in quality.class_gates(data.labels, data.splits.train.y, data.test_y,
                                                 data.held_out)]
    n = len(data.labels) or (int(data.test_y.max()) + 1 if data.test_y is not None
                             and len(data.test_y) else 1)
    gates.append(quality.accuracy_gate(ev.int8_accuracy, data.test_y, n,
                                       f"int8 {data.held_out} accuracy"))
    gates.append(quality.int8_gate(ev.float_accuracy, ev.int8_accuracy, calibration))
    return gates


def _compared(float_bytes: int, nbytes: int) -> str:
    """'3.2x smaller' / '1.5x larger': a tiny model's bundle can outweigh its float ONNX
    (the twin and model card are fixed costs), and the wording must not hide it."""
    ratio = float_bytes / max(1, nbytes)
    if abs(ratio - 1.0) < 0.01:
        return "the same size"
    if abs(ratio - 1.0) < 0.1:          # "1.0x smaller" says nothing
        return "about the same size"
    return f"{ratio:.1f}x smaller" if ratio >= 1 else f"{1 / ratio:.1f}x larger"


def _than(float_bytes: int, nbytes: int) -> str:
    """``_compared`` as part of a sentence: "3.2x smaller than", "the same size as"."""
    c = _compared(float_bytes, nbytes)
    return c + (" as" if c.endswith("same size") else " than")


def _fmt(ev: Evaluation) -> str:
    acc = "" if ev.float_accuracy is None else (
        f"float {100 * ev.float_accuracy:.2f}% → int8 {100 * ev.int8_accuracy:.2f}% "
        f"({100 * (ev.int8_accuracy - ev.float_accuracy):+.2f} points), ")
    return (f"{acc}agreement {100 * (ev.agreement or 0):.1f}%, {ev.macs:,} MACs, "
            f"bundle {ev.bundle_bytes:,} bytes (float ONNX {ev.float_bytes:,})")


def _versions() -> str:
    import onnxruntime  # lanthorn's own version is in the bundle's build record
    return f"onnxruntime {onnxruntime.__version__} quantize_static (QDQ, per-channel S8S8, reduce_range)"
