"""Tiny reference models for the engine's exactness tests and for ``lanthorn bench``.

Test and benchmark material only: the production quantization these models go through
lives in :mod:`lanthorn.quantize.qdq`.

Each model is built directly with ``onnx.helper`` (no torch import: fast, deterministic),
saved as float ONNX, then quantized by onnxruntime's own ``quantize_static`` (QDQ,
per-channel, int8 activations and weights; :func:`lanthorn.quantize.qdq.quantize_qdq`) on
seeded random calibration data. That is exactly the path an artist's model takes, minus
the training.

Suite (``ZOO``):
  mlp_25k       MLP 128-128-64-10, ~25k MACs
  mlp_700k      MLP 512-768-384-10, ~700k MACs
  cnn1d_14x50   1-D CNN over a 14-channel, 50-step sensor window (9 classes)
  cnn2d_32      small 2-D CNN on 32x32x3 images, a few million MACs (10 classes)
  char_lm       character-level MLP language-model step: Gather(embedding) of 16
                context characters -> MLP -> next-character logits (96 symbols)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lanthorn.quantize.qdq import quantize_qdq


class Net:
    """A minimal float ONNX graph builder (NCHW, batch 1) with seeded He-initialised weights."""

    def __init__(self, name: str, input_shape, seed: int = 0, input_dtype="float"):
        from onnx import TensorProto, helper
        self.h, self.TP = helper, TensorProto
        self.rng = np.random.default_rng(seed)
        self.name = name
        self.nodes, self.inits = [], []
        self.input_shape = list(input_shape)
        et = TensorProto.FLOAT if input_dtype == "float" else TensorProto.INT64
        self.inputs = [helper.make_tensor_value_info("x", et, self.input_shape)]
        self.cur = "x"
        self.k = 0

    def _name(self, base):
        self.k += 1
        return f"{base}{self.k}"

    def const(self, arr, base="w"):
        from onnx import numpy_helper
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op_type, inputs, **attrs):
        out = self._name(op_type.lower())
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], name=out, **attrs))
        self.cur = out
        return out

    def conv(self, cin, cout, k, stride=1, pad=0, dilation=1, groups=1, dims=2, bias=True, x=None):
        kshape = [k] * dims if isinstance(k, int) else list(k)
        fan_in = cin // groups * int(np.prod(kshape))
        w = self.rng.normal(0, np.sqrt(2 / fan_in), size=[cout, cin // groups] + kshape)
        ins = [x or self.cur, self.const(w.astype(np.float32))]
        if bias:
            ins.append(self.const(self.rng.normal(0, 0.1, cout).astype(np.float32), "b"))
        pads = ([pad] * dims * 2) if isinstance(pad, int) else list(pad)
        return self.op("Conv", ins, kernel_shape=kshape, strides=[stride] * dims if isinstance(stride, int) else list(stride),
                       pads=pads, dilations=[dilation] * dims if isinstance(dilation, int) else list(dilation),
                       group=groups)

    def dense(self, k, n, x=None):
        w = self.rng.normal(0, np.sqrt(2 / k), size=(n, k)).astype(np.float32)
        b = self.rng.normal(0, 0.1, n).astype(np.float32)
        return self.op("Gemm", [x or self.cur, self.const(w), self.const(b, "b")], transB=1)

    def relu(self, x=None):
        return self.op("Relu", [x or self.cur])

    def bn(self, c, x=None):
        """BatchNormalization (eval mode) with seeded statistics, as an exporter writes it."""
        r = self.rng
        stats = [r.uniform(0.5, 1.5, c), r.normal(0, 0.1, c), r.normal(0, 0.1, c),
                 r.uniform(0.5, 1.5, c)]
        ins = [x or self.cur] + [self.const(a.astype(np.float32), base) for a, base in
                                 zip(stats, ("gamma", "beta", "mean", "var"), strict=True)]
        return self.op("BatchNormalization", ins, epsilon=1e-5)

    def model(self, output_shape):
        from onnx import TensorProto
        g = self.h.make_graph(self.nodes, self.name, self.inputs,
                              [self.h.make_tensor_value_info(self.cur, TensorProto.FLOAT,
                                                             None if output_shape is None
                                                             else list(output_shape))],
                              self.inits)
        m = self.h.make_model(g, opset_imports=[self.h.make_opsetid("", 17)],
                              producer_name="lanthorn.tiny_models")
        m.ir_version = 8
        return m


def random_inputs(model, n: int, seed: int = 0, vocab: int | None = None) -> list[dict]:
    """Seeded random inputs for ``model``'s graph inputs (normal floats or token indices)."""
    from onnx import TensorProto
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        feed = {}
        for vi in model.graph.input:
            shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            if vi.type.tensor_type.elem_type == TensorProto.INT64:
                feed[vi.name] = rng.integers(0, vocab or 2, size=shape).astype(np.int64)
            else:
                feed[vi.name] = rng.normal(0, 1, size=shape).astype(np.float32)
        out.append(feed)
    return out


# ------------------------------------------------------------------------ the suite

def mlp(sizes, name, seed=0):
    n = Net(name, [1, sizes[0]], seed)
    for i, (k, m) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        n.dense(k, m)
        if i < len(sizes) - 2:
            n.relu()
    n.op("Softmax", [n.cur], axis=-1)
    return n.model([1, sizes[-1]])


def cnn1d(seed=0, channels=14, steps=50, classes=9):
    n = Net("cnn1d_14x50", [1, channels, steps], seed)
    n.conv(channels, 32, 5, pad=2, dims=1)
    n.relu()
    n.op("MaxPool", [n.cur], kernel_shape=[2], strides=[2])
    n.conv(32, 48, 3, pad=1, dims=1)
    n.relu()
    n.conv(48, 48, 3, pad=1, dims=1, groups=48)
    n.relu()
    n.op("GlobalAveragePool", [n.cur])
    n.op("Flatten", [n.cur])
    n.dense(48, 32)
    n.relu()
    n.dense(32, classes)
    n.op("Softmax", [n.cur], axis=-1)
    return n.model([1, classes])


def cnn2d(seed=0, classes=10):
    # A straight chain on purpose: a tensor read by two operators (a residual Add) makes
    # onnxruntime 1.2x-1.3x run the neighbouring node groups in float (measured), and then
    # no int8 engine can reproduce its integers exactly. Add/Concat are tested on their own.
    n = Net("cnn2d_32", [1, 3, 32, 32], seed)
    n.conv(3, 16, 3, pad=1)
    n.relu()
    n.conv(16, 32, 3, stride=2, pad=1)  # 16x16
    n.relu()
    n.conv(32, 32, 3, pad=1, groups=32)  # depthwise
    n.relu()
    n.conv(32, 32, 1)  # pointwise
    n.relu()
    n.op("MaxPool", [n.cur], kernel_shape=[2, 2], strides=[2, 2])       # 8x8
    n.conv(32, 64, 3, pad=1)
    n.relu()
    n.op("AveragePool", [n.cur], kernel_shape=[2, 2], strides=[2, 2])   # 4x4
    n.op("Flatten", [n.cur])
    n.dense(64 * 16, 64)
    n.relu()
    n.dense(64, classes)
    n.op("Softmax", [n.cur], axis=-1)
    return n.model([1, classes])


def char_lm(seed=0, vocab=96, context=16, dim=24, hidden=256):
    n = Net("char_lm", [1, context], seed, input_dtype="int64")
    emb = n.const(n.rng.normal(0, 1, (vocab, dim)).astype(np.float32), "emb")
    n.op("Gather", [emb, "x"], axis=0)
    n.op("Flatten", [n.cur])
    n.dense(context * dim, hidden)
    n.relu()
    n.dense(hidden, vocab)
    n.op("Softmax", [n.cur], axis=-1)
    return n.model([1, vocab])


ZOO = {
    "mlp_25k": lambda seed=0: (mlp([128, 128, 64, 10], "mlp_25k", seed), None),
    "mlp_700k": lambda seed=0: (mlp([512, 768, 384, 10], "mlp_700k", seed), None),
    "cnn1d_14x50": lambda seed=0: (cnn1d(seed), None),
    "cnn2d_32": lambda seed=0: (cnn2d(seed), None),
    "char_lm": lambda seed=0: (char_lm(seed), 96),
}


def build(name: str, directory, seed: int = 0, calib: int = 16) -> tuple[Path, Path]:
    """Build zoo model ``name`` in ``directory``: returns (float_path, qdq_path)."""
    import onnx
    if name not in ZOO:
        raise KeyError(f"unknown zoo model {name!r}; choose from {', '.join(ZOO)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model, vocab = ZOO[name](seed)
    fpath = directory / f"{name}.float.onnx"
    onnx.save(model, str(fpath))
    qpath = quantize_qdq(fpath, directory / f"{name}.qdq.onnx",
                         random_inputs(model, calib, seed + 1, vocab))
    return fpath, qpath
