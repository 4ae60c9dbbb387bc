"""The int8 IR: the small graph of fused int8 layers that every lanthorn engine runs.

This module is the contract between the bundle format (:mod:`lanthorn.device.bundle`), the
numpy reference engine (:mod:`lanthorn.device.engine_ref`, the executable specification),
the C kernel (``firmware/kernel``), the importer and the quantizer. It holds data only:
dataclasses plus the shape rules and checks that every engine relies on. numpy only.

Conventions (batch 1, channels-last, so a conv reads contiguous channel vectors):

* An activation :class:`Tensor` is ``int8`` with a per-tensor ``scale`` (float32) and
  ``zero_point`` (int8): ``real = scale * (q - zero_point)``. Image-like tensors are
  ``(H, W, C)``; a 1-D sensor window is ``(1, T, C)`` (conv1d is conv2d with H = 1);
  vectors are ``(N,)``. A graph input may instead be ``int32`` (indices for ``gather``);
  the only ``float32`` tensor is the output of a final ``softmax``.
* Weights are int8, symmetric (zero point 0), per output channel. Biases are int32 with
  scale ``s_in * s_w[c]`` and zero point 0. ``multiplier`` float32 ``[Cout]`` is the
  requantization scale computed exactly as onnxruntime computes it
  (:func:`lanthorn.device.int8.requant_multiplier`).
* Requantization, for every op that has one, is :func:`lanthorn.device.int8.requantize`:
  ``int32 acc (bias added) -> float32(acc) * multiplier -> clamp -> round half to even ->
  + zero_point -> int8``.
* ``act_min``/``act_max`` (int8, inclusive) are the output clamp: a fused ReLU / ReLU6 /
  Clip already intersected with ``[-128, 127]`` (ReLU with output zero point z is
  ``act_min = z``). Without an activation they are -128 / 127.

Operators (``Layer.op``), with their inputs, ``params`` (JSON-able) and ``arrays`` (numpy):

``conv``
    inputs ``(x,)`` x ``(H, W, Cin)``. arrays: ``weight`` int8 ``[Cout, KH, KW, Cin/groups]``,
    ``bias`` int32 ``[Cout]``, ``multiplier`` float32 ``[Cout]``. params: ``stride``
    ``[sh, sw]``, ``dilation`` ``[dh, dw]``, ``pads`` ``[top, left, bottom, right]``,
    ``groups`` (Cin % groups == 0 and Cout % groups == 0; depthwise is groups == Cin),
    ``act_min``, ``act_max``. Output ``(OH, OW, Cout)`` with
    ``OH = (H + top + bottom - dh*(KH-1) - 1) // sh + 1`` (likewise OW). Output channel
    ``c`` of group ``g = c // (Cout/groups)`` reads input channels
    ``g*Cin/groups ... (g+1)*Cin/groups - 1``. Padded input positions hold the input zero
    point, so they contribute exactly 0 to ``acc = bias[c] + sum (x - zx) * w``.
``dense``
    inputs ``(x,)`` x ``(..., K)`` (usually ``(K,)``). arrays: ``weight`` int8 ``[N, K]``,
    ``bias`` int32 ``[N]``, ``multiplier`` float32 ``[N]``. params: ``act_min``,
    ``act_max``. Output ``(..., N)``: ``acc[n] = bias[n] + sum_k (x[k] - zx) * w[n, k]``,
    applied independently to every leading index (ONNX Gemm / MatMul).
``maxpool``
    inputs ``(x,)`` ``(H, W, C)``. params: ``kernel`` ``[kh, kw]``, ``stride``, ``dilation``,
    ``pads`` (as conv). Max over the window ignoring padded positions (ONNX MaxPool);
    no requantization: output scale and zero point equal the input's (a change of
    quantization after it is a separate ``lut``).
``avgpool``
    inputs ``(x,)``. params: ``kernel``, ``stride``, ``pads``, ``count_include_pad`` (bool).
    Average over the window, requantized as onnxruntime's QLinearAveragePool
    (:func:`lanthorn.device.int8.avgpool_requant`). The divisor is the kernel area when
    ``count_include_pad`` else the number of in-bounds positions.
``global_avgpool``
    inputs ``(x,)`` ``(H, W, C)`` -> ``(1, 1, C)``. Requantized as onnxruntime's
    QLinearGlobalAveragePool (:func:`lanthorn.device.int8.global_avgpool_requant`).
``add``
    inputs ``(a, b)`` with equal shapes (or ``b`` broadcast along leading axes, numpy rules).
    params: ``act_min``, ``act_max``. Requantized as onnxruntime's QLinearAdd
    (:func:`lanthorn.device.int8.qlinear_add`).
``concat``
    inputs ``(x0, x1, ...)``. params: ``axis`` (in the channels-last layout, non-negative).
    Each input whose scale/zero point differ from the output's is first mapped through a
    256-entry table as onnxruntime's QLinearConcat does; arrays: ``table{i}`` int8[256] for
    those inputs (absent when the input is copied unchanged).
``reshape``
    inputs ``(x,)``. params: ``shape``. Relabels the bytes (row-major order unchanged;
    the importer emits ``transpose`` or folds permutations into weights where ONNX's NCHW
    element order differs). Quantization unchanged.
``transpose``
    inputs ``(x,)``. params: ``perm`` (numpy semantics). Quantization unchanged.
``lut``
    inputs ``(x,)``. arrays: ``table`` int8[256]: ``y = table[x + 128]``. Any elementwise
    int8 -> int8 map: sigmoid, tanh, a standalone ReLU, a change of quantization. Built at
    import by evaluating onnxruntime itself on all 256 inputs, so exact by construction.
``gather``
    inputs ``(indices,)`` int32 of any shape S. arrays: ``table`` int8 ``[V, D]``. Output
    ``S + (D,)`` = ``table[indices]`` (negative indices count from the end as in ONNX; out
    of range is an error). Output quantization is the table's.
``softmax``
    inputs ``(x,)`` int8. Final layer only: dequantize, softmax over the last axis in
    float32; output tensor dtype float32 (scale 1, zero point 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Every operator an engine must implement. The bundle loader refuses anything else.
OPS = ("conv", "dense", "maxpool", "avgpool", "global_avgpool", "add", "concat", "reshape",
       "transpose", "lut", "gather", "softmax")

#: Arrays each op must carry (name -> dtype). ``concat`` tables are optional per input.
REQUIRED_ARRAYS = {
    "conv": {"weight": "int8", "bias": "int32", "multiplier": "float32"},
    "dense": {"weight": "int8", "bias": "int32", "multiplier": "float32"},
    "lut": {"table": "int8"},
    "gather": {"table": "int8"},
}

DTYPES = ("int8", "int32", "float32")


class GraphError(ValueError):
    """The graph is inconsistent (the bundle layer turns this into a user-facing error)."""


@dataclass
class Tensor:
    """An activation: name, channels-last shape, dtype and per-tensor quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: float = 1.0
    zero_point: int = 0

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        self.scale = float(np.float32(self.scale))
        self.zero_point = int(self.zero_point)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_json(cls, d: dict) -> "Tensor":
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "int8"),
                   d.get("scale", 1.0), d.get("zero_point", 0))


@dataclass
class Layer:
    """One fused operator. ``params`` are JSON-able scalars/lists, ``arrays`` numpy arrays."""

    op: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.inputs = tuple(self.inputs)
        self.outputs = tuple(self.outputs)


@dataclass
class Graph:
    """Tensors by name, layers in execution order (topologically sorted), graph I/O names."""

    tensors: dict[str, Tensor]
    layers: list[Layer]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def __post_init__(self):
        self.inputs = tuple(self.inputs)
        self.outputs = tuple(self.outputs)

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def validate(self) -> None:
        """Check ops, array dtypes/shapes and every layer's output shape; raise GraphError."""
        produced = set(self.inputs)
        for t in self.tensors.values():
            if t.dtype not in DTYPES:
                raise GraphError(f"tensor {t.name!r} has unsupported dtype {t.dtype!r}")
        for name in self.inputs + self.outputs:
            if name not in self.tensors:
                raise GraphError(f"graph input/output {name!r} is not a declared tensor")
        for layer in self.layers:
            if layer.op not in OPS:
                raise GraphError(f"layer {layer.name!r} uses unknown operator {layer.op!r} "
                                 f"(this lanthorn knows: {', '.join(OPS)})")
            for name in layer.inputs + layer.outputs:
                if name not in self.tensors:
                    raise GraphError(f"layer {layer.name!r} refers to undeclared tensor {name!r}")
            for name in layer.inputs:
                if name not in produced:
                    raise GraphError(f"layer {layer.name!r} reads {name!r} before it is computed")
            for arr, dtype in REQUIRED_ARRAYS.get(layer.op, {}).items():
                a = layer.arrays.get(arr)
                if a is None:
                    raise GraphError(f"layer {layer.name!r} ({layer.op}) lacks array {arr!r}")
                if a.dtype != np.dtype(dtype):
                    raise GraphError(f"layer {layer.name!r}: array {arr!r} is {a.dtype}, "
                                     f"expected {dtype}")
            expected = infer_output_shape(layer, [self.tensors[i].shape for i in layer.inputs])
            actual = self.tensors[layer.outputs[0]].shape
            if tuple(expected) != tuple(actual):
                raise GraphError(f"shape mismatch at layer {layer.name!r} ({layer.op}): inputs "
                                 f"{[self.tensors[i].shape for i in layer.inputs]} give "
                                 f"{tuple(expected)}, but output {layer.outputs[0]!r} is "
                                 f"declared {tuple(actual)}")
            produced.update(layer.outputs)
        for name in self.outputs:
            if name not in produced:
                raise GraphError(f"graph output {name!r} is never computed")


def conv_out_len(n: int, k: int, stride: int, dilation: int, pad_a: int, pad_b: int) -> int:
    """ONNX output length (floor mode) of a sliding window along one axis."""
    return (n + pad_a + pad_b - dilation * (k - 1) - 1) // stride + 1


def _window_out(shape, kernel, p) -> tuple[int, int]:
    sh, sw = p.get("stride", (1, 1))
    dh, dw = p.get("dilation", (1, 1))
    t, l, b, r = p.get("pads", (0, 0, 0, 0))
    return (conv_out_len(shape[0], kernel[0], sh, dh, t, b),
            conv_out_len(shape[1], kernel[1], sw, dw, l, r))


def infer_output_shape(layer: Layer, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The output shape a layer must produce from its input shapes (raises GraphError)."""
    op, p, a = layer.op, layer.params, layer.arrays

    def need(cond, what):
        if not cond:
            raise GraphError(f"shape mismatch at layer {layer.name!r} ({op}): {what}")

    x = in_shapes[0] if in_shapes else ()
    if op == "conv":
        w = a["weight"]
        need(len(x) == 3 and w.ndim == 4, f"input {x} must be (H, W, C), weight 4-D")
        g = int(p.get("groups", 1))
        need(x[2] == w.shape[3] * g, f"input has {x[2]} channels but weight expects "
             f"{w.shape[3]} x {g} groups")
        need(w.shape[0] % g == 0, f"{w.shape[0]} output channels not divisible by groups {g}")
        need(a["bias"].shape == (w.shape[0],) and a["multiplier"].shape == (w.shape[0],),
             "bias/multiplier length differs from the number of output channels")
        oh, ow = _window_out(x, w.shape[1:3], p)
        need(oh > 0 and ow > 0, f"kernel {w.shape[1:3]} larger than padded input {x[:2]}")
        return (oh, ow, w.shape[0])
    if op == "dense":
        w = a["weight"]
        need(w.ndim == 2 and len(x) >= 1 and x[-1] == w.shape[1],
             f"input {x} does not end in K = {w.shape[1] if w.ndim == 2 else '?'}")
        need(a["bias"].shape == (w.shape[0],) and a["multiplier"].shape == (w.shape[0],),
             "bias/multiplier length differs from the number of outputs")
        return tuple(x[:-1]) + (w.shape[0],)
    if op in ("maxpool", "avgpool"):
        need(len(x) == 3, f"input {x} must be (H, W, C)")
        oh, ow = _window_out(x, p["kernel"], p)
        need(oh > 0 and ow > 0, "pool window larger than padded input")
        return (oh, ow, x[2])
    if op == "global_avgpool":
        need(len(x) == 3, f"input {x} must be (H, W, C)")
        return (1, 1, x[2])
    if op == "add":
        need(len(in_shapes) == 2, "add takes two inputs")
        try:
            out = np.broadcast_shapes(in_shapes[0], in_shapes[1])
        except ValueError:
            need(False, f"cannot broadcast {in_shapes[0]} with {in_shapes[1]}")
        need(tuple(out) == tuple(in_shapes[0]), "first input must have the output shape")
        return tuple(out)
    if op == "concat":
        axis = int(p["axis"])
        need(all(len(s) == len(x) for s in in_shapes) and 0 <= axis < len(x),
             f"inputs {in_shapes} cannot be joined on axis {axis}")
        for s in in_shapes:
            need(all(s[i] == x[i] for i in range(len(x)) if i != axis),
                 f"inputs {in_shapes} differ off axis {axis}")
        return tuple(x[:axis]) + (sum(s[axis] for s in in_shapes),) + tuple(x[axis + 1:])
    if op == "reshape":
        shape = tuple(int(d) for d in p["shape"])
        need(int(np.prod(shape)) == int(np.prod(x)), f"cannot reshape {x} to {shape}")
        return shape
    if op == "transpose":
        perm = tuple(int(i) for i in p["perm"])
        need(sorted(perm) == list(range(len(x))), f"perm {perm} does not fit {x}")
        return tuple(x[i] for i in perm)
    if op in ("lut", "softmax"):
        if op == "lut":
            need(a["table"].shape == (256,), "lut table must have 256 entries")
        return tuple(x)
    if op == "gather":
        t = a["table"]
        need(t.ndim == 2, "gather table must be [V, D]")
        return tuple(x) + (t.shape[1],)
    raise GraphError(f"layer {layer.name!r} uses unknown operator {op!r}")


def layer_macs(layer: Layer, graph: Graph) -> int:
    """Multiply-accumulates of one layer (0 for data movement), for reports and benches."""
    out = graph.tensors[layer.outputs[0]]
    if layer.op == "conv":
        w = layer.arrays["weight"]
        return out.size * int(np.prod(w.shape[1:]))
    if layer.op == "dense":
        return out.size * int(layer.arrays["weight"].shape[1])
    if layer.op in ("avgpool", "maxpool"):
        k = layer.params["kernel"]
        return out.size * int(k[0]) * int(k[1])
    if layer.op == "global_avgpool":
        return graph.tensors[layer.inputs[0]].size
    return 0


def layer_param_bytes(layer: Layer) -> int:
    """Bytes of constant data a layer carries (weights, biases, multipliers, tables)."""
    return int(sum(a.nbytes for a in layer.arrays.values()))


def raw_outputs(graph: Graph) -> tuple[str, ...]:
    """The int8 tensors engines return: each graph output, or, when it is produced by a
    final ``softmax``, that softmax's int8 input (the float softmax is applied by the
    runtime, identically for every backend)."""
    producer = {o: layer for layer in graph.layers for o in layer.outputs}
    out = []
    for name in graph.outputs:
        layer = producer.get(name)
        out.append(layer.inputs[0] if layer is not None and layer.op == "softmax" else name)
    return tuple(out)


def softmax_table(scale) -> np.ndarray:
    """``exp(-d * scale)`` in float32 for d = 0..255: every value a final softmax over int8
    logits exponentiates (see :func:`softmax_f32`), made by numpy's ``exp`` once per model
    for the C kernel's thin call, so it looks up the bits the numpy engines compute."""
    d = np.arange(256, dtype=np.float32)
    return np.exp(np.multiply(d, np.negative(np.float32(scale))))


def softmax_f32(x: np.ndarray, scale: float, zero_point: int = 0, out: np.ndarray | None = None
                ) -> np.ndarray:
    """The final float softmax (over the last axis) of an int8 tensor, in float32.

    The definition every backend shares, bit for bit: with d = max(row) - x (an integer in
    0..255; the zero point cancels, softmax being shift-invariant), e = exp(d * -scale) in
    float32 (numpy's exp: the values of :func:`softmax_table`), the row sum added left to
    right in float32, then e / sum. C reproduces that exactly with the table and a plain
    loop; numpy's pairwise ``sum`` order it could not. ``out`` (float32, the shape of x)
    receives the result. numpy computes the table's entries on the fly: as cheap as a
    lookup, whose index array would cost a cast.
    """
    x = np.asarray(x)
    v = np.empty(x.shape, np.float32) if out is None else out
    v[...] = x                                       # int8 -> float32, exact
    if v.ndim == 1:                                  # same values, fewer broadcasts
        np.subtract(np.maximum.reduce(v), v, out=v)  # d, exact
    else:
        np.subtract(np.maximum.reduce(v, axis=-1, keepdims=True), v, out=v)
    np.multiply(v, np.negative(np.float32(scale)), out=v)
    np.exp(v, out=v)
    np.divide(v, np.add.accumulate(v, axis=-1)[..., -1:], out=v)
    return v
