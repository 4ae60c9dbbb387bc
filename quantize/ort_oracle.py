"""onnxruntime as the oracle: its int8 result for a bundle's QDQ twin, in lanthorn's layout.

Used by the exactness tests, by ``lanthorn bench`` and by the importer, so the one way of
reading onnxruntime's integers lives here. The oracle is onnxruntime's int8 QDQ path
(:data:`INT8_QDQ_OPTIONS`), the one it takes on ARM: on x86 without that option it runs a
different graph (uint8 rewrites, float islands around tensors with two readers).

The oracle must check the graph a user actually runs. onnxruntime decides per node group
whether to fuse ``DQ -> op -> Q`` into an integer kernel (QLinearConv, QGemm, ...) or to
run the op in float between a DQ and a Q, and anything that makes a tensor visible to a
second reader changes that decision: exposing the pre-softmax int8 tensor as an extra
graph output turned the last QGemm into a float Gemm (measured), so the old oracle
checked a different graph. So:

* a model without a final softmax runs unchanged; its last QuantizeLinear output is
  recovered exactly from the final DequantizeLinear (``q = rint(y / s) + z``; exact
  because ``y = float32(q - z) * s``);
* a model ending in Softmax is cut just after the DequantizeLinear of the pre-softmax
  tensor, which becomes the only graph output: the same shape as above, so the same
  exact recovery. :func:`optimized_ops` then proves that onnxruntime runs every node the
  cut graph keeps with the same kernel as in the full model, or the oracle refuses.
"""
from __future__ import annotations

import numpy as np

from lanthorn.device.engine import int8
from lanthorn.device.engine.graph import raw_outputs

#: onnxruntime ops that compute in float: where one of these survives its QDQ fusions,
#: onnxruntime's numbers are float arithmetic, not the integers lanthorn reproduces
FLOAT_COMPUTE = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "Sum",
                 "AveragePool", "GlobalAveragePool", "FusedConv", "FusedGemm", "FusedMatMul",
                 "NchwcConv"}


#: the session options that make onnxruntime take its int8 QDQ path on any CPU: the path it
#: takes on ARM, where these objects run. On x86 without it, onnxruntime rewrites int8
#: activations to uint8 (``qdq_s8_to_u8``), skips that rewrite for a tensor with two readers
#: (a residual Add, a branch Concat) so those node groups stay in float, and runs the rest
#: with its u8 x s8 AVX2 kernel, whose int16 pair sums saturate for full-range weights
INT8_QDQ_OPTIONS = {"session.qdqisint8allowed": "1"}


def oracle_record() -> dict:
    """What the oracle was, for a bundle's card: onnxruntime's version and its options."""
    import onnxruntime as ort
    return {"onnxruntime": ort.__version__, "options": dict(INT8_QDQ_OPTIONS)}


def _session_options(stock: bool = False):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if not stock:
        for k, v in INT8_QDQ_OPTIONS.items():
            so.add_session_config_entry(k, v)
    return so


def ort_session(model_bytes, stock: bool = False):
    """An onnxruntime session for ``model_bytes``: the int8 QDQ path (the oracle), or with
    ``stock`` the default options a user gets on this CPU."""
    import onnxruntime as ort
    return ort.InferenceSession(model_bytes, _session_options(stock),
                                providers=["CPUExecutionProvider"])


def optimized_ops(model_bytes) -> dict[str, str]:
    """{node name: op type} of the graph onnxruntime really runs for ``model_bytes`` after
    its QDQ fusions (extended optimizations, which is where they happen), Q/DQ left out."""
    import os
    import tempfile

    import onnx
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        so = _session_options()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        m = onnx.load(so.optimized_model_filepath)
    return {n.name: n.op_type for n in m.graph.node
            if n.op_type not in ("QuantizeLinear", "DequantizeLinear")}


def float_nodes(model_bytes) -> dict[str, str]:
    """The compute nodes onnxruntime keeps in float arithmetic (name: op type)."""
    return {k: v for k, v in optimized_ops(model_bytes).items() if v in FLOAT_COMPUTE}


def _cut_before_softmax(m, raw: str):
    """Model ``m`` ending at the float DequantizeLinear of int8 tensor ``raw``."""
    import onnx
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == raw)
    keep_out = dq.output[0]
    consumers: dict[str, list] = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop, todo = set(), [keep_out]
    while todo:
        for n in consumers.get(todo.pop(), []):
            if id(n) not in drop:
                drop.add(id(n))
                todo.extend(n.output)
    cut = onnx.ModelProto()
    cut.CopyFrom(m)
    del cut.graph.node[:]
    cut.graph.node.extend(n for n in m.graph.node if id(n) not in drop)
    del cut.graph.output[:]
    cut.graph.output.append(onnx.helper.make_tensor_value_info(keep_out, onnx.TensorProto.FLOAT,
                                                               None))
    return cut


def oracle_model(bundle) -> bytes:
    """The ONNX graph the oracle runs for ``bundle``: its twin, cut before a final softmax,
    after checking onnxruntime runs every kept node as in the full twin."""
    import onnx
    g = bundle.graph
    raw = raw_outputs(g)[0]
    if raw == g.outputs[0]:
        return bundle.twin
    cut = _cut_before_softmax(onnx.load_from_string(bundle.twin), raw).SerializeToString()
    full, part = optimized_ops(bundle.twin), optimized_ops(cut)
    changed = {k: (full.get(k), v) for k, v in part.items() if full.get(k) != v}
    if changed:
        raise AssertionError(f"the oracle's graph is not the user's: onnxruntime runs {changed} "
                             f"(full model, cut model) differently")
    return cut


def ort_raw_int8(bundle, feeds):
    """onnxruntime's int8 values of the bundle's raw output, for each feed (NCHW-shaped)."""
    g = bundle.graph
    t = g.tensors[raw_outputs(g)[0]]
    sess = ort_session(oracle_model(bundle))
    out = []
    for feed in feeds:
        y = sess.run(None, feed)[0]
        r = int8.quantize(y, t.scale, t.zero_point)    # exact: y is s * (q - z)
        out.append(to_ours(r, t.shape))
    return out


def to_ours(a, shape):
    """An ONNX NCHW / NCT / [1, ...] array in lanthorn's channels-last layout."""
    a = np.asarray(a)
    if a.ndim == 4:
        a = a[0].transpose(1, 2, 0)
    elif a.ndim == 3 and len(shape) == 3:   # [1, C, T] conv1d window -> (1, T, C)
        a = a[0].T[None]
    return a.reshape(shape)


def quantize_feed(model, feed):
    """Our int8 (or int32 index) inputs for an ONNX feed (graph inputs in the same order),
    quantized as ORT's QuantizeLinear does."""
    g = model.graph
    out = []
    for name, value in zip(g.inputs, feed.values(), strict=True):
        t = g.tensors[name]
        x = to_ours(value, t.shape)
        out.append(x.astype(np.int32) if t.dtype == "int32" else int8.quantize(x, t.scale, t.zero_point))
    return out


def engines_vs_ort(bundle, feeds) -> tuple[int, tuple[str, int] | None]:
    """The release check before a bundle is written or shipped: the numpy engine and the one
    ``auto`` picks (the C kernel where built) against onnxruntime on the twin, every feed.
    Returns (elements compared, None), or at the first difference (backend, elements that
    differ) for the caller to refuse with its own words."""
    from lanthorn.device.engine.runtime import load
    refs = ort_raw_int8(bundle, feeds)
    checked = 0
    for backend in ("numpy", "auto"):
        model = load(bundle, backend=backend)
        for feed, ref in zip(feeds, refs, strict=True):
            ours = model.run_quantized(*quantize_feed(model, feed))
            if not np.array_equal(ours, ref):
                return checked, (model.backend, int((ours != ref).sum()))
            checked += ours.size
    return checked, None


def assert_exact(model, bundle, feeds):
    """Every element of the engine's raw output equals onnxruntime's, for every feed."""
    for i, (feed, ref) in enumerate(zip(feeds, ort_raw_int8(bundle, feeds), strict=True)):
        ours = model.run_quantized(*quantize_feed(model, feed))
        bad = np.argwhere(ours != ref)
        assert bad.size == 0, (f"feed {i}: {len(bad)} of {ours.size} elements differ, first at "
                               f"{tuple(bad[0])}: ours {ours[tuple(bad[0])]} vs onnxruntime "
                               f"{ref[tuple(bad[0])]}")
