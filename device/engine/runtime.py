"""Load a bundle and run it: the one entry point the device loop, the tools and the tests use.

``load(path_or_bundle, backend="auto")`` picks the engine. "auto" prefers the C kernel
(``lanthorn.device.engine.engine_c``, built as an optional extension) and falls back to the numpy
engine with ONE warning when the extension is not built; "numpy" is
:class:`~lanthorn.device.engine.engine_numpy.NumpyEngine` (the reference's integers, planned for
speed) and "reference" the readable specification itself (slow; for checking); ``LANTHORN_BACKEND=numpy``
(or ``=c``) in the environment overrides "auto"; asking for "c" when it is unavailable is a
:class:`~lanthorn.errors.UserError` that says how to build it. Only a missing extension
falls back: a graph the C kernel refuses is a bad bundle (``Graph.validate`` is as strict as
the kernel) and is refused with one line whatever the backend.

The C engine must provide ``engine_c.CEngine(graph)`` following the engine protocol
described in :mod:`lanthorn.device.engine.engine_ref` (``backend``, ``run_quantized(inputs)``).
Its optional ``thin_call`` makes ``model(x)`` and ``run_quantized(x)`` of a one-input,
one-output model ONE C call for every input dtype (float, int8, integer token ids):
convert x into the arena, run, and return the dequantized output or the final softmax
(int8.softmax_f32, from a table of exp values numpy made at load, so the bits are the
numpy engine's). At these sizes any Python around the kernel costs more than the kernel
(measured on mlp_25k, x86: the kernel 0.8 us, the previous Python wrapper 2-3 us more).
Inputs the thin call does not take as they are (another shape or type, a strided view,
NaN) return NotImplemented from it and go through the checked path below.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from lanthorn.device.engine import int8
from lanthorn.device.engine.bundle import Bundle, InputSpec, from_onnx_layout, read_bundle, to_onnx_layout
from lanthorn.device.engine.engine_numpy import NumpyEngine
from lanthorn.device.engine.engine_ref import ReferenceEngine
from lanthorn.device.engine.graph import graph_macs, raw_outputs
from lanthorn.device.engine.int8 import softmax_f32, softmax_table
from lanthorn.errors import UserError

BACKENDS = ("auto", "numpy", "c", "reference")
#: models above this many MACs release the GIL while the C kernel runs, so other threads
#: (the OLED renderer) go on; releasing and re-taking it costs ~0.15 us a call here (measured:
#: mlp_25k model(x) 1.47 -> 1.63 us), a fifth of a small model's whole call, for a kernel
#: too short for another thread to do anything useful meanwhile
GIL_MACS = 200_000
_warned_fallback = False


class KernelNotBuiltError(UserError):
    """backend="c" was asked for, but the C kernel extension is not built here."""


class InputError(UserError):
    """The input given to a model has the wrong shape, dtype or values."""


def _c_engine(graph):
    """The C engine for ``graph``, or raise ImportError when the extension is not built."""
    from lanthorn.device.engine import engine_c  # optional, built from firmware/
    return engine_c.CEngine(graph)


def _make_engine(graph, backend: str):
    global _warned_fallback
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        env = os.environ.get("LANTHORN_BACKEND", "").strip().lower()
        if env and env not in BACKENDS:
            raise UserError(f"LANTHORN_BACKEND={env!r} is not one of {', '.join(BACKENDS)}")
        backend = env or "auto"
    if backend == "numpy":
        return NumpyEngine(graph)
    if backend == "reference":
        return ReferenceEngine(graph)
    try:
        return _c_engine(graph)
    except ImportError as exc:   # only a missing extension: a refused graph is a UserError
        if backend == "c":
            raise KernelNotBuiltError(f"the C kernel extension is not built ({exc}); build it with "
                            f"'pip install -e .' on a machine with a C compiler, or use "
                            f"backend='numpy'") from None
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn(f"lanthorn: C kernel extension not built ({exc}); using the numpy "
                          "engine (slower, same results)", RuntimeWarning, stacklevel=3)
        return NumpyEngine(graph)


class Model:
    """A loaded bundle bound to an engine. Call it with float input, or use run_quantized."""

    def __init__(self, bundle: Bundle, backend: str = "auto"):
        self.bundle = bundle
        g = bundle.graph
        self.graph = g
        self._engine = _make_engine(g, backend)
        self.backend: str = self._engine.backend
        self._inputs = [g.tensors[n] for n in g.inputs]
        self._onnx_in = {e["tensor"]: e for e in bundle.io.get("inputs", [])}
        self._raw = [g.tensors[n] for n in raw_outputs(g)]
        self._softmax = [raw != out for raw, out in zip(raw_outputs(g), g.outputs, strict=True)]
        self._one_to_one = len(self._inputs) == 1 and len(self._raw) == 1
        in_place = getattr(self._engine, "run_in_place", None)
        if in_place is not None:   # numpy engine: quantize into its inputs, read its outputs
            self._qbuf = list(self._engine.input_buffers)

            def run_in_place():
                try:
                    return in_place()
                except IndexError as exc:
                    raise InputError(f"bad input: {exc}") from None
            self._run_float = run_in_place
        else:
            self._qbuf = [np.zeros(t.shape, dtype=t.dtype) for t in self._inputs]
            self._run_float = lambda: self._run(self._qbuf)
        self._prep = [_index_copier(q) if t.dtype == "int32"
                      else int8.quantizer(q, t.scale, t.zero_point, _not_finite_of(t))
                      for t, q in zip(self._inputs, self._qbuf, strict=True)]
        self._fbuf = [np.zeros(t.shape, np.float32) for t in self._raw]
        self._out_q = [(np.array(t.scale, np.float32), np.array(t.zero_point, np.float32))
                       for t in self._raw]                 # 0-d: cheapest for numpy to apply
        spec = tuple(self.input_spec.shape) if self.input_spec else None
        self._alt_shape = [spec if spec and int(np.prod(spec)) == t.size else t.shape
                           for t in self._inputs]
        # C engine, one input and one output: model(x) and run_quantized(x) are one C call
        # each (None: the checked Python path below does all)
        self._thin = self._thin_raw = None
        thin = getattr(self._engine, "thin_call", None)
        if thin is not None and self._one_to_one and self._raw[0].shape:
            row = self._raw[0].shape[-1] if self._softmax[0] else 0
            table = softmax_table(self._raw[0].scale) if row else None
            calls = thin((self._inputs[0].shape, self._alt_shape[0]), table, row,
                         release_gil=graph_macs(g) > GIL_MACS)
            if calls is not None:
                self._thin, self._thin_raw = calls

    # metadata
    @property
    def input_spec(self) -> InputSpec:
        return self.bundle.input_spec

    @property
    def labels(self) -> tuple[str, ...]:
        return self.bundle.labels

    @property
    def card(self) -> dict:
        return self.bundle.card

    @property
    def provenance(self) -> dict:
        return self.bundle.provenance

    @property
    def sha256(self) -> str | None:
        """The bundle's internal digest (its prefix's SHA-256; what push checks)."""
        return self.bundle.sha256

    @property
    def file_sha256(self) -> str | None:
        """The sha256 of the bundle's file, what ``sha256sum`` prints."""
        return self.bundle.file_sha256

    @property
    def input_names(self) -> tuple[str, ...]:
        """The names a user feeds: an imported model's ONNX input names."""
        return tuple(e["name"] for e in self.bundle.io.get("inputs", ())) or self.graph.inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(e["name"] for e in self.bundle.io.get("outputs", ())) or self.graph.outputs

    def run_onnx(self, feeds: dict) -> dict:
        """onnxruntime's contract, ``{input name: array} -> {output name: array}``, with the
        ONNX names and shapes (batch and layout) of an imported model: what a user fed
        ``InferenceSession.run`` works here unchanged. The arithmetic is ``model(x)``'s."""
        io = self.bundle.io or {
            "inputs": [{"name": n, "tensor": n, "shape": list(self.graph.tensors[n].shape),
                        "layout": "plain"} for n in self.graph.inputs],
            "outputs": [{"name": n, "tensor": n, "shape": list(self.graph.tensors[n].shape),
                         "layout": "plain"} for n in self.graph.outputs]}
        names = [e["name"] for e in io["inputs"]]
        if set(feeds) != set(names):
            raise InputError(f"the model's inputs are {', '.join(names)}; got "
                             f"{', '.join(map(str, feeds)) or 'none'}")
        xs = []
        for e in io["inputs"]:
            x = np.asarray(feeds[e["name"]])
            if x.shape != tuple(e["shape"]):
                raise InputError(f"input {e['name']!r} must have shape {tuple(e['shape'])}, "
                                 f"got {x.shape}")
            xs.append(from_onnx_layout(x, e["layout"], self.graph.tensors[e["tensor"]].shape))
        outs = self(*xs)
        outs = (outs,) if isinstance(outs, np.ndarray) else outs
        return {e["name"]: to_onnx_layout(y, e["layout"], e["shape"])
                for e, y in zip(io["outputs"], outs, strict=True)}

    def __repr__(self):
        name = self.card.get("name", "model")
        return f"<lanthorn Model {name!r} backend={self.backend} sha256={str(self.sha256)[:12]}>"

    # running
    def _check(self, xs, quantized: bool):
        if len(xs) != len(self._inputs):
            raise InputError(f"model takes {len(self._inputs)} input(s), got {len(xs)}")
        return [self._check_one(x, t, quantized) for x, t in zip(xs, self._inputs, strict=True)]

    def _check_one(self, x, t, quantized: bool):
        x = np.asarray(x)
        onnx = self._onnx_in.get(t.name)
        if onnx is not None and x.shape == tuple(onnx["shape"]) and x.shape != t.shape:
            return self._check_one(from_onnx_layout(x, onnx["layout"], t.shape), t, quantized)
        if x.shape != t.shape and x.size == t.size and (
                x.shape in (self.input_spec.shape, (1,) + tuple(self.input_spec.shape))
                or x.shape == (1,) + t.shape):
            x = x.reshape(t.shape)
        if x.shape != t.shape:
            want = self.input_spec.shape if not quantized else t.shape
            raise InputError(f"input {t.name!r} must have shape {tuple(want)}, got {x.shape}")
        if t.dtype == "int32":
            if x.dtype.kind not in "iu":
                raise InputError(f"input {t.name!r} takes integer indices, got {x.dtype}")
        elif quantized and x.dtype != np.int8:
            raise InputError(f"run_quantized takes int8 input, got {x.dtype} "
                             f"(use model(x) for float input)")
        elif not quantized and x.dtype.kind not in "fiu":
            raise InputError(f"input {t.name!r} must be numeric, got {x.dtype}")
        elif not quantized and x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise _not_finite(t)
        return x

    def _run(self, xq):
        return self._run_guarded(self._engine.run_quantized, xq)

    @staticmethod
    def _run_guarded(fn, *args):
        try:
            return fn(*args)
        except IndexError as exc:
            raise InputError(f"bad input: {exc}") from None

    def run_quantized(self, *xq):
        """int8 (or int32 index) inputs → raw int8 outputs (before any final softmax).
        One output → an array; several → a tuple."""
        if self._thin_raw is not None and len(xq) == 1:
            try:
                y = self._thin_raw(xq[0])
            except IndexError as exc:
                raise InputError(f"bad input: {exc}") from None
            if y is not NotImplemented:
                return y
        outs = self._run(self._check(xq, quantized=True))
        return outs[0] if len(outs) == 1 else tuple(outs)

    def __call__(self, *xs):
        """float32 inputs shaped as ``input_spec`` → dequantized float32 outputs (softmax
        applied if the model ends in one)."""
        if self._thin is not None and len(xs) == 1:
            try:
                y = self._thin(xs[0])
            except IndexError as exc:
                raise InputError(f"bad input: {exc}") from None
            if y is not NotImplemented:
                return y
        if len(xs) != len(self._inputs):
            self._check(xs, quantized=False)            # raises the one-line error
        if self._one_to_one:                            # the common case, with less Python
            x, t = xs[0], self._inputs[0]
            if type(x) is not np.ndarray or x.dtype.kind not in "fiu" or (
                    x.shape != t.shape and x.shape != self._alt_shape[0]):
                x = self._check_one(x, t, quantized=False)
            elif x.shape != t.shape:
                x = x.reshape(t.shape)
            self._prep[0](x)
            raw = self._run_float()[0]
            if self._softmax[0]:
                s, z = self._out_q[0]
                return softmax_f32(raw, s, z, out=self._fbuf[0]).copy()
            t = self._raw[0]
            return int8.dequantize(raw, t.scale, t.zero_point)
        for x, t, prep, alt in zip(xs, self._inputs, self._prep, self._alt_shape, strict=True):
            if type(x) is not np.ndarray or x.dtype.kind not in "fiu" or (
                    x.shape != t.shape and x.shape != alt):
                x = self._check_one(x, t, quantized=False)   # reshapes, or says what is wrong
            elif x.shape != t.shape:
                x = x.reshape(t.shape)                       # input_spec shape: a view
            prep(x)
        outs = []
        for raw, t, sm, buf, (s, z) in zip(self._run_float(), self._raw, self._softmax,
                                           self._fbuf, self._out_q, strict=True):
            outs.append(softmax_f32(raw, s, z, out=buf).copy() if sm
                        else int8.dequantize(raw, t.scale, t.zero_point))
        return outs[0] if len(outs) == 1 else tuple(outs)


def _not_finite(t) -> InputError:
    return InputError(f"input {t.name!r} contains NaN or infinity")


def _not_finite_of(t):
    return lambda: _not_finite(t)


def _index_copier(q):
    def copy(x):
        if x.dtype.kind not in "iu":
            raise InputError(f"input takes integer indices, got {x.dtype}")
        np.copyto(q, x, casting="unsafe")
    return copy


def load(source: str | os.PathLike | Bundle, backend: str = "auto") -> Model:
    """Load a ``.lanthorn`` file (or an in-memory Bundle) and bind it to an engine."""
    bundle = source if isinstance(source, Bundle) else read_bundle(Path(source))
    return Model(bundle, backend)
