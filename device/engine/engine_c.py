"""The C engine: runs a :class:`~lanthorn.device.engine.graph.Graph` on the C kernel (firmware/kernel).

At load, :func:`to_blob` plans the activation memory (tensors whose lifetimes do not
overlap share bytes; a reshape aliases its input) and serializes the graph into one
``LKB1`` blob, the format ``firmware/kernel/lk.h`` documents. The same blob drives the
CPython extension here, the static test driver under qemu-aarch64 and a microcontroller
build, so all three run identical layer descriptions. The extension packs the weights for
the chosen kernel variant once; ``run_quantized`` is then a single C call per inference,
and :meth:`CEngine.thin_call` gives the runtime ``model(x)`` and ``run_quantized(x)`` as one
C call each, input conversion and output included, with int8.py's exact float32 operations.

Engine protocol as :mod:`lanthorn.device.engine.engine_ref`. Variant selection: the ``variant``
argument, else ``LANTHORN_C_VARIANT`` (``scalar``, ``avx2``, ``avx-vnni``, ``avx512-vnni``,
``neon``, ``neon-dotprod``),
else the fastest this CPU supports. Importing this module needs only numpy; the extension
is imported by :class:`CEngine`, which raises ImportError when it is not built (the
runtime then falls back to numpy); a graph the kernel refuses raises
:class:`CKernelUnsupported` (a bad bundle: no fallback).
"""
from __future__ import annotations

import os
import struct

import numpy as np

from lanthorn.device.engine.graph import Graph, raw_outputs
from lanthorn.errors import UserError

BLOB_MAGIC = 0x31424B4C     # "LKB1", lk.h LK_MAGIC
VERSION = 1
MAX_DIMS = 6                # lk.h LK_MAX_DIMS
MAX_IN = 16                 # lk.h LK_MAX_IN
MAX_IO = 16                 # lk.h LK_MAX_IO
ALIGN = 16
OP_CODES = {"conv": 1, "dense": 2, "maxpool": 3, "avgpool": 4, "global_avgpool": 5, "add": 6,
            "concat": 7, "reshape": 8, "transpose": 9, "lut": 10, "gather": 11,
            "mul": 12}
DTYPE_CODES = {"int8": 1, "int32": 2}
VARIANTS = {"scalar": 0, "avx2": 1, "neon": 2, "neon-dotprod": 3, "avx-vnni": 4, "avx512-vnni": 5}


class CKernelUnsupported(UserError):
    """The C kernel refuses the graph. Graph.validate is as strict as the kernel's loader,
    so this means a bad bundle (or a lanthorn bug), never a reason to fall back to numpy:
    the runtime reports it as one line and does not load the bundle."""


class VariantError(UserError, ValueError):
    """An unknown kernel variant name (argument or LANTHORN_C_VARIANT)."""


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def executed_layers(graph: Graph) -> list:
    """Layers the kernel runs: all but a final float softmax (the runtime applies it)."""
    layers = []
    for layer in graph.layers:
        if layer.op == "softmax":
            if layer.outputs[0] not in graph.outputs:
                raise CKernelUnsupported(f"layer {layer.name!r}: softmax is only supported as "
                                         "the final layer")
            continue
        if layer.op not in OP_CODES:
            raise CKernelUnsupported(f"layer {layer.name!r}: operator {layer.op!r}")
        layers.append(layer)
    return layers


def plan_arena(graph: Graph, layers=None) -> tuple[dict[str, int], int]:
    """Byte offset of every tensor the kernel touches, and the arena size.

    Each buffer lives from the step that writes it to the last step that reads it (graph
    inputs from step -1, raw outputs to the end); buffers whose lives overlap get disjoint
    bytes, largest first at the lowest offset that fits. A reshape's output is its input's
    buffer. A layer's output never overlaps its own inputs (both are live at that step).
    """
    layers = executed_layers(graph) if layers is None else layers
    root: dict[str, str] = {}
    for name in graph.inputs:
        root[name] = name
    for layer in layers:
        for name in layer.outputs:
            root[name] = root[layer.inputs[0]] if layer.op == "reshape" else name
    nbytes = {name: graph.tensors[name].size * (4 if graph.tensors[name].dtype == "int32" else 1)
              for name in root}
    start = {r: -1 for r in set(root.values()) if r in graph.inputs}
    end: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for name in layer.outputs:
            start.setdefault(root[name], i)
            end[root[name]] = max(end.get(root[name], i), i)
        for name in layer.inputs:
            end[root[name]] = max(end.get(root[name], i), i)
    for name in raw_outputs(graph):
        end[root[name]] = len(layers)
    for r in start:
        end.setdefault(r, start[r])
    size_of = {r: max(nbytes[n] for n in root if root[n] == r) for r in start}
    placed: list[tuple[int, int, int, int]] = []          # (offset, size, start, end)
    offset_of: dict[str, int] = {}
    for r in sorted(start, key=lambda r: (-size_of[r], start[r], r)):
        size = _align(max(size_of[r], 1))
        busy = sorted((o, s) for o, s, a, b in placed if not (b < start[r] or end[r] < a))
        off = 0
        for o, s in busy:
            if off + size <= o:
                break
            off = max(off, o + s)
        placed.append((off, size, start[r], end[r]))
        offset_of[r] = off
    total = max((o + s for o, s, _, _ in placed), default=0)
    return {name: offset_of[root[name]] for name in root}, total


def to_blob(graph: Graph) -> bytes:
    """Serialize ``graph`` as an LKB1 blob (layout in firmware/kernel/lk.h)."""
    graph.validate()
    layers = executed_layers(graph)
    offsets, arena = plan_arena(graph, layers)
    names = list(offsets)
    index = {n: i for i, n in enumerate(names)}
    outs = raw_outputs(graph)
    if len(graph.inputs) > MAX_IO or len(outs) > MAX_IO:
        raise CKernelUnsupported(f"more than {MAX_IO} graph inputs or outputs")
    for name in names:
        t = graph.tensors[name]
        if len(t.shape) > MAX_DIMS or t.dtype not in DTYPE_CODES:
            raise CKernelUnsupported(f"tensor {name!r}: rank {len(t.shape)} / dtype {t.dtype}")
    n_words = (7 + len(graph.inputs) + len(outs) + len(names) * (5 + MAX_DIMS)
               + len(layers) * (2 + MAX_IN + 1 + 16 + MAX_DIMS + 4 + MAX_IN))
    data = bytearray()
    data_start = _align(4 * n_words)

    def put(a: np.ndarray, dtype) -> int:
        raw = np.ascontiguousarray(a, dtype=dtype).tobytes()
        while len(data) % ALIGN:
            data.append(0)
        off = data_start + len(data)
        data.extend(raw)
        return off

    words = bytearray()
    words += struct.pack("<7I", BLOB_MAGIC, VERSION, len(names), len(layers), len(graph.inputs),
                         len(outs), arena)
    words += struct.pack(f"<{len(graph.inputs)}i", *(index[n] for n in graph.inputs))
    words += struct.pack(f"<{len(outs)}i", *(index[n] for n in outs))
    for name in names:
        t = graph.tensors[name]
        shape = list(t.shape) + [1] * (MAX_DIMS - len(t.shape))
        words += struct.pack(f"<3i{MAX_DIMS}ifi", offsets[name], DTYPE_CODES[t.dtype],
                             len(t.shape), *shape, t.scale, t.zero_point)
    for layer in layers:
        words += _layer_record(layer, index, put)
    assert len(words) == 4 * n_words
    words += bytes(data_start - len(words))
    return bytes(words + data)


def _layer_record(layer, index: dict[str, int], put) -> bytes:
    """One layer's fixed-size record of an LKB1 blob (lk.h ``lk_layer``): op, inputs and
    output as tensor indices, the LAYER_FIELDS, the permutation, and the data offsets
    ``put`` returns for its weights, bias, multipliers and tables."""
    p, a = layer.params, layer.arrays
    if len(layer.inputs) > MAX_IN:
        raise CKernelUnsupported(f"layer {layer.name!r} has more than {MAX_IN} inputs")
    ins = [index[n] for n in layer.inputs] + [0] * (MAX_IN - len(layer.inputs))
    if layer.op == "conv":
        kh, kw = a["weight"].shape[1:3]
    else:
        kh, kw = p.get("kernel", (1, 1))
    sh, sw = p.get("stride", (1, 1))
    dh, dw = p.get("dilation", (1, 1))
    pads = p.get("pads", (0, 0, 0, 0))
    perm = list(p.get("perm", ())) + [0] * (MAX_DIMS - len(p.get("perm", ())))
    rows = a["table"].shape[0] if layer.op == "gather" or (
        layer.op == "lut" and a["table"].ndim == 2) else 0
    fields = [kh, kw, sh, sw, dh, dw, *pads, int(p.get("groups", 1)),
              int(p.get("act_min", -128)), int(p.get("act_max", 127)), int(p.get("axis", 0)),
              int(bool(p.get("count_include_pad", False))), rows]
    w = put(a["weight"], np.int8) if "weight" in a else 0
    b = put(a["bias"], np.int32) if "bias" in a else 0
    m = put(a["multiplier"], np.float32) if "multiplier" in a else 0
    tab = put(a["table"], np.int8) if layer.op in ("lut", "gather") else 0
    tables = [put(a[f"table{i}"], np.int8) if f"table{i}" in a else 0
              for i in range(len(layer.inputs))] if layer.op == "concat" else []
    tables += [0] * (MAX_IN - len(tables))
    return struct.pack(f"<2i{MAX_IN}ii16i{MAX_DIMS}i4I{MAX_IN}I", OP_CODES[layer.op],
                       len(layer.inputs), *ins, index[layer.outputs[0]], *fields, *perm,
                       w, b, m, tab, *tables)


#: Per-layer int32 fields of an LKB1 blob after op, n_in, in[MAX_IN], out (lk.h)
LAYER_FIELDS = ("kh", "kw", "sh", "sw", "dh", "dw", "pad_t", "pad_l", "pad_b", "pad_r", "groups",
                "act_min", "act_max", "axis", "count_include_pad", "rows")
TENSOR_WORDS = 5 + MAX_DIMS
LAYER_WORDS = 2 + MAX_IN + 1 + 16 + MAX_DIMS + 4 + MAX_IN


def blob_layout(blob: bytes) -> tuple[int, int, int, int]:
    """(n_tensors, n_layers, byte offset of the tensor table, of the layer table)."""
    _, _, nt, nl, ni, no, _ = struct.unpack_from("<7I", blob, 0)
    tensors = 4 * (7 + ni + no)
    return nt, nl, tensors, tensors + 4 * TENSOR_WORDS * nt


def blob_layer_field(blob: bytes, layer: int, field: str) -> int:
    """Byte offset of one int32 field of layer ``layer`` ("op", "n_in", "in0".., "out",
    LAYER_FIELDS, "perm0".., "weight", "bias", "multiplier", "table", "tables0"..): for
    tests and the bundle fuzzer, which edit blobs by hand."""
    names = (["op", "n_in"] + [f"in{i}" for i in range(MAX_IN)] + ["out"] + list(LAYER_FIELDS)
             + [f"perm{i}" for i in range(MAX_DIMS)] + ["weight", "bias", "multiplier", "table"]
             + [f"tables{i}" for i in range(MAX_IN)])
    _, _, _, layers = blob_layout(blob)
    return layers + 4 * (LAYER_WORDS * layer + names.index(field))


def blob_tensor_field(blob: bytes, tensor: int, field: str) -> int:
    """Byte offset of one field of tensor ``tensor`` ("offset", "dtype", "ndim",
    "shape0".., "scale", "zero_point")."""
    names = ["offset", "dtype", "ndim"] + [f"shape{i}" for i in range(MAX_DIMS)] + ["scale",
                                                                                   "zero_point"]
    _, _, tensors, _ = blob_layout(blob)
    return tensors + 4 * (TENSOR_WORDS * tensor + names.index(field))


def _variant_from_env(lk) -> int | None:
    name = os.environ.get("LANTHORN_C_VARIANT", "").strip().lower()
    if not name:
        return None
    name = name.removeprefix("c-")
    if name not in VARIANTS:
        raise VariantError(f"LANTHORN_C_VARIANT={name!r} is not one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def available_variants() -> list[str]:
    """Backend names of every kernel variant this machine can run (needs the extension)."""
    from lanthorn.device.engine.kernel_ext import _lk
    return [_lk.variant_name(v) for v in VARIANTS.values() if _lk.variant_supported(v)]


class CEngine:
    """Runs a Graph on the C kernel. Not thread-safe (the arena is shared between calls)."""

    def __init__(self, graph: Graph, variant: str | int | None = None):
        from lanthorn.device.engine.kernel_ext import _lk  # ImportError: not built
        if isinstance(variant, str):
            key = variant.lower().removeprefix("c-")
            if key not in VARIANTS:
                raise VariantError(f"unknown C kernel variant {variant!r}; "
                                   f"choose one of {', '.join(VARIANTS)}")
            variant = VARIANTS[key]
        if variant is None:
            variant = _variant_from_env(_lk)
        if variant is not None and not _lk.variant_supported(variant):
            raise CKernelUnsupported(f"C kernel variant {_lk.variant_name(variant)} is not "
                                     "supported on this CPU")
        self.graph = graph
        self.blob = to_blob(graph)
        try:
            self._m = _lk.Model(self.blob, -1 if variant is None else variant)
        except ValueError as exc:   # the kernel's loader refuses what validate() let through
            raise CKernelUnsupported(f"the C kernel refuses this model ({exc}): the bundle is "
                                     f"invalid; re-quantize or re-import it") from None
        self.backend: str = self._m.backend
        self.memory: dict = self._m.memory
        self.raw_outputs = raw_outputs(graph)
        # dtype objects and shapes resolved once: parsing a dtype string costs more per
        # call than running a 25k-MAC model
        self._in_dt = [np.dtype(graph.tensors[n].dtype) for n in graph.inputs]
        self._out_shapes = [graph.tensors[n].shape for n in self.raw_outputs]
        self._i8 = np.dtype(np.int8)

    def thin_call(self, shapes, softmax_table=None, softmax_row: int = 0, release_gil: bool = True):
        """``(call, call_raw)``: ``model(x)`` and ``run_quantized(x)`` of this one-input,
        one-output graph as single C calls. ``call(x)`` takes numbers (float32, float64,
        integers; quantized as int8.quantize) or token ids and returns float32 (dequantized,
        or :func:`~lanthorn.device.engine.int8.softmax_f32` over rows of ``softmax_row`` with
        ``softmax_table``); ``call_raw(x)`` takes int8 or token ids and returns the raw int8
        output. Both return NotImplemented for inputs they do not take as they are (not an
        exact C-contiguous ndarray of one of ``shapes``, another dtype, NaN or infinity):
        the caller's checked path then reshapes, copies or raises its one-line error.
        None when the graph has not exactly one input and one int8 output."""
        g = self.graph
        if len(g.inputs) != 1 or len(self.raw_outputs) != 1 or \
                g.tensors[self.raw_outputs[0]].dtype != "int8":
            return None
        shapes = tuple(dict.fromkeys(tuple(int(d) for d in s) for s in shapes))
        self._m.set_call(np.ndarray, np.empty, shapes, tuple(self._out_shapes[0]),
                         np.dtype(np.float32), self._i8, softmax_table, int(softmax_row),
                         bool(release_gil))
        return self._m.call, self._m.call_raw

    def time_kernel(self, xq, n: int = 1) -> float:
        """Seconds per run of the bare kernel (``lk_run`` on the int8 or index input ``xq``,
        copied into the arena before each of n runs back to back, timed in C): what
        ``lanthorn bench`` subtracts from a call to show the call's own overhead."""
        x = np.ascontiguousarray(xq, dtype=self._in_dt[0])
        return self._m.time_kernel(x, int(n))

    def run_quantized(self, inputs, out=None) -> list[np.ndarray]:
        """int8 (or int32 index) inputs -> int8 raw outputs, by one C call. ``out`` (a list
        of C-contiguous int8 arrays shaped like the outputs) avoids allocating them."""
        xs = [x if type(x) is np.ndarray and x.dtype is dt and x.flags.c_contiguous
              else np.ascontiguousarray(x, dtype=dt) for x, dt in zip(inputs, self._in_dt, strict=True)]
        if out is None:
            out = [np.empty(shape, self._i8) for shape in self._out_shapes]
        self._m.run(xs, out)
        return out
