"""The int8 IR: the small graph of fused int8 layers that every lanthorn engine runs.

This module is the contract between the bundle format (:mod:`lanthorn.device.engine.bundle`), the
numpy reference engine (:mod:`lanthorn.device.engine.engine_ref`, the executable specification),
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
  (:func:`lanthorn.device.engine.int8.requant_multiplier`).
* Requantization, for every op that has one, is :func:`lanthorn.device.engine.int8.requantize`:
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
    (:func:`lanthorn.device.engine.int8.quantize_avg`). The divisor is the kernel area when
    ``count_include_pad`` else the number of in-bounds positions.
``global_avgpool``
    inputs ``(x,)`` ``(H, W, C)`` -> ``(1, 1, C)``. Requantized as onnxruntime's
    QLinearGlobalAveragePool (:func:`lanthorn.device.engine.int8.global_avgpool_multiplier`,
    then :func:`~lanthorn.device.engine.int8.requantize`).
``add``
    inputs ``(a, b)`` with equal shapes (or ``b`` broadcast along leading axes, numpy rules).
    params: ``act_min``, ``act_max``. Requantized as onnxruntime's QLinearAdd
    (:func:`lanthorn.device.engine.int8.qlinear_add`).
``mul``
    inputs ``(a, b)`` as ``add`` (``b`` equal-shaped or broadcast along leading axes: a
    squeeze-and-excitation gate ``(1, 1, C)`` over ``(H, W, C)``). params: ``act_min``,
    ``act_max``. Requantized as onnxruntime's QLinearMul
    (:func:`lanthorn.device.engine.int8.qlinear_mul`); the ratio ``s_a * s_b / s_c`` is at most
    2**14 so every float32 step stays exact in range.
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
    int8 -> int8 map: sigmoid, tanh, a standalone ReLU, a change of quantization. Or
    ``table`` int8[C, 256] for an input whose last axis has C channels: ``y[..., c] =
    table[c, x + 128]``, a per-channel map (a BatchNormalization onnxruntime runs in float). Built at
    import by evaluating onnxruntime itself on all 256 inputs, so exact by construction.
``gather``
    inputs ``(indices,)`` int32 of any shape S. arrays: ``table`` int8 ``[V, D]``. Output
    ``S + (D,)`` = ``table[indices]`` (negative indices count from the end as in ONNX; out
    of range is an error). Output quantization is the table's.
``softmax``
    inputs ``(x,)`` int8. Final layer only: dequantize, softmax over the last axis in
    float32 (:func:`lanthorn.device.engine.int8.softmax_f32`, applied by the runtime); output
    tensor dtype float32 (scale 1, zero point 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Every operator an engine must implement. The bundle loader refuses anything else.
OPS = ("conv", "dense", "maxpool", "avgpool", "global_avgpool", "add", "concat", "reshape",
       "transpose", "lut", "gather", "softmax", "mul")

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
        """From a bundle header, refusing wrongly typed fields (GraphError) rather than
        coercing them: ``int("3")`` or ``int(2.7)`` would silently change the model."""
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise GraphError(f"a tensor entry needs a name: {_short(d)}")
        name = d["name"]
        shape = int_list(d.get("shape"), None, f"tensor {name!r} shape", 1, MAX_TENSOR_ELEMENTS)
        dtype, scale, zp = d.get("dtype", "int8"), d.get("scale", 1.0), d.get("zero_point", 0)
        if not isinstance(dtype, str) or not is_number(scale) or not is_int(zp):
            raise GraphError(f"tensor {name!r}: dtype must be text, scale a number and zero "
                             f"point an integer, got {_short(dtype)}, {_short(scale)}, {_short(zp)}")
        if not -128 <= zp <= 127:
            raise GraphError(f"tensor {name!r} has zero point {zp}, outside int8")
        if is_int(scale) and abs(scale) > 2 ** 64:
            raise GraphError(f"tensor {name!r} has scale {_short(scale)}, not a float32")
        with np.errstate(over="ignore"):
            return cls(name, tuple(shape), dtype, scale, zp)


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
        """The one strict check every graph passes before any engine sees it (raise GraphError).

        As strict as the strictest engine (the C kernel, also on a 32-bit microcontroller):
        every field typed and in range, every size computed without overflow, the work
        of one inference bounded, and every arithmetic assumption the engines make (int8
        zero points and clamps, finite positive scales and multipliers, int32
        accumulators that cannot overflow) checked here once, so the engines can assume
        them. A graph that passes runs with identical integers on every backend."""
        _check_graph(self)


# --------------------------------------------------------------------------- strict checks

#: Limits shared with the C kernel (firmware/kernel/lk.h) and chosen for tiny models:
#: a model 20x larger than the biggest supported (5M MACs) still passes.
MAX_RANK = 6                 # lk.h LK_MAX_DIMS
MAX_LAYER_INPUTS = 16        # lk.h LK_MAX_IN
MAX_GRAPH_IO = 16            # lk.h LK_MAX_IO
MAX_GEOMETRY = 65535         # kernel, stride, dilation, pads (lk_model.c)
MAX_TENSOR_ELEMENTS = 1 << 24
MAX_WINDOW_ELEMENTS = 1 << 24   # per layer: output positions x window taps (im2col size)
MAX_WORK = 1 << 27              # per inference: MACs + window taps + elements moved
MAX_ACTIVATION_BYTES = 1 << 28  # all tensors together (bounds the C arena, lk_model.c)
INT32_MAX = 2 ** 31 - 1
#: QLinearAdd's input/output scale ratios (onnxruntime's MinScaleRatio is 2**-14)
ADD_RATIO = 2.0 ** 14
#: activation scales: far beyond any real model, and narrow enough that no float32 step of
#: the arithmetic (window sums, s_in / (s_out * n), a final softmax) reaches inf - inf or
#: 0 * inf, whose NaN no two engines turn into the same integer
MIN_SCALE, MAX_SCALE = 2.0 ** -40, 2.0 ** 40

_PARAMS = {
    "conv": {"stride", "dilation", "pads", "groups", "act_min", "act_max", "kernel"},
    "dense": {"act_min", "act_max"},
    "maxpool": {"kernel", "stride", "dilation", "pads"},
    "avgpool": {"kernel", "stride", "dilation", "pads", "count_include_pad"},
    "global_avgpool": set(), "add": {"act_min", "act_max"}, "mul": {"act_min", "act_max"},
    "concat": {"axis"},
    "reshape": {"shape"}, "transpose": {"perm"}, "lut": set(), "gather": set(), "softmax": set(),
}
_N_INPUTS = {"add": (2, 2), "mul": (2, 2), "concat": (1, MAX_LAYER_INPUTS)}


def is_int(v) -> bool:
    """A JSON/Python/numpy integer (not a bool, not a float that happens to be whole)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_number(v) -> bool:
    return (is_int(v) or isinstance(v, (float, np.floating))) and not isinstance(v, bool)


def int_list(v, n: int | None, what: str, lo: int, hi: int) -> list[int]:
    """``v`` as a list of ``n`` ints in [lo, hi] (any length when n is None), or GraphError."""
    if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n) or \
            not all(is_int(x) and lo <= x <= hi for x in v):
        want = f"{n} integers" if n is not None else "a list of integers"
        raise GraphError(f"{what} must be {want} in [{lo}, {hi}], got {_short(v)}")
    return [int(x) for x in v]


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_graph(g: "Graph") -> None:
    if not isinstance(g.tensors, dict) or not isinstance(g.layers, list):
        raise GraphError("graph tensors must be a mapping and layers a list")
    for key, t in g.tensors.items():
        _check_tensor(key, t)
    if sum(t.size * (4 if t.dtype != "int8" else 1) for t in g.tensors.values()) > MAX_ACTIVATION_BYTES:
        raise GraphError(f"the model's activations need more than {MAX_ACTIVATION_BYTES} bytes")
    for kind, names in (("input", g.inputs), ("output", g.outputs)):
        if not 1 <= len(names) <= MAX_GRAPH_IO or len(set(names)) != len(names):
            raise GraphError(f"a graph needs 1 to {MAX_GRAPH_IO} distinct {kind}s, got {len(names)}")
        for name in names:
            if not isinstance(name, str) or name not in g.tensors:
                raise GraphError(f"graph {kind} {_short(name)} is not a declared tensor")
    for name in g.inputs:
        if g.tensors[name].dtype not in ("int8", "int32"):
            raise GraphError(f"graph input {name!r} must be int8 or int32 indices")
    produced = set(g.inputs)
    layer_names: set[str] = set()
    work = 0
    for i, layer in enumerate(g.layers):
        _check_wiring(g, i, layer, layer_names, produced)
        out = layer.outputs[0]
        _check_dtypes(g, layer)
        _check_params(layer)
        _check_arrays(layer)
        expected = infer_output_shape(layer, [g.tensors[n].shape for n in layer.inputs])
        actual = g.tensors[out].shape
        if tuple(expected) != tuple(actual):
            raise GraphError(f"shape mismatch at layer {layer.name!r} ({layer.op}): inputs "
                             f"{[g.tensors[n].shape for n in layer.inputs]} give "
                             f"{tuple(expected)}, but output {out!r} is declared {tuple(actual)}")
        _check_arithmetic(g, layer)
        work += _layer_work(g, layer)
        if work > MAX_WORK:
            raise GraphError(f"the model needs more than {MAX_WORK} operations per inference "
                             f"(at layer {layer.name!r}); lanthorn runs tiny models")
        produced.add(out)
    for name in g.outputs:
        if name not in produced:
            raise GraphError(f"graph output {name!r} is never computed")
        if g.tensors[name].dtype == "int32":
            raise GraphError(f"graph output {name!r} must be int8 (or a final softmax)")


def _check_wiring(g: "Graph", i: int, layer, names: set, produced: set) -> None:
    """Layer ``i`` is a named Layer of a known op with the right number of declared inputs,
    all computed before it, and one output nobody computed yet (a softmax only at the end).
    Adds its name to ``names``."""
    if not isinstance(layer, Layer) or not isinstance(layer.name, str) or not layer.name:
        raise GraphError(f"layer {i} has no name")
    if layer.name in names:
        raise GraphError(f"two layers are named {layer.name!r}")
    names.add(layer.name)
    if layer.op not in OPS:
        raise GraphError(f"layer {layer.name!r} uses unknown operator {_short(layer.op)} "
                         f"(this lanthorn knows: {', '.join(OPS)})")
    lo, hi = _N_INPUTS.get(layer.op, (1, 1))
    if not lo <= len(layer.inputs) <= hi or len(layer.outputs) != 1:
        raise GraphError(f"layer {layer.name!r} ({layer.op}) needs {lo}"
                         f"{'' if lo == hi else f' to {hi}'} input(s) and one output, has "
                         f"{len(layer.inputs)} and {len(layer.outputs)}")
    for name in layer.inputs + layer.outputs:
        if not isinstance(name, str) or name not in g.tensors:
            raise GraphError(f"layer {layer.name!r} refers to undeclared tensor {_short(name)}")
    for name in layer.inputs:
        if name not in produced:
            raise GraphError(f"layer {layer.name!r} reads {name!r} before it is computed")
    out = layer.outputs[0]
    if out in produced:
        raise GraphError(f"layer {layer.name!r} writes {out!r}, which is already computed "
                         f"(each tensor has one producer)")
    if layer.op == "softmax" and out not in g.outputs:
        raise GraphError(f"layer {layer.name!r}: softmax is supported only as a final layer "
                         f"producing a graph output")


def _check_tensor(key, t) -> None:
    if not isinstance(t, Tensor) or not isinstance(t.name, str) or t.name != key or not key:
        raise GraphError(f"tensor {_short(key)} is declared under another name")
    if t.dtype not in DTYPES:
        raise GraphError(f"tensor {t.name!r} has unsupported dtype {_short(t.dtype)}")
    int_list(t.shape, None, f"tensor {t.name!r} shape", 1, MAX_TENSOR_ELEMENTS)
    if len(t.shape) > MAX_RANK:
        raise GraphError(f"tensor {t.name!r} has rank {len(t.shape)}; at most {MAX_RANK}")
    if t.size > MAX_TENSOR_ELEMENTS:
        raise GraphError(f"tensor {t.name!r} has {t.size} elements; at most {MAX_TENSOR_ELEMENTS}")
    if not (math.isfinite(t.scale) and MIN_SCALE <= t.scale <= MAX_SCALE):
        raise GraphError(f"tensor {t.name!r} has scale {t.scale!r}; a scale must be a finite "
                         f"float32 in [2**-40, 2**40]")
    if not -128 <= t.zero_point <= 127:
        raise GraphError(f"tensor {t.name!r} has zero point {t.zero_point}, outside int8")


def _check_dtypes(g: "Graph", layer: Layer) -> None:
    ins = [g.tensors[n].dtype for n in layer.inputs]
    out = g.tensors[layer.outputs[0]].dtype
    want_in = "int32" if layer.op == "gather" else "int8"
    want_out = "float32" if layer.op == "softmax" else "int8"
    if any(d != want_in for d in ins) or out != want_out:
        raise GraphError(f"layer {layer.name!r} ({layer.op}) takes {want_in} and gives "
                         f"{want_out}, but its tensors are {ins} -> {out}")


def _check_params(layer: Layer) -> None:
    p, name = layer.params, layer.name
    if not isinstance(p, dict):
        raise GraphError(f"layer {name!r}: params must be an object")
    extra = set(p) - _PARAMS[layer.op]
    if extra:
        raise GraphError(f"layer {name!r} ({layer.op}) has unknown parameter(s) "
                         f"{', '.join(sorted(map(str, extra)))}")
    where = f"layer {name!r} ({layer.op})"
    if "stride" in p:
        int_list(p["stride"], 2, f"{where} stride", 1, MAX_GEOMETRY)
    if "dilation" in p:
        int_list(p["dilation"], 2, f"{where} dilation", 1, MAX_GEOMETRY)
        if layer.op == "avgpool" and list(p["dilation"]) != [1, 1]:
            raise GraphError(f"{where}: dilated average pooling is not supported")
    if "pads" in p:
        int_list(p["pads"], 4, f"{where} pads", 0, MAX_GEOMETRY)
    if "kernel" in p:
        k = int_list(p["kernel"], 2, f"{where} kernel", 1, MAX_GEOMETRY)
        if layer.op == "conv":
            w = layer.arrays.get("weight")
            if w is None or w.ndim != 4 or list(w.shape[1:3]) != k:
                raise GraphError(f"{where}: kernel {k} differs from the weight's "
                                 f"{list(w.shape[1:3]) if w is not None and w.ndim == 4 else '?'}")
    elif layer.op in ("maxpool", "avgpool"):
        raise GraphError(f"{where} lacks its kernel size")
    if "groups" in p and not (is_int(p["groups"]) and 1 <= p["groups"] <= MAX_GEOMETRY):
        raise GraphError(f"{where}: groups must be an integer in [1, {MAX_GEOMETRY}], "
                         f"got {_short(p['groups'])}")
    lo, hi = p.get("act_min", -128), p.get("act_max", 127)
    if not (is_int(lo) and is_int(hi) and -128 <= lo <= hi <= 127):
        raise GraphError(f"{where}: act_min/act_max must be integers with -128 <= act_min <= "
                         f"act_max <= 127, got {_short(lo)}/{_short(hi)}")
    if "count_include_pad" in p and not isinstance(p["count_include_pad"], bool):
        raise GraphError(f"{where}: count_include_pad must be true or false")
    if layer.op == "concat":
        if not is_int(p.get("axis")) or not 0 <= p["axis"] < MAX_RANK:
            raise GraphError(f"{where}: axis must be an integer in [0, {MAX_RANK - 1}], "
                             f"got {_short(p.get('axis'))}")
    if layer.op == "reshape":
        int_list(p.get("shape"), None, f"{where} shape", 1, MAX_TENSOR_ELEMENTS)
    if layer.op == "transpose":
        int_list(p.get("perm"), None, f"{where} perm", 0, MAX_RANK - 1)


def _check_arrays(layer: Layer) -> None:
    a, where = layer.arrays, f"layer {layer.name!r} ({layer.op})"
    if not isinstance(a, dict):
        raise GraphError(f"{where}: arrays must be a mapping")
    allowed = dict(REQUIRED_ARRAYS.get(layer.op, {}))
    if layer.op == "concat":
        allowed.update({f"table{i}": "int8" for i in range(len(layer.inputs))})
    for key, arr in a.items():
        if key not in allowed:
            raise GraphError(f"{where} carries an unknown array {_short(key)}")
        if not isinstance(arr, np.ndarray) or arr.dtype != np.dtype(allowed[key]):
            raise GraphError(f"{where}: array {key!r} is "
                             f"{getattr(arr, 'dtype', type(arr).__name__)}, expected {allowed[key]}")
        if arr.size == 0:
            raise GraphError(f"{where}: array {key!r} is empty")
        if key.startswith("table") and layer.op == "concat" and arr.shape != (256,):
            raise GraphError(f"{where}: table {key!r} must have 256 entries, has {arr.shape}")
    for key in REQUIRED_ARRAYS.get(layer.op, {}):
        if key not in a:
            raise GraphError(f"layer {layer.name!r} ({layer.op}) lacks array {key!r}")


def _check_arithmetic(g: "Graph", layer: Layer) -> None:
    """Value ranges the int8 arithmetic assumes (int8.py), per op."""
    a, where = layer.arrays, f"layer {layer.name!r} ({layer.op})"
    x = g.tensors[layer.inputs[0]]
    y = g.tensors[layer.outputs[0]]
    if layer.op in ("conv", "dense"):
        m = a["multiplier"]
        if not (np.all(np.isfinite(m)) and np.all(m > 0)):
            raise GraphError(f"{where}: every requantization multiplier must be a finite "
                             f"float32 > 0")
        w = a["weight"].reshape(a["weight"].shape[0], -1).astype(np.int64)
        # |acc| at every step of every summation order and zero-point folding an engine
        # uses: |bias| + |zx * sum w| + |sum x * w| <= |bias| + 256 * sum |w|
        bound = np.abs(a["bias"].astype(np.int64)) + 256 * np.abs(w).sum(axis=1)
        if int(bound.max(initial=0)) > INT32_MAX or w.shape[1] * 255 * 128 > INT32_MAX:
            raise GraphError(f"{where}: bias and weights can overflow the int32 accumulator "
                             f"(|bias| + 256 * sum|w| must stay below 2**31)")
    elif layer.op == "add":
        b = g.tensors[layer.inputs[1]]
        for t in (x, b):
            r = float(np.float32(t.scale) / np.float32(y.scale))
            if not 1 / ADD_RATIO <= r <= ADD_RATIO:
                raise GraphError(f"{where}: input scale {t.scale:g} and output scale "
                                 f"{y.scale:g} differ by more than 2**14")
    elif layer.op == "mul":
        b = g.tensors[layer.inputs[1]]
        r = float(np.float32(np.float32(x.scale) * np.float32(b.scale)) / np.float32(y.scale))
        if not 0 < r <= ADD_RATIO:
            raise GraphError(f"{where}: the scale ratio s_a * s_b / s_c = {r:g} must be in "
                             f"(0, 2**14]")
    elif layer.op in ("maxpool", "avgpool"):
        p = layer.params
        (kh, kw), (sh, sw) = p["kernel"], p.get("stride", (1, 1))
        (dh, dw), (t, left, _, _) = p.get("dilation", (1, 1)), p.get("pads", (0, 0, 0, 0))
        if not (windows_reach_input(x.shape[0], kh, sh, dh, t, y.shape[0])
                and windows_reach_input(x.shape[1], kw, sw, dw, left, y.shape[1])):
            raise GraphError(f"{where}: some pooling windows lie entirely in the padding "
                             f"(nothing to pool); use smaller pads")
    elif layer.op == "global_avgpool":
        if 256 * x.shape[0] * x.shape[1] > INT32_MAX:
            raise GraphError(f"{where}: {x.shape[0] * x.shape[1]} positions can overflow the "
                             f"int32 sum")


def windows_reach_input(n: int, k: int, s: int, d: int, pad: int, out: int) -> bool:
    """Whether every one of ``out`` windows along an axis (taps ``o*s - pad + a*d``,
    ``a < k``) has at least one tap inside ``[0, n)``."""
    start = np.arange(out, dtype=np.int64) * s - pad
    lo = np.maximum(0, -(start // d))                 # first tap >= 0: ceil(-start / d)
    hi = np.minimum(k - 1, (n - 1 - start) // d)      # last tap <= n - 1
    return bool(np.all(lo <= hi))


def _layer_work(g: "Graph", layer: Layer) -> int:
    """Operations of one inference of ``layer`` (MACs, window taps, elements moved), after
    checking its im2col-like working set stays under MAX_WINDOW_ELEMENTS."""
    out = g.tensors[layer.outputs[0]]
    if layer.op == "conv":
        w = layer.arrays["weight"]
        taps = out.size // out.shape[-1] * int(np.prod(w.shape[1:], dtype=np.int64))
        work = out.size * int(np.prod(w.shape[1:], dtype=np.int64))
        groups = int(layer.params.get("groups", 1))
        taps = taps * groups if groups > 1 else taps
    elif layer.op in ("maxpool", "avgpool"):
        kh, kw = layer.params["kernel"]
        taps = work = out.size * kh * kw
    elif layer.op == "dense":
        taps, work = 0, out.size * int(layer.arrays["weight"].shape[1])
    else:
        taps = 0
        work = sum(g.tensors[n].size for n in layer.inputs) + out.size
    if taps > MAX_WINDOW_ELEMENTS:
        raise GraphError(f"layer {layer.name!r} ({layer.op}) reads {taps} window elements per "
                         f"inference; at most {MAX_WINDOW_ELEMENTS}")
    return work


def conv_out_len(n: int, k: int, stride: int, dilation: int, pad_a: int, pad_b: int) -> int:
    """ONNX output length (floor mode) of a sliding window along one axis."""
    return (n + pad_a + pad_b - dilation * (k - 1) - 1) // stride + 1


def _window_out(shape, kernel, p) -> tuple[int, int]:
    sh, sw = p.get("stride", (1, 1))
    dh, dw = p.get("dilation", (1, 1))
    t, left, b, r = p.get("pads", (0, 0, 0, 0))
    return (conv_out_len(shape[0], kernel[0], sh, dh, t, b),
            conv_out_len(shape[1], kernel[1], sw, dw, left, r))


def infer_output_shape(layer: Layer, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The output shape a layer must produce from its input shapes (raises GraphError)."""
    op, p, a = layer.op, layer.params, layer.arrays

    def need(cond, what):
        if not cond:
            raise GraphError(f"shape mismatch at layer {layer.name!r} ({op}): {what}")

    x = in_shapes[0] if in_shapes else ()
    if op in ("conv", "dense"):
        return _weighted_output_shape(layer, x, need)
    if op in ("add", "mul", "concat"):
        return _joined_output_shape(layer, in_shapes, need)
    if op in ("maxpool", "avgpool"):
        need(len(x) == 3, f"input {x} must be (H, W, C)")
        oh, ow = _window_out(x, p["kernel"], p)
        need(oh > 0 and ow > 0, "pool window larger than padded input")
        return (oh, ow, x[2])
    if op == "global_avgpool":
        need(len(x) == 3, f"input {x} must be (H, W, C)")
        return (1, 1, x[2])
    if op == "reshape":
        shape = tuple(int(d) for d in p["shape"])
        need(math.prod(shape) == math.prod(x), f"cannot reshape {x} to {shape}")
        return shape
    if op == "transpose":
        perm = tuple(int(i) for i in p["perm"])
        need(sorted(perm) == list(range(len(x))), f"perm {perm} does not fit {x}")
        return tuple(x[i] for i in perm)
    if op in ("lut", "softmax"):
        if op == "lut":
            t = a["table"]
            need(t.shape == (256,) or (t.ndim == 2 and len(x) >= 1 and t.shape == (x[-1], 256)),
                 "lut table must have 256 entries (or 256 per channel of the last axis)")
        return tuple(x)
    if op == "gather":
        t = a["table"]
        need(t.ndim == 2, "gather table must be [V, D]")
        return tuple(x) + (t.shape[1],)
    raise GraphError(f"layer {layer.name!r} uses unknown operator {op!r}")


def _weighted_output_shape(layer: Layer, x: tuple, need) -> tuple[int, ...]:
    """conv and dense: the weights decide the output channels (see infer_output_shape)."""
    p, a = layer.params, layer.arrays
    w = a["weight"]
    if layer.op == "dense":
        need(w.ndim == 2 and len(x) >= 1 and x[-1] == w.shape[1],
             f"input {x} does not end in K = {w.shape[1] if w.ndim == 2 else '?'}")
        need(a["bias"].shape == (w.shape[0],) and a["multiplier"].shape == (w.shape[0],),
             "bias/multiplier length differs from the number of outputs")
        return tuple(x[:-1]) + (w.shape[0],)
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


def _joined_output_shape(layer: Layer, in_shapes: list, need) -> tuple[int, ...]:
    """add and mul (the second input broadcasts to the first) and concat (along ``axis``)."""
    x = in_shapes[0] if in_shapes else ()
    if layer.op in ("add", "mul"):
        need(len(in_shapes) == 2, f"{layer.op} takes two inputs")
        try:
            out = np.broadcast_shapes(in_shapes[0], in_shapes[1])
        except ValueError:
            need(False, f"cannot broadcast {in_shapes[0]} with {in_shapes[1]}")
        need(tuple(out) == tuple(in_shapes[0]), "first input must have the output shape")
        return tuple(out)
    axis = int(layer.params["axis"])
    need(all(len(s) == len(x) for s in in_shapes) and 0 <= axis < len(x),
         f"inputs {in_shapes} cannot be joined on axis {axis}")
    for s in in_shapes:
        need(all(s[i] == x[i] for i in range(len(x)) if i != axis),
             f"inputs {in_shapes} differ off axis {axis}")
    return tuple(x[:axis]) + (sum(s[axis] for s in in_shapes),) + tuple(x[axis + 1:])


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


def graph_macs(graph: Graph) -> int:
    """Multiply-accumulates of one inference: the model's cost as cards, reports, benches and
    the runtime's GIL decision count it."""
    return int(sum(layer_macs(layer, graph) for layer in graph.layers))


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

