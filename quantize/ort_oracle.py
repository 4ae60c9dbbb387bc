"""onnxruntime as the oracle: its int8 result for a bundle's QDQ twin, in lanthorn's layout.

Used by the exactness tests and by ``lanthorn bench`` (which checks outputs while it
measures), so the one way of reading onnxruntime's integers lives here.

ORT's int8 result is read without changing the graph it optimizes: exposing an
intermediate QuantizeLinear output as a graph output stops onnxruntime's x86 optimizer
from fusing the node group (it then runs it in float). So the raw int8 tensor is either
the model's last QuantizeLinear output recovered exactly from the final DequantizeLinear
(``q = rint(y / s) + z``; exact because ``y = float32(q - z) * s``), or, for a model that
ends in a softmax, the pre-softmax Q output exposed as an extra graph output (the softmax
consumer already blocks nothing there: the QGemm before it is fused either way).
"""
from __future__ import annotations

import numpy as np

from lanthorn.device import int8
from lanthorn.device.graph import raw_outputs


def ort_session(model_bytes):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def ort_raw_int8(bundle, feeds):
    """onnxruntime's int8 values of the bundle's raw output, for each feed (NCHW-shaped)."""
    import onnx
    g = bundle.graph
    raw = raw_outputs(g)[0]
    m = onnx.load_from_string(bundle.twin)
    exposed = raw != g.outputs[0]          # ends in a float softmax: expose the pre-softmax Q
    if exposed:
        m.graph.output.append(onnx.helper.make_tensor_value_info(raw, onnx.TensorProto.INT8, None))
    sess = ort_session(m.SerializeToString())
    t = g.tensors[raw]
    out = []
    for feed in feeds:
        if exposed:
            r = sess.run([raw], feed)[0]
        else:
            y = sess.run(None, feed)[0]
            r = (np.rint(y / np.float32(t.scale)) + t.zero_point).astype(np.int8)
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
    for name, value in zip(g.inputs, feed.values()):
        t = g.tensors[name]
        x = to_ours(value, t.shape)
        out.append(x.astype(np.int32) if t.dtype == "int32" else int8.quantize(x, t.scale, t.zero_point))
    return out


def assert_exact(model, bundle, feeds):
    """Every element of the engine's raw output equals onnxruntime's, for every feed."""
    for i, (feed, ref) in enumerate(zip(feeds, ort_raw_int8(bundle, feeds))):
        ours = model.run_quantized(*quantize_feed(model, feed))
        bad = np.argwhere(ours != ref)
        assert bad.size == 0, (f"feed {i}: {len(bad)} of {ours.size} elements differ, first at "
                               f"{tuple(bad[0])}: ours {ours[tuple(bad[0])]} vs onnxruntime "
                               f"{ref[tuple(bad[0])]}")
